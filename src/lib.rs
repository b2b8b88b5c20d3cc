//! adsb-kinesis: a 1090 MHz Mode S / ADS-B receiver that turns RTL-SDR
//! samples into SBS (BaseStation) records and ships them to Amazon Kinesis.
//!
//! # Pipeline
//!
//! ```text
//! IQ bytes ──iq──▶ magnitude ──demod──▶ raw frames ──modes──▶ decoded frames
//!          ──track──▶ per-aircraft state, CPR positions ──sbs──▶ MSG lines
//!          ──kinesis──▶ records, PutRecords batches ──▶ Kinesis (spool when behind)
//! ```
//!
//! # Layout
//!
//! - [`modes`]: CRC-24, the frame parser, ADS-B / Comm-B field decoders, CPR. Pure.
//! - [`config`]: every option of `run`, `check-config` and `tail`, declared
//!   once (flag, TOML key, `ADSB_KINESIS_*` variable), merged and validated.
//! - [`decoder`]: IQ bytes to parsed frames ([`decoder::Decoded`]), the one
//!   form every later stage takes. Pure.
//! - [`daemon`]: the `run` command's wiring: radio threads, the track
//!   stage, shutdown under one token, telemetry. Edge.
//! - [`output`]: where decoded data goes, each output a port fed by the
//!   track stage: stdout, the Kinesis sink, `--sbs-listen`. Edge.
//! - [`aircraft`]: the aircraft table behind `aircraft.json` (dump1090-fa's
//!   schema). Pure.
//! - [`retry`]: the one backoff schedule of every retry loop.
//! - `aws`: the SDK configuration shared by `run`, `tail` and
//!   `check-config`, start checks, error classes (the `aws` feature). Edge.
//! - [`kinesis`]: records, batching within the PutRecords limits and the
//!   on-disk spool (pure); the batch and sender tasks with retries, and the
//!   AWS SDK glue (edges).
//! - [`tail`]: the consumer, `adsb-kinesis tail`: shard plan, aircraft
//!   table (pure) and the shard readers (edge).
//! - [`notify`]: sd_notify for the systemd unit: readiness, a watchdog fed
//!   only while the pipeline is healthy, status. Edge.
//! - [`service`], [`journal`], [`check`]: life under systemd: journal
//!   logging with structured fields, credentials from `LoadCredential=`,
//!   `check-config` for `ExecStartPre=`. Edges.
//! - [`sim`]: a Mode S signal synthesizer used as a demo source and by the
//!   sensitivity tests. Pure.
//! - [`source`]: the dongle (rtl-sdr-rs), rtl_tcp, Beast and SBS network
//!   inputs, and the IQ sources behind one blocking read. Edge.
//!
//! Pure modules know nothing of tokio, AWS or sockets; I/O lives at the edges.

#![deny(missing_docs)]
// The `arm-neon` feature's NEON flavour of the demodulator and its SIMD32
// scalar kernels (see Cargo.toml): nightly-only on 32-bit ARM.
#![cfg_attr(
    all(target_arch = "arm", feature = "arm-neon"),
    feature(
        arm_target_feature,
        stdarch_arm_feature_detection,
        stdarch_arm_dsp,
        stdarch_arm_neon_intrinsics,
        portable_simd
    )
)]

pub mod aircraft;
#[cfg(feature = "aws")]
pub mod aws;
pub mod check;
pub mod config;
pub mod daemon;
pub mod decoder;
pub mod demod;
pub mod hexin;
pub mod iq;
pub mod journal;
pub mod json;
pub mod kinesis;
pub mod modes;
pub mod notify;
pub mod output;
pub mod retry;
pub mod sbs;
pub mod service;
pub mod sim;
pub mod source;
pub mod tail;
pub mod track;
