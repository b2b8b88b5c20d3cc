//! SBS / BaseStation ("port 30003") lines: the record format we ship.
//! Layout and DF -> transmission type mapping as in
//! `shared/testdata/SBS_FORMAT.md` (dump1090-fa layout, UTC times, CRLF).

use std::fmt::{self, Write as _};

use crate::modes::adsb::Me;
use crate::modes::{Body, Frame, Icao};

mod parse;
pub use parse::{parse_line, SbsParseError};

/// Now, as Unix milliseconds (the "logged" time of a line).
pub fn unix_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The "generated" time of a frame received `t` seconds into a run that
/// started at `start_ms` (Unix ms). A `t` above 10⁹ is already Unix seconds
/// (timestamped hex input) and is used as is.
pub fn generated_ms(start_ms: i64, t: f64) -> i64 {
    if t > 1e9 {
        (t * 1000.0) as i64
    } else {
        start_ms + (t * 1000.0) as i64
    }
}

/// One SBS `MSG` line. Empty optional fields print as nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct SbsLine {
    /// Transmission type 1-8 (SBS_FORMAT.md §3).
    pub msg_type: u8,
    /// Aircraft address (ICAO 24-bit), field 5.
    pub icao: Icao,
    /// Reception time, Unix milliseconds.
    pub generated_ms: i64,
    /// Time the line was written, Unix milliseconds.
    pub logged_ms: i64,
    /// Flight identity, space-padded (field 11).
    pub callsign: Option<[u8; 8]>,
    /// Barometric altitude, feet (field 12).
    pub altitude_ft: Option<i32>,
    /// Ground speed, knots (field 13).
    pub gs_kt: Option<f64>,
    /// Track over ground, degrees clockwise from true north (field 14).
    pub track_deg: Option<f64>,
    /// Latitude, degrees north (field 15).
    pub lat: Option<f64>,
    /// Longitude, degrees east (field 16).
    pub lon: Option<f64>,
    /// Vertical rate, feet per minute (field 17).
    pub vrate_fpm: Option<i32>,
    /// Mode A code as four octal digits read as decimal, e.g. 7700 (field 18).
    pub squawk: Option<u16>,
    /// Squawk changed (field 19).
    pub alert: Option<bool>,
    /// Emergency squawk 7500/7600/7700 (field 20).
    pub emergency: Option<bool>,
    /// Special position identification (ident) set (field 21).
    pub spi: Option<bool>,
    /// Aircraft reports being on the ground (field 22).
    pub on_ground: Option<bool>,
    /// The line exactly as an SBS source sent it (`--source sbs:`): it is
    /// forwarded unchanged, so what a feeder wrote is what Kinesis stores.
    pub raw: Option<Box<str>>,
}

impl SbsLine {
    /// A line of type `msg_type` for `icao` with every optional field
    /// empty, for the caller to fill in.
    pub fn empty(msg_type: u8, icao: Icao, generated_ms: i64, logged_ms: i64) -> SbsLine {
        SbsLine {
            msg_type,
            icao,
            generated_ms,
            logged_ms,
            callsign: None,
            altitude_ft: None,
            gs_kt: None,
            track_deg: None,
            lat: None,
            lon: None,
            vrate_fpm: None,
            squawk: None,
            alert: None,
            emergency: None,
            spi: None,
            on_ground: None,
            raw: None,
        }
    }
}

/// SBS type a frame maps to, or `None` if such frames are not written
/// (SBS_FORMAT.md §3: TC 0, 20-31, DF19/24, non-ICAO DF18 addresses).
pub fn msg_type(frame: &Frame) -> Option<u8> {
    if !frame.address_is_icao() {
        return None;
    }
    match &frame.body {
        Body::ExtendedSquitter { me, .. } => match me {
            Me::Identification { .. } => Some(1),
            Me::SurfacePosition { .. } => Some(2),
            Me::AirbornePosition { gnss: false, .. } => Some(3),
            Me::Velocity(_) => Some(4),
            _ => None,
        },
        Body::SurvAltitude { .. } | Body::CommBAltitude { .. } => Some(5),
        Body::SurvIdentity { .. } | Body::CommBIdentity { .. } => Some(6),
        Body::ShortAcas { .. } | Body::LongAcas { .. } => Some(7),
        Body::AllCall { .. } => Some(8),
        _ => None,
    }
}

/// Ground flag from the CA field of DF11/17 (Annex 10 §3.1.2.5.2.2.1):
/// 4 = on the ground, 5 = airborne, others don't say.
fn ca_ground(frame: &Frame, ca: u8) -> Option<bool> {
    if frame.df == 18 {
        return None;
    }
    match ca {
        4 => Some(true),
        5 => Some(false),
        _ => None,
    }
}

fn emergency_squawk(sq: u16) -> bool {
    matches!(sq, 0o7500 | 0o7600 | 0o7700)
}

impl SbsLine {
    /// Build the line for `frame`, with `position` if this frame produced
    /// one. `None` when the frame maps to no SBS type.
    pub fn from_frame(
        frame: &Frame,
        position: Option<(f64, f64)>,
        generated_ms: i64,
        logged_ms: i64,
    ) -> Option<SbsLine> {
        let msg_type = msg_type(frame)?;
        let mut l = SbsLine::empty(msg_type, frame.icao, generated_ms, logged_ms);
        if let Some((lat, lon)) = position {
            l.lat = Some(lat);
            l.lon = Some(lon);
        }
        match &frame.body {
            Body::ExtendedSquitter { ca, me } => match me {
                Me::Identification { callsign, .. } => {
                    l.callsign = *callsign;
                    l.on_ground = ca_ground(frame, *ca);
                }
                Me::SurfacePosition {
                    gs_kt, track_deg, ..
                } => {
                    l.gs_kt = *gs_kt;
                    l.track_deg = *track_deg;
                    l.on_ground = Some(true);
                }
                Me::AirbornePosition {
                    altitude_ft,
                    surveillance_status,
                    ..
                } => {
                    l.altitude_ft = *altitude_ft;
                    (l.alert, l.spi) = match surveillance_status {
                        0 => (Some(false), Some(false)),
                        1 | 2 => (Some(true), None),
                        _ => (Some(false), Some(true)),
                    };
                    l.on_ground = ca_ground(frame, *ca);
                }
                Me::Velocity(v) => {
                    l.gs_kt = v.gs_kt;
                    l.track_deg = v.track_deg;
                    l.vrate_fpm = v.vrate_fpm;
                    l.on_ground = ca_ground(frame, *ca);
                }
                _ => {}
            },
            Body::SurvAltitude {
                fs, altitude_ft, ..
            } => {
                l.altitude_ft = *altitude_ft;
                fs_flags(&mut l, *fs);
            }
            Body::CommBAltitude {
                fs,
                altitude_ft,
                commb,
                ..
            } => {
                l.altitude_ft = *altitude_ft;
                l.callsign = commb.callsign.as_deref().and_then(pad8);
                fs_flags(&mut l, *fs);
            }
            Body::SurvIdentity { fs, squawk, .. } | Body::CommBIdentity { fs, squawk, .. } => {
                l.squawk = Some(*squawk);
                l.emergency = Some(emergency_squawk(*squawk));
                fs_flags(&mut l, *fs);
            }
            Body::ShortAcas { vs, altitude_ft } | Body::LongAcas { vs, altitude_ft } => {
                l.altitude_ft = *altitude_ft;
                l.on_ground = (*vs == 1).then_some(true);
            }
            Body::AllCall { ca, .. } => l.on_ground = ca_ground(frame, *ca),
            _ => {}
        }
        Some(l)
    }
}

fn fs_flags(l: &mut SbsLine, fs: crate::modes::FlightStatus) {
    l.alert = fs.alert();
    l.spi = fs.spi();
    l.on_ground = fs.on_ground().filter(|&g| g);
}

fn pad8(s: &str) -> Option<[u8; 8]> {
    let mut out = [b' '; 8];
    for (slot, c) in out.iter_mut().zip(s.bytes()) {
        *slot = c;
    }
    (s.len() <= 8).then_some(out)
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar, by counting 400-year eras of 146 097 days from 0000-03-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0..365, from March 1
    let mp = (5 * doy + 2) / 153; // March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month, day) in the proleptic Gregorian calendar to days since
/// 1970-01-01: the inverse of [`civil_from_days`], same era counting.
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = year - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400); // 0..399
    let mp = i64::from(if month > 2 { month - 3 } else { month + 9 }); // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1; // 0..365
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // 0..146096
    era * 146_097 + doe - 719_468
}

/// `YYYY/MM/DD,HH:MM:SS.mmm` in UTC.
fn write_time(out: &mut impl fmt::Write, ms: i64) -> fmt::Result {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    write!(
        out,
        "{y:04}/{mo:02}/{d:02},{h:02}:{mi:02}:{s:02}.{milli:03}"
    )
}

fn flag(out: &mut String, f: Option<bool>) {
    match f {
        Some(true) => out.push_str("-1"),
        Some(false) => out.push('0'),
        None => {}
    }
}

impl fmt::Display for SbsLine {
    /// The 22 fields, without line terminator.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(raw) = &self.raw {
            return f.write_str(raw);
        }
        let mut s = String::with_capacity(128);
        write!(s, "MSG,{},1,1,{},1,", self.msg_type, self.icao)?;
        write_time(&mut s, self.generated_ms)?;
        s.push(',');
        write_time(&mut s, self.logged_ms)?;
        s.push(',');
        if let Some(cs) = self.callsign {
            s.extend(cs.iter().map(|&c| char::from(c)));
        }
        s.push(',');
        if let Some(a) = self.altitude_ft {
            write!(s, "{a}")?;
        }
        s.push(',');
        if let Some(g) = self.gs_kt {
            write!(s, "{g:.0}")?;
        }
        s.push(',');
        if let Some(t) = self.track_deg {
            write!(s, "{t:.0}")?;
        }
        s.push(',');
        if let Some(lat) = self.lat {
            write!(s, "{lat:.5}")?;
        }
        s.push(',');
        if let Some(lon) = self.lon {
            write!(s, "{lon:.5}")?;
        }
        s.push(',');
        if let Some(v) = self.vrate_fpm {
            write!(s, "{v}")?;
        }
        s.push(',');
        if let Some(q) = self.squawk {
            write!(s, "{:04o}", q & 0o7777)?;
        }
        s.push(',');
        flag(&mut s, self.alert);
        s.push(',');
        flag(&mut s, self.emergency);
        s.push(',');
        flag(&mut s, self.spi);
        s.push(',');
        flag(&mut s, self.on_ground);
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        // 2026-11-23 is day 20 780.
        assert_eq!(civil_from_days(20_780), (2026, 11, 23));
    }

    #[test]
    fn days_from_civil_inverts_civil_from_days() {
        for d in (-800_000..800_000)
            .step_by(37)
            .chain([-1, 0, 1, 11_016, 20_780])
        {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d, "{y}-{m}-{dd}");
        }
    }

    #[test]
    fn time_format() {
        let mut s = String::new();
        // 2026-11-23 13:21:54.135 UTC
        write_time(
            &mut s,
            20_780 * 86_400_000 + ((13 * 60 + 21) * 60 + 54) * 1000 + 135,
        )
        .unwrap();
        assert_eq!(s, "2026/11/23,13:21:54.135");
    }

    #[test]
    fn days_round_trip() {
        for d in [-800_000, -1, 0, 1, 11_016, 20_780, 2_000_000] {
            let (y, m, day) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, day), d);
        }
    }

    #[test]
    fn parses_our_own_lines_back() {
        // A line as from_frame writes it, every optional field filled.
        let l = SbsLine {
            msg_type: 3,
            icao: Icao(0x4840D6),
            generated_ms: 20_780 * 86_400_000 + 48_114_135,
            logged_ms: 20_780 * 86_400_000 + 48_114_140,
            callsign: Some(*b"KLM1023 "),
            altitude_ft: Some(38_000),
            gs_kt: Some(420.0),
            track_deg: Some(271.0),
            lat: Some(52.25720),
            lon: Some(-3.91937),
            vrate_fpm: Some(-832),
            squawk: Some(0o1000),
            alert: Some(false),
            emergency: Some(false),
            spi: Some(true),
            on_ground: Some(false),
            raw: None,
        };
        let text = l.to_string();
        let back = parse_line(format!("{text}\r\n").as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(back.raw.as_deref(), Some(text.as_str()));
        assert_eq!(
            SbsLine {
                raw: None,
                ..back.clone()
            },
            l
        );
        assert_eq!(back.to_string(), text);
    }

    #[test]
    fn lenient_where_decoders_differ_strict_elsewhere() {
        // antirez: empty ids and dates, unpadded squawk (SBS_FORMAT.md §2).
        let a = parse_line(b"MSG,6,,,A1B2C3,,,,,,,,,,,,,112,0,0,0,0\n")
            .unwrap()
            .unwrap();
        assert_eq!((a.squawk, a.generated_ms), (Some(0o112), 0));
        let h = parse_line(
            b"MSG,3,1,1,A1B2C3,1,2026/11/23,13:21:54.135,2026/11/23,13:21:54.135,,12000H,,,,,,,,,,",
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.altitude_ft, Some(12_000));
        assert_eq!(parse_line(b"\r\n"), Ok(None));
        for bad in [
            &b"MSG,9,1,1,A1B2C3,1,,,,,,,,,,,,,,,,"[..],
            b"MSG,3,1,1,A1B2C,1,,,,,,,,,,,,,,,,",
            b"MSG,3,1,1,A1B2C3,1,,,,,,,,,,,,,,,",
            b"MSG,3,1,1,A1B2C3,1,,,,,,,,,95.0,,,,,,,",
            b"MSG,3,1,1,A1B2C3,1,,,,,,,,,nan,,,,,,,",
            b"MSG,3,1,1,A1B2C3,1,2026/13/01,00:00:00.000,,,,,,,,,,,,,,",
            b"MSG,6,1,1,A1B2C3,1,,,,,,,,,,,,7778,,,,",
            b"MSG,5,1,1,A1B2C3,1,,,,,,\xff,,,,,,,,,,",
            b"AIR,,333,1,A1B2C3,,,,,,,,,,,,,,,,,",
        ] {
            assert!(
                parse_line(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = parse_line(&bytes);
        }

        #[test]
        fn parse_never_panics_on_near_lines(
            fields in proptest::collection::vec("[-0-9A-F.:/H ]{0,12}", 20..24)
        ) {
            let line = format!("MSG,{}", fields.join(","));
            let _ = parse_line(line.as_bytes());
        }
    }
}
