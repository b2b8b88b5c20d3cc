//! Sensitivity against the simulator's ground truth: how many transmitted
//! frames come back, how many frames come back that were never sent, and how
//! that falls with SNR. SNR is the simulator's: pulse power over the noise
//! power in the whole sampled bandwidth (see `src/sim/mod.rs`).
//!
//! `cargo test --release --test sim_recall -- --nocapture` prints the curve.

use adsb_kinesis::sim::recall::{score, Score};
use adsb_kinesis::sim::SimConfig;

/// Simulate and decode (one bit repaired, as `decode` does by default).
fn run(cfg: SimConfig) -> Score {
    score(cfg, 1)
}

fn sky(rate: u32, snr: f64, seed: u64) -> SimConfig {
    SimConfig {
        aircraft: 10,
        duration_s: 20.0,
        sample_rate: rate,
        snr_db: (snr, snr),
        seed,
        ..SimConfig::default()
    }
}

/// Six 20-second skies of ten aircraft at the same SNR, scored together:
/// about 8 000 frames. One sky alone is too few for a 1 % criterion: of its
/// ~1 250 frames, 8 to 16 overlap another reply by chance, and with all
/// aircraft equally strong most of those are lost at either rate.
fn six_skies(rate: u32, snr: f64) -> Score {
    let mut total = Score::default();
    for seed in 1..=6 {
        total.add(&run(sky(rate, snr, seed)));
    }
    total
}

fn twenty_db(rate: u32) {
    let s = six_skies(rate, 20.0);
    eprintln!(
        "{rate} S/s 20 dB: {s:?} recall {:.4} clear {:.4}",
        s.recall(),
        s.clear_recall()
    );
    assert!(s.sent > 7000);
    assert!(s.recall() >= 0.99, "{s:?}");
    assert!(s.clear_recall() >= 0.999, "{s:?}");
    assert_eq!(s.false_frames, 0, "{s:?}");
}

#[test]
fn twenty_db_at_2_4_msps_recovers_99_percent_with_no_false_frames() {
    twenty_db(2_400_000);
}

#[test]
fn twenty_db_at_2_0_msps_recovers_99_percent_with_no_false_frames() {
    twenty_db(2_000_000);
}

#[test]
fn recall_falls_gracefully_with_snr() {
    for rate in [2_400_000, 2_000_000] {
        let mut last = 1.0;
        let mut curve = Vec::new();
        for snr in [25.0, 20.0, 15.0, 12.0, 9.0, 6.0] {
            let s = run(SimConfig {
                duration_s: 8.0,
                ..sky(rate, snr, 11)
            });
            curve.push(format!(
                "{snr} dB: {:.3} ({} false)",
                s.recall(),
                s.false_frames
            ));
            // Monotone within noise: weaker signal never decodes clearly better.
            assert!(
                s.recall() <= last + 0.02,
                "{rate} {snr} dB: {:.3} after {last:.3}",
                s.recall()
            );
            last = s.recall();
        }
        eprintln!("{rate} S/s: {}", curve.join(", "));
        assert!(last < 0.9, "at 6 dB recall should have fallen: {curve:?}");
    }
}
