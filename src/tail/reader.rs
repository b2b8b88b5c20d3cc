//! `adsb-kinesis tail`: read every shard of a stream and show its SBS
//! lines, raw or as a live aircraft table. An edge module (tokio, the AWS
//! SDK); the decisions it makes are in pure code: which shard to read
//! when ([`super::shards`]), how a record splits into lines
//! ([`crate::kinesis::record::record_lines`]), how lines merge into
//! aircraft ([`super::fleet`]).
//!
//! ```text
//!             ListShards (all pages) ──▶ ShardPlan ──ready──▶ one task per shard
//!                 ▲   again on a shard's end and every RELIST   │ GetShardIterator
//!                 └──────────────── drained ◀────────────────────┤ GetRecords every POLL
//!                                                                ▼
//!                                   bounded channel ──▶ output: SBS lines | table
//! ```
//!
//! # Reading a shard
//!
//! Kinesis allows 5 GetRecords calls per second per shard (GetRecords
//! reference, "Limits"): a reader polls once per `poll` (1 s) and sooner
//! only while it is behind and getting records. Throttling
//! (`ProvisionedThroughputExceededException`, `LimitExceededException`,
//! KMS throttling), 5xx answers, timeouts and connection errors are
//! retried with capped exponential backoff and full jitter, the sender's
//! schedule. An iterator lives 5 minutes (GetShardIterator reference);
//! when one has expired (`ExpiredIteratorException`, e.g. after a long
//! throttle) a new one is asked for `AFTER_SEQUENCE_NUMBER` of the last
//! record seen, so nothing is skipped or repeated; before any record, the
//! original start again (`LATEST` becomes `AT_TIMESTAMP` of the moment the
//! first iterator was made, so records written in between are not lost).
//!
//! # Resharding
//!
//! A closed shard answers `NextShardIterator` = null once read to its end
//! (with `ChildShards`). Its reader then reports it drained, the shards
//! are listed again, and the children start from `TRIM_HORIZON` once all
//! their parents are drained ([`ShardPlan`]), so a key's records print in
//! order across a split or merge. The listing is also refreshed every
//! `relist`, to see shards created by a reshard whose parent we do not
//! read (closed before a `--from latest` start).
//!
//! moto (5.2, the test server) accepts SplitShard and UpdateShardCount
//! and lists the children, but keeps storing new records in the closed
//! parent and never ends it; tests/tail.rs checks what it can there and
//! the ordering rule is tested in `shards`.

use std::collections::HashMap;
use std::future::Future;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::fleet::{Fleet, ShardStatus};
use super::shards::{ShardInfo, ShardPlan, StartAt};
use crate::aws::{self, classify, AwsOptions, Kinesis, StartError, StreamId};
use crate::kinesis::batch::ErrorClass;
use crate::kinesis::record::record_lines;
use crate::kinesis::send::RequestFailure;
use crate::retry::{Backoff, RetryPolicy};
use crate::sbs::{unix_ms_now, SbsLine};

/// Most records one GetRecords returns (GetRecords reference: "The
/// maximum value of Limit is 10,000"; the default is the same).
pub const GET_RECORDS_LIMIT: i32 = 10_000;

/// Events in flight from the shard readers to the output; a full channel
/// slows the readers (they wait), it never drops.
const EVENT_QUEUE: usize = 64;

/// How `tail` shows the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailOutput {
    /// Each SBS line, CRLF-terminated (SBS_FORMAT.md §1), as `run` prints.
    Sbs,
    /// The aircraft table, refreshed every `refresh`.
    Table,
}

/// Everything `tail` needs.
#[derive(Debug, Clone)]
pub struct TailOptions {
    /// Region, endpoint and credentials of the client.
    pub aws: AwsOptions,
    /// The stream, by name or ARN.
    pub stream: StreamId,
    /// Where in each shard reading starts.
    pub from: StartAt,
    /// Lines or the aircraft table.
    pub output: TailOutput,
    /// Pause between GetRecords calls of one shard when caught up.
    pub poll: Duration,
    /// How often the shard list is refreshed without a shard ending.
    pub relist: Duration,
    /// Table refresh period.
    pub refresh: Duration,
    /// Backoff on throttling and transient errors.
    pub retry: RetryPolicy,
    /// Also serve the fleet map on this address.
    pub http_listen: Option<String>,
}

/// Why `tail` stopped with an error. One line each.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TailError {
    /// The client could not be built or the stream not described.
    #[error(transparent)]
    Start(#[from] StartError),
    /// A request on the stream failed for good.
    #[error("stream {stream}: {failure}")]
    Stream {
        /// The stream's name.
        stream: String,
        /// What failed, in one line.
        failure: RequestFailure,
    },
    /// Stdout is closed or failing.
    #[error("writing to stdout: {0}")]
    Write(std::io::Error),
    /// `--http-listen` cannot bind.
    #[error("http_listen: cannot listen on {addr}: {error}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        error: std::io::Error,
    },
}

/// Where a reader asks its iterator to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// At the shard's start position (`--from`).
    Start(StartAt),
    /// After this sequence number: resuming a shard whose iterator expired.
    AfterSequence(String),
}

/// One record as `tail` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailRecord {
    /// The record's sequence number in its shard.
    pub sequence: String,
    /// The record's data blob (SBS lines).
    pub data: Vec<u8>,
    /// `ICAO`, or `ID/ICAO` from a receiver with `--receiver-id`.
    pub partition_key: String,
}

/// One GetRecords answer.
#[derive(Debug, Clone, Default)]
pub struct RecordBatch {
    /// The records, in shard order.
    pub records: Vec<TailRecord>,
    /// `None`: the shard is closed and read to its end.
    pub next_iterator: Option<String>,
    /// How far behind the shard's tip, milliseconds.
    pub millis_behind: Option<i64>,
    /// Set with the end of a closed shard.
    pub children: Vec<String>,
}

/// The reading calls `tail` makes; over the SDK for [`Kinesis`], in
/// memory in tests.
pub trait ShardsApi: Clone + Send + Sync + 'static {
    /// Every shard, all pages of `ListShards`.
    fn list_shards(&self) -> impl Future<Output = Result<Vec<ShardInfo>, RequestFailure>> + Send;
    /// A `GetShardIterator` for `shard` at `at`.
    fn shard_iterator(
        &self,
        shard: &str,
        at: &Position,
    ) -> impl Future<Output = Result<String, RequestFailure>> + Send;
    /// One `GetRecords` call.
    fn get_records(
        &self,
        iterator: &str,
    ) -> impl Future<Output = Result<RecordBatch, RequestFailure>> + Send;
}

impl ShardsApi for Kinesis {
    async fn list_shards(&self) -> Result<Vec<ShardInfo>, RequestFailure> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let req = self.client.list_shards();
            // ListShards reference: with NextToken, StreamName must not
            // be given (the token names the stream).
            let req = match (&token, &self.stream) {
                (Some(t), _) => req.next_token(t),
                (None, StreamId::Name(n)) => req.stream_name(n),
                (None, StreamId::Arn(a)) => req.stream_arn(a),
            };
            let page = req.send().await.map_err(|e| classify(&e))?;
            for s in page.shards() {
                out.push(ShardInfo {
                    id: s.shard_id().to_owned(),
                    parents: s
                        .parent_shard_id()
                        .into_iter()
                        .chain(s.adjacent_parent_shard_id())
                        .map(str::to_owned)
                        .collect(),
                    closed: s
                        .sequence_number_range()
                        .is_some_and(|r| r.ending_sequence_number().is_some()),
                });
            }
            match page.next_token() {
                Some(t) if !t.is_empty() && !page.shards().is_empty() => token = Some(t.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    async fn shard_iterator(&self, shard: &str, at: &Position) -> Result<String, RequestFailure> {
        let req = self.client.get_shard_iterator().shard_id(shard);
        let req = match &self.stream {
            StreamId::Name(n) => req.stream_name(n),
            StreamId::Arn(a) => req.stream_arn(a),
        };
        let req = match at {
            Position::Start(StartAt::Latest) => req.shard_iterator_type(ShardIteratorType::Latest),
            Position::Start(StartAt::TrimHorizon) => {
                req.shard_iterator_type(ShardIteratorType::TrimHorizon)
            }
            Position::Start(StartAt::AtTimestamp(ms)) => req
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(DateTime::from_millis(*ms)),
            Position::AfterSequence(seq) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq),
        };
        let out = req.send().await.map_err(|e| classify(&e))?;
        out.shard_iterator()
            .map(str::to_owned)
            .ok_or_else(|| RequestFailure {
                class: ErrorClass::Transient,
                outcome_unknown: false,
                code: None,
                message: format!("GetShardIterator for {shard} answered no iterator"),
            })
    }

    async fn get_records(&self, iterator: &str) -> Result<RecordBatch, RequestFailure> {
        let req = self
            .client
            .get_records()
            .shard_iterator(iterator)
            .limit(GET_RECORDS_LIMIT);
        let req = match &self.stream {
            StreamId::Arn(a) => req.stream_arn(a),
            StreamId::Name(_) => req,
        };
        let out = req.send().await.map_err(|e| classify(&e))?;
        Ok(RecordBatch {
            records: out
                .records()
                .iter()
                .map(|r| TailRecord {
                    sequence: r.sequence_number().to_owned(),
                    data: r.data().as_ref().to_vec(),
                    partition_key: r.partition_key().unwrap_or_default().to_owned(),
                })
                .collect(),
            next_iterator: out.next_shard_iterator().map(str::to_owned),
            millis_behind: out.millis_behind_latest(),
            children: out
                .child_shards()
                .iter()
                .map(|c| c.shard_id().to_owned())
                .collect(),
        })
    }
}

/// What the readers tell the output.
#[derive(Debug)]
pub enum Event {
    /// Records of one shard, in order.
    Records {
        /// The shard they came from.
        shard: Arc<str>,
        /// The records.
        records: Vec<TailRecord>,
        /// How far behind the shard's tip, milliseconds.
        millis_behind: Option<i64>,
    },
    /// A shard started, caught up, ended or failed.
    Shard {
        /// The shard.
        shard: Arc<str>,
        /// Its new status.
        status: ShardStatus,
    },
}

/// Counters of the readers, for the final log line.
#[derive(Debug, Default)]
pub struct TailTelemetry {
    /// GetRecords calls made.
    pub get_records_calls: AtomicU64,
    /// Records received.
    pub records: AtomicU64,
    /// Calls throttled (ProvisionedThroughputExceeded and the like).
    pub throttles: AtomicU64,
    /// Calls that failed for a transient reason and were retried.
    pub transient_errors: AtomicU64,
    /// Shard iterators that expired and were renewed.
    pub expired_iterators: AtomicU64,
    /// Shard readers started.
    pub shards_started: AtomicU64,
    /// Closed shards read to their end.
    pub shards_drained: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// How a shard's reader ended.
#[derive(Debug)]
enum ShardEnd {
    /// Read to its end; children named in the last answer.
    Drained(Vec<String>),
    /// Cancelled.
    Stopped,
}

/// A GetRecords or GetShardIterator failure: retry after a pause, or give up.
fn retry_or_fail(
    f: RequestFailure,
    t: &TailTelemetry,
    backoff: &mut Backoff,
    shard: &str,
) -> Result<Duration, RequestFailure> {
    match f.class {
        ErrorClass::Throttled => {
            bump(&t.throttles);
            let d = backoff.next_delay();
            debug!(shard, "throttled ({f}); retry in {d:?}");
            Ok(d)
        }
        ErrorClass::Transient | ErrorClass::Unknown => {
            bump(&t.transient_errors);
            let d = backoff.next_delay();
            warn!(shard, "{f}; retry in {d:?}");
            Ok(d)
        }
        ErrorClass::Configuration => Err(f),
    }
}

fn is_expired_iterator(f: &RequestFailure) -> bool {
    f.code.as_deref() == Some("ExpiredIteratorException")
}

/// Sleep `d` unless cancelled first; false if cancelled.
async fn pause(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// Read one shard from `start` to its end (or until cancelled).
async fn read_shard<A: ShardsApi>(
    api: A,
    shard: Arc<str>,
    start: StartAt,
    timing: ReadTiming,
    tx: mpsc::Sender<Event>,
    t: Arc<TailTelemetry>,
    cancel: CancellationToken,
) -> Result<ShardEnd, RequestFailure> {
    let ReadTiming { poll, retry, .. } = timing;
    // LATEST must not be asked for again after an expired iterator: the
    // records written in between would be skipped. Later iterators start
    // at the time the first one was asked for.
    let again = match start {
        StartAt::Latest => StartAt::AtTimestamp(unix_ms_now()),
        s => s,
    };
    let mut first = true;
    let mut last_seq: Option<String> = None;
    let mut iterator: Option<String> = None;
    let mut backoff = retry.backoff();
    loop {
        if cancel.is_cancelled() {
            return Ok(ShardEnd::Stopped);
        }
        let it = match iterator.take() {
            Some(i) => i,
            None => {
                let at = match &last_seq {
                    Some(s) => Position::AfterSequence(s.clone()),
                    None if first => Position::Start(start),
                    None => Position::Start(again),
                };
                first = false;
                match api.shard_iterator(&shard, &at).await {
                    Ok(i) => i,
                    Err(f) => {
                        let d = retry_or_fail(f, &t, &mut backoff, &shard)?;
                        if !pause(d, &cancel).await {
                            return Ok(ShardEnd::Stopped);
                        }
                        continue;
                    }
                }
            }
        };
        bump(&t.get_records_calls);
        let batch = tokio::select! {
            _ = cancel.cancelled() => return Ok(ShardEnd::Stopped),
            b = api.get_records(&it) => b,
        };
        match batch {
            Ok(b) => {
                backoff = retry.backoff();
                let got = b.records.len();
                if let Some(r) = b.records.last() {
                    last_seq = Some(r.sequence.clone());
                }
                t.records.fetch_add(got as u64, Ordering::Relaxed);
                let ev = Event::Records {
                    shard: shard.clone(),
                    records: b.records,
                    millis_behind: b.millis_behind,
                };
                let sent = tokio::select! {
                    _ = cancel.cancelled() => false,
                    r = tx.send(ev) => r.is_ok(),
                };
                if !sent {
                    return Ok(ShardEnd::Stopped);
                }
                let Some(next) = b.next_iterator else {
                    return Ok(ShardEnd::Drained(b.children));
                };
                iterator = Some(next);
                // Behind and getting records: catch up at up to 4 calls/s,
                // under the 5/s limit; otherwise poll at the normal pace.
                let wait = if got > 0 && b.millis_behind.unwrap_or(0) > 0 {
                    poll.min(Duration::from_millis(250))
                } else {
                    poll
                };
                if !pause(wait, &cancel).await {
                    return Ok(ShardEnd::Stopped);
                }
            }
            Err(f) if is_expired_iterator(&f) => {
                bump(&t.expired_iterators);
                info!(
                    shard = &*shard,
                    "iterator expired; a new one after sequence {}",
                    last_seq.as_deref().unwrap_or("(none: the start again)")
                );
            }
            Err(f) => {
                let d = retry_or_fail(f, &t, &mut backoff, &shard)?;
                // The iterator stays valid for 5 minutes: retry it.
                iterator = Some(it);
                if !pause(d, &cancel).await {
                    return Ok(ShardEnd::Stopped);
                }
            }
        }
    }
}

/// ListShards, retried like reads; configuration errors are returned.
async fn list_with_retry<A: ShardsApi>(
    api: &A,
    retry: RetryPolicy,
    t: &TailTelemetry,
    cancel: &CancellationToken,
) -> Result<Option<Vec<ShardInfo>>, RequestFailure> {
    let mut backoff = retry.backoff();
    loop {
        match api.list_shards().await {
            Ok(s) => return Ok(Some(s)),
            Err(f) => {
                let d = retry_or_fail(f, t, &mut backoff, "ListShards")?;
                if !pause(d, cancel).await {
                    return Ok(None);
                }
            }
        }
    }
}

/// Send an event unless cancelled first (the output may have stopped
/// reading).
async fn send_or_cancel(tx: &mpsc::Sender<Event>, cancel: &CancellationToken, ev: Event) {
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = tx.send(ev) => {}
    }
}

/// Timing of the readers.
#[derive(Debug, Clone, Copy)]
pub struct ReadTiming {
    /// Pause between GetRecords calls of one shard when caught up.
    pub poll: Duration,
    /// How often the shard list is refreshed without a shard ending.
    pub relist: Duration,
    /// Backoff on throttling and transient errors.
    pub retry: RetryPolicy,
}

/// Run the shard readers until `cancel` or a configuration error: list,
/// start what [`ShardPlan`] allows, and on each shard's end list again
/// and start its children. Events go to `tx` in each shard's order, and
/// a child's first event comes after its parents' last.
pub async fn read_stream<A: ShardsApi>(
    api: A,
    from: StartAt,
    timing: ReadTiming,
    tx: mpsc::Sender<Event>,
    t: Arc<TailTelemetry>,
    cancel: CancellationToken,
) -> Result<(), RequestFailure> {
    let mut plan = ShardPlan::new(from);
    let mut readers: JoinSet<(Arc<str>, Result<ShardEnd, RequestFailure>)> = JoinSet::new();
    let result = async {
        let Some(first) = list_with_retry(&api, timing.retry, &t, &cancel).await? else {
            return Ok(());
        };
        info!(shards = first.len(), "listed shards");
        plan.add_listing(&first);
        let mut relist = tokio::time::interval(timing.relist);
        relist.tick().await;
        loop {
            for l in plan.ready() {
                let shard: Arc<str> = l.shard.into();
                bump(&t.shards_started);
                info!(shard = &*shard, start = ?l.start, "reading shard");
                send_or_cancel(&tx, &cancel, Event::Shard {
                        shard: shard.clone(),
                        status: ShardStatus::Reading(None),
                    }).await;
                let (api, tx, t, cancel) = (api.clone(), tx.clone(), t.clone(), cancel.clone());
                readers.spawn(async move {
                    let r = read_shard(
                        api,
                        shard.clone(),
                        l.start,
                        timing,
                        tx,
                        t,
                        cancel,
                    )
                    .await;
                    (shard, r)
                });
            }
            for (id, _) in plan.waiting() {
                send_or_cancel(&tx, &cancel, Event::Shard {
                        shard: id.into(),
                        status: ShardStatus::Waiting,
                    }).await;
            }
            let relist_now = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = relist.tick() => true,
                done = readers.join_next(), if !readers.is_empty() => {
                    let Some(done) = done else { continue };
                    // A reader panicked only on a bug; report it as an error.
                    let (shard, r) = done.map_err(|e| RequestFailure {
                        class: ErrorClass::Configuration,
                        outcome_unknown: false,
                        code: None,
                        message: format!("shard reader failed: {e}"),
                    })?;
                    match r? {
                        ShardEnd::Stopped => return Ok(()),
                        ShardEnd::Drained(children) => {
                            bump(&t.shards_drained);
                            info!(shard = &*shard, ?children, "shard closed and drained");
                            plan.drained(&shard);
                            send_or_cancel(&tx, &cancel, Event::Shard { shard, status: ShardStatus::Drained }).await;
                            true
                        }
                    }
                }
            };
            if relist_now {
                let Some(list) = list_with_retry(&api, timing.retry, &t, &cancel).await? else {
                    return Ok(());
                };
                let new = plan.add_listing(&list);
                if new > 0 {
                    info!(new, "new shards listed");
                }
            }
        }
    }
    .await;
    cancel.cancel();
    while readers.join_next().await.is_some() {}
    result
}

/// Rows that fit the terminal under the header and footer (TIOCGWINSZ).
fn terminal_rows() -> Option<usize> {
    // SAFETY: TIOCGWINSZ fills the winsize struct we pass, nothing else.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_row > 0).then(|| usize::from(ws.ws_row).saturating_sub(4).max(1))
}

/// What `tail` did, for the last log line.
#[derive(Debug, Clone, Copy, Default)]
pub struct TailStats {
    /// Records read.
    pub records: u64,
    /// SBS lines in them, good and bad.
    pub lines: u64,
    /// Lines that did not parse as SBS.
    pub bad_lines: u64,
}

/// `adsb-kinesis tail`: check the stream, read it until `shutdown`, print.
pub async fn run(
    opts: TailOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<TailStats, TailError> {
    let (client, region) = aws::client(&opts.aws).await?;
    let api = Kinesis {
        client,
        stream: opts.stream.clone(),
    };
    // DescribeStreamSummary first: an unknown stream or a denied read is
    // one clear error at start, not a retry loop.
    let summary = api.describe().await.map_err(|failure| TailError::Stream {
        stream: format!("{} (region {region})", opts.stream),
        failure,
    })?;
    info!(stream = %opts.stream, region, status = summary.status, open_shards = summary.open_shards, "tail");
    let cancel = CancellationToken::new();
    let telemetry = Arc::new(TailTelemetry::default());
    let (tx, rx) = mpsc::channel(EVENT_QUEUE);
    let timing = ReadTiming {
        poll: opts.poll,
        relist: opts.relist,
        retry: opts.retry,
    };
    let readers = tokio::spawn(read_stream(
        api,
        opts.from,
        timing,
        tx,
        telemetry.clone(),
        cancel.clone(),
    ));
    let (map_feed, map_task) = match &opts.http_listen {
        Some(addr) => {
            let (feed, task) = super::map::start(addr, cancel.clone())
                .await
                .map_err(|error| TailError::Listen {
                    addr: addr.clone(),
                    error,
                })?;
            (Some(feed), Some(tokio::spawn(task)))
        }
        None => (None, None),
    };
    let printed = tokio::select! {
        r = print(rx, opts.output, opts.refresh, map_feed) => r,
        _ = shutdown => Ok(TailStats::default()),
    };
    cancel.cancel();
    if let Some(t) = map_task {
        let _ = t.await;
    }
    let read = readers.await;
    let t = &telemetry;
    let mut stats = printed.as_ref().copied().unwrap_or_default();
    stats.records = t.records.load(Ordering::Relaxed);
    info!(
        records = stats.records,
        get_records_calls = t.get_records_calls.load(Ordering::Relaxed),
        throttles = t.throttles.load(Ordering::Relaxed),
        transient_errors = t.transient_errors.load(Ordering::Relaxed),
        expired_iterators = t.expired_iterators.load(Ordering::Relaxed),
        shards_started = t.shards_started.load(Ordering::Relaxed),
        shards_drained = t.shards_drained.load(Ordering::Relaxed),
        "tail finished"
    );
    if let Ok(Err(failure)) = read {
        return Err(TailError::Stream {
            stream: format!("{} (region {region})", opts.stream),
            failure,
        });
    }
    match printed {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(stats),
        Err(e) => Err(TailError::Write(e)),
        Ok(_) => Ok(stats),
    }
}

/// The output loop: until every reader is gone (an error) or stdout fails.
async fn print(
    mut rx: mpsc::Receiver<Event>,
    output: TailOutput,
    refresh: Duration,
    map: Option<super::map::MapFeed>,
) -> std::io::Result<TailStats> {
    let to_map = |records: &[TailRecord]| {
        if let Some(m) = &map {
            m.offer(records);
        }
    };
    let mut out = tokio::io::BufWriter::new(tokio::io::stdout());
    let mut stats = TailStats::default();
    match output {
        TailOutput::Sbs => {
            while let Some(ev) = rx.recv().await {
                let Event::Records { records, .. } = ev else {
                    continue;
                };
                to_map(&records);
                for r in &records {
                    for line in record_lines(&r.data) {
                        out.write_all(line).await?;
                        out.write_all(b"\r\n").await?;
                        stats.lines += 1;
                    }
                }
                out.flush().await?;
            }
        }
        TailOutput::Table => {
            let tty = std::io::stdout().is_terminal();
            let mut fleet = Fleet::new();
            let mut lags: HashMap<Arc<str>, ShardStatus> = HashMap::new();
            let mut tick = tokio::time::interval(refresh);
            loop {
                tokio::select! {
                    ev = rx.recv() => match ev {
                        None => break,
                        Some(Event::Records { shard, records, millis_behind }) => {
                            to_map(&records);
                            for r in &records {
                                for line in record_lines(&r.data) {
                                    match SbsLine::parse(line) {
                                        Ok(l) => fleet.update(&l),
                                        Err(_) => fleet.bad_line(),
                                    }
                                }
                            }
                            lags.insert(shard, ShardStatus::Reading(millis_behind));
                        }
                        Some(Event::Shard { shard, status }) => {
                            lags.insert(shard, status);
                        }
                    },
                    _ = tick.tick() => {
                        for (s, st) in &lags {
                            fleet.set_shard(s, *st);
                        }
                        fleet.forget_old();
                        let now = SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as i64);
                        let text = if tty {
                            let rows = terminal_rows().unwrap_or(40);
                            // Home, the table with each line's rest erased,
                            // then everything below erased: no flicker.
                            let body = fleet.render(now, rows).replace('\n', "\x1b[K\n");
                            format!("\x1b[H{body}\x1b[J")
                        } else {
                            fleet.render_snapshot(now)
                        };
                        out.write_all(text.as_bytes()).await?;
                        out.flush().await?;
                    }
                }
            }
            stats.lines = fleet.lines + fleet.bad_lines;
            stats.bad_lines = fleet.bad_lines;
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    //! The readers against an in-memory stream that closes shards the way
    //! Kinesis does (moto does not: see the module docs).
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    #[derive(Default)]
    struct FakeShard {
        parents: Vec<String>,
        records: Vec<Vec<u8>>,
        closed: bool,
        children: Vec<String>,
    }

    #[derive(Default)]
    struct Inner {
        shards: BTreeMap<String, FakeShard>,
        calls: u64,
        /// Every n-th GetRecords answers ExpiredIteratorException (0: never).
        expire_every: u64,
        /// Every n-th GetRecords is throttled (0: never).
        throttle_every: u64,
    }

    #[derive(Clone, Default)]
    struct Fake(Arc<Mutex<Inner>>);

    /// Sequence numbers are "shard/index"; iterators "shard/next index".
    fn split_pos(s: &str) -> (String, usize) {
        let (a, b) = s.rsplit_once('/').unwrap();
        (a.to_owned(), b.parse().unwrap())
    }

    fn failure(code: &str) -> RequestFailure {
        RequestFailure {
            class: ErrorClass::of(code),
            outcome_unknown: false,
            code: Some(code.into()),
            message: "fake".into(),
        }
    }

    impl Fake {
        fn put(&self, shard: &str, data: &str) {
            let mut g = self.0.lock().unwrap();
            let s = g.shards.entry(shard.into()).or_default();
            assert!(!s.closed, "put into closed {shard}");
            s.records.push(data.as_bytes().to_vec());
        }
        fn split(&self, parent: &str, children: [&str; 2]) {
            let mut g = self.0.lock().unwrap();
            let p = g.shards.get_mut(parent).unwrap();
            p.closed = true;
            p.children = children.iter().map(|c| c.to_string()).collect();
            for c in children {
                g.shards.insert(
                    c.into(),
                    FakeShard {
                        parents: vec![parent.into()],
                        ..FakeShard::default()
                    },
                );
            }
        }
    }

    impl ShardsApi for Fake {
        async fn list_shards(&self) -> Result<Vec<ShardInfo>, RequestFailure> {
            let g = self.0.lock().unwrap();
            Ok(g.shards
                .iter()
                .map(|(id, s)| ShardInfo {
                    id: id.clone(),
                    parents: s.parents.clone(),
                    closed: s.closed,
                })
                .collect())
        }
        async fn shard_iterator(
            &self,
            shard: &str,
            at: &Position,
        ) -> Result<String, RequestFailure> {
            let g = self.0.lock().unwrap();
            let s = &g.shards[shard];
            let i = match at {
                Position::Start(StartAt::Latest) => s.records.len(),
                Position::Start(_) => 0,
                Position::AfterSequence(seq) => split_pos(seq).1 + 1,
            };
            Ok(format!("{shard}/{i}"))
        }
        async fn get_records(&self, iterator: &str) -> Result<RecordBatch, RequestFailure> {
            let mut g = self.0.lock().unwrap();
            g.calls += 1;
            if g.expire_every > 0 && g.calls.is_multiple_of(g.expire_every) {
                return Err(failure("ExpiredIteratorException"));
            }
            if g.throttle_every > 0 && g.calls % g.throttle_every == 1 {
                return Err(failure("ProvisionedThroughputExceededException"));
            }
            let (shard, i) = split_pos(iterator);
            let s = &g.shards[&shard];
            // Three records per call, so a parent takes several calls.
            let end = (i + 3).min(s.records.len());
            let records = (i..end)
                .map(|n| TailRecord {
                    sequence: format!("{shard}/{n}"),
                    data: s.records[n].clone(),
                    partition_key: "4840D6".into(),
                })
                .collect();
            let done = s.closed && end == s.records.len();
            Ok(RecordBatch {
                records,
                next_iterator: (!done).then(|| format!("{shard}/{end}")),
                millis_behind: Some(((s.records.len() - end) * 1000) as i64),
                children: if done { s.children.clone() } else { vec![] },
            })
        }
    }

    fn timing(relist: Duration) -> ReadTiming {
        ReadTiming {
            poll: Duration::from_millis(5),
            relist,
            retry: RetryPolicy {
                base: Duration::from_millis(1),
                cap: Duration::from_millis(5),
            },
        }
    }

    /// Run the readers until `n` records arrived; (shard, data) in the
    /// order the output saw them.
    fn collect(
        fake: Fake,
        relist: Duration,
        n: usize,
        during: impl FnOnce(&Fake) + Send + 'static,
    ) -> (Vec<(String, String)>, Arc<TailTelemetry>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (tx, mut rx) = mpsc::channel(4);
            let t = Arc::new(TailTelemetry::default());
            let cancel = CancellationToken::new();
            let task = tokio::spawn(read_stream(
                fake.clone(),
                StartAt::TrimHorizon,
                timing(relist),
                tx,
                t.clone(),
                cancel.clone(),
            ));
            let mut got = Vec::new();
            let mut during = Some(during);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while got.len() < n {
                let ev = tokio::time::timeout_at(deadline, rx.recv())
                    .await
                    .expect("records did not all arrive")
                    .expect("readers ended");
                if let Event::Records { shard, records, .. } = ev {
                    for r in records {
                        got.push((shard.to_string(), String::from_utf8(r.data).unwrap()));
                    }
                    if let Some(f) = during.take() {
                        f(&fake);
                    }
                }
            }
            cancel.cancel();
            drop(rx);
            task.await.unwrap().unwrap();
            (got, t)
        })
    }

    #[test]
    fn children_are_read_only_after_their_parent_is_drained() {
        let fake = Fake::default();
        for i in 0..60 {
            fake.put("s0", &format!("A{i}"));
        }
        for i in 0..12 {
            fake.put("s1", &format!("B{i}"));
        }
        // As soon as the first records are out: split s0, and write to
        // the children, which now own key A's range. s0 takes 20 calls
        // 5 ms apart to drain, and the shards are listed again every
        // millisecond meanwhile: the children are known long before s0
        // ends, and must still wait.
        let (got, t) = collect(fake, Duration::from_millis(1), 78, |f| {
            f.split("s0", ["s2", "s3"]);
            for i in 60..66 {
                f.put("s2", &format!("A{i}"));
            }
        });
        let a: Vec<&str> = got
            .iter()
            .filter(|(_, d)| d.starts_with('A'))
            .map(|(_, d)| d.as_str())
            .collect();
        let want: Vec<String> = (0..66).map(|i| format!("A{i}")).collect();
        assert_eq!(a, want, "key A out of order across the split");
        let first_child = got.iter().position(|(s, _)| s == "s2").unwrap();
        let last_parent = got.iter().rposition(|(s, _)| s == "s0").unwrap();
        assert!(last_parent < first_child);
        let b: Vec<&str> = got
            .iter()
            .filter(|(s, _)| s == "s1")
            .map(|(_, d)| d.as_str())
            .collect();
        assert_eq!(b.len(), 12);
        assert_eq!(t.shards_drained.load(Ordering::Relaxed), 1);
        // s0, s1, then both children.
        assert_eq!(t.shards_started.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn expired_iterators_and_throttles_lose_and_repeat_nothing() {
        let fake = Fake::default();
        {
            let mut g = fake.0.lock().unwrap();
            g.expire_every = 3;
            g.throttle_every = 4;
        }
        for i in 0..40 {
            fake.put("s0", &format!("A{i}"));
        }
        let (got, t) = collect(fake, Duration::from_secs(3600), 40, |_| {});
        let want: Vec<String> = (0..40).map(|i| format!("A{i}")).collect();
        assert_eq!(got.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>(), want);
        assert!(t.expired_iterators.load(Ordering::Relaxed) > 0);
        assert!(t.throttles.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn a_configuration_error_stops_the_readers() {
        #[derive(Clone)]
        struct Gone;
        impl ShardsApi for Gone {
            async fn list_shards(&self) -> Result<Vec<ShardInfo>, RequestFailure> {
                Err(failure("ResourceNotFoundException"))
            }
            async fn shard_iterator(
                &self,
                _: &str,
                _: &Position,
            ) -> Result<String, RequestFailure> {
                unreachable!()
            }
            async fn get_records(&self, _: &str) -> Result<RecordBatch, RequestFailure> {
                unreachable!()
            }
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (tx, _rx) = mpsc::channel(1);
        let r = rt.block_on(read_stream(
            Gone,
            StartAt::Latest,
            timing(Duration::from_secs(3600)),
            tx,
            Arc::default(),
            CancellationToken::new(),
        ));
        assert_eq!(
            r.unwrap_err().code.as_deref(),
            Some("ResourceNotFoundException")
        );
    }
}
