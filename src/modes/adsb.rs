//! ADS-B extended squitter ME field (DF17/DF18), RTCA DO-260B §2.2.3.2.
//!
//! The ME field is 56 bits; here it arrives right-aligned in a `u64` and is
//! addressed with the spec's 1-based bit numbers (ME bit 1 = MSB), so every
//! `me_bits(me, a, b)` call can be checked against the DO-260B tables.

use super::cpr::CprPos;
use super::fields;

/// ME bits `first..=last` (1-based, as DO-260B numbers them).
#[inline]
pub(crate) fn me_bits(me: u64, first: u32, last: u32) -> u32 {
    let len = last - first + 1;
    ((me >> (56 - last)) & ((1u64 << len) - 1)) as u32
}

/// A decoded ME field. Variants follow the type code (TC, ME bits 1-5).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Me {
    /// TC 1-4, aircraft identification and category, §2.2.3.2.5.
    Identification {
        /// Type code 1-4, the category set (A-D reversed: TC 4 is set A).
        tc: u8,
        /// Emitter category within the set, ME bits 6-8.
        category: u8,
        /// Flight identity, eight characters; `None` if a character is
        /// outside the identification set.
        callsign: Option<[u8; 8]>,
    },
    /// TC 5-8, surface position, §2.2.3.2.4.
    SurfacePosition {
        /// Type code 5-8: position accuracy class.
        tc: u8,
        /// Ground speed in knots (lower bound of the movement code's interval);
        /// `None` for "no information" or reserved codes.
        gs_kt: Option<f64>,
        /// Ground track, degrees true; `None` when the status bit says invalid.
        track_deg: Option<f64>,
        /// The CPR-encoded position, to be resolved by the tracker.
        cpr: CprPos,
    },
    /// TC 9-18 (barometric) and 20-22 (GNSS height), airborne position,
    /// §2.2.3.2.3.
    AirbornePosition {
        /// Type code: position accuracy class and altitude type.
        tc: u8,
        /// Surveillance status, ME bits 6-7 (0 none, 1 permanent alert,
        /// 2 temporary alert, 3 SPI).
        surveillance_status: u8,
        /// Altitude, feet (barometric, or GNSS height for TC 20-22).
        altitude_ft: Option<i32>,
        /// True for TC 20-22, where the altitude is GNSS height.
        gnss: bool,
        /// The CPR-encoded position; `None` when the encoded fields are all
        /// zero (no position available).
        cpr: Option<CprPos>,
    },
    /// TC 19, airborne velocity, §2.2.3.2.6.
    Velocity(Velocity),
    /// TC 28 subtype 1, emergency/priority status and Mode A code, §2.2.3.2.7.8.
    Status {
        /// Subtype, ME bits 6-8 (1: emergency/priority status).
        subtype: u8,
        /// Emergency state, ME bits 9-11 (0 none, 1 general, 2 medical,
        /// 3 minimum fuel, 4 no communications, 5 unlawful interference,
        /// 6 downed aircraft).
        emergency_state: u8,
        /// Mode A code, four octal digits read as decimal.
        squawk: Option<u16>,
    },
    /// TC 29 subtype 1, target state and status, §2.2.3.2.7.1.
    TargetState(TargetState),
    /// TC 31, aircraft operational status, §2.2.3.2.7.2.
    OperationalStatus {
        /// 0 airborne, 1 surface.
        subtype: u8,
        /// ADS-B version number, ME bits 41-43 (0 DO-260, 1 DO-260A,
        /// 2 DO-260B).
        version: u8,
    },
    /// TC 0 (no position), 23-27 and 30: carried but not decoded.
    Other {
        /// The type code.
        tc: u8,
    },
}

/// Airborne velocity, DO-260B §2.2.3.2.6 (subtypes 1-4).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Velocity {
    /// Subtype 1-2 (ground speed, subsonic/supersonic) or 3-4 (airspeed and heading).
    pub subtype: u8,
    /// Ground speed (subtypes 1-2), knots: the exact magnitude of the
    /// east/north components, unrounded; each output quantises it its own way.
    pub gs_kt: Option<f64>,
    /// Ground track (subtypes 1-2), degrees true 0-360.
    pub track_deg: Option<f64>,
    /// Heading (subtypes 3-4), degrees 0-360 (magnetic or true per the HRD bit
    /// of the operational status message; we do not track that).
    pub heading_deg: Option<f64>,
    /// Indicated airspeed (subtypes 3-4 with the IAS/TAS bit clear), knots.
    pub ias_kt: Option<f64>,
    /// True airspeed (subtypes 3-4 with the IAS/TAS bit set), knots.
    pub tas_kt: Option<f64>,
    /// Vertical rate, feet per minute, positive climbing.
    pub vrate_fpm: Option<i32>,
    /// `true` for barometric vertical rate (ME bit 36 = 1), false for GNSS.
    pub vrate_baro: bool,
    /// GNSS height minus barometric altitude, feet.
    pub geo_minus_baro_ft: Option<i32>,
}

/// Target state and status (TC 29, subtype 1), DO-260B §2.2.3.2.7.1.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TargetState {
    /// Selected altitude (MCP/FCU or FMS), feet.
    pub selected_alt_ft: Option<i32>,
    /// `true` when the selected altitude comes from the FMS, false for MCP/FCU.
    pub selected_alt_fms: bool,
    /// Barometric pressure setting, millibars (hPa).
    pub baro_setting_mb: Option<f64>,
    /// Selected heading, degrees 0-360.
    pub selected_heading_deg: Option<f64>,
    /// Autopilot mode bits; `None` when the mode-status bit says they are not valid.
    pub modes: Option<AutopilotModes>,
}

/// Autopilot engagement flags of TC 29 (ME bits 47-54).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AutopilotModes {
    /// Autopilot engaged.
    pub autopilot: bool,
    /// Vertical navigation mode engaged.
    pub vnav: bool,
    /// Altitude hold mode engaged.
    pub alt_hold: bool,
    /// Approach mode engaged.
    pub approach: bool,
    /// TCAS/ACAS operational.
    pub tcas: bool,
    /// Lateral navigation mode engaged.
    pub lnav: bool,
}

/// Decode an ME field (56 bits, right-aligned).
pub fn decode_me(me: u64) -> Me {
    let tc = me_bits(me, 1, 5) as u8;
    match tc {
        1..=4 => Me::Identification {
            tc,
            category: me_bits(me, 6, 8) as u8,
            callsign: fields::callsign(me & 0xFFFF_FFFF_FFFF),
        },
        5..=8 => {
            let mov = me_bits(me, 6, 12);
            let track_valid = me_bits(me, 13, 13) == 1;
            Me::SurfacePosition {
                tc,
                gs_kt: movement_kt(mov),
                track_deg: track_valid.then(|| f64::from(me_bits(me, 14, 20)) * 360.0 / 128.0),
                cpr: cpr_of(me),
            }
        }
        9..=18 | 20..=22 => {
            let gnss = tc >= 20;
            let alt_code = me_bits(me, 9, 20) as u16;
            let altitude_ft = if gnss {
                // GNSS height (HAE) is a plain 12-bit count of metres, not an
                // AC12 code (DO-260B §2.2.3.2.3.4, TC 20-22).
                (alt_code != 0).then(|| (f64::from(alt_code) * 3.28084).round() as i32)
            } else {
                fields::ac12_ft(alt_code)
            };
            let lat = me_bits(me, 23, 39);
            let lon = me_bits(me, 40, 56);
            Me::AirbornePosition {
                tc,
                surveillance_status: me_bits(me, 6, 7) as u8,
                altitude_ft,
                gnss,
                // All-zero lat/lon with TC set is "no position available"
                // in practice (transponders without a navigation source).
                cpr: (lat != 0 || lon != 0).then(|| cpr_of(me)),
            }
        }
        19 => Me::Velocity(velocity(me)),
        28 => {
            let subtype = me_bits(me, 6, 8) as u8;
            let (emergency_state, squawk) = if subtype == 1 {
                (
                    me_bits(me, 9, 11) as u8,
                    Some(fields::id13_squawk(me_bits(me, 12, 24) as u16)),
                )
            } else {
                (0, None)
            };
            Me::Status {
                subtype,
                emergency_state,
                squawk,
            }
        }
        29 if me_bits(me, 6, 7) == 1 => Me::TargetState(target_state(me)),
        31 => Me::OperationalStatus {
            subtype: me_bits(me, 6, 8) as u8,
            version: me_bits(me, 41, 43) as u8,
        },
        _ => Me::Other { tc },
    }
}

fn cpr_of(me: u64) -> CprPos {
    CprPos {
        lat: me_bits(me, 23, 39),
        lon: me_bits(me, 40, 56),
        odd: me_bits(me, 22, 22) == 1,
    }
}

/// Surface movement code to knots, DO-260B Table 2-73 (§2.2.3.2.4.2). Each
/// code stands for an interval; we report its lower bound, except "stopped".
fn movement_kt(mov: u32) -> Option<f64> {
    let m = f64::from(mov);
    match mov {
        1 => Some(0.0),
        2..=8 => Some(0.125 * (m - 1.0)),
        9..=12 => Some(1.0 + 0.25 * (m - 9.0)),
        13..=38 => Some(2.0 + 0.5 * (m - 13.0)),
        39..=93 => Some(15.0 + (m - 39.0)),
        94..=108 => Some(70.0 + 2.0 * (m - 94.0)),
        109..=123 => Some(100.0 + 5.0 * (m - 109.0)),
        124 => Some(175.0),
        _ => None, // 0 = no information, 125-127 reserved
    }
}

fn velocity(me: u64) -> Velocity {
    let subtype = me_bits(me, 6, 8) as u8;
    let mut v = Velocity {
        subtype,
        ..Velocity::default()
    };
    // Supersonic subtypes scale speeds by 4 (§2.2.3.2.6.1.6).
    let scale = if subtype == 2 || subtype == 4 {
        4.0
    } else {
        1.0
    };
    match subtype {
        1 | 2 => {
            let (dew, vew) = (me_bits(me, 14, 14), me_bits(me, 15, 24));
            let (dns, vns) = (me_bits(me, 25, 25), me_bits(me, 26, 35));
            // A zero magnitude means "no velocity information".
            if vew != 0 && vns != 0 {
                let east = f64::from(vew - 1) * scale * if dew == 1 { -1.0 } else { 1.0 };
                let north = f64::from(vns - 1) * scale * if dns == 1 { -1.0 } else { 1.0 };
                v.gs_kt = Some(east.hypot(north));
                let trk = east.atan2(north).to_degrees();
                v.track_deg = Some(if trk < 0.0 { trk + 360.0 } else { trk });
            }
        }
        3 | 4 => {
            if me_bits(me, 14, 14) == 1 {
                v.heading_deg = Some(f64::from(me_bits(me, 15, 24)) * 360.0 / 1024.0);
            }
            let raw = me_bits(me, 26, 35);
            if raw != 0 {
                let speed = f64::from(raw - 1) * scale;
                if me_bits(me, 25, 25) == 1 {
                    v.tas_kt = Some(speed);
                } else {
                    v.ias_kt = Some(speed);
                }
            }
        }
        _ => {}
    }
    if (1..=4).contains(&subtype) {
        v.vrate_baro = me_bits(me, 36, 36) == 1;
        let raw = me_bits(me, 38, 46);
        if raw != 0 {
            let rate = (raw as i32 - 1) * 64;
            v.vrate_fpm = Some(if me_bits(me, 37, 37) == 1 {
                -rate
            } else {
                rate
            });
        }
        let diff = me_bits(me, 50, 56);
        if diff != 0 {
            let d = (diff as i32 - 1) * 25;
            v.geo_minus_baro_ft = Some(if me_bits(me, 49, 49) == 1 { -d } else { d });
        }
    }
    v
}

fn target_state(me: u64) -> TargetState {
    let alt = me_bits(me, 10, 20);
    let baro = me_bits(me, 21, 29);
    let heading_valid = me_bits(me, 30, 30) == 1;
    let heading = me_bits(me, 31, 39);
    TargetState {
        selected_alt_ft: (alt != 0).then(|| (alt as i32 - 1) * 32),
        selected_alt_fms: me_bits(me, 9, 9) == 1,
        baro_setting_mb: (baro != 0).then(|| 800.0 + f64::from(baro - 1) * 0.8),
        selected_heading_deg: heading_valid.then(|| f64::from(heading) * 180.0 / 256.0),
        modes: (me_bits(me, 47, 47) == 1).then(|| AutopilotModes {
            autopilot: me_bits(me, 48, 48) == 1,
            vnav: me_bits(me, 49, 49) == 1,
            alt_hold: me_bits(me, 50, 50) == 1,
            approach: me_bits(me, 52, 52) == 1,
            tcas: me_bits(me, 53, 53) == 1,
            lnav: me_bits(me, 54, 54) == 1,
        }),
    }
}
