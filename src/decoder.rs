//! Whole-stream decoding glue: raw IQ bytes -> magnitudes -> frames.
//! Pure apart from the `Read` it is handed.

use std::io::{self, Read};

use crate::demod::{Demodulator, Rate};
use crate::iq::{MagnitudeConverter, SampleFormat};
use crate::modes::accept::Received;

/// Bytes read per step; small enough to keep the working set in cache.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// IQ bytes in, accepted frames out, in any chunking.
pub struct IqDecoder {
    conv: MagnitudeConverter,
    demod: Demodulator,
}

impl IqDecoder {
    pub fn new(format: SampleFormat, rate: Rate, fix_bits: u8) -> Self {
        Self {
            conv: MagnitudeConverter::new(format),
            demod: Demodulator::new(rate, fix_bits),
        }
    }

    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Received>) {
        let conv = &mut self.conv;
        self.demod.push_with(|buf| conv.convert(bytes, buf), out);
    }

    /// End of input. Returns the number of trailing bytes that did not make
    /// a whole sample (the caller warns about a truncated file).
    pub fn finish(&mut self, out: &mut Vec<Received>) -> usize {
        self.demod.finish(out);
        self.conv.pending_bytes()
    }

    pub fn demod(&self) -> &Demodulator {
        &self.demod
    }

    /// Decode everything from `r` into `on_frame`; returns the trailing byte count.
    pub fn run(
        &mut self,
        mut r: impl Read,
        mut on_frame: impl FnMut(&Received),
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
            out.iter().for_each(&mut on_frame);
            out.clear();
        }
        let rest = self.finish(&mut out);
        out.iter().for_each(&mut on_frame);
        Ok(rest)
    }
}
