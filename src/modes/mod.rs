//! Mode S downlink frames: CRC, error repair, the frame parser and the
//! decoders for every field we report. Pure code: no I/O, no clocks.
//!
//! Spec references are to ICAO Annex 10 Vol IV (Mode S) and RTCA DO-260B
//! (1090ES ADS-B).

pub mod accept;
pub mod adsb;
pub mod commb;
pub mod cpr;
pub mod crc;
pub mod fields;
mod frame;

pub use frame::{df_bits, df_of, parse, Body, DecodeError, FlightStatus, Frame};

use std::fmt;

/// A 24-bit ICAO aircraft address (Annex 10 Vol III Part I §9).
/// Displays as the 6-digit upper-case hex that SBS and JSON outputs use.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct Icao(pub u32);

impl fmt::Display for Icao {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06X}", self.0 & 0xFF_FFFF)
    }
}
