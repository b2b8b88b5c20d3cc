//! `--raw-listen ADDR:PORT`: every frame as an AVR line, `*` + the frame
//! in upper-case hex + `;` + LF, the "raw" output dump1090 serves on port
//! 30002 (and what `decode --output avr` prints). Peers are handled by
//! [`super::server`].

use std::io::Write;

use super::server::Protocol;
use super::{Item, Wants};
use crate::modes::Hex;

/// AVR `*HEX;` lines.
pub static RAW: Protocol = Protocol {
    name: "raw-listen",
    wants: Wants::Frames,
    encode,
};

fn encode(item: &Item, out: &mut Vec<u8>) {
    if let Some(d) = &item.frame {
        let _ = writeln!(out, "*{};", Hex(d.frame.bytes()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decoder::Decoded;
    use crate::{hexin, modes};

    #[test]
    fn a_frame_is_one_avr_line_as_decode_prints_it() {
        let (_, bytes) = hexin::parse_line("*8D4840D6202CC371C32CE0576098;")
            .unwrap()
            .unwrap();
        let item = Item {
            frame: Some(Decoded {
                frame: modes::parse(&bytes).unwrap(),
                sample: 0,
                signal: 0,
                timestamp: 0,
                repaired: 0,
                late: false,
            }),
            position: None,
            line: None,
            text: None,
        };
        let mut out = Vec::new();
        encode(&item, &mut out);
        assert_eq!(out, b"*8D4840D6202CC371C32CE0576098;\n");
        // An item without a frame (a forwarded SBS line) writes nothing.
        out.clear();
        encode(
            &Item {
                frame: None,
                ..item
            },
            &mut out,
        );
        assert!(out.is_empty());
    }
}
