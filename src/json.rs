//! One JSON object per frame. Field names and units are those of the
//! `conventions` block of `shared/testdata/modes_vectors.json`; fields a
//! frame does not carry are omitted.

use serde_json::{json, Map, Value};

use crate::modes::adsb::Me;
use crate::modes::{fields, Body, Frame, Hex};
use crate::sbs;

fn put(m: &mut Map<String, Value>, k: &str, v: impl Into<Value>) {
    m.insert(k.to_owned(), v.into());
}

fn put_opt<T: Into<Value>>(m: &mut Map<String, Value>, k: &str, v: Option<T>) {
    if let Some(v) = v {
        put(m, k, v);
    }
}

fn round(x: f64, places: i32) -> f64 {
    let p = 10f64.powi(places);
    (x * p).round() / p
}

/// DF11 interrogator from the residue's low 7 bits: code label (CL, 3 bits)
/// and interrogator code (IC, 4 bits), Annex 10 Vol IV §3.1.2.5.2.1.3.
pub fn interrogator(ic7: u8) -> Option<String> {
    let cl = ic7 >> 4;
    let ic = ic7 & 0xF;
    match cl {
        0 => Some(format!("II{ic}")),
        1..=4 => Some(format!("SI{}", u32::from(ic) + 16 * u32::from(cl - 1))),
        _ => None,
    }
}

/// The JSON object for one frame. `t` is the reception time in seconds,
/// `position` the CPR position this frame produced, `extra` additional
/// fields from the receiver (signal level, repairs).
pub fn frame_json(
    frame: &Frame,
    t: Option<f64>,
    position: Option<(f64, f64)>,
) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(t) = t {
        put(&mut m, "t", round(t, 6));
    }
    put(&mut m, "hex", Hex(frame.bytes()).to_string());
    put(&mut m, "df", frame.df);
    put(&mut m, "icao", frame.icao.to_string());
    put_opt(&mut m, "crc_ok", frame.crc_ok());
    put(&mut m, "crc_residue", frame.residue);
    put(&mut m, "parity", frame.parity());
    put_opt(&mut m, "cf", frame.cf());
    if let Some((iis, ids)) = frame.um() {
        put(&mut m, "iis", iis);
        put(&mut m, "ids", ids);
    }
    put_opt(&mut m, "sbs_msg", sbs::msg_type(frame));
    match &frame.body {
        Body::ShortAcas { vs, altitude_ft } | Body::LongAcas { vs, altitude_ft } => {
            put(&mut m, "vs", *vs);
            put_opt(&mut m, "altitude_ft", *altitude_ft);
        }
        Body::SurvAltitude {
            fs,
            dr,
            altitude_ft,
        } => {
            put(&mut m, "fs", fs.0);
            put(&mut m, "dr", *dr);
            put_opt(&mut m, "altitude_ft", *altitude_ft);
        }
        Body::SurvIdentity { fs, dr, squawk } => {
            put(&mut m, "fs", fs.0);
            put(&mut m, "dr", *dr);
            put(&mut m, "squawk", fields::squawk_string(*squawk));
        }
        Body::CommBAltitude {
            fs,
            dr,
            altitude_ft,
            commb,
        } => {
            put(&mut m, "fs", fs.0);
            put(&mut m, "dr", *dr);
            put_opt(&mut m, "altitude_ft", *altitude_ft);
            merge(&mut m, json!(commb));
        }
        Body::CommBIdentity {
            fs,
            dr,
            squawk,
            commb,
        } => {
            put(&mut m, "fs", fs.0);
            put(&mut m, "dr", *dr);
            put(&mut m, "squawk", fields::squawk_string(*squawk));
            merge(&mut m, json!(commb));
        }
        Body::AllCall { ca, ic } => {
            put(&mut m, "capability", *ca);
            if frame.crc_ok() == Some(true) {
                put_opt(&mut m, "interrogator", interrogator(*ic));
            }
        }
        Body::ExtendedSquitter { ca, me } => {
            if frame.df == 17 {
                put(&mut m, "capability", *ca);
            }
            me_json(&mut m, me);
        }
        _ => {}
    }
    if let Some((lat, lon)) = position {
        put(&mut m, "lat", round(lat, 6));
        put(&mut m, "lon", round(lon, 6));
    }
    m
}

fn merge(m: &mut Map<String, Value>, v: Value) {
    if let Value::Object(o) = v {
        m.extend(o);
    }
}

fn me_json(m: &mut Map<String, Value>, me: &Me) {
    match me {
        Me::Identification {
            tc,
            category,
            callsign,
        } => {
            put(m, "tc", *tc);
            put(m, "category", *category);
            if let Some(cs) = callsign {
                put(
                    m,
                    "callsign",
                    String::from_utf8_lossy(cs).trim_end().to_owned(),
                );
            }
        }
        Me::SurfacePosition {
            tc,
            gs_kt,
            track_deg,
            cpr,
        } => {
            put(m, "tc", *tc);
            put_opt(m, "gs_kt", *gs_kt);
            put_opt(m, "track_deg", track_deg.map(|t| round(t, 4)));
            put(m, "cpr_format", u8::from(cpr.odd));
            put(m, "cpr_lat", cpr.lat);
            put(m, "cpr_lon", cpr.lon);
        }
        Me::AirbornePosition {
            tc,
            surveillance_status,
            altitude_ft,
            gnss,
            cpr,
        } => {
            put(m, "tc", *tc);
            put(m, "surveillance_status", *surveillance_status);
            if *gnss {
                put_opt(m, "geo_altitude_ft", *altitude_ft);
            } else {
                put_opt(m, "altitude_ft", *altitude_ft);
            }
            if let Some(c) = cpr {
                put(m, "cpr_format", u8::from(c.odd));
                put(m, "cpr_lat", c.lat);
                put(m, "cpr_lon", c.lon);
            }
        }
        Me::Velocity(v) => {
            put(m, "tc", 19);
            put(m, "subtype", v.subtype);
            // Whole knots with the fraction dropped, the convention of the
            // known-answer vectors (the speed is derived from two 1 kt
            // components, and DO-260B defines no rounding for it).
            put_opt(m, "gs_kt", v.gs_kt.map(|g| g.trunc() as i64));
            put_opt(m, "track_deg", v.track_deg.map(|t| round(t, 2)));
            put_opt(m, "heading_deg", v.heading_deg.map(|t| round(t, 2)));
            put_opt(m, "ias_kt", v.ias_kt);
            put_opt(m, "tas_kt", v.tas_kt);
            if let Some(vr) = v.vrate_fpm {
                put(m, "vrate_fpm", vr);
                put(
                    m,
                    "vrate_source",
                    if v.vrate_baro { "baro" } else { "GNSS" },
                );
            }
            put_opt(m, "geo_minus_baro_ft", v.geo_minus_baro_ft);
        }
        Me::Status {
            subtype,
            emergency_state,
            squawk,
        } => {
            put(m, "tc", 28);
            put(m, "subtype", *subtype);
            if *subtype == 1 {
                put(m, "emergency_state", *emergency_state);
            }
            put_opt(m, "squawk", squawk.map(fields::squawk_string));
        }
        Me::TargetState(ts) => {
            put(m, "tc", 29);
            put(m, "subtype", 1);
            put_opt(m, "selected_alt_ft", ts.selected_alt_ft);
            if ts.selected_alt_ft.is_some() {
                put(
                    m,
                    "selected_alt_source",
                    if ts.selected_alt_fms {
                        "FMS"
                    } else {
                        "MCP/FCU"
                    },
                );
            }
            put_opt(
                m,
                "baro_setting_mb",
                ts.baro_setting_mb.map(|b| round(b, 1)),
            );
            put_opt(
                m,
                "selected_heading_deg",
                ts.selected_heading_deg.map(|h| round(h, 2)),
            );
            if let Some(modes) = ts.modes {
                put(m, "autopilot", modes.autopilot);
                put(m, "vnav", modes.vnav);
                put(m, "alt_hold", modes.alt_hold);
                put(m, "approach", modes.approach);
                put(m, "tcas", modes.tcas);
                put(m, "lnav", modes.lnav);
            }
        }
        Me::OperationalStatus { subtype, version } => {
            put(m, "tc", 31);
            put(m, "subtype", *subtype);
            put(m, "version", *version);
        }
        Me::Other { tc } => put(m, "tc", *tc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interrogator_codes() {
        assert_eq!(interrogator(0).as_deref(), Some("II0"));
        assert_eq!(interrogator(0x16).as_deref(), Some("SI6"));
        // 0x3C: CL=3, IC=12 -> SI 44 (heard on modes1)
        assert_eq!(interrogator(0x3C).as_deref(), Some("SI44"));
        assert_eq!(interrogator(0x50), None);
    }
}
