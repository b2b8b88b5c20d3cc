//! Whole-stream decoding glue: raw IQ bytes → magnitudes → accepted
//! frames → parsed [`Decoded`] frames, the one form every later stage
//! (tracker, outputs, `decode`) takes. Pure apart from the `Read` it is
//! handed.

use std::io::{self, Read};

use crate::demod::{Demodulator, Rate};
use crate::iq::{MagnitudeConverter, SampleFormat};
use crate::modes::accept::Received;
use crate::modes::{self, Frame};

/// Bytes read per step; small enough to keep the working set in cache.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// An accepted frame, parsed once, with what the receiver knows about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The parsed frame (Annex 10 Vol IV §3.1.2.3).
    pub frame: Frame,
    /// Index of the sample where the preamble starts, counted from the
    /// start of the input (network sources: our clock in samples).
    pub sample: u64,
    /// Mean magnitude of the preamble pulses (0..65535).
    pub signal: u16,
    /// Reception time on a 12 MHz clock (see [`Received::timestamp`]).
    pub timestamp: u64,
    /// Bits flipped by error repair.
    pub repaired: u8,
    /// Held until its address was confirmed, so emitted late.
    pub late: bool,
}

impl Decoded {
    /// Parses an accepted frame. Accepted frames always parse (the
    /// acceptor checked that their length matches their DF), so `None`
    /// means a bug upstream, and the frame is dropped rather than trusted.
    pub fn from_received(r: &Received) -> Option<Decoded> {
        let frame = modes::parse(r.bytes()).ok()?;
        Some(Decoded {
            frame,
            sample: r.sample,
            signal: r.signal,
            timestamp: r.timestamp,
            repaired: r.repaired,
            late: r.late,
        })
    }
}

/// IQ bytes in, parsed frames out, in any chunking.
pub struct IqDecoder {
    conv: MagnitudeConverter,
    demod: Demodulator,
    accepted: Vec<Received>,
    unparsed: u64,
}

impl IqDecoder {
    /// A decoder for `format` samples at `rate`, repairing up to
    /// `fix_bits` bit errors.
    pub fn new(format: SampleFormat, rate: Rate, fix_bits: u8) -> Self {
        Self {
            conv: MagnitudeConverter::new(format),
            demod: Demodulator::new(rate, fix_bits),
            accepted: Vec::new(),
            unparsed: 0,
        }
    }

    /// Decodes `bytes`, appending the frames now known to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Decoded>) {
        self.demod
            .push_iq(&mut self.conv, bytes, &mut self.accepted);
        self.parse_into(out);
    }

    /// End of input: the frames still held. Returns the number of trailing
    /// bytes that did not make a whole sample (the caller warns about a
    /// truncated file).
    pub fn finish(&mut self, out: &mut Vec<Decoded>) -> usize {
        self.demod.finish(&mut self.accepted);
        self.parse_into(out);
        self.conv.pending_bytes()
    }

    fn parse_into(&mut self, out: &mut Vec<Decoded>) {
        for r in self.accepted.drain(..) {
            match Decoded::from_received(&r) {
                Some(d) => out.push(d),
                None => self.unparsed += 1,
            }
        }
    }

    /// Accepted frames that did not parse, and were dropped: always 0
    /// unless the acceptor has a bug (the fuzzer checks it).
    pub fn unparsed(&self) -> u64 {
        self.unparsed
    }

    /// The demodulator, for its counters.
    pub fn demod(&self) -> &Demodulator {
        &self.demod
    }

    /// Decode everything from `r` into `on_frame`; returns the trailing byte count.
    pub fn run(
        &mut self,
        mut r: impl Read,
        mut on_frame: impl FnMut(Decoded),
    ) -> io::Result<usize> {
        let mut buf = vec![0u8; CHUNK_BYTES];
        let mut out = Vec::new();
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.push(&buf[..n], &mut out);
            out.drain(..).for_each(&mut on_frame);
        }
        let rest = self.finish(&mut out);
        out.drain(..).for_each(&mut on_frame);
        Ok(rest)
    }
}
