//! Logging into a real journal: a private systemd-journald, started inside
//! `unshare --mount` with a tmpfs on /run (the host's /run and journal are
//! untouched), and the real binary started the way systemd starts a
//! service: stderr on a journal stream and `JOURNAL_STREAM` naming it.
//! `journalctl -D` then reads what arrived.
//!
//! Needs root (for the mount namespace), /lib/systemd/systemd-journald,
//! journalctl, unshare and python3 (which sets up the stream connection).
//! Without them the test fails; `TEST_SKIP_JOURNALD=1` skips it,
//! saying so, for machines that cannot run a journal.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::TempDir;

/// Runs inside the mount namespace: journald, the program, journalctl.
const HARNESS: &str = r#"set -eu
out=$1; shift
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/journal /run/log/journal
/lib/systemd/systemd-journald >"$out/journald.log" 2>&1 &
jpid=$!
i=0
while [ ! -S /run/systemd/journal/socket ] || [ ! -S /run/systemd/journal/stdout ]; do
    i=$((i + 1))
    if [ $i -gt 200 ]; then echo "journald did not start" >&2; cat "$out/journald.log" >&2; exit 3; fi
    sleep 0.05
done
rc=0
python3 "$out/stream.py" "$@" || rc=$?
sleep 0.5
kill -TERM $jpid
wait $jpid || true
journalctl -D /run/log/journal -o json --no-pager -t adsb-kinesis >"$out/journal.json"
journalctl -D /run/log/journal -o short --no-pager -t adsb-kinesis >"$out/journal.txt"
exit $rc
"#;

/// What systemd does for `StandardError=journal`: connect to journald's
/// stdout socket, send the stream header (identifier, unit, priority,
/// level prefix, forward to syslog/kmsg/console), hand the socket over as
/// stderr and name it in JOURNAL_STREAM as DEVICE:INODE. Then SIGTERM after
/// a few seconds, as `systemctl stop` would.
const STREAM: &str = r#"import os, signal, socket, subprocess, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect("/run/systemd/journal/stdout")
s.sendall(b"adsb-kinesis\n\n6\n0\n0\n0\n0\n")
s.shutdown(socket.SHUT_RD)
st = os.fstat(s.fileno())
env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
p = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=s.fileno(), env=env)
time.sleep(4.5)
p.send_signal(signal.SIGTERM)
sys.exit(p.wait(timeout=30))
"#;

fn journal_can_run() -> Result<(), String> {
    for p in ["/lib/systemd/systemd-journald", "/usr/bin/journalctl"] {
        if !Path::new(p).exists() {
            return Err(format!("{p} is missing (Debian package systemd)"));
        }
    }
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root: unshare --mount needs CAP_SYS_ADMIN".into());
    }
    Ok(())
}

#[test]
fn journal_entries_carry_structured_fields() {
    if let Err(why) = journal_can_run() {
        if std::env::var("TEST_SKIP_JOURNALD").as_deref() == Ok("1") {
            eprintln!("SKIPPED (TEST_SKIP_JOURNALD=1): {why}");
            return;
        }
        panic!("cannot run a private journald: {why}; set TEST_SKIP_JOURNALD=1 to skip");
    }
    let dir = TempDir::new("journald");
    std::fs::write(dir.path("harness.sh"), HARNESS).unwrap();
    std::fs::write(dir.path("stream.py"), STREAM).unwrap();
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh"])
        .arg(dir.path("harness.sh"))
        .arg(&dir.0)
        .arg(env!("CARGO_BIN_EXE_adsb-kinesis"))
        .args(["run", "--source", "sim", "--stats-interval", "1"])
        .env("RUST_LOG", "info,adsb_kinesis::daemon=debug")
        .env_remove("NOTIFY_SOCKET")
        .output()
        .expect("run unshare");
    assert!(
        out.status.success(),
        "harness failed: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.path("journal.txt")).unwrap();
    eprintln!("journalctl -o short:\n{text}");
    let entries: Vec<serde_json::Value> = std::fs::read_to_string(dir.path("journal.json"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("journalctl -o json line"))
        .collect();
    let field =
        |e: &serde_json::Value, k: &str| e.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    assert!(
        !entries.is_empty(),
        "nothing from adsb-kinesis in the journal"
    );
    // Native entries only: nothing fell back to plain text on the stream.
    for e in &entries {
        assert_eq!(field(e, "_TRANSPORT").as_deref(), Some("journal"), "{e}");
    }
    let with = |msg: &str| -> Vec<&serde_json::Value> {
        entries
            .iter()
            .filter(|e| field(e, "MESSAGE").is_some_and(|m| m.starts_with(msg)))
            .collect()
    };
    let starting = with("starting");
    assert_eq!(starting.len(), 1, "{entries:#?}");
    assert_eq!(field(starting[0], "ADSB_SOURCE").as_deref(), Some("sim"));
    assert_eq!(field(starting[0], "PRIORITY").as_deref(), Some("6"));
    assert!(field(starting[0], "CODE_FILE").is_some_and(|f| f.ends_with("daemon/mod.rs")));

    // Stats lines: readable MESSAGE, and each number a field of its own.
    let stats = with("stats ");
    assert!(stats.len() >= 2, "stats entries: {stats:#?}");
    for s in &stats {
        let m = field(s, "MESSAGE").unwrap();
        let fps = field(s, "ADSB_FRAMES_PER_S").expect("ADSB_FRAMES_PER_S");
        assert!(fps.parse::<f64>().is_ok(), "{fps}");
        assert!(m.contains(&format!("frames_per_s={fps}")), "{m}");
        let aircraft = field(s, "ADSB_AIRCRAFT").expect("ADSB_AIRCRAFT");
        assert!(aircraft.parse::<u64>().is_ok());
    }
    assert!(
        stats.iter().any(|s| field(s, "ADSB_FRAMES_PER_S")
            .unwrap()
            .parse::<f64>()
            .unwrap()
            > 10.0),
        "the simulated sky decoded nothing? {stats:#?}"
    );

    // Per-aircraft entries (debug): ICAO as six upper-case hex digits,
    // matchable with `journalctl ADSB_ICAO=...`.
    let new = with("new aircraft");
    assert!(!new.is_empty(), "no new-aircraft entries");
    for e in &new {
        let icao = field(e, "ADSB_ICAO").expect("ADSB_ICAO");
        assert!(
            icao.len() == 6
                && icao
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()),
            "{icao}"
        );
        assert_eq!(field(e, "PRIORITY").as_deref(), Some("7"));
    }

    // SIGTERM: the shutdown and the final summary.
    assert_eq!(with("SIGTERM").len(), 1);
    let fin = with("finished");
    assert_eq!(fin.len(), 1);
    assert!(field(fin[0], "ADSB_LINES").unwrap().parse::<u64>().unwrap() > 0);
    // And the short view a person reads with `journalctl -f` has the numbers.
    assert!(text.contains("adsb-kinesis["), "{text}");
    assert!(text.contains("stats frames_per_s="), "{text}");
}
