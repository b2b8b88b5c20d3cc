//! The track stage: per-aircraft state (CPR positions) and SBS formatting,
//! then every output through [`Outputs`]. The one async stage between the
//! radio (or a network source) and the outputs.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::debug;

use super::telemetry::Telemetry;
use crate::decoder::Decoded;
use crate::output::{Item, Outputs};
use crate::sbs::{generated_ms, unix_ms_now, SbsLine};
use crate::track::Tracker;

/// What the sources hand the track stage.
#[derive(Debug)]
pub enum Input {
    /// A decoded frame, from the demodulator or a Beast feed.
    Frame(Decoded),
    /// An SBS line from an `sbs:` source: forwarded as it is.
    Line(SbsLine),
}

/// Runs until the input closes or the sink stops; dropping `outputs` at
/// the end closes every output's feed, so each drains and finishes.
pub(super) async fn run(
    mut rx: mpsc::Receiver<Input>,
    mut outputs: Outputs,
    mut tracker: Tracker,
    hz: f64,
    start_ms: i64,
    tel: Arc<Telemetry>,
) {
    while let Some(input) = rx.recv().await {
        let item = match input {
            Input::Line(line) => Item {
                frame: None,
                position: None,
                line: Some(line),
            },
            Input::Frame(d) => {
                let t = d.sample as f64 / hz;
                let known = tracker.len();
                let position = tracker.update(&d.frame, t);
                tel.aircraft.store(tracker.len() as u64, Ordering::Relaxed);
                if tracker.len() > known {
                    debug!(icao = %d.frame.icao, df = d.frame.df, aircraft = tracker.len(), "new aircraft");
                }
                let line = SbsLine::from_frame(
                    &d.frame,
                    position,
                    generated_ms(start_ms, t),
                    unix_ms_now(),
                );
                Item {
                    frame: Some(d),
                    position,
                    line,
                }
            }
        };
        if item.line.is_some() {
            tel.lines_made.fetch_add(1, Ordering::Relaxed);
        }
        if !outputs.send(item).await {
            return;
        }
    }
}
