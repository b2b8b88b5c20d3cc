//! The README's "try the Kinesis path on your own machine" block, run as
//! it stands: a newcomer copies it, so it must work. Only PATH is given
//! (the binary under test first), as `cargo install` would.

use std::process::{Command, Stdio};

#[test]
fn the_readme_kinesis_block_runs_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let block = readme
        .split("<!-- readme-kinesis-try: begin -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- readme-kinesis-try: end -->").next())
        .expect("the marked block in README.md");
    let script = block
        .trim()
        .strip_prefix("```sh")
        .and_then(|b| b.strip_suffix("```"))
        .expect("a ```sh block");
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_adsb-kinesis"));
    let dir = bin.parent().unwrap().to_owned();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = Command::new("bash");
    // -e as a careful user's shell; not pipefail: `timeout ... | head`
    // ends tail on purpose.
    // Whatever it started in the background ends with it, even on failure
    // (the block itself stops moto only at its end).
    let script = format!("trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{script}");
    c.arg("-eu").arg("-c").arg(script);
    // A clean AWS/ADSB environment, as a newcomer's shell has.
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("ADSB_KINESIS_") {
            c.env_remove(&k);
        }
    }
    let out = c
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}\n{stdout}\n{stderr}", out.status);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}\n{stderr}");
    assert!(lines.iter().all(|l| l.starts_with("MSG,")), "{stdout}");
    assert!(stderr.contains("kinesis finished"), "{stderr}");
}
