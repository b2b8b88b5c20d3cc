//! What the binary does differently under systemd: log to the journal,
//! and find the AWS credentials systemd hands over. An edge module.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::journal::{JournalLayer, JOURNAL_SOCKET};

/// The credential name in the unit's `LoadCredential=aws:...`.
pub const AWS_CREDENTIAL: &str = "aws";

/// True if stderr is the journal stream systemd set up for us:
/// `$JOURNAL_STREAM` is `DEVICE:INODE` of that stream, and a process that
/// inherited the variable but writes somewhere else must not trust it
/// (systemd.exec(5), "Environment variables in spawned processes").
pub fn stderr_is_journal(journal_stream: Option<&str>) -> bool {
    let Some((dev, ino)) = journal_stream.and_then(|v| v.trim().split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    let Ok(fd) = io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    match std::fs::File::from(fd).metadata() {
        Ok(m) => m.dev() == dev && m.ino() == ino,
        Err(_) => false,
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    /// Native journal entries with structured fields ([`crate::journal`]).
    Journal,
    /// Plain text lines on stderr (stdout carries only SBS lines).
    Stderr,
}

/// What is logged when `RUST_LOG` is not set: our `info`, and only the
/// warnings and errors of rtl-sdr-rs (at `info` it narrates every tuner
/// register it sets, a dozen lines each time the dongle is opened) and of
/// the AWS SDK (at `info` its credential chain logs the access key id it
/// found, and its retries are multi-line dumps; we log what they mean).
pub const DEFAULT_LOG_FILTER: &str = "info,rtl_sdr_rs=warn,aws_config=warn,aws_sdk_kinesis=warn,\
aws_smithy_runtime=warn,aws_smithy_runtime_api=warn,aws_smithy_http_client=warn";

/// Sets up `tracing` (filtered by `RUST_LOG`, default
/// [`DEFAULT_LOG_FILTER`]): the journal when stderr is connected to it and
/// its socket answers, plain text on stderr otherwise. Records of the `log`
/// crate (rtl-sdr-rs writes those) are bridged into the same output.
pub fn init_tracing() -> LogTarget {
    let filter =
        || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let mut fallback = None;
    if stderr_is_journal(std::env::var("JOURNAL_STREAM").ok().as_deref()) {
        match JournalLayer::new(Path::new(JOURNAL_SOCKET), "adsb-kinesis") {
            Ok(layer) => {
                tracing_subscriber::registry()
                    .with(filter())
                    .with(layer)
                    .init();
                return LogTarget::Journal;
            }
            Err(e) => fallback = Some(e),
        }
    }
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_env_filter(filter())
        .with_ansi(false)
        // By default a failed write is reported with eprint!, which panics
        // when stderr itself is what failed: a closed stderr (the reader
        // of a pipe gone) aborted the daemon. A log line that cannot be
        // written is lost; the data is not.
        .log_internal_errors(false)
        .init();
    if let Some(e) = fallback {
        tracing::warn!(
            "stderr is the journal but {JOURNAL_SOCKET} does not answer ({e}); logging plain text"
        );
    }
    LogTarget::Stderr
}

/// The `AWS_*` variables set but empty (`AWS_REGION=` in an environment
/// file): the AWS SDK would take such a region as the region "" and fail
/// at the first request, so an empty variable means unset, as it does for
/// `ADSB_KINESIS_*`.
pub fn empty_aws_vars(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Vec<std::ffi::OsString> {
    vars.filter(|(k, v)| {
        k.to_str().is_some_and(|k| k.starts_with("AWS_"))
            && v.to_str().is_some_and(|v| v.trim().is_empty())
    })
    .map(|(k, _)| k)
    .collect()
}

/// Removes [`empty_aws_vars`] from the environment. Call before any thread
/// starts.
pub fn drop_empty_aws_vars() {
    for k in empty_aws_vars(std::env::vars_os()) {
        std::env::remove_var(k);
    }
}

/// The shared-credentials file systemd put in `$CREDENTIALS_DIRECTORY`
/// (`LoadCredential=aws:...`), unless `AWS_SHARED_CREDENTIALS_FILE`
/// already names one.
pub fn systemd_aws_credentials(env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if env("AWS_SHARED_CREDENTIALS_FILE").is_some_and(|v| !v.is_empty()) {
        return None;
    }
    let dir = env("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty())?;
    let file = Path::new(&dir).join(AWS_CREDENTIAL);
    file.is_file().then_some(file)
}

/// Points the AWS SDK at the credentials systemd handed over (see
/// [`systemd_aws_credentials`]). Call before any thread starts: it sets
/// an environment variable, which the SDK's default chain reads.
pub fn adopt_systemd_aws_credentials() -> Option<PathBuf> {
    let file = systemd_aws_credentials(|k| std::env::var(k).ok())?;
    std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", &file);
    Some(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn empty_aws_variables_are_unset() {
        let vars = [
            ("AWS_REGION", ""),
            ("AWS_PROFILE", "  "),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("ADSB_KINESIS_STREAM", ""),
            ("HOME", ""),
        ]
        .map(|(k, v)| (k.into(), v.into()));
        assert_eq!(
            empty_aws_vars(vars.into_iter()),
            vec![std::ffi::OsString::from("AWS_REGION"), "AWS_PROFILE".into()]
        );
    }

    #[test]
    fn credentials_from_the_credentials_directory() {
        let dir = std::env::temp_dir().join(format!("adsbk-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.to_string_lossy().to_string();
        assert_eq!(
            systemd_aws_credentials(env(&[("CREDENTIALS_DIRECTORY", d.clone())])),
            None,
            "no aws file yet"
        );
        std::fs::write(dir.join("aws"), "[default]\n").unwrap();
        assert_eq!(
            systemd_aws_credentials(env(&[("CREDENTIALS_DIRECTORY", d.clone())])),
            Some(dir.join("aws"))
        );
        assert_eq!(
            systemd_aws_credentials(env(&[
                ("CREDENTIALS_DIRECTORY", d),
                ("AWS_SHARED_CREDENTIALS_FILE", "/etc/x".into())
            ])),
            None,
            "an explicit file wins"
        );
        assert_eq!(systemd_aws_credentials(env(&[])), None);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn journal_stream_must_match_stderr() {
        assert!(!stderr_is_journal(None));
        assert!(!stderr_is_journal(Some("garbage")));
        assert!(!stderr_is_journal(Some("1:2")));
        // The real stderr's own numbers do match.
        let fd = io::stderr().as_fd().try_clone_to_owned().unwrap();
        let m = std::fs::File::from(fd).metadata().unwrap();
        assert!(stderr_is_journal(Some(&format!("{}:{}", m.dev(), m.ino()))));
    }
}
