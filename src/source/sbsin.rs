//! `--source sbs:HOST:PORT`: finished SBS lines from a feeder's port 30003
//! (PiAware, FR24, readsb), checked with [`crate::sbs::parse_line`] and
//! forwarded unchanged, so someone who already runs a feeder can add
//! Kinesis without giving up the dongle. Lines that do not parse are
//! counted and dropped, never forwarded.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::SourceTelemetry;
use crate::sbs::{parse_line, unix_ms_now, SbsLine};

/// Longest line kept; an SBS line is under 200 bytes. Beyond this the
/// bytes up to the next newline are garbage, dropped as one reject.
pub const MAX_LINE: usize = 512;

/// Splits a byte stream into lines of at most [`MAX_LINE`] bytes, without
/// growing on input that never ends a line.
#[derive(Debug, Default)]
pub struct LineSplitter {
    line: Vec<u8>,
    overlong: bool,
}

impl LineSplitter {
    /// Calls `f` with each complete line (without its `\n`); `Err(())`
    /// stands for an overlong line. Stops early when `f` returns false.
    pub fn push(&mut self, mut input: &[u8], mut f: impl FnMut(Result<&[u8], ()>) -> bool) -> bool {
        while !input.is_empty() {
            let (part, rest, ended) = match input.iter().position(|&b| b == b'\n') {
                Some(i) => (&input[..i], &input[i + 1..], true),
                None => (input, &[][..], false),
            };
            input = rest;
            if !self.overlong {
                if self.line.len() + part.len() > MAX_LINE {
                    self.overlong = true;
                    self.line.clear();
                } else {
                    self.line.extend_from_slice(part);
                }
            }
            if ended {
                let go = if self.overlong {
                    f(Err(()))
                } else {
                    f(Ok(&self.line))
                };
                self.line.clear();
                self.overlong = false;
                if !go {
                    return false;
                }
            }
        }
        true
    }

    /// Forget a partial line (the connection was lost).
    pub fn reset(&mut self) {
        self.line.clear();
        self.overlong = false;
    }
}

/// How this feed is named in its log lines.
const FEED: super::FeedNames = super::FeedNames {
    source: "sbs",
    label: "SBS",
    hint: "cannot connect to the SBS feed (is the feeder's port 30003 output enabled?)",
};

/// Reads `addr` until cancelled, reconnecting with backoff; valid lines,
/// mapped by `map`, go to `tx` (see [`super::read_feed`]).
pub async fn run<T>(
    addr: String,
    token: CancellationToken,
    tel: Arc<SourceTelemetry>,
    tx: tokio::sync::mpsc::Sender<T>,
    mut map: impl FnMut(SbsLine) -> T,
) {
    let mut split = LineSplitter::default();
    super::read_feed(&FEED, &addr, &token, &tel, &tx, |bytes, first, batch| {
        if first {
            split.reset();
        }
        split.push(bytes, |line| {
            let parsed = match line {
                Ok(l) => parse_line(l).map_err(|e| e.to_string()),
                Err(()) => Err(format!("line longer than {MAX_LINE} bytes")),
            };
            match parsed {
                Ok(None) => {}
                Ok(Some(mut l)) => {
                    if l.generated_ms == 0 {
                        l.generated_ms = unix_ms_now();
                    }
                    if l.logged_ms == 0 {
                        l.logged_ms = l.generated_ms;
                    }
                    SourceTelemetry::add(&tel.accepted, 1);
                    batch.push(map(l));
                }
                Err(e) => {
                    SourceTelemetry::add(&tel.rejects, 1);
                    debug!(source = "sbs", error = %e, "line rejected");
                }
            }
            true
        });
        true
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]]) -> Vec<Result<Vec<u8>, ()>> {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, |l| {
                out.push(l.map(<[u8]>::to_vec));
                true
            });
        }
        out
    }

    #[test]
    fn splits_across_chunks_and_caps_length() {
        assert_eq!(
            lines(&[b"ab", b"c\nd", b"\n\n"]),
            vec![Ok(b"abc".to_vec()), Ok(b"d".to_vec()), Ok(vec![])]
        );
        let long = vec![b'x'; MAX_LINE + 1];
        assert_eq!(
            lines(&[&long, b"y\nok\n"]),
            vec![Err(()), Ok(b"ok".to_vec())]
        );
    }

    proptest::proptest! {
        #[test]
        fn splitter_and_parser_never_panic(
            chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..700), 0..8)
        ) {
            let mut s = LineSplitter::default();
            for c in &chunks {
                s.push(c, |l| {
                    if let Ok(l) = l {
                        assert!(l.len() <= MAX_LINE);
                        let _ = parse_line(l);
                    }
                    true
                });
            }
            proptest::prop_assert!(s.line.len() <= MAX_LINE);
        }
    }
}
