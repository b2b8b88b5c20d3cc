//! How a source is named on the command line and in the config:
//! `sim`, `file:PATH`, `rtlsdr[:INDEX|:serial=SERIAL]`, `rtltcp:HOST:PORT`,
//! `beast:HOST:PORT`, `sbs:HOST:PORT`.

use std::path::PathBuf;
use std::str::FromStr;

use super::{parse_host_port, rtlsdr};

/// Where the input comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// The built-in simulated sky, endless, paced in real time.
    Sim,
    /// An IQ recording.
    File(PathBuf),
    /// An RTL-SDR dongle on USB.
    Rtlsdr(rtlsdr::Selector),
    /// IQ samples from an rtl_tcp server, `HOST:PORT`.
    RtlTcp(String),
    /// Demodulated frames from a Beast port (readsb, dump1090-fa), `HOST:PORT`.
    Beast(String),
    /// SBS lines from a feeder's port 30003, `HOST:PORT`, forwarded.
    Sbs(String),
}

impl FromStr for SourceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t == "sim" {
            return Ok(SourceSpec::Sim);
        }
        if let Some(rest) = t.strip_prefix("rtlsdr") {
            return rest.parse().map(SourceSpec::Rtlsdr);
        }
        let (kind, rest) = t.split_once(':').unwrap_or((t, ""));
        match kind {
            "file" if !rest.is_empty() => Ok(SourceSpec::File(PathBuf::from(rest))),
            "rtltcp" => parse_host_port(rest).map(SourceSpec::RtlTcp),
            "beast" => parse_host_port(rest).map(SourceSpec::Beast),
            "sbs" => parse_host_port(rest).map(SourceSpec::Sbs),
            _ => Err(format!(
                "unknown source {s:?}: use sim, file:PATH, rtlsdr[:INDEX|:serial=SERIAL], rtltcp:HOST:PORT, beast:HOST:PORT or sbs:HOST:PORT"
            )),
        }
    }
}

impl std::fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceSpec::Sim => f.write_str("sim"),
            SourceSpec::File(p) => write!(f, "file:{}", p.display()),
            SourceSpec::Rtlsdr(sel) => write!(f, "rtlsdr:{sel}"),
            SourceSpec::RtlTcp(a) => write!(f, "rtltcp:{a}"),
            SourceSpec::Beast(a) => write!(f, "beast:{a}"),
            SourceSpec::Sbs(a) => write!(f, "sbs:{a}"),
        }
    }
}

/// How fast a file source is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplaySpeed {
    /// As fast as the demodulator takes it; nothing is dropped.
    Max,
    /// At the sample rate, like a radio.
    Realtime,
}

impl FromStr for ReplaySpeed {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "max" => Ok(ReplaySpeed::Max),
            "realtime" => Ok(ReplaySpeed::Realtime),
            _ => Err(format!("unknown replay speed {s:?}: use realtime or max")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_specs_round_trip() {
        for spec in [
            "sim",
            "file:x.cu8",
            "rtlsdr:0",
            "rtlsdr:serial=00001090",
            "rtltcp:pi.local:1234",
            "beast:127.0.0.1:30005",
            "sbs:[::1]:30003",
        ] {
            let s: SourceSpec = spec.parse().unwrap();
            assert_eq!(s.to_string(), spec);
        }
        assert_eq!(
            "rtlsdr".parse::<SourceSpec>(),
            Ok(SourceSpec::Rtlsdr(rtlsdr::Selector::Index(0)))
        );
        for bad in ["radio", "file:", "beast:host", "rtltcp::1"] {
            assert!(bad.parse::<SourceSpec>().is_err(), "{bad}");
        }
        assert_eq!("realtime".parse(), Ok(ReplaySpeed::Realtime));
        assert!("fast".parse::<ReplaySpeed>().is_err());
    }
}
