//! `adsb-kinesis tail` against a real moto server: the real binary reads
//! every shard of a stream and must print exactly the lines written, in
//! each aircraft's (partition key's) order; through the fault proxy
//! (tests/fault_kinesis.py) with GetRecords throttled and iterators
//! expired it must still print everything once; a shard split during the
//! run must not lose or reorder anything; an unknown stream is one clear
//! line and a non-zero exit.
//!
//! moto 5.2 and resharding: SplitShard / UpdateShardCount list the closed
//! parent and its children, but moto keeps storing new records in the
//! parent (its hash lookup does not skip closed shards) and never ends the
//! parent's GetRecords (always a NextShardIterator, never ChildShards).
//! So the split test checks that tail sees the new shards, keeps them
//! waiting behind the parent, and loses or reorders nothing; the rule that
//! a child is read only after its parents is tested on the pure scheduler
//! (src/tail/shards.rs) with split, merge and grandchild cases.

use crate::common;
use common::kinesis::*;
use common::*;

use std::collections::HashMap;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

/// An SBS MSG,3 line of aircraft `icao`, the `i`-th of its lines (the
/// altitude says which, so order is checkable), `i` seconds after
/// 2026-11-30 17:00:00 UTC.
fn sbs(icao: u32, i: usize) -> String {
    let s = i % 60;
    let m = i / 60 % 60;
    format!(
        "MSG,3,1,1,{icao:06X},1,2026/11/30,17:{m:02}:{s:02}.000,2026/11/30,17:{m:02}:{s:02}.100,,{},,,37.{i:05},14.00000,,,0,,0,0",
        1000 + i
    )
}

/// `aircraft` keys × `per` lines, written with PutRecords, packing
/// 1, 2, 3 or 4 consecutive lines of one aircraft per record as `run
/// --pack-lines` does. Returns the lines per key, in order.
fn write_lines(
    url: &str,
    stream: &str,
    aircraft: u32,
    per: usize,
    first: usize,
) -> HashMap<String, Vec<String>> {
    let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
    let mut entries = Vec::new();
    for i in first..first + per {
        for a in 0..aircraft {
            let icao = 0x400000 + a * 0x1111;
            by_key
                .entry(format!("{icao:06X}"))
                .or_default()
                .push(sbs(icao, i));
        }
    }
    for (key, lines) in &by_key {
        let mut at = 0;
        let mut n = 1;
        while at < lines.len() {
            let take = n.min(lines.len() - at);
            let mut data = String::new();
            for l in &lines[at..at + take] {
                data.push_str(l);
                data.push('\n');
            }
            entries.push((key.clone(), data));
            at += take;
            n = n % 4 + 1;
        }
    }
    // Interleave aircraft as a receiver would, keeping each key's order.
    entries.sort_by_key(|(k, d)| {
        let nth = by_key[k].iter().position(|l| d.starts_with(l.as_str()));
        (nth, k.clone())
    });
    runtime().block_on(async {
        let c = client(url);
        for chunk in entries.chunks(100) {
            let recs = chunk
                .iter()
                .map(|(k, d)| {
                    PutRecordsRequestEntry::builder()
                        .partition_key(k)
                        .data(Blob::new(d.as_bytes()))
                        .build()
                        .unwrap()
                })
                .collect::<Vec<_>>();
            let out = c
                .put_records()
                .stream_name(stream)
                .set_records(Some(recs))
                .send()
                .await
                .expect("PutRecords");
            assert_eq!(out.failed_record_count(), Some(0));
        }
    });
    by_key
}

/// A running `tail`, its stdout split into CRLF lines as they come.
struct Tail {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// Bytes of stdout after the last CRLF, and whether any line ended
    /// without CR.
    bare_lf: Arc<Mutex<bool>>,
    out_thread: Option<std::thread::JoinHandle<()>>,
    table: bool,
    err_thread: Option<std::thread::JoinHandle<String>>,
}

impl Tail {
    fn start(args: &[&str]) -> Tail {
        let mut c = bin();
        aws_env(&mut c);
        let mut child = c
            .arg("tail")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tail");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let bare_lf = Arc::new(Mutex::new(false));
        let mut out = child.stdout.take().unwrap();
        let (l2, b2) = (lines.clone(), bare_lf.clone());
        let out_thread = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            while let Ok(n) = out.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                while let Some(p) = buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=p).collect();
                    let text = String::from_utf8_lossy(&line).into_owned();
                    match text.strip_suffix("\r\n") {
                        Some(t) => l2.lock().unwrap().push(t.to_owned()),
                        None => {
                            *b2.lock().unwrap() = true;
                            l2.lock().unwrap().push(text.trim_end().to_owned());
                        }
                    }
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let err_thread = std::thread::spawn(move || {
            let mut s = String::new();
            err.read_to_string(&mut s).ok();
            s
        });
        Tail {
            child,
            lines,
            bare_lf,
            out_thread: Some(out_thread),
            table: args.contains(&"--table"),
            err_thread: Some(err_thread),
        }
    }

    fn count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// Wait until `n` lines have arrived (or `limit` passes), then a
    /// little longer to catch any line too many.
    fn wait_for(&mut self, n: usize, limit: Duration) {
        let t0 = Instant::now();
        while self.count() < n && t0.elapsed() < limit {
            if let Some(s) = self.child.try_wait().unwrap() {
                panic!("tail exited early: {s}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(1500));
    }

    /// SIGTERM, then its lines and stderr; it must exit 0.
    fn stop(mut self) -> (Vec<String>, String) {
        sigterm(&self.child);
        let t0 = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if t0.elapsed() > Duration::from_secs(10) {
                self.child.kill().ok();
                panic!("tail did not exit within 10 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.out_thread.take().unwrap().join().unwrap();
        let err = self.err_thread.take().unwrap().join().unwrap();
        assert!(status.success(), "tail exited {status}\n{err}");
        // SBS lines end in CRLF (SBS_FORMAT.md §1); the table is text.
        if !self.table {
            assert!(
                !*self.bare_lf.lock().unwrap(),
                "a line ended without CRLF\n{err}"
            );
        }
        let lines = std::mem::take(&mut *self.lines.lock().unwrap());
        (lines, err)
    }
}

/// Per key, the lines in the order tail printed them.
fn by_key(lines: &[String]) -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for l in lines {
        let key = l.split(',').nth(4).unwrap_or("?").to_owned();
        m.entry(key).or_default().push(l.clone());
    }
    m
}

const FAST: [&str; 6] = [
    "--poll-ms",
    "200",
    "--retry-base-ms",
    "5",
    "--retry-max-ms",
    "200",
];

#[test]
fn tail_prints_exactly_the_lines_of_every_shard_in_key_order() {
    let moto = Moto::start();
    create_stream(&moto.url(), "T", 3);
    let want = write_lines(&moto.url(), "T", 24, 25, 0);
    let total: usize = want.values().map(Vec::len).sum();
    assert_eq!(total, 600);
    let url = moto.url();
    let mut args = vec![
        "--stream",
        "T",
        "--endpoint-url",
        &url,
        "--from",
        "trim-horizon",
        "--output",
        "sbs",
    ];
    args.extend(FAST);
    let mut tail = Tail::start(&args);
    tail.wait_for(total, Duration::from_secs(60));
    let (lines, err) = tail.stop();
    assert_eq!(lines.len(), total, "{err}");
    assert_eq!(by_key(&lines), want, "lines or per-key order differ\n{err}");
    // All three shards were read; the keys spread over them.
    assert_eq!(
        log_field(&err, "tail finished", "shards_started"),
        3,
        "{err}"
    );
    let per_shard = read_stream(&moto.url(), "T").len();
    assert!(per_shard > 0);
}

#[test]
fn tail_from_latest_prints_only_what_comes_after() {
    let moto = Moto::start();
    create_stream(&moto.url(), "L", 2);
    write_lines(&moto.url(), "L", 5, 4, 0);
    let url = moto.url();
    let mut args = vec!["--stream", "L", "--endpoint-url", &url];
    args.extend(FAST);
    let mut tail = Tail::start(&args);
    // Wait until both shards have their LATEST iterator (the log says so).
    std::thread::sleep(Duration::from_secs(3));
    let want = write_lines(&moto.url(), "L", 5, 6, 100);
    tail.wait_for(30, Duration::from_secs(30));
    let (lines, err) = tail.stop();
    assert_eq!(by_key(&lines), want, "{err}");
}

#[test]
fn run_then_tail_reads_back_the_recording() {
    let moto = Moto::start();
    create_stream(&moto.url(), "R", 3);
    let rec = shared("iq/modes1_2400.cu8");
    let source = format!("file:{}", rec.display());
    let spool = TempDir::new("tail-run-spool");
    let url = moto.url();
    let child = run_cmd(&[
        "--source",
        &source,
        "--stream",
        "R",
        "--endpoint-url",
        &url,
        "--pack-lines",
        "5",
        "--spool-dir",
        spool.0.to_str().unwrap(),
    ])
    .spawn()
    .expect("start run");
    let (status, err) = finish(child, Duration::from_secs(60));
    assert!(status.success(), "{err}");
    let want = decoded_lines(&rec);
    let n = total(&want);
    assert!(n > 300, "{n} decoded lines");
    let mut args = vec![
        "--stream",
        "R",
        "--endpoint-url",
        &url,
        "--from",
        "trim-horizon",
    ];
    args.extend(FAST);
    let mut tail = Tail::start(&args);
    tail.wait_for(n, Duration::from_secs(60));
    let (lines, err) = tail.stop();
    let mut got: HashMap<(String, String), usize> = HashMap::new();
    for l in &lines {
        let u = untimed(l).unwrap_or_else(|| panic!("not an SBS line: {l:?}"));
        let key = l.split(',').nth(4).unwrap().to_owned();
        *got.entry((key, u)).or_insert(0) += 1;
    }
    assert_eq!(got, want, "{err}");
}

#[test]
fn split_during_the_run_loses_and_reorders_nothing() {
    let moto = Moto::start();
    create_stream(&moto.url(), "S", 2);
    let before = write_lines(&moto.url(), "S", 12, 10, 0);
    let url = moto.url();
    let mut args = vec![
        "--stream",
        "S",
        "--endpoint-url",
        &url,
        "--from",
        "trim-horizon",
        "--relist-ms",
        "500",
    ];
    args.extend(FAST);
    let mut tail = Tail::start(&args);
    tail.wait_for(120, Duration::from_secs(30));
    assert_eq!(tail.count(), 120);
    // Split shard 0 in the middle of its hash range.
    runtime().block_on(async {
        let c = client(&url);
        c.split_shard()
            .stream_name("S")
            .shard_to_split("shardId-000000000000")
            .new_starting_hash_key((1u128 << 126).to_string())
            .send()
            .await
            .expect("SplitShard");
    });
    let after = write_lines(&moto.url(), "S", 12, 10, 10);
    tail.wait_for(240, Duration::from_secs(30));
    let (lines, err) = tail.stop();
    let mut want = before;
    for (k, mut v) in after {
        want.get_mut(&k).unwrap().append(&mut v);
    }
    assert_eq!(lines.len(), 240, "{err}");
    // Each aircraft's lines from before the split, then after, in order.
    assert_eq!(by_key(&lines), want, "{err}");
    // tail saw the two children and held them behind their parent.
    assert!(
        err.lines()
            .any(|l| l.contains("new shards listed") && l.contains("new=2")),
        "{err}"
    );
}

#[test]
fn throttled_reads_and_expired_iterators_are_retried_transparently() {
    let moto = Moto::start();
    create_stream(&moto.url(), "F", 3);
    let want = write_lines(&moto.url(), "F", 20, 15, 0);
    let total: usize = want.values().map(Vec::len).sum();
    let proxy = FaultProxy::start(
        &moto.url(),
        &[
            "--read-throttle",
            "0.3",
            "--expire-iterators",
            "0.2",
            "--seed",
            "5",
        ],
    );
    let url = proxy.url();
    let mut args = vec![
        "--stream",
        "F",
        "--endpoint-url",
        &url,
        "--from",
        "trim-horizon",
    ];
    args.extend(FAST);
    let mut tail = Tail::start(&args);
    tail.wait_for(total, Duration::from_secs(60));
    // Keep polling a little under faults: nothing may appear twice.
    let (lines, err) = tail.stop();
    let stats = proxy.stats();
    eprintln!(
        "read faults: {total} lines; proxy: get_records_requests={} get_records_throttled={} \
         iterators_expired={}; tail: {} lines printed",
        stat(&stats, "get_records_requests"),
        stat(&stats, "get_records_throttled"),
        stat(&stats, "iterators_expired"),
        lines.len()
    );
    assert!(stat(&stats, "get_records_throttled") > 0, "{stats}");
    assert!(stat(&stats, "iterators_expired") > 0, "{stats}");
    assert!(log_field(&err, "tail finished", "throttles") > 0, "{err}");
    assert!(
        log_field(&err, "tail finished", "expired_iterators") > 0,
        "{err}"
    );
    assert_eq!(lines.len(), total, "{err}");
    assert_eq!(by_key(&lines), want, "{err}");
}

#[test]
fn table_snapshots_show_the_merged_aircraft() {
    let moto = Moto::start();
    create_stream(&moto.url(), "V", 2);
    let want = write_lines(&moto.url(), "V", 6, 5, 0);
    // A callsign line for one aircraft, older than its last position.
    let icao = 0x400000u32;
    let ident = format!(
        "MSG,1,1,1,{icao:06X},1,2026/11/30,17:00:01.000,2026/11/30,17:00:01.100,TEST42  ,,,,,,,,,,,0"
    );
    runtime().block_on(async {
        client(&moto.url())
            .put_record()
            .stream_name("V")
            .partition_key(format!("{icao:06X}"))
            .data(Blob::new(format!("{ident}\n")))
            .send()
            .await
            .expect("PutRecord");
    });
    let url = moto.url();
    let mut args = vec![
        "--stream",
        "V",
        "--endpoint-url",
        &url,
        "--from",
        "trim-horizon",
        "--table",
        "--interval",
        "500ms",
    ];
    args.extend(FAST);
    let mut tail = Tail::start(&args);
    tail.wait_for(usize::MAX, Duration::from_secs(6));
    let (lines, err) = tail.stop();
    // The last snapshot: from its "--- HH:MM:SS UTC" header on.
    let start = lines
        .iter()
        .rposition(|l| l.starts_with("--- "))
        .unwrap_or_else(|| panic!("no snapshot\n{lines:?}\n{err}"));
    // (A blank line ends each snapshot.)
    let snap: Vec<&String> = lines[start + 1..]
        .iter()
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(snap[0], "6 aircraft, 31 lines, 0 bad", "{snap:?}");
    let row = snap
        .iter()
        .find(|l| l.starts_with(&format!("{icao:06X} ")))
        .unwrap_or_else(|| panic!("no row for {icao:06X}: {snap:?}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    // Its newest position line is the 5th (i = 4): altitude 1004,
    // latitude 37.00004; 6 messages in all; and the callsign.
    let last = want[&format!("{icao:06X}")].last().unwrap().clone();
    assert!(last.contains(",1004,"), "{last}");
    assert_eq!(
        &cols[..7],
        ["400000", "TEST42", "1004", "37.00004", "14.00000", "6", cols[6]],
        "{row}"
    );
    assert!(snap.last().unwrap().starts_with("shards: "), "{snap:?}");
}

#[test]
fn unknown_stream_is_one_clear_line_and_a_failure() {
    let moto = Moto::start();
    let url = moto.url();
    let out = {
        let mut c = bin();
        aws_env(&mut c);
        c.args(["tail", "--stream", "no-such-stream", "--endpoint-url", &url])
            .stdin(Stdio::null())
            .output()
            .expect("run tail")
    };
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("error: stream no-such-stream"),
        "{err}"
    );
    assert!(lines[0].contains("ResourceNotFoundException"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_flags_are_one_line_errors() {
    for (args, needle) in [
        (vec!["tail"], "needs --stream"),
        (
            vec!["tail", "--stream", "x", "--from", "yesterday"],
            "--from",
        ),
        (vec!["tail", "--stream", "bad name!"], "not a stream name"),
        (
            vec!["tail", "--stream", "x", "--endpoint-url", "localhost:1"],
            "endpoint_url: ",
        ),
        (
            vec!["tail", "--stream", "x", "--table", "--interval", "0s"],
            "--interval",
        ),
    ] {
        let mut c: Command = bin();
        aws_env(&mut c);
        let out = c.args(&args).stdin(Stdio::null()).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?}: {err}");
        assert!(lines[0].contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn tail_serves_a_fleet_map_of_every_receiver_feeding_the_stream() {
    use crate::map::{chromium, get, markers, positions};
    let moto = Moto::start();
    let url = moto.url();
    create_stream(&url, "F", 2);
    // Two receivers: the simulated sky, running, and a recording.
    let spool_a = TempDir::new("fleet-a");
    let sky = run_cmd(&[
        "--stream",
        "F",
        "--endpoint-url",
        &url,
        "--receiver-id",
        "pi-south",
        "--linger",
        "200ms",
        "--spool-dir",
        spool_a.0.to_str().unwrap(),
    ])
    .spawn()
    .expect("start the sky's run");
    let rec = shared("iq/modes1_2400.cu8");
    let spool_b = TempDir::new("fleet-b");
    let (status, err) = finish(
        run_cmd(&[
            "--source",
            &format!("file:{}", rec.display()),
            "--stream",
            "F",
            "--endpoint-url",
            &url,
            "--receiver-id",
            "pi-north",
            "--spool-dir",
            spool_b.0.to_str().unwrap(),
        ])
        .spawn()
        .expect("start the recording's run"),
        Duration::from_secs(60),
    );
    assert!(status.success(), "{err}");
    let recorded: std::collections::BTreeSet<String> = decoded_lines(&rec)
        .keys()
        .map(|(icao, _)| icao.to_ascii_lowercase())
        .collect();

    let http = format!("127.0.0.1:{}", free_port());
    let mut args = vec![
        "--stream",
        "F",
        "--endpoint-url",
        &url,
        "--from",
        "trim-horizon",
        "--http-listen",
        &http,
    ];
    args.extend(FAST);
    let tail = Tail::start(&args);
    // Every aircraft of both receivers, tagged with the one that heard it.
    let t0 = Instant::now();
    let mut doc = serde_json::Value::Null;
    let tagged = |doc: &serde_json::Value, id: &str| -> usize {
        doc["aircraft"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|x| x["receivers"] == serde_json::json!([id]) && x["lat"].is_number())
                    .count()
            })
            .unwrap_or(0)
    };
    while t0.elapsed() < Duration::from_secs(40) {
        std::thread::sleep(Duration::from_millis(500));
        let (code, body) = get(&http, "/data/aircraft.json");
        if code != 200 {
            continue;
        }
        doc = serde_json::from_slice(&body).unwrap();
        if tagged(&doc, "pi-south") >= 10 && tagged(&doc, "pi-north") >= 1 {
            break;
        }
    }
    assert!(tagged(&doc, "pi-south") >= 10, "the sky's aircraft: {doc}");
    let north: Vec<String> = doc["aircraft"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["receivers"] == serde_json::json!(["pi-north"]))
        .map(|x| x["hex"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        !north.is_empty() && north.iter().all(|h| recorded.contains(h)),
        "{north:?} vs {recorded:?}"
    );

    // The page shows them all, and the sky's move between two loads.
    let page = format!("http://{http}/?tiles=none");
    let before = positions(&get(&http, "/data/aircraft.json").1);
    let dom = chromium(&page, 5000, None);
    let shown = markers(&dom);
    let after = positions(&get(&http, "/data/aircraft.json").1);
    // The table has a "heard by" column on the fleet map, naming each one.
    let th = dom
        .split(r#"id="th-receivers""#)
        .nth(1)
        .and_then(|rest| rest.split_once(">heard by</th>"))
        .map(|(attrs, _)| attrs.to_owned());
    assert!(
        th.as_deref().is_some_and(|a| !a.contains("hidden")),
        "no receivers column: {th:?}"
    );
    assert!(
        dom.contains("<td>pi-north</td>") && dom.contains("<td>pi-south</td>"),
        "receivers not in the table: {dom}"
    );
    assert!(
        before
            .keys()
            .filter(|h| after.contains_key(*h))
            .all(|h| shown.contains_key(h)),
        "missing markers: {before:?} vs {shown:?}"
    );
    std::thread::sleep(Duration::from_secs(3));
    let shown2 = markers(&chromium(&page, 5000, None));
    let moved = shown
        .iter()
        .filter(|(h, p)| shown2.get(*h).is_some_and(|q| q != *p))
        .count();
    assert!(moved >= 5, "only {moved} markers moved");
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fleet-map.png");
    chromium(&page, 5000, Some(&shot));

    sigterm(&sky);
    let (status, sky_err) = finish(sky, Duration::from_secs(30));
    assert!(status.success(), "{sky_err}");
    let (_, err) = tail.stop();
    assert!(err.contains("http-listen: serving the map"), "{err}");
}
