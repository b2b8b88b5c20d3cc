//! Talking to systemd as a `Type=notify` service: readiness, the watchdog
//! and a status line, written by hand (no crate, no libsystemd). An edge
//! module: a Unix datagram socket and a tokio task.
//!
//! The protocol is sd_notify(3): each message is one datagram of
//! newline-separated `VARIABLE=value` assignments sent to the socket named
//! by `$NOTIFY_SOCKET`, either a file system path or, when it starts with
//! `@`, a name in Linux's abstract socket namespace. The watchdog contract is
//! sd_watchdog_enabled(3): `$WATCHDOG_USEC` is the timeout, meant for us
//! only if `$WATCHDOG_PID` is unset or our pid, and a `WATCHDOG=1` must come
//! at least every half of it.
//!
//! # What "healthy" means
//!
//! `WATCHDOG=1` is sent only while the pipeline is healthy, so that systemd
//! restarts a receiver that is alive but useless. Healthy is both of:
//!
//! - **samples flow**: the demodulator took a sample buffer within the last
//!   [`SAMPLE_STALL`]. A radio delivers about 18 buffers a second, a quiet
//!   sky included, so silence means a dead dongle, source or demodulator.
//!   A network input (Beast, SBS) counts as flowing while its task runs,
//!   connected or reconnecting: it is quiet when the sky is, and a restart
//!   would not bring the feeder at the other end back. An IQ source
//!   (dongle, rtl_tcp) counts as flowing while it pauses between attempts
//!   to open or reconnect, for the same reason; a dongle that is open but
//!   delivers nothing is the case a restart is for.
//! - **the sink is not wedged**: every SBS line the track stage made has
//!   been taken by the sink, or the sink took one within the last
//!   [`SINK_STALL`]. A sink that stops taking lines while lines wait for it
//!   (stdout nobody reads, a spool on a stuck disk) is wedged. A sink that
//!   cannot reach Kinesis is *not*: it spools, and a restart would not help.
//!
//! With no aircraft in range there are no lines, and that is healthy.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// No sample buffer for this long: unhealthy.
pub const SAMPLE_STALL: Duration = Duration::from_secs(5);
/// Lines waiting and none taken by the sink for this long: unhealthy.
pub const SINK_STALL: Duration = Duration::from_secs(10);
/// `STATUS=` is refreshed at least this often (more often with a short
/// watchdog, whose half sets the pace).
pub const STATUS_EVERY: Duration = Duration::from_secs(5);
/// How often readiness is looked for before the first samples.
const READY_POLL: Duration = Duration::from_millis(50);

/// A connection to the service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// The socket `$NOTIFY_SOCKET` names, if it is set (not under systemd,
    /// or not `Type=notify`: `None`).
    pub fn from_env() -> io::Result<Option<Notifier>> {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(v) if !v.is_empty() => Notifier::new(&v).map(Some),
            _ => Ok(None),
        }
    }

    /// `target` as `$NOTIFY_SOCKET` spells it: `/path` or `@abstract`.
    pub fn new(target: &OsStr) -> io::Result<Notifier> {
        let bytes = target.as_bytes();
        let addr = match bytes.split_first() {
            Some((b'@', name)) => abstract_addr(name)?,
            Some((b'/', _)) => SocketAddr::from_pathname(target)?,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "NOTIFY_SOCKET={:?} is neither a path nor @abstract",
                        target.to_string_lossy()
                    ),
                ))
            }
        };
        Ok(Notifier {
            sock: UnixDatagram::unbound()?,
            addr,
        })
    }

    /// Sends one message (`"READY=1"`, `"STATUS=...\nWATCHDOG=1"`).
    /// Never blocks for long: the datagram goes to a local socket.
    pub fn send(&self, message: &str) -> io::Result<()> {
        self.sock.send_to_addr(message.as_bytes(), &self.addr)?;
        Ok(())
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_addr(name: &[u8]) -> io::Result<SocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_addr(_: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract sockets are Linux only",
    ))
}

/// The watchdog timeout meant for process `pid`: `$WATCHDOG_USEC` when
/// `$WATCHDOG_PID` is unset or equals `pid` (sd_watchdog_enabled(3)).
pub fn watchdog_timeout(env: impl Fn(&str) -> Option<String>, pid: u32) -> Option<Duration> {
    if let Some(p) = env("WATCHDOG_PID") {
        if p.trim().parse::<u32>().ok() != Some(pid) {
            return None;
        }
    }
    let usec: u64 = env("WATCHDOG_USEC")?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// The pipeline's counters at one moment, as the watch task reads them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reading {
    /// Sample buffers the demodulator has taken.
    pub sample_buffers: u64,
    /// The IQ source is pausing before it reconnects (or opens the dongle
    /// again): no samples, and nothing a restart would mend.
    pub source_waiting: bool,
    /// Mode S frames decoded.
    pub frames: u64,
    /// SBS lines the track stage handed to the sink.
    pub lines_made: u64,
    /// SBS lines the sink has taken (written, or batched for Kinesis).
    pub lines_taken: u64,
    /// Aircraft being tracked.
    pub aircraft: u64,
    /// Records waiting in the Kinesis spool, and their bytes.
    pub spool_records: u64,
    /// Bytes of those spooled records.
    pub spool_bytes: u64,
    /// Whether the sink is Kinesis (the spool means something).
    pub kinesis: bool,
}

/// Why the pipeline is not healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unhealthy {
    /// The source delivered no sample buffer for `for_s` seconds.
    NoSamples {
        /// Seconds since the last buffer.
        for_s: u64,
    },
    /// `waiting` lines are queued but the sink took none for `for_s` seconds.
    SinkStalled {
        /// Lines made but not taken.
        waiting: u64,
        /// Seconds since the sink last took one.
        for_s: u64,
    },
}

impl std::fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unhealthy::NoSamples { for_s } => write!(f, "no samples for {for_s} s"),
            Unhealthy::SinkStalled { waiting, for_s } => write!(
                f,
                "sink stalled: {waiting} lines waiting, none taken for {for_s} s"
            ),
        }
    }
}

/// The health rule of the module doc, fed one [`Reading`] at a time.
#[derive(Debug, Clone)]
pub struct Health {
    samples: u64,
    samples_moved: Instant,
    taken: u64,
    taken_moved: Instant,
}

impl Health {
    /// Starts tracking from the reading `r` taken at `now`.
    pub fn new(now: Instant, r: &Reading) -> Health {
        Health {
            samples: r.sample_buffers,
            samples_moved: now,
            taken: r.lines_taken,
            taken_moved: now,
        }
    }

    /// Takes in `r`, read at `now`; `Ok` if the pipeline is healthy.
    pub fn check(&mut self, now: Instant, r: &Reading) -> Result<(), Unhealthy> {
        if r.sample_buffers != self.samples || r.source_waiting {
            self.samples = r.sample_buffers;
            self.samples_moved = now;
        }
        if r.lines_taken != self.taken {
            self.taken = r.lines_taken;
            self.taken_moved = now;
        }
        let quiet = now.saturating_duration_since(self.samples_moved);
        if quiet >= SAMPLE_STALL {
            return Err(Unhealthy::NoSamples {
                for_s: quiet.as_secs(),
            });
        }
        let waiting = r.lines_made.saturating_sub(r.lines_taken);
        let stuck = now.saturating_duration_since(self.taken_moved);
        if waiting > 0 && stuck >= SINK_STALL {
            return Err(Unhealthy::SinkStalled {
                waiting,
                for_s: stuck.as_secs(),
            });
        }
        Ok(())
    }
}

/// The `STATUS=` text: rates over `secs` between two readings.
pub fn status_line(prev: &Reading, now: &Reading, secs: f64) -> String {
    let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs.max(1e-3);
    let mut s = format!(
        "{:.1} frames/s, {:.1} lines/s, {} aircraft",
        rate(now.frames, prev.frames),
        rate(now.lines_taken, prev.lines_taken),
        now.aircraft
    );
    if now.kinesis {
        s += &format!(
            ", spool {} records ({} KiB)",
            now.spool_records,
            now.spool_bytes.div_ceil(1024)
        );
    }
    s
}

/// Talks to systemd for the life of the pipeline: `READY=1` after the
/// first samples, or once the source waits to reconnect and has said why
/// in the log (the sink is configured before this task starts),
/// `STATUS=` every [`STATUS_EVERY`] (or half the watchdog timeout, if
/// shorter), `WATCHDOG=1` with each status while [`Health`] says so, and
/// `STOPPING=1` when `stop` is cancelled, which is also when it returns.
pub async fn watch(
    notifier: Notifier,
    watchdog: Option<Duration>,
    source: String,
    read: impl Fn() -> Reading,
    stop: CancellationToken,
) {
    let send = |m: &str| {
        if let Err(e) = notifier.send(m) {
            // Logged at most once per message kind would be nicer; the
            // socket is local and this does not happen in practice.
            warn!("sd_notify: cannot send {m:?}: {e}");
        }
    };
    send(&format!("STATUS=waiting for samples from {source}"));
    let mut last = loop {
        let r = read();
        if r.sample_buffers > 0 || r.source_waiting {
            break r;
        }
        tokio::select! {
            () = stop.cancelled() => {
                send("STOPPING=1\nSTATUS=stopping");
                return;
            }
            () = tokio::time::sleep(READY_POLL) => {}
        }
    };
    let every = watchdog.map_or(STATUS_EVERY, |w| (w / 2).min(STATUS_EVERY));
    let mut last_at = Instant::now();
    let mut health = Health::new(last_at, &last);
    let (doing, news) = if last.sample_buffers > 0 {
        ("receiving from", "ready: samples are flowing")
    } else {
        (
            "waiting for",
            "ready: the source is not there yet; it is retried with backoff",
        )
    };
    let ping = if watchdog.is_some() {
        "\nWATCHDOG=1"
    } else {
        ""
    };
    send(&format!("READY=1\nSTATUS={doing} {source}{ping}"));
    info!(
        source = %source,
        watchdog_ms = watchdog.map(|w| w.as_millis() as u64),
        "{news}"
    );
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut was_healthy = true;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now_at = Instant::now();
        let now = read();
        let status = status_line(&last, &now, now_at.duration_since(last_at).as_secs_f64());
        match health.check(now_at, &now) {
            Ok(()) => {
                if !was_healthy {
                    info!("healthy again: watchdog pings resume");
                }
                was_healthy = true;
                let waiting = if now.source_waiting {
                    format!("waiting for {source} to come back; ")
                } else {
                    String::new()
                };
                send(&format!("STATUS={waiting}{status}{ping}"));
            }
            Err(why) => {
                if was_healthy {
                    warn!(reason = %why, "unhealthy: watchdog pings stop until it recovers");
                }
                was_healthy = false;
                send(&format!("STATUS=unhealthy ({why}); {status}"));
            }
        }
        (last, last_at) = (now, now_at);
    }
    send("STOPPING=1\nSTATUS=stopping: draining the pipeline");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env;

    #[test]
    fn watchdog_is_ours_only_for_our_pid() {
        let d = Some(Duration::from_secs(30));
        assert_eq!(
            watchdog_timeout(env(&[("WATCHDOG_USEC", "30000000")]), 7),
            d
        );
        assert_eq!(
            watchdog_timeout(
                env(&[("WATCHDOG_USEC", "30000000"), ("WATCHDOG_PID", "7")]),
                7
            ),
            d
        );
        assert_eq!(
            watchdog_timeout(
                env(&[("WATCHDOG_USEC", "30000000"), ("WATCHDOG_PID", "8")]),
                7
            ),
            None
        );
        assert_eq!(watchdog_timeout(env(&[("WATCHDOG_USEC", "0")]), 7), None);
        assert_eq!(watchdog_timeout(env(&[("WATCHDOG_USEC", "x")]), 7), None);
        assert_eq!(watchdog_timeout(env(&[]), 7), None);
    }

    #[test]
    fn datagrams_reach_path_and_abstract_sockets() {
        let dir = std::env::temp_dir().join(format!("adsbk-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::new(path.as_os_str()).unwrap();
        n.send("READY=1\nSTATUS=x").unwrap();
        let mut buf = [0u8; 64];
        let k = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"READY=1\nSTATUS=x");
        std::fs::remove_dir_all(&dir).ok();

        let name = format!("adsbk-notify-test-{}", std::process::id());
        let addr = abstract_addr(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier::new(OsStr::new(&format!("@{name}"))).unwrap();
        n.send("WATCHDOG=1").unwrap();
        let k = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"WATCHDOG=1");

        assert!(Notifier::new(OsStr::new("relative/path")).is_err());
    }

    #[test]
    fn health_needs_samples_and_a_moving_sink() {
        let t0 = Instant::now();
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        let mut r = Reading {
            sample_buffers: 1,
            ..Reading::default()
        };
        let mut h = Health::new(t0, &r);
        // Samples flowing, no aircraft at all: healthy.
        for i in 1..20 {
            r.sample_buffers += 18;
            assert_eq!(h.check(s(i), &r), Ok(()));
        }
        // Samples stop.
        assert_eq!(h.check(s(23), &r), Ok(()));
        assert_eq!(h.check(s(24), &r), Err(Unhealthy::NoSamples { for_s: 5 }));
        r.sample_buffers += 1;
        assert_eq!(h.check(s(25), &r), Ok(()));
        // Lines wait, the sink takes none: wedged after SINK_STALL of
        // no progress, healthy again as soon as it takes one.
        r.lines_made = 100;
        r.lines_taken = 40;
        assert_eq!(h.check(s(26), &r), Ok(()));
        for i in 27..36 {
            r.sample_buffers += 18;
            assert_eq!(h.check(s(i), &r), Ok(()), "t={i}");
        }
        r.sample_buffers += 18;
        assert_eq!(
            h.check(s(36), &r),
            Err(Unhealthy::SinkStalled {
                waiting: 60,
                for_s: 10
            })
        );
        r.lines_taken = 41;
        r.sample_buffers += 18;
        assert_eq!(h.check(s(37), &r), Ok(()));
        // Nothing waiting and nothing taken for long: healthy.
        r.lines_taken = 100;
        for i in 38..60 {
            r.sample_buffers += 18;
            assert_eq!(h.check(s(i), &r), Ok(()));
        }
        // The source pauses to reconnect: no samples, still healthy, and
        // the stall is timed from when it stops waiting.
        r.source_waiting = true;
        for i in 60..90 {
            assert_eq!(h.check(s(i), &r), Ok(()), "t={i}");
        }
        r.source_waiting = false;
        assert_eq!(h.check(s(93), &r), Ok(()));
        assert_eq!(h.check(s(94), &r), Err(Unhealthy::NoSamples { for_s: 5 }));
    }

    #[test]
    fn status_has_the_rates() {
        let a = Reading {
            frames: 100,
            lines_taken: 50,
            ..Reading::default()
        };
        let b = Reading {
            frames: 300,
            lines_taken: 150,
            aircraft: 7,
            spool_records: 3,
            spool_bytes: 2048,
            kinesis: true,
            ..Reading::default()
        };
        assert_eq!(
            status_line(&a, &b, 2.0),
            "100.0 frames/s, 50.0 lines/s, 7 aircraft, spool 3 records (2 KiB)"
        );
        let b = Reading {
            kinesis: false,
            ..b
        };
        assert_eq!(
            status_line(&a, &b, 4.0),
            "50.0 frames/s, 25.0 lines/s, 7 aircraft"
        );
    }
}
