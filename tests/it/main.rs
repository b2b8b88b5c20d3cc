//! The end-to-end tests: the real binary against recordings, moto, the
//! fault proxy, fake feeders and sd_notify. One test binary, so the AWS
//! SDK links once (`cargo test --test it`; a module alone with
//! `cargo test --test it kinesis::`). `tests/log_bridge.rs` stays apart:
//! it installs a process-wide logger.

#[path = "../common/mod.rs"]
mod common;

#[cfg(feature = "aws")]
mod check_config;
mod cli;
#[cfg(feature = "aws")]
mod faults;
mod journald;
#[cfg(feature = "aws")]
mod kinesis;
mod map;
mod net_outputs;
mod notify;
#[cfg(feature = "aws")]
mod readme;
mod recordings;
mod run;
mod sim_recall;
mod sources;
#[cfg(feature = "aws")]
mod tail;
mod vectors;
