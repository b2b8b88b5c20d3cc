//! Kinesis records and the packer that turns SBS lines into them.
//!
//! A [`Record`] is what one `PutRecordsRequestEntry` carries: a partition
//! key (the aircraft's 6-digit upper-case ICAO hex, so one aircraft always
//! lands on one shard, in order) and a data blob of one or more
//! `\n`-terminated SBS lines (so Firehose output in S3 stays line-oriented).
//!
//! [`Packer`] implements `--pack-lines N` and `--max-record-bytes`: it puts
//! up to N consecutive lines of one aircraft into one record.
//!
//! # The packing trade-off
//!
//! A shard accepts 1 000 records/s and 1 MiB/s. A busy site (~2 500
//! lines/s of ~100 bytes) needs three shards when every line is a record,
//! but only one when lines are packed: 2 500 lines/s are ~250 KiB/s. The
//! price is latency and coarser consumers: a packed line waits until its
//! record is full or the packer is flushed (the daemon flushes it with the
//! batcher's linger), and consumers must split records on `\n`. Provisioned
//! streams bill PUTs per 25 KiB payload unit (the default record cap);
//! on-demand streams bill data in, each record rounded up to 1 KiB.

use std::collections::HashMap;

/// Most records in one `PutRecords` request.
///
/// Kinesis API reference, PutRecords: "Each PutRecords request can support
/// up to 500 records."
pub const MAX_RECORDS_PER_REQUEST: usize = 500;

/// Most bytes in one `PutRecords` request, data blobs and partition keys
/// together (before base64).
///
/// Kinesis API reference, PutRecords: records "up to a limit of 5 MiB for
/// the entire request, including partition keys". (Streams whose
/// `MaxRecordSize` was raised with `UpdateMaxRecordSize` accept more; 5 MiB
/// is what every stream accepts, so it is the only limit we use.)
pub const MAX_REQUEST_BYTES: usize = 5 * 1024 * 1024;

/// Most bytes in one record, data blob plus partition key.
///
/// Kinesis API reference, PutRecords: "Each record in the request can be as
/// large as 1 MiB"; "The record size limit applies to the total size of the
/// partition key and data blob." PutRecordsRequestEntry: the data blob
/// "added to the partition key size" must not exceed the stream's maximum
/// record size, 1 MiB unless raised with `UpdateMaxRecordSize`.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// Shortest partition key. PutRecordsRequestEntry.PartitionKey: "Length
/// Constraints: Minimum length of 1."
pub const MIN_PARTITION_KEY_CHARS: usize = 1;

/// Longest partition key, in Unicode characters. PutRecordsRequestEntry.
/// PartitionKey: "Unicode strings with a maximum length limit of 256
/// characters for each key."
pub const MAX_PARTITION_KEY_CHARS: usize = 256;

/// Default `--max-record-bytes`: one 25 KiB PUT payload unit, the unit that
/// provisioned PUT pricing counts (on-demand rounds records to 1 KiB).
pub const DEFAULT_MAX_RECORD_BYTES: usize = 25 * 1024;

/// Default `--pack-lines`: one SBS line per record.
pub const DEFAULT_PACK_LINES: usize = 1;

/// One Kinesis record: a partition key and a data blob.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    /// The aircraft's 6-digit upper-case ICAO hex (any 1-256 character
    /// string is valid for Kinesis).
    pub partition_key: String,
    /// One or more SBS lines, each ending in `\n`.
    pub data: Vec<u8>,
}

impl Record {
    /// Bytes this record counts toward the request and record limits:
    /// data plus partition key (UTF-8 bytes, as sent on the wire).
    pub fn encoded_size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }

    /// Number of lines (`\n` bytes) in the data.
    pub fn line_count(&self) -> usize {
        self.data.iter().filter(|&&b| b == b'\n').count()
    }

    /// Check the record against Kinesis's per-record limits: key length
    /// 1-256 characters and `encoded_size() <=` [`MAX_RECORD_BYTES`].
    pub fn validate(&self) -> Result<(), RecordError> {
        check_key(&self.partition_key)?;
        let size = self.encoded_size();
        if size > MAX_RECORD_BYTES {
            return Err(RecordError::TooLarge {
                key: self.partition_key.clone(),
                size,
                limit: MAX_RECORD_BYTES,
            });
        }
        Ok(())
    }
}

/// The lines of a record's data: the inverse of [`Packer`], for consumers
/// (`tail`). Splits on `\n`, drops a `\r` before it (records written by
/// other producers may carry SBS's CRLF) and skips empty lines (SBS
/// heartbeats, SBS_FORMAT.md §1); a last line without `\n` is kept.
pub fn record_lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
}

fn check_key(key: &str) -> Result<(), RecordError> {
    // Byte length bounds the char count from above, so only count chars
    // for long keys.
    let chars = if key.len() <= MAX_PARTITION_KEY_CHARS {
        key.chars().count()
    } else {
        key.chars().take(MAX_PARTITION_KEY_CHARS + 1).count()
    };
    if !(MIN_PARTITION_KEY_CHARS..=MAX_PARTITION_KEY_CHARS).contains(&chars) {
        return Err(RecordError::BadPartitionKey {
            key: key.chars().take(32).collect(),
            chars,
        });
    }
    Ok(())
}

/// A record Kinesis would refuse. Such records are never sent; the caller
/// logs and counts them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Data plus key exceed the record limit.
    #[error("record for {key} is {size} bytes (data + key); the limit is {limit}")]
    TooLarge {
        /// The record's partition key.
        key: String,
        /// Data plus key, bytes.
        size: usize,
        /// The record limit, bytes.
        limit: usize,
    },
    /// Partition key empty or longer than 256 characters. `key` holds at
    /// most its first 32 characters; `chars` is capped at 257.
    #[error("partition key {key:?} has {chars} characters; Kinesis allows 1-256")]
    BadPartitionKey {
        /// The key's start.
        key: String,
        /// Its length in characters.
        chars: usize,
    },
}

/// A line the [`Packer`] refused. The line is not in any record: the caller
/// logs and counts it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PackError {
    /// The line plus its `\n` plus the key can never fit in one record.
    #[error(
        "line for {key} needs {size} bytes as a record (line + newline + key); \
         the record limit is {limit}"
    )]
    LineTooLong {
        /// The line's partition key.
        key: String,
        /// Line, newline and key, bytes.
        size: usize,
        /// The record limit, bytes.
        limit: usize,
    },
    /// A `\n` or `\r` inside the line would split it in the stream.
    #[error("line for {key} contains a line break")]
    LineBreakInLine {
        /// The line's partition key.
        key: String,
    },
    /// The key is not a valid partition key.
    #[error(transparent)]
    Key(#[from] RecordError),
}

/// Packer settings that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PackerConfigError {
    /// `--pack-lines 0`.
    #[error("pack-lines must be at least 1")]
    ZeroPackLines,
    /// Below 2 (a 1-character key and a bare `\n`) or above the Kinesis
    /// record limit.
    #[error("max-record-bytes {0} is outside 2..={MAX_RECORD_BYTES} (Kinesis record limit)")]
    MaxRecordBytes(usize),
}

/// A record being filled for one key.
#[derive(Debug)]
struct Open {
    /// Arrival order of its first line, so [`Packer::flush`] emits records
    /// oldest first.
    seq: u64,
    data: Vec<u8>,
    lines: usize,
}

/// Packs `(key, line)` pairs into [`Record`]s: up to `pack_lines` lines of
/// the same key per record, and at most `max_record_bytes` per record
/// (data + key).
///
/// Lines of one key leave in the order they came, in records emitted in
/// that order; lines of different keys are independent (they go to
/// different shards anyway). Nothing is emitted late by itself: call
/// [`Packer::flush`] when the batch should go (e.g. at the batcher's
/// linger deadline and at shutdown). With `pack_lines == 1` every line is
/// a record at once and nothing is ever held.
#[derive(Debug)]
pub struct Packer {
    pack_lines: usize,
    max_record_bytes: usize,
    open: HashMap<String, Open>,
    next_seq: u64,
    held_lines: usize,
}

impl Packer {
    /// A packer for `--pack-lines` and `--max-record-bytes`.
    /// `max_record_bytes` counts data + key and may be at most
    /// [`MAX_RECORD_BYTES`].
    pub fn new(pack_lines: usize, max_record_bytes: usize) -> Result<Self, PackerConfigError> {
        if pack_lines == 0 {
            return Err(PackerConfigError::ZeroPackLines);
        }
        if !(2..=MAX_RECORD_BYTES).contains(&max_record_bytes) {
            return Err(PackerConfigError::MaxRecordBytes(max_record_bytes));
        }
        Ok(Packer {
            pack_lines,
            max_record_bytes,
            open: HashMap::new(),
            next_seq: 0,
            held_lines: 0,
        })
    }

    /// Lines held in records not yet emitted.
    pub fn held_lines(&self) -> usize {
        self.held_lines
    }

    /// True if no line is held.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Add one line of aircraft `key`. `line` has no terminator (one
    /// trailing `\n` or `\r\n` is tolerated and replaced); the packer adds
    /// `\n`.
    ///
    /// Returns the record this line completed or displaced, if any: a
    /// record is emitted when it reaches `pack_lines` lines, or when this
    /// line would push it past `max_record_bytes` (the line then starts the
    /// next record). A line that can never fit, a line break inside the
    /// line, or a bad key is an error and the line is not kept.
    pub fn push(&mut self, key: &str, line: &str) -> Result<Option<Record>, PackError> {
        let line = line
            .strip_suffix('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .unwrap_or(line);
        if line.bytes().any(|b| b == b'\n' || b == b'\r') {
            return Err(PackError::LineBreakInLine { key: key.into() });
        }
        let need = line.len() + 1;
        let alone = need + key.len();
        if alone > self.max_record_bytes {
            // Checked before the key so a long key reads as what it is.
            check_key(key)?;
            return Err(PackError::LineTooLong {
                key: key.into(),
                size: alone,
                limit: self.max_record_bytes,
            });
        }

        let mut emitted = None;
        if let Some(open) = self.open.get_mut(key) {
            if open.data.len() + key.len() + need > self.max_record_bytes {
                // Full by size: emit it and let this line start a new one.
                // The open record had lines < pack_lines, so the new one
                // (1 line) cannot be full by count unless pack_lines == 1,
                // in which case no record is ever open: at most one record
                // leaves per push.
                let full = self.open.remove(key).map(|o| self.close(key, o));
                emitted = full;
            } else {
                open.data.extend_from_slice(line.as_bytes());
                open.data.push(b'\n');
                open.lines += 1;
                self.held_lines += 1;
                if open.lines >= self.pack_lines {
                    return Ok(self.open.remove(key).map(|o| self.close(key, o)));
                }
                return Ok(None);
            }
        } else {
            check_key(key)?;
        }

        let mut data = Vec::with_capacity(if self.pack_lines == 1 {
            need
        } else {
            (need * self.pack_lines).min(self.max_record_bytes)
        });
        data.extend_from_slice(line.as_bytes());
        data.push(b'\n');
        if self.pack_lines == 1 {
            debug_assert!(emitted.is_none());
            return Ok(Some(Record {
                partition_key: key.into(),
                data,
            }));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.held_lines += 1;
        self.open.insert(
            key.into(),
            Open {
                seq,
                data,
                lines: 1,
            },
        );
        Ok(emitted)
    }

    fn close(&mut self, key: &str, open: Open) -> Record {
        self.held_lines -= open.lines;
        Record {
            partition_key: key.into(),
            data: open.data,
        }
    }

    /// Emit every held record, oldest first line first. Per-key order holds
    /// because a key has at most one open record, always newer than the
    /// records already emitted for it.
    pub fn flush(&mut self) -> Vec<Record> {
        let mut open: Vec<(String, Open)> = self.open.drain().collect();
        open.sort_unstable_by_key(|(_, o)| o.seq);
        self.held_lines = 0;
        open.into_iter()
            .map(|(partition_key, o)| Record {
                partition_key,
                data: o.data,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lines_of(records: &[Record], key: &str) -> Vec<String> {
        records
            .iter()
            .filter(|r| r.partition_key == key)
            .flat_map(|r| {
                let s = String::from_utf8(r.data.clone()).unwrap();
                assert!(s.ends_with('\n'));
                s.lines().map(str::to_owned).collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn record_lines_inverts_the_packer() {
        let mut p = Packer::new(3, 10_000).unwrap();
        let mut out = Vec::new();
        for i in 0..5 {
            out.extend(p.push("ABCDEF", &format!("MSG,{i}")).unwrap());
        }
        out.extend(p.flush());
        let lines: Vec<&[u8]> = out.iter().flat_map(|r| record_lines(&r.data)).collect();
        let want: Vec<String> = (0..5).map(|i| format!("MSG,{i}")).collect();
        assert_eq!(lines, want.iter().map(|s| s.as_bytes()).collect::<Vec<_>>());
    }

    #[test]
    fn record_lines_tolerates_crlf_blank_and_unterminated() {
        let got: Vec<&[u8]> = record_lines(b"a\r\n\r\n\nb\nc").collect();
        assert_eq!(got, [&b"a"[..], b"b", b"c"]);
        assert_eq!(record_lines(b"").count(), 0);
        assert_eq!(record_lines(b"\n\r\n").count(), 0);
    }

    #[test]
    fn encoded_size_counts_data_and_key() {
        let r = Record {
            partition_key: "4840D6".into(),
            data: b"MSG,3\n".to_vec(),
        };
        assert_eq!(r.encoded_size(), 12);
        assert_eq!(r.line_count(), 1);
        assert_eq!(r.validate(), Ok(()));
    }

    #[test]
    fn validate_limits() {
        let at_limit = Record {
            partition_key: "ABCDEF".into(),
            data: vec![b'x'; MAX_RECORD_BYTES - 6],
        };
        assert_eq!(at_limit.validate(), Ok(()));
        let over = Record {
            partition_key: "ABCDEF".into(),
            data: vec![b'x'; MAX_RECORD_BYTES - 5],
        };
        assert!(
            matches!(over.validate(), Err(RecordError::TooLarge { size, .. }) if size == MAX_RECORD_BYTES + 1)
        );
        let empty_key = Record {
            partition_key: String::new(),
            data: vec![],
        };
        assert!(matches!(
            empty_key.validate(),
            Err(RecordError::BadPartitionKey { chars: 0, .. })
        ));
        // 256 two-byte characters are fine (the limit is in characters).
        let long_ok = Record {
            partition_key: "é".repeat(256),
            data: vec![],
        };
        assert_eq!(long_ok.validate(), Ok(()));
        let long_bad = Record {
            partition_key: "k".repeat(257),
            data: vec![],
        };
        assert!(matches!(
            long_bad.validate(),
            Err(RecordError::BadPartitionKey { chars: 257, .. })
        ));
    }

    #[test]
    fn config_rejected() {
        assert_eq!(
            Packer::new(0, 1000).unwrap_err(),
            PackerConfigError::ZeroPackLines
        );
        assert!(Packer::new(1, MAX_RECORD_BYTES + 1).is_err());
        assert!(Packer::new(1, 0).is_err());
        assert!(Packer::new(1, MAX_RECORD_BYTES).is_ok());
    }

    #[test]
    fn one_line_per_record_by_default() {
        let mut p = Packer::new(DEFAULT_PACK_LINES, DEFAULT_MAX_RECORD_BYTES).unwrap();
        let r = p.push("4840D6", "MSG,1,a").unwrap().unwrap();
        assert_eq!(r.partition_key, "4840D6");
        assert_eq!(r.data, b"MSG,1,a\n");
        assert!(p.is_empty());
        assert!(p.flush().is_empty());
    }

    #[test]
    fn trailing_terminator_tolerated_inner_break_rejected() {
        let mut p = Packer::new(1, 1000).unwrap();
        assert_eq!(p.push("A", "x\r\n").unwrap().unwrap().data, b"x\n");
        assert_eq!(p.push("A", "y\n").unwrap().unwrap().data, b"y\n");
        assert!(matches!(
            p.push("A", "a\nb"),
            Err(PackError::LineBreakInLine { .. })
        ));
        assert!(matches!(
            p.push("A", "a\rb"),
            Err(PackError::LineBreakInLine { .. })
        ));
    }

    #[test]
    fn packs_n_lines_per_key_in_order() {
        let mut p = Packer::new(3, 10_000).unwrap();
        let mut out = Vec::new();
        for i in 0..7 {
            for key in ["AAAAAA", "BBBBBB"] {
                out.extend(p.push(key, &format!("{key},{i}")).unwrap());
            }
        }
        // 7 lines per key: two full records of 3 each, 1 line held per key.
        assert_eq!(out.len(), 4);
        assert_eq!(p.held_lines(), 2);
        out.extend(p.flush());
        assert!(p.is_empty());
        assert_eq!(p.held_lines(), 0);
        assert!(out.iter().all(|r| r.line_count() <= 3));
        for key in ["AAAAAA", "BBBBBB"] {
            let want: Vec<String> = (0..7).map(|i| format!("{key},{i}")).collect();
            assert_eq!(lines_of(&out, key), want);
        }
        assert_eq!(out[0].data, b"AAAAAA,0\nAAAAAA,1\nAAAAAA,2\n");
    }

    #[test]
    fn flush_emits_oldest_first() {
        let mut p = Packer::new(10, 10_000).unwrap();
        p.push("C", "c").unwrap();
        p.push("A", "a").unwrap();
        p.push("B", "b").unwrap();
        p.push("C", "c2").unwrap();
        let keys: Vec<_> = p.flush().into_iter().map(|r| r.partition_key).collect();
        assert_eq!(keys, ["C", "A", "B"]);
    }

    #[test]
    fn max_bytes_closes_record_and_line_starts_next() {
        // Key 6 + lines of 9 + "\n" = 10: two lines = 26 bytes fit in 30,
        // a third (36) does not.
        let mut p = Packer::new(100, 30).unwrap();
        assert_eq!(p.push("ABCDEF", "123456789").unwrap(), None);
        assert_eq!(p.push("ABCDEF", "abcdefghi").unwrap(), None);
        let r = p.push("ABCDEF", "ABCDEFGHI").unwrap().unwrap();
        assert_eq!(r.data, b"123456789\nabcdefghi\n");
        assert_eq!(r.encoded_size(), 26);
        let rest = p.flush();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].data, b"ABCDEFGHI\n");
    }

    #[test]
    fn exact_fit_is_accepted() {
        // 6 (key) + 23 + 1 = 30.
        let mut p = Packer::new(1, 30).unwrap();
        let r = p.push("ABCDEF", &"x".repeat(23)).unwrap().unwrap();
        assert_eq!(r.encoded_size(), 30);
        assert!(matches!(
            p.push("ABCDEF", &"x".repeat(24)),
            Err(PackError::LineTooLong {
                size: 31,
                limit: 30,
                ..
            })
        ));
    }

    #[test]
    fn oversize_line_rejected_and_others_kept() {
        let mut p = Packer::new(5, MAX_RECORD_BYTES).unwrap();
        p.push("ABCDEF", "first").unwrap();
        let huge = "x".repeat(MAX_RECORD_BYTES);
        let err = p.push("ABCDEF", &huge).unwrap_err();
        assert_eq!(
            err,
            PackError::LineTooLong {
                key: "ABCDEF".into(),
                size: MAX_RECORD_BYTES + 7,
                limit: MAX_RECORD_BYTES,
            }
        );
        p.push("ABCDEF", "second").unwrap();
        let out = p.flush();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data, b"first\nsecond\n");
    }

    #[test]
    fn bad_keys_rejected() {
        let mut p = Packer::new(2, 1000).unwrap();
        assert!(matches!(
            p.push("", "x"),
            Err(PackError::Key(RecordError::BadPartitionKey { .. }))
        ));
        assert!(matches!(
            p.push(&"k".repeat(257), "x"),
            Err(PackError::Key(RecordError::BadPartitionKey { .. }))
        ));
        assert!(p.is_empty());
    }

    proptest! {
        /// Whatever the keys, lines, N and size cap: every accepted line
        /// comes out exactly once, in order per key; every record holds at
        /// most N lines and at most max bytes; only lines that cannot fit
        /// alone are rejected.
        #[test]
        fn packer_invariants(
            n in 1usize..6,
            max in 8usize..120,
            input in proptest::collection::vec((0u8..4, 0usize..100), 0..200),
            flush_every in 1usize..50,
        ) {
            let mut p = Packer::new(n, max).unwrap();
            let mut out = Vec::new();
            let mut accepted: HashMap<String, Vec<String>> = HashMap::new();
            for (i, (k, len)) in input.iter().enumerate() {
                let key = ["A", "BB", "CCCCCC", "D"][*k as usize].to_string();
                let mut line = format!("{i}:");
                while line.len() < *len { line.push('x'); }
                match p.push(&key, &line) {
                    Ok(r) => {
                        prop_assert!(line.len() + 1 + key.len() <= max);
                        accepted.entry(key).or_default().push(line);
                        out.extend(r);
                    }
                    Err(PackError::LineTooLong { size, limit, .. }) => {
                        prop_assert_eq!(size, line.len() + 1 + key.len());
                        prop_assert!(size > limit);
                    }
                    Err(e) => prop_assert!(false, "unexpected {e}"),
                }
                if i % flush_every == 0 { out.extend(p.flush()); }
            }
            out.extend(p.flush());
            prop_assert!(p.is_empty());
            for r in &out {
                prop_assert!(r.line_count() >= 1 && r.line_count() <= n);
                prop_assert!(r.encoded_size() <= max);
                prop_assert!(r.validate().is_ok());
            }
            for (key, lines) in &accepted {
                prop_assert_eq!(&lines_of(&out, key), lines);
            }
            let total: usize = out.iter().map(Record::line_count).sum();
            prop_assert_eq!(total, accepted.values().map(Vec::len).sum::<usize>());
        }
    }
}
