//! `--beast-listen ADDR:PORT` and `--beast-connect HOST:PORT`: every frame
//! in the Beast binary format, as dump1090-fa and readsb serve it on port
//! 30005 for piaware, fr24feed, the ADS-B Exchange feeder and mlat-client,
//! or push it to an aggregator (readsb's net-connector). The format is the
//! one [`crate::source::beast`] reads (see there); Mode S frames only:
//! type `'2'` (7 bytes) or `'3'` (14 bytes), the 12 MHz timestamp of the
//! frame ([`Decoded::timestamp`]: our sample clock, or the feeder's passed
//! through) and the signal level. Peers are handled by [`super::server`].

use super::server::Protocol;
use super::{Item, Wants};
use crate::decoder::Decoded;
use crate::source::beast;

/// The Beast stream served to clients.
pub static BEAST_LISTEN: Protocol = Protocol {
    name: "beast-listen",
    wants: Wants::Frames,
    encode,
};

/// The Beast stream pushed to one peer.
pub static BEAST_CONNECT: Protocol = Protocol {
    name: "beast-connect",
    wants: Wants::Frames,
    encode,
};

/// The signal byte: the preamble's mean magnitude scaled to 0-255, the
/// inverse of how [`crate::source::beast`] reads it (readsb's byte is the
/// square root of the power, i.e. the magnitude, scaled the same way).
fn signal_byte(d: &Decoded) -> u8 {
    ((u32::from(d.signal) + 128) / 257).min(255) as u8
}

fn encode(item: &Item, out: &mut Vec<u8>) {
    let Some(d) = &item.frame else { return };
    let bytes = d.frame.bytes();
    let kind = if bytes.len() == 7 { b'2' } else { b'3' };
    beast::encode(kind, d.timestamp, signal_byte(d), bytes, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modes;
    use crate::source::beast::{BeastDecoder, BeastKind};

    fn item(hex: &str, timestamp: u64, signal: u16) -> Item {
        let (_, bytes) = crate::hexin::parse_line(hex).unwrap().unwrap();
        Item {
            frame: Some(Decoded {
                frame: modes::parse(&bytes).unwrap(),
                sample: 0,
                signal,
                timestamp,
                repaired: 0,
                late: false,
            }),
            position: None,
            line: None,
            text: None,
        }
    }

    #[test]
    fn frames_round_trip_through_our_beast_reader() {
        // A timestamp and a frame that each hold 0x1A, which must be doubled.
        let items = [
            item("*8D4840D6202CC371C32CE0576098;", 0x1A_0000_1A1A, 0x1A1A),
            item("*5D4840D6A1B2C3;", (1 << 48) + 7, 65535),
            item("*A0001838CA3E51F0A8000047A02A;", 0, 0),
        ];
        let mut wire = Vec::new();
        for i in &items {
            encode(i, &mut wire);
        }
        assert!(
            wire.windows(2).any(|w| w == [0x1A, 0x1A]),
            "no escape was exercised"
        );
        let mut dec = BeastDecoder::default();
        let mut got = Vec::new();
        dec.push(&wire, &mut got);
        assert_eq!(dec.errors.garbage_bytes + dec.errors.bad_messages, 0);
        assert_eq!(got.len(), items.len());
        for (m, i) in got.iter().zip(&items) {
            let d = i.frame.as_ref().unwrap();
            assert_eq!(m.kind, BeastKind::ModeS);
            assert_eq!(m.payload(), d.frame.bytes());
            assert_eq!(m.timestamp, d.timestamp & ((1 << 48) - 1));
            // The reader scales the byte back by 257: within one step.
            assert!((i32::from(m.signal) * 257 - i32::from(d.signal)).abs() <= 128);
        }
    }
}
