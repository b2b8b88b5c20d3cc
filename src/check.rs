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

use crate::daemon::Config;

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
    #[error(transparent)]
    Config(#[from] crate::daemon::ConfigError),
    #[error("no Kinesis stream configured: set ADSB_KINESIS_STREAM (or --stream, or stream in the config file)")]
    NoStream,
    #[error("spool_dir {dir}: {error}")]
    Spool { dir: String, error: std::io::Error },
    #[error("no AWS region: set --region, AWS_REGION or ADSB_KINESIS_REGION, or region in the AWS profile")]
    NoRegion,
    #[error("no AWS credentials: {0} (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a credentials file, or a profile)")]
    NoCredentials(String),
    #[error("AWS credentials: {0}")]
    Credentials(String),
    #[error("stream {stream} (region {region}): {message}")]
    Stream {
        stream: String,
        region: String,
        message: String,
    },
    #[error("this build has no Kinesis sink (the `aws` feature is off)")]
    NoAws,
}

/// Checks `config` (already merged from file, env and flags); on success
/// the one line to print.
pub async fn check(config: &Config, opts: CheckOptions) -> Result<String, CheckError> {
    config.validate()?;
    let Some(stream) = config.stream_id() else {
        if opts.require_stream {
            return Err(CheckError::NoStream);
        }
        return Ok(format!(
            "config ok: source {}, SBS lines to stdout (no stream configured)",
            config.source
        ));
    };
    let dir = config.spool_dir(|k| std::env::var(k).ok());
    check_spool_dir(&dir).map_err(|error| CheckError::Spool {
        dir: dir.display().to_string(),
        error,
    })?;
    let aws = check_aws(config, &stream.to_string(), opts.online).await?;
    Ok(format!(
        "config ok: source {}, stream {stream}, {aws}, spool {}",
        config.source,
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
    r
}

#[cfg(not(feature = "aws"))]
async fn check_aws(_: &Config, _: &str, _: bool) -> Result<String, CheckError> {
    Err(CheckError::NoAws)
}

#[cfg(feature = "aws")]
async fn check_aws(config: &Config, stream: &str, online: bool) -> Result<String, CheckError> {
    use crate::kinesis::aws;
    use aws_credential_types::provider::error::CredentialsError;
    use aws_credential_types::provider::ProvideCredentials;
    use std::time::Duration;

    let opts = aws::AwsOptions {
        region: config.region.clone(),
        endpoint_url: config.endpoint_url.clone(),
        profile: config.profile.clone(),
        request_timeout: Duration::from_millis(config.request_timeout_ms),
    };
    if online {
        let (client, region) = aws::client(&opts).await.map_err(|e| match e {
            aws::StartError::NoRegion => CheckError::NoRegion,
            aws::StartError::NoCredentials(m) => CheckError::NoCredentials(m),
            other => CheckError::Credentials(other.to_string()),
        })?;
        let api = aws::Kinesis {
            client,
            stream: config.stream_id().expect("checked by the caller"),
        };
        let s = api.describe().await.map_err(|f| CheckError::Stream {
            stream: stream.to_owned(),
            region: region.clone(),
            message: f.to_string(),
        })?;
        return Ok(format!(
            "region {region}, stream {} with {} open shards",
            s.status, s.open_shards
        ));
    }
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(offline::client())
        .retry_config(aws_config::retry::RetryConfig::disabled());
    if let Some(r) = &opts.region {
        loader = loader.region(aws_config::Region::new(r.clone()));
    }
    if let Some(p) = &opts.profile {
        loader = loader.profile_name(p);
    }
    let sdk = loader.load().await;
    let region = sdk.region().ok_or(CheckError::NoRegion)?.to_string();
    let provider = sdk
        .credentials_provider()
        .ok_or_else(|| CheckError::NoCredentials("no credentials provider".into()))?;
    let creds = match provider.provide_credentials().await {
        Ok(_) => "credentials found".to_owned(),
        Err(e @ CredentialsError::CredentialsNotLoaded(_)) => {
            return Err(CheckError::NoCredentials(crate::kinesis::aws::one_line(&e)))
        }
        Err(e @ CredentialsError::InvalidConfiguration(_)) => {
            return Err(CheckError::Credentials(crate::kinesis::aws::one_line(&e)))
        }
        // Only the network could tell (IMDS, SSO, STS): not tried here.
        Err(_) => "credentials need the network (not checked offline)".to_owned(),
    };
    Ok(format!(
        "region {region}, {creds}; the stream is not looked up (use --online)"
    ))
}

/// An HTTP client for the SDK that sends nothing: every request fails at
/// once as a connection error.
#[cfg(feature = "aws")]
mod offline {
    use aws_smithy_runtime_api::client::http::{
        http_client_fn, HttpConnector, HttpConnectorFuture, SharedHttpClient, SharedHttpConnector,
    };
    use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
    use aws_smithy_runtime_api::client::result::ConnectorError;

    #[derive(Debug)]
    struct Refuse;

    impl HttpConnector for Refuse {
        fn call(&self, _: HttpRequest) -> HttpConnectorFuture {
            HttpConnectorFuture::ready(Err(ConnectorError::io(
                "check-config without --online makes no network calls".into(),
            )))
        }
    }

    pub fn client() -> SharedHttpClient {
        http_client_fn(|_, _| SharedHttpConnector::new(Refuse))
    }
}
