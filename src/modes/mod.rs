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

/// Uppercase hex of a frame's bytes, as AVR (`*8D...;`) and JSON print it.
/// Written through one stack buffer: a per-byte `format!` was a tenth of
/// the whole decoder's time on AVR output.
pub struct Hex<'a>(pub &'a [u8]);

impl std::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
        let mut buf = [0u8; 64];
        for chunk in self.0.chunks(buf.len() / 2) {
            for (pair, &b) in buf.chunks_exact_mut(2).zip(chunk) {
                pair[0] = DIGITS[usize::from(b >> 4)];
                pair[1] = DIGITS[usize::from(b & 15)];
            }
            let text = std::str::from_utf8(&buf[..2 * chunk.len()]).expect("ASCII digits");
            f.write_str(text)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod hex_tests {
    use super::Hex;

    #[test]
    fn hex_is_uppercase_two_digits_per_byte_at_any_length() {
        assert_eq!(Hex(&[]).to_string(), "");
        assert_eq!(Hex(&[0x8d, 0x00, 0x4f]).to_string(), "8D004F");
        let long: Vec<u8> = (0..=255).collect();
        let want: String = long.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(Hex(&long).to_string(), want);
    }
}
