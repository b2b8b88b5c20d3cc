//! The daemon's counters: the stages add, the stats line, the final
//! summary and sd_notify's health reading look.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::kinesis::send::{SenderStats, SenderTelemetry};
use crate::notify;
use crate::output::OutputTelemetry;
use crate::source::{SourceStats, SourceTelemetry};

/// Counters, kept together: the stages add, the stats task reads.
#[derive(Default)]
pub(super) struct Telemetry {
    pub frames_by_df: [AtomicU64; 25],
    /// Frames the track task had no room for.
    pub frames_dropped: AtomicU64,
    /// Sample buffers the demodulator had no room for.
    pub buffers_dropped: AtomicU64,
    pub aircraft: AtomicU64,
    /// Frames of new addresses the full tracker did not take.
    pub aircraft_evicted: AtomicU64,
    /// The Kinesis sink's counters, when it is the sink.
    pub sender: Option<Arc<SenderTelemetry>>,
    /// Sample buffers the demodulator took, and SBS lines the track stage
    /// handed on: the health signals of [`notify`].
    pub sample_buffers: AtomicU64,
    pub lines_made: AtomicU64,
    /// The source's connections and errors.
    pub source: Arc<SourceTelemetry>,
    /// The outputs' counters (stdout lines, `--sbs-listen` clients).
    pub outputs: Arc<OutputTelemetry>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Frames decoded, by downlink format (24 and up counted as 24).
    pub frames_by_df: [u64; 25],
    /// Frames the track stage had no room for.
    pub frames_dropped: u64,
    /// Sample buffers the demodulator had no room for.
    pub buffers_dropped: u64,
    /// SBS lines written to stdout, or stored in Kinesis.
    pub lines: u64,
    /// SBS lines the track stage made (the outputs took them; `lines`
    /// counts those delivered so far).
    pub lines_made: u64,
    /// Aircraft in the tracker's table.
    pub aircraft: u64,
    /// Frames of new addresses not tracked because the table was full
    /// ([`crate::track::MAX_TRACKED`]).
    pub aircraft_evicted: u64,
    /// The Kinesis sink's counters (all zero with the stdout sink).
    pub sender: SenderStats,
    /// The source's counters (network and dongle sources).
    pub source: SourceStats,
    /// Peers of the network outputs connected (`--*-listen` clients and
    /// a `--beast-connect` peer).
    pub listen_clients: u64,
    /// Network output peers disconnected for not reading.
    pub listen_dropped: u64,
    /// Clients refused because a listener had its maximum.
    pub listen_refused: u64,
    /// Frames `--beast-connect` dropped while it had no peer.
    pub net_unsent: u64,
    /// Requests the map server answered.
    pub http_requests: u64,
    /// Map connections closed at once because too many were open.
    pub http_refused: u64,
}

impl RunStats {
    /// Every frame decoded.
    pub fn frames(&self) -> u64 {
        self.frames_by_df.iter().sum()
    }
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl Telemetry {
    /// Counts one decoded frame.
    pub fn frame(&self, df: u8) {
        self.frames_by_df[usize::from(df.min(24))].fetch_add(1, Ordering::Relaxed);
    }

    /// What the sd_notify watch task looks at.
    pub fn reading(&self) -> notify::Reading {
        let sender = self.sender.as_ref().map(|s| s.snapshot());
        notify::Reading {
            sample_buffers: get(&self.sample_buffers),
            source_waiting: self.source.is_waiting(),
            frames: self.frames_by_df.iter().map(get).sum(),
            lines_made: get(&self.lines_made),
            // Written to stdout, or taken in by the Kinesis batcher.
            lines_taken: get(&self.outputs.lines_written) + sender.map_or(0, |s| s.lines_in),
            aircraft: get(&self.aircraft),
            spool_records: sender.map_or(0, |s| s.spool_records),
            spool_bytes: sender.map_or(0, |s| s.spool_bytes),
            kinesis: sender.is_some(),
        }
    }

    /// Reads every counter once.
    pub fn snapshot(&self) -> RunStats {
        let sender = self
            .sender
            .as_ref()
            .map(|s| s.snapshot())
            .unwrap_or_default();
        RunStats {
            frames_by_df: std::array::from_fn(|i| get(&self.frames_by_df[i])),
            frames_dropped: get(&self.frames_dropped),
            buffers_dropped: get(&self.buffers_dropped),
            lines: get(&self.outputs.lines_written) + sender.lines_sent,
            lines_made: get(&self.lines_made),
            aircraft: get(&self.aircraft),
            aircraft_evicted: get(&self.aircraft_evicted),
            sender,
            source: self.source.snapshot(),
            listen_clients: get(&self.outputs.net.clients),
            listen_dropped: get(&self.outputs.net.dropped),
            listen_refused: get(&self.outputs.net.refused),
            net_unsent: get(&self.outputs.net.unsent),
            http_requests: get(&self.outputs.http.requests),
            http_refused: get(&self.outputs.http.refused),
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
            lines_made = now.lines_made,
            frames_dropped = now.frames_dropped,
            buffers_dropped = now.buffers_dropped,
            aircraft = now.aircraft,
            aircraft_evicted = now.aircraft_evicted,
            source_connects = now.source.connects,
            source_failures = now.source.failures,
            source_rejects = now.source.rejects,
            source_garbage_bytes = now.source.garbage_bytes,
            listen_clients = now.listen_clients,
            listen_dropped = now.listen_dropped,
            listen_refused = now.listen_refused,
            net_unsent = now.net_unsent,
            http_requests = now.http_requests,
            http_refused = now.http_refused,
            "stats"
        );
        if self.sender.is_some() {
            log_sender("stats", &now.sender);
        }
        now
    }

    /// The summary at the end of a run.
    pub fn log_end(&self) -> RunStats {
        let end = self.snapshot();
        info!(
            frames = end.frames(),
            lines = end.lines,
            lines_made = end.lines_made,
            frames_dropped = end.frames_dropped,
            buffers_dropped = end.buffers_dropped,
            aircraft = end.aircraft,
            "finished"
        );
        if self.sender.is_some() {
            log_sender("finished", &end.sender);
        }
        end
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
        spool_dropped_lines = s.spool_dropped_lines,
        spool_written_bytes = s.spool_written_bytes,
        spooled_batches = s.spooled_batches,
        "kinesis {what}"
    );
}

/// When the first stats line comes, at the latest.
const FIRST_STATS: Duration = Duration::from_secs(10);

/// The stats task: a line every `every` until `stop`.
pub(super) async fn stats(tel: Arc<Telemetry>, every: Duration, stop: CancellationToken) {
    // The first line comes early, so that a first try of a few seconds
    // shows one; then every `every`.
    let first = every.min(FIRST_STATS);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + first, every);
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
}

/// Under systemd (`$NOTIFY_SOCKET` set): the task that sends readiness,
/// watchdog pings and status (see [`notify`] for what healthy means).
/// systemd's variables are read here, at the edge, as they describe the
/// process's supervisor rather than the configuration.
pub(super) fn notify_task(
    source: String,
    tel: Arc<Telemetry>,
    stop: CancellationToken,
) -> Option<impl std::future::Future<Output = ()>> {
    let notifier = match notify::Notifier::from_env() {
        Ok(n) => n?,
        Err(e) => {
            warn!("NOTIFY_SOCKET is set but unusable ({e}); not telling systemd we are ready");
            return None;
        }
    };
    let watchdog = notify::watchdog_timeout(|k| std::env::var(k).ok(), std::process::id());
    Some(notify::watch(
        notifier,
        watchdog,
        source,
        move || tel.reading(),
        stop,
    ))
}
