//! Helpers shared by the end-to-end tests: run the real binary, find the
//! shared test data.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

pub fn shared(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata")
        .join(rel)
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_adsb-kinesis"))
}

pub fn run(args: &[&str]) -> Output {
    bin()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run adsb-kinesis")
}

/// Frames (lower-case hex) printed with `--output avr`.
pub fn avr_frames(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            l.trim()
                .trim_start_matches('*')
                .trim_end_matches(';')
                .to_ascii_lowercase()
        })
        .filter(|l| !l.is_empty())
        .collect()
}

pub fn reference(name: &str) -> Vec<String> {
    std::fs::read_to_string(shared(&format!("reference/{name}.hex")))
        .expect("reference file")
        .lines()
        .map(|l| l.trim().to_ascii_lowercase())
        .filter(|l| !l.is_empty())
        .collect()
}
