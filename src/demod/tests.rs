//! Demodulator tests on synthetic pulse trains; recordings are tested end to
//! end in `tests/recordings.rs`.
use super::*;

/// Magnitudes of an ideal noiseless frame at 2.0 MS/s starting exactly on a
/// sample: 0.5 µs pulses are one sample each.
fn ideal_2m(bytes: &[u8], lead: usize, level: u16) -> Vec<u16> {
    let mut m = vec![0u16; lead];
    let mut pre = [0u16; 16];
    for k in [0, 2, 7, 9] {
        pre[k] = level;
    }
    m.extend_from_slice(&pre);
    for byte in bytes {
        for j in (0..8).rev() {
            if byte >> j & 1 == 1 {
                m.extend_from_slice(&[level, 0]);
            } else {
                m.extend_from_slice(&[0, level]);
            }
        }
    }
    m.extend(std::iter::repeat_n(0, 400));
    m
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn ideal_df17_is_found_at_its_sample() {
    let f = hex("8D406B902015A678D4D220AA4BDA");
    let m = ideal_2m(&f, 100, 20_000);
    let mut d = Demodulator::new(Rate::Msps2_0, 1);
    let mut out = Vec::new();
    d.push(&m, &mut out);
    d.finish(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].bytes(), &f[..]);
    assert_eq!(out[0].sample, 100);
}

#[test]
fn same_frames_whatever_the_split() {
    // A DF11 with IC=0 from the first aircraft: parity = CRC of the rest.
    let mut df11 = hex("5D406B90000000");
    let p = crate::modes::crc::checksum(&df11[..4]);
    df11[4..].copy_from_slice(&p.to_be_bytes()[1..]);
    let frames = [
        hex("8D406B902015A678D4D220AA4BDA"),
        hex("8D40621D58C382D690C8AC2863A7"),
        df11,
    ];
    let mut m = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        m.extend(ideal_2m(f, 37 + i * 11, 9_000 + 3_000 * i as u16));
    }
    let run = |cuts: &[usize]| {
        let mut d = Demodulator::new(Rate::Msps2_0, 1);
        let mut out = Vec::new();
        let mut start = 0;
        for &c in cuts.iter().chain(std::iter::once(&m.len())) {
            d.push(&m[start..c], &mut out);
            start = c;
        }
        d.finish(&mut out);
        out
    };
    let whole = run(&[]);
    let got: Vec<&[u8]> = whole.iter().map(|r| r.bytes()).collect();
    assert_eq!(got, frames.iter().map(|f| &f[..]).collect::<Vec<_>>());
    for cuts in [
        vec![1],
        vec![150, 151, 152],
        vec![500, 900, 1200, 1201],
        (1..m.len()).step_by(97).collect(),
    ] {
        assert_eq!(run(&cuts), whole, "cuts {cuts:?}");
    }
}

#[test]
fn noise_free_silence_yields_nothing() {
    let mut d = Demodulator::new(Rate::Msps2_4, 1);
    let mut out = Vec::new();
    d.push(&vec![0u16; 100_000], &mut out);
    d.push(&vec![65535u16; 100_000], &mut out);
    d.finish(&mut out);
    assert!(out.is_empty());
}

#[test]
fn every_slot_lies_inside_the_span() {
    // try_position reads samples offset and offset + 1 without bounds checks.
    for rate in [Rate::Msps2_0, Rate::Msps2_4] {
        let d = Demodulator::new(rate, 1);
        for slots in &d.phases {
            for sl in slots.iter() {
                assert!(usize::from(sl.offset) + 1 < d.span, "{rate:?}");
                assert_eq!(usize::from(sl.w0 + sl.w1), rate.h());
            }
        }
    }
}

#[test]
fn noise_floor_is_the_lower_quartile_whatever_the_split() {
    // A deterministic spread of levels: 0..1000 in a scrambled order.
    let samples: Vec<u16> = (0..3 * NOISE_BLOCK as u32 + 1234)
        .map(|i| ((i.wrapping_mul(2_654_435_761) >> 7) % 1000) as u16)
        .collect();
    let run = |step: usize| {
        let mut nf = NoiseFloor::new();
        for chunk in samples.chunks(step) {
            nf.push(chunk);
        }
        nf.finish();
        nf.done.iter().copied().collect::<Vec<_>>()
    };
    let whole = run(samples.len());
    assert_eq!(whole.iter().map(|b| b.0).collect::<Vec<_>>(), [0, 1, 2, 3]);
    for &(_, p25) in &whole {
        assert!((200..300).contains(&p25), "p25 {p25}");
    }
    for step in [1, 7, 1000, 8191, 8193] {
        assert_eq!(run(step), whole, "step {step}");
    }
}

#[test]
fn mean_ratio_is_eleven_eighths_and_cannot_overflow() {
    for (rate, pulse_n, quiet_n) in [(Rate::Msps2_0, 8.0, 8u32), (Rate::Msps2_4, 10.0, 9)] {
        let want = 11.0 / 8.0 * pulse_n / quiet_n as f64;
        let q = 4095 * quiet_n as u16;
        let got = f64::from(rate.mean_ratio(q)) / f64::from(q);
        assert!(
            (got - want).abs() < 0.01 * want,
            "{rate:?}: {got} vs {want}"
        );
        // The largest quiet sum of 12-bit magnitudes still fits.
        assert!(u32::from(q) * 11 * pulse_n as u32 / (8 * quiet_n) < 65536);
    }
}

#[test]
fn a_preamble_must_stand_above_the_noise_floor() {
    let f = hex("8D406B902015A678D4D220AA4BDA");
    let noise = 2_000u16;
    let found = |level: u16| {
        // A flat floor everywhere, the frame's pulses on top of it.
        let m: Vec<u16> = ideal_2m(&f, 3_000, level)
            .into_iter()
            .map(|x| x + noise)
            .collect();
        let mut d = Demodulator::new(Rate::Msps2_0, 1);
        let mut out = Vec::new();
        d.push(&m, &mut out);
        d.finish(&mut out);
        out.len()
    };
    // Sample-aligned at 2.0 MS/s, half the pulse samples hold a pulse:
    // their mean is the floor plus half the level. A level of twice the
    // floor passes the ratio and shape tests (which need more than 3/4 and
    // 1 times the floor) but not the floor's 2.5: not a reply.
    assert_eq!(found(2 * noise), 0);
    assert_eq!(found(4 * noise), 1);
}

#[test]
fn prefilter_passes_a_preamble_with_ppm_data_but_not_one_followed_by_a_gap() {
    let f = hex("8D406B902015A678D4D220AA4BDA");
    let lead = 40;
    let m = ideal_2m(&f, lead, 20_000);
    let mut ok = [0u8; CHUNK];
    prefilter(Rate::Msps2_0, &m, 0, &mut ok, &mut Windows::new());
    assert_eq!(ok[lead], 1);
    // Silence 1.5 µs (three samples) of the first data byte: a real
    // reply never goes that long without a pulse.
    let mut gap = m.clone();
    for x in &mut gap[lead + 16 + 4..lead + 16 + 7] {
        *x = 0;
    }
    prefilter(Rate::Msps2_0, &gap, 0, &mut ok, &mut Windows::new());
    assert_eq!(ok[lead], 0);
    // The frame's own 1 µs gaps (bits "10", samples 17-18) are fine,
    // as the first assertion shows.
}

#[test]
fn trimmed_drops_the_two_largest_ties_included() {
    let mut seed = 7u32;
    for n in 2..12 {
        for _ in 0..200 {
            let q: Vec<u32> = (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    // Few distinct values, so ties are common.
                    (seed >> 28) * 1000
                })
                .collect();
            let mut sorted = q.clone();
            sorted.sort_unstable();
            let want: u32 = sorted[..n - 2].iter().sum();
            assert_eq!(trimmed(&q), want, "{q:?}");
        }
    }
}

/// The lazy scalar screen (32-bit ARM) must pass exactly the positions
/// the vector one passes: every chunk of every real recording and of a
/// simulated busy sky, at the recording's rate, at several floors.
#[test]
fn the_lazy_screen_passes_exactly_what_the_vector_screen_passes() {
    use crate::iq::{MagnitudeConverter, SampleFormat};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/iq");
    let mut inputs = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("../shared/testdata/iq") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let (format, rate) = match name.as_str() {
            n if n.ends_with(".iq") => (SampleFormat::Cs16, Rate::Msps2_4),
            n if n.ends_with("_2000.cu8") || n == "modes1.bin" => {
                (SampleFormat::Cu8, Rate::Msps2_0)
            }
            n if n.ends_with(".cu8") => (SampleFormat::Cu8, Rate::Msps2_4),
            _ => continue,
        };
        inputs.push((name, format, rate, std::fs::read(&path).unwrap()));
    }
    assert!(
        inputs.len() >= 10,
        "recordings missing in {}",
        dir.display()
    );
    for (rate, hz) in [(Rate::Msps2_0, 2_000_000), (Rate::Msps2_4, 2_400_000)] {
        let sky = crate::sim::SimConfig {
            sample_rate: hz,
            duration_s: 2.0,
            aircraft: 200,
            overlap: 0.3,
            snr_db: (3.0, 30.0),
            ..crate::sim::SimConfig::default()
        };
        let mut iq = Vec::new();
        crate::sim::simulate(&sky, &mut iq, &mut std::io::sink()).unwrap();
        inputs.push((format!("sky {hz}"), SampleFormat::Cu8, rate, iq));
    }
    let mut passed = 0usize;
    for (name, format, rate, bytes) in &inputs {
        let mut m = Vec::new();
        MagnitudeConverter::new(*format).convert(bytes, &mut m);
        let (mut vector, mut lazy) = ([0u8; CHUNK], [0u8; CHUNK]);
        // Left over from the chunk before, as in the scan.
        let mut sums = [7u32; CHUNK_SPAN + 1];
        let mut windows = Windows::new();
        for floor in [0u32, 3_000, 12_000, 40_000, 200_000] {
            for at in (0..m.len().saturating_sub(CHUNK_SPAN)).step_by(CHUNK - 3) {
                prefilter(*rate, &m[at..], floor, &mut vector, &mut windows);
                prefilter_lazy(*rate, &m[at..], floor, &mut lazy, &mut sums);
                assert_eq!(vector, lazy, "{name}, floor {floor}, sample {at}");
                passed += vector.iter().filter(|&&o| o == 1).count();
            }
        }
    }
    // The comparison means something only if positions pass.
    assert!(passed > 10_000, "{passed}");
}

/// Cu8 bytes of DF17 replies `(hex, lead in samples, amplitude in LSB,
/// carrier in cycles per sample)` at 2.4 MS/s over the simulator's noise.
fn rendered(replies: &[(&str, f64, f32, f64)], len: usize) -> Vec<u8> {
    use crate::sim::rng::Rng;
    use crate::sim::signal::{quantise, Cf32, PulseShaper, Reply};
    let shaper = PulseShaper::new(2_400_000);
    let mut noise = Rng::new(7, 1);
    let mut buf: Vec<Cf32> = (0..len)
        .map(|_| {
            let (i, q) = noise.complex_gaussian();
            Cf32 {
                re: i * 5.0,
                im: q * 5.0,
            }
        })
        .collect();
    for (n, &(h, lead, amplitude, freq)) in replies.iter().enumerate() {
        let bytes = hex(h);
        let reply = Reply {
            bytes: &bytes,
            lead,
            amplitude,
            phase: 0.7 + n as f64,
            freq,
        };
        shaper.add(&reply, &mut buf, 0);
    }
    let mut raw = vec![0u8; 2 * len];
    quantise(crate::iq::SampleFormat::Cu8, &buf, &mut raw);
    raw
}

#[test]
fn a_weaker_reply_inside_a_stronger_one_is_read_once_that_one_is_cancelled() {
    // A strong reply (about 22 dB) with a weaker one (about 16 dB)
    // starting 30 µs into it: under the strong one's pulses, the weaker
    // one's data are garbled in magnitudes. A second strong reply alone.
    // (A reply that starts before the one it overlaps is looked for again
    // too, but it covers that one's preamble: the two are read together
    // in the busy-sky measurements only.)
    let strong = [
        "8D40621D58C382D690C8AC2863A7",
        "8D406B902015A678D4D220AA4BDA",
    ];
    let inside = "8D4840D6202CC371C32CE0576098";
    let raw = rendered(
        &[
            (strong[0], 5000.3, 60.0, 0.011),
            (inside, 5072.6, 32.0, -0.007),
            (strong[1], 12000.8, 60.0, -0.019),
        ],
        20_000,
    );
    let run = |with_iq: bool| {
        let mut conv = crate::iq::MagnitudeConverter::new(crate::iq::SampleFormat::Cu8);
        let mut d = Demodulator::new(Rate::Msps2_4, 1);
        let mut out = Vec::new();
        for chunk in raw.chunks(1000) {
            if with_iq {
                d.push_iq(&mut conv, chunk, &mut out);
            } else {
                let mut mag = Vec::new();
                conv.convert(chunk, &mut mag);
                d.push(&mag, &mut out);
            }
        }
        d.finish(&mut out);
        let mut got: Vec<String> = out
            .iter()
            .map(|r| crate::modes::Hex(r.bytes()).to_string())
            .collect();
        got.sort();
        got
    };
    let mut all = vec![strong[0], strong[1], inside];
    all.sort();
    assert_eq!(run(true), all);
    // Without the IQ, only the strong ones: what cancellation adds.
    let mut strong = strong.to_vec();
    strong.sort();
    assert_eq!(run(false), strong);
}
