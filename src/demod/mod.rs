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
//!    preamble pulses (whatever the phase) with those that must be quiet
//!    and with the noise floor (the lower quartile of the block's
//!    magnitudes), eight positions at a time; inside an accepted reply only
//!    a clearly stronger preamble passes.
//! 2. Survivors are sliced at each phase; a hypothesis with a plausible
//!    preamble whose DF is one we accept is sliced in full and judged by the
//!    [`Acceptor`] (CRC, guarded repair, address confirmation).
//! 3. The best verdict wins (clean > repaired; ties go to the clearer bit
//!    decisions). An accepted frame moves the search past its preamble only,
//!    so a stronger reply that starts inside it is still found.
//!
//! The kernel keeps a tail of samples across calls, so the same input split
//! at any points yields the same frames.

use crate::iq::MagnitudeConverter;
use crate::modes::accept::{Acceptor, Checked, Received, Verdict};
use crate::modes::{df_bits, df_of};

use cancel::{Canceller, IqScale, Reply};
use kernel::{bit_diffs, preamble_score, BitPlan, PreamblePlan, BITS};

mod cancel;
mod kernel;
mod noise;

use noise::{NoiseFloor, NOISE_BLOCK};

/// Supported sample rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rate {
    /// 2.0 MS/s: two samples per bit.
    Msps2_0,
    /// 2.4 MS/s: 2.4 samples per bit.
    Msps2_4,
}

impl Rate {
    /// The rate of `hz` samples per second, if the demodulator has kernels for it.
    pub fn from_hz(hz: u32) -> Option<Rate> {
        match hz {
            2_000_000 => Some(Rate::Msps2_0),
            2_400_000 => Some(Rate::Msps2_4),
            _ => None,
        }
    }
    /// Samples per second.
    pub const fn hz(self) -> u32 {
        match self {
            Rate::Msps2_0 => 2_000_000,
            Rate::Msps2_4 => 2_400_000,
        }
    }

    /// Ticks of a 12 MHz clock (the Beast timestamp's) per sample: exact
    /// at both rates.
    pub const fn ticks_12mhz(self) -> u64 {
        (12_000_000 / self.hz()) as u64
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
    /// Sum of the samples that hold preamble pulses whatever the phase.
    #[inline(always)]
    fn pulse_sum(self, w: &[u16]) -> u32 {
        let m = |i: usize| u32::from(w[i]);
        match self {
            Rate::Msps2_0 => m(0) + m(1) + m(2) + m(3) + m(7) + m(8) + m(9) + m(10),
            Rate::Msps2_4 => m(0) + m(1) + m(2) + m(3) + m(4) + m(8) + m(9) + m(10) + m(11) + m(12),
        }
    }

    /// The least [`Rate::pulse_sum`] a preamble may have over noise whose
    /// lower quartile is `p25`: [`FLOOR_RATIO_16THS`] of it per sample.
    fn pulse_floor(self, p25: u16) -> u32 {
        let n = match self {
            Rate::Msps2_0 => 8,
            Rate::Msps2_4 => 10,
        };
        u32::from(p25) * n * FLOOR_RATIO_16THS / 16
    }

    /// The quiet samples' sum `q` scaled so that the pulse samples' sum
    /// must exceed it: their means must differ by 11/8, i.e. the pulses
    /// stand 2.8 dB above the quiet level. Shifts and adds, so that it
    /// vectorizes in 16 bits (it cannot overflow for 12-bit magnitudes:
    /// checked by a unit test).
    #[inline(always)]
    fn mean_ratio(self, q: u16) -> u16 {
        match self {
            // Eight pulse samples, eight quiet: 11/8.
            Rate::Msps2_0 => q + (q >> 2) + (q >> 3),
            // Ten pulse samples, nine quiet: 11/8 · 10/9 = 1.528 ≈ 1 + 1/2 + 1/32.
            Rate::Msps2_4 => q + (q >> 1) + (q >> 5),
        }
    }

    /// The part of the preamble screen that needs order statistics, run on
    /// positions [`prefilter`] passed: `w` holds the 20 samples from the
    /// candidate start.
    ///
    /// The third and fourth pulses (after the 2.5 µs gap) must each put a
    /// sample clearly above the quiet level. Inside a reply's own data the
    /// "quiet" samples carry PPM pulses, so this rejects most positions
    /// there. The quiet level leaves out its two largest samples, where an
    /// overlapping reply's pulses land. The first two pulses are not
    /// required individually: overlaps and clipping damage them often
    /// enough that the reference decoders find frames without them.
    #[inline(always)]
    fn shape(self, w: &[u16]) -> bool {
        let m = |i: usize| u32::from(w[i]);
        match self {
            Rate::Msps2_0 => {
                let q = [m(4), m(5), m(6), m(11), m(12), m(13), m(14), m(15)];
                let t = trimmed(&q) * PULSE_RATIO_16THS / ((q.len() as u32 - 2) * 16);
                m(7).max(m(8)) > t && m(9).max(m(10)) > t
            }
            Rate::Msps2_4 => {
                let q = [m(5), m(6), m(7), m(13), m(14), m(15), m(16), m(17), m(18)];
                let t = trimmed(&q) * PULSE_RATIO_16THS / ((q.len() as u32 - 2) * 16);
                m(8).max(m(9)).max(m(10)) > t && m(10).max(m(11)).max(m(12)) > t
            }
        }
    }
}

/// Positions screened per call of [`prefilter`].
const CHUNK: usize = 256;
/// Samples [`prefilter`] reads: the last position's preamble and first
/// 8 µs of data, and some slack.
const CHUNK_SPAN: usize = CHUNK + 40;

/// The screen's vectorized tests, for the [`CHUNK`] positions starting at
/// `m[0]` at once. A position passes (`ok[i]` = 1) when
///
/// - the samples that must hold preamble pulses whatever the phase sum
///   above `floor` (the noise, see [`Rate::pulse_floor`]),
/// - their mean beats the mean of the samples that must be quiet by
///   [`Rate::mean_ratio`], and
/// - the first 8 µs of data hold no gap no PPM reply can have: every bit
///   holds a pulse in one of its halves, so a reply's data is never quiet
///   for more than 1 µs (a 1 followed by a 0). Four samples at 2.4 MS/s
///   (1.67 µs) or three at 2.0 MS/s (1.5 µs) all below half the mean
///   pulse sample are a gap: the position is noise or Mode A/C fruit,
///   which fill busy channels.
///
/// This runs at every sample, so it works on 12-bit magnitudes (a sum of
/// ten still fits 16 bits), builds window sums, maxima and minima from
/// running ones, and uses fixed-size loops the compiler vectorizes. On
/// 32-bit ARM, without vector units, it would cost about 150 instructions
/// a sample: [`prefilter_lazy`] runs there instead, unless the CPU has NEON (see
/// [`Demodulator::scan_neon`]).
#[inline(always)]
fn prefilter(rate: Rate, m: &[u16], floor: u32, ok: &mut [u8; CHUNK], w: &mut Windows) {
    let m: &[u16; CHUNK_SPAN] = m[..CHUNK_SPAN]
        .try_into()
        .expect("caller buffers CHUNK_SPAN samples");
    let floor = (floor >> 4).min(u32::from(u16::MAX)) as u16;
    // Where the windows live is a per-target choice, measured in
    // instructions: 32-bit ARM copied `from_fn` locals with memcpy (a fifth
    // of the NEON build's instructions) and x86_64 does as well or 0.4 %
    // better with the caller's scratch filled in place; aarch64 does 8 %
    // better with stack locals. The body is the same for both.
    const LOCALS: bool = cfg!(target_arch = "aarch64");
    macro_rules! window {
        ($name:ident, |$j:ident| $e:expr) => {
            let local;
            let $name = if LOCALS {
                local = std::array::from_fn(|$j| $e);
                &local
            } else {
                fill(&mut w.$name, |$j| $e);
                &w.$name
            };
        };
    }
    // $lo[j]: the least of $hi[j..j + 16], by doubling windows.
    macro_rules! quietest_of_16 {
        ($hi:ident => $lo:ident) => {
            window!(lo2, |j| $hi[j].min($hi[j + 1]));
            window!(lo4, |j| lo2[j].min(lo2[j + 2]));
            window!(lo8, |j| lo4[j].min(lo4[j + 4]));
            window!($lo, |j| lo8[j].min(lo8[j + 8]));
        };
    }
    window!(x, |j| m[j] >> 4);
    // w<n>[j]: the sum of x[j..j + n].
    window!(w2, |j| x[j] + x[j + 1]);
    window!(w3, |j| w2[j] + x[j + 2]);
    // Maxima and minima in i16, which SSE2 has instructions for (12-bit
    // magnitudes fit). hi[j]: the loudest sample of the gap-length run
    // from j; lo[j]: the quietest of the 16 runs from j.
    window!(xs, |j| x[j] as i16);
    window!(m2, |j| xs[j].max(xs[j + 1]));
    match rate {
        // Pulses at [φ,φ+1), [2+φ,3+φ), [7+φ,8+φ), [9+φ,10+φ) samples
        // for φ in [0,1): samples 0-3 and 7-10 hold them; 4-6 and 11-15
        // are quiet for every φ. Data from sample 16; gaps of 3 samples.
        Rate::Msps2_0 => {
            // pulse: w4, quiet: w5.
            window!(pulse, |j| w2[j] + w2[j + 2]);
            window!(quiet, |j| pulse[j] + x[j + 4]);
            window!(hi, |j| m2[j].max(xs[j + 2]));
            quietest_of_16!(hi => lo);
            for (i, ok) in ok.iter_mut().enumerate() {
                let p = pulse[i] + pulse[i + 7];
                let q = w3[i + 4] + quiet[i + 11];
                // No run quieter than half the mean pulse sample (p / 16).
                let no_gap = lo[i + 16] as u16 * 8 >= p >> 1;
                *ok = u8::from((p > floor) & (p > rate.mean_ratio(q)) & no_gap);
            }
        }
        // Pulses 1.2 samples long at 0, 2.4, 8.4, 10.8 (+φ): samples 0-4
        // and 8-12 hold them; 5-7 and 13-18 are quiet. Data from sample
        // 19.2 (+φ): runs from sample 20; gaps of 4 samples.
        Rate::Msps2_4 => {
            // pulse: w5 (one longer than needed), quiet: w6.
            window!(pulse, |j| w3[j] + w2[j + 3]);
            window!(quiet, |j| w3[j] + w3[j + 3]);
            window!(hi, |j| m2[j].max(m2[j + 2]));
            quietest_of_16!(hi => lo);
            for (i, ok) in ok.iter_mut().enumerate() {
                let p = pulse[i] + pulse[i + 8];
                let q = w3[i + 5] + quiet[i + 13];
                // No run quieter than half the mean pulse sample (p / 20).
                let no_gap = lo[i + 20] as u16 * 10 >= p >> 1;
                *ok = u8::from((p > floor) & (p > rate.mean_ratio(q)) & no_gap);
            }
        }
    }
}

/// [`prefilter`] compiled for AVX2: sixteen 16-bit lanes instead of eight.
/// Only called where the CPU has AVX2 (see [`Demodulator::new`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn prefilter_avx2(rate: Rate, m: &[u16], floor: u32, ok: &mut [u8; CHUNK], w: &mut Windows) {
    prefilter(rate, m, floor, ok, w);
}

/// `out[j] = f(j)` for every `j`, written in place.
#[inline(always)]
fn fill<T, const N: usize>(out: &mut [T; N], f: impl Fn(usize) -> T) {
    for (j, o) in out.iter_mut().enumerate() {
        *o = f(j);
    }
}

/// [`prefilter`]'s window arrays where they are not stack locals (32-bit
/// ARM), kept from chunk to chunk and overwritten in place. As
/// `std::array::from_fn` locals they were built and then copied: 32-bit ARM
/// called memcpy for each (a fifth of the NEON build's instructions).
struct Windows {
    x: [u16; CHUNK_SPAN],
    w2: [u16; CHUNK_SPAN - 1],
    w3: [u16; CHUNK_SPAN - 2],
    xs: [i16; CHUNK_SPAN],
    m2: [i16; CHUNK_SPAN - 1],
    /// The pulse windows (w4 at 2.0 MS/s, w5 at 2.4).
    pulse: [u16; CHUNK_SPAN - 5],
    /// The second quiet window (w5 at 2.0 MS/s, w6 at 2.4).
    quiet: [u16; CHUNK_SPAN - 5],
    hi: [i16; CHUNK_SPAN - 3],
    lo2: [i16; CHUNK_SPAN - 4],
    lo4: [i16; CHUNK_SPAN - 6],
    lo8: [i16; CHUNK_SPAN - 10],
    lo: [i16; CHUNK_SPAN - 18],
}

impl Windows {
    fn new() -> Self {
        Self {
            x: [0; CHUNK_SPAN],
            w2: [0; CHUNK_SPAN - 1],
            w3: [0; CHUNK_SPAN - 2],
            xs: [0; CHUNK_SPAN],
            m2: [0; CHUNK_SPAN - 1],
            pulse: [0; CHUNK_SPAN - 5],
            quiet: [0; CHUNK_SPAN - 5],
            hi: [0; CHUNK_SPAN - 3],
            lo2: [0; CHUNK_SPAN - 4],
            lo4: [0; CHUNK_SPAN - 6],
            lo8: [0; CHUNK_SPAN - 10],
            lo: [0; CHUNK_SPAN - 18],
        }
    }
}

/// [`prefilter`] for CPUs without vector units (the Pi Zero and Pi 1's
/// ARM1176, and 32-bit builds that cannot assume NEON): the same test,
/// bit for bit, evaluated lazily and cheapest term first. The vector
/// version computes every term at every position, which is cheap eight or
/// sixteen lanes at a time and costs 150-300 instructions a sample one
/// lane at a time.
///
/// Window sums come from one prefix sum of the chunk (two loads each).
/// On a busy sky two positions in three fail the pulse floor there; of the
/// rest, six in seven fail the quiet-mean ratio. The gap check on what is
/// left does not build the running maxima and minima: a gap is a run of
/// `run` consecutive samples below half the mean pulse sample, and every
/// such run inside the checked stretch holds exactly one of the samples
/// `run - 1`, `2 run - 1`, ... from its start, so those few are probed and
/// only a quiet one is looked around.
#[cfg_attr(
    target_arch = "x86_64",
    allow(
        dead_code,
        reason = "used on other targets, and tested against prefilter everywhere"
    )
)]
#[inline(always)]
fn prefilter_lazy(rate: Rate, m: &[u16], floor: u32, ok: &mut [u8; CHUNK], sums: &mut PrefixSums) {
    let m: &[u16; CHUNK_SPAN] = m[..CHUNK_SPAN]
        .try_into()
        .expect("caller buffers CHUNK_SPAN samples");
    // The window layout of `prefilter`, as constants so that every index
    // below is checked at compile time, not per sample.
    match rate {
        Rate::Msps2_0 => lazy_screen::<4, 7, 4, 3, 11, 5, 16, 3, 8>(rate, m, floor, ok, sums),
        Rate::Msps2_4 => lazy_screen::<5, 8, 5, 3, 13, 6, 20, 4, 10>(rate, m, floor, ok, sums),
    }
}

/// [`prefilter_lazy`] for one window layout: pulse windows `LEN` samples
/// long at 0 and `SECOND`; quiet windows `Q1` at `Q1_AT` and `Q2` at
/// `Q2_AT`; gaps of `RUN` samples looked for in the 16 runs from `DATA`,
/// against the pulse sum over `MEAN_DIV` (a pulse sample's mean) halved.
#[inline(always)]
#[allow(clippy::too_many_arguments, reason = "const generics, not arguments")]
fn lazy_screen<
    const LEN: usize,
    const SECOND: usize,
    const Q1_AT: usize,
    const Q1: usize,
    const Q2_AT: usize,
    const Q2: usize,
    const DATA: usize,
    const RUN: usize,
    const MEAN_DIV: u32,
>(
    rate: Rate,
    m: &[u16; CHUNK_SPAN],
    floor: u32,
    ok: &mut [u8; CHUNK],
    c: &mut PrefixSums,
) {
    // The vector version compares in u16: the same floor, clamped alike.
    let floor = (floor >> 4).min(u32::from(u16::MAX));
    // c[j]: the sum of the screen's 12-bit samples before j. Sums of up to
    // ten 12-bit samples are compared, as in u16 in the vector version,
    // without overflow in either.
    c[0] = 0;
    let mut acc = 0u32;
    // Two samples a step: one loop test per pair (a seventh of the loop).
    for (cj, mj) in c[1..].chunks_exact_mut(2).zip(m.chunks_exact(2)) {
        acc += u32::from(mj[0] >> 4);
        cj[0] = acc;
        acc += u32::from(mj[1] >> 4);
        cj[1] = acc;
    }
    let c = &*c;
    // The sums' tests first, in a loop of their own: with the gap check
    // inside it, the ARM1176's 13 registers ran out and every position
    // paid for spilled loop counters. Two positions at a time: windows
    // one sample longer hold both positions' pulse windows, so where their
    // sum is under the floor neither position passes (on a busy sky 64 %
    // of pairs; only 2 % of pairs pass that bound and fail both exact
    // sums). Each pair reads its sums through one fixed-size window of
    // `c`, so that every load is a constant offset from one pointer, and
    // writes only the flags that pass (the rest were cleared at once).
    const REACH: usize = 24;
    const {
        assert!(SECOND + LEN + 2 <= REACH);
        assert!(Q1_AT + Q1 + 2 <= REACH && Q2_AT + Q2 + 2 <= REACH);
        assert!(CHUNK - 2 + REACH <= CHUNK_SPAN + 1);
    };
    ok.fill(0);
    for pair in 0..CHUNK / 2 {
        let i = 2 * pair;
        let w: &[u32; REACH] = c[i..i + REACH].try_into().expect("REACH sums");
        let sum = |from: usize, n: usize| w[from + n] - w[from];
        if sum(0, LEN + 1) + sum(SECOND, LEN + 1) <= floor {
            continue;
        }
        for k in 0..2 {
            let p = sum(k, LEN) + sum(k + SECOND, LEN);
            if p > floor {
                let q = sum(k + Q1_AT, Q1) + sum(k + Q2_AT, Q2);
                ok[i + k] = u8::from(p > u32::from(rate.mean_ratio(q as u16)));
            }
        }
    }
    let sum = |from: usize, n: usize| c[from + n] - c[from];
    // The stretch the gap check covers: 16 runs from DATA.
    const { assert!(CHUNK - 1 + DATA + 15 + RUN <= CHUNK_SPAN) };
    let x = |j: usize| u32::from(m[j] >> 4);
    // Whether the data after position i holds a gap: a run of RUN samples
    // quiet, i.e. below half the mean pulse sample (p / MEAN_DIV / 2),
    // which the vector version tests as `lo * MEAN_DIV >= p >> 1`.
    let gap_after = |i: usize| {
        let half = (sum(i, LEN) + sum(i + SECOND, LEN)) >> 1;
        let quiet = |j: usize| x(j) * MEAN_DIV < half;
        let (lo, hi) = (i + DATA, i + DATA + 15 + RUN);
        let mut k = lo + RUN - 1;
        while k < hi {
            if quiet(k) {
                // The quiet stretch around the probe, far enough to decide.
                let mut a = k;
                while a > lo && k - a < RUN - 1 && quiet(a - 1) {
                    a -= 1;
                }
                let mut b = k;
                while b + 1 < hi && b + 1 - a < RUN && quiet(b + 1) {
                    b += 1;
                }
                if b + 1 - a >= RUN {
                    return true;
                }
            }
            k += RUN;
        }
        false
    };
    // Eight flags at a time: most are 0.
    for word_at in (0..CHUNK).step_by(8) {
        let mut word = u64::from_le_bytes(ok[word_at..word_at + 8].try_into().expect("8 flags"));
        while word != 0 {
            let i = word_at + (word.trailing_zeros() / 8) as usize;
            word &= word - 1;
            if gap_after(i) {
                ok[i] = 0;
            }
        }
    }
}

/// [`prefilter_lazy`]'s scratch: a chunk's prefix sums, kept by the caller
/// so that they are not zeroed for every chunk.
type PrefixSums = [u32; CHUNK_SPAN + 1];

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
fn slice_bytes<const VECTOR: bool>(
    m: &[u16],
    plan: &BitPlan,
    range: std::ops::Range<usize>,
    bytes: &mut [u8; 14],
    margins: &mut [u32; 112],
    feedback: Option<u32>,
    prev_one: &mut bool,
) {
    let mut diffs = [0i32; BITS];
    bit_diffs::<VECTOR>(m, plan, range.start * 8..range.end * 8, &mut diffs);
    let q = feedback.map(|q| q as i32);
    for i in range {
        let mut b = 0u32;
        for j in 0..8 {
            let bit = i * 8 + j;
            // First half minus second half, shifted by the feedback.
            let x = match q {
                None => diffs[bit],
                Some(q) if *prev_one => diffs[bit] + q,
                Some(q) => diffs[bit] - q,
            };
            let one = x > 0;
            margins[bit] = x.unsigned_abs();
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
    // Branch-free: which sample is loudest is noise, and a mispredicted
    // branch per sample cost more than the compares.
    let (mut a, mut b, mut sum) = (0, 0, 0);
    for &x in q {
        sum += x;
        b = b.max(a.min(x));
        a = a.max(x);
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
    /// Per phase: the bit decisions and the preamble score as dot products.
    bit_plans: Vec<BitPlan>,
    preamble_plans: Vec<PreamblePlan>,
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
    /// The last accepted reply: absolute sample where its data ends, and
    /// the screen's pulse sum a preamble inside it must beat.
    inside: Option<(u64, u32)>,
    /// Noise level per block of samples.
    noise: NoiseFloor,
    /// The raw IQ bytes behind `buf`, sample for sample, when the input
    /// came through [`Demodulator::push_iq`]; empty otherwise.
    raw: Vec<u8>,
    /// How to read `raw`; `None` when there is no IQ to cancel with.
    iq: Option<IqScale>,
    canceller: Canceller,
    /// Absolute positions of recent candidates that read as nothing (or
    /// held): a reply whose data an accepted one overlapped is looked for
    /// there again once that one is cancelled. `u64::MAX` = empty.
    failed: [u64; FAILED],
    failed_next: usize,
    /// The last replies accepted (bytes, sample): where cancellation left a
    /// little of one, or a second look starts near one, a neighbouring
    /// position may read it again.
    recent: [([u8; 14], u64); RECENT],
    recent_next: usize,
    /// Set by [`Demodulator::examine`] when it changed the samples: the
    /// screen's verdicts for the rest of the chunk are stale.
    rescreen: bool,
    /// The CPU has AVX2: [`prefilter_avx2`] may run.
    #[cfg(target_arch = "x86_64")]
    avx2: bool,
    /// The CPU has NEON: [`Demodulator::scan_neon`] runs.
    #[cfg(all(target_arch = "arm", feature = "arm-neon"))]
    neon: bool,
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
/// Screen: the mean pulse sample over the noise floor's lower quartile, in
/// sixteenths. Rayleigh noise puts its median at 1.55 times its lower
/// quartile.
const FLOOR_RATIO_16THS: u32 = 40;
/// Inside an accepted reply, a preamble's pulse samples must sum to this
/// many sixteenths of the reply's own to be tried.
const INSIDE_RATIO_16THS: u32 = 24;
/// Phase hypotheses sliced per position, best preamble first (but see
/// `try_position` for 2.0 MS/s).
const MAX_PHASES_SLICED: usize = 2;
/// Screen: the third and fourth pulses must each peak above this many
/// sixteenths of the mean quiet sample.
const PULSE_RATIO_16THS: u32 = 32;
/// Accepted replies remembered against reading one twice.
const RECENT: usize = 8;
/// Failed candidate positions remembered for a second look.
const FAILED: usize = 16;
/// Samples kept before the scan position: a 112-bit reply's length at
/// 2.4 MS/s and some, so that a reply that started before an accepted one
/// can be sliced again after that one is cancelled.
const HISTORY: usize = 320;

impl Demodulator {
    /// A demodulator for `rate` with `fix_bits` (0-2) of error repair for DF11/17/18.
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
            .collect::<Vec<_>>();
        let bit_plans: Vec<BitPlan> = phases.iter().map(BitPlan::new).collect();
        let preamble_plans = phases
            .iter()
            .map(|slots| PreamblePlan::new(slots, PREAMBLE_RATIO_16THS))
            .collect();
        // The kernels read four samples per bit; the span covers them.
        let reach = bit_plans.iter().map(BitPlan::reach).max().unwrap_or(0);
        let span = ((SLOTS * h).div_ceil(d) + 2).max(reach + 1);
        Self {
            rate,
            phases,
            bit_plans,
            preamble_plans,
            span,
            buf: Vec::new(),
            base: 0,
            pos: 0,
            acceptor: Acceptor::new(rate.hz(), fix_bits),
            last_held: None,
            inside: None,
            noise: NoiseFloor::new(),
            raw: Vec::new(),
            iq: None,
            canceller: Canceller::new(),
            failed: [u64::MAX; FAILED],
            failed_next: 0,
            recent: [([0; 14], u64::MAX); RECENT],
            recent_next: 0,
            rescreen: false,
            #[cfg(target_arch = "x86_64")]
            avx2: std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(all(target_arch = "arm", feature = "arm-neon"))]
            neon: std::arch::is_arm_feature_detected!("neon"),
            samples_seen: 0,
        }
    }

    /// The sample rate it was built for.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// The acceptance stage, for its counters.
    pub fn acceptor(&self) -> &Acceptor {
        &self.acceptor
    }

    /// Feed magnitudes; accepted frames are appended to `out`.
    pub fn push(&mut self, mag: &[u16], out: &mut Vec<Received>) {
        self.push_with(|buf| buf.extend_from_slice(mag), out);
    }

    /// Feed magnitudes that `fill` appends to the sample buffer itself,
    /// which saves a copy of every sample; accepted frames are appended to
    /// `out`. `fill` must only append.
    pub fn push_with(&mut self, fill: impl FnOnce(&mut Vec<u16>), out: &mut Vec<Received>) {
        let old = self.buf.len();
        fill(&mut self.buf);
        assert!(self.buf.len() >= old, "push_with: fill may only append");
        self.absorb(old, out);
    }

    /// Feed raw IQ bytes through `conv`, keeping them beside the
    /// magnitudes: overlapped replies are then also looked for under the
    /// ones accepted, with those cancelled (see [`cancel`]). One stream
    /// must come in through one of the push methods only.
    pub fn push_iq(
        &mut self,
        conv: &mut MagnitudeConverter,
        bytes: &[u8],
        out: &mut Vec<Received>,
    ) {
        let old = self.buf.len();
        self.iq.get_or_insert_with(|| IqScale::new(conv.format()));
        conv.convert_keeping(bytes, &mut self.buf, Some(&mut self.raw));
        self.absorb(old, out);
    }

    /// Scan what `buf[old..]` added.
    fn absorb(&mut self, old: usize, out: &mut Vec<Received>) {
        let mag = &self.buf[old..];
        self.samples_seen += mag.len() as u64;
        self.noise.push(mag);
        let limit = self.noise.known_until().saturating_sub(self.base) as usize;
        self.scan(out, limit);
        // Keep the unexamined tail (it may hold the start of a frame), and
        // with IQ the history a second look may need.
        let history = if self.iq.is_some() { HISTORY } else { 0 };
        let drop = self.pos.saturating_sub(history).min(self.buf.len());
        self.buf.drain(..drop);
        if let Some(iq) = &self.iq {
            self.raw
                .drain(..(drop * iq.bytes_per_sample()).min(self.raw.len()));
        }
        self.base += drop as u64;
        self.pos -= drop;
    }

    /// End of input: examine what is left (padded with silence).
    pub fn finish(&mut self, out: &mut Vec<Received>) {
        let real = self.buf.len();
        self.noise.finish();
        self.buf.resize(real + self.span + 20, 0);
        self.scan(out, usize::MAX);
        self.buf.truncate(real.min(self.buf.len()));
        self.base += self.pos.min(real) as u64;
        self.buf.clear();
        self.raw.clear();
        self.pos = 0;
    }

    /// Examine positions up to `limit` (relative to `buf`), as far as the
    /// samples after them are buffered.
    fn scan(&mut self, out: &mut Vec<Received>, limit: usize) {
        #[cfg(all(target_arch = "arm", feature = "arm-neon"))]
        if self.neon {
            // SAFETY: `neon` is set only where the CPU reports NEON.
            return unsafe { self.scan_neon(out, limit) };
        }
        self.scan_with::<{ !cfg!(target_arch = "arm") }>(out, limit);
    }

    /// [`Demodulator::scan`] compiled for NEON on 32-bit ARM, where the
    /// plain build cannot assume it (one armhf binary serves the Pi Zero
    /// too): the vector screen instead of the lazy one, and whatever else
    /// LLVM vectorizes in what it inlines. The same integer code as the
    /// plain build, so the same frames.
    #[cfg(all(target_arch = "arm", feature = "arm-neon"))]
    #[target_feature(enable = "neon")]
    fn scan_neon(&mut self, out: &mut Vec<Received>, limit: usize) {
        self.scan_with::<true>(out, limit);
    }

    /// The scan, with the vector screen ([`prefilter`]) if `VECTOR` (a
    /// target with vector units), else the lazy one ([`prefilter_lazy`]).
    #[inline(always)]
    fn scan_with<const VECTOR: bool>(&mut self, out: &mut Vec<Received>, limit: usize) {
        let need = self.span.max(CHUNK_SPAN);
        if self.buf.len() < need {
            return;
        }
        let end = (self.buf.len() - need).min(limit);
        let mut ok = [0u8; CHUNK];
        let mut margins = [0u32; 112];
        #[cfg(not(target_arch = "x86_64"))]
        let mut sums: PrefixSums = [0; CHUNK_SPAN + 1];
        let mut windows = Windows::new();
        while self.pos < end {
            let s0 = self.pos;
            let abs = self.base + s0 as u64;
            // A chunk never straddles noise blocks, so each position is
            // judged against its own block's floor however input arrives.
            let block_end = (abs / NOISE_BLOCK + 1) * NOISE_BLOCK;
            let n = CHUNK.min(end - s0).min((block_end - abs) as usize);
            let floor = self.rate.pulse_floor(self.noise.at(abs));
            let m = &self.buf[s0..];
            #[cfg(target_arch = "x86_64")]
            if self.avx2 {
                // SAFETY: `avx2` is set only where the CPU reports AVX2.
                unsafe { prefilter_avx2(self.rate, m, floor, &mut ok, &mut windows) }
            } else {
                prefilter(self.rate, m, floor, &mut ok, &mut windows);
            }
            #[cfg(not(target_arch = "x86_64"))]
            if VECTOR {
                prefilter(self.rate, m, floor, &mut ok, &mut windows);
            } else {
                prefilter_lazy(self.rate, m, floor, &mut ok, &mut sums);
            }
            // The first position not yet examined.
            let mut next = s0;
            let mut rescreened = false;
            'words: for (k, word) in ok.chunks_exact(8).enumerate() {
                let mut word = u64::from_le_bytes(word.try_into().expect("8 bytes"));
                while word != 0 {
                    let i = k * 8 + (word.trailing_zeros() / 8) as usize;
                    word &= !(0xff << ((i % 8) * 8));
                    let s = s0 + i;
                    if i >= n || s < next {
                        continue;
                    }
                    if !self.rate.shape(&self.buf[s..s + 20]) {
                        continue;
                    }
                    if let Some((until, min)) = self.inside {
                        if self.base + (s as u64) < until
                            && self.rate.pulse_sum(&self.buf[s..s + 20]) <= min
                        {
                            continue;
                        }
                    }
                    next = s + 1;
                    if let Some(skip_to) = self.examine::<VECTOR>(s, out, &mut margins) {
                        next = skip_to;
                    }
                    if std::mem::take(&mut self.rescreen) {
                        rescreened = true;
                        break 'words;
                    }
                }
            }
            self.pos = if rescreened { next } else { next.max(s0 + n) };
        }
    }

    /// Try position `s` (and `s + 1`) and commit what is found. Returns
    /// where the scan resumes after an accepted reply.
    #[inline(always)]
    fn examine<const VECTOR: bool>(
        &mut self,
        s: usize,
        out: &mut Vec<Received>,
        margins: &mut [u32; 112],
    ) -> Option<usize> {
        let Some((mut frame, mut checked, margin, mut units)) =
            self.try_position::<VECTOR>(s, margins)
        else {
            self.remember_failed(s);
            return None;
        };
        // A repaired reading may decode cleanly from the next sample at an
        // earlier phase; keep whichever reads more clearly.
        if !matches!(checked.verdict, Verdict::Hold | Verdict::Clean) {
            if let Some((f2, c2, m2, u2)) = self.try_position::<VECTOR>(s + 1, margins) {
                if f2.bytes == frame.bytes
                    && (c2.verdict.rank(), m2) > (checked.verdict.rank(), margin)
                {
                    (frame, checked, units) = (f2, c2, u2);
                }
            }
        }
        if self.is_recent(&frame) {
            // What cancellation left of a reply, read again.
            return None;
        }
        if checked.verdict == Verdict::Hold {
            self.remember_failed(s);
            let repeat = self
                .last_held
                .is_some_and(|(b, t)| b == frame.bytes && frame.sample - t <= 4);
            self.last_held = Some((frame.bytes, frame.sample));
            if !repeat {
                self.acceptor.commit(frame, checked, out);
            }
            return None;
        }
        let at = (frame.sample - self.base) as usize;
        let level = self.rate.pulse_sum(&self.buf[at..at + 20]);
        let data_end = frame.sample
            + ((16 + 16 * usize::from(frame.len)) * self.rate.h() / self.rate.d()) as u64;
        // A reply starting inside this one is looked for only if it is
        // clearly stronger: a weaker one has lost its bits under this
        // one's pulses, and positions inside a reply cost time.
        self.inside = Some((data_end, level * INSIDE_RATIO_16THS / 16));
        self.remember_accepted(&frame);
        let (bytes, len, signal) = (frame.bytes, usize::from(frame.len), frame.signal);
        self.acceptor.commit(frame, checked, out);
        if self.iq.is_some() {
            self.cancel_and_look_again::<VECTOR>(units, &bytes[..len], signal, out, margins);
        }
        // Skip the accepted frame's preamble, where shifted hypotheses
        // would decode it again.
        Some(at + 16 * self.rate.h() / self.rate.d())
    }

    /// Whether `frame` was accepted already, a few samples away.
    fn is_recent(&self, frame: &Received) -> bool {
        self.recent
            .iter()
            .any(|(b, t)| *b == frame.bytes && frame.sample.abs_diff(*t) <= 8)
    }

    fn remember_accepted(&mut self, frame: &Received) {
        self.recent[self.recent_next] = (frame.bytes, frame.sample);
        self.recent_next = (self.recent_next + 1) % RECENT;
    }

    /// Remember buffer position `s` as a candidate that read as nothing.
    fn remember_failed(&mut self, s: usize) {
        if self.iq.is_some() {
            self.failed[self.failed_next] = self.base + s as u64;
            self.failed_next = (self.failed_next + 1) % FAILED;
        }
    }

    /// Cancel the reply just accepted (starting `units` into `buf`, see
    /// [`Rate::d`], with pulses of mean magnitude `signal`) and look again where it may have hidden another: at the
    /// candidates before it that read as nothing, and (by asking the scan
    /// to screen again) inside it.
    fn cancel_and_look_again<const VECTOR: bool>(
        &mut self,
        units: usize,
        bytes: &[u8],
        signal: u16,
        out: &mut Vec<Received>,
        margins: &mut [u32; 112],
    ) {
        let Some(scale) = self.iq else { return };
        let d = self.rate.d() as f32;
        let reply = Reply {
            // The demodulator integrates sample k over [k, k + 1), so its
            // slots start half a sample after the instant samples of the
            // pulse model.
            start: units as f32 / d - 0.5,
            chip: self.rate.h() as f32 / d,
            bytes,
        };
        let p25 = self.noise.at(self.base + (units / self.rate.d()) as u64);
        if !self.canceller.overlapped(&reply, &self.buf, p25, signal) {
            return;
        }
        self.canceller
            .subtract(&scale, &self.raw, &reply, &mut self.buf);
        self.rescreen = true;
        // The accepted reply no longer stands over its span: anything
        // inside it is screened as usual.
        self.inside = None;
        let a0 = self.base + (units / self.rate.d()) as u64;
        let reach = (SLOTS * self.rate.h() / self.rate.d()) as u64;
        let mut tried = self.failed;
        tried.sort_unstable();
        // A reply found covers its own preamble's neighbours.
        let mut after = 0;
        for f in tried {
            if f == u64::MAX || f < self.base || f >= a0 || f + reach <= a0 || f < after {
                continue;
            }
            let s = (f - self.base) as usize;
            if s + self.span > self.buf.len() {
                continue;
            }
            let Some((frame, checked, _, _)) = self.try_position::<VECTOR>(s, margins) else {
                continue;
            };
            if checked.verdict == Verdict::Hold || self.is_recent(&frame) {
                continue;
            }
            after = f + (16 * self.rate.h() / self.rate.d()) as u64;
            self.remember_accepted(&frame);
            self.acceptor.commit(frame, checked, out);
        }
        // Each failure gets one second look.
        for f in &mut self.failed {
            if *f < a0 {
                *f = u64::MAX;
            }
        }
    }

    /// Slice the phase hypotheses at buffer position `s`, best preamble
    /// first, and return the best accepted one. A clean decode ends the
    /// search: later hypotheses have weaker preambles and cannot rank higher.
    ///
    /// `margins` is scratch, left from the previous call: each hypothesis
    /// writes the bits it reads before they are read (zeroing 448 bytes
    /// per call was 5 % of the ARM1176's instructions on a busy sky).
    ///
    /// `VECTOR` on 32-bit ARM: the slicing runs in a NEON function of its
    /// own, where the NEON kernels inline (a call per kernel, each testing
    /// for NEON, cost a twentieth of the NEON build's instructions).
    fn try_position<const VECTOR: bool>(
        &self,
        s: usize,
        margins: &mut [u32; 112],
    ) -> Option<(Received, Checked, u32, usize)> {
        #[cfg(all(target_arch = "arm", feature = "arm-neon"))]
        if VECTOR && kernel::neon_available() {
            // SAFETY: the CPU has NEON (just checked).
            return unsafe { self.try_position_neon(s, margins) };
        }
        self.try_position_with::<VECTOR>(s, margins)
    }

    /// [`Demodulator::try_position`] compiled for NEON (32-bit ARM).
    #[cfg(all(target_arch = "arm", feature = "arm-neon"))]
    #[target_feature(enable = "neon")]
    fn try_position_neon(
        &self,
        s: usize,
        margins: &mut [u32; 112],
    ) -> Option<(Received, Checked, u32, usize)> {
        self.try_position_with::<true>(s, margins)
    }

    #[inline(always)]
    fn try_position_with<const VECTOR: bool>(
        &self,
        s: usize,
        margins: &mut [u32; 112],
    ) -> Option<(Received, Checked, u32, usize)> {
        let m = &self.buf[s..s + self.span];
        let now = self.base + s as u64;
        // Preamble score per phase: pulse energy minus the scaled quiet
        // energy; hypotheses failing the ratio test are dropped.
        // Scores only, 20 bytes: the (score, phase) pairs sorted before
        // were zeroed with a memset call on ARMv6, and sorting five of them
        // cost more than picking the best twice.
        let mut scores = [0i32; 5];
        for (x, plan) in scores.iter_mut().zip(&self.preamble_plans) {
            *x = preamble_score::<VECTOR>(m, plan);
        }

        let mut best: Option<(Received, Checked, u32, usize)> = None;
        // The true phase is almost always among the two best preambles; the
        // others only cost time on garbage. Except at 2.0 MS/s for a reply
        // half a sample off: every sample then straddles two half-bits, the
        // preamble scores alike at all four phases, and the order among
        // them is noise. So there any phase within half the best score is
        // sliced too (with Viterbi readings of held frames, below, this
        // raised recall at 20 dB in the simulator from 98.4 to 99.5 % of
        // the clear frames; slicing every phase found 1 frame more in 4000
        // at 1.25 times the CPU).
        let sliced = match self.rate {
            Rate::Msps2_0 => {
                let top = scores.iter().copied().max().unwrap_or(0);
                MAX_PHASES_SLICED.max(scores.iter().filter(|&&x| x > 0 && x >= top / 2).count())
            }
            Rate::Msps2_4 => MAX_PHASES_SLICED,
        };
        for _ in 0..sliced {
            // The best phase not yet sliced, the lowest on a tie.
            let (p, score) =
                scores.iter().enumerate().fold(
                    (0, 0),
                    |(bp, bx), (p, &x)| if x > bx { (p, x) } else { (bp, bx) },
                );
            // A score of 0 or less fails the preamble ratio.
            if score <= 0 {
                break;
            }
            scores[p] = 0;
            let pulse: u32 = PULSE_SLOTS
                .iter()
                .map(|&k| slot_energy(m, &self.phases[p][k]))
                .sum();
            let plan = &self.bit_plans[p];
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
            let mut slice = |range, bytes: &mut [u8; 14], margins: &mut [u32; 112]| match feedback {
                None => kernel::slice_plain::<VECTOR>(m, plan, range, bytes, margins),
                Some(_) => {
                    slice_bytes::<VECTOR>(m, plan, range, bytes, margins, feedback, &mut prev_one)
                }
            };
            slice(0..1, &mut bytes, margins);
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
            slice(1..bits / 8, &mut bytes, margins);
            let len = bits / 8;
            let mut checked = self.acceptor.check(&mut bytes, len, now, &margins[..bits]);
            let unsure = checked.is_none_or(|c| c.verdict == Verdict::Hold);
            if unsure && self.rate == Rate::Msps2_0 {
                // Decision feedback failed at 2.0 MS/s: ask the sequence
                // estimator (see `viterbi_2m`), which reads half-sample
                // phases and smeared pulses that defeat bit-by-bit slicing.
                // A held reading counts as failed: an address/parity
                // format with a wrong bit reads as an unknown address.
                let (keep_bytes, keep_margins) = (bytes, *margins);
                let again = self
                    .viterbi_reading::<VECTOR>(m, p, pulse, plan, bits, &mut bytes, margins, now);
                if again.is_some_and(|c| c.verdict != Verdict::Hold) || checked.is_none() {
                    checked = again;
                } else {
                    (bytes, *margins) = (keep_bytes, keep_margins);
                }
            }
            let Some(checked) = checked else {
                continue;
            };
            let margin: u32 = margins[..bits].iter().sum();
            let better = match &best {
                None => true,
                Some((_, c, mg, _)) => (checked.verdict.rank(), margin) > (c.verdict.rank(), *mg),
            };
            if better {
                let signal = (pulse / (4 * self.rate.h() as u32)).min(65535) as u16;
                // The start rounded to the nearest sample.
                let sample = now + u64::from(2 * p >= self.rate.d());
                let frame = Received {
                    bytes,
                    len: len as u8,
                    sample,
                    signal,
                    timestamp: sample * self.rate.ticks_12mhz(),
                    repaired: 0,
                    late: false,
                };
                best = Some((frame, checked, margin, s * self.rate.d() + p));
            }
            if checked.verdict == Verdict::Clean {
                break;
            }
        }
        best
    }
}

impl Demodulator {
    /// Re-read a 2.0 MS/s hypothesis at phase `p` with the Viterbi search
    /// and judge it. Margins are each bit's distance from
    /// the decision-feedback threshold set by the bit before on the chosen
    /// path, so repair still starts from the least certain bits.
    #[allow(clippy::too_many_arguments)]
    fn viterbi_reading<const VECTOR: bool>(
        &self,
        m: &[u16],
        p: usize,
        pulse: u32,
        plan: &BitPlan,
        bits: usize,
        bytes: &mut [u8; 14],
        margins: &mut [u32; 112],
        now: u64,
    ) -> Option<Checked> {
        // Four pulse slots of four units each: sixteen pulse samples' worth.
        let square = kernel::Model2m::square(p, i64::from(pulse / 16));
        let mut prev_one = [false; BITS];
        kernel::viterbi_2m(m, &square, bits, bytes, &mut prev_one);
        let q = feedback(self.rate, p, pulse).map_or(0, |q| q as i32);
        let mut diffs = [0i32; BITS];
        bit_diffs::<VECTOR>(m, plan, 0..bits, &mut diffs);
        let margins_for = |prev_one: &[bool; BITS], margins: &mut [u32; 112]| {
            for (bit, margin) in margins.iter_mut().enumerate().take(bits) {
                let x = if prev_one[bit] {
                    diffs[bit] + q
                } else {
                    diffs[bit] - q
                };
                *margin = x.unsigned_abs();
            }
        };
        margins_for(&prev_one, margins);
        let first = *bytes;
        let square_reading = self.acceptor.check(bytes, bits / 8, now, &margins[..bits]);
        // A held reading is not a success: an address/parity format with a
        // wrong bit reads as an unknown address. Near half a sample off the
        // square model misreads a bit or two of such replies that the
        // fitted model reads right (going on past a held reading raised
        // recall of the frames no other reply overlaps, at 20 dB in six
        // simulated skies, from 99.5 to 100 % of 7 910).
        if square_reading.is_some_and(|c| c.verdict != Verdict::Hold) {
            return square_reading;
        }
        let (square_bytes, square_margins) = (*bytes, *margins);
        // The receiver's band limit smears pulses beyond the square model:
        // learn the eight levels from this reading and read again (a second
        // round of fitting gained almost nothing in the simulator).
        let fitted = square.fitted(m, &first, bits);
        kernel::viterbi_2m(m, &fitted, bits, bytes, &mut prev_one);
        margins_for(&prev_one, margins);
        let fitted_reading = self.acceptor.check(bytes, bits / 8, now, &margins[..bits]);
        if fitted_reading.is_none() && square_reading.is_some() {
            (*bytes, *margins) = (square_bytes, square_margins);
            return square_reading;
        }
        fitted_reading
    }
}

#[cfg(test)]
mod tests;

/// Slice a 112-bit frame at sample `s`, phase `phase` (in units) of `mag`,
/// with no screening: returns the bytes, the preamble pulse and quiet
/// slot energies, and each bit's margin (distance from its decision). A
/// diagnostic for tests and for investigating missed frames.
#[doc(hidden)]
#[allow(clippy::type_complexity)]
pub fn slice_at(
    rate: Rate,
    mag: &[u16],
    s: usize,
    phase: usize,
) -> Option<([u8; 14], u32, u32, [u32; 112])> {
    let d = Demodulator::new(rate, 0);
    let slots = d.phases.get(phase)?;
    let plan = BitPlan::new(slots);
    let m = mag.get(s..s + d.span)?;
    let pulse = PULSE_SLOTS.iter().map(|&k| slot_energy(m, &slots[k])).sum();
    let quiet = QUIET_SLOTS.iter().map(|&k| slot_energy(m, &slots[k])).sum();
    // Sliced exactly as the demodulator slices, feedback included.
    let (mut bytes, mut margins, mut prev_one) = ([0u8; 14], [0u32; 112], true);
    slice_bytes::<false>(
        m,
        &plan,
        0..14,
        &mut bytes,
        &mut margins,
        feedback(rate, phase, pulse),
        &mut prev_one,
    );
    Some((bytes, pulse, quiet, margins))
}
