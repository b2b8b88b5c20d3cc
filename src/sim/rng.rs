//! Deterministic pseudo-random numbers for the simulator.
//!
//! Hand-written so that a seed reproduces the same IQ file on every platform
//! and crate version: xoshiro256** (Blackman & Vigna, 2018) seeded through
//! SplitMix64, which spreads a small or low-entropy seed over the 256-bit
//! state (an all-zero xoshiro state would be stuck at zero forever).

/// One SplitMix64 step: advances `state` and returns the mixed output.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256** generator.
#[derive(Clone, Debug)]
pub(crate) struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator for `seed`; `stream` selects an independent sequence for
    /// the same seed, so that (for example) the noise does not shift when the
    /// traffic model draws one more number.
    pub(crate) fn new(seed: u64, stream: u64) -> Self {
        let mut sm = seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Rng { s }
    }

    #[cfg(test)]
    fn from_state(s: [u64; 4]) -> Self {
        Rng { s }
    }

    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1), 53 bits.
    #[inline]
    pub(crate) fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in (0, 1]: safe to take the logarithm of.
    #[inline]
    fn f64_open0(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    #[inline]
    pub(crate) fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    /// Uniform integer in 0..n (n > 0). Lemire's multiply-shift; the bias is
    /// below 2^-40 for the small `n` used here, far under anything a
    /// simulation could notice, so no rejection loop.
    #[inline]
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `p`.
    #[inline]
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Exponentially distributed with the given mean: the gap between events
    /// of a Poisson process.
    pub(crate) fn exponential(&mut self, mean: f64) -> f64 {
        -mean * self.f64_open0().ln()
    }

    /// One circularly-symmetric complex Gaussian sample with E|z|^2 = 1,
    /// by the polar form of Box–Muller (Marsaglia): a point uniform in the
    /// unit disc has uniform phase and |p|^2 = s uniform in (0, 1), so
    /// p·sqrt(-ln(s)/s) has uniform phase and |z|^2 = -ln s ~ Exp(1),
    /// which is exactly a unit-power complex Gaussian. It avoids the sine
    /// and cosine of the textbook form; noise is most of the simulator's
    /// work (every output sample needs one; few carry a reply), so that
    /// matters.
    ///
    /// Single precision throughout: 24-bit coordinates still reach
    /// |z| ≈ 5.7 (probability e^-32 beyond), far past anything an 8- or
    /// 16-bit quantiser distinguishes, and f32 arithmetic makes this about
    /// twice as fast as the f64 textbook form.
    #[inline]
    pub(crate) fn complex_gaussian(&mut self) -> (f32, f32) {
        const SCALE: f32 = 1.0 / (1u32 << 23) as f32;
        loop {
            // Two 24-bit coordinates from one draw, centred in their cells
            // so that neither is ever exactly 0 or ±1.
            let r = self.next_u64();
            let x = ((r >> 40) as f32 + 0.5) * SCALE - 1.0;
            let y = ((r >> 16 & 0xFF_FFFF) as f32 + 0.5) * SCALE - 1.0;
            let s = x * x + y * y;
            if s < 1.0 {
                let f = (-s.ln() / s).sqrt();
                return (x * f, y * f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference outputs from the authors' C implementations
    // (prng.di.unimi.it: splitmix64.c, xoshiro256starstar.c).
    #[test]
    fn splitmix64_known_answer() {
        let mut s = 0u64;
        assert_eq!(splitmix64(&mut s), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(&mut s), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn xoshiro_known_answer() {
        let mut r = Rng::from_state([1, 2, 3, 4]);
        let got: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
        assert_eq!(got, [11520, 0, 1509978240, 1215971899390074240]);
    }

    #[test]
    fn streams_differ() {
        let mut a = Rng::new(1, 0);
        let mut b = Rng::new(1, 1);
        assert_ne!(a.next_u64(), b.next_u64());
    }

    #[test]
    fn gaussian_moments() {
        let mut r = Rng::new(7, 0);
        let n = 200_000;
        let (mut p, mut mi, mut mq, mut iq) = (0.0, 0.0, 0.0, 0.0);
        for _ in 0..n {
            let (i, q) = r.complex_gaussian();
            let (i, q) = (f64::from(i), f64::from(q));
            p += i * i + q * q;
            mi += i;
            mq += q;
            iq += i * q;
        }
        let n = n as f64;
        assert!((p / n - 1.0).abs() < 0.01, "power {}", p / n);
        assert!((mi / n).abs() < 0.01 && (mq / n).abs() < 0.01);
        assert!((iq / n).abs() < 0.01, "I/Q correlated");
    }
}
