//! `--source rtlsdr[:INDEX|:serial=SERIAL]`: an RTL2832U dongle, opened
//! with `rtl-sdr-rs` (pure Rust over nusb: no librtlsdr, no libusb).
//!
//! A blocking reader for the daemon's sdr thread: synchronous bulk reads
//! straight into the thread's recycled buffers. When the dongle is missing,
//! busy or unplugged, one log line says what is wrong and what to do, and
//! the reader retries with backoff until it is back; a Pi that boots
//! before its dongle is plugged in simply starts late.

use std::sync::Arc;

use rtl_sdr_rs::error::{RtlsdrError, UsbErrorKind};
use rtl_sdr_rs::{DeviceId, RtlSdr, TunerGain};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{nearest_gain, SourceTelemetry, Tuning};
use crate::retry::{Backoff, RetryPolicy};

/// Which dongle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The N-th RTL-SDR found (0 when not given).
    Index(usize),
    /// The one whose USB serial number is this (set with `rtl_eeprom -s`).
    Serial(String),
}

impl std::str::FromStr for Selector {
    type Err = String;
    /// The part after `rtlsdr`: empty, `:INDEX` or `:serial=SERIAL`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.strip_prefix(':') {
            None if s.is_empty() => Ok(Selector::Index(0)),
            Some(rest) => match rest.strip_prefix("serial=") {
                Some(serial) if !serial.is_empty() => Ok(Selector::Serial(serial.to_owned())),
                Some(_) => Err("rtlsdr:serial= needs a serial number".to_owned()),
                None => rest.parse().map(Selector::Index).map_err(|_| {
                    format!("rtlsdr:{rest}: use rtlsdr, rtlsdr:INDEX or rtlsdr:serial=SERIAL")
                }),
            },
            None => Err(format!(
                "rtlsdr{s}: use rtlsdr, rtlsdr:INDEX or rtlsdr:serial=SERIAL"
            )),
        }
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Index(i) => write!(f, "{i}"),
            Selector::Serial(s) => write!(f, "serial={s}"),
        }
    }
}

/// What went wrong with the dongle, for choosing the advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    /// No RTL-SDR device is plugged in (or none matches the selector).
    Missing,
    /// Another program (dump1090, the DVB kernel driver) holds the device.
    Busy,
    /// The user may not open the USB device (udev rule missing).
    Permission,
    /// The device went away while streaming.
    Unplugged,
    /// Anything else.
    Other,
}

impl Trouble {
    /// Classifies a driver error.
    pub fn of(e: &RtlsdrError) -> Trouble {
        match e {
            RtlsdrError::Usb(u) => match u.kind() {
                UsbErrorKind::NotFound => Trouble::Missing,
                UsbErrorKind::Busy => Trouble::Busy,
                UsbErrorKind::PermissionDenied => Trouble::Permission,
                UsbErrorKind::Disconnected => Trouble::Unplugged,
                _ => Trouble::Other,
            },
            // rtl-sdr-rs reports "No device found ..." as a plain message.
            RtlsdrError::RtlsdrErr(m) if m.contains("No device") || m.contains("No RTL-SDR") => {
                Trouble::Missing
            }
            RtlsdrError::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
                Trouble::Permission
            }
            _ => Trouble::Other,
        }
    }

    /// What the owner should do about it.
    pub fn advice(self) -> &'static str {
        match self {
            Trouble::Missing => {
                "no RTL-SDR dongle found: plug it in (`adsb-kinesis devices` lists what is seen); waiting for it"
            }
            Trouble::Busy => {
                "the dongle is busy: the kernel DVB driver (dvb_usb_rtl28xxu) has claimed it, or another program (rtl_tcp, dump1090, readsb) has it open. Install systemd/blacklist-rtl-sdr.conf into /etc/modprobe.d/ (the .deb does) and run `sudo modprobe -r dvb_usb_rtl28xxu rtl2832 rtl2830`, or stop the other program; retrying"
            }
            Trouble::Permission => {
                "no permission to open the dongle: install systemd/60-rtl-sdr.rules into /etc/udev/rules.d/ (the .deb does), run `sudo udevadm control --reload && sudo udevadm trigger`, and run as a member of plugdev; retrying"
            }
            Trouble::Unplugged => "the dongle was unplugged or reset; waiting for it to come back",
            Trouble::Other => "the dongle failed; reopening it",
        }
    }
}

/// Where Linux lists USB devices; nusb enumerates it. In a container or
/// sandbox without it no dongle can be seen at all.
const SYSFS_USB: &str = "/sys/bus/usb/devices";

fn usb_bus_visible() -> bool {
    !cfg!(target_os = "linux") || std::path::Path::new(SYSFS_USB).exists()
}

/// One line per device found.
pub struct DeviceLine {
    /// Index for `--source rtlsdr:INDEX`.
    pub index: usize,
    /// USB vendor id.
    pub vendor_id: u16,
    /// USB product id.
    pub product_id: u16,
    /// USB manufacturer string.
    pub manufacturer: String,
    /// USB product string.
    pub product: String,
    /// USB serial string, for `--source rtlsdr:serial=...`.
    pub serial: String,
}

/// The RTL-SDR dongles on the USB bus (none if no USB bus is visible).
pub fn list() -> Result<Vec<DeviceLine>, String> {
    if !usb_bus_visible() {
        return Ok(Vec::new());
    }
    RtlSdr::list_devices()
        .map(|v| {
            v.into_iter()
                .map(|d| DeviceLine {
                    index: d.index,
                    vendor_id: d.vendor_id,
                    product_id: d.product_id,
                    manufacturer: d.manufacturer,
                    product: d.product,
                    serial: d.serial,
                })
                .collect()
        })
        .map_err(|e| format!("cannot list USB devices: {e}"))
}

/// Opens and sets up the dongle.
fn open(sel: &Selector, t: &Tuning) -> Result<(RtlSdr, Option<i32>), RtlsdrError> {
    let mut sdr = match sel {
        Selector::Index(i) => RtlSdr::open(DeviceId::Index(*i))?,
        Selector::Serial(s) => RtlSdr::open(DeviceId::Serial(s))?,
    };
    sdr.set_sample_rate(t.sample_rate)?;
    sdr.set_center_freq(t.freq_hz)?;
    if t.ppm != 0 {
        sdr.set_freq_correction(t.ppm)?;
    }
    let gain = match t.gain.tenths() {
        None => {
            sdr.set_tuner_gain(TunerGain::Auto)?;
            None
        }
        Some(want) => {
            let g = nearest_gain(&sdr.get_tuner_gains()?, want).unwrap_or(want);
            sdr.set_tuner_gain(TunerGain::Manual(g))?;
            Some(g)
        }
    };
    sdr.set_bias_tee(t.bias_tee)?;
    sdr.reset_buffer()?;
    Ok((sdr, gain))
}

/// A dongle that comes back by itself.
pub struct Dongle {
    selector: Selector,
    tuning: Tuning,
    sdr: Option<RtlSdr>,
    last_trouble: Option<Trouble>,
    repeats: u32,
    retry: Backoff,
    token: CancellationToken,
    tel: Arc<SourceTelemetry>,
}

impl Dongle {
    /// A dongle source that opens the device on its first read and reopens it after a fault,
    /// backing off, until `token` is cancelled.
    pub fn new(
        selector: Selector,
        tuning: Tuning,
        token: CancellationToken,
        tel: Arc<SourceTelemetry>,
    ) -> Self {
        Dongle {
            selector,
            tuning,
            sdr: None,
            last_trouble: None,
            repeats: 0,
            retry: RetryPolicy::SOURCES.backoff(),
            token,
            tel,
        }
    }

    /// Logs the advice when the trouble is new, and now and then while it
    /// lasts, so a journal shows why nothing is decoded without filling up.
    fn trouble(&mut self, e: &RtlsdrError) {
        SourceTelemetry::add(&self.tel.failures, 1);
        let t = if usb_bus_visible() {
            Trouble::of(e)
        } else {
            Trouble::Missing
        };
        if self.last_trouble != Some(t) || self.repeats.is_multiple_of(20) {
            warn!(source = "rtlsdr", device = %self.selector, error = %e, "{}", t.advice());
            self.repeats = 0;
        }
        self.repeats += 1;
        self.last_trouble = Some(t);
    }

    /// Fills `buf` (a multiple of 512 bytes) with samples; returns 0 only
    /// when cancelled.
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        while !self.token.is_cancelled() {
            let Some(sdr) = self.sdr.as_ref() else {
                match open(&self.selector, &self.tuning) {
                    Ok((sdr, gain)) => {
                        SourceTelemetry::add(&self.tel.connects, 1);
                        info!(
                            source = "rtlsdr",
                            device = %self.selector,
                            tuner = sdr.get_tuner_id().unwrap_or("?"),
                            sample_rate = self.tuning.sample_rate,
                            gain_tenths_db = gain.map_or_else(|| "auto".to_owned(), |g| g.to_string()),
                            ppm = self.tuning.ppm,
                            bias_tee = self.tuning.bias_tee,
                            "dongle open, tuned to 1090 MHz"
                        );
                        self.sdr = Some(sdr);
                        self.last_trouble = None;
                        self.retry.reset();
                        self.tel.set_waiting(false);
                    }
                    Err(e) => {
                        self.trouble(&e);
                        self.tel.set_waiting(true);
                        if !self.retry.sleep_blocking(&self.token) {
                            return 0;
                        }
                    }
                }
                continue;
            };
            match sdr.read_sync(buf) {
                Ok(n) if n > 0 => return n,
                Ok(_) => {}
                Err(e) => {
                    self.trouble(&e);
                    self.sdr = None;
                    self.tel.set_waiting(true);
                    if !self.retry.sleep_blocking(&self.token) {
                        return 0;
                    }
                }
            }
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        assert_eq!("".parse(), Ok(Selector::Index(0)));
        assert_eq!(":2".parse(), Ok(Selector::Index(2)));
        assert_eq!(
            ":serial=00001090".parse(),
            Ok(Selector::Serial("00001090".into()))
        );
        assert!(":serial=".parse::<Selector>().is_err());
        assert!(":x".parse::<Selector>().is_err());
        assert!("x".parse::<Selector>().is_err());
    }

    #[test]
    fn advice_names_the_fix() {
        assert!(Trouble::Busy.advice().contains("modprobe"));
        assert!(Trouble::Permission.advice().contains("udev"));
        let e = RtlsdrError::RtlsdrErr("No device found at index 0".into());
        assert_eq!(Trouble::of(&e), Trouble::Missing);
    }
}
