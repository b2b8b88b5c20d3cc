//! The Kinesis sink: SBS lines in, `PutRecords` requests out, with an
//! on-disk spool for what cannot be sent now.
//!
//! ```text
//! (key, line) ──record::Packer──▶ Record ──batch::Batcher──▶ Vec<Record> ──send──▶ PutRecords
//!                                                ▲                          │
//!                                                └── spool::Spool ◀─────────┘ behind / failed
//! ```
//!
//! `record`, `batch` and `spool` are pure and synchronous (time is passed
//! in, files use `std::fs`), so they test without tokio, AWS or sleeping.
//! `send` (tasks, retry with backoff) and `put` (SDK calls) build on them.
//!
//! - [`record`]: [`Record`] (partition key + data, knows its
//!   encoded size), the Kinesis limits, and the `--pack-lines` packer.
//! - [`batch`]: [`Batcher`] (500 records / 5 MiB / linger),
//!   [`failed_entries`] and the error classification.
//! - [`spool`]: the append-only, checksummed on-disk queue.
//! - [`send`]: the batch and sender tasks, the retry policy and the spool
//!   they share (tokio; edge).
//! - `put`: `PutRecords` over the SDK client of [`crate::aws`] (edge; the
//!   `aws` cargo feature, on by default).
//! - [`target`]: the stream id and the endpoint URL check.
//!
//! The consumer side (`tail`) is [`crate::tail`].
//!
//! # Delivery guarantee: at-least-once
//!
//! Every record accepted by the packer is either stored by Kinesis, or
//! still held (in memory or in the spool), or counted as lost for a stated
//! reason: a line that can never fit a record, the spool's size cap
//! (oldest dropped first), a torn or corrupt spool tail, or records held
//! only in memory when the process dies (and, after a power loss, spooled
//! records written since the last fsync). Nothing is dropped silently.
//!
//! A record can reach the stream more than once. Duplicates arise where
//! the outcome of a send is unknown and the record is sent again:
//!
//! - a `PutRecords` request that timed out, or whose connection dropped
//!   after the request was sent, or whose response is unreadable or a 5xx,
//!   or that was cut off at the shutdown deadline, is retried whole (or
//!   spooled and sent by the next run): Kinesis may already have stored
//!   some or all of it. The sender counts these requests
//!   (`unknown_outcome` in the stats);
//! - after a crash, spooled records whose acknowledgement had not been
//!   synced to disk yet are replayed ([`spool`] docs).
//!
//! A response that lists per-entry results is exact: only the entries with
//! an `ErrorCode` are retried ([`batch::failed_entries`]), so partial
//! failures cause no duplicates.
//!
//! # Ordering
//!
//! Records of one aircraft share a partition key, hence a shard, and are
//! batched in arrival order. That order holds except across retries: a
//! record that failed and is retried lands after records of the same
//! aircraft that succeeded in the meantime (or in the same request), and a
//! duplicate lands after its original. Spooled records are replayed oldest
//! first, before new data. Consumers that need strict order sort by the SBS
//! timestamps.

pub mod batch;
mod crc32;
#[cfg(feature = "aws")]
pub mod put;
pub mod record;
pub mod send;
pub mod spool;
pub mod target;

pub use batch::{failed_entries, Batcher, EntryResult, ErrorClass, FailedEntry};
pub use record::{Packer, Record};
pub use spool::{Spool, SpoolOptions, SpoolPos};
