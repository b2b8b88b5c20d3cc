//! The noise floor the demodulator measures its thresholds against.

/// Samples per noise-floor block (3.4 ms at 2.4 MS/s): long enough that
/// replies cover a small part of it even on a busy channel.
pub(super) const NOISE_BLOCK: u64 = 8192;
/// One sample in this many enters the noise estimate.
pub(super) const NOISE_STRIDE: u64 = 32;

/// The noise floor, estimated per block of [`NOISE_BLOCK`] samples as the
/// lower quartile of its magnitudes. Most samples hold only noise even on a
/// busy channel, and the quartile ignores the replies in the rest; a mean
/// would follow the traffic. Blocks are aligned to absolute sample indices,
/// so the estimates do not depend on how the input was chunked.
pub(super) struct NoiseFloor {
    /// Subsampled magnitudes of the block being filled.
    block: Vec<u16>,
    /// Absolute index of the next sample to arrive.
    next: u64,
    /// Lower quartile per completed block, oldest first: (block index, p25).
    pub(super) done: std::collections::VecDeque<(u64, u16)>,
}

impl NoiseFloor {
    pub(super) fn new() -> Self {
        Self {
            block: Vec::with_capacity((NOISE_BLOCK / NOISE_STRIDE) as usize),
            next: 0,
            done: std::collections::VecDeque::new(),
        }
    }

    pub(super) fn push(&mut self, mag: &[u16]) {
        let mut i = 0usize;
        while i < mag.len() {
            let abs = self.next + i as u64;
            let block_end = (abs / NOISE_BLOCK + 1) * NOISE_BLOCK;
            let take = ((block_end - abs) as usize).min(mag.len() - i);
            let first = ((NOISE_STRIDE - abs % NOISE_STRIDE) % NOISE_STRIDE) as usize;
            let seg = &mag[i..i + take];
            let mut j = first;
            while j < seg.len() {
                self.block.push(seg[j]);
                j += NOISE_STRIDE as usize;
            }
            i += take;
            if abs + take as u64 == block_end {
                self.close(abs / NOISE_BLOCK);
            }
        }
        self.next += mag.len() as u64;
    }

    /// End of input: the partial last block gets an estimate of its own.
    pub(super) fn finish(&mut self) {
        if !self.block.is_empty() {
            self.close(self.next / NOISE_BLOCK);
        }
    }

    pub(super) fn close(&mut self, index: u64) {
        let q = self.block.len() / 4;
        let p25 = match self.block.len() {
            0 => 0,
            _ => *self.block.select_nth_unstable(q).1,
        };
        self.block.clear();
        self.done.push_back((index, p25));
    }

    /// Samples before this absolute index have a known floor.
    pub(super) fn known_until(&self) -> u64 {
        self.done.back().map_or(0, |&(k, _)| (k + 1) * NOISE_BLOCK)
    }

    /// The floor of the block holding absolute sample `abs`, forgetting
    /// older blocks. Past the last known block (the padding `finish`
    /// adds), the last estimate holds.
    pub(super) fn at(&mut self, abs: u64) -> u16 {
        let k = abs / NOISE_BLOCK;
        while self.done.len() > 1 && self.done[0].0 < k {
            self.done.pop_front();
        }
        self.done.front().map_or(0, |&(_, p)| p)
    }
}
