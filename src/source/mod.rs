//! Sources: where `run` gets its input. An edge module: USB, sockets and
//! threads live here, never in the pure core.
//!
//! - [`rtlsdr`]: an RTL2832U dongle through `rtl-sdr-rs` (no librtlsdr).
//! - [`rtltcp`]: samples from an `rtl_tcp` server.
//! - [`beast`]: already-demodulated frames from a readsb / dump1090-fa
//!   Beast port (30005); they join the pipeline at frame acceptance.
//! - [`sbsin`]: finished SBS lines from a feeder's port 30003, forwarded.
//! - [`SourceSpec`]: how a source is named; [`Samples`]: the IQ sources
//!   (simulator, file, dongle, rtl_tcp) behind one blocking `read`.
//!
//! IQ sources are blocking readers called from the daemon's sdr thread,
//! which hands them its recycled buffers. Frame and line sources are tokio
//! tasks on sockets. All of them retry forever on the schedule of
//! [`RetryPolicy::SOURCES`]: a feeder restarting or a dongle unplugged is a
//! pause, never an exit; only shutdown stops them.

pub mod beast;
pub mod rtlsdr;
pub mod rtltcp;
mod samples;
pub mod sbsin;
mod spec;

pub use samples::{IqInput, Samples, SamplesError};
pub use spec::{ReplaySpeed, SourceSpec};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio_util::sync::CancellationToken;

use crate::retry::{Backoff, RepeatLog, RetryPolicy, STABLE};

/// The source's counters, kept together and logged on the stats line.
#[derive(Debug, Default)]
pub struct SourceTelemetry {
    /// Successful connections (or dongle opens).
    pub connects: AtomicU64,
    /// Failed attempts and lost connections.
    pub failures: AtomicU64,
    /// Bytes skipped while resynchronising on garbage (Beast).
    pub garbage_bytes: AtomicU64,
    /// Frames or lines that did not parse, or were refused (bad CRC).
    pub rejects: AtomicU64,
    /// Frames or lines taken from the source.
    pub accepted: AtomicU64,
    /// An IQ source (dongle, rtl_tcp) is pausing between attempts to open
    /// or reconnect: no samples, and none missed through a fault of ours.
    /// The watchdog counts this as alive, since a restart would only do
    /// what the source is already doing.
    pub waiting: AtomicBool,
}

/// A copy of [`SourceTelemetry`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Connections made (network sources) or devices opened.
    pub connects: u64,
    /// Connection or open attempts that failed.
    pub failures: u64,
    /// Bytes skipped because they did not form a message.
    pub garbage_bytes: u64,
    /// Messages rejected (bad CRC, bad length, unparsable).
    pub rejects: u64,
    /// Messages accepted and passed on.
    pub accepted: u64,
}

impl SourceTelemetry {
    /// Reads every counter once.
    pub fn snapshot(&self) -> SourceStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SourceStats {
            connects: get(&self.connects),
            failures: get(&self.failures),
            garbage_bytes: get(&self.garbage_bytes),
            rejects: get(&self.rejects),
            accepted: get(&self.accepted),
        }
    }

    pub(crate) fn add(a: &AtomicU64, n: u64) {
        a.fetch_add(n, Ordering::Relaxed);
    }

    /// Whether the IQ source is waiting to reconnect (see `waiting`).
    pub fn is_waiting(&self) -> bool {
        self.waiting.load(Ordering::Relaxed)
    }

    pub(crate) fn set_waiting(&self, waiting: bool) {
        self.waiting.store(waiting, Ordering::Relaxed);
    }
}

/// A reconnecting source's retry state, the same for every network source:
/// the backoff, and the logs of failed connects and of lost connections.
/// The connection's start is kept too: only the loss of one that lasted
/// [`STABLE`] starts the backoff and the logs over, so a peer that accepts
/// and hangs up at once is retried ever more slowly and logged once.
pub(crate) struct Reconnects {
    /// The pauses between attempts.
    pub retry: Backoff,
    failures: RepeatLog,
    losses: RepeatLog,
    connected_at: std::time::Instant,
}

impl Reconnects {
    pub(crate) fn new() -> Self {
        Reconnects {
            retry: RetryPolicy::SOURCES.backoff(),
            failures: RepeatLog::default(),
            losses: RepeatLog::default(),
            connected_at: std::time::Instant::now(),
        }
    }

    /// An attempt failed: `Some(n)` when it is time to log, with the count.
    pub(crate) fn failed(&mut self) -> Option<u64> {
        self.failures.hit()
    }

    /// A connection was made.
    pub(crate) fn connected(&mut self) {
        self.connected_at = std::time::Instant::now();
    }

    /// The connection was lost: whether it had lasted [`STABLE`] (then
    /// the backoff and the logs start over), and `Some(n)` when it is time
    /// to log, with the count.
    pub(crate) fn lost(&mut self) -> (bool, Option<u64>) {
        let stable = self.connected_at.elapsed() >= STABLE;
        if stable {
            self.retry.reset();
            self.failures = RepeatLog::default();
            self.losses = RepeatLog::default();
        }
        (stable, self.losses.hit())
    }
}

/// Connects a network input (`source` names it in logs) to `addr`,
/// retrying with `retry`'s pauses and counting in `tel`; a failure is
/// logged with `hint`, what the user should check. `None` once `token` is
/// cancelled.
pub(crate) async fn connect(
    source: &'static str,
    addr: &str,
    hint: &str,
    state: &mut Reconnects,
    token: &CancellationToken,
    tel: &SourceTelemetry,
) -> Option<tokio::net::TcpStream> {
    loop {
        let stream = tokio::select! {
            _ = token.cancelled() => return None,
            r = tokio::net::TcpStream::connect(addr) => r,
        };
        match stream {
            Ok(s) => {
                SourceTelemetry::add(&tel.connects, 1);
                tracing::info!(source, addr = %addr, "connected");
                return Some(s);
            }
            Err(e) => {
                SourceTelemetry::add(&tel.failures, 1);
                if let Some(n) = state.failed() {
                    tracing::warn!(source, addr = %addr, error = %e, failures = n,
                        "{hint}; retrying with backoff (repeats logged once a minute)");
                }
                if !state.retry.sleep(token).await {
                    return None;
                }
            }
        }
    }
}

/// How a TCP feed is named in its log lines.
#[derive(Clone, Copy)]
pub struct FeedNames {
    /// The `source` field: `beast`, `sbs`.
    pub source: &'static str,
    /// Starts the connection-lost message: `Beast`, `SBS`.
    pub label: &'static str,
    /// What to check when it cannot connect.
    pub hint: &'static str,
}

/// A TCP feed (Beast or SBS) read until `token` is cancelled: connects
/// through [`connect`], hands every read to `take`, which appends what it
/// accepted to its `Vec`, and sends those to `tx`, waiting when it is full:
/// TCP then pushes back to the feeder, which drops slow clients itself.
/// `take`'s `bool` argument is true for a connection's first bytes, when a
/// partial message left by the last connection must be dropped, not joined
/// to them; `take` returns `false` to stop.
/// A lost connection is counted and logged as `"{label} connection lost"`
/// (a streak of them once a minute, with the count), and the next attempt
/// waits for the backoff, which starts over only after a connection that
/// lasted [`STABLE`]: a feeder that accepts, sends a few bytes and closes
/// is retried ever more slowly.
pub async fn read_feed<T>(
    names: &FeedNames,
    addr: &str,
    token: &CancellationToken,
    tel: &SourceTelemetry,
    tx: &tokio::sync::mpsc::Sender<T>,
    mut take: impl FnMut(&[u8], bool, &mut Vec<T>) -> bool,
) {
    use tokio::io::AsyncReadExt;

    let FeedNames {
        source,
        label,
        hint,
    } = *names;
    let mut state = Reconnects::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut batch = Vec::new();
    while !token.is_cancelled() {
        let Some(mut stream) = connect(source, addr, hint, &mut state, token, tel).await else {
            return;
        };
        state.connected();
        let mut got_data = false;
        let why = loop {
            let n = tokio::select! {
                _ = token.cancelled() => return,
                r = stream.read(&mut buf) => r,
            };
            match n {
                Ok(0) => break "closed by the feeder".to_owned(),
                Ok(n) => {
                    let first = !got_data;
                    got_data = true;
                    if !take(&buf[..n], first, &mut batch) {
                        return;
                    }
                    for t in batch.drain(..) {
                        if tx.send(t).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => break e.to_string(),
            }
        };
        SourceTelemetry::add(&tel.failures, 1);
        if let (_, Some(n)) = state.lost() {
            tracing::warn!(source, addr = %addr, reason = %why, losses = n,
                "{label} connection lost; reconnecting with backoff (repeats logged once a minute)");
        }
        if !state.retry.sleep(token).await {
            return;
        }
    }
}

/// `HOST:PORT` of a network source, checked for shape only (names are
/// resolved at each connection, so DNS trouble at boot is a retry).
pub fn parse_host_port(s: &str) -> Result<String, String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not HOST:PORT"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!("{s:?} is not HOST:PORT"));
    }
    Ok(s.to_owned())
}

/// 1090 MHz, the Mode S downlink (Annex 10 Vol IV §3.1.2.1.4).
pub const MODE_S_HZ: u32 = 1_090_000_000;

/// Tuner gain: the dongle's AGC, or a fixed gain in dB (the nearest gain
/// the tuner supports is used).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Gain {
    /// The tuner's automatic gain control.
    #[default]
    Auto,
    /// A fixed gain in dB.
    Db(f64),
}

impl Gain {
    /// Tenths of a dB, the unit of librtlsdr, rtl-sdr-rs and rtl_tcp.
    pub fn tenths(self) -> Option<i32> {
        match self {
            Gain::Auto => None,
            Gain::Db(db) => Some((db * 10.0).round() as i32),
        }
    }
}

impl std::str::FromStr for Gain {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("auto") {
            return Ok(Gain::Auto);
        }
        match t.trim_end_matches("dB").trim().parse::<f64>() {
            Ok(db) if db.is_finite() && (-10.0..=70.0).contains(&db) => Ok(Gain::Db(db)),
            _ => Err(format!(
                "{s:?} is not a gain: auto, or dB within -10 and 70"
            )),
        }
    }
}

impl std::fmt::Display for Gain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Gain::Auto => f.write_str("auto"),
            Gain::Db(db) => write!(f, "{db}"),
        }
    }
}

/// The nearest of `supported` (tenths of dB) to `want`.
pub fn nearest_gain(supported: &[i32], want: i32) -> Option<i32> {
    supported.iter().copied().min_by_key(|g| (g - want).abs())
}

/// How an IQ source's tuner is set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tuning {
    /// Centre frequency, Hz.
    pub freq_hz: u32,
    /// Sample rate, samples per second.
    pub sample_rate: u32,
    /// Tuner gain.
    pub gain: Gain,
    /// Crystal correction, parts per million.
    pub ppm: i32,
    /// Power the antenna through the coax (bias tee), on dongles that have one.
    pub bias_tee: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_shapes() {
        assert!(parse_host_port("127.0.0.1:30005").is_ok());
        assert!(parse_host_port("feeder.local:30003").is_ok());
        assert!(parse_host_port("[::1]:1234").is_ok());
        for bad in [
            "",
            "host",
            ":30005",
            "host:",
            "host:0",
            "host:70000",
            "host:x",
        ] {
            assert!(parse_host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn gains() {
        assert_eq!("auto".parse::<Gain>(), Ok(Gain::Auto));
        assert_eq!("49.6".parse::<Gain>().map(Gain::tenths), Ok(Some(496)));
        assert!("loud".parse::<Gain>().is_err());
        assert!("100".parse::<Gain>().is_err());
        let r820t = [
            0, 9, 14, 27, 37, 77, 87, 125, 144, 157, 166, 197, 207, 229, 254, 280, 297, 328, 338,
            364, 372, 386, 402, 421, 434, 439, 445, 480, 496,
        ];
        assert_eq!(nearest_gain(&r820t, 500), Some(496));
        assert_eq!(nearest_gain(&r820t, 400), Some(402));
        assert_eq!(nearest_gain(&r820t, -50), Some(0));
        assert_eq!(nearest_gain(&[], 100), None);
    }
}
