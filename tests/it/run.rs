//! `run` end to end: the real binary, its stdout sink, shutdown and config errors.

use crate::common;
use common::*;
use std::collections::HashMap;
use std::io::Read;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

/// SBS lines with the four time fields (7-10) blanked, counted.
fn untimed_lines(out: &Output) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).split("\r\n") {
        if line.is_empty() {
            continue;
        }
        let mut f: Vec<&str> = line.split(',').collect();
        assert!(f.len() >= 22 && f[0] == "MSG", "not an SBS line: {line:?}");
        for t in &mut f[6..10] {
            *t = "";
        }
        *m.entry(f.join(",")).or_insert(0) += 1;
    }
    m
}

fn same_as_decode(file: &str, extra: &[&str]) {
    let path = shared(file);
    let path = path.to_str().unwrap();
    let mut run_args = vec!["run", "--stats-interval", "1"];
    let source = format!("file:{path}");
    run_args.extend(["--source", &source]);
    run_args.extend(extra);
    let ran = run(&run_args);
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let mut dec_args = vec!["decode", "--output", "sbs"];
    dec_args.extend(extra);
    dec_args.push(path);
    let decoded = run(&dec_args);
    assert!(decoded.status.success());
    let (a, b) = (untimed_lines(&ran), untimed_lines(&decoded));
    assert!(b.values().sum::<usize>() > 100, "too few reference lines");
    assert_eq!(a, b, "run and decode differ on {file}");
    let err = String::from_utf8_lossy(&ran.stderr);
    assert!(err.contains("finished"), "{err}");
}

#[test]
fn file_source_matches_decode_2400() {
    same_as_decode("iq/modes1_2400.cu8", &[]);
}

#[test]
fn file_source_matches_decode_2000() {
    same_as_decode("iq/modes1.bin", &["--sample-rate", "2.0M"]);
}

/// `run` with `args`, stdout read on a thread as it comes.
fn start_run(args: &[&str]) -> (Child, std::thread::JoinHandle<Vec<u8>>) {
    let mut child = bin()
        .arg("run")
        .args(args)
        .env_remove("ADSB_KINESIS_SOURCE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start adsb-kinesis run");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        stdout.read_to_end(&mut s).unwrap();
        s
    });
    (child, reader)
}

/// SIGTERM, then the exit within `limit` (else a panic): its status and
/// stdout, and stderr as text.
fn stop_run(
    running: (Child, std::thread::JoinHandle<Vec<u8>>),
    limit: Duration,
) -> (Output, String) {
    signal_run(running, libc::SIGTERM, limit)
}

/// [`stop_run`] with another signal.
fn signal_run(
    (mut child, reader): (Child, std::thread::JoinHandle<Vec<u8>>),
    signal: i32,
    limit: Duration,
) -> (Output, String) {
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on our own child's pid; it has not been reaped yet.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    let status = wait_exit(&mut child, limit);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let out = Output {
        status,
        stdout: reader.join().unwrap(),
        stderr: Vec::new(),
    };
    (out, err)
}

#[test]
fn sim_source_stops_cleanly_on_sigterm() {
    let running = start_run(&["--stats-interval", "1"]);
    std::thread::sleep(Duration::from_secs(3));
    let (out, err) = stop_run(running, Duration::from_secs(5));
    assert!(out.status.success(), "{:?}\n{err}", out.status);
    let out = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = out.split_terminator("\r\n").collect();
    assert!(!lines.is_empty(), "no SBS lines\n{err}");
    assert!(lines.iter().all(|l| l.starts_with("MSG,")), "{out}");
    assert!(err.contains("stats"), "{err}");
}

/// SIGHUP drains as SIGTERM does (every line made reaches stdout, and the
/// summary says so), then exits 129 so that systemd restarts it with its
/// configuration read again; before, it died at once and lost what it held.
#[test]
fn sighup_drains_then_exits_129() {
    let running = start_run(&["--stats-interval", "3600"]);
    std::thread::sleep(Duration::from_secs(3));
    let (out, err) = signal_run(running, libc::SIGHUP, Duration::from_secs(5));
    let (status, out) = (out.status, String::from_utf8(out.stdout).unwrap());
    assert_eq!(status.code(), Some(129), "{err}");
    assert!(err.contains("SIGHUP: draining"), "{err}");
    let lines = out.split_terminator("\r\n").count() as u64;
    assert!(lines > 0, "{err}");
    let finished = err
        .lines()
        .find(|l| l.contains("finished"))
        .unwrap_or_else(|| panic!("no summary: {err}"));
    assert!(
        finished.contains(&format!(" lines={lines} ")),
        "{lines} lines out; {finished}"
    );
}

/// A FIFO `iq.fifo` made in `dir`.
fn make_fifo(dir: &TempDir) -> std::path::PathBuf {
    let fifo = dir.path("iq.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    fifo
}

/// A FIFO that no writer ever opens: opening it blocks, and used to block
/// the start itself, so SIGTERM was never handled. Now it is opened on the
/// source's thread: the daemon starts, and SIGTERM ends it in seconds.
#[test]
fn sigterm_ends_a_run_waiting_for_a_fifo_writer() {
    let dir = TempDir::new("nowriter");
    let fifo = make_fifo(&dir);
    let source = format!("file:{}", fifo.display());
    let running = start_run(&["--stats-interval", "3600", "--source", &source]);
    std::thread::sleep(Duration::from_secs(1));
    let t0 = std::time::Instant::now();
    let (out, err) = stop_run(running, Duration::from_secs(10));
    assert!(out.status.success(), "{:?}\n{err}", out.status);
    assert!(
        err.contains("starting") && err.contains("finished"),
        "{err}"
    );
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
}

/// A source stuck in a read (here a FIFO whose writer has gone quiet, as a
/// wedged dongle's synchronous read never returns) must not keep SIGTERM
/// from draining the pipeline: every line from what it delivered comes out,
/// and the process exits in seconds instead of waiting on the read (under
/// systemd, until the SIGKILL that would lose what is queued in memory).
#[test]
fn sigterm_drains_past_a_source_stuck_in_a_read() {
    use std::io::Write;
    let dir = TempDir::new("stuck");
    let fifo = make_fifo(&dir);
    let recording = shared("iq/modes1_2400.cu8");
    let data = std::fs::read(&recording).unwrap();
    let (quiet_tx, quiet_rx) = std::sync::mpsc::channel::<()>();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            f.write_all(&data).unwrap();
            quiet_tx.send(()).unwrap();
            // Held open and silent: the reader's next read never returns.
            stop_rx.recv().ok();
        })
    };
    let source = format!("file:{}", fifo.display());
    let running = start_run(&["--stats-interval", "1", "--source", &source]);
    quiet_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    // All but the pipe's last buffer is read by now; let that and the
    // decoding finish.
    std::thread::sleep(Duration::from_secs(2));
    let (out, err) = stop_run(running, Duration::from_secs(10));
    stop_tx.send(()).unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{:?}\n{err}", out.status);
    assert!(err.contains("the source did not stop"), "{err}");
    let decoded = run(&["decode", "--output", "sbs", recording.to_str().unwrap()]);
    assert!(decoded.status.success());
    let want = untimed_lines(&decoded);
    assert!(
        want.values().sum::<usize>() > 100,
        "too few reference lines"
    );
    assert_eq!(untimed_lines(&out), want, "{err}");
}

fn one_line_error(out: &Output) -> String {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(out.stdout.is_empty());
    err
}

#[test]
fn bad_config_is_one_line() {
    let dir = std::env::temp_dir().join(format!("adsbk-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml = dir.join("bad.toml");
    std::fs::write(&toml, "stats_interval = 5\nbogus_key = 1\n").unwrap();
    let out = run(&["run", "--config", toml.to_str().unwrap()]);
    let err = one_line_error(&out);
    assert!(err.contains("bogus_key"), "{err}");

    let out = bin()
        .args(["run"])
        .env("ADSB_KINESIS_SOURCE", "bogus")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(err.contains("ADSB_KINESIS_SOURCE"), "{err}");

    let err = one_line_error(&run(&["run", "--source", "radio"]));
    assert!(err.contains("--source"), "{err}");
    let err = one_line_error(&run(&["run", "--stats-interval", "0"]));
    assert!(err.contains("stats_interval"), "{err}");
    // Under a second would only flood the log.
    let err = one_line_error(&run(&["run", "--stats-interval", "1e-9"]));
    assert!(err.contains("within 1 and 86400"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The reader of stderr going away (a pipe closed, a log collector
/// restarted) costs log lines, not the daemon: tracing's default reported
/// the failed write with eprint!, whose panic aborted the process (found
/// by the soak, issue 20).
#[test]
fn a_closed_stderr_does_not_stop_the_daemon() {
    let mut child = bin()
        .args(["run", "--stats-interval", "1"])
        .env_remove("ADSB_KINESIS_SOURCE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start run");
    let mut first = [0u8; 64];
    child
        .stderr
        .take()
        .unwrap()
        .read_exact(&mut first)
        .expect("a log line");
    // The read end is closed now; the stats line a second later fails.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        child.try_wait().unwrap().is_none(),
        "run exited: {:?}",
        child.try_wait()
    );
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}
