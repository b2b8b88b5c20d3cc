//! rtl-sdr-rs reports a dongle's trouble through the `log` crate; these
//! records must reach our log output (stderr here, the journal under
//! systemd), its warnings kept and its per-register chatter dropped.
//! One test in its own process: it takes over fd 2 and the global
//! subscriber.

use std::io::Read;
use std::os::fd::AsRawFd;

#[test]
fn log_crate_records_reach_stderr_filtered() {
    let dir = std::env::temp_dir().join(format!("adsb-log-bridge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("stderr");
    let file = std::fs::File::create(&path).unwrap();
    std::env::remove_var("RUST_LOG");
    std::env::remove_var("JOURNAL_STREAM");
    // SAFETY: dup2 on two open descriptors; fd 2 now writes to `file`.
    let saved = unsafe { libc::dup(2) };
    assert!(saved >= 0);
    assert_eq!(unsafe { libc::dup2(file.as_raw_fd(), 2) }, 2);

    let target = adsb_kinesis::service::init_tracing();
    log::warn!(target: "rtl_sdr_rs::rtlsdr", "EEPROM not readable (bridge test)");
    log::info!(target: "rtl_sdr_rs::tuners::r82xx", "set_freq - freq: 1090000000");
    log::error!(target: "rtl_sdr_rs", "Failed to power down on close: bridge test");
    tracing::info!("our own line");

    // SAFETY: restores the saved descriptor over fd 2.
    unsafe {
        libc::dup2(saved, 2);
        libc::close(saved);
    }
    let mut text = String::new();
    std::fs::File::open(&path)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(target, adsb_kinesis::service::LogTarget::Stderr);
    assert!(text.contains("EEPROM not readable (bridge test)"), "{text}");
    assert!(
        text.contains("Failed to power down on close: bridge test"),
        "{text}"
    );
    assert!(text.contains("our own line"), "{text}");
    assert!(!text.contains("set_freq"), "{text}");
}
