//! `tail --http-listen`: the fleet map. Every receiver feeding the stream
//! on one map, served by the same page and server as `run --http-listen`
//! ([`crate::output::http`]); each aircraft lists the receivers that heard
//! it (`receivers` in aircraft.json), read from the partition keys that
//! `run --receiver-id ID` writes (`ID/ICAO`).
//!
//! The readers hand records to the map with `try_send`: a map that falls
//! behind drops records (counted), it never slows the printing or the
//! reading.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::reader::TailRecord;
use crate::kinesis::record::record_lines;
use crate::output::http::{self, HttpTelemetry};
use crate::output::json::{unix_now, Renderer, Snapshot, REFRESH};
use crate::sbs::SbsLine;

/// Batches of records queued for the map.
const QUEUE: usize = 256;

/// The receiver in a partition key `ID/ICAO`; `None` for a bare `ICAO`.
pub fn receiver_of(key: &str) -> Option<&str> {
    key.rsplit_once('/')
        .map(|(id, _)| id)
        .filter(|id| !id.is_empty())
}

/// Where the printer hands the map its records.
#[derive(Debug, Clone)]
pub struct MapFeed {
    tx: mpsc::Sender<Vec<TailRecord>>,
    /// Batches the map could not take in time.
    pub dropped: Arc<AtomicU64>,
}

impl MapFeed {
    /// Offers a copy of `records`; drops and counts when the map is behind.
    pub fn offer(&self, records: &[TailRecord]) {
        if self.tx.try_send(records.to_vec()).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Binds `addr`; the feed for the printer and the task that keeps the
/// table and serves the map until `token` is cancelled.
pub async fn start(
    addr: &str,
    token: CancellationToken,
) -> std::io::Result<(MapFeed, impl std::future::Future<Output = ()>)> {
    let mut renderer = Renderer::new(None);
    let (snap_tx, snapshots) = renderer.channel();
    let server = http::start(
        addr,
        snapshots,
        token.clone(),
        Arc::new(HttpTelemetry::default()),
    )
    .await?;
    let (tx, rx) = mpsc::channel(QUEUE);
    let feed = MapFeed {
        tx,
        dropped: Arc::new(AtomicU64::new(0)),
    };
    let dropped = feed.dropped.clone();
    let task = async move {
        tokio::join!(server, keep(rx, renderer, snap_tx, dropped, token));
    };
    Ok((feed, task))
}

async fn keep(
    mut rx: mpsc::Receiver<Vec<TailRecord>>,
    mut r: Renderer,
    tx: watch::Sender<Arc<Snapshot>>,
    dropped: Arc<AtomicU64>,
    token: CancellationToken,
) {
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned = false;
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            batch = rx.recv() => {
                let Some(batch) = batch else { return };
                let now = unix_now();
                for rec in &batch {
                    let receiver = receiver_of(&rec.partition_key);
                    for line in record_lines(&rec.data) {
                        if let Ok(l) = SbsLine::parse(line) {
                            // Heard when the line says, not when read: a
                            // stream read from behind shows its real age.
                            let t = (l.generated_ms as f64 / 1000.0).min(now);
                            r.table.update_line(&l, receiver, t);
                        }
                    }
                }
            }
            _ = tick.tick() => {
                let _ = tx.send(Arc::new(r.snapshot(unix_now())));
                if !warned && dropped.load(Ordering::Relaxed) > 0 {
                    warn!("map: records dropped, the map fell behind the stream (further drops counted)");
                    warned = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receiver_is_what_precedes_the_address() {
        assert_eq!(receiver_of("pi-north/4840D6"), Some("pi-north"));
        assert_eq!(receiver_of("a/b/4840D6"), Some("a/b"));
        assert_eq!(receiver_of("4840D6"), None);
        assert_eq!(receiver_of("/4840D6"), None);
    }
}
