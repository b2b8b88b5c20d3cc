//! Mode S demodulation: magnitude samples in, accepted frames out.
//!
//! Annex 10 Vol IV §3.1.2.1-§3.1.2.2: an 8 µs preamble (0.5 µs pulses at
//! 0, 1.0, 3.5 and 4.5 µs) followed by 56 or 112 bits of pulse-position
//! modulation at 1 Mbit/s (a bit is a pulse in the first or the second half
//! of its microsecond).
//!
//! # How
//!
//! Time is measured in "units" that divide both a sample and a half-bit
//! (0.5 µs) exactly: at 2.4 MS/s a sample is 5 units and a half-bit 6; at
//! 2.0 MS/s a sample and a half-bit are both 4 units. A frame's true start
//! lies between samples, so each candidate position is tried at every unit
//! phase (5 hypotheses at 2.4 MS/s, 4 at 2.0). The energy of a half-bit slot is the
//! magnitude integrated over its exact span, i.e. a weighted sum of the two
//! samples it overlaps; a bit is 1 when its first half holds more energy.
//!
//! 1. A cheap screen at every sample compares the samples that must hold
//!    preamble pulses (whatever the phase) with those that must be quiet.
//! 2. Survivors are sliced at each phase; a hypothesis with a plausible
//!    preamble whose DF is one we accept is sliced in full and judged by the
//!    [`Acceptor`] (CRC, guarded repair, address confirmation).
//! 3. The best verdict wins (clean > repaired; ties go to the clearer bit
//!    decisions). An accepted frame moves the search past its preamble only,
//!    so a reply that starts inside another one is still found.
//!
//! The kernel keeps a tail of samples across calls, so the same input split
//! at any points yields the same frames.

use crate::modes::accept::{Acceptor, Checked, Received, Verdict};
use crate::modes::{df_bits, df_of};

/// Supported sample rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rate {
    /// 2.0 MS/s: two samples per bit.
    Msps2_0,
    /// 2.4 MS/s: 2.4 samples per bit.
    Msps2_4,
}

impl Rate {
    pub fn from_hz(hz: u32) -> Option<Rate> {
        match hz {
            2_000_000 => Some(Rate::Msps2_0),
            2_400_000 => Some(Rate::Msps2_4),
            _ => None,
        }
    }
    pub const fn hz(self) -> u32 {
        match self {
            Rate::Msps2_0 => 2_000_000,
            Rate::Msps2_4 => 2_400_000,
        }
    }
    /// Units per sample (quarter samples at 2.0 MS/s, fifths at 2.4).
    const fn d(self) -> usize {
        match self {
            Rate::Msps2_0 => 4,
            Rate::Msps2_4 => 5,
        }
    }
    /// Units per half-bit.
    const fn h(self) -> usize {
        match self {
            Rate::Msps2_0 => 4,
            Rate::Msps2_4 => 6,
        }
    }
    /// The preamble screen at one sample position: `w` holds the 20
    /// samples from the candidate start.
    ///
    /// Two tests, both on samples whose role does not depend on the phase:
    /// the samples that hold the pulses must on average stand above those
    /// that are quiet, and the third and fourth pulses (after the 2.5 µs
    /// gap) must each put a sample clearly above the quiet mean. Inside a
    /// reply's own data the "quiet" samples carry PPM pulses, so the second
    /// test rejects most positions there. The first two pulses are not
    /// required individually: overlaps and clipping damage them often
    /// enough that the reference decoders find frames without them.
    #[inline(always)]
    fn screen(self, w: &[u16]) -> bool {
        let m = |i: usize| u32::from(w[i]);
        match self {
            // Pulses at [φ,φ+1), [2+φ,3+φ), [7+φ,8+φ), [9+φ,10+φ) samples
            // for φ in [0,1): samples 4-6 and 11-15 are quiet for every φ.
            Rate::Msps2_0 => {
                let q = [m(4), m(5), m(6), m(11), m(12), m(13), m(14), m(15)];
                let quiet: u32 = q.iter().sum();
                let pulses = m(0) + m(1) + m(2) + m(3) + m(7) + m(8) + m(9) + m(10);
                if pulses * 16 <= quiet * MEAN_RATIO_16THS {
                    return false;
                }
                let t = trimmed(&q) * PULSE_RATIO_16THS / ((q.len() as u32 - 2) * 16);
                m(7).max(m(8)) > t && m(9).max(m(10)) > t
            }
            // Pulses 1.2 samples long at 0, 2.4, 8.4, 10.8 (+φ): samples
            // 0-1, 2-4, 8-10 and 10-12 hold them; 5-7 and 13-18 are quiet.
            Rate::Msps2_4 => {
                let q = [m(5), m(6), m(7), m(13), m(14), m(15), m(16), m(17), m(18)];
                let quiet: u32 = q.iter().sum();
                let pulses = m(0) + m(1) + m(2) + m(3) + m(4) + m(8) + m(9) + m(10) + m(11) + m(12);
                if pulses * 9 * 16 <= quiet * 10 * MEAN_RATIO_16THS {
                    return false;
                }
                let t = trimmed(&q) * PULSE_RATIO_16THS / ((q.len() as u32 - 2) * 16);
                m(8).max(m(9)).max(m(10)) > t && m(10).max(m(11)).max(m(12)) > t
            }
        }
    }
}

/// Energy of one half-bit slot: its two samples, weighted by overlap.
#[inline(always)]
fn slot_energy(m: &[u16], sl: &Slot) -> u32 {
    let o = usize::from(sl.offset);
    debug_assert!(o + 1 < m.len());
    // SAFETY: `Demodulator::new` builds every slot with offset + 1 < span
    // (checked by a unit test), and callers pass `span` samples.
    let (a, b) = unsafe { (*m.get_unchecked(o), *m.get_unchecked(o + 1)) };
    u32::from(a) * u32::from(sl.w0) + u32::from(b) * u32::from(sl.w1)
}

/// The decision-feedback threshold for phase `p`, given the preamble's
/// summed pulse energy: only fractional phases at 2.0 MS/s need one (see
/// `try_position`).
fn feedback(rate: Rate, p: usize, pulse: u32) -> Option<u32> {
    match rate {
        Rate::Msps2_0 if p > 0 => Some(pulse * FEEDBACK_80THS[p] / 80),
        _ => None,
    }
}

/// Slice the data bytes in `range` of one phase hypothesis into `bytes`,
/// recording each bit's decision margin. With `feedback` (a threshold), a
/// bit's halves are compared against ∓threshold depending on the previous
/// bit (see `try_position`).
#[inline(always)]
fn slice_bytes(
    m: &[u16],
    slots: &[Slot; SLOTS],
    range: std::ops::Range<usize>,
    bytes: &mut [u8; 14],
    margins: &mut [u32; 112],
    feedback: Option<u32>,
    prev_one: &mut bool,
) {
    for i in range {
        let mut b = 0u32;
        for j in 0..8 {
            let bit = i * 8 + j;
            // SAFETY: bit < 112, so both slot indices are < 16 + 224 = SLOTS.
            let (sa, sz) = unsafe {
                (
                    slots.get_unchecked(16 + 2 * bit),
                    slots.get_unchecked(17 + 2 * bit),
                )
            };
            let (a, z) = (slot_energy(m, sa), slot_energy(m, sz));
            let (lhs, rhs) = match feedback {
                None => (a, z),
                Some(q) if *prev_one => (a + q, z),
                Some(q) => (a, z + q),
            };
            let one = lhs > rhs;
            margins[bit] = lhs.abs_diff(rhs);
            *prev_one = one;
            b = (b << 1) | u32::from(one);
        }
        bytes[i] = b as u8;
    }
}

/// Sum of the quiet samples without the two largest: an overlapping reply
/// puts pulses into a few of them, and the level that matters is the noise.
#[inline(always)]
fn trimmed(q: &[u32]) -> u32 {
    let (mut a, mut b, mut sum) = (0, 0, 0);
    for &x in q {
        sum += x;
        if x > a {
            b = a;
            a = x;
        } else if x > b {
            b = x;
        }
    }
    sum - a - b
}

/// Half-bit slots: 16 for the preamble, 224 for the longest data block.
const SLOTS: usize = 16 + 2 * 112;

/// Where each half-bit slot of one phase hypothesis falls: first sample
/// offset and the weights (in units) of it and the next sample.
#[derive(Clone, Copy, Default)]
struct Slot {
    offset: u16,
    w0: u16,
    w1: u16,
}

/// Preamble pulse slots and the quiet slots checked against them.
const PULSE_SLOTS: [usize; 4] = [0, 2, 7, 9];
const QUIET_SLOTS: [usize; 6] = [1, 3, 4, 5, 6, 8];

/// Demodulator state for one stream of magnitudes.
pub struct Demodulator {
    rate: Rate,
    phases: Vec<[Slot; SLOTS]>,
    /// Samples spanned by a full 112-bit frame at the latest phase, plus one.
    span: usize,
    buf: Vec<u16>,
    /// Absolute sample index of `buf[0]`.
    base: u64,
    /// Next position to examine, relative to `buf`.
    pos: usize,
    acceptor: Acceptor,
    /// The last held candidate (bytes, sample): a strong reply slices
    /// correctly at neighbouring positions too, and must be held only once.
    last_held: Option<([u8; 14], u64)>,
    /// Samples of signal seen.
    pub samples_seen: u64,
}

/// Hypotheses whose preamble pulses average less than this many times the
/// quiet slots (in sixteenths) are not sliced.
const PREAMBLE_RATIO_16THS: u32 = 20;
/// Decision-feedback threshold per 2.0 MS/s quarter-sample phase, in 80ths
/// of the preamble's summed pulse energy (four pulse slots): f(1-f) /
/// (2((1-f)²+f²)) / 4 for f = 0, 1/4, 1/2, 3/4.
const FEEDBACK_80THS: [u32; 4] = [0, 3, 5, 3];
/// Mean decision margin of the first eight bits, in sixteenths of a
/// preamble pulse slot's energy, below which a hypothesis is not sliced on.
const MIN_BIT_CONTRAST_16THS: u32 = 4;
/// Phase hypotheses sliced per position, best preamble first.
const MAX_PHASES_SLICED: usize = 2;
/// Screen: mean pulse sample over mean quiet sample, in sixteenths.
const MEAN_RATIO_16THS: u32 = 22;
/// Screen: the third and fourth pulses must each peak above this many
/// sixteenths of the mean quiet sample.
const PULSE_RATIO_16THS: u32 = 32;

impl Demodulator {
    pub fn new(rate: Rate, fix_bits: u8) -> Self {
        let (d, h) = (rate.d(), rate.h());
        let phases = (0..d)
            .map(|p| {
                let mut slots = [Slot::default(); SLOTS];
                for (k, slot) in slots.iter_mut().enumerate() {
                    let u = p + k * h;
                    let r = u % d;
                    let w0 = h.min(d - r);
                    *slot = Slot {
                        offset: (u / d) as u16,
                        w0: w0 as u16,
                        w1: (h - w0) as u16,
                    };
                }
                slots
            })
            .collect();
        let span = (SLOTS * h).div_ceil(d) + 2;
        Self {
            rate,
            phases,
            span,
            buf: Vec::new(),
            base: 0,
            pos: 0,
            acceptor: Acceptor::new(rate.hz(), fix_bits),
            last_held: None,
            samples_seen: 0,
        }
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    pub fn acceptor(&self) -> &Acceptor {
        &self.acceptor
    }

    /// Feed magnitudes; accepted frames are appended to `out`.
    pub fn push(&mut self, mag: &[u16], out: &mut Vec<Received>) {
        self.samples_seen += mag.len() as u64;
        self.buf.extend_from_slice(mag);
        self.scan(out);
        // Keep the unexamined tail (it may hold the start of a frame).
        let drop = self.pos.min(self.buf.len());
        self.buf.drain(..drop);
        self.base += drop as u64;
        self.pos -= drop;
    }

    /// End of input: examine what is left (padded with silence).
    pub fn finish(&mut self, out: &mut Vec<Received>) {
        let real = self.buf.len();
        self.buf.resize(real + self.span + 20, 0);
        self.scan(out);
        self.buf.truncate(real.min(self.buf.len()));
        self.base += self.pos.min(real) as u64;
        self.buf.clear();
        self.pos = 0;
    }

    fn scan(&mut self, out: &mut Vec<Received>) {
        let need = self.span.max(20);
        if self.buf.len() < need {
            return;
        }
        let end = self.buf.len() - need;
        while self.pos < end {
            let s = self.pos;
            if !self.rate.screen(&self.buf[s..s + 20]) {
                self.pos += 1;
                continue;
            }
            match self.try_position(s) {
                Some((mut frame, mut checked, margin)) => {
                    // The same reply often also decodes from the next sample
                    // at an earlier phase; keep whichever reads more clearly,
                    // so the reported start is the nearest sample.
                    if checked.verdict != Verdict::Hold {
                        if let Some((f2, c2, m2)) = self.try_position(s + 1) {
                            if f2.bytes == frame.bytes
                                && (c2.verdict.rank(), m2) > (checked.verdict.rank(), margin)
                            {
                                (frame, checked) = (f2, c2);
                            }
                        }
                    }
                    let accepted = checked.verdict != Verdict::Hold;
                    if !accepted {
                        let repeat = self
                            .last_held
                            .is_some_and(|(b, t)| b == frame.bytes && frame.sample - t <= 4);
                        self.last_held = Some((frame.bytes, frame.sample));
                        if !repeat {
                            self.acceptor.commit(frame, checked, out);
                        }
                    } else {
                        self.acceptor.commit(frame, checked, out);
                    }
                    if accepted {
                        // Skip the accepted frame's preamble, where shifted
                        // hypotheses would decode it again, but not its data:
                        // another reply may start inside it (overlaps), and
                        // PPM data never holds the 2.5 µs gap the screen
                        // demands, so scanning it costs little.
                        self.pos = (frame.sample - self.base) as usize
                            + 16 * self.rate.h() / self.rate.d();
                    } else {
                        self.pos += 1;
                    }
                }
                None => self.pos += 1,
            }
        }
    }

    /// Slice the phase hypotheses at buffer position `s`, best preamble
    /// first, and return the best accepted one. A clean decode ends the
    /// search: later hypotheses have weaker preambles and cannot rank higher.
    fn try_position(&self, s: usize) -> Option<(Received, Checked, u32)> {
        let m = &self.buf[s..s + self.span];
        let now = self.base + s as u64;
        let energy = |slots: &[Slot; SLOTS], k: usize| slot_energy(m, &slots[k]);
        // Preamble score per phase: pulse energy minus the scaled quiet
        // energy; hypotheses failing the ratio test are dropped.
        let mut order: [(i64, u32, usize); 5] = [(i64::MIN, 0, 0); 5];
        let mut n = 0;
        for (p, slots) in self.phases.iter().enumerate() {
            let pulse: u32 = PULSE_SLOTS.iter().map(|&k| energy(slots, k)).sum();
            let quiet: u32 = QUIET_SLOTS.iter().map(|&k| energy(slots, k)).sum();
            let lhs = u64::from(pulse) * QUIET_SLOTS.len() as u64 * 16;
            let rhs = u64::from(PREAMBLE_RATIO_16THS) * u64::from(quiet) * PULSE_SLOTS.len() as u64;
            if lhs > rhs {
                order[n] = (lhs as i64 - rhs as i64, pulse, p);
                n += 1;
            }
        }
        let order = &mut order[..n];
        order.sort_unstable_by_key(|o| std::cmp::Reverse(o.0));

        let mut best: Option<(Received, Checked, u32)> = None;
        let mut margins = [0u32; 112];
        // The true phase is almost always among the two best preambles; the
        // others only cost time on garbage.
        for &(_, pulse, p) in order.iter().take(MAX_PHASES_SLICED) {
            let slots = &self.phases[p];
            let mut bytes = [0u8; 14];
            // At 2.0 MS/s a half-bit is one sample, so at a fractional phase
            // f every sample straddles two slots and a slot's energy is
            // f(1-f)·previous + ((1-f)²+f²)·own + f(1-f)·next. Comparing a
            // bit's halves then loses margin to the neighbouring bits (none
            // at all for 000 and 111 when f = 1/2). Knowing the previous bit,
            // the halves separate around ∓f(1-f)/(2((1-f)²+f²)) of a pulse
            // slot, so fractional phases are sliced with decision feedback.
            let feedback = feedback(self.rate, p, pulse);
            // The preamble ends quiet, as a bit ends after a 1.
            let mut prev_one = true;
            // The first byte decides the format and so the length.
            slice_bytes(
                m,
                slots,
                0..1,
                &mut bytes,
                &mut margins,
                feedback,
                &mut prev_one,
            );
            let df = df_of(bytes[0]);
            // Only formats we can check are sliced on. A DF field damaged
            // into another format is not chased: it widened this filter from
            // 9 to about 20 of 32 first bytes for almost no frames.
            if !matches!(df, 0 | 4 | 5 | 11 | 16 | 17 | 18 | 20 | 21) {
                continue;
            }
            // A real reply decides its bits by about a pulse's energy; a
            // position inside another reply's data mostly compares pulse
            // with pulse. Too little contrast in the first byte: not a frame.
            let first_margin: u32 = margins[..8].iter().sum();
            if u64::from(first_margin) * 4 * 16
                < u64::from(pulse) * 8 * u64::from(MIN_BIT_CONTRAST_16THS)
            {
                continue;
            }
            let bits = df_bits(df);
            slice_bytes(
                m,
                slots,
                1..bits / 8,
                &mut bytes,
                &mut margins,
                feedback,
                &mut prev_one,
            );
            let len = bits / 8;
            let Some(checked) = self.acceptor.check(&mut bytes, len, now, &margins[..bits]) else {
                continue;
            };
            let margin: u32 = margins[..bits].iter().sum();
            let better = match &best {
                None => true,
                Some((_, c, mg)) => (checked.verdict.rank(), margin) > (c.verdict.rank(), *mg),
            };
            if better {
                let signal = (pulse / (4 * self.rate.h() as u32)).min(65535) as u16;
                let frame = Received {
                    bytes,
                    len: len as u8,
                    sample: now,
                    signal,
                    repaired: 0,
                    late: false,
                };
                best = Some((frame, checked, margin));
            }
            if checked.verdict == Verdict::Clean {
                break;
            }
        }
        best
    }
}

#[cfg(test)]
mod tests;

/// Slice a 112-bit frame at sample `s`, phase `phase` (in units) of `mag`,
/// with no screening: returns the bytes and the preamble pulse and quiet
/// slot energies. A diagnostic for tests and for investigating missed frames.
#[doc(hidden)]
pub fn slice_at(rate: Rate, mag: &[u16], s: usize, phase: usize) -> Option<([u8; 14], u32, u32)> {
    let d = Demodulator::new(rate, 0);
    let slots = d.phases.get(phase)?;
    let m = mag.get(s..s + d.span)?;
    let pulse = PULSE_SLOTS.iter().map(|&k| slot_energy(m, &slots[k])).sum();
    let quiet = QUIET_SLOTS.iter().map(|&k| slot_energy(m, &slots[k])).sum();
    // Sliced exactly as the demodulator slices, feedback included.
    let (mut bytes, mut margins, mut prev_one) = ([0u8; 14], [0u32; 112], true);
    slice_bytes(
        m,
        slots,
        0..14,
        &mut bytes,
        &mut margins,
        feedback(rate, phase, pulse),
        &mut prev_one,
    );
    Some((bytes, pulse, quiet))
}
