//! `--sbs-listen ADDR:PORT`: our SBS lines served to any number of local
//! TCP clients (Virtual Radar Server, tar1090's SBS input, `nc`), as a
//! decoder's port 30003 does (SBS_FORMAT.md §1: no handshake, every client
//! gets the same stream, CRLF lines).
//!
//! A tee between the track stage and the sink. Each client has its own
//! bounded queue filled with `try_send`: a client that does not keep up
//! is disconnected and counted, so no client can slow the pipeline or the
//! other clients down, and memory stays bounded.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tracing::{info, warn};

use super::SourceTelemetry;
use crate::sbs::SbsLine;

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

/// Passes every line from `rx` on to `next`, and a copy to every client of
/// `listener`. Returns when `rx` closes (or `next` does).
pub async fn tee(
    listener: TcpListener,
    mut rx: mpsc::Receiver<SbsLine>,
    next: mpsc::Sender<SbsLine>,
    tel: Arc<SourceTelemetry>,
) {
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
                    tel.listen_clients.store(clients.len() as u64, Ordering::Relaxed);
                }
                // Out of file descriptors and the like: the pipeline goes on.
                Err(e) => warn!(error = %e, "sbs-listen: accept failed"),
            },
            line = rx.recv() => {
                let Some(line) = line else { break };
                if !clients.is_empty() {
                    let text: Arc<str> = format!("{line}\r\n").into();
                    clients.retain(|c| match c.tx.try_send(text.clone()) {
                        Ok(()) => true,
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            c.writer.abort();
                            SourceTelemetry::add(&tel.listen_dropped, 1);
                            warn!(peer = %c.peer, queued = CLIENT_QUEUE,
                                "sbs-listen: client too slow, disconnected");
                            false
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => {
                            info!(peer = %c.peer, "sbs-listen: client left");
                            false
                        }
                    });
                    tel.listen_clients.store(clients.len() as u64, Ordering::Relaxed);
                }
                if next.send(line).await.is_err() {
                    break;
                }
            }
        }
    }
    // Dropping the senders lets each writer flush what it holds and close.
    drop(clients);
}
