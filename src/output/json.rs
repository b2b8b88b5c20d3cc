//! The aircraft output: feeds the [`AircraftTable`] and, once a second,
//! renders `aircraft.json`, `receiver.json` and `stats.json` into one
//! [`Snapshot`] that the map server (`--http-listen`) hands out and
//! `--json-dir` writes to disk. Rendering once a second, not per request,
//! keeps the cost flat however many browsers poll.
//!
//! `--json-dir DIR` writes each file atomically (a temporary file in the
//! same directory, then `rename`), so a web server or tar1090 reading the
//! directory never sees half a file. Under systemd the unit's
//! `RuntimeDirectory=` (`/run/adsb-kinesis`) is the place: tmpfs, so a
//! Pi's SD card is not written every second.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Delivery, Feed, Port, Wants};
use crate::aircraft::{receiver_json, AircraftTable};

/// Batches queued for the table task: it never blocks, so the track stage
/// waits for it rather than dropping.
const QUEUE: usize = 8;

/// How often the files are rendered (and `refresh` in receiver.json).
pub const REFRESH: Duration = Duration::from_secs(1);

/// The three files at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// `aircraft.json`.
    pub aircraft: Bytes,
    /// `receiver.json`.
    pub receiver: Bytes,
    /// `stats.json`.
    pub stats: Bytes,
}

/// Where the map server and the JSON writer read the latest snapshot.
pub type Snapshots = watch::Receiver<Arc<Snapshot>>;

/// Now, Unix seconds.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The aircraft table and the three files made from it: shared by `run`
/// (fed with frames) and `tail` (fed with the stream's lines).
#[derive(Debug)]
pub struct Renderer {
    /// The table the files are made from.
    pub table: AircraftTable,
    start: f64,
    receiver: Bytes,
    warned_full: bool,
}

impl Renderer {
    /// An empty table; `receiver` is the receiver's position, for the
    /// map's range rings.
    pub fn new(receiver: Option<(f64, f64)>) -> Self {
        Renderer {
            table: AircraftTable::new(),
            start: unix_now(),
            receiver: Bytes::from(receiver_json(receiver)),
            warned_full: false,
        }
    }

    /// The three files as of `now` (Unix seconds); forgets old aircraft.
    pub fn snapshot(&mut self, now: f64) -> Snapshot {
        let t = &mut self.table;
        t.sweep(now);
        if t.evicted > 0 && !self.warned_full {
            warn!(
                max = crate::aircraft::MAX_AIRCRAFT,
                "map's aircraft table full: the stalest make room for new addresses"
            );
            self.warned_full = true;
        }
        let stats = serde_json::json!({
            "now": now,
            "total": {
                "start": self.start,
                "end": now,
                "messages": t.messages,
                "aircraft": t.len(),
                "aircraft_evicted": t.evicted,
            },
        });
        Snapshot {
            aircraft: Bytes::from(t.aircraft_json(now)),
            receiver: self.receiver.clone(),
            stats: Bytes::from(stats.to_string()),
        }
    }

    /// A channel that starts with this renderer's files: whole files from
    /// the start, an empty table until the first refresh.
    pub fn channel(&mut self) -> (watch::Sender<Arc<Snapshot>>, Snapshots) {
        watch::channel(Arc::new(self.snapshot(unix_now())))
    }
}

/// Starts the table: its port, the snapshots it publishes, and its task,
/// which returns when the feed closes. `receiver` is the receiver's
/// position, for the map's range rings.
pub fn start(
    receiver: Option<(f64, f64)>,
) -> (Port, Snapshots, impl std::future::Future<Output = ()>) {
    let (port, feed) = Port::new("aircraft", QUEUE, Delivery::Wait, Wants::Frames);
    let mut renderer = Renderer::new(receiver);
    let (tx, rx) = renderer.channel();
    (port, rx, run(feed, renderer, tx))
}

async fn run(mut feed: Feed, mut r: Renderer, tx: watch::Sender<Arc<Snapshot>>) {
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            batch = feed.recv() => {
                let Some(batch) = batch else { break };
                let now = unix_now();
                for item in batch.iter() {
                    match (&item.frame, &item.line) {
                        (Some(d), _) => r.table.update_frame(d, item.position, now),
                        (None, Some(l)) => r.table.update_line(l, None, now),
                        (None, None) => {}
                    }
                }
            }
            _ = tick.tick() => {
                let _ = tx.send(Arc::new(r.snapshot(unix_now())));
            }
        }
    }
}

/// `--json-dir`: writes every new snapshot into `dir` until the
/// snapshots end or `token` is cancelled. A failing write is logged once
/// per streak and retried with the next snapshot; it never stops the run.
pub async fn write_dir(dir: PathBuf, mut snapshots: Snapshots, token: CancellationToken) {
    info!(dir = %dir.display(), "json-dir: writing aircraft.json, receiver.json, stats.json");
    let mut failing = false;
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            changed = snapshots.changed() => if changed.is_err() { return },
        }
        let snap = snapshots.borrow_and_update().clone();
        let dir2 = dir.clone();
        let result = tokio::task::spawn_blocking(move || write_all(&dir2, &snap)).await;
        match result {
            Ok(Ok(())) => {
                if failing {
                    info!(dir = %dir.display(), "json-dir: writing again");
                    failing = false;
                }
            }
            Ok(Err(e)) => {
                if !failing {
                    warn!(dir = %dir.display(), error = %e,
                        "json-dir: cannot write (retried every second, logged once)");
                    failing = true;
                }
            }
            Err(_) => return,
        }
    }
}

fn write_all(dir: &Path, s: &Snapshot) -> std::io::Result<()> {
    for (name, bytes) in [
        ("aircraft.json", &s.aircraft),
        ("receiver.json", &s.receiver),
        ("stats.json", &s.stats),
    ] {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, dir.join(name))?;
    }
    Ok(())
}
