//! The `run` daemon: configuration, pipeline wiring, shutdown and stats. An
//! edge module: it owns the threads, the tokio tasks and the output.
//!
//! ```text
//! sdr thread ──sync_channel(4 buffers)──▶ demod thread ──tokio mpsc, try_send──▶ track task
//!   (sim / file,                           (IqDecoder +          full: drop and    (Tracker,
//!    paced or not)                          modes::parse)        count             SbsLine)
//!                                                          ──tokio mpsc──▶ sink
//!
//! sink = stdout task, or (--stream) the Kinesis sink of kinesis::send:
//!        batch task ──queue / spool──▶ sender task ──▶ PutRecords
//! ```
//!
//! The radio is never slowed down: a paced source (the simulator, a file
//! replayed in real time) hands buffers on with `try_send` and counts what
//! the demodulator could not take, and the demodulator drops (and counts)
//! frames when the track task is behind. A file replayed at full speed is
//! not a radio, so there both stages wait instead and nothing is lost.
//!
//! Shutdown is injected ([`run`] takes a future, as mini-redis does): it
//! cancels a [`CancellationToken`], the sdr thread returns, and dropping
//! each stage's sender closes the next one, so every stage drains what it
//! holds and the sink flushes last. The end of a file does the same. The
//! Kinesis sink then keeps sending for `shutdown_timeout` and spools what
//! is left; the next start sends the spool first.
//!
//! With `--stream`, region, credentials and the stream are checked before
//! any thread starts, so a misconfiguration is one error line and exit 1.

use std::fs::File;
use std::future::Future;
use std::io::{self, Read, Write as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::decoder::{IqDecoder, CHUNK_BYTES};
use crate::demod::Rate;
use crate::iq::SampleFormat;
#[cfg(feature = "aws")]
use crate::kinesis::aws;
use crate::kinesis::batch::DEFAULT_LINGER;
use crate::kinesis::record::{DEFAULT_MAX_RECORD_BYTES, DEFAULT_PACK_LINES, MAX_RECORD_BYTES};
use crate::kinesis::send::{
    self, BatchOptions, Handoff, RetryPolicy, SenderOptions, SenderStats, SenderTelemetry,
    SinkError,
};
use crate::kinesis::spool::{self, Spool, SpoolError, SpoolOptions};
use crate::kinesis::target::{check_endpoint_url, StreamId};
use crate::modes::accept::Received;
use crate::modes::{self, Frame};
use crate::notify;
use crate::sbs::{generated_ms, unix_ms_now, SbsLine};
use crate::sim::{SimConfig, Simulator};
use crate::source::{self, beast, listen, rtlsdr, rtltcp, sbsin, Gain, SourceStats, Tuning};
use crate::track::Tracker;

/// Prefix of the environment variables that set config fields:
/// `ADSB_KINESIS_SOURCE`, `ADSB_KINESIS_STATS_INTERVAL`, ...
pub const ENV_PREFIX: &str = "ADSB_KINESIS_";

/// Longest stats interval, seconds (one day).
const MAX_STATS_INTERVAL: f64 = 86_400.0;
/// Longest duration any option takes, seconds (one day).
const MAX_DURATION_S: f64 = 86_400.0;
/// Longest `--linger`: Kinesis has no limit, but records older than this
/// in memory are a risk, not a batch.
const MAX_LINGER: Duration = Duration::from_secs(60);
/// Most lines packed into one record (`--pack-lines`).
const MAX_PACK_LINES: usize = 10_000;
/// Smallest `--max-record-bytes`: a key and one short SBS line.
const MIN_MAX_RECORD_BYTES: usize = 256;
/// Smallest `--spool-max-bytes`: room for a largest record and a segment
/// beside it.
const MIN_SPOOL_BYTES: u64 = 2 * 1024 * 1024;
/// Sample buffers between the sdr and demod threads (~55 ms at 2.4 MS/s).
const SAMPLE_BUFFERS: usize = 4;
/// Decoded frames between the demod thread and the track task.
const FRAME_QUEUE: usize = 4096;
/// SBS lines between the track task and the sink.
const LINE_QUEUE: usize = 1024;
/// The sink writes out at least this often.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// ... and whenever this much is buffered.
const SINK_BUFFER: usize = 64 * 1024;

/// Where samples come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in simulated sky, endless, paced in real time.
    Sim,
    /// An IQ recording.
    File(PathBuf),
    /// An RTL-SDR dongle on USB.
    Rtlsdr(rtlsdr::Selector),
    /// IQ samples from an rtl_tcp server, `HOST:PORT`.
    RtlTcp(String),
    /// Demodulated frames from a Beast port (readsb, dump1090-fa), `HOST:PORT`.
    Beast(String),
    /// SBS lines from a feeder's port 30003, `HOST:PORT`, forwarded.
    Sbs(String),
}

impl FromStr for Source {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t == "sim" {
            return Ok(Source::Sim);
        }
        if let Some(rest) = t.strip_prefix("rtlsdr") {
            return rest.parse().map(Source::Rtlsdr);
        }
        let (kind, rest) = t.split_once(':').unwrap_or((t, ""));
        match kind {
            "file" if !rest.is_empty() => Ok(Source::File(PathBuf::from(rest))),
            "rtltcp" => source::parse_host_port(rest).map(Source::RtlTcp),
            "beast" => source::parse_host_port(rest).map(Source::Beast),
            "sbs" => source::parse_host_port(rest).map(Source::Sbs),
            _ => Err(format!(
                "unknown source {s:?}: use sim, file:PATH, rtlsdr[:INDEX|:serial=SERIAL], rtltcp:HOST:PORT, beast:HOST:PORT or sbs:HOST:PORT"
            )),
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Sim => f.write_str("sim"),
            Source::File(p) => write!(f, "file:{}", p.display()),
            Source::Rtlsdr(sel) => write!(f, "rtlsdr:{sel}"),
            Source::RtlTcp(a) => write!(f, "rtltcp:{a}"),
            Source::Beast(a) => write!(f, "beast:{a}"),
            Source::Sbs(a) => write!(f, "sbs:{a}"),
        }
    }
}

/// How fast a file source is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplaySpeed {
    /// As fast as the demodulator takes it; nothing is dropped.
    Max,
    /// At the sample rate, like a radio.
    Realtime,
}

impl FromStr for ReplaySpeed {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "max" => Ok(ReplaySpeed::Max),
            "realtime" => Ok(ReplaySpeed::Realtime),
            _ => Err(format!("unknown replay speed {s:?}: use realtime or max")),
        }
    }
}

/// `2000000` or `2400000`, also written `2.0M` / `2.4M`.
pub fn parse_sample_rate(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let hz = if let Some(m) = t.strip_suffix(['M', 'm']) {
        m.parse::<f64>().ok().map(|v| (v * 1e6).round())
    } else {
        t.parse::<f64>().ok()
    };
    match hz {
        Some(v) if v == 2_000_000.0 || v == 2_400_000.0 => Ok(v as u32),
        _ => Err(format!(
            "unsupported sample rate {s:?}: use 2000000 or 2400000 (2.0M / 2.4M)"
        )),
    }
}

/// A duration: a number with `ms`, `s` or `m` (`500ms`, `10s`, `1.5m`);
/// a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 && v * scale <= MAX_DURATION_S => {
            Ok(Duration::from_secs_f64(v * scale))
        }
        _ => Err(format!(
            "{s:?} is not a duration (like 500ms, 10s, 2m; at most one day)"
        )),
    }
}

/// A size in bytes: a whole number, optionally with `KiB`, `MiB` or `GiB`
/// (`25KiB`, `256MiB`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, scale) = [
        ("KiB", 1u64 << 10),
        ("MiB", 1 << 20),
        ("GiB", 1 << 30),
        ("B", 1),
    ]
    .iter()
    .find_map(|(suffix, scale)| t.strip_suffix(suffix).map(|n| (n, *scale)))
    .unwrap_or((t, 1));
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("{s:?} is not a size (bytes, or a number with KiB, MiB, GiB)"))
}

/// Everything `run` needs. Merged from, lowest first: these defaults, the
/// TOML file (`--config`), `ADSB_KINESIS_<FIELD>` environment variables,
/// then command-line flags.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where samples come from: `"sim"` (a simulated sky through the full
    /// demodulator, endless, in real time), `"file:PATH"` (IQ replay),
    /// `"rtlsdr"` / `"rtlsdr:INDEX"` / `"rtlsdr:serial=SERIAL"` (a dongle),
    /// `"rtltcp:HOST:PORT"` (an rtl_tcp server), `"beast:HOST:PORT"`
    /// (frames from readsb / dump1090-fa) or `"sbs:HOST:PORT"` (SBS lines,
    /// forwarded).
    #[serde(deserialize_with = "de_parse")]
    pub source: Source,
    /// Sample format of a file source: `"cu8"` or `"cs16"`. The simulator
    /// always produces cu8.
    #[serde(deserialize_with = "de_parse")]
    pub iformat: SampleFormat,
    /// Samples per second: 2000000 or 2400000 (as a string also `"2.0M"`,
    /// `"2.4M"`).
    #[serde(deserialize_with = "de_rate")]
    pub sample_rate: u32,
    /// How fast a file source is replayed: `"max"` or `"realtime"`.
    #[serde(deserialize_with = "de_parse")]
    pub replay_speed: ReplaySpeed,
    /// Seconds between two stats lines on stderr.
    pub stats_interval: f64,
    /// Receiver latitude, degrees (with `lon`): enables local and surface
    /// CPR decoding, and centres the simulated sky.
    pub lat: Option<f64>,
    /// Receiver longitude, degrees (with `lat`).
    pub lon: Option<f64>,
    /// Bits of error repair for DF11/17/18: 0, 1 or 2.
    pub fix: u8,
    /// Kinesis data stream name. Without `stream` or `stream_arn` the
    /// sink is stdout (SBS lines).
    pub stream: Option<String>,
    /// Kinesis data stream ARN (instead of `stream`).
    pub stream_arn: Option<String>,
    /// AWS region; default: the AWS default chain (`AWS_REGION`, profile).
    pub region: Option<String>,
    /// Kinesis endpoint (LocalStack, moto, a VPC endpoint), `http(s)://...`.
    pub endpoint_url: Option<String>,
    /// AWS shared-config profile; default: `AWS_PROFILE` or `default`.
    pub profile: Option<String>,
    /// Up to this many consecutive lines of one aircraft per record.
    pub pack_lines: usize,
    /// Largest record, data + partition key, bytes (`"25KiB"` in TOML as
    /// a string, or a number).
    #[serde(deserialize_with = "de_size_usize")]
    pub max_record_bytes: usize,
    /// Longest time a record waits in memory before its batch is sent
    /// (`"500ms"`, or seconds as a number).
    #[serde(deserialize_with = "de_duration")]
    pub linger: Duration,
    /// Spool directory; default `$STATE_DIRECTORY` (systemd) or `./spool`.
    pub spool_dir: Option<PathBuf>,
    /// Cap on the spool's size on disk; beyond it the oldest records are
    /// dropped and counted.
    #[serde(deserialize_with = "de_size")]
    pub spool_max_bytes: u64,
    /// At SIGTERM/SIGINT or the end of a file: how long to keep sending
    /// before the rest goes to the spool.
    #[serde(deserialize_with = "de_duration")]
    pub shutdown_timeout: Duration,
    /// First retry pause bound, milliseconds (tests shorten it).
    pub retry_base_ms: u64,
    /// Largest retry pause, milliseconds.
    pub retry_max_ms: u64,
    /// Pause between retries after a configuration error (stream missing,
    /// access denied), milliseconds.
    pub config_retry_ms: u64,
    /// Bound on one PutRecords attempt, milliseconds.
    pub request_timeout_ms: u64,
    /// Tuner gain of an rtlsdr / rtltcp source: `"auto"` or dB (the
    /// nearest gain the tuner supports).
    #[serde(deserialize_with = "de_gain")]
    pub gain: Gain,
    /// Frequency correction of the dongle's crystal, ppm.
    pub ppm: i32,
    /// Power an antenna's LNA through the coax (RTL-SDR Blog dongles).
    pub bias_tee: bool,
    /// Also serve the SBS lines to local TCP clients on this `ADDR:PORT`
    /// (e.g. `"127.0.0.1:30003"`).
    pub sbs_listen: Option<String>,
}

fn de_gain<'de, D: Deserializer<'de>>(d: D) -> Result<Gain, D::Error> {
    de_units(d, |s| s.parse())
}

impl Default for Config {
    fn default() -> Self {
        Config {
            source: Source::Sim,
            iformat: SampleFormat::Cu8,
            sample_rate: 2_400_000,
            replay_speed: ReplaySpeed::Max,
            stats_interval: 60.0,
            lat: None,
            lon: None,
            fix: 1,
            stream: None,
            stream_arn: None,
            region: None,
            endpoint_url: None,
            profile: None,
            pack_lines: DEFAULT_PACK_LINES,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            linger: DEFAULT_LINGER,
            spool_dir: None,
            spool_max_bytes: spool::DEFAULT_MAX_BYTES,
            shutdown_timeout: Duration::from_secs(10),
            retry_base_ms: 100,
            retry_max_ms: 10_000,
            config_retry_ms: 60_000,
            request_timeout_ms: 10_000,
            gain: Gain::Auto,
            ppm: 0,
            bias_tee: false,
            sbs_listen: None,
        }
    }
}

fn de_parse<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = String>,
{
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

/// A number or a string with units, parsed by `parse`.
fn de_units<'de, D: Deserializer<'de>, T>(
    d: D,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<T, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Value {
        Int(u64),
        Float(f64),
        Text(String),
    }
    let text = match Value::deserialize(d)? {
        Value::Int(n) => n.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Text(s) => s,
    };
    parse(&text).map_err(serde::de::Error::custom)
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    de_units(d, parse_duration)
}

fn de_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    de_units(d, parse_size)
}

fn de_size_usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    de_units(d, |s| {
        parse_size(s).and_then(|n| usize::try_from(n).map_err(|_| format!("{s:?} is too large")))
    })
}

fn de_rate<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Rate {
        Int(i64),
        Text(String),
    }
    let text = match Rate::deserialize(d)? {
        Rate::Int(n) => n.to_string(),
        Rate::Text(s) => s,
    };
    parse_sample_rate(&text).map_err(serde::de::Error::custom)
}

/// A configuration that cannot run. Each message is one line naming the
/// field (or file, or variable) at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {}: {error}", path.display())]
    Read { path: PathBuf, error: io::Error },
    #[error("config file {}{}: {message}", path.display(), line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Parse {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("{var}: {message}")]
    Env { var: String, message: String },
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: message.into(),
    }
}

impl Config {
    /// Parses a TOML config; on error the 1-based line and a one-line message.
    pub fn from_toml(text: &str) -> Result<Config, (Option<usize>, String)> {
        toml::from_str(text).map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
            (line, message)
        })
    }

    /// Defaults, overridden by the TOML file at `path` (if any), then by
    /// `ADSB_KINESIS_*` variables as `env` reports them. Not validated yet:
    /// flags come on top, then call [`Config::validate`].
    pub fn load(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut cfg = match path {
            None => Config::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|error| ConfigError::Read {
                    path: p.to_path_buf(),
                    error,
                })?;
                Config::from_toml(&text).map_err(|(line, message)| ConfigError::Parse {
                    path: p.to_path_buf(),
                    line,
                    message,
                })?
            }
        };
        cfg.apply_env(env)?;
        Ok(cfg)
    }

    /// Overrides fields from `ADSB_KINESIS_<FIELD>` variables; empty ones
    /// count as unset.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn get<T>(
            env: &impl Fn(&str) -> Option<String>,
            field: &str,
            parse: impl Fn(&str) -> Result<T, String>,
        ) -> Result<Option<T>, ConfigError> {
            let var = format!("{ENV_PREFIX}{}", field.to_ascii_uppercase());
            match env(&var) {
                Some(v) if !v.trim().is_empty() => parse(&v)
                    .map(Some)
                    .map_err(|message| ConfigError::Env { var, message }),
                _ => Ok(None),
            }
        }
        fn num<T: FromStr>(s: &str) -> Result<T, String> {
            s.trim()
                .parse()
                .map_err(|_| format!("{s:?} is not a valid number here"))
        }
        if let Some(v) = get(&env, "source", str::parse)? {
            self.source = v;
        }
        if let Some(v) = get(&env, "iformat", str::parse)? {
            self.iformat = v;
        }
        if let Some(v) = get(&env, "sample_rate", parse_sample_rate)? {
            self.sample_rate = v;
        }
        if let Some(v) = get(&env, "replay_speed", str::parse)? {
            self.replay_speed = v;
        }
        if let Some(v) = get(&env, "stats_interval", num)? {
            self.stats_interval = v;
        }
        if let Some(v) = get(&env, "lat", num)? {
            self.lat = Some(v);
        }
        if let Some(v) = get(&env, "lon", num)? {
            self.lon = Some(v);
        }
        if let Some(v) = get(&env, "fix", num)? {
            self.fix = v;
        }
        let text = |s: &str| Ok::<_, String>(s.trim().to_owned());
        if let Some(v) = get(&env, "stream", text)? {
            self.stream = Some(v);
        }
        if let Some(v) = get(&env, "stream_arn", text)? {
            self.stream_arn = Some(v);
        }
        if let Some(v) = get(&env, "region", text)? {
            self.region = Some(v);
        }
        if let Some(v) = get(&env, "endpoint_url", text)? {
            self.endpoint_url = Some(v);
        }
        if let Some(v) = get(&env, "profile", text)? {
            self.profile = Some(v);
        }
        if let Some(v) = get(&env, "pack_lines", num)? {
            self.pack_lines = v;
        }
        if let Some(v) = get(&env, "max_record_bytes", parse_size)? {
            self.max_record_bytes = usize::try_from(v).unwrap_or(usize::MAX);
        }
        if let Some(v) = get(&env, "linger", parse_duration)? {
            self.linger = v;
        }
        if let Some(v) = get(&env, "spool_dir", text)? {
            self.spool_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = get(&env, "spool_max_bytes", parse_size)? {
            self.spool_max_bytes = v;
        }
        if let Some(v) = get(&env, "shutdown_timeout", parse_duration)? {
            self.shutdown_timeout = v;
        }
        if let Some(v) = get(&env, "retry_base_ms", num)? {
            self.retry_base_ms = v;
        }
        if let Some(v) = get(&env, "retry_max_ms", num)? {
            self.retry_max_ms = v;
        }
        if let Some(v) = get(&env, "config_retry_ms", num)? {
            self.config_retry_ms = v;
        }
        if let Some(v) = get(&env, "request_timeout_ms", num)? {
            self.request_timeout_ms = v;
        }
        if let Some(v) = get(&env, "gain", str::parse)? {
            self.gain = v;
        }
        if let Some(v) = get(&env, "ppm", num)? {
            self.ppm = v;
        }
        if let Some(v) = get(&env, "bias_tee", |s| match s.trim() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(format!("{s:?} is not true or false")),
        })? {
            self.bias_tee = v;
        }
        if let Some(v) = get(&env, "sbs_listen", text)? {
            self.sbs_listen = Some(v);
        }
        Ok(())
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if Rate::from_hz(self.sample_rate).is_none() {
            return Err(invalid(
                "sample_rate",
                format!("{} is not 2000000 or 2400000", self.sample_rate),
            ));
        }
        if !(self.stats_interval > 0.0 && self.stats_interval <= MAX_STATS_INTERVAL) {
            return Err(invalid(
                "stats_interval",
                format!(
                    "{} is not a number of seconds within 0 (exclusive) and {MAX_STATS_INTERVAL}",
                    self.stats_interval
                ),
            ));
        }
        if let Some(lat) = self.lat {
            if !(lat.is_finite() && lat.abs() <= 90.0) {
                return Err(invalid("lat", format!("{lat} is not within ±90°")));
            }
        }
        if let Some(lon) = self.lon {
            if !(lon.is_finite() && lon.abs() <= 180.0) {
                return Err(invalid("lon", format!("{lon} is not within ±180°")));
            }
        }
        match (self.lat, self.lon) {
            (Some(_), None) => return Err(invalid("lon", "lat is set, lon is not")),
            (None, Some(_)) => return Err(invalid("lat", "lon is set, lat is not")),
            _ => {}
        }
        if self.fix > 2 {
            return Err(invalid("fix", format!("{} is not 0, 1 or 2", self.fix)));
        }
        if self.stream.is_some() && self.stream_arn.is_some() {
            return Err(invalid("stream_arn", "give stream or stream_arn, not both"));
        }
        for (field, v) in [
            ("stream", &self.stream),
            ("stream_arn", &self.stream_arn),
            ("region", &self.region),
            ("profile", &self.profile),
        ] {
            if v.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(invalid(field, "is empty"));
            }
        }
        if let Some(name) = &self.stream {
            // CreateStream: StreamName 1-128 of [a-zA-Z0-9_.-].
            if name.len() > 128
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
            {
                return Err(invalid(
                    "stream",
                    format!("{name:?} is not a stream name (1-128 of a-z A-Z 0-9 _ . -)"),
                ));
            }
        }
        if let Some(arn) = &self.stream_arn {
            if !(arn.starts_with("arn:") && arn.contains(":kinesis:") && arn.contains(":stream/")) {
                return Err(invalid(
                    "stream_arn",
                    format!("{arn:?} is not a Kinesis stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)"),
                ));
            }
        }
        if let Some(url) = &self.endpoint_url {
            if let Err(reason) = check_endpoint_url(url) {
                return Err(invalid("endpoint_url", format!("{url:?}: {reason}")));
            }
        }
        if !(1..=MAX_PACK_LINES).contains(&self.pack_lines) {
            return Err(invalid(
                "pack_lines",
                format!("{} is not within 1..={MAX_PACK_LINES}", self.pack_lines),
            ));
        }
        if !(MIN_MAX_RECORD_BYTES..=MAX_RECORD_BYTES).contains(&self.max_record_bytes) {
            return Err(invalid(
                "max_record_bytes",
                format!(
                    "{} is not within {MIN_MAX_RECORD_BYTES}..={MAX_RECORD_BYTES} (the Kinesis record limit, 1 MiB)",
                    self.max_record_bytes
                ),
            ));
        }
        if self.linger > MAX_LINGER {
            return Err(invalid(
                "linger",
                format!("{:?} is longer than {MAX_LINGER:?}", self.linger),
            ));
        }
        if self.spool_max_bytes < MIN_SPOOL_BYTES {
            return Err(invalid(
                "spool_max_bytes",
                format!(
                    "{} is below {MIN_SPOOL_BYTES} (2 MiB)",
                    self.spool_max_bytes
                ),
            ));
        }
        for (field, ms) in [
            ("retry_base_ms", self.retry_base_ms),
            ("retry_max_ms", self.retry_max_ms),
            ("config_retry_ms", self.config_retry_ms),
            ("request_timeout_ms", self.request_timeout_ms),
        ] {
            if !(1..=MAX_DURATION_S as u64 * 1000).contains(&ms) {
                return Err(invalid(
                    field,
                    format!("{ms} is not within 1 ms and one day"),
                ));
            }
        }
        if !(-1000..=1000).contains(&self.ppm) {
            return Err(invalid("ppm", format!("{} is not within ±1000", self.ppm)));
        }
        if let Some(a) = &self.sbs_listen {
            if a.parse::<std::net::SocketAddr>().is_err() {
                return Err(invalid(
                    "sbs_listen",
                    format!("{a:?} is not ADDR:PORT (e.g. 127.0.0.1:30003)"),
                ));
            }
        }
        if self.source == Source::Sim {
            self.sim_config()
                .validate()
                .map_err(|e| invalid("lat", e.to_string()))?;
        }
        Ok(())
    }

    /// The stream to write to, if the sink is Kinesis.
    pub fn stream_id(&self) -> Option<StreamId> {
        match (&self.stream, &self.stream_arn) {
            (_, Some(arn)) => Some(StreamId::Arn(arn.clone())),
            (Some(name), None) => Some(StreamId::Name(name.clone())),
            (None, None) => None,
        }
    }

    /// `spool_dir`, else the first of `$STATE_DIRECTORY` (systemd's
    /// `StateDirectory=`), else `./spool`.
    pub fn spool_dir(&self, env: impl Fn(&str) -> Option<String>) -> PathBuf {
        if let Some(d) = &self.spool_dir {
            return d.clone();
        }
        env("STATE_DIRECTORY")
            .and_then(|v| v.split(':').find(|p| !p.is_empty()).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("spool"))
    }

    fn receiver(&self) -> Option<(f64, f64)> {
        self.lat.zip(self.lon)
    }

    fn sim_config(&self) -> SimConfig {
        let d = SimConfig::default();
        SimConfig {
            duration_s: f64::INFINITY,
            sample_rate: self.sample_rate,
            format: SampleFormat::Cu8,
            receiver: self.receiver().unwrap_or(d.receiver),
            ..d
        }
    }
}

/// Why a run stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open {}: {error}", path.display())]
    Open { path: PathBuf, error: io::Error },
    #[error("reading {}: {error}", path.display())]
    Read { path: PathBuf, error: io::Error },
    #[error("writing output: {0}")]
    Write(io::Error),
    #[error("cannot start a pipeline thread: {0}")]
    Spawn(io::Error),
    #[error("sbs_listen: cannot listen on {addr}: {error}")]
    Listen { addr: String, error: io::Error },
    #[error("the {0} stage panicked")]
    Panicked(&'static str),
    #[cfg(feature = "aws")]
    #[error(transparent)]
    Aws(#[from] aws::StartError),
    #[cfg(not(feature = "aws"))]
    #[error("--stream needs the Kinesis sink: this build has no `aws` feature")]
    NoAws,
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("kinesis sink: {0}")]
    Sink(#[from] SinkError),
}

/// Counters, kept together: the stages add, the stats task reads.
#[derive(Default)]
struct Telemetry {
    frames_by_df: [AtomicU64; 25],
    /// Frames the track task had no room for.
    frames_dropped: AtomicU64,
    /// Sample buffers the demodulator had no room for.
    buffers_dropped: AtomicU64,
    lines: AtomicU64,
    aircraft: AtomicU64,
    /// The Kinesis sink's counters, when it is the sink.
    sender: Option<Arc<SenderTelemetry>>,
    /// Sample buffers the demodulator took, and SBS lines the track stage
    /// handed on: the health signals of [`notify`].
    sample_buffers: AtomicU64,
    lines_made: AtomicU64,
    /// The source's connections, errors and `--sbs-listen` clients.
    source: Arc<source::SourceTelemetry>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    pub frames_by_df: [u64; 25],
    pub frames_dropped: u64,
    pub buffers_dropped: u64,
    /// SBS lines written to stdout, or stored in Kinesis.
    pub lines: u64,
    pub aircraft: u64,
    /// The Kinesis sink's counters (all zero with the stdout sink).
    pub sender: SenderStats,
    /// The source's counters (network and dongle sources, --sbs-listen).
    pub source: SourceStats,
}

impl RunStats {
    pub fn frames(&self) -> u64 {
        self.frames_by_df.iter().sum()
    }
}

impl Telemetry {
    /// What the sd_notify watch task looks at.
    fn reading(&self) -> notify::Reading {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let sender = self.sender.as_ref().map(|s| s.snapshot());
        notify::Reading {
            sample_buffers: get(&self.sample_buffers),
            source_waiting: self.source.is_waiting(),
            frames: self.frames_by_df.iter().map(get).sum(),
            lines_made: get(&self.lines_made),
            // Written to stdout, or taken in by the Kinesis batcher.
            lines_taken: get(&self.lines) + sender.map_or(0, |s| s.lines_in),
            aircraft: get(&self.aircraft),
            spool_records: sender.map_or(0, |s| s.spool_records),
            spool_bytes: sender.map_or(0, |s| s.spool_bytes),
            kinesis: sender.is_some(),
        }
    }

    fn snapshot(&self) -> RunStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let sender = self
            .sender
            .as_ref()
            .map(|s| s.snapshot())
            .unwrap_or_default();
        RunStats {
            frames_by_df: std::array::from_fn(|i| get(&self.frames_by_df[i])),
            frames_dropped: get(&self.frames_dropped),
            buffers_dropped: get(&self.buffers_dropped),
            lines: get(&self.lines) + sender.lines_sent,
            aircraft: get(&self.aircraft),
            sender,
            source: self.source.snapshot(),
        }
    }

    /// The periodic stats line: rates over `secs` since `last`.
    fn log(&self, last: &RunStats, secs: f64) -> RunStats {
        let now = self.snapshot();
        let rate = |a: u64, b: u64| (a - b) as f64 / secs.max(1e-9);
        let by_df: Vec<String> = (0..25)
            .filter(|&df| now.frames_by_df[df] > last.frames_by_df[df])
            .map(|df| {
                format!(
                    "DF{df}:{:.1}",
                    rate(now.frames_by_df[df], last.frames_by_df[df])
                )
            })
            .collect();
        info!(
            frames_per_s = %format!("{:.1}", rate(now.frames(), last.frames())),
            by_df = %by_df.join(" "),
            lines = now.lines,
            frames_dropped = now.frames_dropped,
            buffers_dropped = now.buffers_dropped,
            aircraft = now.aircraft,
            source_connects = now.source.connects,
            source_failures = now.source.failures,
            source_rejects = now.source.rejects,
            source_garbage_bytes = now.source.garbage_bytes,
            listen_clients = now.source.listen_clients,
            listen_dropped = now.source.listen_dropped,
            "stats"
        );
        if self.sender.is_some() {
            log_sender("stats", &now.sender);
        }
        now
    }
}

/// The Kinesis sink's half of a stats line (and of the final summary).
fn log_sender(what: &str, s: &SenderStats) {
    info!(
        lines_in = s.lines_in,
        records_sent = s.records_sent,
        bytes_sent = s.bytes_sent,
        lines_sent = s.lines_sent,
        put_records_calls = s.put_calls,
        records_retried = s.records_retried,
        records_failed = s.records_failed,
        throttles = s.throttles,
        unknown_outcome = s.unknown_outcome,
        lines_refused = s.lines_refused,
        spool_records = s.spool_records,
        spool_bytes = s.spool_bytes,
        spool_oldest_s = s.spool_oldest_s,
        spool_dropped = s.spool_dropped,
        spooled_batches = s.spooled_batches,
        "kinesis {what}"
    );
}

/// One decoded frame on its way to the track task.
struct Decoded {
    frame: Frame,
    /// Sample index of the frame since the start of the run.
    sample: u64,
}

enum Samples {
    Sim(Box<Simulator>),
    File {
        file: File,
        path: PathBuf,
    },
    /// Returns 0 only when cancelled; reconnects by itself.
    Rtl(Box<rtlsdr::Dongle>),
    /// Returns 0 only when cancelled; reconnects by itself.
    RtlTcp(Box<rtltcp::RtlTcp>),
}

impl Samples {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, RunError> {
        match self {
            Samples::Sim(sim) => Ok(sim.fill(buf, &mut Vec::new())),
            Samples::Rtl(d) => Ok(d.read(buf)),
            Samples::RtlTcp(c) => Ok(c.read(buf)),
            Samples::File { file, path } => loop {
                match file.read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(error) => {
                        return Err(RunError::Read {
                            path: path.clone(),
                            error,
                        })
                    }
                }
            },
        }
    }
}

/// Keeps a source to the sample rate: bytes are released no earlier than
/// they would come off the air.
struct Pacer {
    start: Instant,
    bytes_per_s: f64,
    bytes: u64,
}

impl Pacer {
    /// Counts `n` more bytes and sleeps until they are due (or cancelled).
    fn wait(&mut self, n: usize, token: &CancellationToken) {
        self.bytes += n as u64;
        let due = self.start + Duration::from_secs_f64(self.bytes as f64 / self.bytes_per_s);
        while !token.is_cancelled() {
            let now = Instant::now();
            if now >= due {
                break;
            }
            thread::sleep((due - now).min(FLUSH_EVERY));
        }
    }
}

/// The sdr stage: reads buffers until cancelled, the end of the input or
/// the demodulator going away.
fn source_stage(
    mut src: Samples,
    mut pacer: Option<Pacer>,
    live: bool,
    tx: std_mpsc::SyncSender<Vec<u8>>,
    recycled: std_mpsc::Receiver<Vec<u8>>,
    token: CancellationToken,
    tel: Arc<Telemetry>,
) -> Result<(), RunError> {
    while !token.is_cancelled() {
        let mut buf = recycled
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK_BYTES));
        buf.resize(CHUNK_BYTES, 0);
        let n = src.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        buf.truncate(n);
        if let Some(p) = &mut pacer {
            p.wait(n, &token);
        }
        if live {
            match tx.try_send(buf) {
                Ok(()) => {}
                Err(std_mpsc::TrySendError::Full(_)) => {
                    tel.buffers_dropped.fetch_add(1, Ordering::Relaxed);
                }
                Err(std_mpsc::TrySendError::Disconnected(_)) => return Ok(()),
            }
        } else if tx.send(buf).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// An accepted frame from a frame source (Beast), parsed and counted as
/// the demod stage does its own.
fn decoded(r: &Received, tel: &Telemetry) -> Option<Decoded> {
    // Accepted frames always parse (their length matches their DF).
    let frame = modes::parse(r.bytes()).ok()?;
    tel.frames_by_df[usize::from(frame.df.min(24))].fetch_add(1, Ordering::Relaxed);
    Some(Decoded {
        frame,
        sample: r.sample,
    })
}

/// Once the source is told to stop, how long the demod stage waits for it
/// to hand over its last buffer. A source stuck in a read (a wedged dongle:
/// rtl-sdr-rs's synchronous read has no timeout) must not hold the drain
/// hostage, or a SIGTERM would end in systemd's SIGKILL and lose what is
/// queued in memory: what the source delivered is decoded and sent or
/// spooled, and the process exits without it.
const SOURCE_GRACE: Duration = Duration::from_secs(2);

/// How the demod stage ended.
struct DemodEnd {
    /// Bytes left over at the end that made no whole sample.
    rest: usize,
    /// The source was still inside a read [`SOURCE_GRACE`] after being
    /// told to stop; its thread is left to the process exit.
    source_stuck: bool,
}

/// The demod stage: samples in, parsed frames out to the track task.
fn demod_stage(
    rx: std_mpsc::Receiver<Vec<u8>>,
    recycle: std_mpsc::SyncSender<Vec<u8>>,
    mut dec: IqDecoder,
    tx: mpsc::Sender<Decoded>,
    wait_when_full: bool,
    token: CancellationToken,
    tel: Arc<Telemetry>,
) -> DemodEnd {
    let mut out = Vec::new();
    let forward = |out: &mut Vec<Received>| -> bool {
        for r in out.drain(..) {
            // Accepted frames always parse (their length matches their DF).
            let Ok(frame) = modes::parse(r.bytes()) else {
                continue;
            };
            tel.frames_by_df[usize::from(frame.df.min(24))].fetch_add(1, Ordering::Relaxed);
            let d = Decoded {
                frame,
                sample: r.sample,
            };
            if wait_when_full {
                if tx.blocking_send(d).is_err() {
                    return false;
                }
            } else {
                match tx.try_send(d) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        tel.frames_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
        }
        true
    };
    let mut give_up_at = None;
    let mut source_stuck = false;
    loop {
        let buf = match rx.recv_timeout(FLUSH_EVERY) {
            Ok(buf) => buf,
            Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std_mpsc::RecvTimeoutError::Timeout) => {
                if token.is_cancelled() {
                    let at = *give_up_at.get_or_insert_with(|| Instant::now() + SOURCE_GRACE);
                    if Instant::now() >= at {
                        warn!(
                            grace_s = SOURCE_GRACE.as_secs(),
                            "the source did not stop (a wedged dongle or a stalled pipe?); \
                             finishing without it"
                        );
                        source_stuck = true;
                        break;
                    }
                }
                continue;
            }
        };
        tel.sample_buffers.fetch_add(1, Ordering::Relaxed);
        dec.push(&buf, &mut out);
        // The sdr thread allocates a new buffer when none comes back.
        let _ = recycle.try_send(buf);
        if !forward(&mut out) {
            return DemodEnd {
                rest: 0,
                source_stuck: false,
            };
        }
    }
    let rest = dec.finish(&mut out);
    forward(&mut out);
    DemodEnd { rest, source_stuck }
}

/// The track stage: per-aircraft state and SBS formatting.
async fn track_stage(
    mut rx: mpsc::Receiver<Decoded>,
    tx: mpsc::Sender<SbsLine>,
    mut tracker: Tracker,
    hz: f64,
    start_ms: i64,
    tel: Arc<Telemetry>,
) {
    while let Some(d) = rx.recv().await {
        let t = d.sample as f64 / hz;
        let known = tracker.len();
        let position = tracker.update(&d.frame, t);
        tel.aircraft.store(tracker.len() as u64, Ordering::Relaxed);
        if tracker.len() > known {
            debug!(icao = %d.frame.icao, df = d.frame.df, aircraft = tracker.len(), "new aircraft");
        }
        let line =
            SbsLine::from_frame(&d.frame, position, generated_ms(start_ms, t), unix_ms_now());
        if let Some(line) = line {
            tel.lines_made.fetch_add(1, Ordering::Relaxed);
            if tx.send(line).await.is_err() {
                return;
            }
        }
    }
}

/// The sink stage: `LINE\r\n` to `out`, written at least every
/// [`FLUSH_EVERY`] and when the input closes.
async fn line_sink<W: AsyncWrite + Unpin>(
    mut rx: mpsc::Receiver<SbsLine>,
    mut out: W,
    tel: Arc<Telemetry>,
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(SINK_BUFFER);
    let mut pending = 0u64;
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let flush = tokio::select! {
            line = rx.recv() => match line {
                Some(l) => {
                    write!(buf, "{l}\r\n")?;
                    pending += 1;
                    buf.len() >= SINK_BUFFER
                }
                None => break,
            },
            _ = tick.tick() => !buf.is_empty(),
        };
        if flush {
            out.write_all(&buf).await?;
            out.flush().await?;
            buf.clear();
            tel.lines.fetch_add(pending, Ordering::Relaxed);
            pending = 0;
        }
    }
    out.write_all(&buf).await?;
    out.flush().await?;
    tel.lines.fetch_add(pending, Ordering::Relaxed);
    Ok(())
}

/// The Kinesis sink, set up and checked before the pipeline starts.
struct KinesisSink {
    api: Api,
    handoff: Handoff,
    tel: Arc<SenderTelemetry>,
    batch: BatchOptions,
    sender: SenderOptions,
    shutdown_timeout: Duration,
}

/// The Kinesis API the sender calls.
#[cfg(feature = "aws")]
type Api = aws::Kinesis;

/// Built without the `aws` feature there is no Kinesis API.
#[cfg(not(feature = "aws"))]
enum Api {}

#[cfg(not(feature = "aws"))]
impl send::PutRecordsApi for Api {
    async fn put_records(
        &self,
        _: &[crate::kinesis::Record],
    ) -> Result<Vec<crate::kinesis::EntryResult>, send::RequestFailure> {
        match *self {}
    }
}

#[cfg(not(feature = "aws"))]
async fn connect(_: &Config, _: &StreamId) -> Result<Api, RunError> {
    Err(RunError::NoAws)
}

/// The SDK client, with region, credentials and the stream checked.
#[cfg(feature = "aws")]
async fn connect(config: &Config, stream: &StreamId) -> Result<Api, RunError> {
    let opts = aws::AwsOptions {
        region: config.region.clone(),
        endpoint_url: config.endpoint_url.clone(),
        profile: config.profile.clone(),
        request_timeout: Duration::from_millis(config.request_timeout_ms),
    };
    let (client, region) = aws::client(&opts).await?;
    let api = aws::Kinesis {
        client,
        stream: stream.clone(),
    };
    // A definite "no such stream" or "access denied" is an error now. If
    // Kinesis cannot be reached (no network at boot), start anyway: the
    // records spool until it answers, and a later configuration error is
    // logged and retried slowly.
    match api.describe().await {
        Ok(s) => info!(
            stream = %stream,
            region = %region,
            status = %s.status,
            open_shards = s.open_shards,
            "kinesis stream found"
        ),
        Err(failure) if failure.class == crate::kinesis::ErrorClass::Configuration => {
            return Err(aws::StartError::Stream {
                stream: stream.to_string(),
                region,
                failure,
            }
            .into());
        }
        Err(f) => warn!(
            stream = %stream,
            "cannot check the stream yet ({f}); starting anyway, records spool until Kinesis answers"
        ),
    }
    Ok(api)
}

/// Kinesis reachable (or not yet), spool opened and recovered.
async fn start_kinesis(config: &Config, stream: StreamId) -> Result<KinesisSink, RunError> {
    let api = connect(config, &stream).await?;
    let dir = config.spool_dir(|k| std::env::var(k).ok());
    let spool_opts = SpoolOptions {
        max_bytes: config.spool_max_bytes,
        segment_bytes: spool::DEFAULT_SEGMENT_BYTES.min(config.spool_max_bytes / 4),
    };
    let (spool, recovery) = tokio::task::spawn_blocking(move || Spool::open(dir, spool_opts))
        .await
        .map_err(|_| RunError::Panicked("spool open"))??;
    if recovery.corrupt_bytes > 0 {
        warn!(
            dir = %spool.dir().display(),
            segments = recovery.corrupt_segments,
            bytes = recovery.corrupt_bytes,
            "spool: skipped a torn or corrupt tail"
        );
    }
    if recovery.dropped.records > 0 {
        warn!(
            records = recovery.dropped.records,
            "spool: over spool-max-bytes at start, dropped the oldest records"
        );
    }
    info!(
        dir = %spool.dir().display(),
        records = recovery.records,
        "spool opened; its records are sent before new data"
    );
    let tel = Arc::new(SenderTelemetry::default());
    Ok(KinesisSink {
        api,
        handoff: Handoff::new(spool, tel.clone()),
        tel,
        batch: BatchOptions {
            pack_lines: config.pack_lines,
            max_record_bytes: config.max_record_bytes,
            linger: config.linger,
        },
        sender: SenderOptions {
            stream: stream.to_string(),
            retry: RetryPolicy {
                base: Duration::from_millis(config.retry_base_ms),
                cap: Duration::from_millis(config.retry_max_ms),
                config_retry: Duration::from_millis(config.config_retry_ms),
            },
        },
        shutdown_timeout: config.shutdown_timeout,
    })
}

/// The Kinesis sink: the batch task and the sender task. `stopping` is
/// cancelled at shutdown; the sender keeps going for `shutdown_timeout`
/// after that or after the input ends, then spools the rest.
async fn kinesis_sink(
    k: KinesisSink,
    rx: mpsc::Receiver<SbsLine>,
    stopping: CancellationToken,
) -> Result<(), RunError> {
    let give_up = CancellationToken::new();
    let timer = {
        let (stopping, give_up) = (stopping.clone(), give_up.clone());
        let after = k.shutdown_timeout;
        tokio::spawn(async move {
            stopping.cancelled().await;
            tokio::time::sleep(after).await;
            give_up.cancel();
        })
    };
    let batch = {
        let (handoff, tel, stopping) = (k.handoff.clone(), k.tel.clone(), stopping.clone());
        tokio::spawn(async move {
            let r = send::batch_stage(rx, handoff, k.batch, tel).await;
            // The input has ended (or shutdown drained it): the deadline runs.
            stopping.cancel();
            r
        })
    };
    let sender = tokio::spawn(send::sender(
        k.api,
        k.handoff.clone(),
        k.sender,
        give_up,
        k.tel.clone(),
    ));
    let batch_result = batch.await.map_err(|_| RunError::Panicked("batch"));
    let sender_result = sender.await.map_err(|_| RunError::Panicked("sender"));
    timer.abort();
    // Batches handed to the spool after the sender stopped are on disk;
    // make them and the ack position durable.
    let synced = k.handoff.sync().await;
    batch_result??;
    sender_result??;
    synced?;
    Ok(())
}

/// Under systemd (`$NOTIFY_SOCKET` set): the task that sends readiness,
/// watchdog pings and status (see [`notify`] for what healthy means).
fn start_notify(
    config: &Config,
    tel: Arc<Telemetry>,
    stop: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let notifier = match notify::Notifier::from_env() {
        Ok(n) => n?,
        Err(e) => {
            warn!("NOTIFY_SOCKET is set but unusable ({e}); not telling systemd we are ready");
            return None;
        }
    };
    let watchdog = notify::watchdog_timeout(|k| std::env::var(k).ok(), std::process::id());
    let source = config.source.to_string();
    Some(tokio::spawn(notify::watch(
        notifier,
        watchdog,
        source,
        move || tel.reading(),
        stop,
    )))
}

/// Runs the pipeline until the input ends or `shutdown` completes, then
/// drains and flushes every stage. SBS lines go to stdout, or to Kinesis
/// when the config names a stream.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<RunStats, RunError> {
    run_to(config, tokio::io::stdout(), shutdown).await
}

/// [`run`] writing the lines to `out` (unused with a Kinesis stream).
pub async fn run_to<W: AsyncWrite + Unpin + Send + 'static>(
    config: Config,
    out: W,
    shutdown: impl Future<Output = ()>,
) -> Result<RunStats, RunError> {
    config.validate()?;
    let rate =
        Rate::from_hz(config.sample_rate).ok_or_else(|| invalid("sample_rate", "unsupported"))?;
    let hz = f64::from(rate.hz());
    let token = CancellationToken::new();
    let source_tel = Arc::new(source::SourceTelemetry::default());
    let tuning = Tuning {
        freq_hz: source::MODE_S_HZ,
        sample_rate: rate.hz(),
        gain: config.gain,
        ppm: config.ppm,
        bias_tee: config.bias_tee,
    };
    // (samples, format, receiver, paced by us, live: a radio that cannot
    // wait, so full queues drop and count). Frame and line sources have
    // no samples.
    let (samples, format, receiver, paced, live) = match &config.source {
        Source::Rtlsdr(sel) => (
            Some(Samples::Rtl(Box::new(rtlsdr::Dongle::new(
                sel.clone(),
                tuning,
                token.clone(),
                source_tel.clone(),
            )))),
            SampleFormat::Cu8,
            config.receiver(),
            false,
            true,
        ),
        // TCP flow control pushes back to the server, which drops as a
        // dongle would: here the pipeline may wait.
        Source::RtlTcp(addr) => (
            Some(Samples::RtlTcp(Box::new(rtltcp::RtlTcp::new(
                addr.clone(),
                tuning,
                token.clone(),
                source_tel.clone(),
            )))),
            SampleFormat::Cu8,
            config.receiver(),
            false,
            false,
        ),
        Source::Beast(_) | Source::Sbs(_) => {
            (None, SampleFormat::Cu8, config.receiver(), false, false)
        }
        Source::Sim => {
            let sim = config.sim_config();
            let receiver = sim.receiver;
            let sim = Simulator::try_new(sim).map_err(|e| invalid("lat", e.to_string()))?;
            (
                Some(Samples::Sim(Box::new(sim))),
                SampleFormat::Cu8,
                Some(receiver),
                true,
                true,
            )
        }
        Source::File(path) => {
            let open_err = |error| RunError::Open {
                path: path.clone(),
                error,
            };
            let file = File::open(path).map_err(open_err)?;
            if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
                return Err(open_err(io::Error::other("is a directory")));
            }
            let paced = config.replay_speed == ReplaySpeed::Realtime;
            (
                Some(Samples::File {
                    file,
                    path: path.clone(),
                }),
                config.iformat,
                config.receiver(),
                paced,
                paced,
            )
        }
    };
    let listener =
        match &config.sbs_listen {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|error| {
                RunError::Listen {
                    addr: addr.clone(),
                    error,
                }
            })?),
            None => None,
        };
    let kinesis = match config.stream_id() {
        Some(stream) => Some(start_kinesis(&config, stream).await?),
        None => None,
    };
    info!(source = %config.source, sample_rate = rate.hz(), paced, "starting");

    let stopping = CancellationToken::new();
    let tel = Arc::new(Telemetry {
        sender: kinesis.as_ref().map(|k| k.tel.clone()),
        source: source_tel.clone(),
        ..Telemetry::default()
    });
    let start_ms = unix_ms_now();
    let pacer = paced.then(|| Pacer {
        start: Instant::now(),
        bytes_per_s: hz * format.bytes_per_sample() as f64,
        bytes: 0,
    });

    let (sample_tx, sample_rx) = std_mpsc::sync_channel(SAMPLE_BUFFERS);
    let (recycle_tx, recycle_rx) = std_mpsc::sync_channel(SAMPLE_BUFFERS + 2);
    let (frame_tx, frame_rx) = mpsc::channel(FRAME_QUEUE);
    let (line_tx, line_rx) = mpsc::channel(LINE_QUEUE);
    let (line_rx, tee) = match listener {
        Some(l) => {
            info!(addr = ?l.local_addr().ok(), "sbs-listen: serving SBS lines");
            let (tx, rx) = mpsc::channel(LINE_QUEUE);
            let tee = tokio::spawn(listen::tee(l, line_rx, tx, source_tel.clone()));
            (rx, Some(tee))
        }
        None => (line_rx, None),
    };

    // IQ sources: the sdr and demod threads. Frame and line sources: a
    // task on the socket, feeding the track task or the sink directly.
    let mut threads = None;
    let mut net_source = None;
    match (samples, &config.source) {
        (Some(samples), _) => {
            let source = {
                let (token, tel) = (token.clone(), tel.clone());
                thread::Builder::new()
                    .name("sdr".into())
                    .spawn(move || {
                        source_stage(samples, pacer, live, sample_tx, recycle_rx, token, tel)
                    })
                    .map_err(RunError::Spawn)?
            };
            let demod = {
                let (token, tel) = (token.clone(), tel.clone());
                let dec = IqDecoder::new(format, rate, config.fix);
                thread::Builder::new()
                    .name("demod".into())
                    .spawn(move || {
                        demod_stage(sample_rx, recycle_tx, dec, frame_tx, !live, token, tel)
                    })
                    .map_err(RunError::Spawn)?
            };
            threads = Some((source, demod));
        }
        (None, Source::Beast(addr)) => {
            let tel = tel.clone();
            net_source = Some(tokio::spawn(beast::run(
                addr.clone(),
                rate.hz(),
                config.fix,
                token.clone(),
                source_tel.clone(),
                frame_tx,
                move |r: &Received| decoded(r, &tel),
            )));
        }
        (None, Source::Sbs(addr)) => {
            drop(frame_tx);
            net_source = Some(tokio::spawn(sbsin::run(
                addr.clone(),
                token.clone(),
                source_tel.clone(),
                line_tx.clone(),
            )));
        }
        (None, _) => unreachable!("every IQ source has samples"),
    }
    if let Some(net) = &net_source {
        // A network input is healthy for sd_notify while its task runs,
        // connected or reconnecting with backoff: a quiet sky sends
        // nothing, and a restart would not bring a feeder back. Its
        // liveness stands in for the radio's sample buffers.
        let (tel, alive) = (tel.clone(), net.abort_handle());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while !alive.is_finished() {
                tel.sample_buffers.fetch_add(1, Ordering::Relaxed);
                tick.tick().await;
            }
        });
    }
    let track = tokio::spawn(track_stage(
        frame_rx,
        line_tx,
        Tracker::new(receiver),
        hz,
        start_ms,
        tel.clone(),
    ));
    let sink = match kinesis {
        None => {
            let tel = tel.clone();
            tokio::spawn(async move { line_sink(line_rx, out, tel).await.map_err(RunError::Write) })
        }
        Some(k) => tokio::spawn(kinesis_sink(k, line_rx, stopping.clone())),
    };
    let stats_stop = CancellationToken::new();
    let stats = {
        let (stop, tel) = (stats_stop.clone(), tel.clone());
        let every = Duration::from_secs_f64(config.stats_interval);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            let (mut last, mut at) = (RunStats::default(), Instant::now());
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {
                        last = tel.log(&last, at.elapsed().as_secs_f64());
                        at = Instant::now();
                    }
                }
            }
        })
    };

    let notify_stop = CancellationToken::new();
    let notify_task = start_notify(&config, tel.clone(), notify_stop.clone());

    let finished = async {
        let sink = sink.await;
        if let Some(t) = tee {
            let _ = t.await;
        }
        (sink, track.await)
    };
    tokio::pin!(finished);
    tokio::pin!(shutdown);
    let (sink_result, track_result) = tokio::select! {
        r = &mut finished => r,
        () = &mut shutdown => {
            info!("shutting down: stopping the source, draining the pipeline");
            notify_stop.cancel();
            token.cancel();
            stopping.cancel();
            (&mut finished).await
        }
    };
    stats_stop.cancel();
    let _ = stats.await;
    notify_stop.cancel();
    if let Some(t) = notify_task {
        let _ = t.await;
    }
    if let Some(net) = net_source {
        net.await.map_err(|_| RunError::Panicked("source"))?;
    }
    // The demod thread has dropped its sender by now, so it is returning;
    // the sdr thread too, unless the demod stage gave up on it.
    let mut rest = 0;
    if let Some((source, demod)) = threads {
        let end = tokio::task::spawn_blocking(move || demod.join())
            .await
            .map_err(|_| RunError::Panicked("join"))?
            .map_err(|_| RunError::Panicked("demod"))?;
        if !end.source_stuck {
            tokio::task::spawn_blocking(move || source.join())
                .await
                .map_err(|_| RunError::Panicked("join"))?
                .map_err(|_| RunError::Panicked("sdr"))??;
        }
        rest = end.rest;
    }
    if rest > 0 {
        warn!(
            bytes = rest,
            "input ends short of a whole sample (truncated file?)"
        );
    }
    track_result.map_err(|_| RunError::Panicked("track"))?;
    sink_result.map_err(|_| RunError::Panicked("sink"))??;
    let end = tel.snapshot();
    info!(
        frames = end.frames(),
        lines = end.lines,
        frames_dropped = end.frames_dropped,
        buffers_dropped = end.buffers_dropped,
        aircraft = end.aircraft,
        "finished"
    );
    if tel.sender.is_some() {
        log_sender("finished", &end.sender);
    }
    Ok(end)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// An environment of just `vars`, as the `env` lookups take it.
    pub(crate) fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn toml_fields_and_defaults() {
        let c = Config::from_toml(
            "source = \"file:x.cu8\"\nsample_rate = \"2.0M\"\nstats_interval = 5\nlat = 52\nlon = -1.5\n",
        )
        .unwrap();
        assert_eq!(c.source, Source::File("x.cu8".into()));
        assert_eq!(c.sample_rate, 2_000_000);
        assert_eq!(c.stats_interval, 5.0);
        assert_eq!(c.receiver(), Some((52.0, -1.5)));
        assert_eq!(c.fix, 1);
        assert_eq!(c.replay_speed, ReplaySpeed::Max);
        assert_eq!(
            Config::from_toml("sample_rate = 2400000")
                .unwrap()
                .sample_rate,
            2_400_000
        );
        c.validate().unwrap();
    }

    #[test]
    fn source_specs_and_tuner_fields() {
        for spec in [
            "rtlsdr:0",
            "rtlsdr:serial=00001090",
            "rtltcp:pi.local:1234",
            "beast:127.0.0.1:30005",
            "sbs:[::1]:30003",
        ] {
            let s: Source = spec.parse().unwrap();
            assert_eq!(s.to_string(), spec);
        }
        assert_eq!(
            "rtlsdr".parse::<Source>(),
            Ok(Source::Rtlsdr(rtlsdr::Selector::Index(0)))
        );
        let c = Config::from_toml(
            "source = \"rtlsdr:1\"\ngain = 49.6\nppm = -3\nbias_tee = true\nsbs_listen = \"127.0.0.1:30003\"\n",
        )
        .unwrap();
        assert_eq!(c.gain, Gain::Db(49.6));
        assert_eq!((c.ppm, c.bias_tee), (-3, true));
        c.validate().unwrap();
        assert_eq!(
            Config::from_toml("gain = \"auto\"").unwrap().gain,
            Gain::Auto
        );
        assert!(Config::from_toml("gain = \"loud\"").is_err());
        let mut c = Config::default();
        c.apply_env(env(&[
            ("ADSB_KINESIS_GAIN", "40"),
            ("ADSB_KINESIS_BIAS_TEE", "yes"),
        ]))
        .unwrap();
        assert_eq!((c.gain, c.bias_tee), (Gain::Db(40.0), true));
        c.sbs_listen = Some("localhost".into());
        assert!(c.validate().unwrap_err().to_string().contains("sbs_listen"));
        c.sbs_listen = None;
        c.ppm = 5000;
        assert!(c.validate().unwrap_err().to_string().contains("ppm"));
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let (line, msg) = Config::from_toml("fix = 1\nbogus_key = 3\n").unwrap_err();
        assert_eq!(line, Some(2));
        assert!(msg.contains("bogus_key"), "{msg}");
        assert!(!msg.contains('\n'));
        let (_, msg) = Config::from_toml("source = \"radio\"").unwrap_err();
        assert!(msg.contains("radio"), "{msg}");
    }

    #[test]
    fn env_overrides_file_and_names_the_variable() {
        let dir = std::env::temp_dir().join(format!("adsbk-daemon-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.toml");
        std::fs::write(&p, "stats_interval = 5\nfix = 2\n").unwrap();
        let c = Config::load(Some(&p), env(&[("ADSB_KINESIS_STATS_INTERVAL", "7.5")])).unwrap();
        assert_eq!((c.stats_interval, c.fix), (7.5, 2));
        let e = Config::load(None, env(&[("ADSB_KINESIS_SOURCE", "bogus")])).unwrap_err();
        assert!(e.to_string().starts_with("ADSB_KINESIS_SOURCE: "), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn kinesis_fields_from_toml_env_and_defaults() {
        let d = Config::default();
        assert_eq!(d.stream_id(), None);
        assert_eq!(d.pack_lines, 1);
        assert_eq!(d.max_record_bytes, 25 * 1024);
        assert_eq!(d.linger, Duration::from_millis(500));
        assert_eq!(d.spool_max_bytes, 256 << 20);
        assert_eq!(d.shutdown_timeout, Duration::from_secs(10));
        let c = Config::from_toml(
            "stream = \"adsb\"\npack_lines = 50\nmax_record_bytes = \"64KiB\"\nlinger = \"250ms\"\nspool_max_bytes = \"8MiB\"\nshutdown_timeout = 3\nregion = \"eu-west-1\"\n",
        )
        .unwrap();
        assert_eq!(c.stream_id(), Some(StreamId::Name("adsb".into())));
        assert_eq!(c.pack_lines, 50);
        assert_eq!(c.max_record_bytes, 64 * 1024);
        assert_eq!(c.linger, Duration::from_millis(250));
        assert_eq!(c.spool_max_bytes, 8 << 20);
        assert_eq!(c.shutdown_timeout, Duration::from_secs(3));
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
        c.validate().unwrap();

        let c = Config::load(
            None,
            env(&[
                (
                    "ADSB_KINESIS_STREAM_ARN",
                    "arn:aws:kinesis:eu-west-1:123456789012:stream/adsb",
                ),
                ("ADSB_KINESIS_LINGER", "1s"),
                ("ADSB_KINESIS_RETRY_BASE_MS", "5"),
            ]),
        )
        .unwrap();
        assert!(matches!(c.stream_id(), Some(StreamId::Arn(_))));
        assert_eq!(c.linger, Duration::from_secs(1));
        assert_eq!(c.retry_base_ms, 5);
        c.validate().unwrap();
        let e = Config::load(None, env(&[("ADSB_KINESIS_SPOOL_MAX_BYTES", "lots")])).unwrap_err();
        assert!(
            e.to_string().starts_with("ADSB_KINESIS_SPOOL_MAX_BYTES: "),
            "{e}"
        );
    }

    #[test]
    fn spool_dir_default_follows_systemd() {
        let c = Config::default();
        assert_eq!(c.spool_dir(env(&[])), PathBuf::from("spool"));
        assert_eq!(
            c.spool_dir(env(&[(
                "STATE_DIRECTORY",
                "/var/lib/adsb-kinesis:/var/lib/other"
            )])),
            PathBuf::from("/var/lib/adsb-kinesis")
        );
        let c = Config {
            spool_dir: Some("/x".into()),
            ..Config::default()
        };
        assert_eq!(
            c.spool_dir(env(&[("STATE_DIRECTORY", "/y")])),
            PathBuf::from("/x")
        );
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        for bad in ["", "-1s", "abc", "1h", "NaN", "100000000"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_size("25KiB"), Ok(25 * 1024));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("100B"), Ok(100));
        for bad in ["", "1.5MiB", "-1", "1TB", "99999999999999999999GiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kinesis_limits_are_validated() {
        let bad = |c: Config| c.validate().unwrap_err().to_string();
        let d = Config::default;
        assert!(bad(Config {
            stream: Some("a".into()),
            stream_arn: Some("arn:aws:kinesis:r:1:stream/a".into()),
            ..d()
        })
        .starts_with("stream_arn:"));
        assert!(bad(Config {
            stream: Some("bad name".into()),
            ..d()
        })
        .starts_with("stream:"));
        assert!(bad(Config {
            stream_arn: Some("adsb".into()),
            ..d()
        })
        .starts_with("stream_arn:"));
        assert!(bad(Config {
            max_record_bytes: 1024 * 1024 + 1,
            ..d()
        })
        .starts_with("max_record_bytes:"));
        assert!(bad(Config {
            pack_lines: 0,
            ..d()
        })
        .starts_with("pack_lines:"));
        assert!(bad(Config {
            linger: Duration::from_secs(61),
            ..d()
        })
        .starts_with("linger:"));
        assert!(bad(Config {
            spool_max_bytes: 1 << 20,
            ..d()
        })
        .starts_with("spool_max_bytes:"));
        assert!(bad(Config {
            endpoint_url: Some("localhost:4566".into()),
            ..d()
        })
        .starts_with("endpoint_url:"));
        assert!(bad(Config {
            retry_base_ms: 0,
            ..d()
        })
        .starts_with("retry_base_ms:"));
    }

    #[test]
    fn validate_names_the_field() {
        let bad = |c: Config| c.validate().unwrap_err().to_string();
        let d = Config::default;
        assert!(bad(Config {
            stats_interval: 0.0,
            ..d()
        })
        .starts_with("stats_interval:"));
        assert!(bad(Config { fix: 3, ..d() }).starts_with("fix:"));
        assert!(bad(Config {
            lat: Some(1.0),
            ..d()
        })
        .starts_with("lon:"));
        assert!(bad(Config {
            lat: Some(91.0),
            lon: Some(0.0),
            ..d()
        })
        .starts_with("lat:"));
        assert!(bad(Config {
            sample_rate: 3,
            ..d()
        })
        .starts_with("sample_rate:"));
    }

    #[tokio::test]
    async fn sim_run_stops_on_shutdown_and_flushes() {
        let (w, mut r) = tokio::io::duplex(1 << 20);
        let cfg = Config::default();
        let stats = run_to(cfg, w, tokio::time::sleep(Duration::from_millis(1500)))
            .await
            .unwrap();
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut r, &mut text)
            .await
            .unwrap();
        assert_eq!(text.matches("\r\n").count() as u64, stats.lines);
        assert!(text.lines().all(|l| l.starts_with("MSG,")));
    }
}
