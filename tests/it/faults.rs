//! Delivery through a misbehaving Kinesis: the real binary sends to
//! tests/fault_kinesis.py, a fault-injecting proxy in front of a real moto
//! server, and the stream is then read back from moto directly, from
//! TRIM_HORIZON on every shard. Every line `decode` prints for the input
//! must be there; a line may be there twice only if the proxy stored a
//! request whose response the client never got (`unknown_outcome_records`),
//! and never when no fault can lose a response.
//!
//! `cargo test --test faults -- --nocapture` prints the numbers. moto must
//! be importable (scripts/test installs it): without it these tests fail,
//! they do not skip. They run one at a time, so that a real-time replay is
//! not starved by the others on a small machine.

use crate::common;
use common::kinesis::*;
use common::*;

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::json;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Short pauses so that many retries fit in a few seconds; a hang
/// (`--hang-seconds 1`) outlasts the 500 ms attempt timeout.
const FAST_RETRY: [&str; 6] = [
    "--retry-base-ms",
    "5",
    "--retry-max-ms",
    "100",
    "--request-timeout-ms",
    "500",
];

/// One run of `run --stream S` through the proxy, and what came of it.
struct Outcome {
    /// What the stream should hold: `decode --output sbs` of the input.
    want: HashMap<(String, String), usize>,
    /// What it holds.
    got: HashMap<(String, String), usize>,
    delivery: Delivery,
    /// The proxy's counters after the run.
    proxy: serde_json::Value,
    /// `run`'s stderr.
    err: String,
}

impl Outcome {
    fn sender(&self, field: &str) -> u64 {
        finished_field(&self.err, field)
    }

    fn proxy(&self, name: &str) -> u64 {
        stat(&self.proxy, name)
    }

    /// The figures a reader of `--nocapture` wants.
    fn report(&self, test: &str) {
        let d = &self.delivery;
        eprintln!(
            "{test}: {} lines expected, {} in the stream ({} missing, {} duplicates, {} unexpected); \
             sender: put_records_calls={} records_retried={} throttles={} unknown_outcome={}; \
             proxy: put_records_requests={} records_failed={} throttled={} errored_500={} hung={} \
             dropped={} outage_closed={} records_forwarded={} unknown_outcome_records={}",
            d.expected,
            total(&self.got),
            d.missing,
            d.duplicates,
            d.unexpected,
            self.sender("put_records_calls"),
            self.sender("records_retried"),
            self.sender("throttles"),
            self.sender("unknown_outcome"),
            self.proxy("put_records_requests"),
            self.proxy("records_failed"),
            self.proxy("throttled"),
            self.proxy("errored_500"),
            self.proxy("hung"),
            self.proxy("dropped"),
            self.proxy("outage_closed"),
            self.proxy("records_forwarded"),
            self.proxy("unknown_outcome_records"),
        );
    }

    /// Nothing lost, nothing foreign, and no more duplicates than records
    /// the proxy stored behind the client's back.
    fn assert_complete(&self) {
        let d = &self.delivery;
        assert_eq!(d.unexpected, 0, "lines decode does not print\n{}", self.err);
        assert_eq!(d.missing, 0, "lines lost\n{}", self.err);
        let unknown = self.proxy("unknown_outcome_records");
        assert!(
            d.duplicates as u64 <= unknown,
            "{} duplicates, but only {unknown} records stored with the outcome unknown\n{}",
            d.duplicates,
            self.err
        );
        assert_eq!(self.sender("spool_records"), 0, "{}", self.err);
        assert_eq!(
            self.sender("lines_sent"),
            self.sender("lines_in"),
            "{}",
            self.err
        );
    }
}

/// Start moto, a 2-shard stream on it, the proxy with `proxy_options`,
/// then `run` on `file` through the proxy with the fast retry flags and
/// `extra`; `during` is called while it runs. Returns once `run` has
/// exited and the stream has been read back.
fn run_through_proxy(
    file: &std::path::Path,
    proxy_options: &[&str],
    extra: &[&str],
    during: impl FnOnce(&FaultProxy),
) -> Outcome {
    let moto = Moto::start();
    create_stream(&moto.url(), "S", 2);
    let proxy = FaultProxy::start(&moto.url(), proxy_options);
    let spool = TempDir::new("faults-spool");
    let source = format!("file:{}", file.display());
    let url = proxy.url();
    let mut args = vec![
        "--source",
        &source,
        "--stream",
        "S",
        "--endpoint-url",
        &url,
        "--spool-dir",
        spool.0.to_str().unwrap(),
        "--shutdown-timeout",
        "90s",
    ];
    args.extend(FAST_RETRY);
    args.extend(extra);
    let child = run_cmd(&args).spawn().expect("start run");
    during(&proxy);
    let (status, err) = finish(child, Duration::from_secs(100));
    assert!(status.success(), "{status:?}\n{err}");
    let proxy_stats = proxy.stats();
    let (got, _) = stream_lines(&read_stream(&moto.url(), "S"));
    let want = decoded_lines(file);
    assert!(total(&want) > 1000, "too few reference lines");
    Outcome {
        delivery: compare(&got, &want),
        want,
        got,
        proxy: proxy_stats,
        err,
    }
}

#[test]
fn failed_records_and_throttles_deliver_everything_once() {
    let _one = serial();
    let dir = TempDir::new("faults-a");
    let file = repeated_recording(&dir, 20);
    let t0 = Instant::now();
    let o = run_through_proxy(
        &file,
        &["--fail-records", "0.3", "--throttle", "0.1", "--seed", "1"],
        &["--linger", "50ms"],
        |_| {},
    );
    o.report("failed records + throttles");
    eprintln!("  ({:.1} s)", t0.elapsed().as_secs_f64());
    // The faults happened.
    assert!(o.proxy("records_failed") > 0, "{}", o.proxy);
    assert!(o.proxy("throttled") > 0, "{}", o.proxy);
    assert!(o.sender("records_retried") > 0, "{}", o.err);
    assert!(o.sender("throttles") > 0, "{}", o.err);
    o.assert_complete();
    // Every response arrived, so nothing may be stored twice.
    assert_eq!(o.proxy("unknown_outcome_records"), 0, "{}", o.proxy);
    assert_eq!(o.delivery.duplicates, 0, "{}", o.err);
    assert_eq!(o.got, o.want);
}

#[test]
fn errors_hangs_and_drops_lose_nothing() {
    let _one = serial();
    let dir = TempDir::new("faults-b");
    let file = repeated_recording(&dir, 20);
    let t0 = Instant::now();
    let o = run_through_proxy(
        &file,
        &[
            "--fail-records",
            "0.3",
            "--throttle",
            "0.1",
            "--error-500",
            "0.08",
            "--hang",
            "0.08",
            "--hang-seconds",
            "1",
            "--drop",
            "0.08",
            "--seed",
            "2",
        ],
        &["--linger", "50ms"],
        |_| {},
    );
    o.report("+ 500s, hangs, drops");
    eprintln!("  ({:.1} s)", t0.elapsed().as_secs_f64());
    for fault in [
        "records_failed",
        "throttled",
        "errored_500",
        "hung",
        "dropped",
    ] {
        assert!(o.proxy(fault) > 0, "no {fault}: {}", o.proxy);
    }
    // Hangs and drops leave the client not knowing; it counted them.
    assert!(o.sender("unknown_outcome") > 0, "{}", o.err);
    o.assert_complete();
    // Faults of every kind between successes: one failure line and one
    // recovery line a minute at most, not a pair per alternation.
    let minutes = 1 + t0.elapsed().as_secs() / 60;
    for line in ["PutRecords failed", "PutRecords succeeds again"] {
        let n = o.err.matches(line).count() as u64;
        assert!(
            n <= minutes,
            "{n} '{line}' lines in {minutes} min\n{}",
            o.err
        );
    }
}

#[test]
fn outage_toggled_mid_run_loses_nothing() {
    let _one = serial();
    let dir = TempDir::new("faults-c");
    // ~4.5 s of signal, replayed in real time.
    let file = repeated_recording(&dir, 25);
    let t0 = Instant::now();
    let o = run_through_proxy(
        &file,
        &["--seed", "3"],
        &[
            "--replay-speed",
            "realtime",
            "--linger",
            "200ms",
            "--stats-interval",
            "1",
        ],
        |proxy| {
            std::thread::sleep(Duration::from_millis(1000));
            let on = proxy.configure(json!({"outage": true}));
            assert_eq!(on["outage"], true, "{on}");
            std::thread::sleep(Duration::from_millis(2500));
            let off = proxy.configure(json!({"outage": false}));
            assert_eq!(off["outage"], false, "{off}");
        },
    );
    o.report("outage for 2.5 s");
    eprintln!("  ({:.1} s)", t0.elapsed().as_secs_f64());
    assert!(o.proxy("outage_closed") > 0, "{}", o.proxy);
    assert!(
        o.sender("spooled_batches") > 0,
        "the outage did not make the sender spill to the spool\n{}",
        o.err
    );
    // The outage cuts requests before they are forwarded: nothing was
    // stored behind the client's back, so nothing may arrive twice, and
    // every line that entered the sink is in the stream.
    assert_eq!(o.proxy("unknown_outcome_records"), 0, "{}", o.proxy);
    assert_eq!(total(&o.got) as u64, o.sender("lines_in"), "{}", o.err);
    assert_eq!(o.sender("spool_records"), 0, "{}", o.err);
    // A real-time source drops sample buffers, like a radio, if this
    // machine cannot keep up; when it did keep up, the stream holds
    // exactly what decode prints.
    if input_dropped(&o.err) {
        eprintln!("  (the replay dropped input on this machine: compared with lines_in only)");
    } else {
        let d = &o.delivery;
        assert_eq!(d.duplicates, 0, "{}", o.err);
        o.assert_complete();
    }
}
