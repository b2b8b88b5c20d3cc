//! The frame parser and everything that formats its output, on any bytes.
//!
//! `modes::parse` promises never to panic; neither may the JSON and SBS
//! formatters on any frame it accepts. The input is tried whole (mostly a
//! length error), as its 7- and 14-byte prefixes and 14-byte chunks (so
//! the DF-specific decoders run on almost every input), and as lines of
//! hex text through `hexin::parse_line`.
#![no_main]

use std::fmt::Write;

use adsb_kinesis::{hexin, json, modes, sbs::SbsLine};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check(data);
    for n in [7, 14] {
        if let Some(prefix) = data.get(..n) {
            check(prefix);
        }
    }
    for chunk in data.chunks_exact(14).skip(1) {
        check(chunk);
        check(&chunk[..7]);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        for line in text.lines() {
            if let Ok(Some((t, bytes))) = hexin::parse_line(line) {
                check_at(&bytes, t);
            }
        }
    }
});

fn check(bytes: &[u8]) {
    check_at(bytes, Some(1.5));
}

fn check_at(bytes: &[u8], t: Option<f64>) {
    let Ok(frame) = modes::parse(bytes) else {
        return;
    };
    assert_eq!(frame.bytes(), bytes, "a parsed frame keeps its bytes");
    let position = Some((37.5, 14.0));
    let _ = json::frame_json(&frame, t, None);
    let obj = json::frame_json(&frame, t, position);
    // The daemon serialises every object; make sure that works too.
    let _ = serde_json::to_string(&obj);
    let mut s = String::new();
    for pos in [None, position] {
        if let Some(line) = SbsLine::from_frame(&frame, pos, 1_700_000_000_000, 1_700_000_000_001) {
            s.clear();
            let _ = write!(s, "{line}");
        }
    }
}
