//! Values with units, parsed in one place: every layer (flag, environment
//! variable, TOML file) reaches these functions with the same text, so a
//! value means the same wherever it is written.
//!
//! Types that configure a stage ([`Rate`], [`SampleFormat`], [`Gain`],
//! [`SourceSpec`], [`ReplaySpeed`]) parse with their own
//! `FromStr`; this module gives them the serde side of it.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::demod::Rate;
use crate::iq::SampleFormat;
use crate::source::{Gain, ReplaySpeed, SourceSpec};

/// Longest duration any option takes, seconds (one day).
pub const MAX_DURATION_S: f64 = 86_400.0;

/// A duration: a number with `ms`, `s` or `m` (`500ms`, `10s`, `1.5m`);
/// a bare number is seconds. At most a day.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 && v * scale <= MAX_DURATION_S => {
            Ok(Duration::from_secs_f64(v * scale))
        }
        _ => Err(format!(
            "{s:?} is not a duration (like 500ms, 10s, 2m; at most one day)"
        )),
    }
}

/// A size in bytes: a whole number, optionally with `KiB`, `MiB` or `GiB`
/// (`25KiB`, `256MiB`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, scale) = [
        ("KiB", 1u64 << 10),
        ("MiB", 1 << 20),
        ("GiB", 1 << 30),
        ("B", 1),
    ]
    .iter()
    .find_map(|(suffix, scale)| t.strip_suffix(suffix).map(|n| (n, *scale)))
    .unwrap_or((t, 1));
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("{s:?} is not a size (bytes, or a number with KiB, MiB, GiB)"))
}

/// [`parse_size`] for sizes held in memory.
pub fn parse_size_usize(s: &str) -> Result<usize, String> {
    parse_size(s).and_then(|n| usize::try_from(n).map_err(|_| format!("{s:?} is too large")))
}

/// Degrees of latitude, within ±90.
pub fn parse_lat(s: &str) -> Result<f64, String> {
    parse_degrees(s, 90.0)
}

/// Degrees of longitude, within ±180.
pub fn parse_lon(s: &str) -> Result<f64, String> {
    parse_degrees(s, 180.0)
}

fn parse_degrees(s: &str, max: f64) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v.abs() <= max => Ok(v),
        _ => Err(format!("{s:?} is not a number of degrees within ±{max}")),
    }
}

/// `2000000` or `2400000`, also written `2.0M` / `2.4M`.
impl std::str::FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Rate, String> {
        let t = s.trim();
        let hz = if let Some(m) = t.strip_suffix(['M', 'm']) {
            m.parse::<f64>().ok().map(|v| (v * 1e6).round())
        } else {
            t.parse::<f64>().ok()
        };
        hz.filter(|v| *v == 2_000_000.0 || *v == 2_400_000.0)
            .and_then(|v| Rate::from_hz(v as u32))
            .ok_or_else(|| {
                format!("unsupported sample rate {s:?}: use 2000000 or 2400000 (2.0M / 2.4M)")
            })
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.hz())
    }
}

/// Serde for a type that parses from text: the config layers hand every
/// value over as text (see [`super::layers`]).
macro_rules! deserialize_from_str {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

deserialize_from_str!(Rate, SampleFormat, Gain, SourceSpec, ReplaySpeed);

/// `#[serde(deserialize_with)]` for a [`parse_duration`] value.
pub fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    parse_duration(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// `#[serde(deserialize_with)]` for a [`parse_size`] value.
pub fn de_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    parse_size(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// `#[serde(deserialize_with)]` for a [`parse_size_usize`] value.
pub fn de_size_usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    parse_size_usize(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// `#[serde(deserialize_with)]` for an optional [`parse_lat`] value.
pub fn de_lat<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    parse_lat(&String::deserialize(d)?)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// `#[serde(deserialize_with)]` for an optional [`parse_lon`] value.
pub fn de_lon<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    parse_lon(&String::deserialize(d)?)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        for bad in ["", "-1s", "abc", "1h", "NaN", "100000000"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_size("25KiB"), Ok(25 * 1024));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("100B"), Ok(100));
        for bad in ["", "1.5MiB", "-1", "1TB", "99999999999999999999GiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sample_rates() {
        for (text, hz) in [
            ("2000000", 2_000_000),
            ("2.0M", 2_000_000),
            ("2.4M", 2_400_000),
            ("2.4m", 2_400_000),
            (" 2400000 ", 2_400_000),
        ] {
            assert_eq!(text.parse::<Rate>().map(Rate::hz), Ok(hz), "{text}");
        }
        for bad in ["", "2.2M", "3", "fast", "2400000.5"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
        assert_eq!(Rate::Msps2_4.to_string().parse(), Ok(Rate::Msps2_4));
    }

    #[test]
    fn degrees() {
        assert_eq!(parse_lat("-33.9"), Ok(-33.9));
        assert_eq!(parse_lon("179.5"), Ok(179.5));
        assert!(parse_lat("91").is_err());
        assert!(parse_lon("-181").is_err());
        assert!(parse_lat("NaN").is_err());
    }
}
