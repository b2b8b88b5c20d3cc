//! The sink without `--stream`: SBS lines (CRLF, SBS_FORMAT.md §1) on
//! stdout, or any other writer.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{Delivery, Feed, OutputTelemetry, Port, Wants};

/// Batches queued for the writer (the track stage hands out one per
/// [`super::BATCH_EVERY`] at most).
const QUEUE: usize = 8;

/// The port of a line writer on `out`, and its task: `LINE\r\n`, each
/// batch in one write, and the rest when the feed closes. The pipeline
/// waits for it (a file replayed at full speed loses nothing) and stops
/// when it fails.
pub fn start<W: AsyncWrite + Unpin + Send + 'static>(
    out: W,
    tel: Arc<OutputTelemetry>,
) -> (Port, impl std::future::Future<Output = io::Result<()>>) {
    let (port, feed) = Port::new("stdout", QUEUE, Delivery::Wait, Wants::Lines);
    (port.essential(), write_lines(feed, out, tel))
}

async fn write_lines<W: AsyncWrite + Unpin>(
    mut feed: Feed,
    mut out: W,
    tel: Arc<OutputTelemetry>,
) -> io::Result<()> {
    let mut buf = Vec::new();
    while let Some(batch) = feed.recv().await {
        buf.clear();
        let mut lines = 0u64;
        for t in batch.iter().filter_map(|i| i.text.as_deref()) {
            buf.extend_from_slice(t.as_bytes());
            buf.extend_from_slice(b"\r\n");
            lines += 1;
        }
        out.write_all(&buf).await?;
        out.flush().await?;
        tel.lines_written.fetch_add(lines, Ordering::Relaxed);
    }
    Ok(())
}
