//! Bad input: one clear line, a non-zero exit, and never a panic.

use crate::common;
use common::*;
use std::io::Write;

fn one_line_error(args: &[&str]) -> String {
    let out = run(args);
    assert!(!out.status.success(), "{args:?} succeeded");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn missing_file_unknown_format_bad_rate() {
    assert!(one_line_error(&["decode", "/nonexistent/x.cu8"]).contains("/nonexistent/x.cu8"));
    assert!(one_line_error(&["decode", "--iformat", "wav", "x"]).contains("--iformat"));
    assert!(one_line_error(&["decode", "--sample-rate", "3.2M", "x"])
        .contains("unsupported sample rate"));
    assert!(one_line_error(&["decode", "--fix", "3", "x"]).contains("--fix"));
    assert!(one_line_error(&["decode", "--lat", "91", "--lon", "0", "x"]).contains("91"));
    assert!(one_line_error(&["nonsense"]).contains("nonsense"));
}

#[test]
fn truncated_file_decodes_what_is_complete_and_warns() {
    let data = std::fs::read(shared("iq/modes1_2400.cu8")).unwrap();
    let dir = std::env::temp_dir().join(format!("adsbk-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let odd = dir.join("odd.cu8");
    std::fs::write(&odd, &data[..data.len() - 1]).unwrap();
    let out = run(&["decode", "--output", "avr", odd.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning"));
    assert!(avr_frames(&out).len() > 300);
    std::fs::remove_dir_all(&dir).ok();
}

/// A cs16 recording read as cu8 (the default), or a 2.0 MS/s one at the
/// default 2.4: no frames, and a hint at the likely mistake instead of a
/// silent zero. The right settings find frames in the same files.
#[test]
fn nothing_found_hints_at_rate_and_format() {
    let iq = shared("iq/modes1.bin");
    let iq = iq.to_str().unwrap();
    for args in [vec!["decode", iq], vec!["decode", "--iformat", "cu8", iq]] {
        let out = run(&args);
        assert!(out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("frames 0 "), "{err}");
        assert!(
            err.contains("hint: no frames") && err.contains("--sample-rate 2.0M"),
            "{err}"
        );
    }
    let out = run(&["decode", "--sample-rate", "2.0M", iq]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.starts_with("frames 0 ") && !err.contains("hint"),
        "{err}"
    );
    let cs16 = shared("iq/test_1641427457780.iq");
    let cs16 = cs16.to_str().unwrap();
    let err = String::from_utf8_lossy(&run(&["decode", cs16]).stderr).into_owned();
    assert!(err.contains("--iformat cs16"), "{err}");
    let err =
        String::from_utf8_lossy(&run(&["decode", "--iformat", "cs16", cs16]).stderr).into_owned();
    assert!(
        !err.starts_with("frames 0 ") && !err.contains("hint"),
        "{err}"
    );
}

/// A file of junk lines: the first few named, the rest counted, not one
/// warning per line.
#[test]
fn junk_hex_lines_are_named_then_counted() {
    let dir = TempDir::new("cli-junk");
    let junk = dir.path("junk.txt");
    std::fs::write(&junk, "not a frame\n".repeat(5000)).unwrap();
    let out = run(&["decode", "--iformat", "hex", junk.to_str().unwrap()]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("warning: line ").count(), 10, "{err}");
    assert!(err.contains("bad lines 5000"), "{err}");
}

#[test]
fn garbage_never_panics() {
    // Random bytes as IQ (both formats, both rates) and as hex lines.
    let mut x: u64 = 0x1234_5678_9ABC_DEF1;
    let mut bytes = vec![0u8; 3_000_001];
    for b in bytes.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    for (fmt, rate) in [
        ("cu8", "2.4M"),
        ("cu8", "2.0M"),
        ("cs16", "2.4M"),
        ("hex", "2.4M"),
    ] {
        for output in ["sbs", "json"] {
            let mut child = bin()
                .args([
                    "decode",
                    "--iformat",
                    fmt,
                    "--sample-rate",
                    rate,
                    "--output",
                    output,
                    "-",
                ])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let data = bytes.clone();
            let writer = std::thread::spawn(move || {
                let _ = stdin.write_all(&data);
            });
            let out = child.wait_with_output().unwrap();
            writer.join().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{fmt} {rate} {output}: {err}");
            assert!(!err.contains("panicked"));
        }
    }
}

#[test]
fn hex_input_reports_bad_crc_instead_of_dropping() {
    let mut child = bin()
        .args(["decode", "--iformat", "hex", "--output", "json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A valid DF17 and the same with one bit flipped.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"*8D406B902015A678D4D220AA4BDA;\n8D406B902015A678D4D220AA4BDB\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["crc_ok"], true);
    assert_eq!(lines[1]["crc_ok"], false);
    assert_eq!(lines[0]["callsign"], "EZY85MH");
}

/// The configuration reference lists every option `run --help` shows (the
/// hidden test-only ones aside), so a new option cannot go undocumented.
#[test]
fn every_run_option_is_in_the_configuration_reference() {
    let out = run(&["run", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md"),
    )
    .unwrap();
    let flags: Vec<&str> = help
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2 && *w != "--help")
        .collect();
    assert!(flags.len() > 20, "{help}");
    for flag in flags {
        assert!(
            doc.contains(&format!("`{flag}")) || doc.contains(&format!(" {flag}")),
            "{flag} is not in docs/configuration.md"
        );
    }
}
