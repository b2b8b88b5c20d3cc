//! Helpers of the Kinesis end-to-end tests: an SDK client for moto, the
//! stream read back from TRIM_HORIZON as counted (key, untimed line)
//! pairs, `run` with the test AWS environment, its log fields, and
//! [`FaultProxy`] (tests/fault_kinesis.py) in front of moto.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::Client;

use super::{aws_env, bin, run, shared, untimed, TempDir};

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

pub fn client(url: &str) -> Client {
    let conf = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(url)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    Client::from_conf(conf)
}

pub fn create_stream(url: &str, name: &str, shards: i32) {
    runtime().block_on(async {
        let c = client(url);
        c.create_stream()
            .stream_name(name)
            .shard_count(shards)
            .send()
            .await
            .expect("CreateStream");
        for _ in 0..100 {
            let s = c
                .describe_stream_summary()
                .stream_name(name)
                .send()
                .await
                .expect("DescribeStreamSummary");
            let active = s
                .stream_description_summary()
                .is_some_and(|d| d.stream_status().as_str() == "ACTIVE");
            if active {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("stream {name} did not become ACTIVE");
    })
}

/// Every record of every shard, from TRIM_HORIZON: (partition key, data).
pub fn read_stream(url: &str, name: &str) -> Vec<(String, Vec<u8>)> {
    runtime().block_on(async {
        let c = client(url);
        let shards = c
            .list_shards()
            .stream_name(name)
            .send()
            .await
            .expect("ListShards");
        let mut out = Vec::new();
        assert!(shards.shards().len() >= 2, "want a stream with 2+ shards");
        for shard in shards.shards() {
            let mut iter = c
                .get_shard_iterator()
                .stream_name(name)
                .shard_id(shard.shard_id())
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .expect("GetShardIterator")
                .shard_iterator()
                .map(str::to_owned);
            while let Some(it) = iter {
                let r = c
                    .get_records()
                    .shard_iterator(it)
                    .limit(10_000)
                    .send()
                    .await
                    .expect("GetRecords");
                if r.records().is_empty() {
                    break;
                }
                for rec in r.records() {
                    out.push((
                        rec.partition_key().unwrap_or_default().to_owned(),
                        rec.data().as_ref().to_vec(),
                    ));
                }
                iter = r.next_shard_iterator().map(str::to_owned);
            }
        }
        out
    })
}

/// Counted (key, untimed line) pairs from the stream's records; each
/// record is one or more `\n`-terminated lines. Also the record count.
pub fn stream_lines(records: &[(String, Vec<u8>)]) -> (HashMap<(String, String), usize>, usize) {
    let mut m = HashMap::new();
    for (key, data) in records {
        let text = std::str::from_utf8(data).expect("record data is UTF-8");
        assert!(text.ends_with('\n'), "record does not end in \\n: {text:?}");
        assert!(!text.contains('\r'), "record has a CR: {text:?}");
        for line in text.split_terminator('\n') {
            let u = untimed(line).unwrap_or_else(|| panic!("not an SBS line: {line:?}"));
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f[4], key, "partition key is not the line's ICAO");
            *m.entry((key.clone(), u)).or_insert(0) += 1;
        }
    }
    (m, records.len())
}

/// What `decode --output sbs` prints for `file`, as counted (ICAO, untimed
/// line) pairs.
pub fn decoded_lines(file: &Path) -> HashMap<(String, String), usize> {
    let out = run(&["decode", "--output", "sbs", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut m = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).split_terminator("\r\n") {
        let u = untimed(line).unwrap_or_else(|| panic!("not an SBS line: {line:?}"));
        let key = line.split(',').nth(4).unwrap().to_owned();
        *m.entry((key, u)).or_insert(0) += 1;
    }
    m
}

pub fn total(m: &HashMap<(String, String), usize>) -> usize {
    m.values().sum()
}

/// `adsb-kinesis run` with the test AWS environment.
pub fn run_cmd(args: &[&str]) -> Command {
    let mut c = bin();
    aws_env(&mut c);
    c.arg("run")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Wait for `child` up to `limit`, collecting its output; kill it after.
pub fn finish(mut child: Child, limit: Duration) -> (ExitStatus, String) {
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).ok();
        s
    });
    let mut out = child.stdout.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        out.read_to_end(&mut s).ok();
        s
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > limit {
            child.kill().ok();
            let err = reader.join().unwrap();
            panic!("run did not finish within {limit:?}\n{err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = out_reader.join().unwrap();
    assert!(stdout.is_empty(), "the Kinesis sink wrote to stdout");
    (status, reader.join().unwrap())
}

/// A number from the last `kinesis finished` log line: `field=N`.
pub fn finished_field(stderr: &str, field: &str) -> u64 {
    log_field(stderr, "kinesis finished", field)
}

/// Whether a run paced like a radio lost input on this machine: it drops
/// sample buffers or frames when it falls behind, and then the lines it
/// made are not those `decode` prints (a lost CPR half leaves a position
/// out, a lost frame an altitude), so only counts can be compared.
pub fn input_dropped(stderr: &str) -> bool {
    log_field(stderr, "finished frames=", "buffers_dropped") > 0
        || log_field(stderr, "finished frames=", "frames_dropped") > 0
}

/// A number `field=N` from the last log line containing `marker`.
pub fn log_field(stderr: &str, marker: &str, field: &str) -> u64 {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no {marker:?} line\n{stderr}"));
    let pat = format!(" {field}=");
    let at = line
        .find(&pat)
        .unwrap_or_else(|| panic!("no {field} in {line}"));
    line[at + pat.len()..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad {field} in {line}"))
}

/// The recording repeated `times` times (a longer input with a known
/// decode), in `dir`.
pub fn repeated_recording(dir: &TempDir, times: usize) -> std::path::PathBuf {
    let bytes = std::fs::read(shared("iq/modes1_2400.cu8")).expect("recording");
    let p = dir.path("long.cu8");
    let mut f = std::fs::File::create(&p).unwrap();
    for _ in 0..times {
        f.write_all(&bytes).unwrap();
    }
    p
}

/// How the lines read back from a stream compare with the lines expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Expected lines (with multiplicity).
    pub expected: usize,
    /// Expected lines the stream lacks.
    pub missing: usize,
    /// Extra copies of expected lines.
    pub duplicates: usize,
    /// Lines in the stream that were not expected at all.
    pub unexpected: usize,
}

/// Compare counted (key, untimed line) pairs: what the stream holds
/// (`got`) against what should be there once each (`want`).
pub fn compare(
    got: &HashMap<(String, String), usize>,
    want: &HashMap<(String, String), usize>,
) -> Delivery {
    let mut d = Delivery {
        expected: total(want),
        missing: 0,
        duplicates: 0,
        unexpected: 0,
    };
    for (k, &w) in want {
        let g = got.get(k).copied().unwrap_or(0);
        d.missing += w.saturating_sub(g);
        d.duplicates += g.saturating_sub(w);
    }
    for (k, &g) in got {
        if !want.contains_key(k) {
            d.unexpected += g;
        }
    }
    d
}

/// tests/fault_kinesis.py, the fault-injecting Kinesis proxy, in front of
/// `upstream` on a port it picks itself; killed when dropped.
pub struct FaultProxy {
    pub port: u16,
    child: Child,
    /// Kept open: the proxy prints its final stats there at exit.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl FaultProxy {
    /// Start the proxy with extra command-line options (`--fail-records
    /// 0.3`, ...) and wait for its `LISTENING <port>` line.
    pub fn start(upstream: &str, options: &[&str]) -> FaultProxy {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fault_kinesis.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .args(["--upstream", upstream, "--listen-port", "0"])
            .args(options)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 tests/fault_kinesis.py");
        let mut stdout = BufReader::new(child.stdout.take().expect("proxy stdout"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("read the proxy's stdout");
        let port = line
            .strip_prefix("LISTENING ")
            .and_then(|p| p.trim().parse().ok());
        let Some(port) = port else {
            let _ = child.kill();
            let status = child.wait();
            panic!("the proxy did not print LISTENING <port> but {line:?} ({status:?})");
        };
        FaultProxy {
            port,
            child,
            _stdout: stdout,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One call to the control API; the answer's JSON body.
    fn control(&self, method: &str, path: &str, body: &str) -> serde_json::Value {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect proxy");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("send control request");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("read control answer");
        let (head, json) = answer
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no HTTP answer from the proxy: {answer:?}"));
        assert!(
            head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
            "{method} {path}: {head}\n{json}"
        );
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{method} {path}: {e}: {json:?}"))
    }

    /// The proxy's counters (`GET /_fault/stats`).
    pub fn stats(&self) -> serde_json::Value {
        self.control("GET", "/_fault/stats", "")
    }

    /// Change settings at run time (`POST /_fault/config`); the new
    /// settings.
    pub fn configure(&self, settings: serde_json::Value) -> serde_json::Value {
        self.control("POST", "/_fault/config", &settings.to_string())
    }
}

/// A counter from the proxy's stats.
pub fn stat(stats: &serde_json::Value, name: &str) -> u64 {
    stats[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name} in {stats}"))
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
