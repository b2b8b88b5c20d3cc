//! The AWS glue shared by `run`, `tail` and `check-config`: one builder of
//! the SDK configuration (the default chain plus our overrides), the
//! checks made at start (region, credentials, stream), and [`Kinesis`],
//! the client bound to one stream, with its errors classified rather than
//! stringified (its `PutRecordsApi` is in [`crate::kinesis::put`]). An edge
//! module.
//!
//! The SDK's own retries are off ([`RetryConfig::disabled`]): the sender's
//! backon policy is the only retry layer, so a failed entry is never
//! resent behind our back and every attempt is counted. Each attempt is
//! bounded by `request_timeout`; connecting by [`CONNECT_TIMEOUT`].

use std::error::Error as StdError;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::Client;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

use crate::config::KinesisConfig;
use crate::kinesis::batch::ErrorClass;
use crate::kinesis::send::RequestFailure;
pub use crate::kinesis::target::{check_endpoint_url, StreamId};

/// Longest wait for a TCP (and TLS) connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how to reach Kinesis; unset fields come from the AWS default
/// chain (environment, shared config and credentials files, SSO,
/// container, IMDS).
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    /// The region, over the chain's.
    pub region: Option<String>,
    /// Another endpoint (moto, LocalStack, a VPC endpoint).
    pub endpoint_url: Option<String>,
    /// The shared-config profile, over `AWS_PROFILE`.
    pub profile: Option<String>,
    /// Bound on one attempt (one request and its response).
    pub request_timeout: Duration,
}

impl From<&KinesisConfig> for AwsOptions {
    fn from(k: &KinesisConfig) -> AwsOptions {
        AwsOptions {
            region: k.region.clone(),
            endpoint_url: k.endpoint_url.clone(),
            profile: k.profile.clone(),
            request_timeout: Duration::from_millis(k.request_timeout_ms),
        }
    }
}

/// Whether the SDK may use the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// HTTPS, for real requests.
    Online,
    /// Every request fails at once without being sent: `check-config`
    /// resolves the chain this way, so a boot without network passes.
    Offline,
}

/// What the credential chain said at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Found.
    Found,
    /// Not available yet for a reason the network may cure (SSO, STS,
    /// IMDS unreachable, or not tried offline); the text says why.
    NotYet(String),
}

/// Why the sink cannot start. One line each, naming what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// No region anywhere in the chain.
    #[error("no AWS region: set --region, AWS_REGION or ADSB_KINESIS_REGION, or region in the AWS profile")]
    NoRegion,
    /// The chain has no credentials.
    #[error("no AWS credentials: {0} (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile with --profile or AWS_PROFILE, SSO, or run where a role is available)")]
    NoCredentials(String),
    /// The credentials are misconfigured (a profile that does not parse).
    #[error("AWS credentials: {0}")]
    Credentials(String),
    /// `--endpoint-url` is not a URL the SDK can use.
    #[error("bad endpoint URL {url:?}: {reason}")]
    BadEndpoint {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The stream is missing or not ours to use.
    #[error("stream {stream} (region {region}): {failure}")]
    Stream {
        /// The stream.
        stream: String,
        /// The region asked.
        region: String,
        /// Kinesis's answer.
        failure: RequestFailure,
    },
}

/// The SDK client, its region and what the credential chain said.
pub struct Connected {
    /// The Kinesis client.
    pub client: Client,
    /// The region in use.
    pub region: String,
    /// The credentials' state.
    pub credentials: Credentials,
}

/// Build the SDK client: default chain plus our overrides, HTTPS with
/// rustls on ring, SDK retries off, attempt timeout. Checks that a region
/// is known and that credentials can be found.
pub async fn client(opts: &AwsOptions) -> Result<(Client, String), StartError> {
    let c = connect(opts, Network::Online).await?;
    if let Credentials::NotYet(why) = &c.credentials {
        tracing::warn!("AWS credentials not available yet: {why}; starting anyway");
    }
    Ok((c.client, c.region))
}

/// [`client`] with the network chosen, and the credentials' state
/// returned rather than logged.
pub async fn connect(opts: &AwsOptions, network: Network) -> Result<Connected, StartError> {
    if let Some(url) = &opts.endpoint_url {
        check_endpoint_url(url).map_err(|reason| StartError::BadEndpoint {
            url: url.clone(),
            reason,
        })?;
    }
    let http = match network {
        Network::Online => aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https(),
        Network::Offline => offline::client(),
    };
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(opts.request_timeout)
        // One attempt per operation; the attempt's timeout is the one that
        // fires.
        .operation_timeout(opts.request_timeout + Duration::from_secs(1))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts);
    if let Some(r) = &opts.region {
        loader = loader.region(Region::new(r.clone()));
    }
    if let Some(p) = &opts.profile {
        loader = loader.profile_name(p);
    }
    let sdk = loader.load().await;
    let region = sdk.region().ok_or(StartError::NoRegion)?.to_string();
    let creds = sdk
        .credentials_provider()
        .ok_or_else(|| StartError::NoCredentials("no credentials provider".into()))?;
    let credentials = match creds.provide_credentials().await {
        Ok(_) => Credentials::Found,
        Err(e @ CredentialsError::CredentialsNotLoaded(_)) => {
            return Err(StartError::NoCredentials(one_line(&e)));
        }
        // Misconfigured: a profile that does not parse, an unknown profile.
        Err(e @ CredentialsError::InvalidConfiguration(_)) => {
            return Err(StartError::Credentials(one_line(&e)));
        }
        // Timeouts and provider errors may be the network (SSO, STS, IMDS
        // unreachable at boot): start anyway, records spool meanwhile.
        Err(e) => Credentials::NotYet(one_line(&e)),
    };
    let mut conf = aws_sdk_kinesis::config::Builder::from(&sdk);
    if let Some(url) = &opts.endpoint_url {
        conf = conf.endpoint_url(url);
    }
    Ok(Connected {
        client: Client::from_conf(conf.build()),
        region,
        credentials,
    })
}

/// An HTTP client for the SDK that sends nothing: every request fails at
/// once as a connection error.
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

    /// An HTTP client that refuses every request: an SDK client built on it can be configured
    /// and inspected but never reaches the network.
    pub fn client() -> SharedHttpClient {
        http_client_fn(|_, _| SharedHttpConnector::new(Refuse))
    }
}

/// An error and its sources on one line, each cause once (the SDK repeats
/// its cause inside its own message).
pub(crate) fn one_line(e: &(dyn StdError + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    squash(&s)
}

/// One line: runs of white space (newlines too) become one space.
fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The longest error summary a log line carries.
pub const SUMMARY_MAX: usize = 200;

/// An error and its causes in one short line for the log: each cause's
/// own message (never the `Debug` dumps the SDK's `DisplayErrorContext`
/// adds), a cause that only repeats the one before left out, cut at
/// [`SUMMARY_MAX`] characters. The whole text is logged at debug.
pub fn summary(e: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(c) = cur {
        let text = squash(&c.to_string());
        if !text.is_empty() && !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = c.source();
    }
    let line = parts.join(": ");
    match line.char_indices().nth(SUMMARY_MAX - 1) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// The SDK client bound to one stream.
#[derive(Clone)]
pub struct Kinesis {
    /// The SDK client.
    pub client: Client,
    /// The stream every call names.
    pub stream: StreamId,
}

/// A stream's state as `DescribeStreamSummary` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSummary {
    /// `ACTIVE`, `UPDATING`, ...
    pub status: String,
    /// Open shards.
    pub open_shards: i32,
}

impl Kinesis {
    /// `DescribeStreamSummary`: the stream exists and we may see it.
    pub async fn describe(&self) -> Result<StreamSummary, RequestFailure> {
        let req = self.client.describe_stream_summary();
        let req = match &self.stream {
            StreamId::Name(n) => req.stream_name(n),
            StreamId::Arn(a) => req.stream_arn(a),
        };
        let out = req.send().await.map_err(|e| classify(&e))?;
        let s = out.stream_description_summary();
        Ok(StreamSummary {
            status: s
                .map(|s| s.stream_status().as_str().to_owned())
                .unwrap_or_default(),
            open_shards: s.map(|s| s.open_shard_count()).unwrap_or(0),
        })
    }
}

/// True if `e`'s chain shows the request never left: the connection was
/// refused or unreachable, or the name did not resolve.
fn never_sent(e: &(dyn StdError + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionRefused | AddrNotAvailable | NetworkUnreachable | HostUnreachable
            ) {
                return true;
            }
        }
        let text = c.to_string();
        if text.contains("dns error") || text.contains("failed to lookup address") {
            return true;
        }
        cur = c.source();
    }
    false
}

/// Classify an SDK error (vector's `is_retriable_error`, but keeping the
/// class): throttling, 5xx, timeouts and connection errors retry;
/// validation, access denied, not found and KMS errors are configuration.
pub fn classify<E>(e: &SdkError<E>) -> RequestFailure
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    tracing::debug!(detail = %DisplayErrorContext(e), "AWS SDK error");
    let message = summary(e);
    match e {
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            let code = s.err().code().map(str::to_owned);
            let mut class = code.as_deref().map_or(ErrorClass::Unknown, ErrorClass::of);
            if class == ErrorClass::Unknown {
                class = match status {
                    429 => ErrorClass::Throttled,
                    500..=599 => ErrorClass::Transient,
                    _ => ErrorClass::Unknown,
                };
            }
            let message = s
                .err()
                .message()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("HTTP {status}"));
            RequestFailure {
                class,
                // A 5xx may come after the service stored some records.
                outcome_unknown: status >= 500,
                code,
                message,
            }
        }
        SdkError::TimeoutError(_) => RequestFailure {
            class: ErrorClass::Transient,
            outcome_unknown: true,
            code: None,
            message,
        },
        SdkError::DispatchFailure(d) => {
            let unsent = d.as_connector_error().is_some_and(|c| never_sent(c));
            RequestFailure {
                class: ErrorClass::Transient,
                outcome_unknown: !unsent,
                code: None,
                message,
            }
        }
        SdkError::ResponseError(_) => RequestFailure {
            class: ErrorClass::Transient,
            outcome_unknown: true,
            code: None,
            message,
        },
        // Building the request failed (credentials, endpoint): nothing
        // was sent; needs an operator.
        SdkError::ConstructionFailure(_) => RequestFailure {
            class: ErrorClass::Configuration,
            outcome_unknown: false,
            code: None,
            message,
        },
        _ => RequestFailure {
            class: ErrorClass::Unknown,
            outcome_unknown: true,
            code: None,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Chain {
        text: String,
        #[source]
        source: Option<Box<Chain>>,
    }

    fn chain(texts: &[&str]) -> Chain {
        texts
            .iter()
            .rev()
            .fold(None, |source, t| {
                Some(Chain {
                    text: t.to_string(),
                    source: source.map(Box::new),
                })
            })
            .unwrap()
    }

    #[test]
    fn a_summary_is_one_short_line_of_causes() {
        let e = chain(&[
            "dispatch failure",
            "io error",
            "io error",
            "tcp connect error:\n  Connection refused (os error 111)",
        ]);
        assert_eq!(
            summary(&e),
            "dispatch failure: io error: tcp connect error: Connection refused (os error 111)"
        );
        let long = "x".repeat(500);
        let s = summary(&chain(&["failed", &long]));
        assert_eq!(s.chars().count(), SUMMARY_MAX);
        assert!(s.starts_with("failed: xxx") && s.ends_with('…'));
    }
}
