//! Throughput of the Kinesis sink's sending path, in SBS lines per second:
//! lines go through the real batch task (packer, batcher), the handoff
//! (queue, and the spool when the sender falls behind), the sender task
//! and the AWS SDK's `PutRecords` encoding and HTTP client, to a fake
//! Kinesis endpoint in this process that reads each request by its
//! `Content-Length`, counts its records and answers that all succeeded.
//!
//! ```text
//! scripts/bench-sender                     # release, pinned to one core
//! cargo run --release --example sender_bench -- [LINES]
//! ```
//!
//! Everything shares the process, the fake endpoint included, so under
//! `taskset -c 0` the figure is a lower bound for the sender on one core.
//! Both wall-clock and CPU-time rates are printed: the machine may be busy.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use adsb_kinesis::aws::{self, AwsOptions, Kinesis, StreamId};
use adsb_kinesis::kinesis::send::{
    batch_stage, sender, BatchOptions, Handoff, SenderOptions, SenderTelemetry,
};
use adsb_kinesis::kinesis::{Spool, SpoolOptions};
use adsb_kinesis::modes::Icao;
use adsb_kinesis::retry::RetryPolicy;
use adsb_kinesis::sbs::SbsLine;
use tokio_util::sync::CancellationToken;

/// What the fake endpoint has seen.
#[derive(Default)]
struct Served {
    requests: AtomicU64,
    records: AtomicU64,
}

/// Accept connections forever; one thread per connection.
fn serve(listener: TcpListener, served: Arc<Served>) {
    for sock in listener.incoming() {
        let Ok(sock) = sock else { continue };
        let served = served.clone();
        std::thread::spawn(move || {
            if let Err(e) = connection(sock, &served) {
                eprintln!("fake endpoint: {e}");
            }
        });
    }
}

/// Answer the requests of one keep-alive connection until it closes.
fn connection(sock: TcpStream, served: &Served) -> io::Result<()> {
    sock.set_nodelay(true)?;
    let mut out = sock.try_clone()?;
    let mut input = BufReader::with_capacity(64 * 1024, sock);
    let mut line = String::new();
    let mut body = Vec::new();
    let mut answer = Vec::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(()); // closed between requests
        }
        let mut length = None;
        let mut expect_continue = false;
        loop {
            line.clear();
            if input.read_line(&mut line)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = Some(value.parse::<usize>().map_err(|_| {
                        io::Error::new(io::ErrorKind::InvalidData, "bad Content-Length")
                    })?);
                } else if name.eq_ignore_ascii_case("expect")
                    && value.eq_ignore_ascii_case("100-continue")
                {
                    expect_continue = true;
                }
            }
        }
        let length = length.ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "request without Content-Length")
        })?;
        if expect_continue {
            out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        body.resize(length, 0);
        input.read_exact(&mut body)?;
        // One `"PartitionKey"` per entry; base64 data holds no quotes.
        let records = count(&body, b"\"PartitionKey\"");
        served.requests.fetch_add(1, Ordering::Relaxed);
        served.records.fetch_add(records as u64, Ordering::Relaxed);

        answer.clear();
        answer.extend_from_slice(b"{\"FailedRecordCount\":0,\"Records\":[");
        for i in 0..records {
            if i > 0 {
                answer.push(b',');
            }
            answer.extend_from_slice(
                b"{\"SequenceNumber\":\"49650000000000000000000000000000000000000000000000000000\",\
                  \"ShardId\":\"shardId-000000000000\"}",
            );
        }
        answer.extend_from_slice(b"]}");
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\n\
             x-amzn-RequestId: bench\r\nContent-Length: {}\r\n\r\n",
            answer.len()
        )?;
        out.write_all(&answer)?;
    }
}

/// Occurrences of `pat` in `hay`.
fn count(hay: &[u8], pat: &[u8]) -> usize {
    let mut n = 0;
    let mut at = 0;
    while let Some(i) = hay[at..].iter().position(|&b| b == pat[0]) {
        let start = at + i;
        if hay[start..].starts_with(pat) {
            n += 1;
            at = start + pat.len();
        } else {
            at = start + 1;
        }
    }
    n
}

/// A few hundred distinct lines of 100 aircraft: positions, velocities,
/// altitudes, identities, as a busy site sends them.
fn sky() -> Vec<SbsLine> {
    let mut lines = Vec::new();
    for step in 0..4 {
        for a in 0..100u32 {
            let t = 1_700_000_000_000 + i64::from(step * 100 + a) * 7;
            let mut l = SbsLine {
                msg_type: 3,
                icao: Icao(0x3c_0000 + a * 37),
                generated_ms: t,
                logged_ms: t + 3,
                callsign: None,
                altitude_ft: Some(10_000 + 25 * (a as i32) + 100 * step as i32),
                gs_kt: None,
                track_deg: None,
                lat: Some(51.0 + f64::from(a) * 0.013 + f64::from(step) * 0.001),
                lon: Some(7.0 - f64::from(a) * 0.011),
                vrate_fpm: None,
                squawk: None,
                alert: Some(false),
                emergency: Some(false),
                spi: Some(false),
                on_ground: Some(false),
                raw: None,
            };
            lines.push(l.clone());
            l.msg_type = 4;
            (l.lat, l.lon, l.altitude_ft) = (None, None, None);
            l.gs_kt = Some(300.0 + f64::from(a));
            l.track_deg = Some(f64::from(a * 3 % 360));
            l.vrate_fpm = Some(-640 + 64 * step as i32);
            lines.push(l.clone());
            l.msg_type = 5;
            (l.gs_kt, l.track_deg, l.vrate_fpm) = (None, None, None);
            l.altitude_ft = Some(10_000 + 25 * (a as i32));
            lines.push(l.clone());
            l.msg_type = 6;
            l.squawk = Some(0o1000 + a as u16);
            lines.push(l);
        }
    }
    lines
}

/// CPU time of this process so far (user + system).
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct we pass; RUSAGE_SELF is valid.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) }, 0);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Send `lines` lines packed `pack_lines` per record through the sink to
/// the fake endpoint at `url`; print the rates.
async fn run(url: &str, served: &Served, pack_lines: usize, lines: usize) {
    let (client, _) = aws::client(&AwsOptions {
        region: Some("us-east-1".into()),
        endpoint_url: Some(url.into()),
        profile: None,
        request_timeout: Duration::from_secs(10),
    })
    .await
    .expect("SDK client");
    let api = Kinesis {
        client,
        stream: StreamId::Name("bench".into()),
    };
    let dir = std::env::temp_dir().join(format!(
        "adsbk-sender-bench-{}-{pack_lines}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let (spool, _) = Spool::open(&dir, SpoolOptions::default()).expect("spool");
    let tel = Arc::new(SenderTelemetry::default());
    let handoff = Handoff::new(spool, tel.clone());
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    let sky = sky();
    let (req0, rec0) = (
        served.requests.load(Ordering::Relaxed),
        served.records.load(Ordering::Relaxed),
    );

    let (wall0, cpu0) = (Instant::now(), cpu_time());
    let batch = tokio::spawn(batch_stage(
        rx,
        handoff.clone(),
        BatchOptions {
            pack_lines,
            max_record_bytes: 25 * 1024,
            linger: Duration::from_millis(500),
            receiver_id: None,
        },
        tel.clone(),
    ));
    let send = tokio::spawn(sender(
        api,
        handoff,
        SenderOptions {
            stream: "bench".into(),
            retry: RetryPolicy::default(),
            config_retry: Duration::from_secs(60),
        },
        CancellationToken::new(),
        CancellationToken::new(),
        tel.clone(),
    ));
    for i in 0..lines {
        tx.send(sky[i % sky.len()].clone())
            .await
            .expect("batch task");
    }
    drop(tx);
    batch.await.expect("batch task").expect("batch task");
    send.await.expect("sender task").expect("sender task");
    let (wall, cpu) = (wall0.elapsed(), cpu_time() - cpu0);
    let _ = std::fs::remove_dir_all(&dir);

    let s = tel.snapshot();
    let requests = served.requests.load(Ordering::Relaxed) - req0;
    let records = served.records.load(Ordering::Relaxed) - rec0;
    assert_eq!(s.lines_sent, lines as u64, "not every line was sent");
    assert_eq!(
        records, s.records_sent,
        "the endpoint counted other records"
    );
    println!(
        "pack-lines {pack_lines:>2}: {lines} SBS lines in {records} records, {requests} PutRecords, \
         {:.2} MB sent, {} batches via the spool: {:.3} s wall, {:.3} s CPU => \
         {:.0} lines/s wall, {:.0} lines/CPU-s",
        s.bytes_sent as f64 / 1e6,
        s.spooled_batches,
        wall.as_secs_f64(),
        cpu.as_secs_f64(),
        lines as f64 / wall.as_secs_f64(),
        lines as f64 / cpu.as_secs_f64(),
    );
}

fn main() {
    let lines: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("LINES is a number"))
        .unwrap_or(500_000);
    // Dummy credentials; nothing from the host's AWS files or IMDS. Set
    // before any other thread starts.
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ] {
        std::env::set_var(k, v);
    }
    std::env::remove_var("AWS_PROFILE");

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    let served = Arc::new(Served::default());
    {
        let served = served.clone();
        std::thread::spawn(move || serve(listener, served));
    }
    // One thread for the tasks, as on a Pi Zero.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        // A short warm-up (connection, allocator), then the runs.
        run(&url, &served, 1, 5_000).await;
        for pack_lines in [1, 50] {
            run(&url, &served, pack_lines, lines).await;
        }
    });
}
