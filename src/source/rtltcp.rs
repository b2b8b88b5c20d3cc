//! `--source rtltcp:HOST:PORT`: IQ samples from an `rtl_tcp` server (the
//! osmocom rtl-sdr tool, or anything speaking its protocol).
//!
//! Protocol (osmocom rtl-sdr `src/rtl_tcp.c`): on connect the server sends
//! a 12-byte dongle info header, `"RTL0"`, the tuner type and the number
//! of tuner gains (both u32 big-endian), then raw cu8 samples for as long
//! as the connection lasts. The client sends 5-byte commands, a command
//! byte and a u32 big-endian argument: 0x01 centre frequency (Hz), 0x02
//! sample rate (Hz), 0x03 gain mode (0 auto, 1 manual), 0x04 gain (tenths
//! of a dB), 0x05 frequency correction (ppm), 0x0E bias tee (0/1).
//!
//! A blocking reader for the daemon's sdr thread: TCP flow control is the
//! back pressure, and the server drops what we cannot take, as a dongle
//! would. It reconnects with backoff forever; only cancellation stops it.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Reconnects;
use super::{SourceTelemetry, Tuning};

/// Bound on connecting, and on the header arriving.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Reads wake this often to notice shutdown.
const POLL: Duration = Duration::from_millis(200);
/// A server that sends nothing for this long is gone (rtl_tcp streams
/// continuously once connected).
const STALL: Duration = Duration::from_secs(10);

/// rtl_tcp command bytes (rtl_tcp.c `command_worker`).
pub mod cmd {
    /// Set the centre frequency, Hz.
    pub const SET_FREQ: u8 = 0x01;
    /// Set the sample rate, samples per second.
    pub const SET_SAMPLE_RATE: u8 = 0x02;
    /// Gain mode: 0 automatic, 1 manual.
    pub const SET_GAIN_MODE: u8 = 0x03;
    /// Set a manual gain, tenths of a dB.
    pub const SET_GAIN: u8 = 0x04;
    /// Set the crystal correction, ppm.
    pub const SET_FREQ_CORRECTION: u8 = 0x05;
    /// Bias tee on (1) or off (0).
    pub const SET_BIAS_TEE: u8 = 0x0E;
}

/// The dongle info header: tuner type and gain count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DongleInfo {
    /// Tuner type code (1 E4000 ... 5 R820T, 6 R828D).
    pub tuner: u32,
    /// Number of gain steps the tuner supports.
    pub gains: u32,
}

/// Parse the 12-byte header; `None` if it is not `RTL0`.
pub fn parse_header(h: &[u8; 12]) -> Option<DongleInfo> {
    if &h[..4] != b"RTL0" {
        return None;
    }
    let be = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    Some(DongleInfo {
        tuner: be(4),
        gains: be(8),
    })
}

/// The commands that set a tuner up for us, in the order sent.
pub fn commands(t: &Tuning) -> Vec<[u8; 5]> {
    let c = |cmd: u8, arg: u32| {
        let a = arg.to_be_bytes();
        [cmd, a[0], a[1], a[2], a[3]]
    };
    let mut out = vec![
        c(cmd::SET_SAMPLE_RATE, t.sample_rate),
        c(cmd::SET_FREQ, t.freq_hz),
        c(cmd::SET_FREQ_CORRECTION, t.ppm as u32),
    ];
    match t.gain.tenths() {
        None => out.push(c(cmd::SET_GAIN_MODE, 0)),
        Some(g) => {
            out.push(c(cmd::SET_GAIN_MODE, 1));
            // rtl_tcp hands this to rtlsdr_set_tuner_gain, which picks the
            // nearest gain the tuner has.
            out.push(c(cmd::SET_GAIN, g as u32));
        }
    }
    if t.bias_tee {
        out.push(c(cmd::SET_BIAS_TEE, 1));
    }
    out
}

/// An rtl_tcp connection that comes back by itself.
pub struct RtlTcp {
    addr: String,
    tuning: Tuning,
    stream: Option<TcpStream>,
    /// Bytes read on this connection: an odd count when it drops is half a
    /// sample, padded so I and Q stay paired across the reconnection.
    bytes_here: u64,
    pad_pending: bool,
    reconnects: Reconnects,
    /// The next attempt waits first: only a connection that lasted
    /// [`crate::retry::STABLE`] reconnects at once.
    wait_before_connect: bool,
    token: CancellationToken,
    tel: Arc<SourceTelemetry>,
}

impl RtlTcp {
    /// An rtl_tcp client for `addr` that connects on its first read and reconnects after a
    /// fault, backing off, until `token` is cancelled.
    pub fn new(
        addr: String,
        tuning: Tuning,
        token: CancellationToken,
        tel: Arc<SourceTelemetry>,
    ) -> Self {
        RtlTcp {
            addr,
            tuning,
            stream: None,
            bytes_here: 0,
            pad_pending: false,
            reconnects: Reconnects::new(),
            wait_before_connect: false,
            token,
            tel,
        }
    }

    fn connect(&self) -> io::Result<(TcpStream, DongleInfo)> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the name resolves to no address");
        for a in self.addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
                Ok(mut s) => {
                    s.set_read_timeout(Some(CONNECT_TIMEOUT))?;
                    let mut h = [0u8; 12];
                    s.read_exact(&mut h).map_err(|e| match e.kind() {
                        // The read timeout shows as EAGAIN, "Resource
                        // temporarily unavailable": say what it means.
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "no rtl_tcp header within {} s: not an rtl_tcp server?",
                                CONNECT_TIMEOUT.as_secs()
                            ),
                        ),
                        io::ErrorKind::UnexpectedEof => io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "closed before a whole rtl_tcp header: not an rtl_tcp server?",
                        ),
                        _ => e,
                    })?;
                    let info = parse_header(&h).ok_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            "no RTL0 header: not an rtl_tcp server",
                        )
                    })?;
                    for c in commands(&self.tuning) {
                        s.write_all(&c)?;
                    }
                    s.set_read_timeout(Some(POLL))?;
                    return Ok((s, info));
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Fills `buf` with samples; returns 0 only when cancelled.
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let mut filled = 0;
        while filled < buf.len() && !self.token.is_cancelled() {
            if self.pad_pending {
                // Mid-scale: the missing half of the last sample.
                buf[filled] = 127;
                filled += 1;
                self.pad_pending = false;
                continue;
            }
            let Some(stream) = self.stream.as_mut() else {
                if filled > 0 {
                    // Hand over what we have before waiting to reconnect.
                    return filled;
                }
                if std::mem::take(&mut self.wait_before_connect)
                    && !self.reconnects.retry.sleep_blocking(&self.token)
                {
                    return 0;
                }
                match self.connect() {
                    Ok((s, info)) => {
                        SourceTelemetry::add(&self.tel.connects, 1);
                        info!(source = "rtltcp", addr = %self.addr, tuner = info.tuner,
                            gains = info.gains, "connected to rtl_tcp");
                        self.stream = Some(s);
                        self.reconnects.connected();
                        self.bytes_here = 0;
                        self.tel.set_waiting(false);
                    }
                    Err(e) => {
                        SourceTelemetry::add(&self.tel.failures, 1);
                        if let Some(n) = self.reconnects.failed() {
                            warn!(source = "rtltcp", addr = %self.addr, error = %e, failures = n,
                                "cannot use the rtl_tcp server (is rtl_tcp running there, with the \
                                 dongle free?); retrying with backoff (repeats logged once a minute)");
                        }
                        self.tel.set_waiting(true);
                        if !self.reconnects.retry.sleep_blocking(&self.token) {
                            return 0;
                        }
                    }
                }
                continue;
            };
            let started = Instant::now();
            let lost = loop {
                match stream.read(&mut buf[filled..]) {
                    Ok(0) => break Some("closed by the server".to_owned()),
                    Ok(n) => {
                        filled += n;
                        self.bytes_here += n as u64;
                        break None;
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        if self.token.is_cancelled() {
                            return filled;
                        }
                        if started.elapsed() > STALL {
                            break Some(format!("no samples for {} s", STALL.as_secs()));
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Some(e.to_string()),
                }
            };
            if let Some(why) = lost {
                SourceTelemetry::add(&self.tel.failures, 1);
                let (stable, log) = self.reconnects.lost();
                self.wait_before_connect = !stable;
                if let Some(n) = log {
                    warn!(source = "rtltcp", addr = %self.addr, reason = %why, losses = n,
                        "rtl_tcp connection lost; reconnecting (repeats logged once a minute)");
                }
                self.stream = None;
                self.pad_pending = self.bytes_here % 2 == 1;
            }
        }
        filled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Gain;

    #[test]
    fn header_and_commands() {
        let mut h = *b"RTL0\0\0\0\x05\0\0\0\x1d";
        assert_eq!(
            parse_header(&h),
            Some(DongleInfo {
                tuner: 5,
                gains: 29
            })
        );
        h[0] = b'X';
        assert_eq!(parse_header(&h), None);
        let t = Tuning {
            freq_hz: 1_090_000_000,
            sample_rate: 2_400_000,
            gain: Gain::Db(49.6),
            ppm: -3,
            bias_tee: true,
        };
        let c = commands(&t);
        assert_eq!(c[0], [0x02, 0x00, 0x24, 0x9F, 0x00]);
        assert_eq!(c[1], [0x01, 0x40, 0xF8, 0x14, 0x80]);
        assert_eq!(c[2], [0x05, 0xFF, 0xFF, 0xFF, 0xFD]);
        assert_eq!(c[3], [0x03, 0, 0, 0, 1]);
        assert_eq!(c[4], [0x04, 0, 0, 0x01, 0xF0]);
        assert_eq!(c[5], [0x0E, 0, 0, 0, 1]);
    }
}
