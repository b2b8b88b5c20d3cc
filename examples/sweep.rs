//! Recall against SNR at both sample rates, for issue 17's comparison of
//! the 2.4 and 2.0 MS/s paths: the same skies (same seeds, so the same
//! aircraft and replies) rendered at each rate, no overlaps added, scored
//! on the replies that no other reply overlapped by chance ("clear").
//! Prints a row per SNR, then per rate the SNR where clear recall crosses
//! 50 % and 90 %, recall at 10, 12, 14 and 20 dB, and the false frames
//! over the whole sweep. SNR is the simulator's (see `src/sim/mod.rs`):
//! pulse power over the noise power in the sampled bandwidth.
//!
//! `cargo run --release --example sweep [-- SEEDS [FROM TO STEP]]`
//! (defaults: seeds 1-2, 6 to 20 dB in 0.5 dB steps; 10 aircraft, 10 s
//! a sky, about 650 replies a seed and SNR point).
use adsb_kinesis::sim::recall::{crossing, score, Score};
use adsb_kinesis::sim::SimConfig;

const RATES: [u32; 2] = [2_400_000, 2_000_000];

fn arg(args: &[String], i: usize, default: f64) -> f64 {
    args.get(i).map_or(default, |a| {
        a.parse()
            .unwrap_or_else(|_| panic!("argument {i}: not a number: {a}"))
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seeds = arg(&args, 0, 2.0) as u64;
    let (from, to, step) = (arg(&args, 1, 6.0), arg(&args, 2, 20.0), arg(&args, 3, 0.5));
    assert!(
        seeds >= 1 && step > 0.0 && to >= from,
        "SEEDS >= 1, FROM <= TO, STEP > 0"
    );
    let points = ((to - from) / step).round() as usize + 1;
    let snrs: Vec<f64> = (0..points).map(|k| from + step * k as f64).collect();
    println!("| SNR dB | clear recall 2.4 MS/s | clear recall 2.0 MS/s | replies a point |");
    println!("|---|---|---|---|");
    let mut curves = [Vec::new(), Vec::new()];
    let mut totals = [Score::default(); 2];
    for &snr in &snrs {
        let mut row = [Score::default(); 2];
        for (r, &rate) in RATES.iter().enumerate() {
            for seed in 1..=seeds {
                row[r].add(&score(
                    SimConfig {
                        aircraft: 10,
                        duration_s: 10.0,
                        sample_rate: rate,
                        snr_db: (snr, snr),
                        seed,
                        ..SimConfig::default()
                    },
                    1,
                ));
            }
            curves[r].push((snr, row[r].clear_recall()));
            totals[r].add(&row[r]);
        }
        println!(
            "| {snr:.1} | {:.3} | {:.3} | {} |",
            row[0].clear_recall(),
            row[1].clear_recall(),
            row[0].clear_sent
        );
    }
    println!();
    for (r, rate) in RATES.iter().enumerate() {
        let at = |db: f64| {
            curves[r]
                .iter()
                .find(|(s, _)| (s - db).abs() < 1e-9)
                .map_or("-".to_string(), |(_, x)| format!("{x:.3}"))
        };
        let cross =
            |level| crossing(&curves[r], level).map_or("-".into(), |s| format!("{s:.2} dB"));
        println!(
            "{:.1} MS/s: 50 % at {}, 90 % at {}; recall at 10/12/14/20 dB: {} {} {} {}; \
             false frames {} of {} decoded",
            f64::from(*rate) / 1e6,
            cross(0.5),
            cross(0.9),
            at(10.0),
            at(12.0),
            at(14.0),
            at(20.0),
            totals[r].false_frames,
            totals[r].found + totals[r].false_frames
        );
    }
}
