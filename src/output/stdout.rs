//! The sink without `--stream`: SBS lines (CRLF, SBS_FORMAT.md §1) on
//! stdout, or any other writer.

use std::io::{self, Write as _};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{Delivery, Feed, OutputTelemetry, Port, Wants};

/// The sink writes out at least this often...
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// ... and whenever this much is buffered.
const BUFFER: usize = 64 * 1024;
/// Items queued for the writer.
const QUEUE: usize = 1024;

/// The port of a line writer on `out`, and its task: `LINE\r\n` written
/// at least every [`FLUSH_EVERY`] and when the feed closes. The pipeline
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
    let mut buf = Vec::with_capacity(BUFFER);
    let mut pending = 0u64;
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let flush = tokio::select! {
            item = feed.recv() => match item {
                Some(item) => {
                    if let Some(l) = &item.line {
                        write!(buf, "{l}\r\n")?;
                        pending += 1;
                    }
                    buf.len() >= BUFFER
                }
                None => break,
            },
            _ = tick.tick() => !buf.is_empty(),
        };
        if flush {
            out.write_all(&buf).await?;
            out.flush().await?;
            buf.clear();
            tel.lines_written.fetch_add(pending, Ordering::Relaxed);
            pending = 0;
        }
    }
    out.write_all(&buf).await?;
    out.flush().await?;
    tel.lines_written.fetch_add(pending, Ordering::Relaxed);
    Ok(())
}
