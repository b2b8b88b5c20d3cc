//! The two blocking threads of an IQ source: the sdr thread reads sample
//! buffers (paced like a radio when it stands for one), the demod thread
//! turns them into parsed frames for the track stage. Neither ever waits
//! on a live source's behalf: full queues drop and count.

use std::sync::atomic::Ordering;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::telemetry::Telemetry;
use super::track::Input;
use crate::decoder::{Decoded, IqDecoder, CHUNK_BYTES};
use crate::demod::Rate;
use crate::source::{IqInput, Samples, SamplesError};

/// Sample buffers between the sdr and demod threads: 4 MiB, 0.87 s of
/// cu8 at 2.4 MS/s. A Pi Zero has one core, shared by the demodulator, the
/// TLS handshakes of the sink and journald; a stall longer than this queue
/// loses air time, so it holds enough to ride out one (librtlsdr's
/// asynchronous reader queues a similar 15 × 256 KiB by default).
/// The memory is only taken while the demodulator is behind: a
/// keeping-up demodulator cycles through the few [`SPARE_BUFFERS`].
const SAMPLE_BUFFERS: usize = 64;
/// Used buffers kept for the sdr thread to fill again; the rest of a
/// drained backlog is freed.
const SPARE_BUFFERS: usize = 6;
/// How often a waiting thread looks at the token.
const POLL: Duration = Duration::from_millis(100);

/// Once the source is told to stop, how long the demod stage waits for it
/// to hand over its last buffer. A source stuck in a read (a wedged dongle:
/// rtl-sdr-rs's synchronous read has no timeout) must not hold the drain
/// hostage, or a SIGTERM would end in systemd's SIGKILL and lose what is
/// queued in memory: what the source delivered is decoded and sent or
/// spooled, and the process exits without it.
const SOURCE_GRACE: Duration = Duration::from_secs(2);

/// Keeps a source to the sample rate: bytes are released no earlier than
/// they would come off the air.
struct Pacer {
    start: Instant,
    bytes_per_s: f64,
    bytes: u64,
}

impl Pacer {
    /// Counts `n` more bytes and sleeps until they are due (or cancelled).
    fn wait(&mut self, n: usize, token: &CancellationToken) {
        self.bytes += n as u64;
        let due = self.start + Duration::from_secs_f64(self.bytes as f64 / self.bytes_per_s);
        while !token.is_cancelled() {
            let now = Instant::now();
            if now >= due {
                break;
            }
            thread::sleep((due - now).min(POLL));
        }
    }
}

/// How the demod stage ended.
pub(super) struct DemodEnd {
    /// Bytes left over at the end that made no whole sample.
    pub rest: usize,
    /// The source was still inside a read [`SOURCE_GRACE`] after being
    /// told to stop; its thread is left to the process exit.
    pub source_stuck: bool,
}

/// The two threads, running.
pub(super) struct Radio {
    pub sdr: JoinHandle<Result<(), SamplesError>>,
    pub demod: JoinHandle<DemodEnd>,
}

/// Starts the sdr and demod threads on `input`; frames go to `tx`.
pub(super) fn start(
    input: IqInput,
    rate: Rate,
    fix_bits: u8,
    tx: mpsc::Sender<Input>,
    token: CancellationToken,
    tel: Arc<Telemetry>,
) -> std::io::Result<Radio> {
    let IqInput {
        samples,
        format,
        paced,
        live,
    } = input;
    let pacer = paced.then(|| Pacer {
        start: Instant::now(),
        bytes_per_s: f64::from(rate.hz()) * format.bytes_per_sample() as f64,
        bytes: 0,
    });
    let (sample_tx, sample_rx) = std_mpsc::sync_channel(SAMPLE_BUFFERS);
    let (recycle_tx, recycle_rx) = std_mpsc::sync_channel(SPARE_BUFFERS);
    let sdr = {
        let (token, tel) = (token.clone(), tel.clone());
        thread::Builder::new()
            .name("sdr".into())
            .spawn(move || source_stage(samples, pacer, live, sample_tx, recycle_rx, token, tel))?
    };
    let dec = IqDecoder::new(format, rate, fix_bits);
    let demod = thread::Builder::new()
        .name("demod".into())
        .spawn(move || demod_stage(sample_rx, recycle_tx, dec, tx, !live, token, tel))?;
    Ok(Radio { sdr, demod })
}

/// The sdr stage: reads buffers until cancelled, the end of the input or
/// the demodulator going away.
fn source_stage(
    mut src: Samples,
    mut pacer: Option<Pacer>,
    live: bool,
    tx: std_mpsc::SyncSender<Vec<u8>>,
    recycled: std_mpsc::Receiver<Vec<u8>>,
    token: CancellationToken,
    tel: Arc<Telemetry>,
) -> Result<(), SamplesError> {
    while !token.is_cancelled() {
        let mut buf = recycled
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK_BYTES));
        buf.resize(CHUNK_BYTES, 0);
        let n = src.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        buf.truncate(n);
        if let Some(p) = &mut pacer {
            p.wait(n, &token);
        }
        if live {
            match tx.try_send(buf) {
                Ok(()) => {}
                Err(std_mpsc::TrySendError::Full(_)) => {
                    tel.buffers_dropped.fetch_add(1, Ordering::Relaxed);
                }
                Err(std_mpsc::TrySendError::Disconnected(_)) => return Ok(()),
            }
        } else if tx.send(buf).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Hands the frames of one sample buffer to the track stage, together:
/// one wake-up of the async side per buffer, not one per frame. Waits for
/// room or (a live source) drops and counts. False once the track stage
/// is gone.
fn forward(
    out: &mut Vec<Decoded>,
    tx: &mpsc::Sender<Input>,
    wait_when_full: bool,
    tel: &Telemetry,
) -> bool {
    if out.is_empty() {
        return true;
    }
    for d in out.iter() {
        tel.frame(d.frame.df);
    }
    let frames = Input::Frames(std::mem::take(out));
    if wait_when_full {
        return tx.blocking_send(frames).is_ok();
    }
    match tx.try_send(frames) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(Input::Frames(lost))) => {
            tel.frames_dropped
                .fetch_add(lost.len() as u64, Ordering::Relaxed);
            true
        }
        Err(mpsc::error::TrySendError::Full(_)) => true,
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

/// The demod stage: samples in, parsed frames out to the track task.
fn demod_stage(
    rx: std_mpsc::Receiver<Vec<u8>>,
    recycle: std_mpsc::SyncSender<Vec<u8>>,
    mut dec: IqDecoder,
    tx: mpsc::Sender<Input>,
    wait_when_full: bool,
    token: CancellationToken,
    tel: Arc<Telemetry>,
) -> DemodEnd {
    let mut out = Vec::new();
    let mut give_up_at = None;
    let mut source_stuck = false;
    loop {
        let buf = match rx.recv_timeout(POLL) {
            Ok(buf) => buf,
            Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std_mpsc::RecvTimeoutError::Timeout) => {
                if token.is_cancelled() {
                    let at = *give_up_at.get_or_insert_with(|| Instant::now() + SOURCE_GRACE);
                    if Instant::now() >= at {
                        warn!(
                            grace_s = SOURCE_GRACE.as_secs(),
                            "the source did not stop (a wedged dongle or a stalled pipe?); \
                             finishing without it"
                        );
                        source_stuck = true;
                        break;
                    }
                }
                continue;
            }
        };
        tel.sample_buffers.fetch_add(1, Ordering::Relaxed);
        dec.push(&buf, &mut out);
        // The sdr thread allocates a new buffer when none comes back.
        let _ = recycle.try_send(buf);
        if !forward(&mut out, &tx, wait_when_full, &tel) {
            return DemodEnd {
                rest: 0,
                source_stuck: false,
            };
        }
    }
    let rest = dec.finish(&mut out);
    forward(&mut out, &tx, wait_when_full, &tel);
    DemodEnd { rest, source_stuck }
}
