//! `--source beast:HOST:PORT`: frames already demodulated by readsb or
//! dump1090-fa, read from their Beast binary output (port 30005).
//!
//! The Beast format (Mode-S Beast receiver by Günter Köllner, as readsb and
//! dump1090-fa's `net_io` write it): every message is `0x1A`, a type byte,
//! a 6-byte big-endian 48-bit timestamp of a 12 MHz clock, a 1-byte signal
//! level, then the payload: type `'1'` Mode A/C (2 bytes), `'2'` Mode S
//! short (7 bytes), `'3'` Mode S long (14 bytes). A `0x1A` inside the
//! timestamp, signal or payload is sent twice. Other types (`'4'` status,
//! `'5'` ...) are counted as errors; Mode A/C and the 8-byte receiver id
//! readsb sends before messages with `--net-receiver-id` (type `0xE3`, no
//! timestamp or signal) are skipped.
//!
//! The frames then enter the same acceptance stage as the demodulator's
//! ([`Acceptor`]): the CRC is checked again, so a feeder's garbage (or ours:
//! a resync that lands mid-frame) cannot invent aircraft, and AP replies
//! wait for their address to be confirmed, as with our own radio.

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::SourceTelemetry;
use crate::decoder::Decoded;
use crate::modes::accept::{Acceptor, Received};

/// The escape and start-of-message byte.
const ESC: u8 = 0x1A;
/// Timestamp (6) and signal (1) bytes before every payload.
const HEADER: usize = 7;

/// What a Beast message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeastKind {
    /// Mode A/C reply (2 bytes), which this pipeline does not use.
    ModeAc,
    /// Mode S short (7 bytes) or long (14 bytes) frame.
    ModeS,
    /// readsb's receiver id (type 0xE3, 8 bytes, no header): skipped.
    ReceiverId,
}

/// One message, unescaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeastMessage {
    /// What the message carries.
    pub kind: BeastKind,
    /// 48-bit count of a 12 MHz clock (the feeder's, not ours).
    pub timestamp: u64,
    /// Signal level, 0-255 (readsb: square root of the power, scaled).
    pub signal: u8,
    /// The payload, in the first `len` bytes.
    pub bytes: [u8; 14],
    /// Payload length: 2 (Mode A/C), 7 or 14 (Mode S).
    pub len: u8,
}

impl BeastMessage {
    /// The payload's `len` bytes.
    pub fn payload(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// What [`BeastDecoder::push`] saw besides messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BeastErrors {
    /// Bytes skipped while looking for the start of a message.
    pub garbage_bytes: u64,
    /// Messages cut short by the next start, or of an unknown type.
    pub bad_messages: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for `0x1A`.
    Sync,
    /// After `0x1A` outside a message: expecting a type byte.
    Type,
    /// Inside a message; `escaped` when the last byte was a lone `0x1A`.
    Body { escaped: bool },
}

/// A streaming Beast decoder: any split of the input gives the same
/// messages, and no byte sequence makes it panic or grow.
#[derive(Debug, Clone)]
pub struct BeastDecoder {
    state: State,
    kind: BeastKind,
    need: usize,
    buf: [u8; HEADER + 14],
    have: usize,
    /// Garbage and bad messages seen so far.
    pub errors: BeastErrors,
}

impl Default for BeastDecoder {
    fn default() -> Self {
        BeastDecoder {
            state: State::Sync,
            kind: BeastKind::ModeS,
            need: 0,
            buf: [0; HEADER + 14],
            have: 0,
            errors: BeastErrors::default(),
        }
    }
}

impl BeastDecoder {
    /// Decode `input`, appending whole messages to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<BeastMessage>) {
        for &b in input {
            self.byte(b, out);
        }
    }

    /// Forget a partial message (the connection was lost).
    pub fn reset(&mut self) {
        self.state = State::Sync;
        self.have = 0;
    }

    fn start(&mut self, t: u8) {
        let (kind, need) = match t {
            b'1' => (BeastKind::ModeAc, HEADER + 2),
            b'2' => (BeastKind::ModeS, HEADER + 7),
            b'3' => (BeastKind::ModeS, HEADER + 14),
            0xE3 => (BeastKind::ReceiverId, 8),
            // Two escapes outside a message: a data byte of a message we
            // joined in the middle; keep looking.
            ESC => {
                self.state = State::Sync;
                return;
            }
            _ => {
                self.errors.bad_messages += 1;
                self.state = State::Sync;
                return;
            }
        };
        self.kind = kind;
        self.need = need;
        self.have = 0;
        self.state = State::Body { escaped: false };
    }

    fn byte(&mut self, b: u8, out: &mut Vec<BeastMessage>) {
        match self.state {
            State::Sync => {
                if b == ESC {
                    self.state = State::Type;
                } else {
                    self.errors.garbage_bytes += 1;
                }
            }
            State::Type => self.start(b),
            State::Body { escaped: true } => {
                if b == ESC {
                    self.data(ESC, out);
                } else {
                    // A lone 0x1A: the next message began before this one
                    // was complete.
                    self.errors.bad_messages += 1;
                    self.start(b);
                }
            }
            State::Body { escaped: false } => {
                if b == ESC {
                    self.state = State::Body { escaped: true };
                } else {
                    self.data(b, out);
                }
            }
        }
    }

    fn data(&mut self, b: u8, out: &mut Vec<BeastMessage>) {
        self.buf[self.have] = b;
        self.have += 1;
        self.state = State::Body { escaped: false };
        if self.have < self.need {
            return;
        }
        if self.kind == BeastKind::ReceiverId {
            self.have = 0;
            self.state = State::Sync;
            return;
        }
        let mut ts = 0u64;
        for &t in &self.buf[..6] {
            ts = (ts << 8) | u64::from(t);
        }
        let len = self.need - HEADER;
        let mut bytes = [0u8; 14];
        bytes[..len].copy_from_slice(&self.buf[HEADER..self.need]);
        out.push(BeastMessage {
            kind: self.kind,
            timestamp: ts,
            signal: self.buf[6],
            bytes,
            len: len as u8,
        });
        self.have = 0;
        self.state = State::Sync;
    }
}

/// Encode one message: `--beast-listen`/`--beast-connect`, and the fake
/// feeders in tests/. The timestamp keeps its low 48 bits.
pub fn encode(kind: u8, timestamp: u64, signal: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.extend([ESC, kind]);
    let ts = timestamp.to_be_bytes();
    for &b in ts[2..].iter().chain([signal].iter()).chain(payload) {
        out.push(b);
        if b == ESC {
            out.push(ESC);
        }
    }
}

/// Mode S frames of Beast messages through the acceptance stage. Time is
/// our clock since `start`, in samples of `hz`, the unit of the rest of the
/// pipeline (the feeder's 12 MHz clock may be free-running or reset).
pub struct BeastFrames {
    decoder: BeastDecoder,
    acceptor: Acceptor,
    hz: f64,
    start: Instant,
    messages: Vec<BeastMessage>,
    accepted: Vec<Received>,
}

impl BeastFrames {
    /// A decoder whose frames are checked as if they came from our demodulator at `hz` with
    /// `fix_bits` of repair, so a Beast feed is held to the same parity rules.
    pub fn new(hz: u32, fix_bits: u8) -> Self {
        BeastFrames {
            decoder: BeastDecoder::default(),
            acceptor: Acceptor::new(hz, fix_bits),
            hz: f64::from(hz),
            start: Instant::now(),
            messages: Vec::new(),
            accepted: Vec::new(),
        }
    }

    /// Decode `input`; frames accepted (now or released from hold), parsed,
    /// go to `emit`, which returns false when the pipeline has closed.
    /// Returns (accepted, refused by CRC / acceptance) counts, or `None` if
    /// closed.
    pub fn push(
        &mut self,
        input: &[u8],
        mut emit: impl FnMut(Decoded) -> bool,
    ) -> Option<(u64, u64)> {
        self.decoder.push(input, &mut self.messages);
        let now = (self.start.elapsed().as_secs_f64() * self.hz) as u64;
        let mut refused = 0;
        for m in self.messages.drain(..) {
            if m.kind != BeastKind::ModeS {
                continue;
            }
            let mut bytes = m.bytes;
            let len = usize::from(m.len);
            match self.acceptor.check(&mut bytes, len, now, &[]) {
                Some(checked) => {
                    let frame = Received {
                        bytes,
                        len: m.len,
                        sample: now,
                        signal: u16::from(m.signal) * 257,
                        timestamp: m.timestamp,
                        repaired: 0,
                        late: false,
                    };
                    self.acceptor.commit(frame, checked, &mut self.accepted);
                }
                None => refused += 1,
            }
        }
        let n = self.accepted.len() as u64;
        for r in self.accepted.drain(..) {
            if let Some(d) = Decoded::from_received(&r) {
                if !emit(d) {
                    return None;
                }
            }
        }
        Some((n, refused))
    }

    /// Garbage and bad messages seen so far.
    pub fn errors(&self) -> BeastErrors {
        self.decoder.errors
    }

    fn reset(&mut self) {
        self.decoder.reset();
    }
}

/// How this feed is named in its log lines.
const FEED: super::FeedNames = super::FeedNames {
    source: "beast",
    label: "Beast",
    hint: "cannot connect to the Beast feed (is readsb/dump1090-fa running with its Beast output on this port?)",
};

/// Reads `addr` until cancelled, reconnecting with backoff; accepted
/// frames, parsed and mapped by `map`, go to `tx` (see [`super::read_feed`]).
pub async fn run<T>(
    addr: String,
    hz: u32,
    fix_bits: u8,
    token: CancellationToken,
    tel: Arc<SourceTelemetry>,
    tx: tokio::sync::mpsc::Sender<T>,
    mut map: impl FnMut(Decoded) -> Option<T>,
) {
    let mut frames = BeastFrames::new(hz, fix_bits);
    let mut seen = BeastErrors::default();
    super::read_feed(&FEED, &addr, &token, &tel, &tx, |bytes, first, batch| {
        if first {
            frames.reset();
        }
        let Some((ok, refused)) = frames.push(bytes, |r| {
            batch.extend(map(r));
            true
        }) else {
            return false;
        };
        SourceTelemetry::add(&tel.accepted, ok);
        let e = frames.errors();
        SourceTelemetry::add(&tel.garbage_bytes, e.garbage_bytes - seen.garbage_bytes);
        SourceTelemetry::add(&tel.rejects, refused + e.bad_messages - seen.bad_messages);
        seen = e;
        true
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    // DF17 identification of 4840D6 ("KLM1023"), the example of
    // The 1090 MHz Riddle (Sun), §ADS-B identification.
    const DF17: [u8; 14] = [
        0x8D, 0x48, 0x40, 0xD6, 0x20, 0x2C, 0xC3, 0x71, 0xC3, 0x2C, 0xE0, 0x57, 0x60, 0x98,
    ];

    fn decode_all(input: &[u8]) -> (Vec<BeastMessage>, BeastErrors) {
        let mut d = BeastDecoder::default();
        let mut out = Vec::new();
        d.push(input, &mut out);
        (out, d.errors)
    }

    #[test]
    fn escapes_and_types_round_trip_in_any_split() {
        let mut wire = Vec::new();
        // A timestamp and signal full of 0x1A, to exercise the escapes.
        encode(b'3', 0x1A1A_001A_0203, 0x1A, &DF17, &mut wire);
        encode(b'1', 5, 7, &[0x12, 0x34], &mut wire);
        // A receiver id (with an escaped 0x1A in it) before the last one.
        wire.extend([ESC, 0xE3, 1, 2, ESC, ESC, 4, 5, 6, 7, 8]);
        encode(b'2', 0xFFFF_FFFF_FFFF, 200, &DF17[..7], &mut wire);
        let (all, errors) = decode_all(&wire);
        assert_eq!(errors, BeastErrors::default());
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].timestamp, 0x1A1A_001A_0203);
        assert_eq!((all[0].signal, all[0].payload()), (0x1A, &DF17[..]));
        assert_eq!(
            (all[1].kind, all[1].payload()),
            (BeastKind::ModeAc, &[0x12, 0x34][..])
        );
        assert_eq!(all[2].payload(), &DF17[..7]);
        for split in 1..wire.len() {
            let mut d = BeastDecoder::default();
            let mut out = Vec::new();
            d.push(&wire[..split], &mut out);
            d.push(&wire[split..], &mut out);
            assert_eq!(out, all, "split at {split}");
        }
    }

    #[test]
    fn resyncs_after_garbage_and_cut_messages() {
        let mut wire = b"hello".to_vec();
        // A message cut short by the start of the next one.
        wire.extend([ESC, b'3', 1, 2, 3]);
        encode(b'3', 1, 2, &DF17, &mut wire);
        // An unknown type, then a good one.
        wire.extend([ESC, b'9']);
        encode(b'3', 3, 4, &DF17, &mut wire);
        let (out, errors) = decode_all(&wire);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|m| m.payload() == DF17));
        assert_eq!(errors.garbage_bytes, 5);
        assert_eq!(errors.bad_messages, 2);
    }

    #[test]
    fn frames_pass_acceptance_only_with_a_good_crc() {
        let mut wire = Vec::new();
        encode(b'3', 1, 2, &DF17, &mut wire);
        let mut bad = DF17;
        bad[5] ^= 0x0F; // four bits: beyond any repair
        encode(b'3', 1, 2, &bad, &mut wire);
        let mut f = BeastFrames::new(2_400_000, 1);
        let mut got = Vec::new();
        let counts = f.push(&wire, |d| {
            got.push(d);
            true
        });
        assert_eq!(counts, Some((1, 1)));
        assert_eq!(got[0].frame.bytes(), &DF17[..]);
        assert_eq!(got[0].frame.icao.to_string(), "4840D6");
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_random_bytes(
            chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..64), 0..16)
        ) {
            let mut f = BeastFrames::new(2_400_000, 1);
            for c in &chunks {
                let _ = f.push(c, |_| true);
            }
        }

        #[test]
        fn never_panics_on_escape_heavy_bytes(
            bytes in proptest::collection::vec(proptest::sample::select(vec![ESC, b'1', b'2', b'3', 0x8D, 0]), 0..300)
        ) {
            let (out, _) = decode_all(&bytes);
            proptest::prop_assert!(out.iter().all(|m| matches!(m.len, 2 | 7 | 14)));
        }
    }
}
