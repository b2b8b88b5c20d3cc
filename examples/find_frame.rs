//! Diagnostic: where in a recording could a given frame be sliced, and how
//! clean is its preamble there? Useful when the decoder misses a frame that
//! another decoder reports.
//!
//! `cargo run --release --example find_frame -- FILE 2.0|2.4 HEX [MAX_BIT_ERRORS]`
use std::io::Write;

use adsb_kinesis::demod::{slice_at, Rate};
use adsb_kinesis::iq::{MagnitudeConverter, SampleFormat};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 4 {
        eprintln!("usage: find_frame FILE 2.0|2.4 HEX [MAX_BIT_ERRORS]");
        std::process::exit(2);
    }
    let data = std::fs::read(&a[1]).expect("read input");
    let rate = if a[2] == "2.0" {
        Rate::Msps2_0
    } else {
        Rate::Msps2_4
    };
    let fmt = if a[1].ends_with(".iq") {
        SampleFormat::Cs16
    } else {
        SampleFormat::Cu8
    };
    let want: Vec<u8> = (0..a[3].len() / 2 * 2)
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&a[3][i..i + 2], 16).ok())
        .collect();
    let max_err: u32 = a.get(4).and_then(|s| s.parse().ok()).unwrap_or(2);
    let mut mag = Vec::new();
    MagnitudeConverter::new(fmt).convert(&data, &mut mag);
    let phases = if rate == Rate::Msps2_0 { 2 } else { 5 };
    let mut out = std::io::stdout().lock();
    for s in 0..mag.len() {
        for p in 0..phases {
            if let Some((b, pulse, quiet, _)) = slice_at(rate, &mag, s, p) {
                let errs: u32 = b.iter().zip(&want).map(|(x, y)| (x ^ y).count_ones()).sum();
                if errs <= max_err
                    && writeln!(
                        out,
                        "s={s} phase={p} bit_errors={errs} pulse={pulse} quiet={quiet}"
                    )
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}
