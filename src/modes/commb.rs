//! Comm-B (MB field of DF20/DF21) register inference and decoding.
//!
//! The downlink never says which transponder register (BDS) it carries: the
//! register number travels only in the interrogation. A passive receiver
//! must therefore *infer* it from the 56 MB bits alone. We do that the way
//! the register definitions allow (ICAO Doc 9871, 2nd ed., Appendix A,
//! Tables A-2-x, where x is the register number in decimal; and the BDS
//! inference chapter of "The 1090 Megahertz Riddle", 2nd ed.):
//!
//! 1. registers with a fixed leading BDS code (1,0, 2,0, 3,0) must carry it;
//! 2. reserved bits are transmitted as zero;
//! 3. a field whose status bit says "not valid" is transmitted as all zeros;
//! 4. every valid value must be physically possible for a civil aircraft,
//!    and fields that describe the same physical state must agree with
//!    each other (IAS with Mach at the reported altitude, baro with
//!    inertial vertical rate, bank angle with turn rate, ...).
//!
//! Every register that survives is a candidate. Fields are only reported when
//! exactly one survives: a guess between two registers would put, say, a
//! vertical rate into a ground speed, which is worse than reporting nothing.
//!
//! MB bit numbering follows the specs: bit 1 is the first (most significant)
//! MB bit, i.e. bit 55 of the `u64` we are given.

use serde::Serialize;

/// Decoded Comm-B reply. All fields are `None` unless exactly one register
/// was inferred.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CommB {
    /// Inferred register as "X,Y" (e.g. "4,0") when exactly one register is plausible.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bds: Option<&'static str>,
    /// All plausible registers when more than one fits (then `bds` is None and no register fields are filled).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bds_candidates: Vec<&'static str>,
    /// BDS 2,0 aircraft identification, trailing space padding removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callsign: Option<String>,
    /// BDS 4,0 MCP/FCU selected altitude, feet (raw × 16, not rounded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selected_alt_mcp_ft: Option<i32>,
    /// BDS 4,0 FMS selected altitude, feet (raw × 16, not rounded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selected_alt_fms_ft: Option<i32>,
    /// BDS 4,0 barometric pressure setting, millibars.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baro_setting_mb: Option<f64>,
    /// BDS 5,0 roll angle, degrees, positive = right wing down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roll_deg: Option<f64>,
    /// BDS 5,0 true track angle, degrees 0..360.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub true_track_deg: Option<f64>,
    /// BDS 5,0 ground speed, knots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gs_kt: Option<f64>,
    /// BDS 5,0 track angle rate, degrees per second, positive = clockwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track_rate_dps: Option<f64>,
    /// BDS 5,0 true airspeed, knots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tas_kt: Option<f64>,
    /// BDS 6,0 magnetic heading, degrees 0..360.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mag_heading_deg: Option<f64>,
    /// BDS 6,0 indicated airspeed, knots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ias_kt: Option<f64>,
    /// BDS 6,0 Mach number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mach: Option<f64>,
    /// BDS 6,0 barometric altitude rate, feet per minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vrate_baro_fpm: Option<i32>,
    /// BDS 6,0 inertial vertical velocity, feet per minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vrate_inertial_fpm: Option<i32>,
}

/// Register names, in the order candidates are listed.
pub const BDS10: &str = "1,0";
/// BDS 1,7: common usage GICB capability report.
pub const BDS17: &str = "1,7";
/// BDS 2,0: aircraft identification.
pub const BDS20: &str = "2,0";
/// BDS 3,0: ACAS active resolution advisory.
pub const BDS30: &str = "3,0";
/// BDS 4,0: selected vertical intention.
pub const BDS40: &str = "4,0";
/// BDS 5,0: track and turn report.
pub const BDS50: &str = "5,0";
/// BDS 6,0: heading and speed report.
pub const BDS60: &str = "6,0";

/// Infer the register carried by the 56-bit MB field (low 56 bits of `mb`)
/// and decode it.
///
/// `altitude_ft` is the pressure altitude from the same reply's AC field
/// (DF20), if known. It only sharpens the BDS 6,0 IAS/Mach consistency test;
/// without it that test falls back to "consistent at *some* altitude in the
/// civil flight envelope".
pub fn decode(mb: u64, altitude_ft: Option<i32>) -> CommB {
    let mb = mb & MB_MASK;
    // An all-zero MB is what a transponder sends for an empty or unsupported
    // register; every status-gated register would "fit" it vacuously.
    if mb == 0 {
        return CommB::default();
    }

    let mut fits: Vec<(&'static str, CommB)> = Vec::new();
    if is_bds10(mb) {
        fits.push((BDS10, CommB::default()));
    }
    if is_bds17(mb) {
        fits.push((BDS17, CommB::default()));
    }
    if let Some(c) = bds20(mb) {
        fits.push((BDS20, c));
    }
    if is_bds30(mb) {
        fits.push((BDS30, CommB::default()));
    }
    if let Some(c) = bds40(mb) {
        fits.push((BDS40, c));
    }
    if let Some(c) = bds50(mb) {
        fits.push((BDS50, c));
    }
    if let Some(c) = bds60(mb, altitude_ft) {
        fits.push((BDS60, c));
    }

    match fits.len() {
        0 => CommB::default(),
        1 => {
            let (name, mut c) = fits.swap_remove(0);
            c.bds = Some(name);
            c
        }
        _ => CommB {
            bds_candidates: fits.into_iter().map(|(name, _)| name).collect(),
            ..CommB::default()
        },
    }
}

const MB_MASK: u64 = (1 << 56) - 1;

/// Unsigned field spanning MB bits `first..=last` (1-based, bit 1 = MSB).
fn field(mb: u64, first: u32, last: u32) -> u32 {
    debug_assert!(1 <= first && first <= last && last <= 56 && last - first < 32);
    let len = last - first + 1;
    ((mb >> (56 - last)) & ((1u64 << len) - 1)) as u32
}

fn bit(mb: u64, n: u32) -> bool {
    field(mb, n, n) == 1
}

/// Two's-complement field whose sign bit is `sign` and whose magnitude bits
/// run from `sign + 1` to `last` — the layout every signed Comm-B quantity
/// uses (the sign bit weighs minus the full scale of the magnitude bits).
fn signed(mb: u64, sign: u32, last: u32) -> i32 {
    let mag = field(mb, sign + 1, last) as i32;
    if bit(mb, sign) {
        mag - (1 << (last - sign))
    } else {
        mag
    }
}

/// Reads the status bit `status_bit` that guards the data bits
/// `status_bit + 1..=last`.
///
/// `Some(true)`: the field is valid. `Some(false)`: not valid, and zeroed
/// as a transponder must send it. `None`: "not valid" yet data bits are
/// set, so the MB cannot be this register.
fn status(mb: u64, status_bit: u32, last: u32) -> Option<bool> {
    if bit(mb, status_bit) {
        Some(true)
    } else {
        (field(mb, status_bit + 1, last) == 0).then_some(false)
    }
}

/// Data link capability report.
///
/// ICAO Doc 9871 Table A-2-16: bits 1–8 carry the register's own code
/// 0001 0000, bits 10–14 are reserved.
fn is_bds10(mb: u64) -> bool {
    field(mb, 1, 8) == 0x10 && field(mb, 10, 14) == 0
}

/// Common-usage GICB capability report.
///
/// ICAO Doc 9871 Table A-2-23: bits 1–24 flag which of 24 registers are
/// serviced and bits 29–56 are reserved; like the Riddle's inference table
/// we test only those, not bits 25–28. Bit 7 flags register
/// 2,0, which every installation that has GICB registers at all must
/// service (aircraft identification is part of elementary surveillance),
/// so a report without it is not credible.
fn is_bds17(mb: u64) -> bool {
    bit(mb, 7) && field(mb, 29, 56) == 0
}

/// Aircraft identification.
///
/// ICAO Doc 9871 Table A-2-32: bits 1–8 are 0010 0000, then eight 6-bit
/// characters in the IA-5 subset of Annex 10 Vol IV (A–Z = 1–26, space =
/// 32, 0–9 = 48–57); every other code is unassigned and so never sent.
fn bds20(mb: u64) -> Option<CommB> {
    if field(mb, 1, 8) != 0x20 {
        return None;
    }
    let mut callsign = String::with_capacity(8);
    for i in 0..8 {
        let c = field(mb, 9 + 6 * i, 14 + 6 * i) as u8;
        callsign.push(match c {
            1..=26 => char::from(b'A' + c - 1),
            32 => ' ',
            48..=57 => char::from(c),
            _ => return None,
        });
    }
    // Short identifications are padded with spaces; the 6-bit alphabet has
    // no '_', so there is nothing else to strip.
    let trimmed = callsign.trim_end();
    if trimmed.trim_start().is_empty() {
        // Eight spaces identify nothing; treating them as 2,0 would only
        // shadow other interpretations.
        return None;
    }
    Some(CommB {
        callsign: Some(trimmed.to_string()),
        ..CommB::default()
    })
}

/// ACAS active resolution advisory.
///
/// ICAO Doc 9871 Table A-2-48: bits 1–8 are 0011 0000; bits 29–30 are the
/// threat type indicator (TTI) where 3 is unassigned; with TTI = 0 there
/// is no threat identity data (bits 31–56 zero); with TTI = 1 the threat
/// identity is a 24-bit address in bits 31–54 and bits 55–56 are zero.
fn is_bds30(mb: u64) -> bool {
    if field(mb, 1, 8) != 0x30 {
        return false;
    }
    match field(mb, 29, 30) {
        0 => field(mb, 31, 56) == 0,
        1 => field(mb, 55, 56) == 0,
        2 => true,
        _ => false,
    }
}

/// Highest selected altitude we believe: the certified ceiling of the
/// highest-flying civil jets in service is 51,000 ft, and MCP/FCU/FMS
/// altitude selection does not go beyond the ceiling.
const MAX_SELECTED_ALT_FT: i32 = 51_000;

/// Selected vertical intention.
///
/// ICAO Doc 9871 Table A-2-64:
/// - 1 status, 2–13 MCP/FCU selected altitude (LSB 16 ft);
/// - 14 status, 15–26 FMS selected altitude (LSB 16 ft);
/// - 27 status, 28–39 barometric pressure setting minus 800 mb (LSB 0.1 mb);
/// - 40–47 reserved;
/// - 48 status of MCP/FCU mode bits, 49–51 VNAV / alt hold / approach;
/// - 52–53 reserved;
/// - 54 status of target altitude source, 55–56 source.
fn bds40(mb: u64) -> Option<CommB> {
    let mcp = status(mb, 1, 13)?;
    let fms = status(mb, 14, 26)?;
    let baro = status(mb, 27, 39)?;
    status(mb, 48, 51)?;
    status(mb, 54, 56)?;
    if field(mb, 40, 47) != 0 || field(mb, 52, 53) != 0 {
        return None;
    }

    let alt = |first| field(mb, first, first + 11) as i32 * 16;
    let mcp_ft = mcp.then(|| alt(2));
    let fms_ft = fms.then(|| alt(15));
    if [mcp_ft, fms_ft]
        .into_iter()
        .flatten()
        .any(|a| a > MAX_SELECTED_ALT_FT)
    {
        return None;
    }

    let baro_mb = baro.then(|| f64::from(field(mb, 28, 39)) * 0.1 + 800.0);
    // The encoding floor (800 mb, raw 0) is where a zeroed-out value with a
    // stray status bit lands; QNH/QFE settings in use stay above it, and
    // the highest sea-level pressure ever observed is about 1084 mb.
    if baro_mb.is_some_and(|b| b <= 800.0 || b > 1100.0) {
        return None;
    }

    Some(CommB {
        selected_alt_mcp_ft: mcp_ft,
        selected_alt_fms_ft: fms_ft,
        baro_setting_mb: baro_mb,
        ..CommB::default()
    })
}

/// Bank angle beyond which we stop believing a civil aircraft: transport
/// aircraft are limited to ~30–35° in normal operation and their bank
/// protection stops at 67°; 50° leaves margin for light aircraft and
/// helicopters.
const MAX_ROLL_DEG: f64 = 50.0;
/// Fastest true airspeed of subsonic civil aircraft (≈ Mach 0.92 at
/// cruise altitude is ≈ 530 kt), with margin.
const MAX_TAS_KT: f64 = 600.0;
/// Strongest jet-stream cores observed are around 220 kt, so ground speed
/// and true airspeed cannot differ by more than about this.
const MAX_WIND_KT: f64 = 250.0;
/// Upper bound on ground speed: fastest airspeed plus strongest tailwind.
const MAX_GS_KT: f64 = MAX_TAS_KT + MAX_WIND_KT;

/// Track and turn report.
///
/// ICAO Doc 9871 Table A-2-80:
/// - 1 status, 2 sign, 3–11 roll angle (LSB 45/256°);
/// - 12 status, 13 sign, 14–23 true track angle (LSB 90/512°);
/// - 24 status, 25–34 ground speed (LSB 1024/512 kt);
/// - 35 status, 36 sign, 37–45 track angle rate (LSB 8/256 °/s);
/// - 46 status, 47–56 true airspeed (LSB 2 kt).
fn bds50(mb: u64) -> Option<CommB> {
    let roll = status(mb, 1, 11)?.then(|| f64::from(signed(mb, 2, 11)) * (45.0 / 256.0));
    let track =
        status(mb, 12, 23)?.then(|| angle_0_360(f64::from(signed(mb, 13, 23)) * (90.0 / 512.0)));
    let gs = status(mb, 24, 34)?.then(|| f64::from(field(mb, 25, 34)) * 2.0);
    let rate = status(mb, 35, 45)?.then(|| f64::from(signed(mb, 36, 45)) * (8.0 / 256.0));
    let tas = status(mb, 46, 56)?.then(|| f64::from(field(mb, 47, 56)) * 2.0);

    if roll.is_some_and(|r| r.abs() > MAX_ROLL_DEG)
        || tas.is_some_and(|t| t > MAX_TAS_KT)
        || gs.is_some_and(|g| g > MAX_GS_KT)
    {
        return None;
    }
    if let (Some(g), Some(t)) = (gs, tas) {
        if (g - t).abs() > MAX_WIND_KT {
            return None;
        }
    }
    if let (Some(r), Some(rate)) = (roll, rate) {
        if !turn_is_coordinated(r, rate, tas.or(gs)) {
            return None;
        }
    }

    Some(CommB {
        roll_deg: roll,
        true_track_deg: track,
        gs_kt: gs,
        track_rate_dps: rate,
        tas_kt: tas,
        ..CommB::default()
    })
}

/// Does the reported track angle rate fit the reported bank angle?
///
/// In a coordinated turn the lateral acceleration is g·tan(roll), so the
/// turn rate is g·tan(roll)/V. Ground track rate differs from heading rate
/// by the wind's share of the velocity, and roll and rate come from
/// different sensors with their own filtering, so the test is loose: half
/// the predicted rate plus 1°/s (a third of a standard-rate turn). It still
/// rejects the common mis-inference where unrelated bits produce a wings-level
/// aircraft turning at several degrees per second, or vice versa. Ground
/// speed stands in for true airspeed when TAS is not valid: they differ by
/// the wind only, which is what the loose relative tolerance allows for.
fn turn_is_coordinated(roll_deg: f64, rate_dps: f64, speed_kt: Option<f64>) -> bool {
    const G: f64 = 9.806_65;
    const KT_TO_MS: f64 = 1852.0 / 3600.0;
    // Below ~50 kt (taxiing, hovering) turns are not aerodynamic.
    let Some(v) = speed_kt.filter(|&s| s >= 50.0).map(|s| s * KT_TO_MS) else {
        return true;
    };
    let predicted = (G * roll_deg.to_radians().tan() / v).to_degrees();
    (rate_dps - predicted).abs() <= 1.0 + 0.5 * predicted.abs()
}

/// Fastest indicated airspeed we believe (transport-category Vmo is
/// 340–365 kt), with margin for fast business and military jets.
const MAX_IAS_KT: f64 = 500.0;
/// Civil aircraft are subsonic.
const MAX_MACH: f64 = 1.0;
/// Vertical rates beyond this are not flown by civil aircraft in service.
const MAX_VRATE_FPM: i32 = 6_000;
/// Barometric and inertial vertical rate measure the same climb; the
/// barometric one lags and is noisier, but not by thousands of ft/min.
const MAX_VRATE_DISAGREEMENT_FPM: i32 = 2_000;
/// How far IAS may sit from the calibrated airspeed implied by Mach and
/// pressure altitude: position/instrument error (a few kt), Mach
/// quantisation (0.004, ≈ 2–3 kt of CAS) and IAS quantisation (1 kt),
/// with margin.
const MAX_IAS_CAS_DISAGREEMENT_KT: f64 = 20.0;
/// Pressure-altitude envelope used when the altitude is not known: from
/// below the lowest airfields on a high-pressure day to above the ceiling
/// of any civil jet.
const ENVELOPE_FT: (f64, f64) = (-2_000.0, 60_000.0);

/// Heading and speed report.
///
/// ICAO Doc 9871 Table A-2-96:
/// - 1 status, 2 sign, 3–12 magnetic heading (LSB 90/512°);
/// - 13 status, 14–23 indicated airspeed (LSB 1 kt);
/// - 24 status, 25–34 Mach (LSB 2.048/512);
/// - 35 status, 36 sign, 37–45 barometric altitude rate (LSB 32 ft/min);
/// - 46 status, 47 sign, 48–56 inertial vertical velocity (LSB 32 ft/min).
fn bds60(mb: u64, altitude_ft: Option<i32>) -> Option<CommB> {
    let heading =
        status(mb, 1, 12)?.then(|| angle_0_360(f64::from(signed(mb, 2, 12)) * (90.0 / 512.0)));
    let ias = status(mb, 13, 23)?.then(|| f64::from(field(mb, 14, 23)));
    // 0.004 is the LSB 2.048/512 exactly; multiplying by it keeps decoded
    // values identical to those of other decoders (0.412, not 0.41199...).
    let mach = status(mb, 24, 34)?.then(|| f64::from(field(mb, 25, 34)) * 0.004);
    let vr_baro = status(mb, 35, 45)?.then(|| signed(mb, 36, 45) * 32);
    let vr_inertial = status(mb, 46, 56)?.then(|| signed(mb, 47, 56) * 32);

    if ias.is_some_and(|v| v > MAX_IAS_KT) || mach.is_some_and(|m| m > MAX_MACH) {
        return None;
    }
    if [vr_baro, vr_inertial]
        .into_iter()
        .flatten()
        .any(|v| v.abs() > MAX_VRATE_FPM)
    {
        return None;
    }
    if let (Some(b), Some(i)) = (vr_baro, vr_inertial) {
        if (b - i).abs() > MAX_VRATE_DISAGREEMENT_FPM {
            return None;
        }
    }
    if let (Some(ias), Some(mach)) = (ias, mach) {
        if !ias_fits_mach(ias, mach, altitude_ft) {
            return None;
        }
    }

    Some(CommB {
        mag_heading_deg: heading,
        ias_kt: ias,
        mach,
        vrate_baro_fpm: vr_baro,
        vrate_inertial_fpm: vr_inertial,
        ..CommB::default()
    })
}

/// Is the indicated airspeed what the Mach number gives at this pressure
/// altitude (or, if the altitude is unknown, at some altitude in the
/// envelope)?
///
/// IAS differs from CAS only by instrument and position error, and CAS is a
/// function of Mach and static pressure alone; for a fixed Mach it falls
/// monotonically with altitude, so the envelope check is a range check.
fn ias_fits_mach(ias_kt: f64, mach: f64, altitude_ft: Option<i32>) -> bool {
    let (low_cas, high_cas) = match altitude_ft {
        Some(alt) => {
            let cas = cas_from_mach_kt(mach, isa_pressure_pa(f64::from(alt)));
            (cas, cas)
        }
        None => (
            cas_from_mach_kt(mach, isa_pressure_pa(ENVELOPE_FT.1)),
            cas_from_mach_kt(mach, isa_pressure_pa(ENVELOPE_FT.0)),
        ),
    };
    ias_kt >= low_cas - MAX_IAS_CAS_DISAGREEMENT_KT
        && ias_kt <= high_cas + MAX_IAS_CAS_DISAGREEMENT_KT
}

/// ICAO standard atmosphere (Doc 7488): sea-level pressure, Pa.
const P0_PA: f64 = 101_325.0;
/// Speed of sound at ISA sea level, kt.
const A0_KT: f64 = 661.478_8;

/// Static pressure at a pressure altitude, ICAO standard atmosphere
/// (Doc 7488): troposphere lapse 6.5 K/km to 11 km, isothermal above.
fn isa_pressure_pa(alt_ft: f64) -> f64 {
    const T0: f64 = 288.15;
    const LAPSE: f64 = 0.0065;
    const TROPOPAUSE_M: f64 = 11_000.0;
    const P11_PA: f64 = 22_632.06;
    // g0 / (R · lapse) and R · T11 / g0 for dry air.
    const EXPONENT: f64 = 5.255_88;
    const SCALE_HEIGHT_M: f64 = 6_341.62;
    let h = alt_ft * 0.3048;
    if h <= TROPOPAUSE_M {
        P0_PA * ((T0 - LAPSE * h) / T0).powf(EXPONENT)
    } else {
        P11_PA * (-(h - TROPOPAUSE_M) / SCALE_HEIGHT_M).exp()
    }
}

/// Calibrated airspeed for a subsonic Mach number at static pressure `p`:
/// the impact pressure qc = p·((1 + 0.2·M²)^3.5 − 1) read by an airspeed
/// indicator calibrated at sea level (the same isentropic relation,
/// inverted with p0 and a0).
fn cas_from_mach_kt(mach: f64, p: f64) -> f64 {
    let qc = p * ((1.0 + 0.2 * mach * mach).powf(3.5) - 1.0);
    A0_KT * (5.0 * ((qc / P0_PA + 1.0).powf(2.0 / 7.0) - 1.0)).sqrt()
}

/// Map a signed angle in (-180, 180] onto [0, 360).
fn angle_0_360(deg: f64) -> f64 {
    if deg < 0.0 {
        deg + 360.0
    } else {
        deg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Builds an MB field bit by bit, with the specs' numbering.
    #[derive(Default)]
    struct Mb(u64);

    impl Mb {
        fn put(mut self, first: u32, last: u32, value: u64) -> Self {
            let len = last - first + 1;
            assert!(
                value < (1 << len),
                "value {value} does not fit bits {first}-{last}"
            );
            self.0 |= value << (56 - last);
            self
        }
        fn set(self, n: u32) -> Self {
            self.put(n, n, 1)
        }
        /// Status bit, then a two's-complement value in sign + magnitude bits.
        fn signed(self, status: u32, last: u32, value: i64) -> Self {
            let len = last - status; // sign + magnitude
            let raw = (value as u64) & ((1 << len) - 1);
            self.set(status).put(status + 1, last, raw)
        }
        fn unsigned(self, status: u32, last: u32, value: u64) -> Self {
            self.set(status).put(status + 1, last, value)
        }
    }

    fn close(a: Option<f64>, b: f64, tol: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() <= tol + 1e-9)
    }

    #[test]
    fn all_zero_mb_is_no_register() {
        assert_eq!(decode(0, None), CommB::default());
        assert_eq!(decode(0, Some(35_000)), CommB::default());
        // Bits above the 56-bit MB are not part of it.
        assert_eq!(decode(0xFF << 56, None), CommB::default());
    }

    #[test]
    fn bds10_capability_report() {
        // Continuation flag clear, subnetwork version 5, Mode S specific
        // services, aircraft identification capability.
        let mb = Mb::default()
            .put(1, 8, 0x10)
            .put(17, 23, 5)
            .set(25)
            .set(33)
            .0;
        let c = decode(mb, None);
        assert_eq!(c.bds, Some(BDS10));
        // A reserved bit set: not 1,0 any more.
        assert_ne!(decode(Mb(mb).set(12).0, None).bds, Some(BDS10));
    }

    #[test]
    fn bds17_gicb_capability() {
        // 2,0, 4,0, 5,0 and 6,0 serviced.
        let mb = Mb::default().set(7).set(9).set(16).set(24).0;
        assert_eq!(decode(mb, None).bds, Some(BDS17));
        // Without 2,0 it is not a credible capability report.
        let no20 = Mb::default().set(9).set(16).set(24).0;
        assert!(!decode(no20, None).bds_candidates.contains(&BDS17));
        assert_ne!(decode(no20, None).bds, Some(BDS17));
    }

    fn encode_ident(s: &str) -> u64 {
        let mut mb = Mb::default().put(1, 8, 0x20);
        for (i, ch) in format!("{s:<8}").bytes().enumerate() {
            let code = match ch {
                b'A'..=b'Z' => ch - b'A' + 1,
                b' ' => 32,
                b'0'..=b'9' => ch,
                _ => panic!("not encodable: {ch}"),
            };
            let first = 9 + 6 * i as u32;
            mb = mb.put(first, first + 5, u64::from(code));
        }
        mb.0
    }

    #[test]
    fn bds20_identification() {
        let c = decode(encode_ident("AFR12Q"), None);
        assert_eq!(c.bds, Some(BDS20));
        assert_eq!(c.callsign.as_deref(), Some("AFR12Q"));
        // Eight characters, no padding.
        let c = decode(encode_ident("N12345AB"), None);
        assert_eq!(c.callsign.as_deref(), Some("N12345AB"));
        // All spaces identifies nothing.
        assert_eq!(decode(encode_ident(""), None).bds, None);
        // Code 0 is not a character.
        let bad = encode_ident("ABC") & !(0x3F << (56 - 26));
        assert_eq!(decode(bad, None).bds, None);
    }

    #[test]
    fn bds30_resolution_advisory() {
        // TTI = 1 with a threat address.
        let mb = Mb::default()
            .put(1, 8, 0x30)
            .set(9)
            .put(29, 30, 1)
            .put(31, 54, 0x4840D6)
            .0;
        assert_eq!(decode(mb, None).bds, Some(BDS30));
        // TTI = 3 is unassigned.
        let mb = Mb::default().put(1, 8, 0x30).set(9).put(29, 30, 3).0;
        assert_eq!(decode(mb, None).bds, None);
    }

    #[test]
    fn bds40_selected_vertical_intention() {
        // MCP and FMS 35,008 ft (35,000 quantised), QNH 1013.2, VNAV + approach
        // mode valid, target source = FMS (3).
        let raw_alt = 35_008 / 16;
        let mb = Mb::default()
            .unsigned(1, 13, raw_alt)
            .unsigned(14, 26, raw_alt)
            .unsigned(27, 39, 2132)
            .set(48)
            .set(49)
            .set(51)
            .unsigned(54, 56, 3)
            .0;
        let c = decode(mb, Some(20_000));
        assert_eq!(c.bds, Some(BDS40));
        assert_eq!(c.selected_alt_mcp_ft, Some(35_008));
        assert_eq!(c.selected_alt_fms_ft, Some(35_008));
        assert!(close(c.baro_setting_mb, 1013.2, 1e-6));
        assert_eq!(c.roll_deg, None);

        // MCP altitude and QNH only, FMS not available.
        let mb = Mb::default()
            .unsigned(1, 13, 5000 / 16)
            .unsigned(27, 39, 2250)
            .0;
        let c = decode(mb, None);
        assert_eq!(c.bds, Some(BDS40));
        assert_eq!(c.selected_alt_mcp_ft, Some(4992));
        assert_eq!(c.selected_alt_fms_ft, None);
        assert!(close(c.baro_setting_mb, 1025.0, 1e-6));

        // Reserved bit set, or data behind a clear status bit: not 4,0.
        let base = Mb::default()
            .unsigned(1, 13, raw_alt)
            .unsigned(27, 39, 2132);
        assert!(bds40(base.put(44, 44, 1).0).is_none());
        let base = Mb::default()
            .unsigned(1, 13, raw_alt)
            .unsigned(27, 39, 2132);
        assert!(bds40(base.put(20, 20, 1).0).is_none());
        // 62,000 ft selected is beyond any civil ceiling.
        assert!(bds40(Mb::default().unsigned(1, 13, 62_000 / 16).0).is_none());
    }

    fn encode_bds50(roll: f64, trk: f64, gs: f64, rate: f64, tas: f64) -> u64 {
        let trk = if trk >= 180.0 { trk - 360.0 } else { trk };
        Mb::default()
            .signed(1, 11, (roll / (45.0 / 256.0)).round() as i64)
            .signed(12, 23, (trk / (90.0 / 512.0)).round() as i64)
            .unsigned(24, 34, (gs / 2.0).round() as u64)
            .signed(35, 45, (rate / (8.0 / 256.0)).round() as i64)
            .unsigned(46, 56, (tas / 2.0).round() as u64)
            .0
    }

    #[test]
    fn bds50_track_and_turn() {
        // Rate-one turn to the left at 250 kt TAS needs ~25° of bank.
        let mb = encode_bds50(-25.0, 271.0, 240.0, -3.0, 250.0);
        let c = decode(mb, Some(10_000));
        assert_eq!(c.bds, Some(BDS50));
        assert!(close(c.roll_deg, -25.0, 45.0 / 256.0));
        assert!(close(c.true_track_deg, 271.0, 90.0 / 512.0));
        assert!(close(c.gs_kt, 240.0, 0.0));
        assert!(close(c.track_rate_dps, -3.0, 0.0));
        assert!(close(c.tas_kt, 250.0, 0.0));

        // Wings level but "turning" 8°/s: the bits are not a 5,0.
        assert!(bds50(encode_bds50(0.0, 90.0, 440.0, 8.0, 450.0)).is_none());
        // 400 kt of wind is not weather.
        assert!(bds50(encode_bds50(0.0, 90.0, 100.0, 0.0, 500.0)).is_none());
        // 70° of bank.
        assert!(bds50(encode_bds50(70.0, 90.0, 440.0, 1.0, 450.0)).is_none());
        // A lone valid track angle is a legal 5,0.
        let trk_only = Mb::default().signed(12, 23, -256).0;
        assert!(close(
            bds50(trk_only).and_then(|c| c.true_track_deg),
            315.0,
            0.0
        ));
    }

    fn encode_bds60(hdg: f64, ias: u64, mach: f64, baro: i64, inertial: i64) -> u64 {
        let hdg = if hdg >= 180.0 { hdg - 360.0 } else { hdg };
        Mb::default()
            .signed(1, 12, (hdg / (90.0 / 512.0)).round() as i64)
            .unsigned(13, 23, ias)
            .unsigned(24, 34, (mach / 0.004).round() as u64)
            .signed(35, 45, baro / 32)
            .signed(46, 56, inertial / 32)
            .0
    }

    #[test]
    fn bds60_heading_and_speed() {
        // 280 kt IAS is M0.78 at about FL330.
        let mb = encode_bds60(200.0, 280, 0.78, -1024, -992);
        let c = decode(mb, Some(33_000));
        assert_eq!(c.bds, Some(BDS60));
        assert!(close(c.mag_heading_deg, 200.0, 90.0 / 512.0));
        assert!(close(c.ias_kt, 280.0, 0.0));
        assert!(close(c.mach, 0.78, 1e-9));
        assert_eq!(c.vrate_baro_fpm, Some(-1024));
        assert_eq!(c.vrate_inertial_fpm, Some(-992));
        // The same report without altitude still fits the envelope.
        assert_eq!(decode(mb, None).bds, Some(BDS60));
        // ...but not at 5,000 ft, where M0.78 would be ~480 kt IAS.
        assert!(bds60(mb, Some(5_000)).is_none());
        // IAS/Mach pair no altitude can explain (M0.3 at 400 kt).
        assert!(bds60(encode_bds60(10.0, 400, 0.3, 0, 0), None).is_none());
        // Baro and inertial vertical rates 5,000 ft/min apart.
        assert!(bds60(encode_bds60(10.0, 280, 0.78, -32, 4992), None).is_none());
        // Supersonic.
        assert!(bds60(encode_bds60(10.0, 280, 1.2, 0, 0), None).is_none());
    }

    #[test]
    fn ambiguous_mb_fills_no_fields() {
        // An MCP selected altitude alone (bits 1-13) reads equally well as a
        // bank angle alone (5,0 bits 1-11) or a heading alone (6,0 bits 1-12).
        let mb = Mb::default().unsigned(1, 13, 5000 / 16).0;
        let c = decode(mb, None);
        assert_eq!(c.bds, None);
        assert_eq!(c.bds_candidates, vec![BDS40, BDS50, BDS60]);
        assert_eq!(c.selected_alt_mcp_ft, None);
        assert_eq!(c.roll_deg, None);

        // With bit 7 set it is also a plausible GICB capability report.
        let mb = Mb::default().unsigned(1, 13, 0x7C0).0;
        assert!(bit(mb, 7));
        let c = decode(mb, None);
        assert_eq!(c.bds, None);
        assert!(c.bds_candidates.contains(&BDS17));
        assert!(c.bds_candidates.contains(&BDS40));
    }

    #[test]
    fn serializes_only_present_fields() {
        let c = decode(encode_ident("KLM1017"), None);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"bds": "2,0", "callsign": "KLM1017"})
        );
    }

    proptest! {
        #[test]
        fn never_panics(mb in any::<u64>(), alt in proptest::option::of(any::<i32>())) {
            let c = decode(mb, alt);
            // Fields only with a single register, candidates only with several.
            prop_assert!(c.bds.is_none() || c.bds_candidates.is_empty());
            prop_assert!(c.bds_candidates.len() != 1);
            if c.bds.is_none() {
                let empty = CommB { bds_candidates: c.bds_candidates.clone(), ..CommB::default() };
                prop_assert_eq!(c, empty);
            }
        }
    }

    /// Known-answer vectors shared with the rest of the project.
    mod vectors {
        use super::super::*;
        use serde_json::Value;
        use std::collections::BTreeMap;

        const PATH: &str = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/testdata/modes_vectors.json"
        );

        const FLOAT_FIELDS: &[&str] = &[
            "baro_setting_mb",
            "roll_deg",
            "true_track_deg",
            "gs_kt",
            "track_rate_dps",
            "tas_kt",
            "mag_heading_deg",
            "ias_kt",
            "mach",
        ];
        const INT_FIELDS: &[&str] = &[
            "selected_alt_mcp_ft",
            "selected_alt_fms_ft",
            "vrate_baro_fpm",
            "vrate_inertial_fpm",
        ];

        fn float_field(c: &CommB, name: &str) -> Option<f64> {
            match name {
                "baro_setting_mb" => c.baro_setting_mb,
                "roll_deg" => c.roll_deg,
                "true_track_deg" => c.true_track_deg,
                "gs_kt" => c.gs_kt,
                "track_rate_dps" => c.track_rate_dps,
                "tas_kt" => c.tas_kt,
                "mag_heading_deg" => c.mag_heading_deg,
                "ias_kt" => c.ias_kt,
                "mach" => c.mach,
                _ => unreachable!("{name}"),
            }
        }

        fn int_field(c: &CommB, name: &str) -> Option<i32> {
            match name {
                "selected_alt_mcp_ft" => c.selected_alt_mcp_ft,
                "selected_alt_fms_ft" => c.selected_alt_fms_ft,
                "vrate_baro_fpm" => c.vrate_baro_fpm,
                "vrate_inertial_fpm" => c.vrate_inertial_fpm,
                _ => unreachable!("{name}"),
            }
        }

        fn names(v: &Value) -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        }

        /// Everything wrong with our decode of one vector.
        fn check(v: &Value) -> Vec<String> {
            let hex = v["hex"].as_str().expect("hex");
            let exp = &v["expected"];
            let mb = u64::from_str_radix(&hex[8..22], 16).expect("MB hex");
            let alt = exp["altitude_ft"].as_i64().map(|a| a as i32);
            let c = decode(mb, alt);
            let tol = |name: &str| v["tolerance"][name].as_f64().unwrap_or(0.0);
            let mut errs = Vec::new();

            if let Some(b) = exp["bds"].as_str() {
                if c.bds != Some(b) {
                    errs.push(format!("bds {:?}/{:?}, want {b}", c.bds, c.bds_candidates));
                }
            }
            if exp.get("bds_candidates").is_some() {
                let want = names(&exp["bds_candidates"]);
                let ok = match c.bds {
                    Some(b) => want.iter().any(|w| w == b),
                    None => {
                        !c.bds_candidates.is_empty()
                            && c.bds_candidates.iter().all(|b| want.iter().any(|w| w == b))
                    }
                };
                if !ok {
                    errs.push(format!(
                        "bds {:?}/{:?}, want one of {want:?}",
                        c.bds, c.bds_candidates
                    ));
                }
            }
            if let Some(b) = c.bds {
                if names(&exp["bds_not"]).iter().any(|n| n == b) {
                    errs.push(format!("bds {b} is excluded"));
                }
            }
            for &name in FLOAT_FIELDS {
                if let Some(want) = exp[name].as_f64() {
                    let got = float_field(&c, name);
                    // 1e-9 absorbs binary rounding of the decimal in the file.
                    if !got.is_some_and(|g| (g - want).abs() <= tol(name) + 1e-9) {
                        errs.push(format!("{name} {got:?}, want {want}"));
                    }
                }
            }
            for &name in INT_FIELDS {
                if let Some(want) = exp[name].as_i64() {
                    let got = int_field(&c, name);
                    if got.map(i64::from) != Some(want) {
                        errs.push(format!("{name} {got:?}, want {want}"));
                    }
                }
            }
            if let Some(want) = exp["callsign"].as_str() {
                if c.callsign.as_deref() != Some(want) {
                    errs.push(format!("callsign {:?}, want {want}", c.callsign));
                }
            }
            errs
        }

        fn selected(v: &Value) -> bool {
            let df = v["expected"]["df"].as_i64();
            let cat = v["category"].as_str().unwrap_or("");
            matches!(df, Some(20 | 21))
                || cat.starts_with("commb_")
                || cat.starts_with("golden_v2_df20")
                || cat.starts_with("golden_v2_df21")
        }

        #[test]
        fn known_answers() {
            let text = std::fs::read_to_string(PATH).expect("shared test vectors");
            let doc: Value = serde_json::from_str(&text).expect("vector JSON");
            let vectors = doc["vectors"].as_array().expect("vectors array");

            // category -> (passed, total)
            let mut tally: BTreeMap<String, (usize, usize)> = BTreeMap::new();
            let mut failures = Vec::new();
            for v in vectors.iter().filter(|v| selected(v)) {
                let cat = v["category"].as_str().unwrap_or("?").to_string();
                let errs = check(v);
                let entry = tally.entry(cat).or_default();
                entry.1 += 1;
                if errs.is_empty() {
                    entry.0 += 1;
                } else {
                    failures.push(format!("{} {}: {}", v["id"], v["hex"], errs.join("; ")));
                }
            }
            for (cat, (pass, total)) in &tally {
                println!("{cat}: {pass}/{total}");
            }
            let total: usize = tally.values().map(|t| t.1).sum();
            assert!(total >= 200, "expected the Comm-B vectors, found {total}");
            assert!(
                failures.is_empty(),
                "failing vectors:\n{}",
                failures.join("\n")
            );
        }
    }
}
