//! The sending half of the Kinesis sink: the batch task, the sender task
//! with its retry policy, and the spool they share. An edge module (tokio,
//! the file system through `spawn_blocking`); the AWS calls sit behind the
//! small [`PutRecordsApi`] trait so tests can swap them.
//!
//! ```text
//! SBS lines ─▶ batch task ──(Packer, Batcher, flush every linger)──▶ batch
//!                                                                      │
//!                   ┌──────────── Handoff (one lock) ─────────────┐    │
//!                   │ queue (≤ 4 batches)  │  Spool (disk)        │◀───┘
//!                   └──────────────────────┴──────────────────────┘
//!                                     │ queue first, then spool
//!                                     ▼
//!                               sender task ── PutRecords, retry failed
//!                                              entries (crate::retry, equal jitter)
//! ```
//!
//! # Never blocking the radio
//!
//! The batch task never waits for the sender. A batch goes into a small
//! in-memory queue; when the queue is full (the sender is offline,
//! throttled or just behind) the queued batches and the new one go to the
//! spool, and the spool is *spilling*: every later batch goes there too,
//! so that the order of records is kept, until the sender has emptied it.
//! Those decisions and the appends happen under one lock, in a blocking
//! thread. The sender takes the queue first, then the spool; at start a
//! non-empty spool is spilling, so the records of the last run go before
//! new data.
//!
//! # Retries
//!
//! One request is in flight at a time. Only the entries a `PutRecords`
//! response marks failed are sent again; a request that failed whole is
//! sent again whole. The pause before the n-th retry of a batch follows
//! [`crate::retry`]: drawn from `d/2..=d`, `d = min(cap, base·2ⁿ)`
//! ("equal jitter"), so every retry has a floor. Configuration errors (stream
//! missing, access denied, KMS key unusable) wait `config_retry` between
//! attempts and are logged once, naming the stream: the data stays in the
//! spool, and a stream created later still receives it.
//!
//! # Delivery
//!
//! At-least-once (see [`super`] for where duplicates arise). A request
//! whose outcome is unknown (timeout, connection lost after sending, an
//! unreadable or 5xx response, a request cut off at the shutdown deadline)
//! is counted in [`SenderStats::unknown_outcome`]: its records are sent
//! again and may be duplicates.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::batch::{check_request, failed_entries, Batcher, EntryResult, ErrorClass};
use super::record::{
    Packer, PackerConfigError, Record, MAX_RECORDS_PER_REQUEST, MAX_REQUEST_BYTES,
};
use super::spool::{Spool, SpoolError, SpoolPos};
use crate::retry::{Backoff, RepeatLog, RetryPolicy};
use crate::sbs::SbsLine;

/// Batches held in memory between the batch task and the sender before
/// spilling to disk (up to 4 × 500 records).
pub const BATCH_QUEUE: usize = 4;

/// How often the sender makes the spool's appends and acks durable.
const SYNC_EVERY: Duration = Duration::from_secs(30);

/// How a whole `PutRecords` request (or `DescribeStreamSummary`) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFailure {
    /// What kind of failure, for the retry decision.
    pub class: ErrorClass,
    /// The request may have been stored (timeout, connection lost after
    /// sending, unreadable or 5xx response): resending may duplicate.
    pub outcome_unknown: bool,
    /// The AWS error code, if the service sent one.
    pub code: Option<String>,
    /// One line for the log.
    pub message: String,
}

impl std::fmt::Display for RequestFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.code {
            Some(c) => write!(f, "{c}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// The one call the sender makes. Implemented over the AWS SDK client in
/// [`super::put`]; tests implement it in memory.
pub trait PutRecordsApi: Send + Sync + 'static {
    /// Send one request (the caller has checked it with
    /// [`check_request`]). On success, one result per record, in order.
    fn put_records(
        &self,
        records: &[Record],
    ) -> impl std::future::Future<Output = Result<Vec<EntryResult>, RequestFailure>> + Send;
}

/// Sender counters, kept together: the tasks add, the stats line reads.
#[derive(Debug, Default)]
pub struct SenderTelemetry {
    lines_in: AtomicU64,
    records_sent: AtomicU64,
    bytes_sent: AtomicU64,
    lines_sent: AtomicU64,
    put_calls: AtomicU64,
    records_retried: AtomicU64,
    records_failed: AtomicU64,
    throttles: AtomicU64,
    unknown_outcome: AtomicU64,
    lines_refused: AtomicU64,
    spool_records: AtomicU64,
    spool_bytes: AtomicU64,
    spool_oldest_ms: AtomicU64,
    spool_dropped: AtomicU64,
    spool_dropped_lines: AtomicU64,
    spool_written_bytes: AtomicU64,
    spooled_batches: AtomicU64,
}

/// A copy of the sender counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderStats {
    /// SBS lines that reached the sink.
    pub lines_in: u64,
    /// Records Kinesis stored (each with a sequence number).
    pub records_sent: u64,
    /// Their bytes, data + partition keys.
    pub bytes_sent: u64,
    /// SBS lines in those records.
    pub lines_sent: u64,
    /// `PutRecords` calls made (including failed ones).
    pub put_calls: u64,
    /// Records sent again after a failure.
    pub records_retried: u64,
    /// Record failures: entries Kinesis rejected plus records of requests
    /// that failed whole.
    pub records_failed: u64,
    /// Throttled entries and requests.
    pub throttles: u64,
    /// Requests whose outcome is unknown (their records may be duplicated).
    pub unknown_outcome: u64,
    /// Lines that could never fit a record (logged and dropped).
    pub lines_refused: u64,
    /// Records in the spool, not yet delivered.
    pub spool_records: u64,
    /// Bytes of spool files.
    pub spool_bytes: u64,
    /// Age of the oldest spooled record, seconds (0 when empty).
    pub spool_oldest_s: u64,
    /// Records the spool dropped (oldest first) for its size cap or the
    /// disk's free space, or could not write at all.
    pub spool_dropped: u64,
    /// SBS lines in those records (see [`crate::kinesis::spool::Dropped`]):
    /// lines made = lines delivered + this + `lines_refused`.
    pub spool_dropped_lines: u64,
    /// Bytes written to the spool's files since start: SD-card wear, 0
    /// while Kinesis takes everything.
    pub spool_written_bytes: u64,
    /// Batches that went to the spool instead of the in-memory queue.
    pub spooled_batches: u64,
}

impl SenderTelemetry {
    /// Reads every counter once; the spool's age is computed now.
    pub fn snapshot(&self) -> SenderStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let oldest = get(&self.spool_oldest_ms);
        let now = unix_ms(SystemTime::now());
        SenderStats {
            lines_in: get(&self.lines_in),
            records_sent: get(&self.records_sent),
            bytes_sent: get(&self.bytes_sent),
            lines_sent: get(&self.lines_sent),
            put_calls: get(&self.put_calls),
            records_retried: get(&self.records_retried),
            records_failed: get(&self.records_failed),
            throttles: get(&self.throttles),
            unknown_outcome: get(&self.unknown_outcome),
            lines_refused: get(&self.lines_refused),
            spool_records: get(&self.spool_records),
            spool_bytes: get(&self.spool_bytes),
            spool_oldest_s: if oldest == 0 {
                0
            } else {
                now.saturating_sub(oldest) / 1000
            },
            spool_dropped: get(&self.spool_dropped),
            spool_dropped_lines: get(&self.spool_dropped_lines),
            spool_written_bytes: get(&self.spool_written_bytes),
            spooled_batches: get(&self.spooled_batches),
        }
    }

    fn add(a: &AtomicU64, n: u64) {
        a.fetch_add(n, Ordering::Relaxed);
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis().try_into().unwrap_or(u64::MAX))
        .unwrap_or(0)
}

struct State {
    spool: Spool,
    /// Batches waiting for the sender in memory, oldest first; at most
    /// [`BATCH_QUEUE`], and empty while spilling.
    queue: VecDeque<Vec<Record>>,
    /// Every new batch goes to the spool (see the module docs).
    spilling: bool,
    /// The batch task has handed on its last batch.
    input_closed: bool,
    /// The sender has stopped: later batches go to the spool.
    sender_gone: bool,
    /// Write failures of the spool, logged once a minute.
    spool_failures: RepeatLog,
    /// Appends that dropped the oldest records, logged once a minute: on a
    /// full card every append drops some (the soak logged 80 975 lines in
    /// a second before this).
    spool_full: RepeatLog,
}

/// Where the batch task leaves batches and the sender takes them: a small
/// in-memory queue and the spool, under one lock so that a batch cannot
/// overtake an older one (module docs). Every operation runs in
/// `spawn_blocking`: the lock is held across disk I/O, never in async code.
#[derive(Clone)]
pub struct Handoff {
    state: Arc<Mutex<State>>,
    /// Wakes the sender when a batch arrives or the input closes.
    ready: Arc<Notify>,
    tel: Arc<SenderTelemetry>,
}

/// The Kinesis sink could not keep its data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The spool failed to write or read.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// A spool worker thread panicked.
    #[error("a spool worker thread panicked")]
    Panicked,
    /// The record limits are impossible.
    #[error(transparent)]
    Packer(#[from] PackerConfigError),
}

/// What the sender takes next.
enum Next {
    Queued(Vec<Record>),
    Spooled(Vec<(SpoolPos, Record)>),
    /// Nothing now; `true` if nothing more will come.
    Empty(bool),
}

impl Handoff {
    /// Wrap an opened spool; a non-empty one starts spilling so that its
    /// records go before new data.
    pub fn new(spool: Spool, tel: Arc<SenderTelemetry>) -> Self {
        let spilling = !spool.is_empty();
        let h = Handoff {
            state: Arc::new(Mutex::new(State {
                spool,
                queue: VecDeque::with_capacity(BATCH_QUEUE),
                spilling,
                input_closed: false,
                sender_gone: false,
                spool_failures: RepeatLog::default(),
                spool_full: RepeatLog::default(),
            })),
            ready: Arc::new(Notify::new()),
            tel,
        };
        h.publish(&h.lock());
        h
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the spool as consistent as
        // after a crash; keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, st: &State) {
        let s = st.spool.stats();
        let t = &self.tel;
        t.spool_records.store(s.records, Ordering::Relaxed);
        t.spool_bytes.store(s.bytes, Ordering::Relaxed);
        t.spool_dropped.store(s.dropped.records, Ordering::Relaxed);
        t.spool_dropped_lines
            .store(s.dropped.lines, Ordering::Relaxed);
        t.spool_written_bytes
            .store(s.written_bytes, Ordering::Relaxed);
        let oldest = st.spool.oldest_created().map(unix_ms).unwrap_or(0);
        t.spool_oldest_ms.store(oldest, Ordering::Relaxed);
    }

    async fn blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut State, &SenderTelemetry) -> R + Send + 'static,
    ) -> Result<R, SinkError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut st = this.lock();
            let r = f(&mut st, &this.tel);
            this.publish(&st);
            r
        })
        .await
        .map_err(|_| SinkError::Panicked)
    }

    /// Hand a batch to the sender: into the queue, or, when the queue is
    /// full or the spool is spilling, to the spool. When the queue
    /// overflows, its batches go to the spool first (they are older).
    pub async fn deliver(&self, batch: Vec<Record>) -> Result<(), SinkError> {
        self.blocking(move |st, tel| {
            if !st.spilling && !st.sender_gone {
                if st.queue.len() < BATCH_QUEUE {
                    st.queue.push_back(batch);
                    return Ok(());
                }
                st.spilling = true;
                while let Some(old) = st.queue.pop_front() {
                    SenderTelemetry::add(&tel.spooled_batches, 1);
                    append_all(st, &old, tel)?;
                }
            }
            SenderTelemetry::add(&tel.spooled_batches, 1);
            append_all(st, &batch, tel)
        })
        .await??;
        self.ready.notify_one();
        Ok(())
    }

    /// The batch task is done: no more batches.
    pub async fn close_input(&self) -> Result<(), SinkError> {
        self.blocking(|st, _| st.input_closed = true).await?;
        self.ready.notify_one();
        Ok(())
    }

    /// Append records (what could not be sent by the shutdown deadline).
    async fn append(&self, records: Vec<Record>) -> Result<(), SinkError> {
        self.blocking(move |st, tel| append_all(st, &records, tel))
            .await?
    }

    /// The next batch: queued ones first (older than anything spooled
    /// after them), then the spool. When both are empty, spilling stops.
    async fn next(&self) -> Result<Next, SinkError> {
        self.blocking(|st, _| {
            if let Some(b) = st.queue.pop_front() {
                return Ok(Next::Queued(b));
            }
            let batch = st
                .spool
                .peek_batch(MAX_RECORDS_PER_REQUEST, MAX_REQUEST_BYTES)?;
            if !batch.is_empty() {
                return Ok(Next::Spooled(batch));
            }
            if st.spilling {
                st.spilling = false;
                // A good moment to save the ack position: everything
                // spooled so far is delivered.
                sync_logged(st);
            }
            Ok(Next::Empty(st.input_closed))
        })
        .await?
    }

    /// The sender stops: queued batches, and all later ones, go to the
    /// spool, which is synced.
    async fn sender_stopped(&self) -> Result<usize, SinkError> {
        self.blocking(|st, tel| {
            st.sender_gone = true;
            let mut n = 0;
            while let Some(b) = st.queue.pop_front() {
                n += b.len();
                append_all(st, &b, tel)?;
            }
            sync_logged(st);
            Ok(n)
        })
        .await?
    }

    async fn ack(&self, pos: SpoolPos) -> Result<(), SinkError> {
        self.blocking(move |st, _| st.spool.ack(pos)).await??;
        Ok(())
    }

    /// Make appends and acks durable.
    pub async fn sync(&self) -> Result<(), SinkError> {
        self.blocking(|st, _| sync_logged(st)).await?;
        Ok(())
    }
}

/// Makes the spool durable. A failure (a full disk refusing the ack
/// file, a removed directory) is logged, once a minute, and does not end
/// the run: the next sync tries again, and until then a crash would only
/// replay records already sent (at least once, never lost).
fn sync_logged(st: &mut State) {
    if let Err(e) = st.spool.sync() {
        if let Some(n) = st.spool_failures.hit() {
            warn!(
                failures = n,
                "spool sync failed ({e}); retried at the next sync (repeats logged once a minute)"
            );
        }
    }
}

/// Appends `records` to the spool. Nothing the disk does ends the run:
/// a removed spool directory is made again (what was in it is counted as
/// lost); a failed write (a full disk, a bad card) closes the segment,
/// drops the oldest one to make room and tries once more; a record the
/// disk still refuses is counted as dropped. Each is logged, repeats once
/// a minute. Only a bug (an error of another kind) is returned.
fn append_all(st: &mut State, records: &[Record], tel: &SenderTelemetry) -> Result<(), SinkError> {
    let spool = &mut st.spool;
    if let Some(lost) = spool.check_dir() {
        warn!(
            dir = %spool.dir().display(),
            records = lost.records,
            "the spool directory was removed: its records are lost; made it again"
        );
    }
    for r in records {
        let mut result = spool.append(r);
        if let Err(e @ (SpoolError::File { .. } | SpoolError::Dir { .. })) = &result {
            let freed = spool.relieve();
            let again = spool.append(r);
            if let Some(n) = st.spool_failures.hit() {
                warn!(
                    dir = %spool.dir().display(),
                    failures = n,
                    dropped_records = freed.records,
                    retried_ok = again.is_ok(),
                    "spool write failed ({e}): dropped the oldest segment to make room \
                     (repeats logged once a minute)"
                );
            }
            result = again;
        }
        match result {
            Ok(d) => {
                if d.records > 0 {
                    if let Some(n) = st.spool_full.hit() {
                        warn!(
                            records = d.records,
                            bytes = d.bytes,
                            cap = spool.cap(),
                            dir = %spool.dir().display(),
                            times = n,
                            "spool full (spool-max-bytes, or the disk's free space): dropped the oldest records \
                             (repeats logged once a minute; spool_dropped counts every record)"
                        );
                    }
                }
            }
            // Records come from the packer and batcher, which check the
            // Kinesis limits, so only a spool smaller than a record lands
            // here: count it and go on.
            Err(e @ (SpoolError::TooLarge { .. } | SpoolError::Record(_))) => {
                warn!("cannot spool a record: {e}");
                SenderTelemetry::add(&tel.lines_refused, r.line_count() as u64);
            }
            Err(SpoolError::File { .. } | SpoolError::Dir { .. }) => {
                spool.count_lost(r);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Settings of the batch task.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Up to this many consecutive lines of one aircraft per record.
    pub pack_lines: usize,
    /// Largest record, data + partition key.
    pub max_record_bytes: usize,
    /// Longest wait before a batch is sent.
    pub linger: Duration,
    /// `--receiver-id`: partition keys become `ID/ICAO` instead of `ICAO`,
    /// so a consumer of a stream fed by several receivers knows which
    /// one heard each line.
    pub receiver_id: Option<String>,
}

/// What the batch task reads: anything that carries SBS lines (a batch of
/// the outputs' items carries one for each frame that makes one).
pub trait LineSource: Send + Sync + 'static {
    /// The lines in order, each with its text (no CRLF).
    fn sbs_lines(&self) -> impl Iterator<Item = (&SbsLine, Cow<'_, str>)>;
}

impl LineSource for SbsLine {
    fn sbs_lines(&self) -> impl Iterator<Item = (&SbsLine, Cow<'_, str>)> {
        std::iter::once((self, Cow::Owned(self.to_string())))
    }
}

/// The batch task: SBS lines in (keyed by their ICAO address), batches out
/// to the sender (or the spool). Everything held is flushed every `linger`, when a batch is
/// full, and when the input closes. Returns once the last batch is handed
/// on and the sender told that no more will come.
pub async fn batch_stage<T: LineSource>(
    mut rx: mpsc::Receiver<T>,
    out: Handoff,
    opts: BatchOptions,
    tel: Arc<SenderTelemetry>,
) -> Result<(), SinkError> {
    let mut packer = match Packer::new(opts.pack_lines, opts.max_record_bytes) {
        Ok(p) => p,
        Err(e) => {
            // The config is validated before this runs; if not, say so
            // and let the sender finish.
            out.close_input().await?;
            return Err(e.into());
        }
    };
    let mut batcher = Batcher::new(opts.linger);
    let mut tick = tokio::time::interval(opts.linger.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ready: Vec<Vec<Record>> = Vec::new();
    let mut refused_logged = false;
    loop {
        let flush = tokio::select! {
            item = rx.recv() => match item {
                Some(item) => {
                    for (line, text) in item.sbs_lines() {
                        SenderTelemetry::add(&tel.lines_in, 1);
                        let key = match &opts.receiver_id {
                            Some(id) => format!("{id}/{}", line.icao),
                            None => line.icao.to_string(),
                        };
                        match packer.push(&key, &text) {
                            Ok(Some(record)) => push(&mut batcher, record, &mut ready, &tel),
                            Ok(None) => {}
                            Err(e) => {
                                SenderTelemetry::add(&tel.lines_refused, 1);
                                if !refused_logged {
                                    warn!("line dropped (further ones only counted): {e}");
                                    refused_logged = true;
                                }
                            }
                        }
                    }
                    false
                }
                None => break,
            },
            _ = tick.tick() => true,
        };
        if flush {
            for record in packer.flush() {
                push(&mut batcher, record, &mut ready, &tel);
            }
            ready.extend(batcher.flush());
        }
        for batch in ready.drain(..) {
            out.deliver(batch).await?;
        }
    }
    for record in packer.flush() {
        push(&mut batcher, record, &mut ready, &tel);
    }
    ready.extend(batcher.flush());
    for batch in ready.drain(..) {
        out.deliver(batch).await?;
    }
    out.close_input().await
}

fn push(
    batcher: &mut Batcher,
    record: Record,
    ready: &mut Vec<Vec<Record>>,
    tel: &SenderTelemetry,
) {
    let lines = record.line_count() as u64;
    match batcher.push(record, tokio::time::Instant::now().into_std()) {
        Ok(Some(batch)) => ready.push(batch),
        Ok(None) => {}
        // The packer only makes records within the limits.
        Err(e) => {
            warn!("record dropped: {e}");
            SenderTelemetry::add(&tel.lines_refused, lines);
        }
    }
}

/// What the sender needs besides its inputs.
pub struct SenderOptions {
    /// How the stream is named in log lines.
    pub stream: String,
    /// The schedule of retries after throttling and transient errors.
    pub retry: RetryPolicy,
    /// The pause after a configuration error (stream missing, access
    /// denied): long, as only an operator can fix it.
    pub config_retry: Duration,
}

/// A batch being delivered.
struct Job {
    /// Records not yet stored.
    pending: Vec<Record>,
    /// For a batch read from the spool: the position to acknowledge once
    /// every record is stored.
    ack: Option<SpoolPos>,
}

enum JobEnd {
    Delivered,
    /// `give_up` fired: these records were not (known to be) stored.
    GaveUp(Vec<Record>),
}

/// Tracks the error state so that log lines come once per change, not once
/// per retry, and a flapping stream (throttled every other call, a lossy
/// link) logs at most one failure line and one recovery line a minute,
/// the failure line with the count since the last one (issue 20: every
/// throttle/success alternation used to log a pair).
#[derive(Default)]
struct ErrorLog {
    /// The code or kind of the failure state we are in, `None` while
    /// requests succeed.
    last: Option<String>,
    /// Failure lines of the transient kinds.
    warned: RepeatLog,
    /// "Succeeds again" lines.
    recovered: RepeatLog,
}

impl ErrorLog {
    fn failed(&mut self, stream: &str, f: &RequestFailure, records: usize) {
        // By code, or by kind when there is none: the texts of timeouts
        // and connection errors vary in details.
        let key = f
            .code
            .clone()
            .unwrap_or_else(|| format!("{:?}, outcome unknown: {}", f.class, f.outcome_unknown));
        let changed = self.last.as_deref() != Some(key.as_str());
        self.last = Some(key);
        if f.class == ErrorClass::Configuration {
            // Needs the user: said at once whenever it starts.
            if changed {
                error!(
                    "stream {stream}: {f}; records are kept in the spool and retried slowly until this is fixed"
                );
            }
        } else if let Some(failures) = self.warned.hit() {
            warn!(
                records,
                failures,
                "stream {stream}: PutRecords failed, retrying: {f} (repeats logged once a minute with the count)"
            );
        }
    }

    fn entries_failed(&mut self, stream: &str, code: &str, class: ErrorClass, n: usize) {
        if class == ErrorClass::Configuration && self.last.as_deref() != Some(code) {
            error!(
                "stream {stream}: {n} records failed with {code}; kept and retried slowly until this is fixed"
            );
            self.last = Some(code.to_owned());
        }
    }

    fn ok(&mut self, stream: &str) {
        if self.last.take().is_some() && self.recovered.hit().is_some() {
            info!("stream {stream}: PutRecords succeeds again");
        }
    }
}

/// The sender task. Sends queued batches, then spooled ones, until the
/// input is closed and both are empty, or until `give_up` (the shutdown
/// deadline): then everything not sent goes to the spool. `hurry` (the
/// shutdown itself) cuts the wait before a retry short, once per batch:
/// after a long pause for a configuration error (a stream that was
/// missing and may be back) the shutdown tries at once, instead of
/// waiting out its whole timeout and spooling everything.
pub async fn sender<A: PutRecordsApi>(
    api: A,
    from: Handoff,
    opts: SenderOptions,
    hurry: CancellationToken,
    give_up: CancellationToken,
    tel: Arc<SenderTelemetry>,
) -> Result<(), SinkError> {
    let mut log = ErrorLog::default();
    let mut sync_tick = tokio::time::interval(SYNC_EVERY);
    sync_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut synced_at = tokio::time::Instant::now();
    while !give_up.is_cancelled() {
        // Busy or idle, appends and acks reach the disk now and then (a
        // crash then replays at most this much, a power loss loses at most
        // this much).
        if synced_at.elapsed() >= SYNC_EVERY {
            from.sync().await?;
            synced_at = tokio::time::Instant::now();
        }
        let job = match from.next().await? {
            Next::Queued(batch) => Job {
                pending: batch,
                ack: None,
            },
            Next::Spooled(batch) => Job {
                ack: batch.last().map(|(pos, _)| *pos),
                pending: batch.into_iter().map(|(_, r)| r).collect(),
            },
            Next::Empty(true) => break,
            Next::Empty(false) => {
                tokio::select! {
                    _ = from.ready.notified() => {}
                    _ = sync_tick.tick() => {}
                    _ = give_up.cancelled() => {}
                }
                continue;
            }
        };
        let ack = job.ack;
        let stop = Stop {
            hurry: &hurry,
            give_up: &give_up,
        };
        let end = deliver(&api, job, &opts, stop, &tel, &mut log).await;
        // A spooled batch is acknowledged when it is delivered, or, at
        // the deadline, once its undelivered rest is back in the spool.
        if let JobEnd::GaveUp(rest) = end {
            from.append(rest).await?;
        }
        if let Some(pos) = ack {
            from.ack(pos).await?;
        }
    }
    let from_queue = from.sender_stopped().await?;
    let left = tel.snapshot().spool_records;
    if left > 0 {
        info!(
            spooled = left,
            from_queue,
            "stream {}: {left} records kept in the spool for the next start",
            opts.stream
        );
    }
    Ok(())
}

/// The shutdown, as [`deliver`] sees it (see [`sender`]).
#[derive(Clone, Copy)]
struct Stop<'a> {
    hurry: &'a CancellationToken,
    give_up: &'a CancellationToken,
}

/// Send one batch until every record is stored or `give_up` fires.
async fn deliver<A: PutRecordsApi>(
    api: &A,
    job: Job,
    opts: &SenderOptions,
    Stop { hurry, give_up }: Stop<'_>,
    tel: &SenderTelemetry,
    log: &mut ErrorLog,
) -> JobEnd {
    let mut hurried = false;
    let mut pending = job.pending;
    let mut backoff: Backoff = opts.retry.backoff();
    let mut first = true;
    loop {
        if pending.is_empty() {
            return JobEnd::Delivered;
        }
        if let Err(e) = check_request(&pending) {
            // Cannot happen: batches come from the Batcher or the spool,
            // both within the limits. Never send it; drop and count.
            error!(
                "stream {}: not sending an invalid request: {e}",
                opts.stream
            );
            SenderTelemetry::add(&tel.records_failed, pending.len() as u64);
            return JobEnd::Delivered;
        }
        if !first {
            SenderTelemetry::add(&tel.records_retried, pending.len() as u64);
        }
        first = false;
        let result = tokio::select! {
            r = api.put_records(&pending) => r,
            _ = give_up.cancelled() => {
                // Cut off mid-request: it may have been stored.
                SenderTelemetry::add(&tel.put_calls, 1);
                SenderTelemetry::add(&tel.unknown_outcome, 1);
                return JobEnd::GaveUp(pending);
            }
        };
        SenderTelemetry::add(&tel.put_calls, 1);
        let delay = match result {
            Ok(results) => {
                let n = pending.len();
                let bytes: usize = pending.iter().map(Record::encoded_size).sum();
                let lines: usize = pending.iter().map(Record::line_count).sum();
                match failed_entries(std::mem::take(&mut pending), &results) {
                    Ok(failed) => {
                        let f_bytes: usize = failed.iter().map(|f| f.record.encoded_size()).sum();
                        let f_lines: usize = failed.iter().map(|f| f.record.line_count()).sum();
                        SenderTelemetry::add(&tel.records_sent, (n - failed.len()) as u64);
                        SenderTelemetry::add(&tel.bytes_sent, (bytes - f_bytes) as u64);
                        SenderTelemetry::add(&tel.lines_sent, (lines - f_lines) as u64);
                        if failed.is_empty() {
                            log.ok(&opts.stream);
                            return JobEnd::Delivered;
                        }
                        SenderTelemetry::add(&tel.records_failed, failed.len() as u64);
                        let mut all_config = true;
                        for f in &failed {
                            let class = f.class();
                            match class {
                                ErrorClass::Throttled => SenderTelemetry::add(&tel.throttles, 1),
                                ErrorClass::Configuration => {}
                                _ => {}
                            }
                            all_config &= class == ErrorClass::Configuration;
                        }
                        if let Some(f) = failed.first() {
                            log.entries_failed(
                                &opts.stream,
                                &f.error_code,
                                f.class(),
                                failed.len(),
                            );
                        }
                        pending = failed.into_iter().map(|f| f.record).collect();
                        if all_config {
                            opts.config_retry
                        } else {
                            backoff.next_delay()
                        }
                    }
                    Err(mismatch) => {
                        warn!("stream {}: {mismatch}", opts.stream);
                        SenderTelemetry::add(&tel.unknown_outcome, 1);
                        SenderTelemetry::add(&tel.records_failed, mismatch.records.len() as u64);
                        pending = mismatch.records;
                        backoff.next_delay()
                    }
                }
            }
            Err(f) => {
                log.failed(&opts.stream, &f, pending.len());
                SenderTelemetry::add(&tel.records_failed, pending.len() as u64);
                if f.outcome_unknown {
                    SenderTelemetry::add(&tel.unknown_outcome, 1);
                }
                match f.class {
                    ErrorClass::Throttled => {
                        SenderTelemetry::add(&tel.throttles, 1);
                        backoff.next_delay()
                    }
                    ErrorClass::Configuration => opts.config_retry,
                    _ => backoff.next_delay(),
                }
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = hurry.cancelled(), if !hurried => hurried = true,
            _ = give_up.cancelled() => return JobEnd::GaveUp(pending),
        }
    }
}

#[cfg(test)]
mod tests;
