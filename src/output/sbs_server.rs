//! `--sbs-listen ADDR:PORT`: our SBS lines served to any number of local
//! TCP clients (Virtual Radar Server, tar1090's SBS input, `nc`), as a
//! decoder's port 30003 does (SBS_FORMAT.md §1: no handshake, every client
//! gets the same stream, CRLF lines). Peers are handled by
//! [`super::server`].

use super::server::Protocol;
use super::{Item, Wants};

/// SBS lines, CRLF-terminated.
pub static SBS: Protocol = Protocol {
    name: "sbs-listen",
    wants: Wants::Lines,
    encode,
};

fn encode(item: &Item, out: &mut Vec<u8>) {
    if let Some(text) = &item.text {
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}
