//! `adsb-kinesis check-config`: is this configuration going to run? Meant
//! for the unit's `ExecStartPre=`, so a mistake stops the start with one
//! line in `systemctl status` instead of a restart loop. An edge module.
//!
//! Without `--online` nothing goes over the network: the AWS default chain
//! is resolved with an HTTP client that refuses every request, so a region
//! and credentials found in the environment, the shared config and
//! credentials files or a `credential_process` are checked, while sources
//! that need the network (IMDS, SSO, an assumed role) are reported as not
//! checkable rather than tried. This keeps a boot without network from
//! failing the check. `--online` also calls `DescribeStreamSummary`.

use std::io::Write as _;
use std::path::Path;

use crate::config::{ConfigError, RunConfig};

/// What to check beyond the config itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// Also ask Kinesis about the stream (network).
    pub online: bool,
    /// A configuration without a stream is an error (the service must not
    /// write SBS lines to the journal).
    pub require_stream: bool,
}

/// Why a configuration cannot run; one line naming what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The configuration itself is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The service needs a stream and has none.
    #[error("no Kinesis stream configured: set ADSB_KINESIS_STREAM (or --stream, or stream in the config file)")]
    NoStream,
    /// The spool directory cannot be written.
    #[error("spool_dir {dir}: {error}")]
    Spool {
        /// The directory.
        dir: String,
        /// Why.
        error: std::io::Error,
    },
    /// Region, credentials or (online) the stream are wrong: the same
    /// errors, worded the same, as `run` gives at start.
    #[cfg(feature = "aws")]
    #[error(transparent)]
    Aws(#[from] crate::aws::StartError),
    /// This build has no SDK.
    #[error("this build has no Kinesis sink (the `aws` feature is off)")]
    NoAws,
}

/// Checks `config` (already merged from file, env and flags); on success
/// the one line to print.
pub async fn check(config: &RunConfig, opts: CheckOptions) -> Result<String, CheckError> {
    config.validate()?;
    let Some(stream) = config.kinesis.stream_id() else {
        if opts.require_stream {
            return Err(CheckError::NoStream);
        }
        return Ok(format!(
            "config ok: source {}, SBS lines to stdout (no stream configured)",
            config.source.source
        ));
    };
    // The loader has put $STATE_DIRECTORY into spool_dir already.
    let dir = config.spool.dir(|_| None);
    check_spool_dir(&dir).map_err(|error| CheckError::Spool {
        dir: dir.display().to_string(),
        error,
    })?;
    let aws = check_aws(config, &stream, opts.online).await?;
    Ok(format!(
        "config ok: source {}, stream {stream}, {aws}, spool {}",
        config.source.source,
        dir.display()
    ))
}

/// The spool directory takes a file, or, if it does not exist yet, its
/// nearest existing parent does (`run` creates it; a check should not).
fn check_spool_dir(dir: &Path) -> std::io::Result<()> {
    let existing = dir
        .ancestors()
        .find(|a| a.as_os_str().is_empty() || a.exists())
        .map(|a| {
            if a.as_os_str().is_empty() {
                Path::new(".")
            } else {
                a
            }
        })
        .unwrap_or(Path::new("."));
    if !existing.is_dir() {
        return Err(std::io::Error::other(format!(
            "{} is not a directory",
            existing.display()
        )));
    }
    let probe = existing.join(format!(".adsb-kinesis-check-config-{}", std::process::id()));
    let r = std::fs::File::create(&probe).and_then(|mut f| f.write_all(b"x"));
    let _ = std::fs::remove_file(&probe);
    match r {
        // A full disk is no reason not to start: `run` sends what is
        // spooled and spools again as room comes.
        Err(e) if crate::kinesis::spool::is_full(&e) => Ok(()),
        r => r,
    }
}

#[cfg(not(feature = "aws"))]
async fn check_aws(
    _: &RunConfig,
    _: &crate::kinesis::target::StreamId,
    _: bool,
) -> Result<String, CheckError> {
    Err(CheckError::NoAws)
}

#[cfg(feature = "aws")]
async fn check_aws(
    config: &RunConfig,
    stream: &crate::kinesis::target::StreamId,
    online: bool,
) -> Result<String, CheckError> {
    use crate::aws::{self, Credentials, Network, StartError};

    let opts = aws::AwsOptions::from(&config.kinesis);
    let network = if online {
        Network::Online
    } else {
        Network::Offline
    };
    let c = aws::connect(&opts, network).await?;
    if !online {
        let creds = match c.credentials {
            Credentials::Found => "credentials found",
            // Only the network could tell (IMDS, SSO, STS): not tried here.
            Credentials::NotYet(_) => "credentials need the network (not checked offline)",
        };
        return Ok(format!(
            "region {}, {creds}; the stream is not looked up (use --online)",
            c.region
        ));
    }
    let api = aws::Kinesis {
        client: c.client,
        stream: stream.clone(),
    };
    let s = api.describe().await.map_err(|failure| StartError::Stream {
        stream: stream.to_string(),
        region: c.region.clone(),
        failure,
    })?;
    Ok(format!(
        "region {}, stream {} with {} open shards",
        c.region, s.status, s.open_shards
    ))
}
