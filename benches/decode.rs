//! Decoder throughput on the shared recordings and on a simulated busy sky:
//! IQ bytes in, accepted frames out, through [`IqDecoder`] in the chunks the
//! CLI reads. The Pi Zero's CPU is the budget; `scripts/bench` measures the
//! whole binary (CPU time, peak RSS) against dump1090-fa and readsb.
//!
//! `cargo bench --bench decode` takes about four minutes: each iteration
//! is seconds long, so criterion runs flat sampling with ten samples at
//! least and the measurement times below (longer only on a slow machine).
//! It reports throughput in samples per second (`Melem/s` = MS/s).
//!
//! Under `cargo test --all-targets` (no `--bench` argument) criterion runs
//! each routine once to check it works; the inputs are then cut to one copy
//! of each recording and 1 s of sky so that the test suite stays fast.
use std::hint::black_box;
use std::io;
use std::path::Path;
use std::time::Duration;

use adsb_kinesis::decoder::{IqDecoder, CHUNK_BYTES};
use adsb_kinesis::demod::Rate;
use adsb_kinesis::iq::SampleFormat;
use adsb_kinesis::sim::{simulate, SimConfig};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};

const IQ_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata/iq");

/// Copies of each recording decoded per iteration: 50 × 0.178 s = 8.9 s of
/// signal, the input of the targets quoted by `scripts/bench`.
const REPEAT: usize = 50;

/// Seconds of simulated sky: 288 MB of cu8 in memory, about 11 s of CPU
/// per iteration on the development machine.
const SKY_S: f64 = 60.0;

/// `cargo bench` passes `--bench`; `cargo test` does not.
fn benchmarking() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn recording(name: &str, repeat: usize) -> Vec<u8> {
    let path = Path::new(IQ_DIR).join(name);
    let one = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the shared recordings live beside the repo)",
            path.display()
        )
    });
    one.repeat(repeat)
}

/// Decodes `iq` the way `adsb-kinesis decode` does; returns the frame count.
fn decode(iq: &[u8], format: SampleFormat, rate: Rate) -> usize {
    let mut dec = IqDecoder::new(format, rate, 1);
    let mut out = Vec::new();
    let mut frames = 0;
    for chunk in iq.chunks(CHUNK_BYTES) {
        dec.push(chunk, &mut out);
        frames += out.len();
        out.clear();
    }
    dec.finish(&mut out);
    frames + out.len()
}

fn bench_decode(c: &mut Criterion) {
    let full = benchmarking();
    let repeat = if full { REPEAT } else { 1 };
    // name, file, rate, seconds to measure (about ten iterations each).
    let inputs = [
        ("modes1_2400", "modes1_2400.cu8", Rate::Msps2_4, "2.4MS", 60),
        ("modes1", "modes1.bin", Rate::Msps2_0, "2.0MS", 25),
    ];

    let mut g = c.benchmark_group("decode");
    // Each iteration takes seconds: one iteration per sample, ten samples.
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1));

    for (name, file, rate, rate_name, secs) in inputs {
        let iq = recording(file, repeat);
        g.throughput(Throughput::Elements(iq.len() as u64 / 2));
        g.measurement_time(Duration::from_secs(secs));
        g.bench_function(format!("{name}_x{repeat}_{rate_name}"), |b| {
            b.iter(|| decode(black_box(&iq), SampleFormat::Cu8, rate))
        });
    }

    // The same sky as `adsb-kinesis simulate --aircraft 150 --duration S --seed 1`.
    let cfg = SimConfig {
        aircraft: 150,
        duration_s: if full { SKY_S } else { 1.0 },
        seed: 1,
        ..SimConfig::default()
    };
    let mut sky = Vec::with_capacity((cfg.duration_s * f64::from(cfg.sample_rate)) as usize * 2);
    simulate(&cfg, &mut sky, &mut io::sink()).expect("simulate a valid config in memory");
    g.throughput(Throughput::Elements(sky.len() as u64 / 2));
    g.measurement_time(Duration::from_secs(120));
    let id = format!("sky150_{}s_2.4MS", cfg.duration_s);
    g.bench_function(id, |b| {
        b.iter(|| decode(black_box(&sky), SampleFormat::Cu8, Rate::Msps2_4))
    });
    g.finish();
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);
