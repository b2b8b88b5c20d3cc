//! The consumer: `adsb-kinesis tail` reads a stream back, beside the
//! producer in [`crate::kinesis`]. It shares only the record format
//! ([`crate::kinesis::record::record_lines`]) and the AWS client builder
//! ([`crate::aws`]) with it.
//!
//! - [`shards`]: which shards may be read, parents before children, and
//!   where to start. Pure.
//! - [`fleet`]: the latest state of every aircraft seen, for `--table`.
//!   Pure.
//! - `map`: `--http-listen`, the fleet map of every receiver feeding the
//!   stream (the `aws` feature). Edge.
//! - `reader`: the shard readers and the printer (tokio, the SDK; the
//!   `aws` feature). Edge.

pub mod fleet;
#[cfg(feature = "aws")]
pub mod map;
#[cfg(feature = "aws")]
pub mod reader;
pub mod shards;
