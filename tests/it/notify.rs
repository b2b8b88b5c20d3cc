//! sd_notify, end to end: the real binary under a fake service manager, a
//! Unix datagram socket this test binds and names in `NOTIFY_SOCKET`, with
//! `WATCHDOG_USEC` set as systemd sets it for `WatchdogSec=`.
//!
//! The unhealthy cases are provoked for real: a FIFO source whose writer
//! stops (no samples), and a stdout nobody reads (a wedged sink).

use crate::common;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{bin, sigterm, wait_exit, TempDir};

/// Messages the fake service manager received, with their arrival times.
struct Manager {
    got: Arc<Mutex<Vec<(Instant, String)>>>,
    path: std::path::PathBuf,
    stop: Arc<AtomicBool>,
}

impl Manager {
    fn listen(dir: &TempDir) -> Manager {
        let path = dir.path("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (got, stop) = (got.clone(), stop.clone());
            thread::spawn(move || {
                let mut buf = vec![0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = sock.recv(&mut buf) {
                        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                        got.lock().unwrap().push((Instant::now(), m));
                    }
                }
            });
        }
        Manager { got, path, stop }
    }

    fn messages(&self) -> Vec<(Instant, String)> {
        self.got.lock().unwrap().clone()
    }

    /// Waits up to `limit` for a message with a line for which `pred` holds.
    fn wait_for(&self, what: &str, limit: Duration, pred: impl Fn(&str) -> bool) -> Instant {
        let t0 = Instant::now();
        loop {
            if let Some((t, _)) = self
                .messages()
                .into_iter()
                .find(|(_, m)| m.lines().any(&pred))
            {
                return t;
            }
            assert!(
                t0.elapsed() < limit,
                "no {what} within {limit:?}; got {:#?}",
                self.messages()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `limit` for the first ping after `after`.
    fn ping_after(&self, after: Instant, limit: Duration) -> Instant {
        let t0 = Instant::now();
        loop {
            if let Some(t) = self.pings().into_iter().find(|t| *t > after) {
                return t;
            }
            assert!(
                t0.elapsed() < limit,
                "no ping within {limit:?}; got {:#?}",
                self.messages()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Times of the WATCHDOG=1 pings.
    fn pings(&self) -> Vec<Instant> {
        self.messages()
            .into_iter()
            .filter(|(_, m)| m.lines().any(|l| l == "WATCHDOG=1"))
            .map(|(t, _)| t)
            .collect()
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn run_under_manager(m: &Manager, args: &[&str]) -> std::process::Command {
    let mut c = bin();
    c.arg("run")
        .args(args)
        .env("NOTIFY_SOCKET", &m.path)
        // 2 s: pings (and status) every second.
        .env("WATCHDOG_USEC", "2000000")
        .env_remove("WATCHDOG_PID")
        .env_remove("JOURNAL_STREAM")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// The longest gap between consecutive pings in `[from, to]`.
fn longest_gap(pings: &[Instant], from: Instant, to: Instant) -> Duration {
    let inside: Vec<Instant> = pings
        .iter()
        .copied()
        .filter(|t| *t >= from && *t <= to)
        .collect();
    let mut edges = vec![from];
    edges.extend(inside);
    edges.push(to);
    edges
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap()
}

/// Samples through a FIFO: READY once they flow, pings while they flow,
/// no pings (and an "unhealthy" status) while the writer pauses, pings
/// again when it resumes, STOPPING=1 at SIGTERM.
#[test]
fn ready_watchdog_status_and_stopping_follow_the_samples() {
    let dir = TempDir::new("notify-fifo");
    let m = Manager::listen(&dir);
    // Two seconds of a simulated sky, replayed in a loop by the writer.
    let iq = dir.path("sky.cu8");
    let out = bin()
        .args(["simulate", "--duration", "2", "--aircraft", "8", "-o"])
        .arg(&iq)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let sky = std::fs::read(&iq).unwrap();
    let fifo = dir.path("samples.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) on a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);

    let mut child = run_under_manager(&m, &["--source", &format!("file:{}", fifo.display())])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // The writer: 2.4 MS/s worth of bytes per second in 100 ms steps,
    // paused while `paused` is set; stops when the reader is gone.
    let paused = Arc::new(AtomicBool::new(false));
    let writer = {
        let (paused, fifo) = (paused.clone(), fifo.clone());
        thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            let step = 480_000;
            let mut at = 0;
            loop {
                if paused.load(Ordering::Relaxed) {
                    thread::sleep(Duration::from_millis(50));
                    continue;
                }
                let end = (at + step).min(sky.len());
                if f.write_all(&sky[at..end]).is_err() {
                    return;
                }
                at = if end == sky.len() { 0 } else { end };
                thread::sleep(Duration::from_millis(100));
            }
        })
    };

    let ready = m.wait_for("READY=1", Duration::from_secs(20), |l| l == "READY=1");
    let first = &m.messages()[0].1;
    assert!(
        first.starts_with("STATUS=waiting for samples"),
        "first message: {first:?}"
    );
    thread::sleep(Duration::from_millis(4500));
    let pause_at = Instant::now();
    paused.store(true, Ordering::Relaxed);
    let sick = m.wait_for("an unhealthy status", Duration::from_secs(12), |l| {
        l.starts_with("STATUS=unhealthy (no samples for ")
    });
    // Let the silence last a while past the verdict.
    thread::sleep(Duration::from_secs(4));
    let resume_at = Instant::now();
    paused.store(false, Ordering::Relaxed);
    let back = m.ping_after(resume_at, Duration::from_secs(10));
    thread::sleep(Duration::from_secs(2));
    sigterm(&child);
    let stopping = m.wait_for("STOPPING=1", Duration::from_secs(10), |l| l == "STOPPING=1");
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
    writer.join().unwrap();

    let pings = m.pings();
    // Healthy: a ping every WATCHDOG_USEC / 2 = 1 s; on a loaded machine
    // allow slack, but never as much as the 2 s after which systemd would
    // kill the service. And never a ping before READY=1.
    assert!(pings.iter().all(|t| *t >= ready), "a ping before READY=1");
    let healthy_gap = longest_gap(&pings, ready, pause_at);
    assert!(
        healthy_gap < Duration::from_millis(1900),
        "pings {healthy_gap:?} apart while healthy"
    );
    assert!(
        pings
            .iter()
            .filter(|t| **t > ready && **t < pause_at)
            .count()
            >= 3,
        "too few pings while healthy: {pings:?}"
    );
    // Unhealthy: no ping from the verdict until the samples came back.
    assert!(sick.duration_since(pause_at) >= Duration::from_secs(4));
    assert!(
        !pings.iter().any(|t| *t > sick && *t < resume_at),
        "pinged while unhealthy"
    );
    assert!(back > resume_at);
    assert!(
        !pings.iter().any(|t| *t > stopping),
        "pinged after STOPPING=1"
    );
    // STATUS= carries the rates, and the sky was decoded.
    let statuses: Vec<String> = m
        .messages()
        .into_iter()
        .flat_map(|(_, msg)| msg.lines().map(str::to_owned).collect::<Vec<_>>())
        .filter(|l| l.starts_with("STATUS=") && l.contains("frames/s"))
        .collect();
    assert!(
        statuses
            .iter()
            .all(|s| s.contains(" lines/s, ") && s.contains(" aircraft")),
        "{statuses:#?}"
    );
    let busy = statuses.iter().any(|s| {
        let fps: f64 = s
            .trim_start_matches("STATUS=")
            .split(" frames/s")
            .next()
            .unwrap()
            .parse()
            .unwrap();
        fps > 10.0 && !s.contains(" 0 aircraft")
    });
    assert!(busy, "no status shows decoded traffic: {statuses:#?}");
}

/// A sink that stops taking lines (stdout nobody reads) while samples keep
/// coming: the pings stop, and resume once the reader catches up.
#[test]
fn watchdog_stops_while_the_sink_is_wedged() {
    let dir = TempDir::new("notify-wedge");
    let m = Manager::listen(&dir);
    let mut child = run_under_manager(&m, &["--source", "sim"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    // The smallest pipe the kernel allows (one page), so it fills in
    // seconds rather than a minute.
    // SAFETY: fcntl(2) F_SETPIPE_SZ on a pipe fd we own.
    let r = unsafe { libc::fcntl(out.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    assert!(r >= 4096, "F_SETPIPE_SZ failed");
    m.wait_for("READY=1", Duration::from_secs(20), |l| l == "READY=1");
    let sick = m.wait_for("a sink-stalled status", Duration::from_secs(60), |l| {
        l.starts_with("STATUS=unhealthy (sink stalled: ")
    });
    thread::sleep(Duration::from_secs(3));
    let drain_at = Instant::now();
    let reader = thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0usize;
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    });
    m.ping_after(drain_at, Duration::from_secs(10));
    sigterm(&child);
    m.wait_for("STOPPING=1", Duration::from_secs(10), |l| l == "STOPPING=1");
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
    assert!(reader.join().unwrap() > 4096);
    let pings = m.pings();
    assert!(
        !pings.iter().any(|t| *t > sick && *t < drain_at),
        "pinged while the sink was wedged"
    );
    // Before the verdict the pipeline was healthy for a while: pings came.
    assert!(pings.iter().any(|t| *t < sick), "no ping before the wedge");
}

/// An input whose feeder is down: the source keeps reconnecting, and that
/// is healthy (a restart would not bring the feeder back), so READY=1 comes
/// at once and the pings go on. Beast and SBS tasks, rtl_tcp's reader,
/// and a dongle that is not plugged in (none is, here) all the same.
#[test]
fn inputs_are_ready_and_healthy_while_reconnecting() {
    for kind in ["beast", "sbs", "rtltcp", "rtlsdr"] {
        let dir = TempDir::new("notify-net");
        let m = Manager::listen(&dir);
        // A port nothing listens on: bind, note it, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let source = match kind {
            "rtlsdr" => kind.to_owned(),
            _ => format!("{kind}:127.0.0.1:{port}"),
        };
        let mut child = run_under_manager(&m, &["--source", &source])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let ready = m.wait_for("READY=1", Duration::from_secs(20), |l| l == "READY=1");
        // Longer than the 5 s without samples that counts as a stall.
        let end = ready + Duration::from_secs(7);
        while Instant::now() < end {
            thread::sleep(Duration::from_millis(100));
        }
        let pings = m.pings();
        let gap = longest_gap(&pings, ready, end);
        assert!(
            gap < Duration::from_millis(1900),
            "{kind}: a {gap:?} gap in the pings while reconnecting; got {:#?}",
            m.messages()
        );
        assert!(
            !m.messages().iter().any(|(_, s)| s.contains("unhealthy")),
            "{kind}: {:#?}",
            m.messages()
        );
        sigterm(&child);
        assert!(wait_exit(&mut child, Duration::from_secs(20)).success());
    }
}
