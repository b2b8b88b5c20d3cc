//! The schema end to end: TOML, variables and flags over the defaults,
//! and validation naming the key at fault.

use std::collections::HashMap;

use clap::{Command, FromArgMatches};

use super::*;
use crate::kinesis::target::StreamId;
use crate::source::rtlsdr;

/// An environment of just `vars`, as the `env` lookups take it.
pub(crate) fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| m.get(k).cloned()
}

fn toml(text: &str) -> Result<RunConfig, ConfigError> {
    RunConfig::from_toml(Path::new("c.toml"), text)
}

/// `args` parsed as `run` parses them, over `vars` and an optional file.
fn load(args: &[&str], vars: &[(&str, &str)]) -> Result<RunConfig, ConfigError> {
    let cmd = ConfigFile::augment_args(RunConfig::augment_args(Command::new("run")));
    let m = cmd
        .try_get_matches_from(std::iter::once("run").chain(args.iter().copied()))
        .expect("flags parse");
    let file = ConfigFile::from_arg_matches(&m).unwrap();
    RunConfig::load(&file, &m, env(vars))
}

#[test]
fn defaults_are_the_documented_ones() {
    let d = RunConfig::default();
    assert_eq!(d.source.source, SourceSpec::Sim);
    assert_eq!(d.source.sample_rate, Rate::Msps2_4);
    assert_eq!(d.source.replay_speed, ReplaySpeed::Max);
    assert_eq!(d.receiver.fix, 1);
    assert_eq!(d.kinesis.stream_id(), None);
    assert_eq!(d.sink.pack_lines, 1);
    assert_eq!(d.sink.max_record_bytes, 25 * 1024);
    assert_eq!(d.sink.linger, Duration::from_millis(500));
    assert_eq!(d.spool.spool_max_bytes, 256 << 20);
    assert_eq!(d.service.shutdown_timeout, Duration::from_secs(10));
    assert_eq!(d.service.stats_interval, 60.0);
    assert_eq!(d.kinesis.retry(), crate::retry::RetryPolicy::default());
    d.validate().unwrap();
    // No file, no variables, no flags: the same.
    assert_eq!(load(&[], &[]).unwrap().source, d.source);
}

#[test]
fn toml_fields() {
    let c = toml(
        "source = \"file:x.cu8\"\nsample_rate = \"2.0M\"\nstats_interval = 5\nlat = 52\nlon = -1.5\n",
    )
    .unwrap();
    assert_eq!(c.source.source, SourceSpec::File("x.cu8".into()));
    assert_eq!(c.source.sample_rate, Rate::Msps2_0);
    assert_eq!(c.service.stats_interval, 5.0);
    assert_eq!(c.receiver_position(), Some((52.0, -1.5)));
    assert_eq!(
        toml("sample_rate = 2400000").unwrap().source.sample_rate,
        Rate::Msps2_4
    );
    c.validate().unwrap();
    let c = toml(
        "source = \"rtlsdr:1\"\ngain = 49.6\nppm = -3\nbias_tee = true\nsbs_listen = \"127.0.0.1:30003\"\n",
    )
    .unwrap();
    assert_eq!(
        c.source.source,
        SourceSpec::Rtlsdr(rtlsdr::Selector::Index(1))
    );
    assert_eq!(c.source.gain, Gain::Db(49.6));
    assert_eq!((c.source.ppm, c.source.bias_tee), (-3, true));
    c.validate().unwrap();
    let e = toml("gain = \"loud\"").unwrap_err().to_string();
    assert!(e.starts_with("config file c.toml, line 1: "), "{e}");
}

#[test]
fn unknown_key_and_bad_value_are_named_with_their_line() {
    let e = toml("fix = 1\nbogus_key = 3\n").unwrap_err().to_string();
    assert!(e.starts_with("config file c.toml, line 2: "), "{e}");
    assert!(e.contains("bogus_key") && !e.contains('\n'), "{e}");
    let e = toml("fix = 1\nsource = \"radio\"").unwrap_err().to_string();
    assert!(e.contains("line 2") && e.contains("radio"), "{e}");
}

#[test]
fn flags_over_env_over_file() {
    let dir = std::env::temp_dir().join(format!("adsbk-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("c.toml");
    std::fs::write(&p, "stats_interval = 5\nfix = 2\nppm = 3\n").unwrap();
    let path = p.to_str().unwrap();
    let c = load(
        &["--config", path, "--ppm", "-7"],
        &[
            ("ADSB_KINESIS_STATS_INTERVAL", "7.5"),
            ("ADSB_KINESIS_PPM", "9"),
        ],
    )
    .unwrap();
    assert_eq!(
        (c.service.stats_interval, c.receiver.fix, c.source.ppm),
        (7.5, 2, -7)
    );
    // The file may also come from ADSB_KINESIS_CONFIG.
    let c = load(&[], &[("ADSB_KINESIS_CONFIG", path)]).unwrap();
    assert_eq!(c.receiver.fix, 2);
    // A flag for one way of naming the stream replaces the other's
    // variable.
    let c = load(
        &["--stream", "adsb"],
        &[(
            "ADSB_KINESIS_STREAM_ARN",
            "arn:aws:kinesis:eu-west-1:123456789012:stream/other",
        )],
    )
    .unwrap();
    assert_eq!(c.kinesis.stream_id(), Some(StreamId::Name("adsb".into())));
    c.validate().unwrap();
    let c = load(&["--bias-tee"], &[]).unwrap();
    assert!(c.source.bias_tee);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_bad_variable_is_named() {
    for (var, value) in [
        ("ADSB_KINESIS_SOURCE", "bogus"),
        ("ADSB_KINESIS_SPOOL_MAX_BYTES", "lots"),
        ("ADSB_KINESIS_FIX", "x"),
    ] {
        let e = load(&[], &[(var, value)]).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{var}: ")), "{e}");
    }
    // Empty counts as unset.
    assert_eq!(
        load(&[], &[("ADSB_KINESIS_FIX", "")]).unwrap().receiver.fix,
        1
    );
}

#[test]
fn kinesis_fields_from_toml_and_env() {
    let c = toml(
        "stream = \"adsb\"\npack_lines = 50\nmax_record_bytes = \"64KiB\"\nlinger = \"250ms\"\nspool_max_bytes = \"8MiB\"\nshutdown_timeout = 3\nregion = \"eu-west-1\"\n",
    )
    .unwrap();
    assert_eq!(c.kinesis.stream_id(), Some(StreamId::Name("adsb".into())));
    assert_eq!(c.sink.pack_lines, 50);
    assert_eq!(c.sink.max_record_bytes, 64 * 1024);
    assert_eq!(c.sink.linger, Duration::from_millis(250));
    assert_eq!(c.spool.spool_max_bytes, 8 << 20);
    assert_eq!(c.service.shutdown_timeout, Duration::from_secs(3));
    assert_eq!(c.kinesis.region.as_deref(), Some("eu-west-1"));
    c.validate().unwrap();
    let c = load(
        &[],
        &[
            (
                "ADSB_KINESIS_STREAM_ARN",
                "arn:aws:kinesis:eu-west-1:123456789012:stream/adsb",
            ),
            ("ADSB_KINESIS_LINGER", "1s"),
            ("ADSB_KINESIS_RETRY_BASE_MS", "5"),
        ],
    )
    .unwrap();
    assert!(matches!(c.kinesis.stream_id(), Some(StreamId::Arn(_))));
    assert_eq!(c.sink.linger, Duration::from_secs(1));
    assert_eq!(c.kinesis.retry_base_ms, 5);
    c.validate().unwrap();
}

#[test]
fn spool_dir_default_follows_systemd() {
    let s = SpoolConfig::default();
    assert_eq!(s.dir(env(&[])), PathBuf::from("spool"));
    let systemd = env(&[("STATE_DIRECTORY", "/var/lib/adsb-kinesis:/var/lib/other")]);
    assert_eq!(s.dir(&systemd), PathBuf::from("/var/lib/adsb-kinesis"));
    let s = SpoolConfig {
        spool_dir: Some("/x".into()),
        ..SpoolConfig::default()
    };
    assert_eq!(
        s.dir(env(&[("STATE_DIRECTORY", "/y")])),
        PathBuf::from("/x")
    );
    // Loading resolves it once, so no stage reads the environment.
    let c = load(&[], &[("STATE_DIRECTORY", "/var/lib/adsb-kinesis")]).unwrap();
    assert_eq!(
        c.spool.spool_dir.as_deref(),
        Some(Path::new("/var/lib/adsb-kinesis"))
    );
}

#[test]
fn validate_names_the_field() {
    let first = |c: RunConfig| {
        let e = c.validate().unwrap_err().to_string();
        e.split(':').next().unwrap().to_owned()
    };
    let d = RunConfig::default;
    let with = |f: &dyn Fn(&mut RunConfig)| {
        let mut c = d();
        f(&mut c);
        first(c)
    };
    assert_eq!(with(&|c| c.service.stats_interval = 0.0), "stats_interval");
    assert_eq!(with(&|c| c.receiver.fix = 3), "fix");
    assert_eq!(with(&|c| c.receiver.lat = Some(1.0)), "lon");
    assert_eq!(
        with(&|c| {
            c.receiver.lat = Some(91.0);
            c.receiver.lon = Some(0.0);
        }),
        "lat"
    );
    assert_eq!(with(&|c| c.source.ppm = 5000), "ppm");
    assert_eq!(
        with(&|c| c.outputs.sbs_listen = Some("localhost".into())),
        "sbs_listen"
    );
    assert_eq!(
        with(&|c| {
            c.kinesis.stream = Some("a".into());
            c.kinesis.stream_arn = Some("arn:aws:kinesis:r:1:stream/a".into());
        }),
        "stream_arn"
    );
    assert_eq!(
        with(&|c| c.kinesis.stream = Some("bad name".into())),
        "stream"
    );
    assert_eq!(
        with(&|c| c.kinesis.stream_arn = Some("adsb".into())),
        "stream_arn"
    );
    assert_eq!(
        with(&|c| c.sink.max_record_bytes = 1024 * 1024 + 1),
        "max_record_bytes"
    );
    assert_eq!(with(&|c| c.sink.pack_lines = 0), "pack_lines");
    assert_eq!(with(&|c| c.sink.linger = Duration::from_secs(61)), "linger");
    assert_eq!(
        with(&|c| c.spool.spool_max_bytes = 1 << 20),
        "spool_max_bytes"
    );
    assert_eq!(
        with(&|c| c.kinesis.endpoint_url = Some("localhost:4566".into())),
        "endpoint_url"
    );
    assert_eq!(with(&|c| c.kinesis.retry_base_ms = 0), "retry_base_ms");
    assert_eq!(with(&|c| c.sink.config_retry_ms = 0), "config_retry_ms");
}

#[test]
fn the_simulated_sky_checks_the_receiver_position() {
    // Valid for a receiver, but the simulator's flat-earth sky stops at
    // ±80°: the error names the key the user set.
    let mut c = RunConfig::default();
    c.receiver.lat = Some(85.0);
    c.receiver.lon = Some(0.0);
    let e = c.validate().unwrap_err().to_string();
    assert!(e.starts_with("lat: "), "{e}");
    // Not with another source.
    c.source.source = SourceSpec::File("x.cu8".into());
    c.validate().unwrap();
}
