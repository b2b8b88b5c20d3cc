//! `run --stream` end to end against a real moto server on 127.0.0.1 (no
//! mocks): what the stream holds, read back from TRIM_HORIZON on every
//! shard, must be what `decode` prints for the same input; outages and a
//! SIGTERM with the endpoint down lose nothing; start-up errors are one
//! clear line.
//!
//! moto must be importable (`python3 -m pip install --user 'moto[server]'`;
//! scripts/test installs it): without it these tests fail, they do not
//! skip.

use crate::common;
use common::kinesis::*;
use common::*;

use std::io::Write;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Restart on `port` with the endpoint up (a new 2-shard stream S) and an
/// empty input, so only what the spool in `spool` holds is sent. Returns
/// the server, the run's exit status and its stderr.
fn restart_to_drain(dir: &TempDir, port: u16, spool: &str) -> (Moto, ExitStatus, String) {
    let moto = Moto::start_on(port);
    create_stream(&moto.url(), "S", 2);
    let empty = dir.path("empty.cu8");
    std::fs::write(&empty, b"").unwrap();
    let source = format!("file:{}", empty.display());
    let run = run_cmd(&[
        "--source",
        &source,
        "--stream",
        "S",
        "--endpoint-url",
        &moto.url(),
        "--spool-dir",
        spool,
        "--shutdown-timeout",
        "60s",
    ])
    .spawn()
    .expect("restart run");
    let (status, err) = finish(run, Duration::from_secs(120));
    (moto, status, err)
}

fn file_run_matches_decode(extra: &[&str]) -> (usize, usize) {
    let moto = Moto::start();
    create_stream(&moto.url(), "S", 2);
    let spool = TempDir::new("spool");
    let file = shared("iq/modes1_2400.cu8");
    let source = format!("file:{}", file.display());
    let url = moto.url();
    let mut args = vec![
        "--source",
        &source,
        "--stream",
        "S",
        "--endpoint-url",
        &url,
        "--spool-dir",
        spool.0.to_str().unwrap(),
    ];
    args.extend(extra);
    // A key id that would be found if any log line carried it (the SDK's
    // credential chain logs it at info).
    const KEY_ID: &str = "AKIAADSBKINESISTEST7";
    let child = run_cmd(&args)
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .spawn()
        .expect("start run");
    let (status, err) = finish(child, Duration::from_secs(120));
    assert!(status.success(), "{status:?}\n{err}");
    assert!(
        !err.contains(KEY_ID),
        "the access key id is in the log:\n{err}"
    );
    let (got, records) = stream_lines(&read_stream(&url, "S"));
    let want = decoded_lines(&file);
    assert!(total(&want) > 100, "too few reference lines");
    assert_eq!(got, want, "the stream differs from decode\n{err}");
    assert_eq!(finished_field(&err, "spool_records"), 0, "{err}");
    (records, total(&want))
}

#[test]
fn file_to_kinesis_equals_decode() {
    let (records, lines) = file_run_matches_decode(&[]);
    assert_eq!(records, lines, "one line per record by default");
}

#[test]
fn packed_records_equal_decode() {
    let (records, lines) = file_run_matches_decode(&["--pack-lines", "50"]);
    // One aircraft in this recording, flushed every 500 ms: lines share
    // records.
    assert!(records * 5 < lines, "{records} records for {lines} lines");
}

#[test]
fn outage_mid_run_loses_nothing() {
    let dir = TempDir::new("outage");
    let file = repeated_recording(&dir, 25);
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let source = format!("file:{}", file.display());
    let spool = dir.path("spool");
    // Realtime replay (~4.5 s); the endpoint appears after 2 s.
    let child = run_cmd(&[
        "--source",
        &source,
        "--replay-speed",
        "realtime",
        "--stream",
        "S",
        "--endpoint-url",
        &url,
        "--spool-dir",
        spool.to_str().unwrap(),
        "--linger",
        "200ms",
        "--stats-interval",
        "1",
        "--shutdown-timeout",
        "60s",
        "--retry-max-ms",
        "300",
        "--config-retry-ms",
        "300",
    ])
    .spawn()
    .expect("start run");
    std::thread::sleep(Duration::from_secs(2));
    let moto = Moto::start_on(port);
    create_stream(&url, "S", 2);
    let (status, err) = finish(child, Duration::from_secs(120));
    assert!(status.success(), "{status:?}\n{err}");
    let (got, _) = stream_lines(&read_stream(&moto.url(), "S"));
    let want = decoded_lines(&file);
    // Nothing lost, nothing duplicated, between the sink and the stream
    // (connection refused is a known outcome: nothing was stored).
    assert_eq!(finished_field(&err, "unknown_outcome"), 0, "{err}");
    assert_eq!(
        total(&got) as u64,
        finished_field(&err, "lines_in"),
        "{err}"
    );
    // A real-time source drops sample buffers, like a radio, if this
    // machine cannot keep up; when it did keep up, the stream holds
    // exactly what decode prints.
    if input_dropped(&err) {
        eprintln!("  (the replay dropped input on this machine: compared with lines_in only)");
    } else {
        assert_eq!(got, want);
    }
    assert!(finished_field(&err, "records_retried") > 0, "{err}");
    assert!(
        finished_field(&err, "spooled_batches") > 0,
        "no spilling\n{err}"
    );
    assert_eq!(finished_field(&err, "spool_records"), 0, "{err}");
}

#[test]
fn sigterm_with_endpoint_down_then_restart_loses_nothing() {
    let dir = TempDir::new("sigterm");
    let file = repeated_recording(&dir, 25);
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let source = format!("file:{}", file.display());
    let spool = dir.path("spool");
    let spool_s = spool.to_str().unwrap().to_owned();
    let first = spool_run(
        &source,
        &url,
        &spool_s,
        &[
            "--replay-speed",
            "realtime",
            "--linger",
            "200ms",
            "--shutdown-timeout",
            "1s",
            "--retry-max-ms",
            "200",
        ],
    )
    .spawn()
    .expect("start run");
    std::thread::sleep(Duration::from_millis(2500));
    sigterm(&first);
    let (status, err1) = finish(first, Duration::from_secs(30));
    assert!(status.success(), "{status:?}\n{err1}");
    let produced = finished_field(&err1, "lines_in");
    let spooled = finished_field(&err1, "spool_records");
    assert!(produced > 50, "too little decoded before SIGTERM\n{err1}");
    assert_eq!(
        spooled, produced,
        "pack-lines 1: one record per line\n{err1}"
    );
    assert_eq!(finished_field(&err1, "records_sent"), 0);

    // Power-loss-like garbage after the last entry: skipped with a warning.
    let mut segs: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    let last = segs.last().expect("a spool segment");
    std::fs::OpenOptions::new()
        .append(true)
        .open(last)
        .unwrap()
        .write_all(&[0x55, 0, 0, 0, 1, 2, 3])
        .unwrap();

    // Restart with the endpoint up and no new input: the spool drains.
    let (moto, status, err2) = restart_to_drain(&dir, port, &spool_s);
    assert!(status.success(), "{status:?}\n{err2}");
    assert!(err2.contains("torn or corrupt"), "{err2}");
    let (got, records) = stream_lines(&read_stream(&moto.url(), "S"));
    assert_eq!(records as u64, produced, "{err2}");
    assert_eq!(finished_field(&err2, "unknown_outcome"), 0, "{err2}");
    assert_eq!(finished_field(&err2, "spool_records"), 0, "{err2}");
    // Every line delivered is one decode prints, no more often (unless
    // the first run fell behind the replay and dropped input).
    if input_dropped(&err1) {
        eprintln!("  (the replay dropped input on this machine: compared with lines_in only)");
    } else {
        let want = decoded_lines(&file);
        for (k, n) in &got {
            assert!(want.get(k).is_some_and(|w| w >= n), "unexpected {k:?} x{n}");
        }
    }
}

/// `run` from `source` into stream S at `url`, spooling in `spool`, with
/// `extra` options.
fn spool_run(source: &str, url: &str, spool: &str, extra: &[&str]) -> std::process::Command {
    let mut args = vec![
        "--source",
        source,
        "--stream",
        "S",
        "--endpoint-url",
        url,
        "--spool-dir",
        spool,
    ];
    args.extend(extra);
    run_cmd(&args)
}

/// A setting that cannot work: one line, and exit 78, which the unit does
/// not restart.
fn one_line_error(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(78), "{:?}", out.status);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(out.stdout.is_empty());
    err
}

fn run_output(cmd: &mut Command) -> Output {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run adsb-kinesis")
}

#[test]
fn start_errors_are_one_clear_line() {
    let moto = Moto::start();
    create_stream(&moto.url(), "S", 2);
    let dir = TempDir::new("errors");
    let spool = dir.path("spool");
    let spool = spool.to_str().unwrap();
    let url = moto.url();
    let base = ["--source", "sim", "--spool-dir", spool];

    // Unknown stream: checked with DescribeStreamSummary at start.
    let mut c = run_cmd(&base);
    c.args(["--stream", "NoSuchStream", "--endpoint-url", &url]);
    let err = one_line_error(&run_output(&mut c));
    assert!(err.contains("NoSuchStream"), "{err}");
    assert!(err.contains("ResourceNotFound"), "{err}");

    // No region anywhere.
    let mut c = run_cmd(&base);
    c.env_remove("AWS_REGION")
        .args(["--stream", "S", "--endpoint-url", &url]);
    let err = one_line_error(&run_output(&mut c));
    assert!(err.contains("no AWS region"), "{err}");

    // No credentials anywhere.
    let mut c = run_cmd(&base);
    c.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .args(["--stream", "S", "--endpoint-url", &url]);
    let err = one_line_error(&run_output(&mut c));
    assert!(err.contains("no AWS credentials"), "{err}");

    // A malformed endpoint URL.
    let mut c = run_cmd(&base);
    c.args(["--stream", "S", "--endpoint-url", "127.0.0.1:4566"]);
    let err = one_line_error(&run_output(&mut c));
    assert!(err.contains("endpoint_url"), "{err}");
    assert!(err.contains("http://"), "{err}");

    // An unknown key in the config file.
    let toml = dir.path("bad.toml");
    std::fs::write(&toml, "stream = \"S\"\nstrem_arn = \"x\"\n").unwrap();
    let mut c = run_cmd(&base);
    c.args(["--config", toml.to_str().unwrap()]);
    let err = one_line_error(&run_output(&mut c));
    assert!(err.contains("strem_arn"), "{err}");
    assert!(err.contains("line 2"), "{err}");

    // A value beyond a Kinesis limit, from the environment.
    let mut c = run_cmd(&base);
    c.env("ADSB_KINESIS_MAX_RECORD_BYTES", "2MiB")
        .args(["--stream", "S", "--endpoint-url", &url]);
    let err = one_line_error(&run_output(&mut c));
    assert!(err.contains("max_record_bytes"), "{err}");
}

#[test]
fn stream_deleted_mid_run_and_created_again_receives_the_rest() {
    let (err, _) = stream_deleted_and_back("300", "30s");
    // The missing stream was reported clearly, once, naming it.
    let reports: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("ResourceNotFoundException"))
        .collect();
    assert_eq!(reports.len(), 1, "{err}");
    assert!(reports[0].contains("stream S"), "{err}");
}

/// Issue 19: with the long pause after a configuration error (60 s here),
/// a shutdown after the stream came back waited out its whole timeout and
/// spooled everything. The shutdown now tries at once: everything is
/// delivered, in well under the 10 s timeout.
#[test]
fn shutdown_after_the_stream_came_back_delivers_at_once() {
    let (err, stop) = stream_deleted_and_back("60000", "10s");
    assert!(
        stop < Duration::from_secs(6),
        "the shutdown took {stop:?}\n{err}"
    );
}

/// A run on the simulated sky into S; S deleted 2 s in, created again 2 s
/// later, SIGTERM 2 s after that. Checks every line reached the stream;
/// the run's stderr and how long the shutdown took.
fn stream_deleted_and_back(config_retry_ms: &str, shutdown_timeout: &str) -> (String, Duration) {
    let moto = Moto::start();
    let url = moto.url();
    create_stream(&url, "S", 2);
    let dir = TempDir::new("recreate");
    let spool = dir.path("spool");
    let child = spool_run(
        "sim",
        &url,
        spool.to_str().unwrap(),
        &[
            "--linger",
            "200ms",
            "--config-retry-ms",
            config_retry_ms,
            "--shutdown-timeout",
            shutdown_timeout,
        ],
    )
    .spawn()
    .expect("start run");
    std::thread::sleep(Duration::from_secs(2));
    runtime().block_on(async {
        client(&url)
            .delete_stream()
            .stream_name("S")
            .enforce_consumer_deletion(true)
            .send()
            .await
            .expect("DeleteStream");
    });
    std::thread::sleep(Duration::from_secs(2));
    create_stream(&url, "S", 2);
    std::thread::sleep(Duration::from_secs(2));
    let t0 = std::time::Instant::now();
    sigterm(&child);
    let (status, err) = finish(child, Duration::from_secs(60));
    let stop = t0.elapsed();
    assert!(status.success(), "{status:?}\n{err}");
    // Every line reached Kinesis in the end; the new stream holds the ones
    // sent while it was missing and after.
    let lines_in = finished_field(&err, "lines_in");
    assert!(lines_in > 0, "{err}");
    assert_eq!(finished_field(&err, "lines_sent"), lines_in, "{err}");
    assert_eq!(finished_field(&err, "spool_records"), 0, "{err}");
    let (got, _) = stream_lines(&read_stream(&url, "S"));
    assert!(total(&got) > 0, "nothing in the re-created stream\n{err}");
    (err, stop)
}

#[test]
fn hung_endpoint_counts_unknown_outcomes_and_shutdown_spools_in_time() {
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming().flatten() {
            held.push(c);
        }
    });
    let dir = TempDir::new("hung");
    let spool = dir.path("spool");
    let child = run_cmd(&[
        "--source",
        "sim",
        "--stream",
        "S",
        "--endpoint-url",
        &url,
        "--spool-dir",
        spool.to_str().unwrap(),
        "--linger",
        "200ms",
        "--request-timeout-ms",
        "300",
        "--retry-max-ms",
        "100",
        "--shutdown-timeout",
        "1s",
    ])
    .spawn()
    .expect("start run");
    std::thread::sleep(Duration::from_secs(3));
    sigterm(&child);
    let t0 = Instant::now();
    let (status, err) = finish(child, Duration::from_secs(30));
    assert!(status.success(), "{status:?}\n{err}");
    // 1 s of shutdown timeout, plus draining: well under 5 s.
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(finished_field(&err, "unknown_outcome") > 0, "{err}");
    let lines_in = finished_field(&err, "lines_in");
    assert!(lines_in > 0, "{err}");
    assert_eq!(finished_field(&err, "records_sent"), 0, "{err}");
    assert_eq!(finished_field(&err, "spool_records"), lines_in, "{err}");
}

#[test]
fn spool_full_drops_oldest_counts_them_and_delivers_the_rest() {
    let dir = TempDir::new("full");
    // ~22 000 lines: more than a 2 MiB spool holds.
    let file = repeated_recording(&dir, 60);
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let source = format!("file:{}", file.display());
    let spool = dir.path("spool");
    let spool_s = spool.to_str().unwrap().to_owned();
    let first = run_cmd(&[
        "--source",
        &source,
        "--stream",
        "S",
        "--endpoint-url",
        &url,
        "--spool-dir",
        &spool_s,
        "--spool-max-bytes",
        "2MiB",
        "--shutdown-timeout",
        "1s",
        "--retry-max-ms",
        "100",
    ])
    .spawn()
    .expect("start run");
    let (status, err1) = finish(first, Duration::from_secs(120));
    assert!(status.success(), "{status:?}\n{err1}");
    assert!(err1.contains("spool full"), "{err1}");
    let lines_in = finished_field(&err1, "lines_in");
    let dropped = finished_field(&err1, "spool_dropped");
    let kept = finished_field(&err1, "spool_records");
    assert!(dropped > 0 && kept > 0, "{err1}");
    assert_eq!(
        dropped + kept,
        lines_in,
        "every line kept or counted\n{err1}"
    );
    assert!(finished_field(&err1, "spool_bytes") <= 2 << 20, "{err1}");

    let (moto, status, err2) = restart_to_drain(&dir, port, &spool_s);
    assert!(status.success(), "{status:?}\n{err2}");
    let (_, records) = stream_lines(&read_stream(&moto.url(), "S"));
    assert_eq!(records as u64, kept, "{err2}");
}

/// A small tmpfs mounted on a directory for the length of a test (needs
/// root, as CI is): a file system that really fills up.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: std::path::PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "cannot mount a tmpfs on {} (this test needs root)",
            dir.display()
        );
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Issue 20: a spool on a card that fills up. The first run (Kinesis away)
/// keeps going: the spool's cap shrinks to the free space less a reserve,
/// the oldest records are dropped and counted, and the run ends cleanly
/// with every line either kept or counted. Then the card is filled to the
/// last byte by something else, and the next start (Kinesis back) must
/// still start and deliver every kept record.
#[test]
fn a_full_disk_never_stops_the_daemon_and_the_spool_is_delivered() {
    let dir = TempDir::new("diskfull");
    let file = repeated_recording(&dir, 60);
    let fs = Tmpfs::mount(dir.path("card"), "512k");
    let spool = fs.0.join("spool");
    let spool_s = spool.to_str().unwrap().to_owned();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let source = format!("file:{}", file.display());
    let first = spool_run(
        &source,
        &url,
        &spool_s,
        &[
            "--shutdown-timeout",
            "1s",
            "--retry-max-ms",
            "100",
            "--pack-lines",
            "4",
        ],
    )
    .spawn()
    .expect("start run");
    let (status, err1) = finish(first, Duration::from_secs(120));
    assert!(status.success(), "{status:?}\n{err1}");
    let lines_in = finished_field(&err1, "lines_in");
    let dropped = finished_field(&err1, "spool_dropped");
    let dropped_lines = finished_field(&err1, "spool_dropped_lines");
    let kept = finished_field(&err1, "spool_records");
    assert!(dropped > 0 && kept > 0, "{err1}");
    assert!(dropped_lines > dropped, "records of several lines\n{err1}");
    // The reserve (5 % of 512 KiB) is left free.
    assert!(
        finished_field(&err1, "spool_bytes") <= 512 * 1024 * 95 / 100,
        "{err1}"
    );
    let warnings = err1.lines().filter(|l| l.contains("WARN")).count();
    assert!(warnings < 200, "{warnings} warnings\n{err1}");
    // Every append on the full card drops records: said once a minute.
    let full = err1.matches("spool full").count();
    assert_eq!(full, 1, "{full} 'spool full' lines\n{err1}");

    // Something else takes every byte left.
    let mut junk = std::fs::File::create(fs.0.join("junk")).unwrap();
    let block = vec![0u8; 4096];
    while junk.write_all(&block).is_ok() {}
    drop(junk);

    let (moto, status, err2) = restart_to_drain(&dir, port, &spool_s);
    assert!(status.success(), "{status:?}\n{err2}");
    assert!(err2.contains("the disk is full"), "{err2}");
    let (lines, records) = stream_lines(&read_stream(&moto.url(), "S"));
    assert_eq!(records as u64, kept, "{err2}");
    assert_eq!(
        total(&lines) as u64 + dropped_lines,
        lines_in,
        "every line delivered or counted\n{err1}"
    );
}

/// Issue 20: the spool directory removed under a running daemon (Kinesis
/// away, so records are being spooled). It used to write on into unlinked
/// files for as long as it ran and say so only at exit. Now the next
/// batch notices: one warning, the directory made again, and what follows
/// is spooled there and delivered by the next start.
#[test]
fn a_removed_spool_directory_is_noticed_and_made_again() {
    let dir = TempDir::new("rmspool");
    let file = repeated_recording(&dir, 40);
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let source = format!("file:{}", file.display());
    let spool = dir.path("spool");
    let spool_s = spool.to_str().unwrap().to_owned();
    let run = spool_run(
        &source,
        &url,
        &spool_s,
        &[
            "--replay-speed",
            "realtime",
            "--linger",
            "100ms",
            "--shutdown-timeout",
            "1s",
            "--retry-max-ms",
            "100",
        ],
    )
    .spawn()
    .expect("start run");
    std::thread::sleep(Duration::from_millis(2500));
    std::fs::remove_dir_all(&spool).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert!(spool.is_dir(), "the spool directory was not made again");
    sigterm(&run);
    let (status, err) = finish(run, Duration::from_secs(30));
    assert!(status.success(), "{status:?}\n{err}");
    assert_eq!(
        err.matches("the spool directory was removed").count(),
        1,
        "{err}"
    );
    let kept = finished_field(&err, "spool_records");
    assert!(kept > 0, "{err}");
    let (moto, status, err2) = restart_to_drain(&dir, port, &spool_s);
    assert!(status.success(), "{status:?}\n{err2}");
    let (_, records) = stream_lines(&read_stream(&moto.url(), "S"));
    assert_eq!(records as u64, kept, "{err2}");
}
