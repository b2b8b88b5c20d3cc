//! The slicing kernels: every bit decision and preamble score of one phase
//! hypothesis as a dot product of small integer weights with a few
//! magnitudes, so that SSE2's 16-bit multiply-add does two bits (or eight
//! samples of a preamble) per instruction.
//!
//! A slot's energy is `w0·m[o] + w1·m[o + 1]` (see `Slot`), so a bit's
//! decision `a − z` (first half minus second half) is a signed combination
//! of at most four consecutive samples, and a preamble score (pulse slots
//! against quiet slots) one of its first [`PREAMBLE_SAMPLES`]. The lanes
//! are 16-bit, so magnitudes are halved before multiplying and the results
//! doubled: decisions keep 16 bits of a 16-bit magnitude's 17-bit sums.

use super::{Slot, PULSE_SLOTS, QUIET_SLOTS, SLOTS};

/// Data bits in the longest frame.
pub(super) const BITS: usize = 112;
/// Samples a preamble score reads (the 16 half-bit slots end before 20
/// samples at both rates; a multiple of 8 for the vector loop).
pub(super) const PREAMBLE_SAMPLES: usize = 24;

/// Bit decisions of one phase hypothesis: bit `b` is
/// `Σ c[b][k]·m[o[b] + k]`, positive for a 1.
pub(super) struct BitPlan {
    o: [u16; BITS],
    c: [[i16; 4]; BITS],
    /// The largest sample offset a bit reads.
    reach: usize,
}

impl BitPlan {
    pub(super) fn new(slots: &[Slot; SLOTS]) -> Self {
        let mut o = [0u16; BITS];
        let mut c = [[0i16; 4]; BITS];
        for b in 0..BITS {
            let (a, z) = (slots[16 + 2 * b], slots[17 + 2 * b]);
            o[b] = a.offset;
            let mut add = |sl: Slot, sign: i16| {
                let k = usize::from(sl.offset - a.offset);
                c[b][k] += sign * sl.w0 as i16;
                c[b][k + 1] += sign * sl.w1 as i16;
            };
            add(a, 1);
            add(z, -1);
        }
        let reach = o.iter().map(|&o| usize::from(o) + 3).max().unwrap_or(0);
        Self { o, c, reach }
    }

    /// The largest sample offset a bit reads.
    pub(super) fn reach(&self) -> usize {
        self.reach
    }
}

/// Preamble score of one phase hypothesis: `Σ c[i]·m[i]` is
/// `6·16·pulse − 20·4·quiet` (pulse and quiet slot energies), positive when
/// the pulses' mean beats the quiet slots' mean by the preamble ratio.
pub(super) struct PreamblePlan {
    c: [i16; PREAMBLE_SAMPLES],
}

impl PreamblePlan {
    pub(super) fn new(slots: &[Slot; SLOTS], ratio_16ths: u32) -> Self {
        let mut c = [0i32; PREAMBLE_SAMPLES];
        let pulse_w = (QUIET_SLOTS.len() * 16) as i32;
        let quiet_w = -((ratio_16ths as usize * PULSE_SLOTS.len()) as i32);
        for (list, w) in [(&PULSE_SLOTS[..], pulse_w), (&QUIET_SLOTS[..], quiet_w)] {
            for &k in list {
                let sl = slots[k];
                c[usize::from(sl.offset)] += w * i32::from(sl.w0);
                c[usize::from(sl.offset) + 1] += w * i32::from(sl.w1);
            }
        }
        Self {
            c: c.map(|x| i16::try_from(x).expect("preamble weights fit 16 bits")),
        }
    }
}

/// `out[b]` for `b` in `bits` (an even range): bit `b`'s decision `a − z`.
///
/// `VECTOR`: the caller is compiled for the CPU's vector unit. It matters
/// only on 32-bit ARM, where the NEON kernels run inside
/// `Demodulator::scan_neon` and the scalar ones everywhere else, with no
/// test per call on the Pi Zero's path. The same holds for
/// [`slice_plain`] and [`preamble_score`].
#[inline(always)]
pub(super) fn bit_diffs<const VECTOR: bool>(
    m: &[u16],
    plan: &BitPlan,
    bits: std::ops::Range<usize>,
    out: &mut [i32; BITS],
) {
    debug_assert!(bits.start.is_multiple_of(2) && bits.end.is_multiple_of(2) && bits.end <= BITS);
    #[cfg(target_arch = "x86_64")]
    {
        sse2::bit_diffs(m, plan, bits, out);
    }
    #[cfg(target_arch = "aarch64")]
    {
        neon::bit_diffs(m, plan, bits, out);
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        #[cfg(all(target_arch = "arm", feature = "arm-neon"))]
        if VECTOR && neon32::available() {
            // SAFETY: the CPU has NEON (just checked).
            return unsafe { neon32::bit_diffs(m, plan, bits, out) };
        }
        assert!(plan.reach < m.len(), "slice holds the frame's samples");
        for (b, out) in out.iter_mut().enumerate().take(bits.end).skip(bits.start) {
            // SAFETY: reach < m.len() (asserted); b < BITS, `out`'s length.
            *out = unsafe { bit_diff_unchecked(m, plan, b) };
        }
    }
}

/// One bit's decision without vector instructions: the reference the
/// vector path must equal.
#[cfg_attr(
    not(target_arch = "aarch64"),
    allow(dead_code, reason = "the tests' reference; NEON's tail on aarch64")
)]
#[inline(always)]
pub(super) fn scalar_bit_diff(m: &[u16], plan: &BitPlan, b: usize) -> i32 {
    assert!(
        plan.reach < m.len() && b < BITS,
        "slice holds the frame's samples"
    );
    // SAFETY: just checked.
    unsafe { bit_diff_unchecked(m, plan, b) }
}

/// [`scalar_bit_diff`] without its range check, for loops that check
/// once: this runs for every bit sliced, and on the ARM1176 the per-sample
/// checks were a fifth of it, a per-bit one still a tenth.
///
/// # Safety
/// `plan.reach < m.len()` and `b < BITS`.
#[inline(always)]
unsafe fn bit_diff_unchecked(m: &[u16], plan: &BitPlan, b: usize) -> i32 {
    // SAFETY: the caller's promise, passed on.
    #[cfg(all(target_arch = "arm", feature = "arm-neon"))]
    let d = unsafe { simd32::bit_diff(m, plan, b) };
    // SAFETY: as above.
    #[cfg(not(all(target_arch = "arm", feature = "arm-neon")))]
    let d = unsafe { plain_bit_diff(m, plan, b) };
    d
}

/// [`bit_diff_unchecked`] one sample at a time: `Σ c[k]·(m[o + k] >> 1)`,
/// doubled.
///
/// # Safety
/// `plan.reach < m.len()` and `b < BITS`.
#[cfg_attr(
    all(target_arch = "arm", feature = "arm-neon"),
    allow(dead_code, reason = "the SIMD32 kernel's reference")
)]
#[inline(always)]
unsafe fn plain_bit_diff(m: &[u16], plan: &BitPlan, b: usize) -> i32 {
    // SAFETY: o + 3 <= reach < m.len() for every bit, b < BITS (the
    // caller's promise).
    let (o, c) = unsafe {
        (
            usize::from(*plan.o.get_unchecked(b)),
            plan.c.get_unchecked(b),
        )
    };
    let s: i32 = (0..4)
        .map(|k| i32::from(c[k]) * i32::from(unsafe { *m.get_unchecked(o + k) } >> 1))
        .sum();
    2 * s
}

/// Slice bytes `range` of a hypothesis without decision feedback: bit
/// `b` is a 1 when its decision is positive, and `margins[b]` is the
/// decision's size. Equal to [`bit_diffs`] followed by those two steps
/// (held so by a unit test); on x86_64 four bits share each step.
#[inline(always)]
pub(super) fn slice_plain<const VECTOR: bool>(
    m: &[u16],
    plan: &BitPlan,
    range: std::ops::Range<usize>,
    bytes: &mut [u8; 14],
    margins: &mut [u32; BITS],
) {
    #[cfg(target_arch = "x86_64")]
    {
        sse2::slice_plain(m, plan, range, bytes, margins);
    }
    #[cfg(target_arch = "aarch64")]
    {
        neon::slice_plain(m, plan, range, bytes, margins);
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        #[cfg(all(target_arch = "arm", feature = "arm-neon"))]
        if VECTOR && neon32::available() {
            // SAFETY: the CPU has NEON (just checked).
            return unsafe { neon32::slice_plain(m, plan, range, bytes, margins) };
        }
        scalar_slice_plain(m, plan, range, bytes, margins);
    }
}

/// [`slice_plain`] without vector instructions.
#[cfg_attr(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    allow(
        dead_code,
        reason = "the reference the tests hold the vector kernels to"
    )
)]
#[inline(always)]
pub(super) fn scalar_slice_plain(
    m: &[u16],
    plan: &BitPlan,
    range: std::ops::Range<usize>,
    bytes: &mut [u8; 14],
    margins: &mut [u32; BITS],
) {
    assert!(plan.reach < m.len(), "slice holds the frame's samples");
    for i in range {
        let mut byte = 0u8;
        for (bit, margin) in margins.iter_mut().enumerate().skip(8 * i).take(8) {
            // SAFETY: reach < m.len() (asserted); bit < BITS, the margins'
            // length.
            let x = unsafe { bit_diff_unchecked(m, plan, bit) };
            *margin = x.unsigned_abs();
            byte = (byte << 1) | u8::from(x > 0);
        }
        bytes[i] = byte;
    }
}

/// A phase hypothesis's preamble score (see [`PreamblePlan`]).
#[inline(always)]
pub(super) fn preamble_score<const VECTOR: bool>(m: &[u16], plan: &PreamblePlan) -> i32 {
    #[cfg(target_arch = "x86_64")]
    {
        sse2::preamble_score(m, plan)
    }
    #[cfg(target_arch = "aarch64")]
    {
        neon::preamble_score(m, plan)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        #[cfg(all(target_arch = "arm", feature = "arm-neon"))]
        if VECTOR && neon32::available() {
            // SAFETY: the CPU has NEON (just checked).
            return unsafe { neon32::preamble_score(m, plan) };
        }
        scalar_preamble_score(m, plan)
    }
}

/// [`preamble_score`] without vector instructions.
#[cfg_attr(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    allow(
        dead_code,
        reason = "the reference the tests hold the vector kernels to"
    )
)]
#[inline(always)]
pub(super) fn scalar_preamble_score(m: &[u16], plan: &PreamblePlan) -> i32 {
    #[cfg(all(target_arch = "arm", feature = "arm-neon"))]
    let score = simd32::preamble_score(m, plan);
    #[cfg(not(all(target_arch = "arm", feature = "arm-neon")))]
    let score = plain_preamble_score(m, plan);
    score
}

/// [`scalar_preamble_score`] one sample at a time.
#[cfg_attr(
    all(target_arch = "arm", feature = "arm-neon"),
    allow(dead_code, reason = "the SIMD32 kernel's reference")
)]
#[inline(always)]
fn plain_preamble_score(m: &[u16], plan: &PreamblePlan) -> i32 {
    let s: i32 = (0..PREAMBLE_SAMPLES)
        .map(|i| i32::from(plan.c[i]) * i32::from(m[i] >> 1))
        .sum();
    2 * s
}

/// What a 2.0 MS/s sample reads, by context: a bit's opening sample
/// (`open[prev][bit]`) and its closing sample (`close[bit][next]`), where
/// `prev` and `next` are the neighbouring bits (the preamble ends as a 1
/// does, and after the last bit the channel reads as a 0 would).
///
/// At 2.0 MS/s a half-bit is one sample, and what leaks into it from its
/// neighbours (the sub-sample phase, and the receiver's band limit, which
/// smears a 0.5 µs pulse over two samples) depends only on the bits on
/// either side; so these eight levels describe a reply completely.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Model2m {
    open: [[i64; 2]; 2],
    close: [[i64; 2]; 2],
}

impl Model2m {
    /// Square pulses of magnitude `amp` starting `p` quarters of a sample
    /// late: a sample holds the last p/4 of one half-bit and the first
    /// (4 − p)/4 of the next.
    pub(super) fn square(p: usize, amp: i64) -> Self {
        let f = p as i64;
        let mut m = Self {
            open: [[0; 2]; 2],
            close: [[0; 2]; 2],
        };
        for a in 0..2i64 {
            for b in 0..2i64 {
                m.open[a as usize][b as usize] = amp * (f * (1 - a) + (4 - f) * b) / 4;
                m.close[a as usize][b as usize] = amp * (f * a + (4 - f) * (1 - a)) / 4;
            }
        }
        m
    }

    /// The levels the samples of `m` actually show for the bits in
    /// `bytes` (decision-directed); contexts that never occur keep `self`'s.
    pub(super) fn fitted(&self, m: &[u16], bytes: &[u8; 14], nbits: usize) -> Self {
        // bit[i + 1] is bit i; bit[0], the preamble's end, reads as a 1 and
        // bit[nbits + 1], the silence after the frame, as a 0.
        let mut bit = [0usize; BITS + 2];
        bit[0] = 1;
        for (i, b) in bit[1..=nbits].iter_mut().enumerate() {
            *b = usize::from(bytes[i / 8] >> (7 - i % 8) & 1);
        }
        let mut sum = [[[0i64; 2]; 2]; 2];
        let mut n = [[[0i64; 2]; 2]; 2];
        for i in 0..nbits {
            let (prev, b, next) = (bit[i], bit[i + 1], bit[i + 2]);
            sum[0][prev][b] += i64::from(m[16 + 2 * i]);
            n[0][prev][b] += 1;
            sum[1][b][next] += i64::from(m[17 + 2 * i]);
            n[1][b][next] += 1;
        }
        let mut out = *self;
        for a in 0..2 {
            for b in 0..2 {
                if n[0][a][b] > 0 {
                    out.open[a][b] = sum[0][a][b] / n[0][a][b];
                }
                if n[1][a][b] > 0 {
                    out.close[a][b] = sum[1][a][b] / n[1][a][b];
                }
            }
        }
        out
    }
}

/// Branch metrics of [`viterbi_2m`] for each combination `k = 2·prev + b`:
/// the squared error of a bit's two samples `(yc, yo)` (the closing one of
/// the bit before, its own opening one) against the model's levels
/// `(c, o)`, less the `yc² + yo²` every combination shares:
/// `c² + o² − 2(yc·c + yo·o)`. Samples and levels are quartered to 14 bits
/// so that SSE2's 16-bit multiply-add forms both products of four bits at
/// once, and every metric fits an `i32`.
pub(super) struct Branches {
    /// `(o << 16) | c` per combination, quartered: one madd operand.
    levels: [i32; 4],
    /// `c² + o²` per combination, quartered.
    k: [i32; 4],
}

impl Branches {
    fn new(model: &Model2m) -> Self {
        let q = |x: i64| x.clamp(0, i64::from(u16::MAX)) as i32 >> 2;
        let (mut levels, mut k) = ([0; 4], [0; 4]);
        for prev in 0..2 {
            for b in 0..2 {
                let (c, o) = (q(model.close[prev][b]), q(model.open[prev][b]));
                levels[2 * prev + b] = (o << 16) | c;
                k[2 * prev + b] = c * c + o * o;
            }
        }
        Self { levels, k }
    }

    /// The metric of combination `k` for samples `yc`, `yo` (quartered).
    #[inline(always)]
    fn metric(&self, k: usize, yc: i32, yo: i32) -> i32 {
        let (c, o) = (self.levels[k] & 0xffff, self.levels[k] >> 16);
        self.k[k] - 2 * (yc * c + yo * o)
    }
}

/// Metrics `e[k][i]` for the bits `i` in `1..=nbits` (bit `nbits` being
/// the silence after the frame, which closes the last bit); on x86_64
/// four bits share each step.
#[inline(always)]
pub(super) fn branch_metrics(m: &[u16], br: &Branches, nbits: usize, e: &mut [[i32; BITS + 1]; 4]) {
    #[cfg(target_arch = "x86_64")]
    {
        sse2::branch_metrics(m, br, nbits, e);
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        scalar_branch_metrics(m, br, 1..=nbits, e);
    }
}

/// [`branch_metrics`] without vector instructions, for the bits in `bits`
/// (the vector path's tail, and the reference it must equal).
pub(super) fn scalar_branch_metrics(
    m: &[u16],
    br: &Branches,
    bits: std::ops::RangeInclusive<usize>,
    e: &mut [[i32; BITS + 1]; 4],
) {
    let y = |j: usize| i32::from(m[16 + j] >> 2);
    for i in bits {
        let (yc, yo) = (y(2 * i - 1), y(2 * i));
        for (k, e) in e.iter_mut().enumerate() {
            e[i] = br.metric(k, yc, yo);
        }
    }
}

/// Maximum-likelihood bits of a 2.0 MS/s hypothesis under `model`, by a
/// two-state Viterbi search over squared errors. Deciding bit by bit
/// (decision feedback) lets one wrong bit spoil the next; weighing whole
/// sequences does not. Decisions go to `bytes`, and for each bit whether
/// the bit before it on the chosen path was a 1 to `prev_one`.
///
/// With two states only the difference of their path costs matters, so
/// one number is carried from bit to bit; it stays within a few branch
/// metrics, so an `i64` cannot overflow whatever the samples.
pub(super) fn viterbi_2m(
    m: &[u16],
    model: &Model2m,
    nbits: usize,
    bytes: &mut [u8; 14],
    prev_one: &mut [bool; BITS],
) {
    assert!(nbits <= BITS && m.len() > 16 + 2 * nbits, "frame's samples");
    let br = Branches::new(model);
    let mut e = [[0i32; BITS + 1]; 4];
    branch_metrics(m, &br, nbits, &mut e);
    // The preamble ends as a 1 does: bit 0 opens after a 1.
    // Bit 0 has no closing sample before it: its opening one alone counts.
    let y0 = i64::from(m[16] >> 2);
    let open = |b: usize| {
        let o = i64::from(br.levels[2 + b] >> 16);
        o * o - 2 * y0 * o
    };
    let mut diff = open(1) - open(0);
    // Bit b of from[i]: the best path to bit i = b came from a 1.
    let mut from = [0u8; BITS];
    for i in 1..nbits {
        let ek = |k: usize| i64::from(e[k][i]);
        // Costs relative to state 0's: reaching b from 0 costs e[b], from
        // 1 costs diff + e[2 + b]; ties keep the 0.
        let (a0, b0) = (ek(0), diff + ek(2));
        let (a1, b1) = (ek(1), diff + ek(3));
        from[i] = u8::from(b0 < a0) | u8::from(b1 < a1) << 1;
        diff = a1.min(b1) - a0.min(b0);
    }
    // The last bit closes, and the channel after it reads as a 0 would.
    let last1 = diff + i64::from(e[2][nbits]);
    let mut b = usize::from(last1 < i64::from(e[0][nbits]));
    *bytes = [0; 14];
    for i in (0..nbits).rev() {
        if b == 1 {
            bytes[i / 8] |= 0x80 >> (i % 8);
        }
        let prev = if i == 0 {
            1
        } else {
            usize::from(from[i] >> b & 1)
        };
        prev_one[i] = prev == 1;
        b = prev;
    }
}

/// SSE2 is part of x86_64 itself, so no run-time check is needed.
/// `PREAMBLE_SAMPLES` is 24: three 8-lane loads.
#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi32, _mm_castps_si128, _mm_castsi128_ps, _mm_cmpgt_epi32,
        _mm_cvtsi128_si32, _mm_loadl_epi64, _mm_loadu_si128, _mm_madd_epi16, _mm_movemask_ps,
        _mm_set1_epi32, _mm_setzero_si128, _mm_shuffle_epi32, _mm_shuffle_ps, _mm_srai_epi32,
        _mm_srli_epi16, _mm_storeu_si128, _mm_sub_epi32, _mm_unpackhi_epi64, _mm_unpacklo_epi64,
        _mm_xor_si128,
    };

    use super::{BitPlan, Branches, PreamblePlan, BITS, PREAMBLE_SAMPLES};

    /// Four samples from `m[o..]`, halved, in the low half of a vector.
    ///
    /// # Safety
    /// `o + 4 <= m.len()`.
    #[inline(always)]
    unsafe fn four(m: &[u16], o: usize) -> __m128i {
        debug_assert!(o + 4 <= m.len());
        // SAFETY: SSE2 is part of every x86_64 CPU; the caller keeps the 8
        // bytes in bounds, and the load needs no alignment.
        unsafe { _mm_srli_epi16::<1>(_mm_loadl_epi64(m.as_ptr().add(o).cast())) }
    }

    /// Bits `b` and `b + 1`, halved and not yet doubled: lane 0 holds
    /// bit `b`'s decision, lane 2 bit `b + 1`'s.
    ///
    /// # Safety
    /// `plan.reach < m.len()` and `b + 1 < BITS`.
    #[inline(always)]
    unsafe fn pair(m: &[u16], plan: &BitPlan, b: usize) -> __m128i {
        // SAFETY: o + 4 <= reach + 1 <= m.len() for every bit (the
        // caller's promise); SSE2 is part of every x86_64 CPU; `c` is 16
        // readable bytes and the load needs no alignment.
        unsafe {
            let lo = four(m, usize::from(*plan.o.get_unchecked(b)));
            let hi = four(m, usize::from(*plan.o.get_unchecked(b + 1)));
            let v = _mm_unpacklo_epi64(lo, hi);
            let c = _mm_loadu_si128(plan.c.as_ptr().add(b).cast());
            // Lanes: bit b samples 0+1, 2+3; bit b+1 samples 0+1, 2+3.
            let p = _mm_madd_epi16(v, c);
            _mm_add_epi32(p, _mm_shuffle_epi32::<0b10_11_00_01>(p))
        }
    }

    #[inline(always)]
    pub(super) fn slice_plain(
        m: &[u16],
        plan: &BitPlan,
        range: std::ops::Range<usize>,
        bytes: &mut [u8; 14],
        margins: &mut [u32; BITS],
    ) {
        assert!(plan.reach < m.len(), "slice holds the frame's samples");
        assert!(range.end <= 14, "at most 14 bytes");
        for i in range {
            let b = 8 * i;
            // SAFETY: reach < m.len() (asserted) and b + 7 < BITS since
            // i < 14; the margin stores write 16 bytes at b and b + 4,
            // inside the 112 u32s; SSE2 is part of every x86_64 CPU.
            unsafe {
                let mut mask = 0;
                for half in 0..2 {
                    let k = b + 4 * half;
                    let (s0, s1) = (pair(m, plan, k), pair(m, plan, k + 2));
                    // Lanes 2 and 0 of each: the four decisions last first,
                    // so that the movemask puts the first bit highest, as
                    // the byte holds it.
                    let d = _mm_castps_si128(_mm_shuffle_ps::<0b00_10_00_10>(
                        _mm_castsi128_ps(s1),
                        _mm_castsi128_ps(s0),
                    ));
                    let d = _mm_add_epi32(d, d);
                    let ones = _mm_cmpgt_epi32(d, _mm_setzero_si128());
                    mask |= _mm_movemask_ps(_mm_castsi128_ps(ones)) << (4 - 4 * half);
                    let sign = _mm_srai_epi32::<31>(d);
                    let abs = _mm_sub_epi32(_mm_xor_si128(d, sign), sign);
                    // Margins in bit order.
                    let abs = _mm_shuffle_epi32::<0b00_01_10_11>(abs);
                    _mm_storeu_si128(margins.as_mut_ptr().add(k).cast(), abs);
                }
                bytes[i] = mask as u8;
            }
        }
    }

    #[inline(always)]
    pub(super) fn bit_diffs(
        m: &[u16],
        plan: &BitPlan,
        bits: std::ops::Range<usize>,
        out: &mut [i32; BITS],
    ) {
        // Every bit reads below `reach` + 1: checked once, not per bit.
        assert!(plan.reach < m.len(), "slice holds the frame's samples");
        assert!(
            bits.end <= BITS && bits.end.is_multiple_of(2),
            "whole bit pairs"
        );
        let mut b = bits.start;
        while b < bits.end {
            // SAFETY: reach < m.len() (asserted) and b + 1 < BITS since the
            // range is even and ends by BITS; SSE2 is part of every x86_64 CPU.
            let (d0, d1) = unsafe {
                let s = pair(m, plan, b);
                (
                    _mm_cvtsi128_si32(s),
                    _mm_cvtsi128_si32(_mm_unpackhi_epi64(s, s)),
                )
            };
            out[b] = 2 * d0;
            out[b + 1] = 2 * d1;
            b += 2;
        }
    }

    /// [`super::branch_metrics`], four bits per step: the eight
    /// samples `(yc, yo)` of bits `i..i + 4` are consecutive, so one madd
    /// per combination forms all four bits' dot products.
    #[inline(always)]
    pub(super) fn branch_metrics(
        m: &[u16],
        br: &Branches,
        nbits: usize,
        e: &mut [[i32; BITS + 1]; 4],
    ) {
        assert!(nbits <= BITS && m.len() > 16 + 2 * nbits, "frame's samples");
        let mut i = 1;
        // Bits i..i + 4 read samples 16 + 2i - 1 ..= 16 + 2i + 6.
        while i + 3 <= nbits {
            // SAFETY: the load reads m[15 + 2i..23 + 2i], and 22 + 2i <=
            // 16 + 2·nbits < m.len() (asserted); the stores write e[k][i..i
            // + 4] with i + 3 <= nbits <= BITS; SSE2 is part of every
            // x86_64 CPU and these loads and stores need no alignment.
            unsafe {
                let y = _mm_srli_epi16::<2>(_mm_loadu_si128(m.as_ptr().add(15 + 2 * i).cast()));
                for (k, e) in e.iter_mut().enumerate() {
                    let dot = _mm_madd_epi16(y, _mm_set1_epi32(br.levels[k]));
                    let v = _mm_sub_epi32(_mm_set1_epi32(br.k[k]), _mm_add_epi32(dot, dot));
                    _mm_storeu_si128(e.as_mut_ptr().add(i).cast(), v);
                }
            }
            i += 4;
        }
        super::scalar_branch_metrics(m, br, i..=nbits, e);
    }

    #[inline(always)]
    pub(super) fn preamble_score(m: &[u16], plan: &PreamblePlan) -> i32 {
        let m: &[u16; PREAMBLE_SAMPLES] =
            m[..PREAMBLE_SAMPLES].try_into().expect("preamble samples");
        // SAFETY: SSE2 is part of every x86_64 CPU; each load reads 16 bytes
        // at i < i + 8 <= PREAMBLE_SAMPLES of `m` and of `plan.c`, and
        // needs no alignment.
        unsafe {
            let load = |i: usize| {
                let v = _mm_srli_epi16::<1>(_mm_loadu_si128(m[i..].as_ptr().cast()));
                _mm_madd_epi16(v, _mm_loadu_si128(plan.c[i..].as_ptr().cast()))
            };
            let a = _mm_add_epi32(_mm_add_epi32(load(0), load(8)), load(16));
            let a = _mm_add_epi32(a, _mm_shuffle_epi32::<0b01_00_11_10>(a));
            let a = _mm_add_epi32(a, _mm_shuffle_epi32::<0b10_11_00_01>(a));
            2 * _mm_cvtsi128_si32(a)
        }
    }
}

/// The kernels in NEON, which every aarch64 CPU has (the Pi 3, 4 and 5 on
/// a 64-bit OS): four bits per step. Bit `b`'s four samples, halved, times
/// its four weights in one widening multiply; three pairwise adds sum the
/// four bits' products at once.
#[cfg(target_arch = "aarch64")]
mod neon {
    use std::arch::aarch64::{
        int32x4_t, vabsq_s32, vaddq_s32, vaddvq_s32, vaddvq_u32, vandq_u32, vcgtzq_s32,
        vdupq_n_s32, vget_low_s16, vld1_s16, vld1_u16, vld1q_s16, vld1q_u16, vld1q_u32,
        vmlal_high_s16, vmlal_s16, vmull_s16, vpaddq_s32, vreinterpret_s16_u16,
        vreinterpretq_s16_u16, vreinterpretq_u32_s32, vshr_n_u16, vshrq_n_u16, vst1q_s32,
        vst1q_u32,
    };

    use super::{BitPlan, PreamblePlan, BITS, PREAMBLE_SAMPLES};

    /// Decisions of bits `b..b + 4`, halved and not yet doubled, in bit
    /// order.
    ///
    /// # Safety
    /// `plan.reach < m.len()` and `b + 3 < BITS`.
    #[inline(always)]
    unsafe fn quad(m: &[u16], plan: &BitPlan, b: usize) -> int32x4_t {
        // SAFETY: o + 4 <= reach + 1 <= m.len() for every bit and b + 3 <
        // BITS (the caller's promise): each load reads 8 bytes of `m` and
        // of `plan.c` in bounds; NEON is part of every aarch64 CPU and
        // these loads need no alignment.
        unsafe {
            let products = |b: usize| {
                let o = usize::from(*plan.o.get_unchecked(b));
                let v = vreinterpret_s16_u16(vshr_n_u16::<1>(vld1_u16(m.as_ptr().add(o))));
                vmull_s16(v, vld1_s16(plan.c.as_ptr().add(b).cast()))
            };
            let (p0, p1) = (products(b), products(b + 1));
            let (p2, p3) = (products(b + 2), products(b + 3));
            vpaddq_s32(vpaddq_s32(p0, p1), vpaddq_s32(p2, p3))
        }
    }

    #[inline(always)]
    pub(super) fn slice_plain(
        m: &[u16],
        plan: &BitPlan,
        range: std::ops::Range<usize>,
        bytes: &mut [u8; 14],
        margins: &mut [u32; BITS],
    ) {
        assert!(plan.reach < m.len(), "slice holds the frame's samples");
        assert!(range.end <= 14, "at most 14 bytes");
        // A decision's bit in the byte, first bit highest.
        const PLACE: [u32; 4] = [8, 4, 2, 1];
        for i in range {
            let b = 8 * i;
            // SAFETY: reach < m.len() (asserted) and b + 7 < BITS since
            // i < 14; the margin stores write 16 bytes at b and b + 4,
            // inside the 112 u32s; NEON is part of every aarch64 CPU.
            unsafe {
                let place = vld1q_u32(PLACE.as_ptr());
                let mut byte = 0;
                for half in 0..2 {
                    let k = b + 4 * half;
                    let d = quad(m, plan, k);
                    let d = vaddq_s32(d, d);
                    let ones = vandq_u32(vcgtzq_s32(d), place);
                    byte |= vaddvq_u32(ones) << (4 - 4 * half);
                    // |i32::MIN| is 2^31 as u32, as `unsigned_abs` has it.
                    vst1q_u32(
                        margins.as_mut_ptr().add(k),
                        vreinterpretq_u32_s32(vabsq_s32(d)),
                    );
                }
                bytes[i] = byte as u8;
            }
        }
    }

    #[inline(always)]
    pub(super) fn bit_diffs(
        m: &[u16],
        plan: &BitPlan,
        bits: std::ops::Range<usize>,
        out: &mut [i32; BITS],
    ) {
        assert!(plan.reach < m.len(), "slice holds the frame's samples");
        assert!(bits.end <= BITS, "at most BITS bits");
        let mut b = bits.start;
        while b + 4 <= bits.end {
            // SAFETY: reach < m.len() (asserted) and b + 3 < BITS; the
            // store writes out[b..b + 4]; NEON is part of every aarch64 CPU.
            unsafe {
                let d = quad(m, plan, b);
                vst1q_s32(out.as_mut_ptr().add(b), vaddq_s32(d, d));
            }
            b += 4;
        }
        for (b, out) in out.iter_mut().enumerate().take(bits.end).skip(b) {
            *out = super::scalar_bit_diff(m, plan, b);
        }
    }

    #[inline(always)]
    pub(super) fn preamble_score(m: &[u16], plan: &PreamblePlan) -> i32 {
        let m: &[u16; PREAMBLE_SAMPLES] =
            m[..PREAMBLE_SAMPLES].try_into().expect("preamble samples");
        // SAFETY: each load reads 16 bytes at i < i + 8 <= PREAMBLE_SAMPLES
        // of `m` and of `plan.c`; NEON is part of every aarch64 CPU and the
        // loads need no alignment.
        unsafe {
            let mut acc = vdupq_n_s32(0);
            for i in (0..PREAMBLE_SAMPLES).step_by(8) {
                let v = vreinterpretq_s16_u16(vshrq_n_u16::<1>(vld1q_u16(m.as_ptr().add(i))));
                let c = vld1q_s16(plan.c.as_ptr().add(i));
                acc = vmlal_s16(acc, vget_low_s16(v), vget_low_s16(c));
                acc = vmlal_high_s16(acc, v, c);
            }
            2 * vaddvq_s32(acc)
        }
    }
}

/// The scalar kernels on 32-bit ARM (the `arm-neon` feature, which needs
/// nightly for these intrinsics too) with ARMv6's SIMD32 instructions,
/// which every Raspberry Pi has, the Pi Zero's ARM1176 included: SMUAD and
/// SMLAD multiply the two 16-bit halves of one register by those of
/// another and add both products, so a bit's four samples cost two
/// multiplies and two word loads instead of four of each (plus four
/// shifts). The same sums as the plain code, bit for bit.
#[cfg(all(target_arch = "arm", feature = "arm-neon"))]
mod simd32 {
    use core::arch::arm::{__smlad, __smuad};

    use super::{BitPlan, PreamblePlan, PREAMBLE_SAMPLES};

    /// The four `u16` at `p` as two words, the first of each pair in the
    /// low half. Plain LDRs: ARMv6 and later load unaligned words in
    /// hardware (Linux sets SCTLR.U; where it did not, the kernel's
    /// alignment fixup would still load them), but Rust's ARMv6 target is
    /// `+strict-align`, so LLVM would assemble each word from two halfword
    /// loads. One asm block for both, so that the second load takes an
    /// offset instead of an add.
    ///
    /// # Safety
    /// `p..p + 4` are readable.
    #[inline(always)]
    unsafe fn words(p: *const u16) -> (u32, u32) {
        let (a, b): (u32, u32);
        // SAFETY: reads the eight bytes at `p` (the caller's promise).
        unsafe {
            core::arch::asm!(
                "ldr {a}, [{p}]",
                "ldr {b}, [{p}, #4]",
                a = out(reg) a,
                b = out(reg) b,
                p = in(reg) p,
                options(pure, readonly, nostack, preserves_flags)
            );
        }
        (a, b)
    }

    /// Both halves of a sample word halved, as the vector kernels' 16-bit
    /// lanes hold them: signed 16-bit operands for SMUAD.
    #[inline(always)]
    fn halved(w: u32) -> i32 {
        ((w >> 1) & 0x7fff_7fff) as i32
    }

    /// Bit `b`'s decision (see `super::bit_diff_unchecked`).
    ///
    /// # Safety
    /// `plan.reach < m.len()` and `b < BITS`.
    #[inline(always)]
    pub(super) unsafe fn bit_diff(m: &[u16], plan: &BitPlan, b: usize) -> i32 {
        // SAFETY: o + 3 <= reach < m.len() for every bit and b < BITS (the
        // caller's promise): samples o..o + 4 and the bit's four weights
        // are in bounds.
        unsafe {
            let o = usize::from(*plan.o.get_unchecked(b));
            let (s01, s23) = words(m.as_ptr().add(o));
            let (c01, c23) = words(plan.c.as_ptr().add(b).cast::<u16>());
            let lo = __smuad(halved(s01), c01 as i32);
            2 * __smlad(halved(s23), c23 as i32, lo)
        }
    }

    /// A phase hypothesis's preamble score (see `super::preamble_score`).
    #[inline(always)]
    pub(super) fn preamble_score(m: &[u16], plan: &PreamblePlan) -> i32 {
        assert!(m.len() >= PREAMBLE_SAMPLES, "slice holds the preamble");
        let (sp, cp) = (m.as_ptr(), plan.c.as_ptr().cast::<u16>());
        let mut s = 0;
        const { assert!(PREAMBLE_SAMPLES.is_multiple_of(4)) };
        for k in (0..PREAMBLE_SAMPLES).step_by(4) {
            // SAFETY: k + 3 < PREAMBLE_SAMPLES <= m.len() (asserted), and
            // the plan holds PREAMBLE_SAMPLES weights; SMLAD is in ARMv6.
            s = unsafe {
                let ((s01, s23), (c01, c23)) = (words(sp.add(k)), words(cp.add(k)));
                __smlad(halved(s23), c23 as i32, __smlad(halved(s01), c01 as i32, s))
            };
        }
        2 * s
    }
}

#[cfg(all(target_arch = "arm", feature = "arm-neon"))]
pub(super) use neon32::available as neon_available;

/// The NEON kernels for 32-bit ARM (the `arm-neon` feature), chosen at run
/// time: the armhf build must also run on a Pi Zero, which has no NEON.
/// Rust's NEON intrinsics exist on 32-bit ARM only for ARMv7 targets, so
/// these are written with `std::simd`, which LLVM lowers to NEON inside
/// `#[target_feature(enable = "neon")]` functions: four bits per step, as
/// the aarch64 module does with intrinsics. Inlined into
/// [`super::Demodulator::scan_neon`]; called from plain code they run as
/// calls.
#[cfg(all(target_arch = "arm", feature = "arm-neon"))]
mod neon32 {
    use std::simd::prelude::*;
    use std::simd::simd_swizzle;

    use super::{BitPlan, PreamblePlan, BITS, PREAMBLE_SAMPLES};

    /// The CPU has NEON (read once from the auxiliary vector's HWCAP by
    /// std, then cached).
    #[inline(always)]
    pub(in crate::demod) fn available() -> bool {
        std::arch::is_arm_feature_detected!("neon")
    }

    /// Decisions of bits `b..b + 4`, halved and not yet doubled, in bit
    /// order: each bit's four samples against its four weights, two bits
    /// to a 128-bit register.
    ///
    /// # Safety
    /// `plan.reach < m.len()` and `b + 3 < BITS`.
    #[inline(always)]
    unsafe fn quad(m: &[u16], plan: &BitPlan, b: usize) -> i32x4 {
        // SAFETY: o + 4 <= reach + 1 <= m.len() for every bit and b + 3 <
        // BITS (the caller's promise): each sample load reads 8 bytes of
        // `m`, each weight load 16 bytes of `plan.c`, in bounds; unaligned
        // reads.
        unsafe {
            let load = |j: usize| {
                let o = usize::from(*plan.o.get_unchecked(b + j));
                let w = u16x4::from_array(m.as_ptr().add(o).cast::<[u16; 4]>().read_unaligned());
                (w >> 1).cast::<i16>()
            };
            let weights = |j: usize| {
                let c = plan.c.as_ptr().add(b + j).cast::<[i16; 8]>();
                i16x8::from_array(c.read_unaligned()).cast::<i32>()
            };
            let w01: i16x8 = simd_swizzle!(load(0), load(1), [0, 1, 2, 3, 4, 5, 6, 7]);
            let w23: i16x8 = simd_swizzle!(load(2), load(3), [0, 1, 2, 3, 4, 5, 6, 7]);
            let p01 = w01.cast::<i32>() * weights(0);
            let p23 = w23.cast::<i32>() * weights(2);
            // Pairwise sums, twice: [b0, b0, b1, b1, b2, b2, b3, b3], then
            // one per bit.
            let (even, odd) = p01.deinterleave(p23);
            let pairs = even + odd;
            let first: i32x4 = simd_swizzle!(pairs, [0, 2, 4, 6]);
            let second: i32x4 = simd_swizzle!(pairs, [1, 3, 5, 7]);
            first + second
        }
    }

    /// `REVERSED[k]`: the four bits of `k` in reverse order (lane 0, the
    /// first bit, becomes the highest).
    const REVERSED: [u8; 16] = [0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15];

    /// [`super::slice_plain`] with NEON.
    ///
    /// # Safety
    /// The CPU has NEON.
    #[target_feature(enable = "neon")]
    #[inline]
    pub(super) unsafe fn slice_plain(
        m: &[u16],
        plan: &BitPlan,
        range: std::ops::Range<usize>,
        bytes: &mut [u8; 14],
        margins: &mut [u32; BITS],
    ) {
        assert!(plan.reach < m.len(), "slice holds the frame's samples");
        assert!(range.end <= 14, "at most 14 bytes");
        for i in range {
            let b = 8 * i;
            let mut byte = 0;
            for half in 0..2 {
                let k = b + 4 * half;
                // SAFETY: reach < m.len() and k + 3 <= 8 * 13 + 7 < BITS
                // (both asserted).
                let d = unsafe { quad(m, plan, k) };
                let d = d + d;
                let ones = d.simd_gt(i32x4::splat(0)).to_bitmask() as usize;
                byte |= REVERSED[ones & 15] << (4 - 4 * half);
                // |i32::MIN| is 2^31 as u32, as `unsigned_abs` has it.
                margins[k..k + 4].copy_from_slice(d.abs().cast::<u32>().as_array());
            }
            bytes[i] = byte;
        }
    }

    /// [`super::bit_diffs`] with NEON.
    ///
    /// # Safety
    /// The CPU has NEON.
    #[target_feature(enable = "neon")]
    #[inline]
    pub(super) unsafe fn bit_diffs(
        m: &[u16],
        plan: &BitPlan,
        bits: std::ops::Range<usize>,
        out: &mut [i32; BITS],
    ) {
        assert!(plan.reach < m.len(), "slice holds the frame's samples");
        assert!(bits.end <= BITS, "at most BITS bits");
        let mut b = bits.start;
        while b + 4 <= bits.end {
            // SAFETY: reach < m.len() (asserted) and b + 3 < BITS.
            let d = unsafe { quad(m, plan, b) };
            out[b..b + 4].copy_from_slice((d + d).as_array());
            b += 4;
        }
        for (b, out) in out.iter_mut().enumerate().take(bits.end).skip(b) {
            *out = super::scalar_bit_diff(m, plan, b);
        }
    }

    /// [`super::preamble_score`] with NEON.
    ///
    /// # Safety
    /// The CPU has NEON.
    #[target_feature(enable = "neon")]
    #[inline]
    pub(super) unsafe fn preamble_score(m: &[u16], plan: &PreamblePlan) -> i32 {
        let m: &[u16; PREAMBLE_SAMPLES] =
            m[..PREAMBLE_SAMPLES].try_into().expect("preamble samples");
        let mut acc = i32x8::splat(0);
        for i in (0..PREAMBLE_SAMPLES).step_by(8) {
            let v = (u16x8::from_slice(&m[i..i + 8]) >> 1).cast::<i16>();
            let c = i16x8::from_slice(&plan.c[i..i + 8]);
            acc += v.cast::<i32>() * c.cast::<i32>();
        }
        2 * acc.reduce_sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demod::{Demodulator, Rate};

    /// How a half-bit's pulse spreads: into the sample before, its own,
    /// and the sample after.
    const SPILL: (i64, i64, i64) = (150, 600, 500);

    /// A deterministic spread of magnitudes over the whole 16-bit range.
    fn samples(n: usize, seed: u32) -> Vec<u16> {
        (0..n as u32)
            .map(|i| ((i ^ seed).wrapping_mul(2_654_435_761) >> 16) as u16)
            .collect()
    }

    #[test]
    fn viterbi_reads_a_half_sample_phase_that_confounds_bit_by_bit_slicing() {
        // Half a sample late, every sample holds half of two half-bits:
        // the envelope is flat except where two pulses or two gaps meet.
        let bytes: [u8; 7] = [0x5d, 0x40, 0x6b, 0x90, 0x00, 0xff, 0x33];
        let amp = 1000i64;
        let mut halves = vec![0i64; 16]; // preamble tail: quiet
        for i in 0..56 {
            let b = i64::from(bytes[i / 8] >> (7 - i % 8) & 1);
            halves.extend([b, 1 - b]);
        }
        halves.extend([0, 0, 0]);
        // Sample k covers the last half of half-bit k-1 and the first of k.
        let m: Vec<u16> = (0..halves.len())
            .map(|k| {
                let before = if k == 0 { 0 } else { halves[k - 1] };
                ((amp * (before + halves[k])) / 2) as u16
            })
            .collect();
        let mut got = [0u8; 14];
        let mut prev_one = [false; BITS];
        viterbi_2m(&m, &Model2m::square(2, amp), 56, &mut got, &mut prev_one);
        assert_eq!(&got[..7], &bytes);
        assert!(prev_one[0], "the preamble ends as a 1 does");
        // Fitted to its own decisions, the model is the one that made m.
        assert_eq!(
            Model2m::square(2, amp).fitted(&m, &got, 56),
            Model2m::square(2, amp)
        );
    }

    #[test]
    fn a_fitted_model_reads_pulses_smeared_over_two_samples() {
        // A band limit spreads each half-bit into its neighbours, more into
        // the one after: square pulses misread some bits, and the levels
        // fitted to that reading read them all.
        let bytes: [u8; 7] = [0x28, 0x00, 0x10, 0x27, 0x93, 0xaf, 0x4f];
        let mut halves = vec![0i64; 16];
        for i in 0..56 {
            let b = i64::from(bytes[i / 8] >> (7 - i % 8) & 1);
            halves.extend([b, 1 - b]);
        }
        halves.extend([0, 0, 0]);
        let (spill_back, own, spill_on) = (SPILL.0, SPILL.1, SPILL.2);
        let m: Vec<u16> = (0..halves.len())
            .map(|k| {
                let before = if k == 0 { 0 } else { halves[k - 1] };
                let after = halves.get(k + 1).copied().unwrap_or(0);
                (spill_on * before + own * halves[k] + spill_back * after) as u16
            })
            .collect();
        let (mut got, mut prev_one) = ([0u8; 14], [false; BITS]);
        let square = Model2m::square(0, own);
        viterbi_2m(&m, &square, 56, &mut got, &mut prev_one);
        assert_ne!(&got[..7], &bytes, "the square model should misread this");
        let fitted = square.fitted(&m, &got, 56);
        viterbi_2m(&m, &fitted, 56, &mut got, &mut prev_one);
        assert_eq!(&got[..7], &bytes);
    }

    #[test]
    fn plain_slicing_equals_the_scalar_slicer_and_the_decisions() {
        for rate in [Rate::Msps2_0, Rate::Msps2_4] {
            let d = Demodulator::new(rate, 0);
            for (p, slots) in d.phases.iter().enumerate() {
                let plan = BitPlan::new(slots);
                for seed in 0..20 {
                    let m = samples(d.span, seed);
                    let (mut bytes, mut margins) = ([0u8; 14], [0u32; BITS]);
                    slice_plain::<true>(&m, &plan, 0..14, &mut bytes, &mut margins);
                    let (mut want, mut want_margins) = ([0u8; 14], [0u32; BITS]);
                    scalar_slice_plain(&m, &plan, 0..14, &mut want, &mut want_margins);
                    assert_eq!(bytes, want, "{rate:?} {p} {seed}");
                    assert_eq!(margins, want_margins, "{rate:?} {p} {seed}");
                    let mut diffs = [0i32; BITS];
                    bit_diffs::<true>(&m, &plan, 0..BITS, &mut diffs);
                    for (b, &x) in diffs.iter().enumerate() {
                        assert_eq!(
                            bytes[b / 8] >> (7 - b % 8) & 1 == 1,
                            x > 0,
                            "{rate:?} {p} {b}"
                        );
                        assert_eq!(margins[b], x.unsigned_abs(), "{rate:?} {p} {b}");
                    }
                    // A sub-range leaves the other bytes alone.
                    let mut part = [0xa5u8; 14];
                    slice_plain::<true>(&m, &plan, 3..5, &mut part, &mut margins);
                    assert_eq!(part[3..5], want[3..5]);
                    assert!(part[..3].iter().chain(&part[5..]).all(|&x| x == 0xa5));
                }
            }
        }
    }

    /// On 32-bit ARM the kernel tests reach the NEON kernels only on a
    /// NEON CPU (scripts/test-cross runs them under qemu-arm -cpu
    /// cortex-a7); elsewhere they would compare the scalar kernels with
    /// themselves and pass for nothing.
    #[cfg(all(target_arch = "arm", feature = "arm-neon"))]
    #[test]
    fn the_kernel_tests_run_the_neon_kernels() {
        assert!(neon_available(), "run these tests on a CPU with NEON");
    }

    /// The SIMD32 kernels (32-bit ARM) against the sums one sample at a
    /// time, on samples over the whole 16-bit range, with the slice
    /// starting at both word alignments of its buffer.
    #[cfg(all(target_arch = "arm", feature = "arm-neon"))]
    #[test]
    fn the_simd32_kernels_equal_the_plain_sums() {
        for rate in [Rate::Msps2_0, Rate::Msps2_4] {
            let d = Demodulator::new(rate, 0);
            for slots in &d.phases {
                let (bits, pre) = (BitPlan::new(slots), PreamblePlan::new(slots, 20));
                for seed in 0..10 {
                    let buf = samples(d.span + 1, seed);
                    for m in [&buf[..d.span], &buf[1..]] {
                        for b in 0..BITS {
                            // SAFETY: reach < span <= m.len(), b < BITS.
                            let (got, want) = unsafe {
                                (simd32::bit_diff(m, &bits, b), plain_bit_diff(m, &bits, b))
                            };
                            assert_eq!(got, want, "{rate:?} {seed} {b}");
                        }
                        assert_eq!(
                            simd32::preamble_score(m, &pre),
                            plain_preamble_score(m, &pre)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn vector_kernels_equal_the_scalar_ones_and_the_slot_sums() {
        for rate in [Rate::Msps2_0, Rate::Msps2_4] {
            let d = Demodulator::new(rate, 0);
            for (p, slots) in d.phases.iter().enumerate() {
                let bits = BitPlan::new(slots);
                let pre = PreamblePlan::new(slots, 20);
                for seed in 0..20 {
                    let m = samples(d.span, seed);
                    let mut out = [0i32; BITS];
                    bit_diffs::<true>(&m, &bits, 0..BITS, &mut out);
                    for (b, &got) in out.iter().enumerate() {
                        assert_eq!(got, scalar_bit_diff(&m, &bits, b), "{rate:?} {p} {b}");
                        // Halving loses at most one unit per weight.
                        let half: Vec<u16> = m.iter().map(|x| x & !1).collect();
                        let e = |k: usize| {
                            let sl = slots[k];
                            let o = usize::from(sl.offset);
                            i32::from(half[o]) * i32::from(sl.w0)
                                + i32::from(half[o + 1]) * i32::from(sl.w1)
                        };
                        assert_eq!(got, e(16 + 2 * b) - e(17 + 2 * b), "{rate:?} {p} {b}");
                    }
                    assert_eq!(
                        preamble_score::<true>(&m, &pre),
                        scalar_preamble_score(&m, &pre),
                        "{rate:?} {p}"
                    );
                }
            }
        }
    }

    #[test]
    fn viterbi_finds_the_least_squared_error_of_every_sequence() {
        // Eight bits: all 256 sequences can be scored outright, with the
        // samples and levels quartered as the search quarters them.
        let nbits = 8;
        for seed in 0..40u32 {
            let m = samples(16 + 2 * nbits + 1, seed);
            let model = Model2m::square(seed as usize % 4, 9000 + 1000 * i64::from(seed % 7))
                .fitted(&m, &[(seed * 37) as u8; 14], nbits);
            let q = |x: i64| x.clamp(0, 65535) >> 2;
            let y = |j: usize| i64::from(m[16 + j] >> 2);
            let cost = |bits: u32| {
                let bit = |i: usize| (bits >> (nbits - 1 - i) & 1) as usize;
                let mut c = 0;
                for i in 0..nbits {
                    let (prev, b) = (if i == 0 { 1 } else { bit(i - 1) }, bit(i));
                    let next = if i + 1 < nbits { bit(i + 1) } else { 0 };
                    c += (y(2 * i) - q(model.open[prev][b])).pow(2);
                    c += (y(2 * i + 1) - q(model.close[b][next])).pow(2);
                }
                // The silence after the last bit opens as a 0 would.
                c + (y(2 * nbits) - q(model.open[bit(nbits - 1)][0])).pow(2)
            };
            let best = (0..256).map(cost).min().unwrap();
            let (mut got, mut prev_one) = ([0u8; 14], [false; BITS]);
            viterbi_2m(&m, &model, nbits, &mut got, &mut prev_one);
            assert_eq!(
                cost(u32::from(got[0])),
                best,
                "seed {seed}: read {:08b}",
                got[0]
            );
            for (i, &one) in prev_one.iter().enumerate().take(nbits).skip(1) {
                assert_eq!(one, got[0] >> (8 - i) & 1 == 1, "seed {seed} bit {i}");
            }
        }
    }

    #[test]
    fn vector_branch_metrics_equal_the_scalar_ones() {
        for nbits in [56, 112, 9] {
            for seed in 0..20 {
                let m = samples(16 + 2 * nbits + 1, seed);
                let model = Model2m::square(seed as usize % 4, 20_000).fitted(
                    &m,
                    &[(seed * 91) as u8; 14],
                    nbits,
                );
                let br = Branches::new(&model);
                let (mut a, mut b) = ([[0i32; BITS + 1]; 4], [[0i32; BITS + 1]; 4]);
                scalar_branch_metrics(&m, &br, 1..=nbits, &mut a);
                branch_metrics(&m, &br, nbits, &mut b);
                assert!(a == b, "nbits {nbits} seed {seed}");
            }
        }
    }
}
