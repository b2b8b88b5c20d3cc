//! Reading SBS `MSG` lines back: the inverse of [`SbsLine`]'s `Display`,
//! for consumers of the stream (`tail`). Field layout and value formats as
//! in `shared/testdata/SBS_FORMAT.md` §2 (dump1090-fa / readsb layout),
//! tolerant where those decoders differ: readsb's 6-decimal positions, an
//! `H` suffix on GNSS altitudes and vertical rates (§2 fields 12, 17),
//! flags written `1` as well as `-1`, a trailing CR.
//!
//! nom stays private: the entry points are [`SbsLine::parse`] (strict
//! about times, for `tail`, which orders by them) and [`parse_line`]
//! (lenient, for lines forwarded from another decoder's port 30003).

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while_m_n};
use nom::character::complete::{char, digit1};
use nom::combinator::{all_consuming, map_res, opt, recognize, value};
use nom::number::complete::recognize_float;
use nom::{IResult, Parser};

use super::{days_from_civil, SbsLine};
use crate::modes::Icao;

/// Why a line is not an SBS `MSG` line. Cheap: no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SbsParseError {
    /// The line is not UTF-8.
    #[error("not UTF-8")]
    NotText,
    /// Not 22 fields.
    #[error("{0} comma-separated fields, an SBS line has 22")]
    FieldCount(usize),
    /// Field 1 is not `MSG`.
    #[error("field 1 is not MSG")]
    NotMsg,
    /// A field (1-based, as SBS_FORMAT.md §2 numbers them) holds a value
    /// its format does not allow.
    #[error("field {0} is malformed")]
    Field(usize),
}

type Res<'a, T> = IResult<&'a str, T>;

/// Run `p` over a whole field; `Field(n)` if it fails or leaves input.
fn field<'a, T>(
    text: &'a str,
    n: usize,
    p: impl Parser<&'a str, Output = T, Error = nom::error::Error<&'a str>>,
) -> Result<T, SbsParseError> {
    all_consuming(p)
        .parse(text)
        .map(|(_, v)| v)
        .map_err(|_| SbsParseError::Field(n))
}

/// An empty field is `None`, anything else must parse.
fn optional<'a, T>(
    text: &'a str,
    n: usize,
    p: impl Parser<&'a str, Output = T, Error = nom::error::Error<&'a str>>,
) -> Result<Option<T>, SbsParseError> {
    if text.is_empty() {
        Ok(None)
    } else {
        field(text, n, p).map(Some)
    }
}

fn int(i: &str) -> Res<'_, i64> {
    map_res(
        recognize((opt(alt((char('-'), char('+')))), digit1)),
        |s: &str| s.parse::<i64>(),
    )
    .parse(i)
}

/// An integer with the optional `H` (GNSS) suffix of fields 12 and 17.
fn int_h(i: &str) -> Res<'_, i32> {
    let (i, v) = map_res(int, i32::try_from).parse(i)?;
    let (i, _) = opt(char('H')).parse(i)?;
    Ok((i, v))
}

fn float(i: &str) -> Res<'_, f64> {
    map_res(recognize_float, |s: &str| s.parse::<f64>()).parse(i)
}

fn fixed(i: &str, n: usize) -> Res<'_, u32> {
    map_res(
        take_while_m_n(n, n, |c: char| c.is_ascii_digit()),
        |s: &str| s.parse::<u32>(),
    )
    .parse(i)
}

/// `YYYY/MM/DD` to days since 1970-01-01.
fn date(i: &str) -> Res<'_, i64> {
    let (i, (y, _, m, _, d)) = (
        |i| fixed(i, 4),
        char('/'),
        |i| fixed(i, 2),
        char('/'),
        |i| fixed(i, 2),
    )
        .parse(i)?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Verify,
        )));
    }
    Ok((i, days_from_civil(i64::from(y), m, d)))
}

/// `HH:MM:SS.mmm` (milliseconds optional) to milliseconds into the day.
fn time(i: &str) -> Res<'_, i64> {
    let (i, (h, _, m, _, s)) = (
        |i| fixed(i, 2),
        char(':'),
        |i| fixed(i, 2),
        char(':'),
        |i| fixed(i, 2),
    )
        .parse(i)?;
    let (i, ms) = opt((char('.'), |i| fixed(i, 3))).parse(i)?;
    if h > 23 || m > 59 || s > 60 {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Verify,
        )));
    }
    let ms = ms.map_or(0, |(_, ms)| ms);
    Ok((i, i64::from(((h * 60 + m) * 60 + s) * 1000 + ms)))
}

/// `-1` (or `1`) true, `0` false (SBS_FORMAT.md §2 fields 19-22).
fn flag(i: &str) -> Res<'_, bool> {
    alt((
        value(true, tag("-1")),
        value(true, tag("1")),
        value(false, tag("0")),
    ))
    .parse(i)
}

fn hex_icao(i: &str) -> Res<'_, Icao> {
    map_res(take_while_m_n(6, 6, |c: char| c.is_ascii_hexdigit()), |s| {
        u32::from_str_radix(s, 16).map(Icao)
    })
    .parse(i)
}

/// Four octal digits (antirez's unpadded form has fewer: accepted).
fn squawk(i: &str) -> Res<'_, u16> {
    map_res(
        take_while_m_n(1, 4, |c: char| ('0'..='7').contains(&c)),
        |s| u16::from_str_radix(s, 8),
    )
    .parse(i)
}

impl SbsLine {
    /// Parse one `MSG` line (a trailing `\r` or `\n` is ignored). The
    /// date/time fields must be present: lines of the antirez layout, which
    /// leaves them empty (SBS_FORMAT.md §4), are refused as `Field(7)`.
    pub fn parse(line: &[u8]) -> Result<SbsLine, SbsParseError> {
        parse_fields(line, false)
    }
}

/// Parse one line of an SBS (port 30003) stream from another decoder:
/// `Ok(None)` for an empty line (dump1090-fa's heartbeat); anything but
/// printable ASCII is refused; antirez's empty date/time fields are
/// accepted as 0 ms (the caller decides what time such a line has). The
/// line is kept in [`SbsLine::raw`] so it is forwarded unchanged.
pub fn parse_line(line: &[u8]) -> Result<Option<SbsLine>, SbsParseError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Ok(None);
    }
    if !line.iter().all(|&b| (0x20..0x7F).contains(&b)) {
        return Err(SbsParseError::NotText);
    }
    let mut l = parse_fields(line, true)?;
    // Printable ASCII, so valid UTF-8.
    l.raw = std::str::from_utf8(line).ok().map(Into::into);
    Ok(Some(l))
}

fn parse_fields(line: &[u8], times_optional: bool) -> Result<SbsLine, SbsParseError> {
    let text = std::str::from_utf8(line).map_err(|_| SbsParseError::NotText)?;
    let text = text.trim_end_matches(['\r', '\n']);
    let mut f = [""; 22];
    let mut n = 0;
    for part in text.split(',') {
        if n < 22 {
            f[n] = part;
        }
        n += 1;
    }
    if n != 22 {
        return Err(SbsParseError::FieldCount(n));
    }
    if f[0] != "MSG" {
        return Err(SbsParseError::NotMsg);
    }
    let msg_type = field(f[1], 2, map_res(digit1, |s: &str| s.parse::<u8>()))?;
    if !(1..=8).contains(&msg_type) {
        return Err(SbsParseError::Field(2));
    }
    let icao = field(f[4], 5, hex_icao)?;
    let at = |d: &str, t: &str, n: usize| -> Result<i64, SbsParseError> {
        if times_optional && d.is_empty() && t.is_empty() {
            return Ok(0);
        }
        let days = field(d, n, date)?;
        let ms = field(t, n + 1, time)?;
        Ok(days * 86_400_000 + ms)
    };
    let generated_ms = at(f[6], f[7], 7)?;
    let logged_ms = at(f[8], f[9], 9)?;
    let callsign = if f[10].is_empty() {
        None
    } else {
        let cs = f[10].as_bytes();
        if cs.len() > 8 || !cs.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
            return Err(SbsParseError::Field(11));
        }
        let mut out = [b' '; 8];
        out[..cs.len()].copy_from_slice(cs);
        Some(out)
    };
    let finite = |v: Option<f64>, n| match v {
        Some(x) if !x.is_finite() => Err(SbsParseError::Field(n)),
        _ => Ok(v),
    };
    let lat = finite(optional(f[14], 15, float)?, 15)?;
    let lon = finite(optional(f[15], 16, float)?, 16)?;
    if lat.is_some_and(|v| v.abs() > 90.0) {
        return Err(SbsParseError::Field(15));
    }
    if lon.is_some_and(|v| v.abs() > 180.0) {
        return Err(SbsParseError::Field(16));
    }
    Ok(SbsLine {
        msg_type,
        icao,
        generated_ms,
        logged_ms,
        callsign,
        altitude_ft: optional(f[11], 12, int_h)?,
        gs_kt: finite(optional(f[12], 13, float)?, 13)?,
        track_deg: finite(optional(f[13], 14, float)?, 14)?,
        lat,
        lon,
        vrate_fpm: optional(f[16], 17, int_h)?,
        squawk: optional(f[17], 18, squawk)?,
        alert: optional(f[18], 19, flag)?,
        emergency: optional(f[19], 20, flag)?,
        spi: optional(f[20], 21, flag)?,
        on_ground: optional(f[21], 22, flag)?,
        raw: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Lines from SBS_FORMAT.md §5 (dump1090-fa on modes1.bin).
    const FA: [&str; 7] = [
        "MSG,1,1,1,4D2023,1,2026/11/23,13:21:54.135,2026/11/23,13:21:55.116,AMC421  ,,,,,,,,,,,",
        "MSG,3,1,1,4D2023,1,2026/11/23,13:21:54.133,2026/11/23,13:21:55.116,,22875,,,37.10156,13.78474,,,0,,0,",
        "MSG,4,1,1,4D2023,1,2026/11/23,13:21:54.126,2026/11/23,13:21:55.116,,,390,158,,,-1920,,,,,0",
        "MSG,5,1,1,4D2023,1,2026/11/23,13:21:54.119,2026/11/23,13:21:55.116,,23375,,,,,,,0,,0,",
        "MSG,6,1,1,4D2023,1,2026/11/23,13:21:54.120,2026/11/23,13:21:55.116,,,,,,,,0112,0,0,0,",
        "MSG,7,1,1,4D2023,1,2026/11/23,13:21:54.135,2026/11/23,13:21:55.116,,22850,,,,,,,,,,",
        "MSG,8,1,1,4D2023,1,2026/11/23,13:21:54.118,2026/11/23,13:21:55.115,,,,,,,,,,,,0",
    ];

    #[test]
    fn reference_lines_round_trip() {
        for l in FA {
            let p = SbsLine::parse(l.as_bytes()).unwrap_or_else(|e| panic!("{l}: {e}"));
            assert_eq!(p.to_string(), l);
        }
    }

    #[test]
    fn fields_read_as_documented() {
        let p = SbsLine::parse(FA[1].as_bytes()).unwrap();
        assert_eq!(p.msg_type, 3);
        assert_eq!(p.icao, Icao(0x4D2023));
        assert_eq!(p.altitude_ft, Some(22875));
        assert_eq!((p.lat, p.lon), (Some(37.10156), Some(13.78474)));
        assert_eq!(
            (p.alert, p.spi, p.on_ground),
            (Some(false), Some(false), None)
        );
        // 2026-11-23 is day 20 780 (sbs.rs tests).
        let day = 20_780 * 86_400_000;
        assert_eq!(
            p.generated_ms,
            day + ((13 * 60 + 21) * 60 + 54) * 1000 + 133
        );
        assert_eq!(p.logged_ms, day + ((13 * 60 + 21) * 60 + 55) * 1000 + 116);
        let sq = SbsLine::parse(FA[4].as_bytes()).unwrap();
        assert_eq!(sq.squawk, Some(0o112));
        assert_eq!(sq.emergency, Some(false));
        let v = SbsLine::parse(FA[2].as_bytes()).unwrap();
        assert_eq!(
            (v.gs_kt, v.track_deg, v.vrate_fpm),
            (Some(390.0), Some(158.0), Some(-1920))
        );
        assert_eq!(v.on_ground, Some(false));
        assert_eq!(
            SbsLine::parse(FA[0].as_bytes()).unwrap().callsign,
            Some(*b"AMC421  ")
        );
    }

    #[test]
    fn readsb_and_gnss_variants_accepted() {
        let l = "MSG,3,1,1,4D2023,1,2026/11/23,13:22:07.393,2026/11/23,13:22:08.222,,22875H,,,37.101562,-13.784740,,,1,,1,-1\r";
        let p = SbsLine::parse(l.as_bytes()).unwrap();
        assert_eq!(p.altitude_ft, Some(22875));
        assert_eq!(p.lon, Some(-13.78474));
        assert_eq!(
            (p.alert, p.spi, p.on_ground),
            (Some(true), Some(true), Some(true))
        );
    }

    #[test]
    fn bad_lines_say_why() {
        let e = |s: &str| SbsLine::parse(s.as_bytes()).unwrap_err();
        assert_eq!(e(""), SbsParseError::FieldCount(1));
        assert_eq!(e("MSG,1,2"), SbsParseError::FieldCount(3));
        assert_eq!(e(&FA[0].replacen("MSG", "SEL", 1)), SbsParseError::NotMsg);
        assert_eq!(
            e(&FA[0].replacen("MSG,1", "MSG,9", 1)),
            SbsParseError::Field(2)
        );
        assert_eq!(
            e(&FA[0].replacen("4D2023", "4D20G3", 1)),
            SbsParseError::Field(5)
        );
        assert_eq!(
            e(&FA[0].replacen("2026/11/23", "2026/13/23", 1)),
            SbsParseError::Field(7)
        );
        assert_eq!(
            e(&FA[0].replacen("13:21:54.135", "13:61:54.135", 1)),
            SbsParseError::Field(8)
        );
        assert_eq!(
            e(&FA[1].replacen("22875", "22x75", 1)),
            SbsParseError::Field(12)
        );
        assert_eq!(
            e(&FA[1].replacen("37.10156", "97.1", 1)),
            SbsParseError::Field(15)
        );
        assert_eq!(
            e(&FA[4].replacen("0112", "0918", 1)),
            SbsParseError::Field(18)
        );
        assert_eq!(
            e(&FA[0].replacen("AMC421  ", "TOOLONGCALL", 1)),
            SbsParseError::Field(11)
        );
        assert_eq!(
            SbsLine::parse(&[0xff, b',']).unwrap_err(),
            SbsParseError::NotText
        );
        // antirez layout: no times.
        assert_eq!(
            e("MSG,8,,,4D2023,,,,,,,,,,,,,,,,,"),
            SbsLine::parse(b"MSG,8,,,4D2023,,,,,,,,,,,,,,,,,").unwrap_err()
        );
        assert_eq!(
            e("MSG,8,,,4D2023,,,,,,,,,,,,,,,,,"),
            SbsParseError::Field(7)
        );
    }

    proptest! {
        /// No panic on any bytes.
        #[test]
        fn any_bytes(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = SbsLine::parse(&b);
        }

        /// Mutating one byte of a good line never panics.
        #[test]
        fn mutated_lines(i in 0usize..7, at in 0usize..120, byte in any::<u8>()) {
            let mut b = FA[i].as_bytes().to_vec();
            let at = at % b.len();
            b[at] = byte;
            let _ = SbsLine::parse(&b);
        }

        /// What we print, we read back to the same line.
        #[test]
        fn printed_lines_round_trip(
            t in 1_000_000_000_000i64..4_000_000_000_000,
            alt in proptest::option::of(-1000i32..60000),
            sq in proptest::option::of(0u16..0o10000),
            lat in proptest::option::of(-90.0f64..90.0),
            gs in proptest::option::of(0.0f64..1000.0),
            flags in proptest::collection::vec(proptest::option::of(any::<bool>()), 4),
        ) {
            let l = SbsLine {
                msg_type: 3, icao: Icao(0xABCDEF), generated_ms: t, logged_ms: t + 5,
                callsign: Some(*b"TEST12  "), altitude_ft: alt, gs_kt: gs.map(f64::round),
                track_deg: None, lat: lat.map(|v| (v * 1e5).round() / 1e5), lon: Some(0.5),
                vrate_fpm: Some(-64), squawk: sq, alert: flags[0], emergency: flags[1],
                spi: flags[2], on_ground: flags[3], raw: None,
            };
            let text = l.to_string();
            let back = SbsLine::parse(text.as_bytes()).unwrap();
            prop_assert_eq!(back.to_string(), text);
            prop_assert_eq!(back.generated_ms, t);
        }
    }
}
