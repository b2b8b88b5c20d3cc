//! Baseband model of a Mode S reply as an RTL-SDR samples it.
//!
//! A reply (Annex 10 Vol IV §3.1.2.2) is a train of 0.5 µs pulses on a
//! 0.5 µs grid of "chips": the preamble has pulses in chips 0, 2, 7 and 9
//! (0, 1.0, 3.5 and 4.5 µs); data bit *i* occupies chips 16 + 2i and
//! 17 + 2i, with the pulse in the first chip for a 1 and in the second for a
//! 0 (pulse position modulation, 1 Mbit/s). Where a pulse ends and the next
//! begins on adjacent chips they merge into one 1 µs pulse, which the model
//! gets for free by summing per-chip pulses whose ramps cross at 50 %.
//!
//! Each chip pulse is a trapezoid (linear 0 → 100 % ramps of
//! [`RAMP_US`], so 10–90 % rise and decay of 0.08 µs, inside the
//! 0.05–0.1 µs rise / 0.05–0.2 µs decay of Annex 10 Vol IV Table 3-2, with
//! 0.5 µs between the 50 % points), passed through the receiver's
//! filter. That filter is Gaussian, with a noise-equivalent bandwidth equal
//! to the sample rate: so the white noise added per sample is exactly what
//! it would pass, long pulses settle at their amplitude without overshoot
//! (a sinc cut at fs/2 overshoots a 1 µs pulse by ~15 % at 2 MS/s), and
//! neighbouring chips leak only ~3 % into each other at 2 MS/s, which is
//! about what RTL-SDR recordings show. The filtered pulse is
//! tabulated once at 1/64-sample resolution, so a reply can start at any
//! fractional sample time at the cost of a table lookup per chip and
//! sample. That matters: a demodulator tested only on sample-aligned
//! replies would never see the 2.4 MS/s phase ambiguity it must handle.
//!
//! The filter is applied to the envelope, i.e. centred on each reply's own
//! carrier rather than on the tuner frequency; with carrier offsets of
//! ≤ 100 kHz against a bandwidth of ≥ 2 MHz the difference is negligible.

use std::f64::consts::TAU;

use crate::iq::SampleFormat;

/// Duration of one chip (half a bit), µs.
pub const CHIP_US: f64 = 0.5;
/// Length of the linear ramp of a pulse edge, 0 to full amplitude, µs.
pub const RAMP_US: f64 = 0.1;
/// Half-length of the receiver filter's impulse response, in samples
/// (7 standard deviations of the Gaussian: the truncation is invisible).
pub const FILTER_HALF_SAMPLES: f64 = 2.0;
/// Standard deviation of the Gaussian impulse response, in samples:
/// 1/(2√π) makes the noise-equivalent bandwidth ∫|H(f)|² df equal to fs.
const FILTER_SIGMA_SAMPLES: f64 = 0.282_094_791_773_878_14;
/// Table points per sample.
const OVERSAMPLE: f64 = 64.0;
/// Chips in the preamble (8 µs).
pub const PREAMBLE_CHIPS: usize = 16;
/// Cs16 output: LSBs of i16 per Cu8 LSB (what a u8 → s16 conversion does).
pub const CS16_PER_LSB: f32 = 256.0;

/// A complex sample in Cu8 LSB units, centred on zero.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cf32 {
    /// In-phase component.
    pub re: f32,
    /// Quadrature component.
    pub im: f32,
}

impl Cf32 {
    /// Power, `re² + im²`.
    pub fn norm_sqr(self) -> f32 {
        self.re * self.re + self.im * self.im
    }
}

/// One reply to draw.
#[derive(Clone, Copy, Debug)]
pub struct Reply<'a> {
    /// The frame, 7 or 14 bytes.
    pub bytes: &'a [u8],
    /// Position of the 50 % point of the leading edge of the first preamble
    /// pulse, in samples (fractional) on the same axis as `buf_start`.
    pub lead: f64,
    /// Flat-top amplitude of the pulses, LSB.
    pub amplitude: f32,
    /// Carrier phase at `lead`, radians.
    pub phase: f64,
    /// Carrier offset, cycles per sample.
    pub freq: f64,
}

/// Whether chip `k` of a reply carries a pulse.
fn chip_mask(bytes: &[u8], mask: &mut [bool; PREAMBLE_CHIPS + 224]) -> usize {
    mask.fill(false);
    for k in [0, 2, 7, 9] {
        mask[k] = true;
    }
    let bits = bytes.len().min(14) * 8;
    for i in 0..bits {
        let one = bytes[i / 8] >> (7 - i % 8) & 1 == 1;
        mask[PREAMBLE_CHIPS + 2 * i + usize::from(!one)] = true;
    }
    PREAMBLE_CHIPS + 2 * bits
}

/// Renders replies at one sample rate.
#[derive(Clone, Debug)]
pub struct PulseShaper {
    sample_rate: u32,
    /// Chip length in samples.
    chip: f64,
    /// Filtered single-chip pulse, unit flat top, every 1/OVERSAMPLE sample.
    table: Vec<f32>,
    /// Samples from the table's first point to the 50 % leading edge.
    origin: f64,
    /// Samples covered by the table.
    span: f64,
}

impl PulseShaper {
    /// A shaper for pulses sampled at `sample_rate`.
    pub fn new(sample_rate: u32) -> Self {
        let fs = f64::from(sample_rate);
        let chip = CHIP_US * 1e-6 * fs;
        let ramp = RAMP_US * 1e-6 * fs;
        let h = FILTER_HALF_SAMPLES;
        let origin = h + ramp / 2.0;
        let span = chip + ramp + 2.0 * h;
        let d = 1.0 / OVERSAMPLE;

        let filter = |x: f64| {
            if x.abs() >= h {
                0.0
            } else {
                (-0.5 * (x / FILTER_SIGMA_SAMPLES).powi(2)).exp()
            }
        };
        // Unit DC gain, so a long pulse settles at exactly its amplitude.
        let steps = (2.0 * h * OVERSAMPLE) as i64;
        let gain: f64 = (-steps..=steps).map(|k| filter(k as f64 * d) * d).sum();

        let trapezoid = |s: f64| {
            ((s + ramp / 2.0) / ramp)
                .min((chip + ramp / 2.0 - s) / ramp)
                .clamp(0.0, 1.0)
        };
        // Midpoint rule over the pulse; the integrand is smooth, and 1/64
        // sample steps put the error far below the 8-bit output resolution.
        let pulse_pts: Vec<(f64, f64)> = (0..((chip + ramp) * OVERSAMPLE).ceil() as usize)
            .map(|i| {
                let s = -ramp / 2.0 + (i as f64 + 0.5) * d;
                (s, trapezoid(s))
            })
            .collect();
        let len = (span * OVERSAMPLE).ceil() as usize + 2;
        let table = (0..len)
            .map(|j| {
                let u = j as f64 * d - origin;
                let v: f64 = pulse_pts.iter().map(|&(s, a)| a * filter(u - s)).sum();
                (v * d / gain) as f32
            })
            .collect();
        PulseShaper {
            sample_rate,
            chip,
            table,
            origin,
            span,
        }
    }

    /// The sample rate it shapes for.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Samples `[first, end)` that a reply of `bits` bits with its leading
    /// edge at `lead` touches (filter tails included).
    pub fn extent(&self, lead: f64, bits: usize) -> (i64, i64) {
        let chips = (PREAMBLE_CHIPS + 2 * bits) as f64;
        let first = (lead - self.origin).ceil() as i64;
        let last = (lead + (chips - 1.0) * self.chip + self.span - self.origin).floor() as i64;
        (first, last + 1)
    }

    /// Value of the filtered unit chip pulse `u` samples after its leading
    /// edge.
    #[inline]
    fn pulse(&self, u: f64) -> f32 {
        let x = (u + self.origin) * OVERSAMPLE;
        if x < 0.0 {
            return 0.0;
        }
        let i = x as usize;
        if i + 1 >= self.table.len() {
            return 0.0;
        }
        let f = (x - i as f64) as f32;
        self.table[i] * (1.0 - f) + self.table[i + 1] * f
    }

    /// Adds `reply` to `buf`, whose first element is sample `buf_start`.
    /// Only the part of the reply inside the buffer is drawn, so a long
    /// stream can be rendered buffer by buffer with identical results.
    pub fn add(&self, reply: &Reply<'_>, buf: &mut [Cf32], buf_start: i64) {
        let mut mask = [false; PREAMBLE_CHIPS + 224];
        let nchips = chip_mask(reply.bytes, &mut mask);
        let (first, end) = self.extent(reply.lead, (nchips - PREAMBLE_CHIPS) / 2);
        let lo = first.max(buf_start);
        let hi = end.min(buf_start + buf.len() as i64);
        if lo >= hi {
            return;
        }
        // The carrier advances by a fixed angle per sample: rotate a phasor
        // instead of calling sin/cos per sample (a few hundred steps per
        // reply, so the accumulated rounding stays ~1e-13).
        let (s, c) = (reply.phase + TAU * reply.freq * (lo as f64 - reply.lead)).sin_cos();
        let (mut pr, mut pi) = (c, s);
        let (ss, cs) = (TAU * reply.freq).sin_cos();
        let tail = self.span - self.origin;
        for n in lo..hi {
            let tau = n as f64 - reply.lead;
            let k_lo = (((tau - tail) / self.chip).floor() + 1.0).max(0.0) as usize;
            let k_hi = (((tau + self.origin) / self.chip).floor() as usize).min(nchips - 1);
            let mut env = 0.0f32;
            for (k, _) in mask[..=k_hi]
                .iter()
                .enumerate()
                .skip(k_lo)
                .filter(|(_, &on)| on)
            {
                env += self.pulse(tau - k as f64 * self.chip);
            }
            let a = env * reply.amplitude;
            let v = &mut buf[(n - buf_start) as usize];
            v.re += a * pr as f32;
            v.im += a * pi as f32;
            (pr, pi) = (pr * cs - pi * ss, pr * ss + pi * cs);
        }
    }
}

/// Quantises `buf` into `out` (whole samples, interleaved I then Q).
/// Cu8: round(127.5 + x) saturated to 0..=255, as the RTL2832U delivers.
/// Cs16: round(256·x) saturated to the i16 range, little-endian: the same
/// signal on a finer scale, as after a u8 → s16 conversion.
pub fn quantise(format: SampleFormat, buf: &[Cf32], out: &mut [u8]) {
    match format {
        SampleFormat::Cu8 => {
            for (v, o) in buf.iter().zip(out.chunks_exact_mut(2)) {
                // `as u8` saturates; for non-negative values it truncates,
                // so floor(128 + x) = round(127.5 + x).
                o[0] = (v.re + 128.0) as u8;
                o[1] = (v.im + 128.0) as u8;
            }
        }
        SampleFormat::Cs16 => {
            for (v, o) in buf.iter().zip(out.chunks_exact_mut(4)) {
                let i = (v.re * CS16_PER_LSB).round() as i16;
                let q = (v.im * CS16_PER_LSB).round() as i16;
                o[..2].copy_from_slice(&i.to_le_bytes());
                o[2..].copy_from_slice(&q.to_le_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(fs: u32, bytes: &[u8], lead: f64, start: i64, len: usize) -> Vec<Cf32> {
        let shaper = PulseShaper::new(fs);
        let mut buf = vec![Cf32::default(); len];
        let reply = Reply {
            bytes,
            lead,
            amplitude: 1.0,
            phase: 0.7,
            freq: 0.0,
        };
        shaper.add(&reply, &mut buf, start);
        buf
    }

    #[test]
    fn long_pulse_settles_at_amplitude() {
        // 0x55: each 0 bit followed by a 1 bit merges into a 1 µs pulse.
        let bytes = [0x55u8; 7];
        for fs in [2_000_000, 2_400_000] {
            let buf = render(fs, &bytes, 0.0, 0, 200);
            let peak = buf.iter().map(|v| v.norm_sqr().sqrt()).fold(0.0, f32::max);
            assert!((0.995..1.001).contains(&peak), "{fs}: {peak}");
        }
    }

    #[test]
    fn isolated_pulse_peak_loss() {
        // The anti-alias filter shaves the peak of an isolated 0.5 µs pulse;
        // the SNR doc comment in sim/mod.rs quotes these figures.
        for (fs, lo, hi) in [(2_000_000, -1.0, -0.5), (2_400_000, -0.5, -0.15)] {
            let s = PulseShaper::new(fs);
            let peak = (0..1000)
                .map(|i| s.pulse(s.chip / 2.0 + (i as f64 - 500.0) / 2000.0))
                .fold(0.0, f32::max);
            let db = 20.0 * f64::from(peak).log10();
            println!("{fs}: isolated pulse peak {db:.2} dB");
            assert!((lo..hi).contains(&db), "{fs}: {db:.2} dB");
        }
    }

    #[test]
    fn extent_covers_all_energy() {
        let s = PulseShaper::new(2_400_000);
        let (first, end) = s.extent(10.3, 112);
        let buf = render(
            2_400_000,
            &[0xFF; 14],
            10.3,
            first - 20,
            (end - first + 40) as usize,
        );
        for (i, v) in buf.iter().enumerate() {
            let n = first - 20 + i as i64;
            if n < first || n >= end {
                assert_eq!(v.norm_sqr(), 0.0, "sample {n}");
            }
        }
        assert!(buf[(first - 20 + 20) as usize..]
            .iter()
            .any(|v| v.norm_sqr() > 0.0));
    }

    #[test]
    fn split_rendering_is_identical() {
        let s = PulseShaper::new(2_400_000);
        let bytes = [
            0x8D, 0x40, 0x6B, 0x90, 0x20, 0x15, 0xA6, 0x78, 0xD4, 0xD2, 0x20, 0xAA, 0x4B, 0xDA,
        ];
        let reply = Reply {
            bytes: &bytes,
            lead: 37.25,
            amplitude: 3.0,
            phase: 1.0,
            freq: 0.03,
        };
        let mut whole = vec![Cf32::default(); 400];
        s.add(&reply, &mut whole, 0);
        let mut parts = vec![Cf32::default(); 400];
        for (i, chunk) in parts.chunks_mut(37).enumerate() {
            s.add(&reply, chunk, i as i64 * 37);
        }
        assert_eq!(whole, parts);
    }

    // Pins the PPM convention and the timing: at 2.0 MS/s one chip is one
    // sample, so with the pulse centres on sample instants the magnitude is
    // high exactly on chips that carry a pulse.
    #[test]
    fn ppm_timing_at_2_msps() {
        let bytes = [
            0x8D, 0x40, 0x6B, 0x90, 0x20, 0x15, 0xA6, 0x78, 0xD4, 0xD2, 0x20, 0xAA, 0x4B, 0xDA,
        ];
        // Leading edge half a sample before sample 0 puts chip k's centre at
        // sample k. Draw from sample -8 to see the filter's lead-in too.
        let buf = render(2_000_000, &bytes, -0.5, -8, 8 + 16 + 224 + 8);
        let mut q = vec![0u8; buf.len() * 2];
        let scaled: Vec<Cf32> = buf
            .iter()
            .map(|v| Cf32 {
                re: v.re * 100.0,
                im: v.im * 100.0,
            })
            .collect();
        quantise(SampleFormat::Cu8, &scaled, &mut q);
        let mag: Vec<f32> = q
            .chunks(2)
            .map(|c| {
                let i = f32::from(c[0]) - 127.5;
                let q = f32::from(c[1]) - 127.5;
                (i * i + q * q).sqrt()
            })
            .collect();
        let at = |k: usize| mag[8 + k];
        for k in 0..16 {
            let on = [0, 2, 7, 9].contains(&k);
            assert_eq!(at(k) > 50.0, on, "preamble chip {k}: {}", at(k));
        }
        for i in 0..112 {
            let bit = bytes[i / 8] >> (7 - i % 8) & 1;
            let (first, second) = (at(16 + 2 * i), at(17 + 2 * i));
            assert!((first > second) == (bit == 1), "bit {i}");
            assert!(
                first.max(second) > 50.0 && first.min(second) < 50.0,
                "bit {i}"
            );
        }
    }

    #[test]
    fn quantise_formats() {
        let buf = [
            Cf32 { re: 0.0, im: -0.6 },
            Cf32 {
                re: 500.0,
                im: -500.0,
            },
            Cf32 { re: 1.2, im: -1.2 },
        ];
        let mut u8s = [0u8; 6];
        quantise(SampleFormat::Cu8, &buf, &mut u8s);
        assert_eq!(u8s, [128, 127, 255, 0, 129, 126]);
        let mut s16 = [0u8; 12];
        quantise(SampleFormat::Cs16, &buf, &mut s16);
        let v: Vec<i16> = s16
            .chunks(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(v, [0, -154, 32767, -32768, 307, -307]);
    }
}
