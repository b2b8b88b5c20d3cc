//! IQ sample formats and their conversion to magnitude: the first DSP stage.
//!
//! Magnitude (not power) keeps the dynamic range of weak and strong replies
//! within a `u16` and is what pulse-position slicing compares. For cu8 input
//! a 64 Ki-entry table maps each I/Q byte pair straight to its magnitude, so
//! the hot path is one load per sample.

use std::sync::OnceLock;

/// How raw IQ bytes are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleFormat {
    /// Interleaved unsigned 8-bit I/Q, centre 127.5 (RTL-SDR native).
    Cu8,
    /// Interleaved signed 16-bit little-endian I/Q.
    Cs16,
}

impl SampleFormat {
    /// Bytes per complex sample.
    pub const fn bytes_per_sample(self) -> usize {
        match self {
            SampleFormat::Cu8 => 2,
            SampleFormat::Cs16 => 4,
        }
    }
}

impl std::str::FromStr for SampleFormat {
    type Err = String;

    /// `cu8` or `cs16`, as on the command line.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cu8" => Ok(SampleFormat::Cu8),
            "cs16" => Ok(SampleFormat::Cs16),
            _ => Err(format!("unknown sample format {s:?}: use cu8 or cs16")),
        }
    }
}

/// Full-scale magnitude: a sample at the corner of the I/Q square.
const MAG_SCALE: f64 = 65535.0;

/// Magnitude of every cu8 sample, indexed by the I byte then the Q byte.
/// A fixed-size array, so indexing with a `u16` needs no bounds check.
type Cu8Table = [u16; 1 << 16];

fn cu8_table() -> &'static Cu8Table {
    static TABLE: OnceLock<Box<Cu8Table>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let full = 127.5 * std::f64::consts::SQRT_2;
        let mut table = Box::new([0u16; 1 << 16]);
        for (iq, m) in table.iter_mut().enumerate() {
            let i = (iq >> 8) as f64 - 127.5;
            let q = (iq & 0xFF) as f64 - 127.5;
            // Larger first, so that the table is symmetric whatever the
            // libm: the converter reads a byte pair in either order.
            let (a, b) = if i.abs() >= q.abs() { (i, q) } else { (q, i) };
            *m = (a.hypot(b) / full * MAG_SCALE).round() as u16;
        }
        table
    })
}

/// Streaming converter from raw IQ bytes to magnitudes. Keeps a partial
/// sample across calls, so any split of the input gives the same output.
#[derive(Debug)]
pub struct MagnitudeConverter {
    format: SampleFormat,
    partial: [u8; 4],
    partial_len: usize,
    /// Only the cu8 format uses it.
    table: Option<&'static Cu8Table>,
}

impl MagnitudeConverter {
    /// A converter for samples of `format`.
    pub fn new(format: SampleFormat) -> Self {
        Self {
            format,
            partial: [0; 4],
            partial_len: 0,
            table: (format == SampleFormat::Cu8).then(cu8_table),
        }
    }

    /// Bytes of an incomplete trailing sample held back so far.
    pub fn pending_bytes(&self) -> usize {
        self.partial_len
    }

    /// The format it converts.
    pub fn format(&self) -> SampleFormat {
        self.format
    }

    /// Append the magnitudes of every complete sample in `bytes` (plus the
    /// partial one held from the previous call) to `out`.
    pub fn convert(&mut self, bytes: &[u8], out: &mut Vec<u16>) {
        self.convert_keeping(bytes, out, None);
    }

    /// [`MagnitudeConverter::convert`], also appending the raw bytes of the
    /// samples converted to `raw`, one sample for each magnitude (for
    /// [`crate::demod`]'s interference cancellation, which needs phase).
    pub fn convert_keeping(
        &mut self,
        mut bytes: &[u8],
        out: &mut Vec<u16>,
        mut raw: Option<&mut Vec<u8>>,
    ) {
        let bps = self.format.bytes_per_sample();
        if self.partial_len > 0 {
            let need = bps - self.partial_len;
            let take = need.min(bytes.len());
            self.partial[self.partial_len..self.partial_len + take].copy_from_slice(&bytes[..take]);
            self.partial_len += take;
            bytes = &bytes[take..];
            if self.partial_len < bps {
                return;
            }
            let sample = self.partial;
            self.partial_len = 0;
            self.convert_whole(&sample[..bps], out);
            if let Some(raw) = raw.as_deref_mut() {
                raw.extend_from_slice(&sample[..bps]);
            }
        }
        let whole = bytes.len() / bps * bps;
        self.convert_whole(&bytes[..whole], out);
        if let Some(raw) = raw {
            raw.extend_from_slice(&bytes[..whole]);
        }
        let rest = &bytes[whole..];
        self.partial[..rest.len()].copy_from_slice(rest);
        self.partial_len = rest.len();
    }

    fn convert_whole(&self, bytes: &[u8], out: &mut Vec<u16>) {
        match self.format {
            SampleFormat::Cu8 => {
                let table = self.table.expect("built for cu8");
                // Written straight into the spare capacity: this loop runs
                // for every sample, and the table lookups are all it
                // should cost. The table is symmetric in I and Q, so a
                // pair is looked up in whichever byte order the load gives.
                let n = bytes.len() / 2;
                out.reserve(n);
                let spare = &mut out.spare_capacity_mut()[..n];
                let pair = |p: &[u8]| table[usize::from(u16::from_le_bytes([p[0], p[1]]))];
                // SAFETY: every bit pattern is a valid u32.
                let (head, words, tail) = unsafe { bytes.align_to::<u32>() };
                if head.len() % 2 == 0 {
                    // Two samples per aligned 32-bit load: targets that
                    // cannot load unaligned words (ARMv6 as Rust builds it)
                    // otherwise assemble every pair from byte loads, twice
                    // the instructions of the lookups.
                    let (first, rest) = spare.split_at_mut(head.len() / 2);
                    let (middle, last) = rest.split_at_mut(2 * words.len());
                    for (m, p) in first.iter_mut().zip(head.chunks_exact(2)) {
                        m.write(pair(p));
                    }
                    for (m, &w) in middle.chunks_exact_mut(2).zip(words) {
                        // Little-endian: the first pair in the low half.
                        let w = u32::from_le(w);
                        m[0].write(table[(w & 0xFFFF) as usize]);
                        m[1].write(table[(w >> 16) as usize]);
                    }
                    for (m, p) in last.iter_mut().zip(tail.chunks_exact(2)) {
                        m.write(pair(p));
                    }
                } else {
                    // An odd start: every pair straddles two words.
                    for (m, p) in spare.iter_mut().zip(bytes.chunks_exact(2)) {
                        m.write(pair(p));
                    }
                }
                // SAFETY: the loops above wrote all n spare elements: with
                // an even head, head / 2 + 2 * words + tail / 2 = n (the
                // byte count is even); else one per pair.
                unsafe { out.set_len(out.len() + n) };
            }
            SampleFormat::Cs16 => {
                let full = 32768.0 * std::f32::consts::SQRT_2;
                out.extend(bytes.chunks_exact(4).map(|p| {
                    let i = f32::from(i16::from_le_bytes([p[0], p[1]]));
                    let q = f32::from(i16::from_le_bytes([p[2], p[3]]));
                    (i.hypot(q) / full * MAG_SCALE as f32) as u16
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cu8_centre_is_near_zero_and_corner_is_full_scale() {
        let mut c = MagnitudeConverter::new(SampleFormat::Cu8);
        let mut out = Vec::new();
        c.convert(&[127, 128, 255, 255, 0, 0], &mut out);
        assert!(out[0] < 400, "{}", out[0]);
        assert_eq!(out[1], 65535);
        assert_eq!(out[2], 65535);
    }

    #[test]
    fn the_cu8_table_is_symmetric_in_i_and_q() {
        let t = cu8_table();
        for i in 0..256 {
            for q in 0..256 {
                assert_eq!(t[i << 8 | q], t[q << 8 | i], "I {i} Q {q}");
            }
        }
    }

    #[test]
    fn cu8_at_every_alignment_is_the_table_pair_by_pair() {
        // The word-at-a-time path runs on an even start, the pair path on
        // an odd one; both must give each pair's own magnitude, in order.
        let data: Vec<u8> = (0..1001u32).map(|k| (k * 97 % 251) as u8).collect();
        let t = cu8_table();
        for start in 0..6 {
            let bytes = &data[start..];
            let mut out = Vec::new();
            MagnitudeConverter::new(SampleFormat::Cu8).convert(bytes, &mut out);
            let want: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|p| t[usize::from(p[0]) << 8 | usize::from(p[1])])
                .collect();
            assert_eq!(out, want, "start {start}");
        }
    }

    proptest::proptest! {
        // The same bytes split anywhere give the same magnitudes.
        #[test]
        fn split_invariant(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
                           cut in 0usize..200, cs16 in proptest::bool::ANY) {
            let fmt = if cs16 { SampleFormat::Cs16 } else { SampleFormat::Cu8 };
            let cut = cut.min(data.len());
            let mut whole = Vec::new();
            MagnitudeConverter::new(fmt).convert(&data, &mut whole);
            let mut parts = Vec::new();
            let mut c = MagnitudeConverter::new(fmt);
            c.convert(&data[..cut], &mut parts);
            c.convert(&data[cut..], &mut parts);
            proptest::prop_assert_eq!(whole, parts);
            proptest::prop_assert_eq!(c.pending_bytes(), data.len() % fmt.bytes_per_sample());
        }
    }
}
