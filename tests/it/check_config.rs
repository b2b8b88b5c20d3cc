//! `adsb-kinesis check-config`: one line, exit 0 if `run` could start with
//! this configuration, 78 (EX_CONFIG, which the unit does not restart) if
//! a setting is wrong. Offline checks make no network call; `--online`
//! asks a real moto server. And `run`'s own start checks, as the unit
//! meets them.

use crate::common;

use std::process::{Command, Output, Stdio};

use common::{aws_env, bin, Moto, TempDir};

fn check(args: &[&str], setup: impl FnOnce(&mut Command)) -> Output {
    let mut c = bin();
    aws_env(&mut c);
    c.env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("STATE_DIRECTORY")
        .arg("check-config")
        .args(args)
        .stdin(Stdio::null());
    setup(&mut c);
    c.output().expect("run check-config")
}

fn ok_line(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{:?}: {text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("config ok: "), "{text}");
    text
}

/// A wrong setting: one line, exit 78.
fn err_line(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    one_line(out)
}

fn one_line(out: &Output) -> String {
    assert!(!out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    err
}

#[test]
fn stdout_config_is_ok_unless_a_stream_is_required() {
    let out = check(&["--source", "sim"], |_| {});
    assert!(ok_line(&out).contains("SBS lines to stdout"));
    let err = err_line(&check(&["--require-stream"], |_| {}));
    assert!(err.contains("no Kinesis stream configured"), "{err}");
}

/// What the unit runs on a fresh install: no stream. Exit 78 (the unit
/// does not restart it) and, when stderr is the journal, the line filed at
/// PRIORITY=3 by its `<3>` prefix.
#[test]
fn run_without_a_stream_under_the_unit_stops_with_an_error_line() {
    use std::os::unix::fs::MetadataExt;
    let dir = TempDir::new("run-no-stream");
    let log = dir.path("stderr");
    let file = std::fs::File::create(&log).unwrap();
    let meta = file.metadata().unwrap();
    let mut c = bin();
    aws_env(&mut c);
    let out = c
        .args(["run", "--require-stream"])
        .env("ADSB_KINESIS_STREAM", "")
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stdin(Stdio::null())
        .stderr(file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let err = std::fs::read_to_string(&log).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("<3>error: no Kinesis stream configured"),
        "{err}"
    );
    // Not the journal: no prefix.
    let out = bin()
        .args(["run", "--require-stream"])
        .env_remove("JOURNAL_STREAM")
        .env_remove("ADSB_KINESIS_STREAM")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: no Kinesis stream"));
}

/// `AWS_REGION=` as the shipped /etc/default file had it: unset, not the
/// region "".
#[test]
fn an_empty_aws_region_is_no_region() {
    let dir = TempDir::new("check-empty-region");
    let spool = dir.path("spool");
    let args = ["--stream", "adsb", "--spool-dir", spool.to_str().unwrap()];
    let err = err_line(&check(&args, |c| {
        c.env("AWS_REGION", "").env_remove("AWS_DEFAULT_REGION");
    }));
    assert!(err.contains("no AWS region"), "{err}");
    // And an empty AWS_PROFILE is the default profile, not a profile "".
    let line = ok_line(&check(&args, |c| {
        c.env("AWS_PROFILE", "");
    }));
    assert!(line.contains("credentials found"), "{line}");
}

#[test]
fn bad_values_name_the_setting() {
    // Flag syntax is clap's: exit 2, as for every command.
    let out = check(&["--fix", "7"], |_| {});
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(one_line(&out).contains("--fix"), "{out:?}");
    // A misspelt variable is named, not ignored.
    let err = err_line(&check(&["--source", "sim"], |c| {
        c.env("ADSB_KINESIS_STRAEM", "adsb");
    }));
    assert!(
        err.contains("ADSB_KINESIS_STRAEM") && err.contains("did you mean ADSB_KINESIS_STREAM?"),
        "{err}"
    );
    let err = err_line(&check(&["--stream", "a b"], |_| {}));
    assert!(err.starts_with("error: stream:"), "{err}");
    let err = err_line(&check(&["--stream", "adsb", "--region", " "], |_| {}));
    assert!(err.starts_with("error: region:"), "{err}");
    let err = err_line(&check(&[], |c| {
        c.env("ADSB_KINESIS_LINGER", "forever");
    }));
    assert!(err.contains("ADSB_KINESIS_LINGER"), "{err}");
    let dir = TempDir::new("check-toml");
    std::fs::write(dir.path("c.toml"), "stream = \"adsb\"\nnope = 1\n").unwrap();
    let err = err_line(&check(
        &["--config", dir.path("c.toml").to_str().unwrap()],
        |_| {},
    ));
    assert!(err.contains("line 2") && err.contains("nope"), "{err}");
}

#[test]
fn offline_aws_checks_region_credentials_and_spool() {
    let dir = TempDir::new("check-aws");
    let spool = dir.path("spool");
    let spool = spool.to_str().unwrap();
    let line = ok_line(&check(&["--stream", "adsb", "--spool-dir", spool], |_| {}));
    assert!(
        line.contains("region us-east-1, credentials found")
            && line.contains("not looked up (use --online)")
            && line.contains(spool),
        "{line}"
    );
    // Checked, not made: `run` makes it.
    assert!(!std::path::Path::new(spool).exists());
    // The spool directory must be usable (exit 1: a disk can come back).
    let out = check(
        &["--stream", "adsb", "--spool-dir", "/proc/adsbk-nope"],
        |_| {},
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = one_line(&out);
    assert!(
        err.starts_with("error: spool_dir /proc/adsbk-nope:"),
        "{err}"
    );
    // No region anywhere.
    let err = err_line(&check(&["--stream", "adsb", "--spool-dir", spool], |c| {
        c.env_remove("AWS_REGION");
    }));
    assert!(err.contains("no AWS region"), "{err}");
    // The region from a flag is enough.
    let line = ok_line(&check(
        &[
            "--stream",
            "adsb",
            "--spool-dir",
            spool,
            "--region",
            "eu-west-1",
        ],
        |c| {
            c.env_remove("AWS_REGION");
        },
    ));
    assert!(line.contains("region eu-west-1"), "{line}");
    // No credentials anywhere.
    let err = err_line(&check(&["--stream", "adsb", "--spool-dir", spool], |c| {
        c.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY");
    }));
    assert!(err.contains("no AWS credentials"), "{err}");
    // A profile that cannot work is a configuration error, named.
    let config = dir.path("aws-config");
    std::fs::write(
        &config,
        "[profile broken]\nrole_arn = arn:aws:iam::123456789012:role/r\n\
         [profile base]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = s\n\
         [profile assumed]\nrole_arn = arn:aws:iam::123456789012:role/r\nsource_profile = base\n",
    )
    .unwrap();
    let profile = |name: &'static str| {
        let config = config.clone();
        move |c: &mut Command| {
            c.env_remove("AWS_ACCESS_KEY_ID")
                .env_remove("AWS_SECRET_ACCESS_KEY")
                .env("AWS_CONFIG_FILE", &config)
                .env("AWS_PROFILE", name);
        }
    };
    let err = err_line(&check(
        &["--stream", "adsb", "--spool-dir", spool],
        profile("broken"),
    ));
    assert!(
        err.starts_with("error: AWS credentials: ") && err.contains("broken"),
        "{err}"
    );
    // A role to assume needs STS, which is network: not tried offline.
    let line = ok_line(&check(
        &["--stream", "adsb", "--spool-dir", spool],
        profile("assumed"),
    ));
    assert!(
        line.contains("credentials need the network (not checked offline)"),
        "{line}"
    );
}

/// LoadCredential=aws:... puts a shared-credentials file at
/// $CREDENTIALS_DIRECTORY/aws; it is used when nothing else names one.
#[test]
fn credentials_from_systemd_load_credential() {
    let dir = TempDir::new("check-creds");
    let creds = dir.path("creds");
    std::fs::create_dir_all(&creds).unwrap();
    let spool = dir.path("spool");
    let args = ["--stream", "adsb", "--spool-dir", spool.to_str().unwrap()];
    let no_keys = |c: &mut Command| {
        c.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SHARED_CREDENTIALS_FILE")
            .env("CREDENTIALS_DIRECTORY", &creds);
    };
    let err = err_line(&check(&args, no_keys));
    assert!(err.contains("no AWS credentials"), "{err}");
    std::fs::write(
        creds.join("aws"),
        "[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = secret\n",
    )
    .unwrap();
    let line = ok_line(&check(&args, no_keys));
    assert!(line.contains("credentials found"), "{line}");
}

#[test]
fn online_looks_the_stream_up() {
    let moto = Moto::start();
    common::kinesis::create_stream(&moto.url(), "adsb-check", 2);
    let dir = TempDir::new("check-online");
    let spool = dir.path("spool");
    let spool = spool.to_str().unwrap();
    let url = moto.url();
    let base = ["--online", "--endpoint-url", &url, "--spool-dir", spool];
    let mut args = base.to_vec();
    args.extend(["--stream", "adsb-check"]);
    let line = ok_line(&check(&args, |_| {}));
    assert!(line.contains("stream ACTIVE with 2 open shards"), "{line}");
    let mut args = base.to_vec();
    args.extend(["--stream", "missing-stream"]);
    let err = err_line(&check(&args, |_| {}));
    assert!(
        err.contains("missing-stream") && err.contains("ResourceNotFound"),
        "{err}"
    );
}
