//! Outputs: where the decoded data goes. An edge module (sockets, stdout,
//! the Kinesis sink's tasks).
//!
//! The track stage hands every output the same [`Item`] (a parsed frame
//! with what the tracker made of it, and its SBS line if it makes one)
//! through the output's own bounded queue, its [`Port`]. An output is a
//! task that reads its [`Feed`] and takes what it needs: the SBS outputs
//! take lines, a frame output would take the frame. Adding one is a new
//! file with a `start` function returning its port and task, and one line
//! in the daemon's wiring.
//!
//! - [`stdout`]: SBS lines on stdout (the sink without `--stream`).
//! - [`kinesis`]: the Kinesis sink (`--stream`): batch and sender tasks,
//!   spool (the producer parts live in [`crate::kinesis`]).
//! - [`sbs_server`]: `--sbs-listen`, SBS lines to TCP clients (port 30003).
//! - [`raw`]: `--raw-listen`, AVR `*HEX;` lines (port 30002).
//! - [`beast`]: `--beast-listen` (port 30005) and `--beast-connect`, the
//!   Beast binary format for feeders and mlat.
//! - [`server`]: the TCP peers of those, with their bounds.
//! - [`json`]: the aircraft table rendered once a second as dump1090-fa's
//!   `aircraft.json`, `receiver.json`, `stats.json`; `--json-dir`.
//! - [`http`]: `--http-listen`, the live map and those files.
//!
//! # Never slowing the radio
//!
//! A port either waits when its queue is full or drops and counts
//! ([`Delivery`]). Waiting is for outputs that never block on a peer: the
//! sink (which spools rather than wait for Kinesis; stdout is a pipe the
//! user chose) and servers that give each client its own queue and drop
//! slow clients. The track stage waits for those; the demodulator before
//! it never does (it drops and counts).

pub mod beast;
pub mod http;
pub mod json;
pub mod kinesis;
pub mod raw;
pub mod sbs_server;
pub mod server;
pub mod stdout;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::warn;

use crate::decoder::Decoded;
use crate::sbs::SbsLine;

/// What the track stage hands every output.
#[derive(Debug, Clone)]
pub struct Item {
    /// The frame, when there is one (a line forwarded from an `sbs:`
    /// source has none).
    pub frame: Option<Decoded>,
    /// The position the tracker decoded from this frame (CPR, DO-260B
    /// §A.1.7).
    pub position: Option<(f64, f64)>,
    /// The SBS line, when the frame makes one (SBS_FORMAT.md).
    pub line: Option<SbsLine>,
}

/// The receiving end of a port, read by the output's task.
pub type Feed = mpsc::Receiver<Arc<Item>>;

/// What a port does when its queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Wait for room: only for outputs that never block on a peer.
    Wait,
    /// Drop the item and count it.
    DropWhenFull,
}

/// What an output needs from the stream of items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wants {
    /// Only items with an SBS line.
    Lines,
    /// Every item.
    Frames,
}

/// How the track stage feeds one output.
#[derive(Debug)]
pub struct Port {
    name: &'static str,
    tx: mpsc::Sender<Arc<Item>>,
    delivery: Delivery,
    wants: Wants,
    /// The pipeline stops when this output does (the sink).
    essential: bool,
    dropped: u64,
}

impl Port {
    /// A port named `name` (in logs) with a queue of `capacity` items, and
    /// the feed its task reads.
    pub fn new(
        name: &'static str,
        capacity: usize,
        delivery: Delivery,
        wants: Wants,
    ) -> (Port, Feed) {
        let (tx, rx) = mpsc::channel(capacity);
        let port = Port {
            name,
            tx,
            delivery,
            wants,
            essential: false,
            dropped: 0,
        };
        (port, rx)
    }

    /// Marks this output as the sink: when it stops, the pipeline stops.
    pub fn essential(mut self) -> Port {
        self.essential = true;
        self
    }
}

/// Counters of the outputs, kept together for the stats line.
#[derive(Debug, Default)]
pub struct OutputTelemetry {
    /// SBS lines written to stdout.
    pub lines_written: AtomicU64,
    /// The network outputs' peers.
    pub net: Arc<server::NetTelemetry>,
    /// The map server.
    pub http: Arc<http::HttpTelemetry>,
    /// Items dropped at a full [`Delivery::DropWhenFull`] port.
    pub items_dropped: AtomicU64,
}

impl OutputTelemetry {
    pub(crate) fn add(a: &AtomicU64, n: u64) {
        a.fetch_add(n, Ordering::Relaxed);
    }
}

/// Every output's port, fed in one place.
pub struct Outputs {
    ports: Vec<Port>,
    tel: Arc<OutputTelemetry>,
}

impl Outputs {
    /// Feeds `ports`, counting in `tel`.
    pub fn new(ports: Vec<Port>, tel: Arc<OutputTelemetry>) -> Outputs {
        Outputs { ports, tel }
    }

    /// Hands `item` to every output that wants it. False once an essential
    /// output has stopped (or none is left): the pipeline then stops.
    pub async fn send(&mut self, item: Item) -> bool {
        let item = Arc::new(item);
        let mut i = 0;
        while i < self.ports.len() {
            let p = &mut self.ports[i];
            if p.wants == Wants::Lines && item.line.is_none() {
                i += 1;
                continue;
            }
            let open = match p.delivery {
                Delivery::Wait => p.tx.send(item.clone()).await.is_ok(),
                Delivery::DropWhenFull => match p.tx.try_send(item.clone()) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        if p.dropped == 0 {
                            warn!(
                                output = p.name,
                                "output queue full: dropping (further drops only counted)"
                            );
                        }
                        p.dropped += 1;
                        OutputTelemetry::add(&self.tel.items_dropped, 1);
                        true
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                },
            };
            if open {
                i += 1;
            } else if p.essential {
                return false;
            } else {
                self.ports.remove(i);
            }
        }
        !self.ports.is_empty()
    }
}
