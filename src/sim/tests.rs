//! Tests of the whole simulator. Those that run aircraft transmit DF17
//! airborne positions and so need `modes::cpr::encode_airborne`; the
//! noise-only ones (`aircraft: 0`) do not.

use super::*;
use crate::modes::crc::residue;
use crate::modes::Icao;

fn cfg(aircraft: usize, duration_s: f64) -> SimConfig {
    SimConfig {
        aircraft,
        duration_s,
        ..SimConfig::default()
    }
}

/// Runs `cfg` through `fill` with `chunk`-byte buffers.
fn run(cfg: &SimConfig, chunk: usize) -> (Vec<u8>, Vec<TruthFrame>) {
    let mut sim = Simulator::new(cfg.clone());
    let mut iq = Vec::new();
    let mut truth = Vec::new();
    let mut buf = vec![0u8; chunk];
    loop {
        let n = sim.fill(&mut buf, &mut truth);
        if n == 0 {
            break;
        }
        iq.extend_from_slice(&buf[..n]);
    }
    (iq, truth)
}

/// Complex samples in Cu8 LSB units around zero.
fn samples(format: SampleFormat, iq: &[u8]) -> Vec<(f64, f64)> {
    match format {
        SampleFormat::Cu8 => iq
            .chunks_exact(2)
            .map(|c| (f64::from(c[0]) - 127.5, f64::from(c[1]) - 127.5))
            .collect(),
        SampleFormat::Cs16 => iq
            .chunks_exact(4)
            .map(|c| {
                let s = f64::from(CS16_PER_LSB);
                (
                    f64::from(i16::from_le_bytes([c[0], c[1]])) / s,
                    f64::from(i16::from_le_bytes([c[2], c[3]])) / s,
                )
            })
            .collect(),
    }
}

// ---- noise only: independent of the CPR encoder ----

#[test]
fn output_length_is_exact() {
    for rate in [2_000_000, 2_400_000] {
        for format in [SampleFormat::Cu8, SampleFormat::Cs16] {
            for duration in [0.05, 0.123_456_7] {
                let c = SimConfig {
                    sample_rate: rate,
                    format,
                    ..cfg(0, duration)
                };
                let (iq, _) = run(&c, 100_001);
                let expect =
                    (duration * f64::from(rate)).round() as usize * format.bytes_per_sample();
                assert_eq!(iq.len(), expect, "{rate} {format:?} {duration}");
            }
        }
    }
}

#[test]
fn noise_power_matches_config() {
    for format in [SampleFormat::Cu8, SampleFormat::Cs16] {
        let (iq, truth) = run(
            &SimConfig {
                format,
                ..cfg(0, 0.2)
            },
            65_536,
        );
        assert!(truth.is_empty());
        let s = samples(format, &iq);
        let n = s.len() as f64;
        let power = s.iter().map(|(i, q)| i * i + q * q).sum::<f64>() / n;
        let (mi, mq) = s.iter().fold((0.0, 0.0), |(a, b), (i, q)| (a + i, b + q));
        assert!(
            (power / NOISE_POWER_LSB2 - 1.0).abs() < 0.05,
            "{format:?}: {power} LSB²"
        );
        assert!((mi / n).abs() < 0.05 && (mq / n).abs() < 0.05, "DC offset");
    }
}

#[test]
fn noise_is_seeded() {
    let a = run(&cfg(0, 0.01), 4096).0;
    let b = run(&cfg(0, 0.01), 10_000).0;
    let c = run(
        &SimConfig {
            seed: 2,
            ..cfg(0, 0.01)
        },
        4096,
    )
    .0;
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn invalid_configs_are_rejected() {
    let bad = [
        SimConfig {
            sample_rate: 0,
            ..SimConfig::default()
        },
        SimConfig {
            duration_s: -1.0,
            ..SimConfig::default()
        },
        SimConfig {
            duration_s: f64::NAN,
            ..SimConfig::default()
        },
        SimConfig {
            snr_db: (20.0, 10.0),
            ..SimConfig::default()
        },
        SimConfig {
            overlap: 1.5,
            ..SimConfig::default()
        },
        SimConfig {
            receiver: (89.0, 0.0),
            ..SimConfig::default()
        },
        SimConfig {
            max_freq_offset_hz: -1.0,
            ..SimConfig::default()
        },
        SimConfig {
            reply_rate: -1.0,
            ..SimConfig::default()
        },
        SimConfig {
            reply_rate: f64::NAN,
            ..SimConfig::default()
        },
        SimConfig {
            reply_rate: 1000.0,
            ..SimConfig::default()
        },
    ];
    for c in bad {
        assert!(Simulator::try_new(c.clone()).is_err(), "{c:?}");
    }
    let mut sink = Vec::new();
    let err = simulate(&cfg(0, f64::INFINITY), &mut sink, &mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn tiny_buffers_and_zero_duration() {
    let mut sim = Simulator::new(cfg(0, 0.0));
    assert_eq!(sim.fill(&mut [0u8; 64], &mut Vec::new()), 0);
    let mut sim = Simulator::new(cfg(0, 1.0));
    // Odd-sized buffer: only whole samples are written.
    assert_eq!(sim.fill(&mut [0u8; 7], &mut Vec::new()), 6);
    assert_eq!(sim.fill(&mut [0u8; 1], &mut Vec::new()), 0);
    assert_eq!(sim.position(), 3);
}

// ---- with aircraft: need modes::cpr::encode_airborne ----

#[test]
fn truth_frames_have_valid_crc() {
    let c = SimConfig {
        overlap: 0.2,
        ..cfg(20, 5.0)
    };
    let (iq, truth) = run(&c, 256 * 1024);
    assert_eq!(iq.len(), 5 * 2_400_000 * 2);
    let mut by_df = [0u32; 32];
    for f in &truth {
        let icao = u32::from_be_bytes([0, f.bytes[1], f.bytes[2], f.bytes[3]]);
        match f.df() {
            11 | 17 => {
                assert_eq!(residue(&f.bytes), 0, "{f}");
                assert_ne!(icao, 0);
                assert_ne!(icao, 0xFF_FFFF);
            }
            4 | 5 | 20 | 21 => assert_ne!(residue(&f.bytes), 0, "{f}"),
            df => panic!("unexpected DF{df}: {f}"),
        }
        let len = if f.df() >= 16 { 14 } else { 7 };
        assert_eq!(f.bytes.len(), len, "{f}");
        by_df[usize::from(f.df())] += 1;
    }
    // AP formats: the residue is the address of an aircraft that squitters.
    let addresses: HashSet<u32> = truth
        .iter()
        .filter(|f| f.df() == 17)
        .map(|f| u32::from_be_bytes([0, f.bytes[1], f.bytes[2], f.bytes[3]]))
        .collect();
    assert!(addresses.len() >= 20, "unique addresses");
    for f in truth.iter().filter(|f| [4, 5, 20, 21].contains(&f.df())) {
        assert!(addresses.contains(&residue(&f.bytes)), "{f}");
    }
    for df in [4, 5, 11, 17, 20, 21] {
        assert!(by_df[df] > 0, "no DF{df}");
    }
    // Rates: 20 aircraft × 5 s × (2 position + 2 velocity + 0.2 ident) ≈ 420
    // DF17, and ≈ 100 DF11; plus 20 % deliberate overlaps.
    assert!((380..=560).contains(&by_df[17]), "DF17 {}", by_df[17]);
    assert!((85..=140).contains(&by_df[11]), "DF11 {}", by_df[11]);
}

#[test]
fn same_seed_same_bytes() {
    let c = SimConfig {
        overlap: 0.3,
        ..cfg(15, 1.0)
    };
    let (a, ta) = run(&c, 256 * 1024);
    let (b, tb) = run(&c, 256 * 1024);
    assert_eq!(a, b);
    assert_eq!(ta, tb);
    let (d, td) = run(&SimConfig { seed: 99, ..c }, 256 * 1024);
    assert_ne!(a, d);
    assert_ne!(ta, td);
}

#[test]
fn chunking_does_not_change_output() {
    let c = SimConfig {
        overlap: 0.3,
        format: SampleFormat::Cs16,
        ..cfg(30, 0.5)
    };
    let (a, ta) = run(&c, 256 * 1024);
    for chunk in [4, 4 * 997, 4 * 40_000 + 2] {
        let (b, tb) = run(&c, chunk);
        assert_eq!(a, b, "chunk {chunk}");
        assert_eq!(ta, tb, "chunk {chunk}");
    }
}

#[test]
fn truth_is_ordered_and_inside_the_run() {
    let c = cfg(40, 2.0);
    let total = c.total_samples().unwrap();
    let (_, truth) = run(&c, 77_777);
    assert!(truth.windows(2).all(|w| w[0].sample <= w[1].sample));
    let fs = f64::from(c.sample_rate);
    for f in &truth {
        let air = (8 + f.bytes.len() * 8) as f64 * 1e-6 * fs;
        assert!(f.sample + (air as u64) < total, "{f}");
        let expect = ((f.time_s + 0.25e-6) * fs).round() as u64;
        assert_eq!(f.sample, expect, "{f}");
    }
}

#[test]
fn fill_reports_frames_of_its_chunk() {
    let mut sim = Simulator::new(cfg(30, 1.0));
    let mut buf = vec![0u8; 2 * 50_000];
    let mut truth = Vec::new();
    let mut start = 0u64;
    loop {
        truth.clear();
        let n = sim.fill(&mut buf, &mut truth) as u64 / 2;
        if n == 0 {
            break;
        }
        assert!(truth.iter().all(|f| (start..start + n).contains(&f.sample)));
        start += n;
    }
}

#[test]
fn overlap_flags_are_exact() {
    let c = SimConfig {
        overlap: 0.3,
        ..cfg(20, 3.0)
    };
    let (_, truth) = run(&c, 256 * 1024);
    let air = |f: &TruthFrame| {
        let t1 = f.time_s + (8 + f.bytes.len() * 8) as f64 * 1e-6;
        (f.time_s, t1)
    };
    let mut flagged = 0;
    for (i, f) in truth.iter().enumerate() {
        let (a0, a1) = air(f);
        let hit = truth.iter().enumerate().any(|(j, g)| {
            let (b0, b1) = air(g);
            i != j && a0 < b1 && b0 < a1
        });
        assert_eq!(hit, f.overlapped, "{f}");
        flagged += usize::from(f.overlapped);
    }
    // Each deliberate overlap flags two frames; chance ones add a few.
    let n = truth.len() as f64;
    let frac = flagged as f64 / n;
    assert!((0.35..0.65).contains(&frac), "flagged {frac}");
}

#[test]
fn deliberate_overlaps_are_weaker_and_late() {
    let c = SimConfig {
        overlap: 1.0,
        snr_db: (20.0, 20.0),
        ..cfg(5, 2.0)
    };
    let (_, truth) = run(&c, 256 * 1024);
    // With one aircraft-SNR of 20 dB, anything else is a deliberate
    // overlapper: 2–10 dB down, starting 5–100 µs into an earlier reply.
    let mut seen = 0;
    for (i, f) in truth.iter().enumerate() {
        if (f.snr_db - 20.0).abs() < 1e-9 {
            continue;
        }
        seen += 1;
        assert!(f.overlapped);
        assert!((10.0..=18.0).contains(&f.snr_db), "{f}");
        let host = truth[..i].iter().rev().find(|g| {
            let dt = (f.time_s - g.time_s) * 1e6;
            (5.0..=100.0).contains(&dt) && dt < (8 + g.bytes.len() * 8) as f64 && g.overlapped
        });
        assert!(host.is_some(), "{f}");
    }
    assert!(
        seen as f64 > 0.4 * truth.len() as f64,
        "{seen} of {}",
        truth.len()
    );
}

#[test]
fn truth_sample_is_on_the_first_preamble_pulse() {
    for rate in [2_000_000, 2_400_000] {
        let c = SimConfig {
            sample_rate: rate,
            format: SampleFormat::Cs16,
            snr_db: (25.0, 25.0),
            ..cfg(3, 2.0)
        };
        let (iq, truth) = run(&c, 256 * 1024);
        let s = samples(c.format, &iq);
        let p = |n: u64| {
            let (i, q) = s[n as usize];
            i * i + q * q
        };
        let a2 = NOISE_POWER_LSB2 * 10f64.powf(2.5);
        let fs = f64::from(rate);
        for f in truth.iter().filter(|f| !f.overlapped) {
            // Sample nearest to `us` µs after the leading edge.
            let at = |us: f64| ((f.time_s + us * 1e-6) * fs).round() as u64;
            assert_eq!(f.sample, at(0.25), "{f}");
            // Preamble pulse centres at 0.25, 1.25, 3.75, 4.75 µs. At
            // 2 MS/s the nearest sample can sit on a pulse edge, at half
            // amplitude: a quarter of the power.
            for d in [0.25, 1.25, 3.75, 4.75] {
                assert!(p(at(d)) > 0.08 * a2, "{f} pulse at {d} µs");
            }
            // Quiet from 1.5 to 3.5 µs.
            for d in [2.25, 2.75] {
                assert!(p(at(d)) < 0.05 * a2, "{f} gap at {d} µs");
            }
        }
    }
}

#[test]
fn pulse_power_matches_snr() {
    // Cs16 and 25 dB: nothing clips. Measure |x|² within ±0.15 µs of the
    // middle of every 1 µs pulse (a 0 bit followed by a 1 bit) of frames
    // on their own, and compare with SNR × noise power.
    for rate in [2_000_000, 2_400_000] {
        let c = SimConfig {
            sample_rate: rate,
            format: SampleFormat::Cs16,
            snr_db: (25.0, 25.0),
            max_freq_offset_hz: 0.0,
            ..cfg(3, 4.0)
        };
        let (iq, truth) = run(&c, 256 * 1024);
        let s = samples(c.format, &iq);
        let fs = f64::from(rate);
        let (mut sum, mut count) = (0.0, 0usize);
        for f in truth.iter().filter(|f| !f.overlapped) {
            let bits = f.bytes.len() * 8;
            let bit = |i: usize| f.bytes[i / 8] >> (7 - i % 8) & 1;
            for i in 0..bits - 1 {
                if bit(i) == 0 && bit(i + 1) == 1 {
                    let mid = f.time_s + (8.0 + i as f64 + 1.0) * 1e-6;
                    let lo = ((mid - 0.15e-6) * fs).ceil() as usize;
                    let hi = ((mid + 0.15e-6) * fs).floor() as usize;
                    for (re, im) in &s[lo..=hi] {
                        sum += re * re + im * im;
                        count += 1;
                    }
                }
            }
        }
        assert!(count > 500, "{count}");
        let signal = sum / count as f64 - NOISE_POWER_LSB2;
        let snr = 10.0 * (signal / NOISE_POWER_LSB2).log10();
        println!("{rate}: measured {snr:.2} dB for 25 dB");
        assert!((snr - 25.0).abs() < 1.0, "{rate}: measured {snr:.2} dB");
    }
}

#[test]
fn simulate_writes_truth_lines() {
    let c = SimConfig {
        overlap: 0.2,
        ..cfg(10, 1.0)
    };
    let mut iq = Vec::new();
    let mut text = Vec::new();
    let stats = simulate(&c, &mut iq, &mut text).unwrap();
    let (iq2, truth) = run(&c, 256 * 1024);
    assert_eq!(iq, iq2);
    let text = String::from_utf8(text).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), truth.len());
    assert_eq!(stats.frames, truth.len() as u64);
    assert_eq!(stats.samples, 2_400_000);
    assert_eq!(stats.by_df.iter().sum::<u64>(), stats.frames);
    for (line, f) in lines.iter().zip(&truth) {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields[0].parse::<u64>().unwrap(), f.sample);
        assert!((fields[1].parse::<f64>().unwrap() - f.time_s).abs() < 1e-7);
        assert_eq!(fields[1].split('.').nth(1).unwrap().len(), 7);
        assert_eq!(fields[2].len(), f.bytes.len() * 2);
        assert_eq!(fields[2], fields[2].to_uppercase());
        assert!((fields[3].parse::<f64>().unwrap() - f.snr_db).abs() <= 0.05);
        assert_eq!(fields.get(4) == Some(&"overlap"), f.overlapped);
        assert!(fields.len() <= 5);
    }
}

#[test]
fn endless_run_keeps_going() {
    let mut sim = Simulator::new(cfg(5, f64::INFINITY));
    let mut buf = vec![0u8; 64 * 1024];
    let mut truth = Vec::new();
    for _ in 0..20 {
        assert_eq!(sim.fill(&mut buf, &mut truth), buf.len());
    }
    assert!(!truth.is_empty());
}

#[test]
fn departed_aircraft_are_replaced() {
    let mut sim = Simulator::new(cfg(3, f64::INFINITY));
    let old = sim.traffic.aircraft[0].icao;
    sim.traffic.aircraft[0].lat += 4.0; // 240 NM north
    let mut buf = vec![0u8; 2 * 2_400_000];
    let mut truth = Vec::new();
    sim.fill(&mut buf, &mut truth);
    let new = sim.traffic.aircraft[0].icao;
    assert_ne!(old, new);
    assert!(!sim.traffic.used.contains(&old.0));
    assert_eq!(sim.traffic.used.len(), 3);
    // The departed aircraft goes silent at its next position squitter
    // (≤ 0.6 s); its successor is heard.
    let addr = |f: &TruthFrame| u32::from_be_bytes([0, f.bytes[1], f.bytes[2], f.bytes[3]]);
    let df17 = |a: Icao| {
        truth
            .iter()
            .filter(|f| f.df() == 17 && addr(f) == a.0)
            .count()
    };
    assert!(df17(old) <= 3);
    assert!(df17(new) > 0);
}

#[test]
fn constant_memory_long_run() {
    // 150 aircraft for 30 s through a 256 KiB buffer: the queues stay the
    // size of the traffic, not of the run.
    let c = SimConfig {
        overlap: 0.1,
        ..cfg(150, 30.0)
    };
    let mut sim = Simulator::new(c);
    let mut buf = vec![0u8; 256 * 1024];
    let mut truth = Vec::new();
    let (mut max_on_air, mut max_queue, mut frames) = (0, 0, 0);
    loop {
        truth.clear();
        if sim.fill(&mut buf, &mut truth) == 0 {
            break;
        }
        frames += truth.len();
        max_on_air = max_on_air.max(sim.on_air.len());
        max_queue = max_queue.max(sim.traffic.queue.len());
        assert!(sim.buf.len() == BLOCK);
    }
    assert_eq!(sim.position(), 72_000_000);
    assert!(frames > 150 * 30 * 5, "{frames}");
    assert!(max_on_air < 60, "{max_on_air} replies held");
    assert!(max_queue <= 150 * 6 + 40, "{max_queue} events queued");
}

#[test]
fn reply_rate_sets_the_interrogated_replies_and_leaves_the_squitters() {
    let count = |reply_rate| {
        let mut c = cfg(30, 20.0);
        c.reply_rate = reply_rate;
        let stats = simulate(&c, &mut io::sink(), &mut io::sink()).unwrap();
        let ap: u64 = [4, 5, 20, 21].iter().map(|&df| stats.by_df[df]).sum();
        (ap, stats.frames - ap)
    };
    let (ap_quiet, squitters_quiet) = count(1.25);
    let (ap_busy, squitters_busy) = count(10.0);
    // Eight times the rate: eight times the replies, give or take the
    // randomness of 30 aircraft's rates and Poisson arrivals.
    let ratio = ap_busy as f64 / ap_quiet as f64;
    assert!((6.0..10.0).contains(&ratio), "{ap_busy} / {ap_quiet}");
    let s = squitters_busy as f64 / squitters_quiet as f64;
    assert!(
        (0.9..1.1).contains(&s),
        "{squitters_busy} / {squitters_quiet}"
    );
}
