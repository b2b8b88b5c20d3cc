//! Sensitivity against the simulator's truth: how many transmitted frames
//! the decoder gives back, and how many it gives that were never sent. The
//! scorer behind the recall tests (`tests/it/sim_recall.rs`) and the SNR
//! sweep (`examples/sweep.rs`).

use std::collections::HashMap;

use super::{SimConfig, Simulator, TruthFrame};
use crate::decoder::IqDecoder;
use crate::demod::Rate;

/// What came back of one or more simulated runs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Score {
    /// Frames the simulator put on the air.
    pub sent: usize,
    /// Of those, frames decoded with the same bytes within 4 samples of
    /// the truth's start.
    pub found: usize,
    /// Frames the simulator did not overlap with another reply.
    pub clear_sent: usize,
    /// Of those, frames found.
    pub clear_found: usize,
    /// Frames decoded that match no sent frame.
    pub false_frames: usize,
}

impl Score {
    /// Found over sent.
    pub fn recall(&self) -> f64 {
        self.found as f64 / self.sent.max(1) as f64
    }

    /// Found over sent, of the frames no other reply overlapped.
    pub fn clear_recall(&self) -> f64 {
        self.clear_found as f64 / self.clear_sent.max(1) as f64
    }

    /// Both runs' counts together.
    pub fn add(&mut self, other: &Score) {
        self.sent += other.sent;
        self.found += other.found;
        self.clear_sent += other.clear_sent;
        self.clear_found += other.clear_found;
        self.false_frames += other.false_frames;
    }
}

/// Issue 17's busy site: 150 aircraft for 60 s answering radars at 10
/// replies/s each on top of their squitters (~2 500 replies/s, about a
/// third overlapped by chance), levels uniform over 6-30 dB, the default
/// carrier offsets. The sky of `examples/busy.rs` and
/// `examples/overlap_diag.rs`.
pub fn busy_sky(seed: u64, sample_rate: u32) -> SimConfig {
    SimConfig {
        aircraft: 150,
        duration_s: 60.0,
        sample_rate,
        snr_db: (6.0, 30.0),
        seed,
        reply_rate: 10.0,
        ..SimConfig::default()
    }
}

/// Simulate `cfg` (cu8) and decode it at its rate, repairing up to
/// `fix_bits` bit errors. A frame counts as found when the same bytes come
/// out within 4 samples of the truth's start, each decoded frame matching
/// one sent frame at most.
///
/// # Panics
/// If `cfg.sample_rate` is not one the demodulator takes.
pub fn score(cfg: SimConfig, fix_bits: u8) -> Score {
    let rate = Rate::from_hz(cfg.sample_rate).expect("2.0 or 2.4 MS/s");
    let format = cfg.format;
    let mut sim = Simulator::new(cfg);
    let mut dec = IqDecoder::new(format, rate, fix_bits);
    let (mut buf, mut truth, mut out) = (vec![0u8; 1 << 16], Vec::<TruthFrame>::new(), Vec::new());
    let mut all_truth = Vec::new();
    loop {
        let n = sim.fill(&mut buf, &mut truth);
        all_truth.append(&mut truth);
        if n == 0 {
            break;
        }
        dec.push(&buf[..n], &mut out);
    }
    dec.finish(&mut out);
    let mut got: HashMap<Vec<u8>, Vec<(u64, bool)>> = HashMap::new();
    for r in &out {
        got.entry(r.frame.bytes().to_vec())
            .or_default()
            .push((r.sample, false));
    }
    let mut s = Score::default();
    for t in &all_truth {
        s.sent += 1;
        s.clear_sent += usize::from(!t.overlapped);
        if let Some(slot) = got.get_mut(&t.bytes).and_then(|v| {
            v.iter_mut()
                .find(|(at, used)| !used && at.abs_diff(t.sample) <= 4)
        }) {
            slot.1 = true;
            s.found += 1;
            s.clear_found += usize::from(!t.overlapped);
        }
    }
    s.false_frames = got.values().flatten().filter(|(_, used)| !used).count();
    s
}

/// The SNR at which `curve` (SNR, recall) pairs, in rising SNR, first
/// reaches `level`, interpolated linearly between the two points around
/// it; `None` if it never does, or does at the first point already.
pub fn crossing(curve: &[(f64, f64)], level: f64) -> Option<f64> {
    curve.windows(2).find_map(|w| {
        let ((s0, r0), (s1, r1)) = (w[0], w[1]);
        (r0 < level && r1 >= level).then(|| s0 + (s1 - s0) * (level - r0) / (r1 - r0))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossing_interpolates_between_the_points_around_the_level() {
        let curve = [(8.0, 0.1), (10.0, 0.3), (12.0, 0.7), (14.0, 0.95)];
        assert_eq!(crossing(&curve, 0.5), Some(11.0));
        assert_eq!(crossing(&curve, 0.95), Some(14.0));
        assert_eq!(crossing(&curve, 0.05), None, "already above at the start");
        assert_eq!(crossing(&curve, 0.99), None, "never reached");
    }
}
