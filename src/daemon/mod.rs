//! The `run` daemon: the pipeline's wiring, shutdown and the final
//! summary. An edge module: it owns the threads, the tokio tasks and the
//! outputs; configuration comes in whole ([`RunConfig`]), already merged
//! and validated by [`crate::config`].
//!
//! ```text
//! radio::  sdr thread ──sync_channel(64)─▶ demod thread ─┐  try_send: full → drop, count
//!          (sim, file, dongle, rtl_tcp)   (IqDecoder)    │
//! source:: beast / sbs task (socket) ────────────────────┤
//!                                                        ▼
//! track::  track task (Tracker, SbsLine) ──Outputs──▶ sink: stdout, or Kinesis (output::kinesis)
//!                                                 ├─▶ --sbs-listen, --raw-listen, --beast-listen
//!                                                 │   (output::server: TCP clients)
//!                                                 └─▶ --beast-connect (output::server: one peer)
//! ```
//!
//! The radio is never slowed down: a paced source (the simulator, a file
//! replayed in real time, a dongle) hands buffers on with `try_send` and
//! counts what the demodulator could not take, and the demodulator drops
//! (and counts) frames when the track task is behind. A file replayed at
//! full speed is not a radio, so there both stages wait instead and
//! nothing is lost. The outputs after the track task never wait on a peer
//! (see [`crate::output`]).
//!
//! Shutdown is injected ([`run`] takes a future, as mini-redis does): it
//! cancels the one [`CancellationToken`] of the run, the source returns,
//! and dropping each stage's sender closes the next one, so every stage
//! drains what it holds and the outputs flush last. The end of the input
//! does the same. The Kinesis sink then keeps sending for
//! `shutdown_timeout` and spools what is left; the next start sends the
//! spool first. The helper tasks (stats, sd_notify, liveness) run in one
//! [`TaskTracker`] and end with the token.
//!
//! With `--stream`, region, credentials and the stream are checked before
//! any thread starts, so a misconfiguration is one error line and exit 1.

mod radio;
mod telemetry;
mod track;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::{ConfigError, RunConfig};
use crate::output::kinesis::{KinesisError, KinesisSink};
use crate::output::{self, raw, sbs_server, server, stdout, OutputTelemetry, Outputs, Port};
use crate::sbs::unix_ms_now;
use crate::source::{self, beast, sbsin, Samples, SamplesError, SourceSpec};
use crate::track::Tracker;
pub use telemetry::RunStats;
pub use track::Input;

/// Inputs queued between the sources and the track task. One input is a
/// frame or a line from a network source, or every frame of one sample
/// buffer from the radio (about 14 ms of signal, rarely more than a few
/// hundred frames): 3.5 s of radio before the demodulator drops.
const FRAME_QUEUE: usize = 256;

/// Why a run stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The configuration cannot run.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The IQ source cannot be opened or read.
    #[error(transparent)]
    Samples(#[from] SamplesError),
    /// Writing to stdout failed.
    #[error("writing output: {0}")]
    Write(io::Error),
    /// A thread could not be started.
    #[error("cannot start a pipeline thread: {0}")]
    Spawn(io::Error),
    /// A `--*-listen` output cannot bind.
    #[error("{option}: cannot listen on {addr}: {error}")]
    Listen {
        /// The option, `sbs-listen`.
        option: &'static str,
        /// The address.
        addr: String,
        /// Why.
        error: io::Error,
    },
    /// `--json-dir` cannot be created.
    #[error("json_dir: cannot create {}: {error}", dir.display())]
    JsonDir {
        /// The directory.
        dir: std::path::PathBuf,
        /// Why.
        error: io::Error,
    },
    /// A stage panicked.
    #[error("the {0} stage panicked")]
    Panicked(&'static str),
    /// The Kinesis sink cannot start, or failed.
    #[error(transparent)]
    Kinesis(#[from] KinesisError),
}

/// Runs the pipeline until the input ends or `shutdown` completes, then
/// drains and flushes every stage. SBS lines go to stdout, or to Kinesis
/// when the config names a stream.
pub async fn run(
    config: RunConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<RunStats, RunError> {
    run_to(config, tokio::io::stdout(), shutdown).await
}

/// [`run`] writing the lines to `out` (unused with a Kinesis stream).
pub async fn run_to<W: AsyncWrite + Unpin + Send + 'static>(
    config: RunConfig,
    out: W,
    shutdown: impl Future<Output = ()>,
) -> Result<RunStats, RunError> {
    config.validate()?;
    let rate = config.source.sample_rate;
    let hz = f64::from(rate.hz());
    let fix = config.receiver.fix;
    let token = CancellationToken::new();
    let tasks = TaskTracker::new();
    let source_tel = Arc::new(source::SourceTelemetry::default());
    let out_tel = Arc::new(OutputTelemetry::default());

    // Everything that can fail on a bad setting, before any thread starts.
    let iq = Samples::open(&config, &token, &source_tel)?;
    let receiver = match config.source.source {
        SourceSpec::Sim => Some(config.sim_config().receiver),
        _ => config.receiver_position(),
    };
    // The network outputs: one line each.
    let o = &config.outputs;
    let mut servers: Vec<(Port, ServerTask)> = Vec::new();
    for (proto, addr) in [
        (&sbs_server::SBS, &o.sbs_listen),
        (&raw::RAW, &o.raw_listen),
        (&output::beast::BEAST_LISTEN, &o.beast_listen),
    ] {
        if let Some(addr) = addr {
            let (port, task) = server::listen(proto, addr, out_tel.net.clone())
                .await
                .map_err(|error| RunError::Listen {
                    option: proto.name,
                    addr: addr.clone(),
                    error,
                })?;
            servers.push((port, Box::pin(task)));
        }
    }
    if let Some(addr) = &o.beast_connect {
        let (port, task) = server::connect(
            &output::beast::BEAST_CONNECT,
            addr.clone(),
            token.clone(),
            out_tel.net.clone(),
        );
        servers.push((port, Box::pin(task)));
    }
    // The aircraft table, when the map or the JSON files want it.
    if o.http_listen.is_some() || o.json_dir.is_some() {
        let (port, snapshots, task) = output::json::start(receiver);
        servers.push((port, Box::pin(task)));
        if let Some(addr) = &o.http_listen {
            let http =
                output::http::start(addr, snapshots.clone(), token.clone(), out_tel.http.clone())
                    .await
                    .map_err(|error| RunError::Listen {
                        option: "http-listen",
                        addr: addr.clone(),
                        error,
                    })?;
            tasks.spawn(http);
        }
        if let Some(dir) = &o.json_dir {
            std::fs::create_dir_all(dir).map_err(|error| RunError::JsonDir {
                dir: dir.clone(),
                error,
            })?;
            tasks.spawn(output::json::write_dir(
                dir.clone(),
                snapshots,
                token.clone(),
            ));
        }
    }
    let kinesis = match config.kinesis.stream_id() {
        Some(stream) => Some(KinesisSink::open(&config, stream).await?),
        None => None,
    };
    info!(
        source = %config.source.source,
        sample_rate = rate.hz(),
        paced = iq.as_ref().is_some_and(|i| i.paced),
        "starting"
    );

    let tel = Arc::new(telemetry::Telemetry {
        sender: kinesis.as_ref().map(|k| k.telemetry()),
        source: source_tel.clone(),
        outputs: out_tel.clone(),
        ..Default::default()
    });

    // The outputs: the sink first (the run ends with it), then the rest.
    let mut ports = Vec::new();
    let sink = match kinesis {
        None => {
            let (port, task) = stdout::start(out, out_tel.clone());
            ports.push(port);
            tokio::spawn(async move { task.await.map_err(RunError::Write) })
        }
        Some(k) => {
            let (port, task) = k.start(token.clone());
            ports.push(port);
            tokio::spawn(async move { task.await.map_err(RunError::from) })
        }
    };
    let servers: Vec<_> = servers
        .into_iter()
        .map(|(port, task)| {
            ports.push(port);
            tokio::spawn(task)
        })
        .collect();

    // The source: two threads for IQ, a task on the socket otherwise.
    let (frame_tx, frame_rx) = mpsc::channel(FRAME_QUEUE);
    let mut radio = None;
    let mut net_source = None;
    match (iq, &config.source.source) {
        (Some(input), _) => {
            radio = Some(
                radio::start(input, rate, fix, frame_tx, token.clone(), tel.clone())
                    .map_err(RunError::Spawn)?,
            );
        }
        (None, SourceSpec::Beast(addr)) => {
            let tel = tel.clone();
            net_source = Some(tokio::spawn(beast::run(
                addr.clone(),
                rate.hz(),
                fix,
                token.clone(),
                source_tel.clone(),
                frame_tx,
                move |d| {
                    tel.frame(d.frame.df);
                    Some(Input::Frame(d))
                },
            )));
        }
        (None, SourceSpec::Sbs(addr)) => {
            net_source = Some(tokio::spawn(sbsin::run(
                addr.clone(),
                token.clone(),
                source_tel.clone(),
                frame_tx,
                Input::Line,
            )));
        }
        (None, _) => unreachable!("every IQ source has samples"),
    }
    if let Some(net) = &net_source {
        // A network input is healthy for sd_notify while its task runs,
        // connected or reconnecting with backoff: a quiet sky sends
        // nothing, and a restart would not bring a feeder back. Its
        // liveness stands in for the radio's sample buffers.
        let (tel, alive, stop) = (tel.clone(), net.abort_handle(), token.clone());
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while !alive.is_finished() && !stop.is_cancelled() {
                tel.sample_buffers.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.cancelled() => {}
                }
            }
        });
    }
    let track = tokio::spawn(track::run(
        frame_rx,
        Outputs::new(ports, out_tel.clone()),
        Tracker::new(receiver),
        hz,
        unix_ms_now(),
        tel.clone(),
    ));
    tasks.spawn(telemetry::stats(
        tel.clone(),
        Duration::from_secs_f64(config.service.stats_interval),
        token.clone(),
    ));
    if let Some(notify) =
        telemetry::notify_task(config.source.source.to_string(), tel.clone(), token.clone())
    {
        tasks.spawn(notify);
    }
    tasks.close();

    let finished = async {
        let sink = sink.await;
        for s in servers {
            let _ = s.await;
        }
        (sink, track.await)
    };
    tokio::pin!(finished);
    tokio::pin!(shutdown);
    let (sink_result, track_result) = tokio::select! {
        r = &mut finished => r,
        () = &mut shutdown => {
            info!("shutting down: stopping the source, draining the pipeline");
            token.cancel();
            (&mut finished).await
        }
    };
    // The input has ended or shutdown drained it: the helpers stop too.
    token.cancel();
    tasks.wait().await;
    if let Some(net) = net_source {
        net.await.map_err(|_| RunError::Panicked("source"))?;
    }
    // The demod thread has dropped its sender by now, so it is returning;
    // the sdr thread too, unless the demod stage gave up on it.
    if let Some(r) = radio {
        let end = join(r.demod, "demod").await?;
        if !end.source_stuck {
            join(r.sdr, "sdr").await??;
        }
        if end.rest > 0 {
            warn!(
                bytes = end.rest,
                "input ends short of a whole sample (truncated file?)"
            );
        }
    }
    track_result.map_err(|_| RunError::Panicked("track"))?;
    sink_result.map_err(|_| RunError::Panicked("sink"))??;
    Ok(tel.log_end())
}

/// A network output's task, boxed: listeners and pushes are different futures.
type ServerTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Joins a pipeline thread without blocking the runtime.
async fn join<T: Send + 'static>(
    h: std::thread::JoinHandle<T>,
    name: &'static str,
) -> Result<T, RunError> {
    tokio::task::spawn_blocking(move || h.join())
        .await
        .map_err(|_| RunError::Panicked("join"))?
        .map_err(|_| RunError::Panicked(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sim_run_stops_on_shutdown_and_flushes() {
        let (w, mut r) = tokio::io::duplex(1 << 20);
        let stats = run_to(
            RunConfig::default(),
            w,
            tokio::time::sleep(Duration::from_millis(1500)),
        )
        .await
        .unwrap();
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut r, &mut text)
            .await
            .unwrap();
        assert!(stats.lines > 0);
        assert_eq!(text.matches("\r\n").count() as u64, stats.lines);
        assert!(text.lines().all(|l| l.starts_with("MSG,")));
    }
}
