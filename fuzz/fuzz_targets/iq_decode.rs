//! The whole IQ path (sample conversion, preamble search, slicing, CRC
//! repair, acceptance) on arbitrary bytes. Must never panic.
//!
//! Byte 0 picks the set-up: bit 0 the sample format (cu8/cs16), bit 1 the
//! rate (2.4/2.0 MS/s), bits 2-3 the repair depth (0, 1, 2, 1). Byte 1
//! picks a chunk size (1..=256 bytes). The rest is the signal, decoded once
//! in a single push and once in chunks: the frames must be the same (the
//! decoder promises chunk-split invariance).
#![no_main]

use adsb_kinesis::decoder::IqDecoder;
use adsb_kinesis::demod::Rate;
use adsb_kinesis::iq::SampleFormat;
use adsb_kinesis::modes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [setup, chunk, signal @ ..] = data else {
        return;
    };
    let format = if setup & 1 == 0 {
        SampleFormat::Cu8
    } else {
        SampleFormat::Cs16
    };
    let rate = if setup & 2 == 0 {
        Rate::Msps2_4
    } else {
        Rate::Msps2_0
    };
    let fix_bits = [0, 1, 2, 1][usize::from(setup >> 2 & 3)];
    let chunk = usize::from(*chunk) + 1;

    let whole = decode(format, rate, fix_bits, signal, signal.len().max(1));
    let split = decode(format, rate, fix_bits, signal, chunk);
    for f in &whole.frames {
        assert!(
            matches!(f.bytes.len(), 7 | 14),
            "frame of {} bytes",
            f.bytes.len()
        );
        assert!(
            modes::parse(&f.bytes).is_ok(),
            "accepted frame does not parse"
        );
    }
    assert_eq!(whole, split, "chunk size {chunk} changed the output");
});

/// What must not depend on chunking: the frames, where they start, their
/// repairs, and the trailing partial sample.
#[derive(Debug, PartialEq)]
struct Decoded {
    frames: Vec<Seen>,
    rest: usize,
}

#[derive(Debug, PartialEq)]
struct Seen {
    bytes: Vec<u8>,
    sample: u64,
    repaired: u8,
    late: bool,
}

fn decode(format: SampleFormat, rate: Rate, fix_bits: u8, signal: &[u8], chunk: usize) -> Decoded {
    let mut dec = IqDecoder::new(format, rate, fix_bits);
    let mut out = Vec::new();
    for c in signal.chunks(chunk) {
        dec.push(c, &mut out);
    }
    let rest = dec.finish(&mut out);
    assert_eq!(dec.unparsed(), 0, "an accepted frame does not parse");
    let frames = out
        .iter()
        .map(|r| Seen {
            bytes: r.frame.bytes().to_vec(),
            sample: r.sample,
            repaired: r.repaired,
            late: r.late,
        })
        .collect();
    Decoded { frames, rest }
}
