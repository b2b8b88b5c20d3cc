//! The network outputs end to end: `--beast-listen`, `--raw-listen` and
//! `--beast-connect` of the real binary, read by test clients that parse
//! the formats from their descriptions, by our own `beast:` source, and by
//! a real peer (Debian's dump1090-mutability); peers that hang up, never
//! read, or are too many.

use crate::common::*;
use crate::sources::{beast, decode_frames, listener, recording_frames, untimed, Running};

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// One Beast message as a test reads it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Msg {
    kind: u8,
    timestamp: u64,
    signal: u8,
    payload: Vec<u8>,
}

/// Parses a Beast byte stream from the format description (0x1A, type,
/// 6-byte timestamp, signal, payload; 0x1A doubled inside). Strict: a
/// stream of ours has no garbage, so any stray byte fails the test. A
/// message cut off at the end is left out.
fn parse_beast(wire: &[u8]) -> Vec<Msg> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < wire.len() {
        assert_eq!(wire[i], 0x1A, "byte {i} does not start a message");
        let Some(&kind) = wire.get(i + 1) else { break };
        let len = match kind {
            b'2' => 7,
            b'3' => 14,
            k => panic!("message type {k:#x} at byte {i}: we send Mode S only"),
        };
        let mut j = i + 2;
        let mut body = Vec::new();
        while body.len() < 7 + len && j < wire.len() {
            if wire[j] == 0x1A {
                if j + 1 == wire.len() {
                    break;
                }
                assert_eq!(wire[j + 1], 0x1A, "lone 0x1A inside a message at byte {j}");
                j += 1;
            }
            body.push(wire[j]);
            j += 1;
        }
        if body.len() < 7 + len {
            break;
        }
        let mut ts = [0u8; 8];
        ts[2..].copy_from_slice(&body[..6]);
        out.push(Msg {
            kind,
            timestamp: u64::from_be_bytes(ts),
            signal: body[6],
            payload: body[7..].to_vec(),
        });
        i = j;
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn counts<T: std::hash::Hash + Eq>(items: impl IntoIterator<Item = T>) -> HashMap<T, usize> {
    let mut m = HashMap::new();
    for i in items {
        *m.entry(i).or_insert(0) += 1;
    }
    m
}

/// Reads `sock` until `enough` says so or `secs` pass; the bytes.
fn read_until(mut sock: TcpStream, secs: u64, enough: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let t0 = Instant::now();
    let mut got = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    while !enough(&got) && t0.elapsed() < Duration::from_secs(secs) {
        match sock.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    got
}

/// A fake Beast feeder on `l`: once `go` fires, the recording's frames,
/// each with its own timestamp and signal level; then holds the socket.
fn feeder(l: TcpListener, frames: Vec<Vec<u8>>, go: mpsc::Receiver<()>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        go.recv().unwrap();
        let mut wire = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let kind = if f.len() == 7 { b'2' } else { b'3' };
            wire.extend(beast(kind, sent_ts(i), sent_signal(i), f));
        }
        s.write_all(&wire).unwrap();
        let _ = go.recv_timeout(Duration::from_secs(60));
    })
}

/// The timestamp the feeder gives frame `i`: rising, with 0x1A bytes.
fn sent_ts(i: usize) -> u64 {
    0x1A_0000_0000 + 1000 * i as u64
}

fn sent_signal(i: usize) -> u8 {
    0x1A + (i % 200) as u8
}

#[test]
fn beast_and_raw_outputs_carry_every_frame_and_read_back() {
    let frames = recording_frames();
    let n = frames.len();
    let (l, port) = listener();
    let (go_tx, go_rx) = mpsc::channel();
    let feed = feeder(l, frames.clone(), go_rx);
    let (beast_at, raw_at) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let mut a = Running::start(&[
        "--source",
        &format!("beast:127.0.0.1:{port}"),
        "--beast-listen",
        &beast_at,
        "--raw-listen",
        &raw_at,
        "--stats-interval",
        "1",
    ]);
    a.wait_for("both listeners", 10, |_, e| {
        e.contains("beast-listen: listening") && e.contains("raw-listen: listening")
    });
    let beast_client = TcpStream::connect(&beast_at).unwrap();
    let raw_client = TcpStream::connect(&raw_at).unwrap();
    // Our own Beast source, reading our Beast output.
    let mut b = Running::start(&["--source", &format!("beast:{beast_at}")]);
    a.wait_for("three clients", 10, |_, e| e.contains("listen_clients=3"));
    go_tx.send(()).unwrap();

    let beast_reader =
        thread::spawn(move || read_until(beast_client, 30, |w| parse_beast(w).len() >= n));
    let raw_reader = thread::spawn(move || {
        read_until(raw_client, 30, |w| {
            w.iter().filter(|&&c| c == b'\n').count() >= n
        })
    });
    let beast_wire = beast_reader.join().unwrap();
    let raw_wire = raw_reader.join().unwrap();
    let want = decode_frames(&frames);
    b.wait_for("every frame's line, through our Beast", 30, |o, _| {
        untimed(o) == want
    });
    go_tx.send(()).unwrap();
    let (_, err) = a.stop();
    let (b_out, _) = b.stop();
    feed.join().unwrap();

    // Raw: `*HEX;` lines, upper-case, every frame once.
    let raw_text = String::from_utf8(raw_wire).unwrap();
    let raw: Vec<&str> = raw_text.lines().collect();
    assert!(
        raw.iter().all(|l| l.starts_with('*') && l.ends_with(';')),
        "not AVR lines: {:?}",
        &raw[..raw.len().min(3)]
    );
    let raw_hex: Vec<String> = raw.iter().map(|l| l[1..l.len() - 1].to_owned()).collect();
    assert_eq!(
        counts(raw_hex.iter().cloned()),
        counts(frames.iter().map(|f| hex(f))),
        "{err}"
    );

    // Beast: the same frames in the same order, each with the feeder's
    // timestamp and signal passed through.
    let msgs = parse_beast(&beast_wire);
    let beast_hex: Vec<String> = msgs.iter().map(|m| hex(&m.payload)).collect();
    assert_eq!(beast_hex, raw_hex);
    assert!(msgs
        .iter()
        .all(|m| m.kind == if m.payload.len() == 7 { b'2' } else { b'3' }));
    let sent = counts(
        frames
            .iter()
            .enumerate()
            .map(|(i, f)| (f.clone(), sent_ts(i), sent_signal(i))),
    );
    let got = counts(
        msgs.iter()
            .map(|m| (m.payload.clone(), m.timestamp, m.signal)),
    );
    assert_eq!(
        got, sent,
        "timestamps or signal levels were not passed through"
    );

    // And our `beast:` source read it all back.
    assert_eq!(untimed(&b_out), want);
}

#[test]
fn beast_listen_timestamps_count_the_sample_clock() {
    // A recording read at full speed: the 12 MHz timestamps must be the
    // sample index times 5 at 2.4 MS/s, rising, as mlat-client needs.
    let path = shared("iq/modes1_2400.cu8");
    let beast_at = format!("127.0.0.1:{}", free_port());
    let source = format!("file:{}", path.display());
    let mut a = Running::start(&[
        "--source",
        &source,
        "--sample-rate",
        "2.4M",
        "--replay-speed",
        "realtime",
        "--beast-listen",
        &beast_at,
    ]);
    a.wait_for("the listener", 10, |_, e| {
        e.contains("beast-listen: listening")
    });
    let client = TcpStream::connect(&beast_at).unwrap();
    let wire = read_until(client, 20, |w| parse_beast(w).len() >= 50);
    let _ = a.stop();
    let msgs = parse_beast(&wire);
    assert!(msgs.len() >= 50, "only {} messages", msgs.len());
    assert!(
        msgs.iter().all(|m| m.timestamp % 5 == 0),
        "timestamps are not whole samples at 2.4 MS/s"
    );
    // Held frames come out late, so not strictly in order; most do rise.
    let rising = msgs
        .windows(2)
        .filter(|w| w[1].timestamp >= w[0].timestamp)
        .count();
    assert!(
        rising * 10 >= (msgs.len() - 1) * 9,
        "{rising} of {} rise",
        msgs.len() - 1
    );
    let span_s = (msgs.last().unwrap().timestamp - msgs[0].timestamp) as f64 / 12e6;
    assert!(span_s > 0.0 && span_s < 60.0, "timestamps span {span_s} s");
}

/// Sets a small receive buffer on a listener (its accepted sockets
/// inherit it), so a peer that never reads fills up in seconds, not
/// megabytes.
fn small_rcvbuf(l: &TcpListener) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 4096;
    // SAFETY: a valid socket and a c_int option of the right size.
    let r = unsafe {
        libc::setsockopt(
            l.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "setsockopt SO_RCVBUF");
}

/// A feeder that sends the recording's frames over and over, about 40 000
/// a second, until `stop` fires.
fn endless_feeder(
    l: TcpListener,
    frames: Vec<Vec<u8>>,
    stop: mpsc::Receiver<()>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut round = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let kind = if f.len() == 7 { b'2' } else { b'3' };
            round.extend(beast(kind, sent_ts(i), 50, f));
        }
        let per_round = frames.len().max(1);
        loop {
            if s.write_all(&round).is_err() {
                return;
            }
            let pause = Duration::from_micros(25 * per_round as u64);
            if stop.recv_timeout(pause).is_ok() {
                return;
            }
        }
    })
}

#[test]
fn beast_connect_outlives_peers_that_hang_up_or_never_read() {
    let frames = recording_frames();
    let known: BTreeSet<Vec<u8>> = frames.iter().cloned().collect();
    let (feed_l, feed_port) = listener();
    let (stop_tx, stop_rx) = mpsc::channel();
    let feed = endless_feeder(feed_l, frames, stop_rx);

    let (peer_l, peer_port) = listener();
    small_rcvbuf(&peer_l);
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let (wire_tx, wire_rx) = mpsc::channel();
    let peer = thread::spawn(move || {
        // 1: reads a little and hangs up, most likely mid-message.
        let (mut s, _) = peer_l.accept().unwrap();
        let mut some = [0u8; 1000];
        s.read_exact(&mut some).unwrap();
        drop(s);
        // 2: never reads; kept open.
        let (stuck, _) = peer_l.accept().unwrap();
        // 3: reads for a while.
        let (good, _) = peer_l.accept().unwrap();
        wire_tx
            .send(read_until(good, 20, |w| w.len() > 200_000))
            .unwrap();
        let _ = done_rx.recv_timeout(Duration::from_secs(30));
        drop(stuck);
    });
    let mut a = Running::start(&[
        "--source",
        &format!("beast:127.0.0.1:{feed_port}"),
        "--beast-connect",
        &format!("127.0.0.1:{peer_port}"),
        "--stats-interval",
        "1",
    ]);
    let wire = wire_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the good peer's bytes");
    a.wait_for("a stats line counting the dropped peer", 10, |_, e| {
        e.lines()
            .any(|l| l.contains("stats") && !l.contains("listen_dropped=0"))
    });
    done_tx.send(()).unwrap();
    peer.join().unwrap();
    stop_tx.send(()).unwrap();
    let (out, err) = a.stop();
    feed.join().unwrap();

    // The third peer got a clean stream from its first byte: whole
    // messages, each one of the recording's frames.
    let msgs = parse_beast(&wire);
    assert!(
        msgs.len() > 5000,
        "only {} messages reached the good peer\n{err}",
        msgs.len()
    );
    assert!(
        msgs.iter().all(|m| known.contains(&m.payload)),
        "a frame that was never sent"
    );
    assert!(err.contains("beast-connect: peer left"), "{err}");
    assert!(err.contains("beast-connect: peer not reading"), "{err}");
    assert_eq!(err.matches("beast-connect: connected").count(), 3, "{err}");
    // The sink kept every line: the peers never slowed the pipeline.
    assert!(out.matches("\r\n").count() > 5000);
}

#[test]
fn listeners_refuse_clients_past_their_bound() {
    let raw_at = format!("127.0.0.1:{}", free_port());
    let mut a = Running::start(&["--raw-listen", &raw_at, "--stats-interval", "1"]);
    a.wait_for("the listener", 10, |_, e| {
        e.contains("raw-listen: listening")
    });
    let clients: Vec<TcpStream> = (0..70)
        .map(|_| TcpStream::connect(&raw_at).unwrap())
        .collect();
    a.wait_for("the refusals counted", 10, |_, e| {
        e.contains("listen_refused=6")
    });
    // The 64 kept clients all get frames of the simulated sky.
    let mut live = 0;
    let mut closed = 0;
    for mut c in clients {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 1];
        match c.read(&mut b) {
            Ok(1) => {
                assert_eq!(b[0], b'*');
                live += 1;
            }
            Ok(_) => closed += 1,
            Err(e) => panic!("client read: {e}"),
        }
    }
    // All 70 gone again.
    a.wait_for("the clients gone", 10, |_, e| {
        e.lines()
            .last()
            .is_some_and(|l| l.contains("listen_clients=0"))
    });
    let (_, err) = a.stop();
    assert_eq!((live, closed), (64, 6), "{err}");
    // 70 clients came and went within a minute: a line for the first of
    // each, not one per client.
    for (what, most) in [
        ("too many clients", 1),
        ("client connected", 1),
        ("peer left", 1),
    ] {
        assert_eq!(
            err.matches(what).count(),
            most,
            "'{what}' logged at most once a minute\n{err}"
        );
    }
}

/// dump1090-mutability (Debian's package, installed by scripts/test), net
/// only: Beast in, raw out, aircraft.json written.
struct Dump1090 {
    child: Child,
    raw_port: u16,
    json_dir: TempDir,
}

impl Dump1090 {
    fn start(beast_in: u16) -> Dump1090 {
        let raw_port = free_port();
        let json_dir = TempDir::new("dump1090-json");
        let port = |p: u16| p.to_string();
        let child = Command::new("dump1090-mutability")
            .args(["--net-only", "--net-bind-address", "127.0.0.1", "--quiet"])
            .args([
                "--net-bi-port",
                &port(beast_in),
                "--net-ro-port",
                &port(raw_port),
            ])
            .args([
                "--net-ri-port",
                &port(free_port()),
                "--net-bo-port",
                &port(free_port()),
            ])
            .args(["--net-sbs-port", &port(free_port()), "--net-heartbeat", "0"])
            .arg("--write-json")
            .arg(json_dir.path(""))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dump1090-mutability (scripts/test installs Debian's package)");
        Dump1090 {
            child,
            raw_port,
            json_dir,
        }
    }

    /// The `hex` of every aircraft in its aircraft.json.
    fn aircraft(&self) -> BTreeSet<String> {
        let text = std::fs::read_to_string(self.json_dir.path("aircraft.json")).unwrap_or_default();
        let v: serde_json::Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(_) => return BTreeSet::new(),
        };
        v["aircraft"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["hex"].as_str())
            .map(|h| h.trim_start_matches('~').to_ascii_uppercase())
            .collect()
    }
}

impl Drop for Dump1090 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn dump1090_decodes_our_beast_push_as_we_do() {
    let frames = recording_frames();
    let (l, port) = listener();
    let (go_tx, go_rx) = mpsc::channel();
    let feed = feeder(l, frames.clone(), go_rx);
    let beast_in = free_port();
    let dump1090 = Dump1090::start(beast_in);
    let raw_at = format!("127.0.0.1:{}", free_port());
    let mut a = Running::start(&[
        "--source",
        &format!("beast:127.0.0.1:{port}"),
        "--beast-connect",
        &format!("127.0.0.1:{beast_in}"),
        "--raw-listen",
        &raw_at,
    ]);
    a.wait_for("the push to connect", 20, |_, e| {
        e.contains("beast-connect: connected")
    });
    a.wait_for("the listener", 10, |_, e| {
        e.contains("raw-listen: listening")
    });
    // dump1090's raw output, and ours, from before the first frame.
    let theirs = TcpStream::connect(("127.0.0.1", dump1090.raw_port)).unwrap();
    let ours = TcpStream::connect(&raw_at).unwrap();
    a.wait_for("our raw client", 10, |_, e| e.contains("client connected"));
    thread::sleep(Duration::from_millis(300));
    go_tx.send(()).unwrap();
    let n = frames.len();
    let lines = |w: &[u8]| w.iter().filter(|&&c| c == b'\n').count();
    let ours = read_until(ours, 30, |w| lines(w) >= n);
    // dump1090 has what we sent once its output stops growing.
    let theirs = read_until(theirs, 30, |w| lines(w) >= n);
    let (out, err) = a.stop();
    go_tx.send(()).unwrap();
    feed.join().unwrap();

    let frames_of = |w: &[u8]| -> HashMap<String, usize> {
        counts(
            String::from_utf8_lossy(w)
                .lines()
                .map(|l| {
                    l.trim()
                        .trim_start_matches('*')
                        .trim_end_matches(';')
                        .to_ascii_uppercase()
                })
                .filter(|l| !l.is_empty()),
        )
    };
    let (ours, theirs) = (frames_of(&ours), frames_of(&theirs));
    assert_eq!(ours.values().sum::<usize>(), n, "{err}");
    assert_eq!(
        theirs, ours,
        "dump1090 decoded other frames from our Beast stream"
    );

    // The same aircraft: dump1090's table against the addresses in our
    // SBS lines.
    let ours_icao: BTreeSet<String> = out
        .split("\r\n")
        .filter_map(|l| l.split(',').nth(4))
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect();
    let t0 = Instant::now();
    let mut theirs_icao = dump1090.aircraft();
    while theirs_icao != ours_icao && t0.elapsed() < Duration::from_secs(5) {
        thread::sleep(Duration::from_millis(200));
        theirs_icao = dump1090.aircraft();
    }
    assert!(!ours_icao.is_empty());
    assert_eq!(theirs_icao, ours_icao);
}
