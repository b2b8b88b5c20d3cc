//! The aircraft table behind `aircraft.json`: what was last heard from
//! each address, fed with parsed frames (our demodulator, a Beast feed) or
//! SBS lines (an `sbs:` feed, the Kinesis stream read by `tail`), and
//! written in the schema dump1090-fa and readsb use (their
//! `README-json.md`), so that a tar1090 or SkyAware page reads it
//! unchanged. Pure: time comes in as Unix seconds.
//!
//! Bounded: at most [`MAX_AIRCRAFT`] entries (a new address past that
//! evicts the stalest, see [`crate::track::make_room`]), and
//! [`AircraftTable::sweep`], which the renderer calls once a second,
//! removes entries unheard for [`FORGET_AFTER_S`], as dump1090 does.

use std::collections::HashMap;

use serde::Serialize;

use crate::decoder::Decoded;
use crate::modes::adsb::Me;
use crate::modes::{Body, Icao};
use crate::sbs::SbsLine;

/// Most aircraft kept. A busy receiver sees a few hundred; garbage that
/// passed the CRC could otherwise grow the table without end.
pub const MAX_AIRCRAFT: usize = 10_000;

/// An aircraft unheard this long leaves the table (dump1090: 300 s).
pub const FORGET_AFTER_S: f64 = 300.0;

/// Signal samples averaged into `rssi` (dump1090 averages the last 8).
const RSSI_WINDOW: usize = 8;

/// Emergency/priority status names of DO-260B §2.2.3.2.7.8.1.1, as
/// dump1090-fa writes `emergency`.
const EMERGENCY: [&str; 8] = [
    "none",
    "general",
    "lifeguard",
    "minfuel",
    "nordo",
    "unlawful",
    "downed",
    "reserved",
];

/// A value and when it was last set (Unix seconds).
#[derive(Debug, Clone, Copy)]
struct Timed<T> {
    value: Option<T>,
    at: f64,
}

impl<T> Default for Timed<T> {
    fn default() -> Self {
        Timed {
            value: None,
            at: 0.0,
        }
    }
}

impl<T> Timed<T> {
    fn set(&mut self, v: Option<T>, now: f64) {
        if v.is_some() {
            self.value = v;
            self.at = now;
        }
    }
}

/// Barometric altitude, or "on the ground" (dump1090's `"ground"`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Altitude {
    Feet(i32),
    Ground,
}

/// Where an aircraft's data came from, as dump1090-fa's `type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Source {
    /// Only Mode S replies (no extended squitter).
    #[default]
    ModeS,
    /// DF17 extended squitter from a transponder.
    AdsbIcao,
    /// DF18 extended squitter from a non-transponder device.
    AdsbOther,
    /// SBS lines: the format does not say.
    Sbs,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::ModeS => "mode_s",
            Source::AdsbIcao => "adsb_icao",
            Source::AdsbOther => "adsb_other",
            Source::Sbs => "sbs",
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Entry {
    source: Source,
    flight: Timed<[u8; 8]>,
    category: Option<(u8, u8)>,
    alt_baro: Timed<Altitude>,
    alt_geom: Timed<i32>,
    gs: Timed<f64>,
    ias: Timed<f64>,
    tas: Timed<f64>,
    track: Timed<f64>,
    mag_heading: Timed<f64>,
    baro_rate: Timed<i32>,
    geom_rate: Timed<i32>,
    squawk: Timed<u16>,
    emergency: Timed<u8>,
    nav_altitude_mcp: Timed<i32>,
    nav_altitude_fms: Timed<i32>,
    nav_qnh: Timed<f64>,
    nav_heading: Timed<f64>,
    version: Option<u8>,
    position: Timed<(f64, f64)>,
    messages: u64,
    last: f64,
    /// Power (magnitude², full scale 1.0) of the last frames, a ring.
    power: [f64; RSSI_WINDOW],
    power_n: usize,
    /// Receivers that heard it (the fleet map); empty for one receiver.
    receivers: Vec<String>,
}

/// Every aircraft heard recently.
#[derive(Debug, Default)]
pub struct AircraftTable {
    aircraft: HashMap<Icao, Entry>,
    /// Frames or lines taken in.
    pub messages: u64,
    /// Aircraft dropped to make room for new addresses in a full table.
    pub evicted: u64,
}

impl AircraftTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Aircraft in the table.
    pub fn len(&self) -> usize {
        self.aircraft.len()
    }

    /// No aircraft in the table.
    pub fn is_empty(&self) -> bool {
        self.aircraft.is_empty()
    }

    fn entry(&mut self, icao: Icao, now: f64) -> &mut Entry {
        self.messages += 1;
        if !self.aircraft.contains_key(&icao) {
            self.evicted += crate::track::make_room(&mut self.aircraft, MAX_AIRCRAFT, |e| {
                e.last + if e.messages > 1 { FORGET_AFTER_S } else { 0.0 }
            }) as u64;
        }
        let e = self.aircraft.entry(icao).or_default();
        e.messages += 1;
        e.last = e.last.max(now);
        e
    }

    /// Takes in one accepted frame heard at `now`, with the position the
    /// tracker decoded from it (CPR, DO-260B §A.1.7), if any.
    pub fn update_frame(&mut self, d: &Decoded, position: Option<(f64, f64)>, now: f64) {
        let f = &d.frame;
        let e = self.entry(f.icao, now);
        let power = (f64::from(d.signal) / 65535.0).powi(2);
        e.power[e.power_n % RSSI_WINDOW] = power;
        e.power_n += 1;
        e.position.set(position, now);
        match &f.body {
            Body::ExtendedSquitter { me, .. } => {
                let es = if f.df == 18 {
                    Source::AdsbOther
                } else {
                    Source::AdsbIcao
                };
                if e.source != Source::AdsbIcao {
                    e.source = es;
                }
                e.me(me, now);
            }
            Body::SurvAltitude {
                fs, altitude_ft, ..
            }
            | Body::CommBAltitude {
                fs, altitude_ft, ..
            } => {
                e.altitude(*altitude_ft, fs.on_ground(), now);
            }
            Body::SurvIdentity { fs, squawk, .. } | Body::CommBIdentity { fs, squawk, .. } => {
                e.squawk.set(Some(*squawk), now);
                if fs.on_ground() == Some(true) {
                    e.alt_baro.set(Some(Altitude::Ground), now);
                }
            }
            Body::ShortAcas { vs, altitude_ft } | Body::LongAcas { vs, altitude_ft } => {
                e.altitude(*altitude_ft, Some(*vs == 1), now);
            }
            _ => {}
        }
    }

    /// Takes in one SBS line read at `now` (SBS_FORMAT.md), heard by
    /// `receiver` when the stream names one.
    pub fn update_line(&mut self, l: &SbsLine, receiver: Option<&str>, now: f64) {
        let e = self.entry(l.icao, now);
        if e.source == Source::ModeS {
            e.source = Source::Sbs;
        }
        e.flight.set(l.callsign, now);
        e.altitude(l.altitude_ft, l.on_ground, now);
        e.gs.set(l.gs_kt, now);
        e.track.set(l.track_deg, now);
        e.baro_rate.set(l.vrate_fpm, now);
        e.squawk.set(l.squawk, now);
        e.position.set(l.lat.zip(l.lon), now);
        if let Some(r) = receiver {
            if !e.receivers.iter().any(|x| x == r) && e.receivers.len() < 16 {
                e.receivers.push(r.to_owned());
            }
        }
    }

    /// Drops aircraft unheard for [`FORGET_AFTER_S`].
    pub fn sweep(&mut self, now: f64) {
        self.aircraft.retain(|_, e| now - e.last < FORGET_AFTER_S);
    }

    /// `aircraft.json` at `now`: dump1090-fa's schema, aircraft sorted by
    /// address so that two renderings of one state are equal.
    pub fn aircraft_json(&self, now: f64) -> String {
        let mut list: Vec<(&Icao, &Entry)> = self.aircraft.iter().collect();
        list.sort_by_key(|(icao, _)| icao.0);
        let doc = AircraftDoc {
            now: round(now, 1),
            messages: self.messages,
            aircraft: list
                .into_iter()
                .map(|(icao, e)| e.view(*icao, now))
                .collect(),
        };
        serde_json::to_string(&doc).unwrap_or_default()
    }
}

impl Entry {
    fn altitude(&mut self, feet: Option<i32>, on_ground: Option<bool>, now: f64) {
        if on_ground == Some(true) {
            self.alt_baro.set(Some(Altitude::Ground), now);
        } else {
            self.alt_baro.set(feet.map(Altitude::Feet), now);
        }
    }

    fn me(&mut self, me: &Me, now: f64) {
        match me {
            Me::Identification {
                tc,
                category,
                callsign,
            } => {
                self.flight.set(*callsign, now);
                // TC 1-4 are sets D, C, B, A (DO-260B §2.2.3.2.5.2).
                self.category = Some((b'A' + 4 - tc.clamp(&1, &4), *category));
            }
            Me::SurfacePosition {
                gs_kt, track_deg, ..
            } => {
                self.alt_baro.set(Some(Altitude::Ground), now);
                self.gs.set(*gs_kt, now);
                self.track.set(*track_deg, now);
            }
            Me::AirbornePosition {
                altitude_ft, gnss, ..
            } => {
                if *gnss {
                    self.alt_geom.set(*altitude_ft, now);
                } else {
                    self.alt_baro.set(altitude_ft.map(Altitude::Feet), now);
                }
            }
            Me::Velocity(v) => {
                self.gs.set(v.gs_kt, now);
                self.track.set(v.track_deg, now);
                self.ias.set(v.ias_kt, now);
                self.tas.set(v.tas_kt, now);
                self.mag_heading.set(v.heading_deg, now);
                if v.vrate_baro {
                    self.baro_rate.set(v.vrate_fpm, now);
                } else {
                    self.geom_rate.set(v.vrate_fpm, now);
                }
                if let (Some(diff), Some(Altitude::Feet(baro))) =
                    (v.geo_minus_baro_ft, self.alt_baro.value)
                {
                    self.alt_geom.set(Some(baro + diff), now);
                }
            }
            Me::Status {
                squawk,
                emergency_state,
                ..
            } => {
                self.squawk.set(*squawk, now);
                self.emergency.set(Some(*emergency_state), now);
            }
            Me::TargetState(t) => {
                if t.selected_alt_fms {
                    self.nav_altitude_fms.set(t.selected_alt_ft, now);
                } else {
                    self.nav_altitude_mcp.set(t.selected_alt_ft, now);
                }
                self.nav_qnh.set(t.baro_setting_mb, now);
                self.nav_heading.set(t.selected_heading_deg, now);
            }
            Me::OperationalStatus { version, .. } => self.version = Some(*version),
            _ => {}
        }
    }

    fn rssi(&self) -> Option<f64> {
        let n = self.power_n.min(RSSI_WINDOW);
        if n == 0 {
            return None;
        }
        let mean = self.power[..n].iter().sum::<f64>() / n as f64;
        // dBFS; a silent 0 would be -inf, which JSON cannot carry.
        Some(round((10.0 * mean.max(1e-5).log10()).max(-49.5), 1))
    }

    fn view(&self, icao: Icao, now: f64) -> AircraftView {
        let flight = self.flight.value.and_then(|c| {
            let s = std::str::from_utf8(&c).ok()?;
            Some(format!("{s:<8}"))
        });
        let squawk = self.squawk.value.map(|s| format!("{s:04}"));
        AircraftView {
            hex: format!("{:06x}", icao.0 & 0xFF_FFFF),
            kind: self.source.name(),
            flight,
            alt_baro: self.alt_baro.value.map(|a| match a {
                Altitude::Feet(f) => serde_json::Value::from(f),
                Altitude::Ground => serde_json::Value::from("ground"),
            }),
            alt_geom: self.alt_geom.value,
            gs: self.gs.value.map(|v| round(v, 1)),
            ias: self.ias.value.map(|v| v.round() as i32),
            tas: self.tas.value.map(|v| v.round() as i32),
            track: self.track.value.map(|v| round(v, 1)),
            mag_heading: self.mag_heading.value.map(|v| round(v, 1)),
            baro_rate: self.baro_rate.value,
            geom_rate: self.geom_rate.value,
            squawk,
            emergency: self
                .emergency
                .value
                .map(|e| EMERGENCY[usize::from(e.min(7))]),
            category: self
                .category
                .map(|(set, c)| format!("{}{}", char::from(set), c)),
            nav_qnh: self.nav_qnh.value.map(|v| round(v, 1)),
            nav_altitude_mcp: self.nav_altitude_mcp.value,
            nav_altitude_fms: self.nav_altitude_fms.value,
            nav_heading: self.nav_heading.value.map(|v| round(v, 1)),
            version: self.version,
            lat: self.position.value.map(|p| round(p.0, 6)),
            lon: self.position.value.map(|p| round(p.1, 6)),
            seen_pos: self
                .position
                .value
                .map(|_| round(now - self.position.at, 1)),
            messages: self.messages,
            seen: round((now - self.last).max(0.0), 1),
            rssi: self.rssi(),
            mlat: [],
            tisb: [],
            receivers: self.receivers.clone(),
        }
    }
}

fn round(v: f64, digits: i32) -> f64 {
    let k = 10f64.powi(digits);
    (v * k).round() / k
}

#[derive(Serialize)]
struct AircraftDoc {
    now: f64,
    messages: u64,
    aircraft: Vec<AircraftView>,
}

/// One aircraft as `aircraft.json` writes it; field names and units are
/// dump1090-fa's (`README-json.md`).
#[derive(Serialize)]
struct AircraftView {
    hex: String,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    flight: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alt_baro: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alt_geom: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ias: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tas: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    track: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mag_heading: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    baro_rate: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    geom_rate: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    squawk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    emergency: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nav_qnh: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nav_altitude_mcp: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nav_altitude_fms: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nav_heading: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lat: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lon: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seen_pos: Option<f64>,
    messages: u64,
    seen: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    rssi: Option<f64>,
    mlat: [&'static str; 0],
    tisb: [&'static str; 0],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    receivers: Vec<String>,
}

/// `receiver.json`: what the page needs to know once (dump1090-fa's
/// fields: version, refresh in ms, history files, position).
pub fn receiver_json(position: Option<(f64, f64)>) -> String {
    let mut v = serde_json::json!({
        "version": concat!("adsb-kinesis ", env!("CARGO_PKG_VERSION")),
        "refresh": 1000,
        "history": 0,
    });
    if let Some((lat, lon)) = position {
        v["lat"] = lat.into();
        v["lon"] = lon.into();
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hexin;
    use crate::modes;

    fn decoded(hex: &str, signal: u16) -> Decoded {
        let (_, bytes) = hexin::parse_line(hex).unwrap().unwrap();
        Decoded {
            frame: modes::parse(&bytes).unwrap(),
            sample: 0,
            signal,
            timestamp: 0,
            repaired: 0,
            late: false,
        }
    }

    fn json(t: &AircraftTable, now: f64) -> serde_json::Value {
        serde_json::from_str(&t.aircraft_json(now)).unwrap()
    }

    #[test]
    fn an_extended_squitter_aircraft_in_dump1090s_schema() {
        let mut t = AircraftTable::new();
        // Identification (KLM1023, category A0), airborne position (38000 ft)
        // and velocity (159 kt, track 182.9°, -832 fpm) of 4840D6 / 485020
        // from the well-known examples of "The 1090 MHz Riddle".
        t.update_frame(&decoded("8D4840D6202CC371C32CE0576098", 32768), None, 100.0);
        t.update_frame(
            &decoded("8D40621D58C382D690C8AC2863A7", 32768),
            Some((52.2572, 3.91937)),
            101.0,
        );
        t.update_frame(&decoded("8D485020994409940838175B284F", 32768), None, 102.0);
        let v = json(&t, 103.0);
        assert_eq!(v["messages"], 3);
        assert_eq!(v["now"], 103.0);
        let list = v["aircraft"].as_array().unwrap();
        assert_eq!(list.len(), 3);
        let by_hex = |h: &str| list.iter().find(|a| a["hex"] == h).unwrap().clone();
        let klm = by_hex("4840d6");
        assert_eq!(klm["flight"], "KLM1023 ");
        assert_eq!(klm["type"], "adsb_icao");
        assert_eq!(klm["seen"], 3.0);
        // Full scale / 2 in magnitude is a quarter of the power: -6 dBFS.
        assert_eq!(klm["rssi"], -6.0);
        let pos = by_hex("40621d");
        assert_eq!(pos["alt_baro"], 38000);
        assert_eq!(pos["lat"], 52.2572);
        assert_eq!(pos["seen_pos"], 2.0);
        let vel = by_hex("485020");
        assert_eq!(vel["gs"], 159.2);
        assert_eq!(vel["track"], 182.9);
        assert_eq!(vel["geom_rate"], -832);
        assert!(vel.get("lat").is_none());
        assert_eq!(vel["mlat"], serde_json::json!([]));
    }

    #[test]
    fn sbs_lines_fill_the_same_fields_and_tag_receivers() {
        let mut t = AircraftTable::new();
        let l = crate::sbs::parse_line(
            b"MSG,3,1,1,A1B2C3,1,2026/11/23,13:21:54.135,2026/11/23,13:21:54.135,,,,,51.5,-0.1,,,,,,0",
        )
        .unwrap()
        .unwrap();
        t.update_line(&l, Some("pi-north"), 10.0);
        t.update_line(&l, Some("pi-south"), 11.0);
        t.update_line(&l, Some("pi-north"), 12.0);
        let a = &json(&t, 12.0)["aircraft"][0];
        assert_eq!(a["hex"], "a1b2c3");
        assert_eq!(a["lat"], 51.5);
        assert_eq!(a["receivers"], serde_json::json!(["pi-north", "pi-south"]));
        assert_eq!(a["messages"], 3);
    }

    #[test]
    fn the_table_is_bounded_and_forgets() {
        let mut t = AircraftTable::new();
        let l = |icao: u32| SbsLine {
            icao: Icao(icao),
            ..crate::sbs::parse_line(b"MSG,8,1,1,000001,1,,,,,,,,,,,,,,,,")
                .unwrap()
                .unwrap()
        };
        for i in 0..MAX_AIRCRAFT as u32 + 5 {
            t.update_line(&l(i), None, 1.0);
        }
        assert_eq!(t.len() as u64 + t.evicted, MAX_AIRCRAFT as u64 + 5);
        assert!(t.len() <= MAX_AIRCRAFT && t.evicted >= 5);
        t.update_line(&l(1), None, 1.0 + FORGET_AFTER_S - 1.0);
        t.sweep(1.0 + FORGET_AFTER_S + 1.0);
        assert_eq!(t.len(), 1);
    }
}
