//! How fast the simulator generates a busy sky (150 aircraft, 60 s,
//! 2.4 MS/s cu8, 5 % deliberate overlaps), written to a sink.
//!
//! `cargo run --release --example sim_speed`
use std::io;

use adsb_kinesis::sim::{simulate, SimConfig};

fn main() {
    let c = SimConfig {
        aircraft: 150,
        duration_s: 60.0,
        overlap: 0.05,
        ..SimConfig::default()
    };
    let start = std::time::Instant::now();
    let stats = simulate(&c, &mut io::sink(), &mut io::sink()).expect("simulate");
    let dt = start.elapsed();
    println!(
        "{} samples, {} frames ({} overlapped) in {:.2?} ({:.1}x real time)",
        stats.samples,
        stats.frames,
        stats.overlapped,
        dt,
        60.0 / dt.as_secs_f64()
    );
}
