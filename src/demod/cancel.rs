//! Interference cancellation: subtract an accepted reply from the complex
//! samples, so that a weaker reply it overlapped can be read from what is
//! left.
//!
//! A third of a busy site's replies overlap another. In magnitudes the
//! weaker one is lost: `|a + b|` depends on the two carriers' phase
//! difference, so the stronger reply's pulses cannot be taken away. In
//! complex samples they can, if the stronger reply's carrier is known: its
//! bits are (the acceptor checked them), its pulse shape follows from them
//! (Annex 10 Vol IV §3.1.2.2: 0.5 µs chips, pulse position modulation), and
//! a transponder holds one carrier frequency and phase across a reply
//! closely enough to fit (`scripts/phase-coherence.py` measured the phase
//! spread about a fitted carrier on the shared recordings: 4° on modes1,
//! 9-29° on the 2022 ones, i.e. cancellation by roughly 7 to 25 dB).
//!
//! The model, per sample `k` of the reply: `x_k = c · e_k · exp(jωk) +
//! rest`, with `e_k` the reply's envelope (its chips through the
//! receiver's filter, see [`SIGMA_SAMPLES`]), `ω` the carrier offset and
//! `c` the complex amplitude. `ω` comes from lagged products of the
//! samples (lags 1, then 6, then 36, each refining the last: a longer lag
//! is more precise but ambiguous on its own), `c` by least squares given
//! `ω`. The residual's magnitudes replace the reply's in the sample buffer.
//!
//! Pure: samples in, magnitudes out. Floating point, but it runs once per
//! accepted reply that overlaps something, not per sample.

use crate::iq::SampleFormat;

/// Standard deviation of the receiver's (assumed Gaussian) impulse
/// response, in samples: 1/(2√π), which makes its noise-equivalent
/// bandwidth equal to the sample rate, as a dongle's decimation filter
/// roughly does. Edges are all the template gets from it; a wrong width
/// leaves a little of each edge behind, never a whole pulse.
pub const SIGMA_SAMPLES: f32 = 0.282_094_8;

/// Edge table resolution: steps per sample.
const STEPS: usize = 64;
/// The edge table spans ±`REACH` samples (7 σ: beyond it an edge is flat).
const REACH: usize = 2;

/// Chips (half-bits) before the data: the 8 µs preamble.
const PREAMBLE_CHIPS: usize = 16;

/// Converts the kept raw IQ bytes to complex samples in magnitude units
/// (those of [`crate::iq::MagnitudeConverter`]).
#[derive(Clone, Copy, Debug)]
pub struct IqScale {
    format: SampleFormat,
    per_lsb: f32,
}

impl IqScale {
    /// The scale of `format`.
    pub fn new(format: SampleFormat) -> Self {
        let full = match format {
            SampleFormat::Cu8 => 127.5,
            SampleFormat::Cs16 => 32768.0,
        };
        Self {
            format,
            per_lsb: (65535.0 / (full * std::f64::consts::SQRT_2)) as f32,
        }
    }

    /// Raw bytes per sample.
    pub fn bytes_per_sample(&self) -> usize {
        self.format.bytes_per_sample()
    }

    /// Sample `k` of `raw` (zero past its end: the padding of `finish`).
    #[inline]
    fn at(&self, raw: &[u8], k: usize) -> (f32, f32) {
        let bps = self.format.bytes_per_sample();
        let Some(b) = raw.get(k * bps..(k + 1) * bps) else {
            return (0.0, 0.0);
        };
        let (i, q) = match self.format {
            SampleFormat::Cu8 => (f32::from(b[0]) - 127.5, f32::from(b[1]) - 127.5),
            SampleFormat::Cs16 => (
                f32::from(i16::from_le_bytes([b[0], b[1]])),
                f32::from(i16::from_le_bytes([b[2], b[3]])),
            ),
        };
        (i * self.per_lsb, q * self.per_lsb)
    }
}

/// The reply to take away: where it starts and what it said.
#[derive(Clone, Copy)]
pub struct Reply<'a> {
    /// Start of the preamble's first chip, in samples from `mag[0]`.
    pub start: f32,
    /// Samples per chip (1.2 at 2.4 MS/s, 1.0 at 2.0 MS/s).
    pub chip: f32,
    /// The frame's bytes (7 or 14).
    pub bytes: &'a [u8],
}

impl Reply<'_> {
    fn chips(&self) -> usize {
        PREAMBLE_CHIPS + 16 * self.bytes.len()
    }

    /// Whether chip `c` holds a pulse: preamble chips 0, 2, 7 and 9; data
    /// bit `i` in chip 16 + 2i for a 1, 17 + 2i for a 0.
    fn on(&self, c: usize) -> bool {
        if c < PREAMBLE_CHIPS {
            return matches!(c, 0 | 2 | 7 | 9);
        }
        let i = (c - PREAMBLE_CHIPS) / 2;
        let Some(&byte) = self.bytes.get(i / 8) else {
            return false;
        };
        let one = byte >> (7 - i % 8) & 1 == 1;
        one == (c - PREAMBLE_CHIPS).is_multiple_of(2)
    }

    /// Buffer indices the reply's energy reaches: `[lo, hi)`.
    pub fn extent(&self) -> (usize, usize) {
        let lo = (self.start - REACH as f32).floor().max(0.0) as usize;
        let hi = (self.start + self.chips() as f32 * self.chip + REACH as f32).ceil() as usize + 1;
        (lo, hi)
    }
}

/// Reusable state: the edge table and scratch for one reply's samples.
pub struct Canceller {
    /// Φ(u / σ) for u = -REACH..=REACH samples, in 1/STEPS steps.
    edge: Vec<f32>,
    x: Vec<(f32, f32)>,
    e: Vec<f32>,
    y: Vec<(f32, f32)>,
    runs: Vec<(f32, f32)>,
}

impl Default for Canceller {
    fn default() -> Self {
        Self::new()
    }
}

impl Canceller {
    /// A canceller with its edge table built.
    pub fn new() -> Self {
        let n = 2 * REACH * STEPS + 1;
        let edge = (0..n)
            .map(|i| {
                let u = (i as f64 - (REACH * STEPS) as f64) / STEPS as f64;
                normal_cdf(u / f64::from(SIGMA_SAMPLES)) as f32
            })
            .collect();
        Self {
            edge,
            x: Vec::new(),
            e: Vec::new(),
            y: Vec::new(),
            runs: Vec::new(),
        }
    }

    /// The filtered unit step at `u` samples after the edge.
    #[inline]
    fn step(&self, u: f32) -> f32 {
        // Rounded to the nearest table point; `as` saturates below 0.
        let i = ((u + REACH as f32) * STEPS as f32 + 0.5) as usize;
        self.edge[i.min(self.edge.len() - 1)]
    }

    /// The envelope of `reply` at sample `k`, 0 to 1 (for tests).
    #[cfg(test)]
    fn envelope(&mut self, reply: &Reply<'_>, k: usize) -> f32 {
        let mut e = Vec::new();
        self.find_runs(reply);
        self.fill_envelope(reply.start, &mut e, k + 1);
        e[k]
    }

    /// Fit `reply` to the samples in `raw` and overwrite `mag` over its
    /// extent with the magnitudes of what is left. Returns the fitted
    /// pulse amplitude (magnitude units), 0 if there was nothing to fit.
    ///
    /// The start is refined first: the demodulator knows it to a fifth of
    /// a sample, and a tenth of a sample off leaves a sixth of the reply's
    /// energy behind at its edges (-18 dB; exactly placed, -40 dB).
    pub fn subtract(
        &mut self,
        scale: &IqScale,
        raw: &[u8],
        reply: &Reply<'_>,
        mag: &mut [u16],
    ) -> f32 {
        // The extent of the earliest and the latest start tried.
        let (lo, _) = Reply {
            start: reply.start - MAX_SHIFT,
            ..*reply
        }
        .extent();
        let (_, hi) = Reply {
            start: reply.start + MAX_SHIFT,
            ..*reply
        }
        .extent();
        let hi = hi.min(mag.len());
        if lo >= hi {
            return 0.0;
        }
        let mut x = std::mem::take(&mut self.x);
        let mut e = std::mem::take(&mut self.e);
        let mut y = std::mem::take(&mut self.y);
        x.clear();
        x.extend((lo..hi).map(|k| scale.at(raw, k)));
        let n = x.len();
        self.find_runs(reply);
        let shifted = |d: f32| reply.start + d - lo as f32;
        self.fill_envelope(shifted(0.0), &mut e, n);
        let omega = carrier(&x, &e);
        // Derotated once; each trial start then costs a template and a
        // dot product.
        let mid = n as f32 / 2.0;
        y.clear();
        let mut turn = Phasor::new(omega, -mid);
        y.extend(x.iter().map(|&(a, b)| {
            let (c, s) = turn.next();
            (a * c + b * s, b * c - a * s)
        }));
        // The start is judged on the preamble and the first bits alone:
        // as good as the whole reply, for a fifth of the work.
        let head = n.min(((PREAMBLE_CHIPS + 2 * HEAD_BITS) as f32 * reply.chip) as usize + 4);
        let score = |d: f32, e: &mut Vec<f32>| {
            self.fill_envelope(shifted(d), e, head);
            matched(&y[..head], e).0
        };
        // A grid of starts, then the vertex of the parabola through the
        // best and its neighbours.
        let mut scores = [0.0f32; 2 * SHIFT_STEPS + 1];
        for (i, v) in scores.iter_mut().enumerate() {
            *v = score((i as f32 - SHIFT_STEPS as f32) * SHIFT_STEP, &mut e);
        }
        let best = (0..scores.len())
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .unwrap_or(SHIFT_STEPS);
        let mut shift = (best as f32 - SHIFT_STEPS as f32) * SHIFT_STEP;
        if best > 0 && best + 1 < scores.len() {
            let (l, c, r) = (scores[best - 1], scores[best], scores[best + 1]);
            let den = l - 2.0 * c + r;
            if den < 0.0 {
                shift += (0.5 * (l - r) / den * SHIFT_STEP).clamp(-SHIFT_STEP, SHIFT_STEP);
            }
        }
        self.fill_envelope(shifted(shift), &mut e, n);
        let (_, (cr, ci)) = matched(&y, &e);
        let mut turn = Phasor::new(omega, -mid);
        for (v, &w) in x.iter_mut().zip(&e) {
            let (c, s) = turn.next();
            // c · exp(jθ) · e
            v.0 -= w * (cr * c - ci * s);
            v.1 -= w * (cr * s + ci * c);
        }
        for (m, &(i, q)) in mag[lo..hi].iter_mut().zip(&x) {
            *m = i.hypot(q).round().min(65535.0) as u16;
        }
        (self.x, self.e, self.y) = (x, e, y);
        cr.hypot(ci)
    }

    /// Whether something else shares the span of `reply` in `mag`: in the
    /// samples where the reply itself is quiet, some [`QUIET_WINDOW`] in a
    /// row average over [`OVERLAP_RATIO_16THS`] of `p25`, the noise's lower
    /// quartile, plus [`SIGNAL_SHARE_16THS`] of `signal`, the reply's mean
    /// pulse magnitude. (Rayleigh noise averages 1.7 times its lower quartile; 12
    /// samples of it average over 4 times it at 5.7 standard deviations,
    /// while a reply at 10 dB puts 8 times it in the half of them its
    /// pulses fill.) Cheap next to [`Canceller::subtract`], and most
    /// replies overlap nothing.
    pub fn overlapped(&self, reply: &Reply<'_>, mag: &[u16], p25: u16, signal: u16) -> bool {
        let per_sample =
            u32::from(p25) * OVERLAP_RATIO_16THS / 16 + u32::from(signal) * SIGNAL_SHARE_16THS / 16;
        let limit = per_sample * QUIET_WINDOW as u32;
        let mut window = [0u32; QUIET_WINDOW];
        let (mut sum, mut count) = (0u32, 0usize);
        let mut quiet = |first: usize, end: usize| {
            // The samples of the gap between chips `first` and `end` that
            // the pulses either side do not reach (the filter's edge is
            // down to 2 % at 2.1 σ).
            let lo = (reply.start + first as f32 * reply.chip + QUIET_MARGIN).max(0.0) as usize + 1;
            let hi = ((reply.start + end as f32 * reply.chip - QUIET_MARGIN).max(0.0) as usize + 1)
                .min(mag.len());
            for &m in mag.get(lo..hi).unwrap_or_default() {
                let slot = &mut window[count % QUIET_WINDOW];
                sum = sum + u32::from(m) - *slot;
                *slot = u32::from(m);
                count += 1;
                if count >= QUIET_WINDOW && sum > limit {
                    return true;
                }
            }
            false
        };
        // The preamble's two long gaps, then every data gap of a whole
        // microsecond: a 1 (pulse, gap) followed by a 0 (gap, pulse). The
        // half-microsecond gaps leave no sample quiet.
        if quiet(3, 7) || quiet(10, 16) {
            return true;
        }
        let bits = reply.bytes.len() * 8;
        let v = reply
            .bytes
            .iter()
            .fold(0u128, |v, &b| v << 8 | u128::from(b));
        // Bit i (from the first) is bit `bits - 1 - i` of v: a 1 at i with
        // a 0 at i + 1 is a 1 in v with a 0 just below it.
        let mut ten = v & !(v << 1) & !1;
        while ten != 0 {
            let j = ten.trailing_zeros() as usize;
            ten &= ten - 1;
            let i = bits - 1 - j;
            if quiet(PREAMBLE_CHIPS + 2 * i + 1, PREAMBLE_CHIPS + 2 * i + 3) {
                return true;
            }
        }
        false
    }

    /// The runs of pulsed chips of `reply` into `self.runs`, as (rise,
    /// fall) in samples from its start: each run is one pulse.
    fn find_runs(&mut self, reply: &Reply<'_>) {
        self.runs.clear();
        let mut c = 0;
        let chips = reply.chips();
        while c < chips {
            if !reply.on(c) {
                c += 1;
                continue;
            }
            let first = c;
            while c < chips && reply.on(c) {
                c += 1;
            }
            self.runs
                .push((first as f32 * reply.chip, c as f32 * reply.chip));
        }
    }

    /// `e[k]` = the envelope at sample `k < n` of the pulses in
    /// `self.runs` starting at `start`: a step up and a step down each,
    /// which the filter rounds over under a sample either side.
    fn fill_envelope(&self, start: f32, e: &mut Vec<f32>, n: usize) {
        e.clear();
        e.resize(n, 0.0);
        for &(rise, fall) in &self.runs {
            let (up, down) = (start + rise, start + fall);
            if up - 1.0 >= n as f32 {
                break;
            }
            // Truncation rounds towards zero: clamped at 0 first, it floors.
            let lo = (up - 1.0).max(0.0) as usize;
            let hi = ((down + 1.0).max(0.0) as usize + 1).min(n);
            for (k, v) in e.iter_mut().enumerate().take(hi).skip(lo) {
                let t = k as f32;
                let on = if t - up >= 1.0 {
                    1.0
                } else {
                    self.step(t - up)
                };
                let off = if t - down <= -1.0 {
                    0.0
                } else {
                    self.step(t - down)
                };
                *v += on - off;
            }
        }
    }
}

/// exp(jωk) for k = k0, k0 + 1, ...: one complex multiply a step, in f64
/// so that a few hundred steps drift by nothing that matters.
struct Phasor {
    re: f64,
    im: f64,
    step_re: f64,
    step_im: f64,
}

impl Phasor {
    fn new(omega: f32, k0: f32) -> Self {
        let (im, re) = (f64::from(omega) * f64::from(k0)).sin_cos();
        let (step_im, step_re) = f64::from(omega).sin_cos();
        Self {
            re,
            im,
            step_re,
            step_im,
        }
    }

    /// (cos, sin) of the current angle, then advance.
    #[inline]
    fn next(&mut self) -> (f32, f32) {
        let out = (self.re as f32, self.im as f32);
        (self.re, self.im) = (
            self.re * self.step_re - self.im * self.step_im,
            self.re * self.step_im + self.im * self.step_re,
        );
        out
    }
}

/// Quiet samples in a row that [`Canceller::overlapped`] averages.
const QUIET_WINDOW: usize = 12;
/// Their mean over the noise's lower quartile that means a second reply,
/// in sixteenths.
const OVERLAP_RATIO_16THS: u32 = 64;
/// Plus this share of the reply's own pulse magnitude, in sixteenths: a
/// real receiver's filter leaves more of a strong pulse past its edge
/// than the model's (and a reply 18 dB under another is not read even
/// once that one is cancelled).
const SIGNAL_SHARE_16THS: u32 = 3;
/// Samples from a pulse's edge to the first sample it leaves quiet.
const QUIET_MARGIN: f32 = 0.6;
/// Bits after the preamble that the start is fitted on.
const HEAD_BITS: usize = 24;
/// Trial starts each side of the demodulator's estimate.
const SHIFT_STEPS: usize = 2;
/// Between trial starts, samples.
const SHIFT_STEP: f32 = 0.1;
/// The furthest start the fit may settle on.
const MAX_SHIFT: f32 = (SHIFT_STEPS + 1) as f32 * SHIFT_STEP;

/// The carrier offset (radians per sample) of samples `x` with envelope
/// `e`, from lagged products of the samples where the envelope is high at
/// both ends: each lag's phase is ωL, measured after taking out the
/// estimate so far.
fn carrier(x: &[(f32, f32)], e: &[f32]) -> f32 {
    let n = x.len();
    let mut omega = 0.0f32;
    for lag in [1usize, 6, 36] {
        if lag >= n {
            break;
        }
        let (mut re, mut im) = (0.0f32, 0.0f32);
        for k in 0..n - lag {
            let w = e[k] * e[k + lag];
            if w < 0.25 {
                continue;
            }
            let (a, b) = (x[k + lag], x[k]);
            // a · conj(b)
            re += w * (a.0 * b.0 + a.1 * b.1);
            im += w * (a.1 * b.0 - a.0 * b.1);
        }
        if re == 0.0 && im == 0.0 {
            break;
        }
        let (s, c) = (omega * lag as f32).sin_cos();
        // Derotate by the current estimate: (re + j·im) · exp(-jωL).
        let (dr, di) = (re * c + im * s, im * c - re * s);
        omega += di.atan2(dr) / lag as f32;
    }
    omega
}

/// The least-squares amplitude of envelope `e` in derotated samples `y`,
/// and how much of their energy it explains (|Σ e·y|² / Σ e²).
fn matched(y: &[(f32, f32)], e: &[f32]) -> (f32, (f32, f32)) {
    let (mut cr, mut ci, mut ee) = (0.0f32, 0.0f32, 0.0f32);
    for (&(a, b), &w) in y.iter().zip(e) {
        cr += w * a;
        ci += w * b;
        ee += w * w;
    }
    if ee == 0.0 {
        return (0.0, (0.0, 0.0));
    }
    ((cr * cr + ci * ci) / ee, (cr / ee, ci / ee))
}

/// Φ, the standard normal distribution function (Abramowitz & Stegun
/// 7.1.26 for erf: error under 1.5·10⁻⁷, far below a sample's LSB).
fn normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    if z >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edge_table_is_a_distribution_function() {
        let c = Canceller::new();
        assert!(c.step(-2.5) < 1e-6 && (c.step(2.5) - 1.0).abs() < 1e-6);
        assert!((c.step(0.0) - 0.5).abs() < 1e-6);
        assert!((normal_cdf(1.0) - 0.841_344_746).abs() < 1e-6);
        assert!(c.edge.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn a_merged_pulse_settles_at_one() {
        // Preamble chips 7 and 9 are apart; a data 0 followed by a 1 puts
        // pulses in chips 17 and 18, merged into one 1 µs pulse.
        let bytes = [0b0100_0000u8; 7];
        let r = Reply {
            start: 3.3,
            chip: 1.2,
            bytes: &bytes,
        };
        assert!(r.on(0) && !r.on(1) && r.on(17) && r.on(18) && !r.on(16));
        let mut c = Canceller::new();
        let middle = (r.start + 18.0 * r.chip).round() as usize;
        assert!((c.envelope(&r, middle) - 1.0).abs() < 1e-3);
        let gap = (r.start + 1.5 * r.chip).round() as usize;
        assert!(c.envelope(&r, gap) < 0.05);
    }
}

#[cfg(test)]
mod fit {
    use super::*;
    use crate::sim::signal::{quantise, Cf32, PulseShaper, Reply as SimReply};

    /// Energy left after cancelling a lone, noiseless reply rendered by
    /// the simulator with its leading edge at 20.37 samples, told to the
    /// canceller `offset` samples off; dB relative to the reply.
    fn residual_db(offset: f32, freq: f64, rate: u32) -> f64 {
        let shaper = PulseShaper::new(rate);
        let bytes = [
            0x8d, 0x40, 0x62, 0x1d, 0x58, 0xc3, 0x82, 0xd6, 0x90, 0xc8, 0xac, 0x28, 0x63, 0xa7,
        ];
        let mut buf = vec![Cf32::default(); 400];
        let lead = 20.37;
        let reply = SimReply {
            bytes: &bytes,
            lead,
            amplitude: 50.0,
            phase: 1.0,
            freq,
        };
        shaper.add(&reply, &mut buf, 0);
        let mut raw = vec![0u8; 400 * 4];
        quantise(SampleFormat::Cs16, &buf, &mut raw);
        let scale = IqScale::new(SampleFormat::Cs16);
        let energy = |m: &[u16]| m.iter().map(|&m| f64::from(m).powi(2)).sum::<f64>();
        let mut mag: Vec<u16> = (0..400)
            .map(|k| {
                let (i, q) = scale.at(&raw, k);
                i.hypot(q) as u16
            })
            .collect();
        let before = energy(&mag);
        let told = Reply {
            start: lead as f32 + offset,
            chip: rate as f32 * 0.5e-6,
            bytes: &bytes,
        };
        Canceller::new().subtract(&scale, &raw, &told, &mut mag);
        10.0 * (energy(&mag) / before).log10()
    }

    #[test]
    fn a_lone_reply_cancels_wherever_its_start_and_carrier() {
        // The demodulator's start is good to about a tenth of a sample;
        // carriers within ±100 kHz are ±0.04 cycles a sample at 2.4 MS/s.
        for rate in [2_400_000, 2_000_000] {
            for freq in [-0.04, 0.0, 0.013, 0.04] {
                for offset in [-0.2f32, -0.1, -0.05, 0.0, 0.05, 0.1, 0.2] {
                    let db = residual_db(offset, freq, rate);
                    assert!(
                        db < -30.0,
                        "{rate} Hz, {freq} cycles/sample, {offset} samples off: {db:.1} dB left"
                    );
                }
            }
        }
    }

    #[test]
    fn a_reply_told_far_off_is_not_cancelled_well() {
        // The same measure must be able to fail: half a sample is beyond
        // the search.
        assert!(residual_db(0.6, 0.0, 2_400_000) > -25.0);
    }
}
