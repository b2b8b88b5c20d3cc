//! `--sbs-listen ADDR:PORT`: our SBS lines served to any number of local
//! TCP clients (Virtual Radar Server, tar1090's SBS input, `nc`), as a
//! decoder's port 30003 does (SBS_FORMAT.md §1: no handshake, every client
//! gets the same stream, CRLF lines).
//!
//! An output fed like the sink ([`Delivery::Wait`]): it never waits on a
//! client. Each client has its own bounded queue filled with `try_send`:
//! a client that does not keep up is disconnected and counted, so no
//! client can slow the pipeline or the other clients down, and memory
//! stays bounded.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tracing::{info, warn};

use super::{Delivery, Feed, OutputTelemetry, Port, Wants};

/// Lines queued per client before it counts as too slow.
pub const CLIENT_QUEUE: usize = 1024;

struct Client {
    tx: mpsc::Sender<Arc<str>>,
    writer: AbortHandle,
    peer: SocketAddr,
}

async fn write_lines(mut sock: TcpStream, mut rx: mpsc::Receiver<Arc<str>>) {
    let mut buf = Vec::with_capacity(16 * 1024);
    while let Some(first) = rx.recv().await {
        buf.clear();
        buf.extend_from_slice(first.as_bytes());
        // Whatever else is queued goes in the same write.
        while buf.len() < 64 * 1024 {
            match rx.try_recv() {
                Ok(l) => buf.extend_from_slice(l.as_bytes()),
                Err(_) => break,
            }
        }
        if sock.write_all(&buf).await.is_err() {
            return;
        }
    }
    let _ = sock.shutdown().await;
}

/// Lines queued for the server task.
const QUEUE: usize = 1024;

/// Listens on `addr`; the port that feeds the server and its task, which
/// returns when the feed closes.
pub async fn start(
    addr: &str,
    tel: Arc<OutputTelemetry>,
) -> std::io::Result<(Port, impl std::future::Future<Output = ()>)> {
    let listener = TcpListener::bind(addr).await?;
    info!(addr = ?listener.local_addr().ok(), "sbs-listen: serving SBS lines");
    let (port, feed) = Port::new("sbs-listen", QUEUE, Delivery::Wait, Wants::Lines);
    Ok((port, serve(listener, feed, tel)))
}

/// Sends a copy of every line of `feed` to every client of `listener`.
async fn serve(listener: TcpListener, mut feed: Feed, tel: Arc<OutputTelemetry>) {
    let mut clients: Vec<Client> = Vec::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((sock, peer)) => {
                    let _ = sock.set_nodelay(true);
                    let (tx, crx) = mpsc::channel(CLIENT_QUEUE);
                    let writer = tokio::spawn(write_lines(sock, crx)).abort_handle();
                    info!(peer = %peer, "sbs-listen: client connected");
                    clients.push(Client { tx, writer, peer });
                    tel.sbs_clients.store(clients.len() as u64, Ordering::Relaxed);
                }
                // Out of file descriptors and the like: the pipeline goes on.
                Err(e) => warn!(error = %e, "sbs-listen: accept failed"),
            },
            item = feed.recv() => {
                let Some(item) = item else { break };
                let Some(line) = &item.line else { continue };
                if !clients.is_empty() {
                    let text: Arc<str> = format!("{line}\r\n").into();
                    clients.retain(|c| match c.tx.try_send(text.clone()) {
                        Ok(()) => true,
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            c.writer.abort();
                            OutputTelemetry::add(&tel.sbs_dropped, 1);
                            warn!(peer = %c.peer, queued = CLIENT_QUEUE,
                                "sbs-listen: client too slow, disconnected");
                            false
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => {
                            info!(peer = %c.peer, "sbs-listen: client left");
                            false
                        }
                    });
                    tel.sbs_clients.store(clients.len() as u64, Ordering::Relaxed);
                }
            }
        }
    }
    // Dropping the senders lets each writer flush what it holds and close.
    drop(clients);
}
