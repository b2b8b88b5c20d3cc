//! The map and the JSON files end to end: `run --http-listen` with the
//! simulated sky, its page loaded in headless Chromium (Debian's
//! `chromium`, installed by scripts/test) and read back from the DOM;
//! `--json-dir`; and the server under bad requests, 2 000 idle
//! connections and a slowloris client.

use crate::common::*;
use crate::sources::Running;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

/// One HTTP/1.0 request over a fresh connection: (status, body). Written
/// by hand so that the test can also send what no client library would.
fn http(addr: &str, request: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(request).unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = match resp.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => resp[i + 4..].to_vec(),
        None => Vec::new(),
    };
    (status, body)
}

pub(crate) fn get(addr: &str, path: &str) -> (u16, Vec<u8>) {
    http(
        addr,
        format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes(),
    )
}

/// hex -> (lat, lon) of the aircraft with a position in aircraft.json.
pub(crate) fn positions(json: &[u8]) -> BTreeMap<String, (f64, f64)> {
    let v: serde_json::Value = serde_json::from_slice(json).expect("aircraft.json is JSON");
    v["aircraft"]
        .as_array()
        .expect("an aircraft array")
        .iter()
        .filter_map(|a| {
            Some((
                a["hex"].as_str()?.to_owned(),
                (a["lat"].as_f64()?, a["lon"].as_f64()?),
            ))
        })
        .collect()
}

/// Loads `url` in headless Chromium and returns the DOM after `budget_ms`
/// of page time. Every request but loopback goes to a dead proxy, so the
/// test stays on 127.0.0.1 (and the page falls back to its plain
/// background).
pub(crate) fn chromium(url: &str, budget_ms: u32, screenshot: Option<&Path>) -> String {
    let profile = TempDir::new("chromium");
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        // Chromium never proxies loopback; everything else dies here.
        "--proxy-server=127.0.0.1:9",
        "--window-size=1280,800",
    ])
    .arg(format!("--user-data-dir={}", profile.0.display()))
    .arg(format!("--virtual-time-budget={budget_ms}"));
    match screenshot {
        Some(p) => cmd.arg(format!("--screenshot={}", p.display())),
        None => cmd.arg("--dump-dom"),
    };
    let out = cmd
        .arg(url)
        .output()
        .expect("chromium (scripts/test installs Debian's package)");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// hex -> (lat, lon) of every aircraft marker in a dumped DOM (the page
/// writes them as data attributes on the marker element).
pub(crate) fn markers(dom: &str) -> BTreeMap<String, (f64, f64)> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let k = format!("data-{name}=\"");
        let i = tag.find(&k)? + k.len();
        Some(tag[i..].split('"').next()?.to_owned())
    };
    dom.split('<')
        .filter(|t| t.contains("ac-marker"))
        .filter_map(|t| {
            Some((
                attr(t, "hex")?,
                (attr(t, "lat")?.parse().ok()?, attr(t, "lon")?.parse().ok()?),
            ))
        })
        .collect()
}

#[test]
fn the_map_shows_a_marker_for_every_aircraft_with_a_position_and_they_move() {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut r = Running::start(&[
        "--http-listen",
        &addr,
        "--lat",
        "37.5",
        "--lon",
        "14.0",
        "--stats-interval",
        "1",
    ]);
    r.wait_for("the map server", 10, |_, e| {
        e.contains("http-listen: serving the map")
    });
    // The simulated sky's ten aircraft, each with a position.
    let t0 = Instant::now();
    let mut known = BTreeMap::new();
    while known.len() < 10 && t0.elapsed() < Duration::from_secs(30) {
        thread::sleep(Duration::from_millis(500));
        known = positions(&get(&addr, "/data/aircraft.json").1);
    }
    assert!(
        known.len() >= 10,
        "only {} aircraft with positions",
        known.len()
    );

    let url = format!("http://{addr}/?tiles=none");
    let before = positions(&get(&addr, "/data/aircraft.json").1);
    let dom1 = chromium(&url, 5000, None);
    let after = positions(&get(&addr, "/data/aircraft.json").1);
    let shown = markers(&dom1);
    let hexes = |m: &BTreeMap<String, (f64, f64)>| m.keys().cloned().collect::<BTreeSet<_>>();
    let (b, a, s) = (hexes(&before), hexes(&after), hexes(&shown));
    // Every aircraft with a position before and after the page load has a
    // marker, and no marker is for an aircraft the server never had.
    assert!(
        b.intersection(&a).all(|h| s.contains(h)),
        "missing markers: {b:?} vs {s:?}"
    );
    assert!(
        s.iter().all(|h| b.contains(h) || a.contains(h)),
        "stray markers: {s:?}"
    );
    assert!(
        dom1.contains("aircraft, "),
        "the summary line was not written"
    );
    assert!(dom1.contains("<tbody><tr"), "the table is empty");
    // One receiver: no "heard by" column.
    assert!(
        dom1.contains(r#"id="th-receivers" hidden"#),
        "receivers column shown for one receiver"
    );

    thread::sleep(Duration::from_secs(3));
    let shown2 = markers(&chromium(&url, 5000, None));
    let moved = shown
        .iter()
        .filter(|(h, p)| shown2.get(*h).is_some_and(|q| q != *p))
        .count();
    assert!(
        moved >= shown.len() / 2,
        "only {moved} of {} markers moved in 3 s",
        shown.len()
    );

    // A picture for the docs and for whoever looks at the test's output.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("map.png");
    chromium(&url, 5000, Some(&shot));
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "screenshot of {} bytes",
        png.len()
    );

    let (_, err) = r.stop();
    assert!(!err.contains("http_requests=0 "), "{err}");
}

#[test]
fn json_dir_gets_whole_files_every_second() {
    let dir = TempDir::new("json-dir");
    let out = dir.path("run");
    let mut r = Running::start(&["--json-dir", out.to_str().unwrap()]);
    r.wait_for("the writer", 10, |_, e| e.contains("json-dir: writing"));
    let t0 = Instant::now();
    let mut nows = BTreeSet::new();
    while nows.len() < 3 && t0.elapsed() < Duration::from_secs(15) {
        // Read while the writer renames: every read is a whole document.
        if let Ok(text) = std::fs::read(out.join("aircraft.json")) {
            let v: serde_json::Value = serde_json::from_slice(&text).expect("a whole JSON file");
            nows.insert(v["now"].as_f64().unwrap().to_bits());
        }
        thread::sleep(Duration::from_millis(100));
    }
    assert!(nows.len() >= 3, "aircraft.json did not change every second");
    let rx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("receiver.json")).unwrap()).unwrap();
    assert_eq!(rx["refresh"], 1000);
    assert!(std::fs::read(out.join("stats.json")).is_ok());
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    let _ = r.stop();
    assert!(leftovers.len() <= 1, "temporary files left: {leftovers:?}");
}

#[test]
fn bad_requests_get_clear_answers_and_nothing_from_disk() {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut r = Running::start(&["--http-listen", &addr]);
    r.wait_for("the map server", 10, |_, e| e.contains("serving the map"));
    let (status, body) = get(&addr, "/");
    assert_eq!(status, 200);
    assert!(body.starts_with(b"<!DOCTYPE html>"));
    for path in [
        "/../../../../etc/passwd",
        "/leaflet/../../Cargo.toml",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2fetc%2fpasswd",
        "//etc/passwd",
        "/src/main.rs",
    ] {
        let (status, body) = get(&addr, path);
        assert_eq!(status, 404, "{path}");
        assert!(!String::from_utf8_lossy(&body).contains("root:"), "{path}");
    }
    let (status, _) = http(
        &addr,
        b"POST /data/aircraft.json HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_eq!(status, 405);
    let (status, _) = http(
        &addr,
        b"DELETE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 405);
    // Garbage, and a head far over the limit: an error status or a closed
    // connection, never a page, and the server goes on.
    let (status, _) = http(&addr, b"\x00\x01\x02 not http at all\r\n\r\n");
    assert!(status == 400 || status == 0, "garbage got {status}");
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let (status, _) = http(&addr, huge.as_bytes());
    assert!(
        status == 431 || status == 400 || status == 0,
        "oversized head got {status}"
    );
    assert_eq!(get(&addr, "/data/receiver.json").0, 200);
    let (_, err) = r.stop();
    assert!(!err.contains("panicked"), "{err}");
}

/// Raises this process's open-file limit to its hard limit: 2 000
/// connections need more descriptors than the usual soft 1 024.
fn more_files() -> u64 {
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        l.rlim_cur = l.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        l.rlim_cur as u64
    }
}

fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn idle_floods_and_slowloris_are_bounded_and_the_map_comes_back() {
    assert!(more_files() > 2_100, "need 2 100 open files for this test");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut r = Running::start(&["--http-listen", &addr, "--stats-interval", "1"]);
    r.wait_for("the map server", 10, |_, e| e.contains("serving the map"));
    let pid = r.pid();

    // A slowloris client: one byte of a request head a second.
    let slow = thread::spawn({
        let addr = addr.clone();
        move || {
            let mut s = TcpStream::connect(&addr).unwrap();
            let t0 = Instant::now();
            for b in b"GET / HTTP/1.1\r\nHost: slow\r\nX-Drip: ".iter().cycle() {
                if s.write_all(&[*b]).is_err() || t0.elapsed() > Duration::from_secs(30) {
                    break;
                }
                thread::sleep(Duration::from_secs(1));
            }
            t0.elapsed()
        }
    });
    // 2 000 connections that send nothing.
    let idle: Vec<TcpStream> = (0..2000)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    assert_eq!(idle.len(), 2000);
    r.wait_for("the refusals counted", 10, |_, e| {
        e.lines()
            .any(|l| l.contains("stats") && !l.contains("http_refused=0"))
    });
    // The sky goes on meanwhile: lines keep coming.
    let lines_now = |e: &str| -> u64 {
        e.lines()
            .rev()
            .find_map(|l| l.split(" lines=").nth(1))
            .and_then(|v| v.split(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    let l1 = lines_now(&r.err());
    thread::sleep(Duration::from_secs(2));
    assert!(
        lines_now(&r.err()) > l1,
        "the pipeline stalled under the flood"
    );

    // The header timeout frees the held slots; the map answers again.
    let t0 = Instant::now();
    let mut status = 0;
    while status != 200 && t0.elapsed() < Duration::from_secs(20) {
        thread::sleep(Duration::from_millis(500));
        status = get(&addr, "/data/aircraft.json").0;
    }
    assert_eq!(status, 200, "the map did not come back after the flood");
    let dripped = slow.join().unwrap();
    assert!(
        dripped < Duration::from_secs(20),
        "slowloris kept its connection {dripped:?}"
    );
    let hwm = vm_hwm_kib(pid);
    drop(idle);
    let (_, err) = r.stop();
    assert_eq!(
        err.matches("too many connections").count(),
        1,
        "logged at most once a minute\n{err}"
    );
    eprintln!("peak RSS under 2 000 connections: {hwm} KiB");
    assert!(hwm > 0 && hwm < 64 * 1024, "peak RSS {hwm} KiB");
}
