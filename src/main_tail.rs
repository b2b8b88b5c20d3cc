//! The `tail` command's arguments (part of the binary, beside main.rs):
//! flags -> [`TailOptions`] -> [`adsb_kinesis::tail::reader::run`].

use std::time::Duration;

use anyhow::{bail, Result};
use clap::{ArgMatches, Args};

use adsb_kinesis::aws::AwsOptions;
use adsb_kinesis::config::{self, units, ConfigFile, KinesisConfig, Layer};
use adsb_kinesis::tail::reader::{self, TailError, TailOptions, TailOutput};
use adsb_kinesis::tail::shards::{parse_start, StartAt};

/// `tail`'s flags: the stream and the connection as `run` takes them
/// (flags, ADSB_KINESIS_* variables, the --config file), then how to show
/// it.
#[derive(Args)]
pub struct TailArgs {
    #[command(flatten)]
    file: ConfigFile,
    #[command(flatten)]
    kinesis: KinesisConfig,
    /// Where to start: latest, trim-horizon, an RFC 3339 time or Unix seconds
    #[arg(long, default_value = "latest", value_parser = parse_start)]
    from: StartAt,
    /// sbs: the SBS lines, CRLF-terminated, as `run` prints them
    #[arg(long, value_enum, default_value = "sbs")]
    output: OutputArg,
    /// A live table of aircraft instead of lines (plain snapshots when stdout is not a terminal)
    #[arg(long)]
    table: bool,
    /// Table refresh period: 1s, 500ms [default: 1s on a terminal, 10s otherwise]
    #[arg(long, value_parser = units::parse_duration)]
    interval: Option<Duration>,
    /// Also serve the fleet map of the stream (every receiver's aircraft) and
    /// its aircraft.json on ADDR:PORT; the flag alone serves 0.0.0.0:8080
    #[arg(long, num_args = 0..=1, default_missing_value = "0.0.0.0:8080")]
    http_listen: Option<String>,
    /// Pause between GetRecords calls of a caught-up shard, ms (for tests) [default: 1000]
    #[arg(long, hide = true, default_value = "1000")]
    poll_ms: u64,
    /// Shard list refresh period, ms (for tests) [default: 30000]
    #[arg(long, hide = true, default_value = "30000")]
    relist_ms: u64,
}

#[derive(Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
enum OutputArg {
    Sbs,
}

fn options(a: TailArgs, m: &ArgMatches) -> Result<TailOptions> {
    let layers: Layer = config::layers(&a.file, m, |k| std::env::var(k).ok())?;
    let kinesis: KinesisConfig = layers.section()?;
    kinesis.validate()?;
    let Some(stream) = kinesis.stream_id() else {
        bail!("tail needs --stream NAME|ARN (or ADSB_KINESIS_STREAM)");
    };
    let ms = |v: u64, flag: &str| {
        if v == 0 {
            bail!("--{flag} must be above 0");
        }
        Ok(Duration::from_millis(v))
    };
    let interval = match a.interval {
        Some(d) if d.is_zero() => bail!("--interval must be above 0"),
        Some(d) => d,
        None if std::io::IsTerminal::is_terminal(&std::io::stdout()) => Duration::from_secs(1),
        None => Duration::from_secs(10),
    };
    let _ = a.output;
    if let Some(h) = &a.http_listen {
        if h.parse::<std::net::SocketAddr>().is_err() {
            bail!("--http-listen: {h:?} is not ADDR:PORT (e.g. 0.0.0.0:8080)");
        }
    }
    Ok(TailOptions {
        aws: AwsOptions::from(&kinesis),
        stream,
        from: a.from,
        output: if a.table {
            TailOutput::Table
        } else {
            TailOutput::Sbs
        },
        poll: ms(a.poll_ms, "poll-ms")?,
        relist: ms(a.relist_ms, "relist-ms")?,
        refresh: interval,
        retry: kinesis.retry(),
        http_listen: a.http_listen,
    })
}

/// `adsb-kinesis tail`: resolves the config and reads the stream until Ctrl-C.
pub fn tail(a: TailArgs, m: &ArgMatches) -> Result<()> {
    let opts = options(a, m)?;
    super::init_tracing();
    let result = super::until_signalled(|shutdown| reader::run(opts, shutdown))?;
    match result {
        Ok(_) => Ok(()),
        Err(TailError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e.into()),
    }
}
