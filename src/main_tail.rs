//! The `tail` command's arguments (part of the binary, beside main.rs):
//! flags -> [`TailOptions`] -> [`adsb_kinesis::kinesis::tail::run`].

use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;

use adsb_kinesis::daemon;
use adsb_kinesis::kinesis::aws::{AwsOptions, StreamId};
use adsb_kinesis::kinesis::send::RetryPolicy;
use adsb_kinesis::kinesis::shards::{parse_start, StartAt};
use adsb_kinesis::kinesis::tail::{self, TailError, TailOptions, TailOutput};

#[derive(Args)]
pub struct TailArgs {
    /// Stream name or ARN (also ADSB_KINESIS_STREAM or ADSB_KINESIS_STREAM_ARN, as for run)
    #[arg(long)]
    stream: Option<String>,
    /// AWS region [default: ADSB_KINESIS_REGION, else the AWS default chain]
    #[arg(long)]
    region: Option<String>,
    /// Kinesis endpoint URL (LocalStack, moto, VPC endpoint) [default: ADSB_KINESIS_ENDPOINT_URL]
    #[arg(long)]
    endpoint_url: Option<String>,
    /// AWS shared-config profile [default: ADSB_KINESIS_PROFILE, AWS_PROFILE or default]
    #[arg(long)]
    profile: Option<String>,
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
    #[arg(long, value_parser = daemon::parse_duration)]
    interval: Option<Duration>,
    /// Pause between GetRecords calls of a caught-up shard, ms (for tests) [default: 1000]
    #[arg(long, hide = true, default_value = "1000")]
    poll_ms: u64,
    /// Shard list refresh period, ms (for tests) [default: 30000]
    #[arg(long, hide = true, default_value = "30000")]
    relist_ms: u64,
    /// First retry pause bound, ms (for tests) [default: 100]
    #[arg(long, hide = true, default_value = "100")]
    retry_base_ms: u64,
    /// Largest retry pause, ms (for tests) [default: 10000]
    #[arg(long, hide = true, default_value = "10000")]
    retry_max_ms: u64,
    /// Bound on one request, ms [default: 10000]
    #[arg(long, hide = true, default_value = "10000")]
    request_timeout_ms: u64,
}

#[derive(Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
enum OutputArg {
    Sbs,
}

/// A flag, else `ADSB_KINESIS_<NAME>` (non-empty), as `run` reads them.
fn or_env(flag: Option<String>, name: &str) -> Option<String> {
    flag.or_else(|| {
        std::env::var(format!("{}{name}", daemon::ENV_PREFIX))
            .ok()
            .filter(|v| !v.is_empty())
    })
}

fn options(a: TailArgs) -> Result<TailOptions> {
    let stream = match (or_env(a.stream, "STREAM"), or_env(None, "STREAM_ARN")) {
        (Some(s), _) if s.starts_with("arn:") => StreamId::Arn(s),
        (Some(s), _) => StreamId::Name(s),
        (None, Some(arn)) => StreamId::Arn(arn),
        (None, None) => bail!("tail needs --stream NAME|ARN (or ADSB_KINESIS_STREAM)"),
    };
    if let StreamId::Name(n) = &stream {
        // CreateStream reference: names are 1-128 of [a-zA-Z0-9_.-].
        if n.len() > 128
            || !n
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
        {
            bail!("--stream {n:?} is not a stream name (1-128 of a-z A-Z 0-9 _ . -) or an ARN");
        }
    }
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
    Ok(TailOptions {
        aws: AwsOptions {
            region: or_env(a.region, "REGION"),
            endpoint_url: or_env(a.endpoint_url, "ENDPOINT_URL"),
            profile: or_env(a.profile, "PROFILE"),
            request_timeout: ms(a.request_timeout_ms, "request-timeout-ms")?,
        },
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
        retry: RetryPolicy {
            base: ms(a.retry_base_ms, "retry-base-ms")?,
            cap: ms(a.retry_max_ms, "retry-max-ms")?,
            config_retry: Duration::from_secs(60),
        },
    })
}

pub fn tail(a: TailArgs) -> Result<()> {
    let opts = options(a)?;
    super::init_tracing();
    let result = super::until_signalled(|shutdown| tail::run(opts, shutdown))?;
    match result {
        Ok(_) => Ok(()),
        Err(TailError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e.into()),
    }
}
