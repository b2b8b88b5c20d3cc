//! Outputs: where the decoded data goes. An edge module (sockets, stdout,
//! the Kinesis sink's tasks).
//!
//! The track stage hands every output the same [`Batch`] of [`Item`]s (a
//! parsed frame with what the tracker made of it, and its SBS line if it
//! makes one) through the output's own bounded queue, its [`Port`]. An
//! output is a task that reads its [`Feed`] and takes what it needs: the
//! SBS outputs take lines, the frame outputs take frames. Adding one is a new
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
//! # Batches
//!
//! Items travel in batches of what the track stage had at once, at most
//! one batch per [`BATCH_EVERY`] (see there): every output then wakes,
//! formats and writes once per batch, not once per frame, which is most
//! of what serving several outputs costs.
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
    /// `line` as text (no CRLF), formatted once for every output that
    /// writes lines.
    pub text: Option<Box<str>>,
}

impl Item {
    /// An item, its line formatted.
    pub fn new(
        frame: Option<Decoded>,
        position: Option<(f64, f64)>,
        line: Option<SbsLine>,
    ) -> Item {
        let text = line.as_ref().map(|l| l.to_string().into_boxed_str());
        Item {
            frame,
            position,
            line,
            text,
        }
    }
}

/// Items handed over together, in the order they came.
pub type Batch = Arc<[Item]>;

/// The receiving end of a port, read by the output's task.
pub type Feed = mpsc::Receiver<Batch>;

/// The track stage hands out a batch at most this often (and when one
/// reaches [`BATCH_MAX`] items): each output then writes to its peers at
/// most 5 times a second however many frames arrive. That is most of the
/// saving, since each write to a socket costs tens of microseconds of
/// kernel time (more on a Pi). It is what Pi owners have today: the usual
/// dump1090-fa command line flushes its outputs every 200 ms
/// (`--net-ro-interval 0.2`). The Beast timestamps travel with the
/// frames, so mlat does not mind.
pub const BATCH_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// A batch goes out once it holds this many items (a busy sky sends
/// 2 500 frames a second); it may hold one input more (a sample buffer's
/// frames). Bounds a port's memory to its capacity times this, when a
/// file replayed at full speed keeps the track stage busy.
pub const BATCH_MAX: usize = 1024;

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
    tx: mpsc::Sender<Batch>,
    delivery: Delivery,
    wants: Wants,
    /// The pipeline stops when this output does (the sink).
    essential: bool,
    dropped: u64,
}

impl Port {
    /// A port named `name` (in logs) with a queue of `capacity` batches,
    /// and the feed its task reads.
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

    /// Hands `items` to every output that wants some of them. False once
    /// an essential output has stopped (or none is left): the pipeline
    /// then stops.
    pub async fn send(&mut self, items: Vec<Item>) -> bool {
        let batch: Batch = Arc::from(items);
        let has_lines = batch.iter().any(|i| i.line.is_some());
        let mut i = 0;
        while i < self.ports.len() {
            let p = &mut self.ports[i];
            if batch.is_empty() || (p.wants == Wants::Lines && !has_lines) {
                i += 1;
                continue;
            }
            let open = match p.delivery {
                Delivery::Wait => p.tx.send(batch.clone()).await.is_ok(),
                Delivery::DropWhenFull => match p.tx.try_send(batch.clone()) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        if p.dropped == 0 {
                            warn!(
                                output = p.name,
                                "output queue full: dropping (further drops only counted)"
                            );
                        }
                        p.dropped += batch.len() as u64;
                        OutputTelemetry::add(&self.tel.items_dropped, batch.len() as u64);
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
