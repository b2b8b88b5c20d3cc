//! The sink with `--stream`: SBS lines to a Kinesis data stream through
//! the batch and sender tasks of [`crate::kinesis::send`], with the spool
//! behind them. Set up (stream checked, spool opened and recovered) before
//! the pipeline starts, so a misconfiguration is one error line.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Delivery, Port, Wants};
#[cfg(feature = "aws")]
use crate::aws;
use crate::config::RunConfig;
use crate::kinesis::send::{
    self, BatchOptions, Handoff, LineSource, SenderOptions, SenderTelemetry, SinkError,
};
use crate::kinesis::spool::{self, Spool, SpoolError, SpoolOptions};
use crate::kinesis::target::StreamId;
use crate::sbs::SbsLine;

/// Batches queued for the batch task. It never waits on Kinesis (it
/// spools instead), so a small queue does.
const QUEUE: usize = 8;

/// Why the Kinesis sink cannot start, or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KinesisError {
    /// Region, credentials or the stream are wrong.
    #[cfg(feature = "aws")]
    #[error(transparent)]
    Aws(#[from] aws::StartError),
    /// This build has no SDK.
    #[cfg(not(feature = "aws"))]
    #[error("--stream needs the Kinesis sink: this build has no `aws` feature")]
    NoAws,
    /// The spool cannot be opened.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The batch or sender task failed (the spool's disk, mostly).
    #[error("kinesis sink: {0}")]
    Sink(#[from] SinkError),
    /// A task of the sink panicked.
    #[error("the {0} stage panicked")]
    Panicked(&'static str),
}

impl LineSource for super::Batch {
    fn sbs_lines(&self) -> impl Iterator<Item = (&SbsLine, Cow<'_, str>)> {
        self.iter()
            .filter_map(|i| Some((i.line.as_ref()?, Cow::Borrowed(i.text.as_deref()?))))
    }
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

/// The sink, checked and ready; [`KinesisSink::start`] runs it.
pub struct KinesisSink {
    api: Api,
    handoff: Handoff,
    tel: Arc<SenderTelemetry>,
    batch: BatchOptions,
    sender: SenderOptions,
    shutdown_timeout: Duration,
}

#[cfg(not(feature = "aws"))]
async fn connect(_: &RunConfig, _: &StreamId) -> Result<Api, KinesisError> {
    Err(KinesisError::NoAws)
}

/// The SDK client, with region, credentials and the stream checked.
#[cfg(feature = "aws")]
async fn connect(config: &RunConfig, stream: &StreamId) -> Result<Api, KinesisError> {
    let (client, region) = aws::client(&aws::AwsOptions::from(&config.kinesis)).await?;
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

impl KinesisSink {
    /// Kinesis reachable (or not yet), spool opened and recovered.
    pub async fn open(config: &RunConfig, stream: StreamId) -> Result<KinesisSink, KinesisError> {
        let api = connect(config, &stream).await?;
        // The loader has put $STATE_DIRECTORY into spool_dir already.
        let dir = config.spool.dir(|_| None);
        let max_bytes = config.spool.spool_max_bytes;
        let spool_opts = SpoolOptions {
            max_bytes,
            segment_bytes: spool::DEFAULT_SEGMENT_BYTES.min(max_bytes / 4),
        };
        let (spool, recovery) = tokio::task::spawn_blocking(move || Spool::open(dir, spool_opts))
            .await
            .map_err(|_| KinesisError::Panicked("spool open"))??;
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
                cap = spool.cap(),
                "spool: over spool-max-bytes (or the disk's free space) at start, dropped the oldest records"
            );
        }
        if let Some(e) = &recovery.start_error {
            warn!(
                dir = %spool.dir().display(),
                error = %e,
                "spool: the disk is full; sending what is spooled, new records are spooled as room comes"
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
                pack_lines: config.sink.pack_lines,
                max_record_bytes: config.sink.max_record_bytes,
                linger: config.sink.linger,
                receiver_id: config.receiver.receiver_id.clone(),
            },
            sender: SenderOptions {
                stream: stream.to_string(),
                retry: config.kinesis.retry(),
                config_retry: Duration::from_millis(config.sink.config_retry_ms),
            },
            shutdown_timeout: config.service.shutdown_timeout,
        })
    }

    /// The sink's counters, for the stats line and sd_notify.
    pub fn telemetry(&self) -> Arc<SenderTelemetry> {
        self.tel.clone()
    }

    /// The sink's port and its task. When `stopping` is cancelled (or the
    /// feed closes) the sender keeps going for `shutdown_timeout`, then
    /// spools the rest.
    pub fn start(
        self,
        stopping: CancellationToken,
    ) -> (Port, impl Future<Output = Result<(), KinesisError>>) {
        let (port, feed) = Port::new("kinesis", QUEUE, Delivery::Wait, Wants::Lines);
        (port.essential(), self.run(feed, stopping))
    }

    async fn run(self, feed: super::Feed, stopping: CancellationToken) -> Result<(), KinesisError> {
        let k = self;
        // The deadline starts at shutdown or at the end of the input,
        // whichever comes first: a scope of its own under `stopping`.
        let deadline = stopping.child_token();
        let give_up = CancellationToken::new();
        let timer = {
            let (deadline, give_up) = (deadline.clone(), give_up.clone());
            let after = k.shutdown_timeout;
            tokio::spawn(async move {
                deadline.cancelled().await;
                tokio::time::sleep(after).await;
                give_up.cancel();
            })
        };
        // The sender tries once more at once when the deadline starts.
        let hurry = deadline.clone();
        let batch = {
            let (handoff, tel) = (k.handoff.clone(), k.tel.clone());
            tokio::spawn(async move {
                let r = send::batch_stage(feed, handoff, k.batch, tel).await;
                // The input has ended (or shutdown drained it).
                deadline.cancel();
                r
            })
        };
        let sender = tokio::spawn(send::sender(
            k.api,
            k.handoff.clone(),
            k.sender,
            hurry,
            give_up,
            k.tel.clone(),
        ));
        let batch_result = batch.await.map_err(|_| KinesisError::Panicked("batch"));
        let sender_result = sender.await.map_err(|_| KinesisError::Panicked("sender"));
        timer.abort();
        // Batches handed to the spool after the sender stopped are on disk;
        // make them and the ack position durable.
        let synced = k.handoff.sync().await;
        batch_result??;
        sender_result??;
        synced?;
        Ok(())
    }
}
