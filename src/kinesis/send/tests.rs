//! The sender against in-memory fake Kinesis endpoints: partial failures,
//! throttled requests, an endpoint that is down, and the shutdown
//! deadline. Real time with millisecond pauses (the spool works through
//! `spawn_blocking`, which a paused clock would skip past).

use super::*;
use crate::kinesis::spool::SpoolOptions;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;

/// What the fake does with each request.
#[derive(Clone, Copy)]
enum Mode {
    /// Store everything.
    Up,
    /// Fail every request with a connection error (nothing stored).
    Down,
    /// Fail `entry_pct` % of entries (ProvisionedThroughputExceeded or
    /// InternalFailure) and throttle `request_pct` % of whole requests.
    Flaky { entry_pct: u32, request_pct: u32 },
}

struct Fake {
    mode: Mode,
    stored: Mutex<Vec<Record>>,
    calls: AtomicUsize,
    rng: Mutex<fastrand::Rng>,
}

impl Fake {
    fn new(mode: Mode) -> Arc<Self> {
        Arc::new(Fake {
            mode,
            stored: Mutex::new(Vec::new()),
            calls: AtomicUsize::new(0),
            rng: Mutex::new(fastrand::Rng::with_seed(7)),
        })
    }
}

impl PutRecordsApi for Arc<Fake> {
    async fn put_records(&self, records: &[Record]) -> Result<Vec<EntryResult>, RequestFailure> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        assert_eq!(
            check_request(records),
            Ok(()),
            "an over-limit request was sent"
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
        match self.mode {
            Mode::Down => Err(RequestFailure {
                class: ErrorClass::Transient,
                outcome_unknown: false,
                code: None,
                message: "connection refused".into(),
            }),
            Mode::Up => {
                self.stored.lock().unwrap().extend_from_slice(records);
                Ok(vec![EntryResult::ok(); records.len()])
            }
            Mode::Flaky {
                entry_pct,
                request_pct,
            } => {
                let mut rng = self.rng.lock().unwrap();
                if rng.u32(0..100) < request_pct {
                    return Err(RequestFailure {
                        class: ErrorClass::Throttled,
                        outcome_unknown: false,
                        code: Some("ThrottlingException".into()),
                        message: "Rate exceeded".into(),
                    });
                }
                let mut out = Vec::with_capacity(records.len());
                let mut stored = self.stored.lock().unwrap();
                for r in records {
                    if rng.u32(0..100) < entry_pct {
                        let code = if rng.bool() {
                            "ProvisionedThroughputExceededException"
                        } else {
                            "InternalFailure"
                        };
                        out.push(EntryResult::failed(code, "injected"));
                    } else {
                        stored.push(r.clone());
                        out.push(EntryResult::ok());
                    }
                }
                Ok(out)
            }
        }
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "adsbk-send-{name}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

fn open_spool(dir: &TempDir, tel: &Arc<SenderTelemetry>) -> Handoff {
    let opts = SpoolOptions {
        max_bytes: 8 << 20,
        segment_bytes: 64 << 10,
    };
    let (spool, _) = Spool::open(&dir.0, opts).unwrap();
    Handoff::new(spool, tel.clone())
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(5),
    }
}

/// `n` records over 7 keys, numbered per key so order can be checked.
fn records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            partition_key: format!("{:06X}", i % 7),
            data: format!("line {i}\n").into_bytes(),
        })
        .collect()
}

/// Feed `recs` as batches of 50 through deliver() (channel or spool), run
/// the sender until the channel closes and the spool is empty, or until
/// `give_up_after`.
async fn run_sender(
    api: Arc<Fake>,
    spool: Handoff,
    tel: Arc<SenderTelemetry>,
    recs: Vec<Record>,
    give_up_after: Option<Duration>,
) {
    let give_up = CancellationToken::new();
    let sender = tokio::spawn(sender(
        api,
        spool.clone(),
        SenderOptions {
            stream: "test".into(),
            retry: policy(),
            config_retry: Duration::from_millis(5),
        },
        CancellationToken::new(),
        give_up.clone(),
        tel,
    ));
    for chunk in recs.chunks(50) {
        spool.deliver(chunk.to_vec()).await.unwrap();
    }
    spool.close_input().await.unwrap();
    if let Some(after) = give_up_after {
        tokio::time::sleep(after).await;
        give_up.cancel();
    }
    tokio::time::timeout(Duration::from_secs(60), sender)
        .await
        .expect("sender finished")
        .unwrap()
        .unwrap();
}

fn count(recs: &[Record]) -> HashMap<(String, Vec<u8>), usize> {
    let mut m = HashMap::new();
    for r in recs {
        *m.entry((r.partition_key.clone(), r.data.clone()))
            .or_insert(0) += 1;
    }
    m
}

#[tokio::test]
async fn flaky_endpoint_gets_every_record_exactly_once() {
    let dir = TempDir::new("flaky");
    let tel = Arc::new(SenderTelemetry::default());
    let spool = open_spool(&dir, &tel);
    let api = Fake::new(Mode::Flaky {
        entry_pct: 30,
        request_pct: 10,
    });
    let recs = records(3000);
    run_sender(api.clone(), spool, tel.clone(), recs.clone(), None).await;
    let stored = api.stored.lock().unwrap().clone();
    // Every record once: only failed entries were resent.
    assert_eq!(count(&stored), count(&recs));
    let s = tel.snapshot();
    assert_eq!(s.records_sent, 3000);
    assert_eq!(s.unknown_outcome, 0);
    assert!(s.records_retried > 0 && s.throttles > 0, "{s:?}");
    assert_eq!(s.spool_records, 0);
    assert_eq!(s.put_calls, api.calls.load(Ordering::Relaxed) as u64);
}

#[tokio::test]
async fn order_per_key_holds_without_failures() {
    let dir = TempDir::new("order");
    let tel = Arc::new(SenderTelemetry::default());
    let spool = open_spool(&dir, &tel);
    let api = Fake::new(Mode::Up);
    let recs = records(2000);
    run_sender(api.clone(), spool, tel.clone(), recs.clone(), None).await;
    let stored = api.stored.lock().unwrap().clone();
    // With a queue of 4 batches and 40 batches offered at once, some went
    // through the spool: the order must still hold.
    assert_eq!(stored, recs);
}

#[tokio::test]
async fn endpoint_down_spools_everything_then_next_run_delivers() {
    let dir = TempDir::new("down");
    let recs = records(700);
    {
        let tel = Arc::new(SenderTelemetry::default());
        let spool = open_spool(&dir, &tel);
        let api = Fake::new(Mode::Down);
        run_sender(
            api.clone(),
            spool,
            tel.clone(),
            recs.clone(),
            Some(Duration::from_millis(300)),
        )
        .await;
        assert!(api.stored.lock().unwrap().is_empty());
        let s = tel.snapshot();
        assert_eq!(s.spool_records, 700, "{s:?}");
        assert!(s.put_calls > 1);
    }
    // The next start: the spool goes first, then new data.
    let tel = Arc::new(SenderTelemetry::default());
    let spool = open_spool(&dir, &tel);
    let api = Fake::new(Mode::Up);
    let more: Vec<Record> = records(100)
        .into_iter()
        .map(|mut r| {
            r.data.splice(0..0, *b"new ");
            r
        })
        .collect();
    run_sender(api.clone(), spool, tel.clone(), more.clone(), None).await;
    let stored = api.stored.lock().unwrap().clone();
    let mut want = recs.clone();
    want.extend(more);
    assert_eq!(count(&stored), count(&want));
    // The spooled records were sent before the new ones ...
    assert!(stored[..700].iter().all(|r| !r.data.starts_with(b"new ")));
    // ... in their order, except the batch that was being retried when
    // the first run gave up: it went back to the end of the spool.
    let retried: Vec<&Record> = stored[..700]
        .iter()
        .filter(|r| !recs[..50].contains(r))
        .collect();
    let expected: Vec<&Record> = recs[50..].iter().collect();
    assert_eq!(retried, expected);
    assert_eq!(tel.snapshot().spool_records, 0);
}
