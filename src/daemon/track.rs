//! The track stage: per-aircraft state (CPR positions) and SBS formatting,
//! then every output through [`Outputs`]. The one async stage between the
//! radio (or a network source) and the outputs.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::telemetry::Telemetry;
use crate::decoder::Decoded;
use crate::output::{Item, Outputs, BATCH_EVERY, BATCH_MAX};
use crate::sbs::{generated_ms, unix_ms_now, SbsLine};
use crate::track::Tracker;

/// What the sources hand the track stage.
#[derive(Debug)]
pub enum Input {
    /// A decoded frame, from a Beast feed.
    Frame(Decoded),
    /// The frames the demodulator found in one sample buffer.
    Frames(Vec<Decoded>),
    /// An SBS line from an `sbs:` source: forwarded as it is.
    Line(SbsLine),
}

/// Runs until the input closes or the sink stops; dropping `outputs` at
/// the end closes every output's feed, so each drains and finishes.
///
/// Items are gathered into batches ([`crate::output::BATCH_EVERY`]): a
/// batch goes out when the input has nothing more waiting and the last one
/// left at least that long ago, or when it is full; a timer sends what is
/// left when the input pauses.
pub(super) async fn run(
    mut rx: mpsc::Receiver<Input>,
    mut outputs: Outputs,
    mut tracker: Tracker,
    hz: f64,
    start_ms: i64,
    tel: Arc<Telemetry>,
) {
    let mut pending: Vec<Item> = Vec::new();
    let mut last = Instant::now();
    loop {
        let due = last + BATCH_EVERY;
        let input = tokio::select! {
            biased;
            input = rx.recv() => input,
            () = tokio::time::sleep_until(due), if !pending.is_empty() => {
                last = Instant::now();
                if !outputs.send(std::mem::take(&mut pending)).await {
                    return;
                }
                continue;
            }
        };
        let Some(input) = input else { break };
        let mut stage = Stage {
            tracker: &mut tracker,
            hz,
            start_ms,
            tel: &tel,
        };
        stage.take(input, &mut pending);
        // Whatever else is waiting joins the batch.
        while pending.len() < BATCH_MAX {
            match rx.try_recv() {
                Ok(input) => stage.take(input, &mut pending),
                Err(_) => break,
            }
        }
        let now = Instant::now();
        if pending.len() >= BATCH_MAX || now >= due {
            last = now;
            if !outputs.send(std::mem::take(&mut pending)).await {
                return;
            }
        }
    }
    outputs.send(pending).await;
}

/// What the tracker and the SBS formatter need.
struct Stage<'a> {
    tracker: &'a mut Tracker,
    hz: f64,
    start_ms: i64,
    tel: &'a Telemetry,
}

impl Stage<'_> {
    /// Appends what the tracker and the SBS formatter make of `input`.
    fn take(&mut self, input: Input, into: &mut Vec<Item>) {
        match input {
            Input::Line(line) => {
                self.tel.lines_made.fetch_add(1, Ordering::Relaxed);
                into.push(Item::new(None, None, Some(line)));
            }
            Input::Frame(d) => into.push(self.frame(d)),
            Input::Frames(frames) => into.extend(frames.into_iter().map(|d| self.frame(d))),
        }
    }

    fn frame(&mut self, d: Decoded) -> Item {
        let t = d.sample as f64 / self.hz;
        let tracker = &mut *self.tracker;
        let known = tracker.len();
        let evicted = tracker.stats.evicted;
        let position = tracker.update(&d.frame, t);
        self.tel
            .aircraft
            .store(tracker.len() as u64, Ordering::Relaxed);
        if tracker.stats.evicted > evicted {
            if evicted == 0 {
                warn!(
                    max = crate::track::MAX_TRACKED,
                    "aircraft table full: the stalest aircraft make room for new addresses \
                     (counted as aircraft_evicted; a noisy or hostile feed?)"
                );
            }
            self.tel
                .aircraft_evicted
                .store(tracker.stats.evicted, Ordering::Relaxed);
        }
        if tracker.len() > known {
            debug!(icao = %d.frame.icao, df = d.frame.df, aircraft = tracker.len(), "new aircraft");
        }
        let line = SbsLine::from_frame(
            &d.frame,
            position,
            generated_ms(self.start_ms, t),
            unix_ms_now(),
        );
        if line.is_some() {
            self.tel.lines_made.fetch_add(1, Ordering::Relaxed);
        }
        Item::new(Some(d), position, line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{Delivery, OutputTelemetry, Port, Wants};
    use crate::{hexin, modes};

    fn frame(sample: u64) -> Decoded {
        let (_, bytes) = hexin::parse_line("*8D4840D6202CC371C32CE0576098;")
            .unwrap()
            .unwrap();
        Decoded {
            frame: modes::parse(&bytes).unwrap(),
            sample,
            signal: 0,
            timestamp: 0,
            repaired: 0,
            late: false,
        }
    }

    /// Runs the stage on what `feed` sends; the batches every output got.
    async fn batches(feed: impl AsyncFnOnce(mpsc::Sender<Input>)) -> Vec<Vec<u64>> {
        let (tx, rx) = mpsc::channel(4);
        let (port, mut out) = Port::new("test", 64, Delivery::Wait, Wants::Frames);
        let outputs = Outputs::new(vec![port], Arc::new(OutputTelemetry::default()));
        let stage = tokio::spawn(run(
            rx,
            outputs,
            Tracker::new(None),
            2.4e6,
            0,
            Arc::new(Telemetry::default()),
        ));
        let collect = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(b) = out.recv().await {
                got.push(b.iter().map(|i| i.frame.as_ref().unwrap().sample).collect());
            }
            got
        });
        feed(tx).await;
        stage.await.unwrap();
        collect.await.unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_cut_into_full_batches_in_order() {
        let n = 3 * BATCH_MAX as u64 + 7;
        let got = batches(async |tx| {
            let frames: Vec<Decoded> = (0..n).map(frame).collect();
            for chunk in frames.chunks(100) {
                tx.send(Input::Frames(chunk.to_vec())).await.unwrap();
            }
        })
        .await;
        assert_eq!(got.concat(), (0..n).collect::<Vec<_>>());
        // Full batches (at most one input over), then what is left at the end.
        let (last, full) = got.split_last().unwrap();
        assert_eq!(
            full.len(),
            2,
            "sizes {:?}",
            got.iter().map(Vec::len).collect::<Vec<_>>()
        );
        assert!(full
            .iter()
            .all(|b| (BATCH_MAX..BATCH_MAX + 100).contains(&b.len())));
        assert!(!last.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_sends_what_is_held_after_batch_every() {
        let got = batches(async |tx| {
            tx.send(Input::Frame(frame(1))).await.unwrap();
            tokio::time::sleep(BATCH_EVERY / 2).await;
            tx.send(Input::Frame(frame(2))).await.unwrap();
            // Long enough for the timer: both went out together, before
            // the next frame.
            tokio::time::sleep(BATCH_EVERY * 2).await;
            tx.send(Input::Frame(frame(3))).await.unwrap();
        })
        .await;
        assert_eq!(got, vec![vec![1, 2], vec![3]]);
    }
}
