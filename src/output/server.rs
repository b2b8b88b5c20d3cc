//! The TCP plumbing every network output shares: `--sbs-listen`,
//! `--raw-listen` and `--beast-listen` serve a stream to whoever connects
//! ([`listen`]); `--beast-connect` pushes it to one peer ([`connect`]).
//! A [`Protocol`] says which items a stream takes and how each becomes
//! bytes; everything about peers is here, once.
//!
//! # Bounds
//!
//! - Each peer has its own queue of [`PEER_QUEUE`] encoded batches, filled
//!   with `try_send`: a peer that does not read is disconnected and
//!   counted. No peer can slow the pipeline or another peer.
//! - At most [`MAX_CLIENTS`] clients per listener; the next ones are
//!   accepted and closed at once, counted, and logged at most once a minute.
//! - A failing `accept` (out of file descriptors) pauses the listener with
//!   backoff from [`ACCEPT_RETRY`]; the first failure of a streak is
//!   logged, the rest counted.
//! - `connect` retries with [`CONNECT_RETRY`] backoff; the first failure
//!   of a streak is logged, then one line a minute with the count. Items
//!   that arrive while no peer is connected are dropped and counted: the
//!   stream is live, not a backlog.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Delivery, Feed, Item, Port, Wants};
pub(crate) use crate::retry::RepeatLog;
use crate::retry::{Backoff, RetryPolicy, STABLE};

/// Batches queued per peer (at most one per [`super::BATCH_EVERY`]: 50 s)
/// before it counts as not reading, on top of what its socket buffers
/// hold.
pub const PEER_QUEUE: usize = 250;

/// Bytes queued per peer before it counts as not reading: some seconds of
/// a busy sky, and a bound on what 64 stalled clients can hold.
pub const PEER_BYTES: usize = 512 * 1024;

/// Clients per listener. dump1090 serves any number; a Pi's feeders are
/// a handful, and a bound keeps a flood of connections from costing
/// memory and CPU.
pub const MAX_CLIENTS: usize = 64;

/// Batches queued for a server's task (at most one per
/// [`super::BATCH_EVERY`] arrives; a file replayed at full speed just
/// waits, as it does for every stage).
const QUEUE: usize = 8;

/// Most bytes gathered into one write.
const WRITE_BATCH: usize = 64 * 1024;

/// Backoff after a failed `accept`.
pub const ACCEPT_RETRY: RetryPolicy = RetryPolicy {
    base: Duration::from_millis(50),
    cap: Duration::from_secs(2),
};

/// Backoff between attempts to reach a `--beast-connect` peer.
pub const CONNECT_RETRY: RetryPolicy = RetryPolicy {
    base: Duration::from_millis(500),
    cap: Duration::from_secs(30),
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A stream format: which items it takes and how each is written.
#[derive(Debug)]
pub struct Protocol {
    /// The option's name, as logs and errors say it (`beast-listen`).
    pub name: &'static str,
    /// Which items the stream carries.
    pub wants: Wants,
    /// Appends `item`'s bytes to the buffer (nothing: the item is skipped).
    pub encode: fn(&Item, &mut Vec<u8>),
}

/// Counters of every network output together, for the stats line.
#[derive(Debug, Default)]
pub struct NetTelemetry {
    /// Clients connected to the listeners now, plus connected pushes.
    pub clients: AtomicU64,
    /// Peers disconnected for not reading.
    pub dropped: AtomicU64,
    /// Connections closed at once because a listener was full.
    pub refused: AtomicU64,
    /// Items a `connect` output dropped while it had no peer.
    pub unsent: AtomicU64,
}

/// A listener's failing `accept` (out of file descriptors and the like):
/// the first failure of a streak is logged, the rest counted; each one
/// pauses the listener with backoff from [`ACCEPT_RETRY`] so a lasting
/// failure can neither spin nor flood the log. Shared by every listener.
#[derive(Debug)]
pub(crate) struct AcceptFailures {
    name: &'static str,
    retry: Backoff,
    streak: u64,
}

impl AcceptFailures {
    pub(crate) fn new(name: &'static str) -> Self {
        AcceptFailures {
            name,
            retry: Backoff::new(ACCEPT_RETRY),
            streak: 0,
        }
    }

    /// Counts a failure; how long to pause before the next `accept`.
    pub(crate) fn failed(&mut self, e: &std::io::Error) -> Duration {
        if self.streak == 0 {
            warn!(error = %e, "{}: accept failed, pausing (repeats counted)", self.name);
        }
        self.streak += 1;
        self.retry.next_delay()
    }

    /// An `accept` worked: ends a streak of failures.
    pub(crate) fn succeeded(&mut self) {
        if self.streak > 0 {
            info!(failures = self.streak, "{}: accepting again", self.name);
            self.streak = 0;
            self.retry.reset();
        }
    }
}

fn add(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

fn sub(a: &AtomicU64, n: u64) {
    a.fetch_sub(n, Ordering::Relaxed);
}

/// One connected peer: its queue and the task writing it.
struct Peer {
    tx: mpsc::Sender<Arc<[u8]>>,
    /// Bytes queued and not yet taken by the writer.
    queued: Arc<AtomicUsize>,
    writer: JoinHandle<()>,
    addr: SocketAddr,
}

impl Peer {
    fn start(sock: TcpStream, addr: SocketAddr) -> Peer {
        // Frames are small and live: waiting to fill a segment adds latency
        // that mlat and live maps notice.
        let _ = sock.set_nodelay(true);
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        Peer {
            tx,
            writer: tokio::spawn(write_peer(sock, rx, queued.clone())),
            queued,
            addr,
        }
    }

    /// Queues `bytes`; false when the peer is gone or too slow (then its
    /// writer is stopped).
    fn offer(
        &self,
        proto: &Protocol,
        bytes: &Arc<[u8]>,
        tel: &NetTelemetry,
        log: &mut PeerLog,
    ) -> bool {
        // Past its byte budget a peer counts as full, without trying.
        let room = self.queued.load(Ordering::Relaxed) + bytes.len() <= PEER_BYTES;
        match room.then(|| self.tx.try_send(bytes.clone())) {
            Some(Ok(())) => {
                self.queued.fetch_add(bytes.len(), Ordering::Relaxed);
                true
            }
            None | Some(Err(mpsc::error::TrySendError::Full(_))) => {
                self.writer.abort();
                add(&tel.dropped, 1);
                if let Some(n) = log.slow.hit() {
                    warn!(peer = %self.addr, queued_bytes = self.queued.load(Ordering::Relaxed),
                        disconnected = n, "{}: peer not reading, disconnected{}", proto.name, REPEATS);
                }
                false
            }
            Some(Err(mpsc::error::TrySendError::Closed(_))) => {
                if let Some(n) = log.left.hit() {
                    info!(peer = %self.addr, left = n, "{}: peer left{}", proto.name, REPEATS);
                }
                false
            }
        }
    }
}

/// Clients coming and going, logged per output: a LAN client opening
/// connections in a loop must not fill the journal (issue 20's soak saw a
/// line per connection). The first of each kind is said at once, then at
/// most once a minute with the count since the last line.
#[derive(Default)]
struct PeerLog {
    connected: RepeatLog,
    left: RepeatLog,
    slow: RepeatLog,
}

const REPEATS: &str = " (repeats logged once a minute with the count)";

async fn write_peer(
    mut sock: TcpStream,
    mut rx: mpsc::Receiver<Arc<[u8]>>,
    queued: Arc<AtomicUsize>,
) {
    let mut buf = Vec::with_capacity(16 * 1024);
    while let Some(first) = rx.recv().await {
        buf.clear();
        buf.extend_from_slice(&first);
        // Whatever else is queued goes in the same write.
        while buf.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(b) => buf.extend_from_slice(&b),
                Err(_) => break,
            }
        }
        queued.fetch_sub(buf.len(), Ordering::Relaxed);
        if sock.write_all(&buf).await.is_err() {
            return;
        }
    }
    let _ = sock.shutdown().await;
}

/// Encodes the items of `batch` that `proto` carries into `buf`
/// (cleared first).
fn encode(batch: &[Item], proto: &Protocol, buf: &mut Vec<u8>) {
    buf.clear();
    for item in batch {
        (proto.encode)(item, buf);
    }
}

/// Listens on `addr` for `proto`'s clients; the port that feeds the
/// server, and its task, which returns when the feed closes.
pub async fn listen(
    proto: &'static Protocol,
    addr: &str,
    tel: Arc<NetTelemetry>,
) -> std::io::Result<(Port, impl Future<Output = ()>)> {
    let listener = TcpListener::bind(addr).await?;
    info!(addr = ?listener.local_addr().ok(), "{}: listening", proto.name);
    // Wait, not drop: the server itself never blocks on a client.
    let (port, feed) = Port::new(proto.name, QUEUE, Delivery::Wait, proto.wants);
    Ok((port, serve(proto, listener, feed, tel)))
}

async fn serve(
    proto: &'static Protocol,
    listener: TcpListener,
    mut feed: Feed,
    tel: Arc<NetTelemetry>,
) {
    let mut clients: Vec<Peer> = Vec::new();
    let mut buf = Vec::new();
    let mut accept_failures = AcceptFailures::new(proto.name);
    let mut paused_until: Option<tokio::time::Instant> = None;
    let mut refusals = RepeatLog::default();
    let mut log = PeerLog::default();
    let set_clients = |n_before: usize, n_after: usize| {
        if n_after > n_before {
            add(&tel.clients, (n_after - n_before) as u64);
        } else {
            sub(&tel.clients, (n_before - n_after) as u64);
        }
    };
    loop {
        let pause = async {
            match paused_until {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            accepted = listener.accept(), if paused_until.is_none() => match accepted {
                Ok((sock, peer)) => {
                    accept_failures.succeeded();
                    if clients.len() >= MAX_CLIENTS {
                        add(&tel.refused, 1);
                        if let Some(n) = refusals.hit() {
                            warn!(peer = %peer, max = MAX_CLIENTS, refused = n,
                                "{}: too many clients, refusing (logged at most once a minute)", proto.name);
                        }
                        drop(sock);
                        continue;
                    }
                    if let Some(n) = log.connected.hit() {
                        info!(peer = %peer, clients = clients.len() + 1, connected = n,
                            "{}: client connected{}", proto.name, REPEATS);
                    }
                    clients.push(Peer::start(sock, peer));
                    set_clients(clients.len() - 1, clients.len());
                }
                Err(e) => {
                    paused_until = Some(tokio::time::Instant::now() + accept_failures.failed(&e));
                }
            },
            () = pause => paused_until = None,
            batch = feed.recv() => {
                let Some(batch) = batch else { break };
                if clients.is_empty() {
                    continue;
                }
                encode(&batch, proto, &mut buf);
                if !buf.is_empty() {
                    let bytes: Arc<[u8]> = Arc::from(buf.as_slice());
                    let before = clients.len();
                    clients.retain(|c| c.offer(proto, &bytes, &tel, &mut log));
                    set_clients(before, clients.len());
                }
            }
        }
    }
    sub(&tel.clients, clients.len() as u64);
    // Dropping the senders lets each writer flush what it holds and close.
    drop(clients);
}

/// Pushes `proto`'s stream to `addr` (HOST:PORT), connecting and
/// reconnecting with backoff until the feed closes or `token` is
/// cancelled; the port that feeds it, and its task.
pub fn connect(
    proto: &'static Protocol,
    addr: String,
    token: CancellationToken,
    tel: Arc<NetTelemetry>,
) -> (Port, impl Future<Output = ()>) {
    let (port, feed) = Port::new(proto.name, QUEUE, Delivery::Wait, proto.wants);
    (port, push(proto, addr, feed, token, tel))
}

/// A connection being made, while the feed keeps being drained.
type Dialing =
    std::pin::Pin<Box<dyn Future<Output = std::io::Result<(TcpStream, SocketAddr)>> + Send>>;

fn dial(addr: String, delay: Duration) -> Dialing {
    Box::pin(async move {
        tokio::time::sleep(delay).await;
        let sock = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr.as_str()))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
            })??;
        let peer = sock.peer_addr()?;
        Ok((sock, peer))
    })
}

async fn push(
    proto: &'static Protocol,
    addr: String,
    mut feed: Feed,
    token: CancellationToken,
    tel: Arc<NetTelemetry>,
) {
    let mut retry = Backoff::new(CONNECT_RETRY);
    // The peer and when it connected.
    let mut peer: Option<(Peer, Instant)> = None;
    let mut dialing: Option<Dialing> = Some(dial(addr.clone(), Duration::ZERO));
    let mut failures = 0u64;
    let mut failure_log = RepeatLog::default();
    let mut log = PeerLog::default();
    let mut buf = Vec::new();
    loop {
        let connecting = async {
            match dialing.as_mut() {
                Some(d) => d.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = token.cancelled() => break,
            done = connecting => {
                dialing = None;
                match done {
                    Ok((sock, at)) => {
                        info!(peer = %at, after_failures = failures, "{}: connected", proto.name);
                        failures = 0;
                        failure_log = RepeatLog::default();
                        peer = Some((Peer::start(sock, at), Instant::now()));
                        add(&tel.clients, 1);
                    }
                    Err(e) => {
                        failures += 1;
                        if failure_log.hit().is_some() {
                            warn!(addr = %addr, error = %e, failures,
                                "{}: cannot connect, retrying with backoff", proto.name);
                        }
                        dialing = Some(dial(addr.clone(), retry.next_delay()));
                    }
                }
            }
            batch = feed.recv() => {
                let Some(batch) = batch else { break };
                let frames = batch.iter().filter(|i| i.frame.is_some()).count() as u64;
                if peer.is_none() {
                    add(&tel.unsent, frames);
                    continue;
                }
                encode(&batch, proto, &mut buf);
                if buf.is_empty() {
                    continue;
                }
                let bytes: Arc<[u8]> = Arc::from(buf.as_slice());
                match &peer {
                    Some((p, _)) if p.offer(proto, &bytes, &tel, &mut log) => {}
                    Some((_, since)) => {
                        // The backoff starts over only after a connection
                        // that lasted: a peer that accepts and hangs up at
                        // once is retried ever more slowly, not in a loop.
                        if since.elapsed() >= STABLE {
                            retry.reset();
                        }
                        peer = None;
                        sub(&tel.clients, 1);
                        add(&tel.unsent, frames);
                        dialing = Some(dial(addr.clone(), retry.next_delay()));
                    }
                    None => {}
                }
            }
        }
    }
    if peer.is_some() {
        sub(&tel.clients, 1);
    }
    // Dropping the sender lets the writer flush what it holds and close.
    drop(peer);
}
