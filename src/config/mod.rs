//! The configuration of `run`, `check-config` and `tail`: every option
//! declared once, as a field of one section struct per concern, deriving
//! both `clap::Args` (the flag, its help and its default) and
//! `serde::Deserialize` (the TOML key and `ADSB_KINESIS_*` variable, read
//! through [`layers`]). Adding an option is adding one field here.
//!
//! Precedence, lowest first: the built-in default, the TOML file
//! (`--config` or `ADSB_KINESIS_CONFIG`), `ADSB_KINESIS_<KEY>` variables,
//! command-line flags ([`layers`] has the merge). Then
//! [`RunConfig::validate`] checks ranges and combinations, naming the key
//! at fault. Credentials and the region's default come from the AWS chain,
//! never from here.

pub mod layers;
pub mod units;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{ArgMatches, Args};
use serde::Deserialize;

use crate::demod::Rate;
use crate::iq::SampleFormat;
use crate::kinesis::record::MAX_RECORD_BYTES;
use crate::kinesis::target::{check_endpoint_url, StreamId};
use crate::sim::SimConfig;
use crate::source::{Gain, ReplaySpeed, SourceSpec};
pub use layers::{env_var, Layer, Origin, ENV_PREFIX};
use units::MAX_DURATION_S;

/// Longest stats interval, seconds (one day).
const MAX_STATS_INTERVAL: f64 = 86_400.0;
/// Stats lines come at most once a second: a smaller interval would only
/// flood the journal (1e-9 wrote a million lines in 3 s).
const MIN_STATS_INTERVAL: f64 = 1.0;
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

/// A configuration that cannot run. Each message is one line naming the
/// key (or file line, variable or flag) at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("cannot read config file {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The config file is not valid TOML, or a key or value in it is bad.
    #[error("config file {}{}: {message}", path.display(), line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The 1-based line, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// An `ADSB_KINESIS_*` variable holds a bad value.
    #[error("{var}: {message}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong.
        message: String,
    },
    /// A flag holds a bad value.
    #[error("{flag}: {message}")]
    Flag {
        /// The flag, `--name`.
        flag: String,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range or does not go with another.
    #[error("{field}: {message}")]
    Invalid {
        /// The key at fault.
        field: String,
        /// What is wrong.
        message: String,
    },
}

fn invalid(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// `--config`: the TOML file with the options as keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct ConfigFile {
    /// TOML config file; its keys are the option names with `_` for `-`
    /// (also ADSB_KINESIS_CONFIG)
    #[arg(long)]
    pub config: Option<PathBuf>,
}

impl ConfigFile {
    /// The file to read: `--config`, else a non-empty `ADSB_KINESIS_CONFIG`.
    pub fn path(&self, env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
        self.config.clone().or_else(|| {
            env(&env_var("config"))
                .filter(|p| !p.trim().is_empty())
                .map(PathBuf::from)
        })
    }
}

/// Where the input comes from, and how the radio is tuned.
#[derive(Debug, Clone, PartialEq, Args, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// sim (simulated sky), file:PATH (IQ replay), rtlsdr[:INDEX|:serial=SERIAL],
    /// rtltcp:HOST:PORT, beast:HOST:PORT or sbs:HOST:PORT
    #[arg(long, default_value = "sim")]
    pub source: SourceSpec,
    /// Sample format of a file source: cu8 or cs16 (the simulator makes cu8)
    #[arg(long, default_value = "cu8")]
    pub iformat: SampleFormat,
    /// Sample rate: 2000000 or 2400000 (also 2.0M, 2.4M)
    #[arg(long, default_value = "2400000")]
    pub sample_rate: Rate,
    /// File replay speed: realtime or max
    #[arg(long, default_value = "max")]
    pub replay_speed: ReplaySpeed,
    /// Tuner gain of rtlsdr/rtltcp: auto or dB, nearest supported
    #[arg(long, default_value = "auto", allow_hyphen_values = true)]
    pub gain: Gain,
    /// Dongle frequency correction, ppm
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub ppm: i32,
    /// Power the antenna LNA through the coax (rtlsdr, rtltcp)
    #[arg(long)]
    pub bias_tee: bool,
    /// Aircraft in the simulated sky (--source sim), 1-1000: a busier sky
    /// for trying the outputs and the map
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub sim_aircraft: u16,
}

/// How frames are decoded: where the receiver is, how much repair.
#[derive(Debug, Clone, PartialEq, Args, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiverConfig {
    /// Receiver latitude, degrees (local and surface CPR decoding; centres
    /// the simulated sky)
    #[arg(long, allow_hyphen_values = true, value_parser = units::parse_lat)]
    #[serde(deserialize_with = "units::de_lat")]
    pub lat: Option<f64>,
    /// Receiver longitude, degrees
    #[arg(long, allow_hyphen_values = true, value_parser = units::parse_lon)]
    #[serde(deserialize_with = "units::de_lon")]
    pub lon: Option<f64>,
    /// Bits of error repair for DF11/17/18: 0, 1 or 2
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub fix: u8,
    /// Name of this receiver in the Kinesis stream: partition keys become
    /// ID/ICAO, so `tail --http-listen` shows which receiver heard what
    /// (1-64 of A-Z a-z 0-9 . _ -)
    #[arg(long)]
    pub receiver_id: Option<String>,
}

/// Where the decoded data goes besides the sink (stdout or Kinesis).
#[derive(Debug, Clone, PartialEq, Args, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Also serve SBS lines to TCP clients on ADDR:PORT (e.g. 127.0.0.1:30003)
    #[arg(long)]
    pub sbs_listen: Option<String>,
    /// Also serve every frame as AVR `*HEX;` lines to TCP clients on
    /// ADDR:PORT (dump1090's raw output, port 30002)
    #[arg(long)]
    pub raw_listen: Option<String>,
    /// Also serve every frame in the Beast binary format to TCP clients on
    /// ADDR:PORT (dump1090's port 30005: piaware, fr24feed, mlat-client)
    #[arg(long)]
    pub beast_listen: Option<String>,
    /// Also push every frame in the Beast format to HOST:PORT, reconnecting
    /// with backoff (an aggregator's or readsb's Beast input)
    #[arg(long)]
    pub beast_connect: Option<String>,
    /// Serve the live map and /data/aircraft.json on ADDR:PORT; the flag
    /// alone serves 0.0.0.0:8080, where dump1090-fa's SkyAware map was
    #[arg(long, num_args = 0..=1, default_missing_value = "0.0.0.0:8080")]
    pub http_listen: Option<String>,
    /// Write aircraft.json, receiver.json and stats.json into DIR once a
    /// second, atomically (the unit: /run/adsb-kinesis)
    #[arg(long)]
    pub json_dir: Option<PathBuf>,
}

/// Which Kinesis stream, and how to reach it (shared by `run` and `tail`).
#[derive(Debug, Clone, PartialEq, Args, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KinesisConfig {
    /// Kinesis data stream name (tail: a name or an ARN); without it (or
    /// --stream-arn), run writes SBS lines to stdout
    #[arg(long)]
    pub stream: Option<String>,
    /// Kinesis data stream ARN, instead of --stream
    #[arg(long)]
    pub stream_arn: Option<String>,
    /// AWS region [default: the AWS default chain: AWS_REGION, profile]
    #[arg(long)]
    pub region: Option<String>,
    /// Kinesis endpoint URL (LocalStack, moto, VPC endpoint)
    #[arg(long)]
    pub endpoint_url: Option<String>,
    /// AWS shared-config profile [default: AWS_PROFILE or default]
    #[arg(long)]
    pub profile: Option<String>,
    /// Bound on one request, ms
    #[arg(long, hide = true, default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// First retry pause bound, ms (for tests)
    #[arg(long, hide = true, default_value_t = 100)]
    pub retry_base_ms: u64,
    /// Largest retry pause, ms (for tests)
    #[arg(long, hide = true, default_value_t = 10_000)]
    pub retry_max_ms: u64,
}

/// How SBS lines become Kinesis records and requests.
#[derive(Debug, Clone, PartialEq, Args, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkConfig {
    /// Up to N consecutive lines of one aircraft per record
    #[arg(long, default_value_t = crate::kinesis::record::DEFAULT_PACK_LINES)]
    pub pack_lines: usize,
    /// Largest record, data + key: bytes or 25KiB, 1MiB
    #[arg(long, default_value = "25KiB", value_parser = units::parse_size_usize)]
    #[serde(deserialize_with = "units::de_size_usize")]
    pub max_record_bytes: usize,
    /// Longest wait before a batch is sent: 500ms, 1s
    #[arg(long, default_value = "500ms", value_parser = units::parse_duration)]
    #[serde(deserialize_with = "units::de_duration")]
    pub linger: Duration,
    /// Pause after a configuration error (stream missing, access denied),
    /// ms (for tests)
    #[arg(long, hide = true, default_value_t = 60_000)]
    pub config_retry_ms: u64,
}

/// The on-disk spool of the Kinesis sink.
#[derive(Debug, Clone, PartialEq, Args, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Spool directory [default: $STATE_DIRECTORY, else ./spool]
    #[arg(long)]
    pub spool_dir: Option<PathBuf>,
    /// Spool size cap; beyond it the oldest records are dropped
    #[arg(long, default_value = "256MiB", value_parser = units::parse_size)]
    #[serde(deserialize_with = "units::de_size")]
    pub spool_max_bytes: u64,
}

/// Life as a daemon: stats and stopping.
#[derive(Debug, Clone, PartialEq, Args, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Seconds between stats lines on stderr
    #[arg(long, default_value_t = 60.0)]
    pub stats_interval: f64,
    /// At SIGTERM or end of input: keep sending this long, then spool the rest
    #[arg(long, default_value = "10s", value_parser = units::parse_duration)]
    #[serde(deserialize_with = "units::de_duration")]
    pub shutdown_timeout: Duration,
}

macro_rules! defaults_from_clap {
    ($($t:ty),*) => {$(
        impl Default for $t {
            fn default() -> Self {
                layers::clap_defaults()
            }
        }
    )*};
}

defaults_from_clap!(
    SourceConfig,
    ReceiverConfig,
    OutputConfig,
    KinesisConfig,
    SinkConfig,
    SpoolConfig,
    ServiceConfig
);

/// Everything `run` (and `check-config`) needs.
#[derive(Debug, Clone, Default, PartialEq, Args)]
pub struct RunConfig {
    /// The input.
    #[command(flatten, next_help_heading = "Source")]
    pub source: SourceConfig,
    /// Decoding.
    #[command(flatten, next_help_heading = "Decoding")]
    pub receiver: ReceiverConfig,
    /// Local outputs.
    #[command(flatten, next_help_heading = "Outputs")]
    pub outputs: OutputConfig,
    /// The stream and the AWS connection.
    #[command(flatten, next_help_heading = "Kinesis")]
    pub kinesis: KinesisConfig,
    /// Records and batches.
    #[command(flatten, next_help_heading = "Kinesis")]
    pub sink: SinkConfig,
    /// The spool.
    #[command(flatten, next_help_heading = "Kinesis")]
    pub spool: SpoolConfig,
    /// Stats and shutdown.
    #[command(flatten, next_help_heading = "Service")]
    pub service: ServiceConfig,
}

/// The layers of a command line: the file named by `--config` (or
/// `ADSB_KINESIS_CONFIG`) under the variables under the flags in `m`.
pub fn layers(
    file: &ConfigFile,
    m: &ArgMatches,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Layer, ConfigError> {
    let known = layers::keys_of::<RunConfig>();
    let file_layer = match file.path(&env) {
        None => Layer::default(),
        Some(p) => {
            let text = std::fs::read_to_string(&p).map_err(|error| ConfigError::Read {
                path: p.clone(),
                error,
            })?;
            Layer::from_toml(&p, &text, &known)?
        }
    };
    Ok(file_layer
        .under(Layer::from_env(&env, &known))
        .under(Layer::from_flags(m, &known)))
}

/// [`layers::check_env`] for `run`'s options: `vars` is the process
/// environment.
pub fn check_env(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Result<(), ConfigError> {
    layers::check_env(vars, &layers::keys_of::<RunConfig>())
}

impl RunConfig {
    /// The configuration of a `run` or `check-config` command line: the
    /// layers of [`layers`], read into every section, with
    /// `$STATE_DIRECTORY` resolved into `spool_dir` so that no stage reads
    /// the environment itself. Not validated yet.
    pub fn load(
        file: &ConfigFile,
        m: &ArgMatches,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<RunConfig, ConfigError> {
        let mut c = RunConfig::from_layer(&layers(file, m, &env)?)?;
        c.spool.spool_dir = Some(c.spool.dir(&env));
        Ok(c)
    }

    /// Reads every section from merged layers. Not validated yet.
    pub fn from_layer(l: &Layer) -> Result<RunConfig, ConfigError> {
        Ok(RunConfig {
            source: l.section()?,
            receiver: l.section()?,
            outputs: l.section()?,
            kinesis: l.section()?,
            sink: l.section()?,
            spool: l.section()?,
            service: l.section()?,
        })
    }

    /// The TOML file `text` (as if at `path`) alone over the defaults: for
    /// tests and tools.
    pub fn from_toml(path: &Path, text: &str) -> Result<RunConfig, ConfigError> {
        let l = Layer::from_toml(path, text, &layers::keys_of::<RunConfig>())?;
        RunConfig::from_layer(&l)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.receiver.validate()?;
        self.kinesis.validate()?;
        self.sink.validate()?;
        self.spool.validate()?;
        self.service.validate()?;
        self.source.validate()?;
        self.outputs.validate()?;
        if self.source.source == SourceSpec::Sim {
            if let Err(e) = self.sim_config().validate() {
                return Err(invalid(e.field(), e.to_string()));
            }
        }
        Ok(())
    }

    /// The receiver's position, when both coordinates are set.
    pub fn receiver_position(&self) -> Option<(f64, f64)> {
        self.receiver.position()
    }

    /// The built-in simulated sky of `--source sim`: endless, at the
    /// configured rate, around the receiver when it is set.
    pub fn sim_config(&self) -> SimConfig {
        let d = SimConfig::default();
        SimConfig {
            duration_s: f64::INFINITY,
            sample_rate: self.source.sample_rate.hz(),
            format: SampleFormat::Cu8,
            receiver: self.receiver.position().unwrap_or(d.receiver),
            aircraft: usize::from(self.source.sim_aircraft),
            ..d
        }
    }
}

impl SourceConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(-1000..=1000).contains(&self.ppm) {
            return Err(invalid("ppm", format!("{} is not within ±1000", self.ppm)));
        }
        Ok(())
    }
}

impl ReceiverConfig {
    /// The receiver's position, when both coordinates are set.
    pub fn position(&self) -> Option<(f64, f64)> {
        self.lat.zip(self.lon)
    }

    /// Coordinates within range, and both or neither.
    pub fn validate(&self) -> Result<(), ConfigError> {
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
        if let Some(id) = &self.receiver_id {
            let ok = (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !ok {
                return Err(invalid(
                    "receiver_id",
                    format!("{id:?} is not 1-64 of A-Z a-z 0-9 . _ -"),
                ));
            }
        }
        Ok(())
    }
}

impl OutputConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for (key, addr, example) in [
            ("sbs_listen", &self.sbs_listen, "127.0.0.1:30003"),
            ("raw_listen", &self.raw_listen, "0.0.0.0:30002"),
            ("beast_listen", &self.beast_listen, "0.0.0.0:30005"),
            ("http_listen", &self.http_listen, "0.0.0.0:8080"),
        ] {
            if let Some(a) = addr {
                if a.parse::<std::net::SocketAddr>().is_err() {
                    return Err(invalid(
                        key,
                        format!("{a:?} is not ADDR:PORT (e.g. {example})"),
                    ));
                }
            }
        }
        if let Some(a) = &self.beast_connect {
            let ok = a.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            if !ok {
                return Err(invalid(
                    "beast_connect",
                    format!("{a:?} is not HOST:PORT (e.g. feed.example.net:30004)"),
                ));
            }
        }
        Ok(())
    }
}

impl KinesisConfig {
    /// The stream, if one is named: `stream_arn`, or `stream` (a name, or
    /// an ARN as `tail` takes it).
    pub fn stream_id(&self) -> Option<StreamId> {
        match (&self.stream, &self.stream_arn) {
            (_, Some(arn)) => Some(StreamId::Arn(arn.clone())),
            (Some(s), None) if s.starts_with("arn:") => Some(StreamId::Arn(s.clone())),
            (Some(name), None) => Some(StreamId::Name(name.clone())),
            (None, None) => None,
        }
    }

    /// Checks the stream's name or ARN, the endpoint and the timeouts.
    pub fn validate(&self) -> Result<(), ConfigError> {
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
        // CreateStream: StreamName 1-128 of [a-zA-Z0-9_.-].
        let good_name = |n: &str| {
            n.len() <= 128
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        };
        let good_arn =
            |a: &str| a.starts_with("arn:") && a.contains(":kinesis:") && a.contains(":stream/");
        match self.stream_id() {
            Some(StreamId::Name(name)) if !good_name(&name) => {
                return Err(invalid(
                    "stream",
                    format!("{name:?} is not a stream name (1-128 of a-z A-Z 0-9 _ . -)"),
                ));
            }
            Some(StreamId::Arn(arn)) if !good_arn(&arn) => {
                let field = if self.stream_arn.is_some() {
                    "stream_arn"
                } else {
                    "stream"
                };
                return Err(invalid(
                    field,
                    format!("{arn:?} is not a Kinesis stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)"),
                ));
            }
            _ => {}
        }
        if let Some(url) = &self.endpoint_url {
            if let Err(reason) = check_endpoint_url(url) {
                return Err(invalid("endpoint_url", format!("{url:?}: {reason}")));
            }
        }
        check_ms("retry_base_ms", self.retry_base_ms)?;
        check_ms("retry_max_ms", self.retry_max_ms)?;
        check_ms("request_timeout_ms", self.request_timeout_ms)
    }

    /// The retry schedule of requests to Kinesis.
    pub fn retry(&self) -> crate::retry::RetryPolicy {
        crate::retry::RetryPolicy {
            base: Duration::from_millis(self.retry_base_ms),
            cap: Duration::from_millis(self.retry_max_ms),
        }
    }
}

fn check_ms(field: &str, ms: u64) -> Result<(), ConfigError> {
    if !(1..=MAX_DURATION_S as u64 * 1000).contains(&ms) {
        return Err(invalid(
            field,
            format!("{ms} is not within 1 ms and one day"),
        ));
    }
    Ok(())
}

impl SinkConfig {
    fn validate(&self) -> Result<(), ConfigError> {
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
        check_ms("config_retry_ms", self.config_retry_ms)
    }
}

impl SpoolConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.spool_max_bytes < MIN_SPOOL_BYTES {
            return Err(invalid(
                "spool_max_bytes",
                format!(
                    "{} is below {MIN_SPOOL_BYTES} (2 MiB)",
                    self.spool_max_bytes
                ),
            ));
        }
        Ok(())
    }

    /// `spool_dir`, else the first of `$STATE_DIRECTORY` (systemd's
    /// `StateDirectory=`), else `./spool`.
    pub fn dir(&self, env: impl Fn(&str) -> Option<String>) -> PathBuf {
        if let Some(d) = &self.spool_dir {
            return d.clone();
        }
        env("STATE_DIRECTORY")
            .and_then(|v| v.split(':').find(|p| !p.is_empty()).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("spool"))
    }
}

impl ServiceConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(MIN_STATS_INTERVAL..=MAX_STATS_INTERVAL).contains(&self.stats_interval) {
            return Err(invalid(
                "stats_interval",
                format!(
                    "{} is not a number of seconds within {MIN_STATS_INTERVAL} and {MAX_STATS_INTERVAL}",
                    self.stats_interval
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;
