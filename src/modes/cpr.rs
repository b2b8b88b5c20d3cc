//! Compact Position Reporting (CPR), RTCA DO-260B §A.1.7.
//!
//! ADS-B squeezes a latitude/longitude into 2 × 17 bits by sending only the
//! position *within* a zone. Zones come in two interleaved grids, "even"
//! (4·NZ = 60 latitude zones) and "odd" (59), so that one message of each
//! grid pins down the zone (global decoding), while a single message plus a
//! nearby reference also does (local decoding).
//!
//! Airborne messages use 360° zone sets (17-bit resolution ≈ 5.1 m); surface
//! messages are encoded at 19-bit resolution and drop the two top bits, which
//! is the same as 17 bits over 90° zone sets (≈ 1.3 m), so every surface
//! decode is ambiguous modulo 90° until a reference picks the quadrant.
//!
//! Everything here is pure arithmetic and never panics, whatever the input:
//! raw values are masked to 17 bits, integer sums are done in `i64`, float →
//! integer conversions saturate, and non-finite references yield `None`.
//! Longitudes are returned in [-180, 180), latitudes in [-90, 90].

use std::sync::OnceLock;

/// Number of geographic latitude zones between the equator and a pole, NZ
/// (§A.1.7.1).
const NZ: u32 = 15;

/// Both airborne and surface messages carry 17-bit coordinates.
const MASK17: u32 = 0x1_FFFF;
const TWO_17: f64 = 131_072.0;
/// The global decoders work on exact integers; this is 2^17 and 2^16 (the
/// "+ 1/2" of the spec's floor(x + 1/2), scaled by 2^17).
const TWO_17_I: i64 = 1 << 17;
const HALF_I: i64 = 1 << 16;

/// Zone-set span for airborne encoding/decoding and for surface encoding.
const SPAN_AIRBORNE: f64 = 360.0;
/// Zone-set span for surface decoding (§A.1.7.6, §A.1.7.8).
const SPAN_SURFACE: f64 = 90.0;

/// A raw CPR position as carried in an ADS-B ME field: 17-bit lat and lon, and the format bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CprPos {
    /// Encoded latitude YZ (17 bits; upper bits are ignored).
    pub lat: u32,
    /// Encoded longitude XZ (17 bits; upper bits are ignored).
    pub lon: u32,
    /// CPR format F: `false` = even (i = 0), `true` = odd (i = 1).
    pub odd: bool,
}

impl CprPos {
    fn yz(self) -> u32 {
        self.lat & MASK17
    }
    fn xz(self) -> u32 {
        self.lon & MASK17
    }
    fn i(self) -> u32 {
        u32::from(self.odd)
    }
}

/// Transition latitudes: `table[n]` (n = 2..=59) is the latitude at which
/// NL drops from n to n − 1, i.e. the solution of the §A.1.7.2 NL equation
/// for an exact integer n. Computed once so that `nl` is a monotone step
/// function with well-defined edges, instead of trusting `floor` on a
/// transcendental expression that rounds either way near the edges.
fn transition_table() -> &'static [f64; 60] {
    static TABLE: OnceLock<[f64; 60]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [90.0; 60];
        let a = 1.0 - (std::f64::consts::PI / (2.0 * f64::from(NZ))).cos();
        for (n, slot) in t.iter_mut().enumerate().skip(3) {
            let b = 1.0 - (2.0 * std::f64::consts::PI / n as f64).cos();
            *slot = (a / b).sqrt().acos().to_degrees();
        }
        // Analytically acos(sin 3°) = 87° exactly, and §A.1.7.2 states
        // NL(±87°) = 2; pin it so rounding cannot move the last edge.
        t[2] = 87.0;
        t
    })
}

/// Transition latitude for `n` longitude zones (2..=59): NL(lat) = n at this
/// latitude and n − 1 just above it.
#[cfg(test)]
fn transition_lat(n: u32) -> Option<f64> {
    transition_table()
        .get(n as usize)
        .copied()
        .filter(|_| n >= 2)
}

/// Number of longitude zones NL(lat), DO-260B §A.1.7.2.
///
/// NL(lat) = floor(2π / acos(1 − (1 − cos(π / 2NZ)) / cos²(lat))), with
/// NL(0) = 59, NL(±87) = 2 and NL = 1 beyond ±87°. Implemented as a lookup
/// in the transition-latitude table derived from that formula: at a
/// transition latitude itself the formula gives exactly n, so that is what
/// this returns, and the encoder and decoders here agree on every edge.
/// NaN yields 1.
pub fn nl(lat: f64) -> u32 {
    let a = lat.abs();
    if a.is_nan() || a > 87.0 {
        return 1;
    }
    // table[2..=59] is strictly decreasing; count the edges we are at or below.
    let below = transition_table()[2..].partition_point(|&edge| a <= edge);
    1 + below as u32
}

/// Longitude zone size for format `i` at decoded latitude `rlat`
/// (§A.1.7.3 d / §A.1.7.5 d): one zone fewer for odd, at least one zone.
fn dlon(span: f64, rlat: f64, i: u32) -> f64 {
    let n = nl(rlat).saturating_sub(i);
    if n > 0 {
        span / f64::from(n)
    } else {
        span
    }
}

/// Bring any finite longitude into [-180, 180). `%` is exact in IEEE
/// arithmetic; the final guard catches `r + 360` rounding up to 360.
fn norm_lon(lon: f64) -> f64 {
    let r = (lon + 180.0).rem_euclid(360.0);
    let out = r - 180.0;
    if out >= 180.0 {
        -180.0
    } else {
        out
    }
}

/// §A.1.7.3 encoding with zone-set `span` and `bits` of resolution; returns
/// the 17 least significant bits of YZ and XZ.
fn encode(lat: f64, lon: f64, odd: bool, span: f64, bits: u32) -> (u32, u32) {
    let i = u32::from(odd);
    let scale = f64::from(1u32 << bits);
    let dlat = span / f64::from(4 * NZ - i);
    // Take the zone index and in-zone fraction from the same quotient so that
    // floor(lat/Dlat) and MOD(lat, Dlat)/Dlat can never disagree by a zone.
    let q = lat / dlat;
    let zone = q.floor();
    let yz = (scale * (q - zone) + 0.5).floor();
    // Rlat (the latitude the receiver will decode) chooses NL, not lat:
    // otherwise a position next to an NL edge could be encoded with a zone
    // count the decoder cannot reproduce.
    let rlat = dlat * (zone + yz / scale);
    let p = lon / dlon(span, rlat, i);
    let xz = (scale * (p - p.floor()) + 0.5).floor();
    // `as` saturates (NaN → 0); YZ/XZ may equal 2^Nb after rounding, which
    // the MOD 2^17 of §A.1.7.3 f folds back to 0.
    ((yz as u32) & MASK17, (xz as u32) & MASK17)
}

/// Encode into 17-bit airborne CPR (YZ, XZ) for the even (`odd == false`)
/// or odd format, DO-260B §A.1.7.3 with Nb = 17.
pub fn encode_airborne(lat: f64, lon: f64, odd: bool) -> (u32, u32) {
    encode(lat, lon, odd, SPAN_AIRBORNE, 17)
}

/// Encode into the 17-bit (YZ, XZ) carried by surface position messages,
/// DO-260B §A.1.7.3/§A.1.7.4: Nb = 19 over the 360° zone sets, then the two
/// top bits dropped (MOD 2^17).
pub fn encode_surface(lat: f64, lon: f64, odd: bool) -> (u32, u32) {
    encode(lat, lon, odd, SPAN_AIRBORNE, 19)
}

fn finite_ref(ref_lat: f64, ref_lon: f64) -> bool {
    ref_lat.is_finite() && ref_lon.is_finite() && ref_lat.abs() <= 90.0
}

/// Locally unambiguous decoding, §A.1.7.5 (airborne) / §A.1.7.6 (surface).
fn local(pos: CprPos, ref_lat: f64, ref_lon: f64, span: f64) -> Option<(f64, f64)> {
    if !finite_ref(ref_lat, ref_lon) {
        return None;
    }
    let i = pos.i();
    let yz = f64::from(pos.yz()) / TWO_17;
    let xz = f64::from(pos.xz()) / TWO_17;
    let dlat = span / f64::from(4 * NZ - i);
    // floor(lat_s/Dlat) + floor(1/2 + MOD(lat_s, Dlat)/Dlat − YZ/2^17)
    // folded into one floor: floor(a) + floor(b) = floor(a + b) for integer
    // a. Evaluating the two floors separately lets float error put the
    // reference on one side of a zone edge in the first term and the other
    // side in the second, which is off by a whole zone.
    let j = (ref_lat / dlat - yz + 0.5).floor();
    let rlat = dlat * (j + yz);
    if rlat.is_nan() || rlat.abs() > 90.0 {
        // Only reachable with a reference near a pole and a position that
        // would lie beyond it.
        return None;
    }
    let dl = dlon(span, rlat, i);
    let ref_lon = norm_lon(ref_lon);
    let m = (ref_lon / dl - xz + 0.5).floor();
    let rlon = dl * (m + xz);
    Some((rlat, norm_lon(rlon)))
}

/// Locally unambiguous airborne decode against a reference position.
///
/// DO-260B §A.1.7.5. The result is the only solution within half a zone of
/// the reference: half of 6° of latitude (180 NM), and at least 180 NM of
/// longitude along the parallel. If the aircraft may be farther than that
/// from `ref_lat`/`ref_lon` (last known position or receiver site), the
/// result is silently wrong by a whole zone; only the caller can know.
/// Returns `None` for a non-finite reference, |ref_lat| > 90°, or a
/// solution beyond a pole.
pub fn airborne_local(pos: CprPos, ref_lat: f64, ref_lon: f64) -> Option<(f64, f64)> {
    local(pos, ref_lat, ref_lon, SPAN_AIRBORNE)
}

/// Locally unambiguous surface decode against a reference position.
///
/// DO-260B §A.1.7.6: as [`airborne_local`] with 90° zone sets, so the
/// reference must be within half of 1.5° of latitude (45 NM) and 45 NM of
/// longitude of the true position, which is the caller's responsibility.
/// Beyond ±87° (NL = 1) a longitude zone is 90° of longitude, so half a zone
/// shrinks to 45°·cos(lat) of arc along the parallel (≈ 47 NM at 89°, under
/// 5 NM within 0.1° of a pole): there even a close reference on the far
/// side of the pole decodes to the wrong quadrant.
pub fn surface_local(pos: CprPos, ref_lat: f64, ref_lon: f64) -> Option<(f64, f64)> {
    local(pos, ref_lat, ref_lon, SPAN_SURFACE)
}

/// §A.1.7.7 b–c / §A.1.7.8 b–c: latitude zone index from the pair (exact
/// integer arithmetic) and the even and odd latitudes, each in [0, span).
fn global_lats(even: CprPos, odd: CprPos, span: f64) -> (f64, f64) {
    let yz0 = i64::from(even.yz());
    let yz1 = i64::from(odd.yz());
    let n0 = i64::from(4 * NZ);
    let n1 = n0 - 1;
    let j = (n1 * yz0 - n0 * yz1 + HALF_I).div_euclid(TWO_17_I);
    let rlat0 = span / n0 as f64 * (j.rem_euclid(n0) as f64 + yz0 as f64 / TWO_17);
    let rlat1 = span / n1 as f64 * (j.rem_euclid(n1) as f64 + yz1 as f64 / TWO_17);
    (rlat0, rlat1)
}

/// §A.1.7.7 d–f / §A.1.7.8 d–f: longitude of the newer message, in
/// [0, span), given the NL both latitudes agree on.
fn global_lon(even: CprPos, odd: CprPos, nl_lat: u32, newest_odd: bool, span: f64) -> f64 {
    let nl_lat = i64::from(nl_lat);
    let xz0 = i64::from(even.xz());
    let xz1 = i64::from(odd.xz());
    let m = (xz0 * (nl_lat - 1) - xz1 * nl_lat + HALF_I).div_euclid(TWO_17_I);
    let n = (nl_lat - i64::from(newest_odd)).max(1);
    let xz = if newest_odd { xz1 } else { xz0 };
    span / n as f64 * (m.rem_euclid(n) as f64 + xz as f64 / TWO_17)
}

/// Globally unambiguous airborne decode of an even/odd pair; returns the
/// position of the newer message (`newest_odd` says which).
///
/// DO-260B §A.1.7.7. The pair must describe nearly the same position (the
/// spec asks for the two messages to be received within 10 s); that timing
/// check is the caller's. Returns `None` when `even`/`odd` carry the wrong
/// format bit, when either latitude falls outside ±90° (a garbled pair),
/// or when the two latitudes have different NL, i.e. the aircraft crossed a
/// longitude-zone edge between the messages and no consistent longitude
/// exists.
pub fn airborne_global(even: CprPos, odd: CprPos, newest_odd: bool) -> Option<(f64, f64)> {
    if even.odd || !odd.odd {
        return None;
    }
    let (r0, r1) = global_lats(even, odd, SPAN_AIRBORNE);
    // Southern latitudes come out as 270..360.
    let south = |r: f64| if r >= 270.0 { r - 360.0 } else { r };
    let (r0, r1) = (south(r0), south(r1));
    if r0.abs() > 90.0 || r1.abs() > 90.0 {
        return None;
    }
    let nl0 = nl(r0);
    if nl0 != nl(r1) {
        return None;
    }
    let lon = global_lon(even, odd, nl0, newest_odd, SPAN_AIRBORNE);
    let lat = if newest_odd { r1 } else { r0 };
    Some((lat, norm_lon(lon)))
}

/// Globally unambiguous surface decode of an even/odd pair, position of the
/// newer message (`newest_odd`), disambiguated by a reference position.
///
/// DO-260B §A.1.7.8. The pair yields a latitude in [0°, 90°); the true one
/// is that or 90° less (or 90° more at exactly the pole), whichever is
/// nearest `ref_lat`. NL is then taken at the chosen latitude, and the
/// longitude is the one of its four 90°-apart candidates nearest `ref_lon`.
/// The reference only has to be within 45° of the truth, so the receiver
/// site is good enough (but within a few NM of a pole, where 45° of
/// longitude is a short distance, see [`surface_local`]). `None` on wrong
/// format bits, a non-finite or out-of-range reference, or an NL mismatch
/// between the pair (see [`airborne_global`]).
pub fn surface_global(
    even: CprPos,
    odd: CprPos,
    newest_odd: bool,
    ref_lat: f64,
    ref_lon: f64,
) -> Option<(f64, f64)> {
    if even.odd || !odd.odd || !finite_ref(ref_lat, ref_lon) {
        return None;
    }
    let (r0, r1) = global_lats(even, odd, SPAN_SURFACE);
    let newest = if newest_odd { r1 } else { r0 };
    // The same shift applies to both: they describe (nearly) one position.
    let shift = [-SPAN_SURFACE, 0.0, SPAN_SURFACE]
        .into_iter()
        .filter(|s| (newest + s).abs() <= 90.0)
        .min_by(|a, b| {
            let da = (newest + a - ref_lat).abs();
            let db = (newest + b - ref_lat).abs();
            da.total_cmp(&db)
        })?;
    let (r0, r1) = (r0 + shift, r1 + shift);
    let nl0 = nl(r0);
    if nl0 != nl(r1) {
        return None;
    }
    let lat = newest + shift;
    let base = global_lon(even, odd, nl0, newest_odd, SPAN_SURFACE);
    let ref_lon = norm_lon(ref_lon);
    let lon = (0..4)
        .map(|k| norm_lon(base + SPAN_SURFACE * f64::from(k)))
        .min_by(|a, b| {
            let da = norm_lon(a - ref_lon).abs();
            let db = norm_lon(b - ref_lon).abs();
            da.total_cmp(&db)
        })?;
    Some((lat, lon))
}

/// Great-circle distance in km between two (lat, lon) points in degrees:
/// haversine on a sphere of mean Earth radius 6371.0 km.
///
/// Not part of DO-260B; a spherical Earth is accurate to ~0.5 %, plenty
/// for range and speed sanity checks. NaN in, NaN out.
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    const R_KM: f64 = 6371.0;
    let (lat1, lon1) = (a.0.to_radians(), a.1.to_radians());
    let (lat2, lon2) = (b.0.to_radians(), b.1.to_radians());
    let s_lat = ((lat2 - lat1) / 2.0).sin();
    let s_lon = ((lon2 - lon1) / 2.0).sin();
    let h = s_lat * s_lat + lat1.cos() * lat2.cos() * s_lon * s_lon;
    // Rounding can push h a hair past 1 for antipodal points.
    2.0 * R_KM * h.clamp(0.0, 1.0).sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    // ---------------------------------------------------------------- NL

    #[test]
    fn nl_fixed_points() {
        assert_eq!(nl(0.0), 59);
        assert_eq!(nl(-0.0), 59);
        assert_eq!(nl(87.0), 2);
        assert_eq!(nl(-87.0), 2);
        assert_eq!(nl(87.000_000_1), 1);
        assert_eq!(nl(-87.000_000_1), 1);
        assert_eq!(nl(90.0), 1);
        assert_eq!(nl(-90.0), 1);
        assert_eq!(nl(f64::NAN), 1);
        assert_eq!(nl(f64::INFINITY), 1);
        assert_eq!(nl(1e300), 1);
    }

    /// Published DO-260B transition latitudes (8 decimals) must match the
    /// computed table.
    #[test]
    fn nl_transition_latitudes_match_spec_table() {
        for (n, lat) in [
            (59, 10.470_471_30),
            (58, 14.828_174_37),
            (57, 18.186_263_57),
            (56, 21.029_394_93),
            (3, 86.535_369_98),
            (2, 87.0),
        ] {
            let t = transition_lat(n).unwrap();
            assert!((t - lat).abs() < 1e-8, "NL {n}: computed {t}, spec {lat}");
        }
        assert_eq!(transition_lat(1), None);
        assert_eq!(transition_lat(60), None);
    }

    #[test]
    fn nl_exact_at_computed_edges() {
        for n in 2..=59u32 {
            let edge = transition_lat(n).unwrap();
            let above = f64::from_bits(edge.to_bits() + 1);
            let below = f64::from_bits(edge.to_bits() - 1);
            assert_eq!(nl(edge), n, "at edge {n}");
            assert_eq!(nl(-edge), n, "at edge -{n}");
            assert_eq!(nl(below), n, "below edge {n}");
            assert_eq!(nl(above), n - 1, "above edge {n}");
            assert_eq!(nl(-above), n - 1, "above edge -{n}");
        }
        // Two spelled out: 10.47° (59 → 58) and 56.59° (33 → 32).
        let e59 = transition_lat(59).unwrap();
        assert_eq!((nl(e59), nl(e59 + 1e-9)), (59, 58));
        let e33 = transition_lat(33).unwrap();
        assert!((e33 - 56.593_19).abs() < 1e-5, "{e33}");
        assert_eq!((nl(e33), nl(e33 + 1e-9)), (33, 32));
    }

    /// The closed formula of §A.1.7.2, straight.
    fn nl_formula(lat: f64) -> f64 {
        let a = 1.0 - (std::f64::consts::PI / 30.0).cos();
        let c = lat.to_radians().cos();
        2.0 * std::f64::consts::PI / (1.0 - a / (c * c)).acos()
    }

    proptest! {
        #[test]
        fn nl_agrees_with_closed_formula_away_from_edges(lat in -86.9f64..86.9) {
            let f = nl_formula(lat);
            prop_assume!((f - f.round()).abs() > 1e-9);
            prop_assert_eq!(nl(lat), f.floor() as u32);
        }
    }

    // ------------------------------------------------- known-answer vectors

    /// 1-indexed, inclusive bit field of a frame (Annex 10 numbering).
    fn bits(frame: &[u8], first: usize, len: usize) -> u32 {
        (first..first + len).fold(0, |acc, b| {
            let byte = frame[(b - 1) / 8];
            (acc << 1) | u32::from((byte >> (7 - (b - 1) % 8)) & 1)
        })
    }

    fn hex_bytes(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    /// ME is frame bits 33–88; TC = ME 1–5, F = ME 22, lat = ME 23–39,
    /// lon = ME 40–56.
    fn extract(hex: &str) -> (u32, CprPos) {
        let f = hex_bytes(hex);
        assert_eq!(f.len(), 14, "{hex}: not a 112-bit frame");
        let me = |b: usize, len: usize| bits(&f, 32 + b, len);
        let tc = me(1, 5);
        let pos = CprPos {
            lat: me(23, 17),
            lon: me(40, 17),
            odd: me(22, 1) == 1,
        };
        (tc, pos)
    }

    fn is_surface(tc: u32) -> bool {
        (5..=8).contains(&tc)
    }
    fn is_airborne(tc: u32) -> bool {
        (9..=18).contains(&tc) || (20..=22).contains(&tc)
    }

    fn check_position(v: &Value, got: Option<(f64, f64)>) {
        let id = v["id"].as_str().unwrap();
        let (lat, lon) = got.unwrap_or_else(|| panic!("{id}: decode returned None"));
        let exp = &v["expected"];
        for (key, val) in [("lat", lat), ("lon", lon)] {
            if let Some(r) = exp[format!("{key}_range")].as_array() {
                let (lo, hi) = (r[0].as_f64().unwrap(), r[1].as_f64().unwrap());
                assert!(
                    (lo..=hi).contains(&val),
                    "{id}: {key} {val} not in [{lo}, {hi}]"
                );
            } else {
                let want = exp[key].as_f64().unwrap();
                let tol = v["tolerance"][key].as_f64().unwrap_or(0.0);
                assert!(
                    (val - want).abs() <= tol,
                    "{id}: {key} {val}, expected {want} ± {tol}"
                );
            }
        }
    }

    fn reference(v: &Value) -> (f64, f64) {
        let r = v["reference"].as_array().expect("reference");
        (r[0].as_f64().unwrap(), r[1].as_f64().unwrap())
    }

    /// The newest even and odd positions of a pair vector, and whether the
    /// newest overall is odd.
    fn pair(v: &Value, kind: fn(u32) -> bool) -> (CprPos, CprPos, bool) {
        let id = v["id"].as_str().unwrap();
        let (mut even, mut odd, mut newest_odd) = (None, None, false);
        for m in v["messages"].as_array().unwrap() {
            let (tc, pos) = extract(m["hex"].as_str().unwrap());
            assert!(kind(tc), "{id}: unexpected TC {tc}");
            if pos.odd {
                odd = Some(pos);
            } else {
                even = Some(pos);
            }
            newest_odd = pos.odd;
        }
        let even = even.unwrap_or_else(|| panic!("{id}: no even message"));
        let odd = odd.unwrap_or_else(|| panic!("{id}: no odd message"));
        (even, odd, newest_odd)
    }

    #[test]
    fn known_answer_vectors() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/testdata/modes_vectors.json"
        );
        let text = std::fs::read_to_string(path).expect("read modes_vectors.json");
        let doc: Value = serde_json::from_str(&text).expect("parse modes_vectors.json");
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for v in doc["vectors"].as_array().unwrap() {
            let id = v["id"].as_str().unwrap();
            let cat = v["category"].as_str().unwrap();
            let exp = &v["expected"];
            match cat {
                "cpr_airborne_local" | "cpr_surface_local" => {
                    let (tc, pos) = extract(v["hex"].as_str().unwrap());
                    let (rlat, rlon) = reference(v);
                    let got = if cat == "cpr_surface_local" {
                        assert!(is_surface(tc), "{id}: TC {tc}");
                        surface_local(pos, rlat, rlon)
                    } else {
                        assert!(is_airborne(tc), "{id}: TC {tc}");
                        airborne_local(pos, rlat, rlon)
                    };
                    check_position(v, got);
                }
                "cpr_airborne_global_pair" => {
                    let (even, odd, newest_odd) = pair(v, is_airborne);
                    check_position(v, airborne_global(even, odd, newest_odd));
                }
                "cpr_surface_global_pair" => {
                    let (even, odd, newest_odd) = pair(v, is_surface);
                    let (rlat, rlon) = reference(v);
                    check_position(v, surface_global(even, odd, newest_odd, rlat, rlon));
                }
                "surface_movement" | "airborne_position_fields"
                    if exp.get("cpr_lat").is_some() || exp.get("cpr_format").is_some() =>
                {
                    let (tc, pos) = extract(v["hex"].as_str().unwrap());
                    if let Some(want) = exp["tc"].as_u64() {
                        assert_eq!(u64::from(tc), want, "{id}: TC");
                    }
                    if let Some(want) = exp["cpr_format"].as_u64() {
                        assert_eq!(u64::from(pos.odd), want, "{id}: CPR format");
                    }
                    if let Some(want) = exp["cpr_lat"].as_u64() {
                        assert_eq!(u64::from(pos.lat), want, "{id}: cpr_lat");
                    }
                    if let Some(want) = exp["cpr_lon"].as_u64() {
                        assert_eq!(u64::from(pos.lon), want, "{id}: cpr_lon");
                    }
                }
                _ => continue,
            }
            *counts.entry(cat.to_owned()).or_default() += 1;
        }
        // Guard against the file changing shape and the loop silently
        // testing nothing.
        for cat in [
            "cpr_airborne_local",
            "cpr_surface_local",
            "cpr_airborne_global_pair",
            "cpr_surface_global_pair",
            "surface_movement",
            "airborne_position_fields",
        ] {
            assert!(
                counts.get(cat).copied().unwrap_or(0) > 0,
                "no {cat} vectors"
            );
        }
    }

    /// "The 1090 MHz Riddle" worked example (mode-s.org, airborne position):
    /// even 8D40621D58C382D690C8AC2863A7 (newer) + odd
    /// 8D40621D58C386435CC412692AD6 → 52.2572°, 3.91937°, and its
    /// intermediate j = 6, NL = 36.
    #[test]
    fn riddle_worked_example() {
        let (_, even) = extract("8D40621D58C382D690C8AC2863A7");
        let (_, odd) = extract("8D40621D58C386435CC412692AD6");
        assert_eq!((even.lat, even.lon, even.odd), (93000, 51372, false));
        assert_eq!((odd.lat, odd.lon, odd.odd), (74158, 50194, true));
        let (r0, r1) = global_lats(even, odd, 360.0);
        assert_eq!((nl(r0), nl(r1)), (36, 36));
        let (lat, lon) = airborne_global(even, odd, false).unwrap();
        assert!((lat - 52.2572).abs() < 1e-4, "{lat}");
        assert!((lon - 3.91937).abs() < 1e-5, "{lon}");
        // Swapping roles is rejected rather than decoded as garbage.
        assert_eq!(airborne_global(odd, even, false), None);
    }

    // ------------------------------------------------------ round trips

    /// One CPR step in each axis, degrees, at decoded latitude `rlat`.
    fn steps(span: f64, rlat: f64, odd: bool) -> (f64, f64) {
        let i = u32::from(odd);
        (
            span / f64::from(60 - i) / TWO_17,
            dlon(span, rlat, i) / TWO_17,
        )
    }

    /// Decoded position is the true one quantised to the nearest CPR step.
    fn assert_within_half_step(
        truth: (f64, f64),
        got: (f64, f64),
        span: f64,
        odd: bool,
    ) -> Result<(), TestCaseError> {
        let (slat, slon) = steps(span, got.0, odd);
        let dlat = (got.0 - truth.0).abs();
        let dlon = norm_lon(got.1 - truth.1).abs();
        prop_assert!(
            dlat <= slat / 2.0 + 1e-9,
            "lat {truth:?} → {got:?}: {dlat} > {}",
            slat / 2.0
        );
        // Longitude is meaningless at the poles themselves.
        if truth.0.abs() < 90.0 - 1e-6 {
            prop_assert!(
                dlon <= slon / 2.0 + 1e-9,
                "lon {truth:?} → {got:?}: {dlon} > {}",
                slon / 2.0
            );
        }
        prop_assert!((-90.0..=90.0).contains(&got.0));
        prop_assert!((-180.0..180.0).contains(&got.1));
        Ok(())
    }

    /// A point `dist_nm` from `from` on initial `bearing_deg` (sphere).
    fn offset(from: (f64, f64), bearing_deg: f64, dist_nm: f64) -> (f64, f64) {
        let d = dist_nm * 1.852 / 6371.0;
        let (lat1, lon1) = (from.0.to_radians(), from.1.to_radians());
        let brg = bearing_deg.to_radians();
        let lat2 = (lat1.sin() * d.cos() + lat1.cos() * d.sin() * brg.cos()).asin();
        let lon2 =
            lon1 + (brg.sin() * d.sin() * lat1.cos()).atan2(d.cos() - lat1.sin() * lat2.sin());
        (lat2.to_degrees(), norm_lon(lon2.to_degrees()))
    }

    /// A global decode may refuse only when the pair's even and odd
    /// latitudes fall on different sides of an NL edge, i.e. the true
    /// latitude is within one CPR step of an edge.
    fn near_nl_edge(lat: f64) -> bool {
        nl(lat - 1e-4) != nl(lat + 1e-4)
    }

    fn surface_near_nl_edge(lat: f64) -> bool {
        nl(lat - 3e-5) != nl(lat + 3e-5)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn airborne_global_round_trip(
            lat in -90.0f64..=90.0,
            lon in -180.0f64..180.0,
            newest_odd: bool,
        ) {
            let (y0, x0) = encode_airborne(lat, lon, false);
            let (y1, x1) = encode_airborne(lat, lon, true);
            let even = CprPos { lat: y0, lon: x0, odd: false };
            let odd = CprPos { lat: y1, lon: x1, odd: true };
            match airborne_global(even, odd, newest_odd) {
                Some(got) => assert_within_half_step((lat, lon), got, 360.0, newest_odd)?,
                None => prop_assert!(near_nl_edge(lat), "None at {lat}, {lon}"),
            }
        }

        #[test]
        fn airborne_local_round_trip(
            lat in -90.0f64..=90.0,
            lon in -180.0f64..180.0,
            odd: bool,
            bearing in 0.0f64..360.0,
            dist_nm in 0.0f64..=100.0,
        ) {
            let (y, x) = encode_airborne(lat, lon, odd);
            let r = offset((lat, lon), bearing, dist_nm);
            let got = airborne_local(CprPos { lat: y, lon: x, odd }, r.0, r.1);
            let got = got.ok_or_else(|| TestCaseError::fail(format!("None, ref {r:?}")))?;
            assert_within_half_step((lat, lon), got, 360.0, odd)?;
        }

        #[test]
        fn surface_global_round_trip(
            // Within 1° of a pole a 20 NM reference can sit in another 90° quadrant
            // (see `surface_local`).
            lat in -89.0f64..=89.0,
            lon in -180.0f64..180.0,
            newest_odd: bool,
            bearing in 0.0f64..360.0,
            dist_nm in 0.0f64..=20.0,
        ) {
            let (y0, x0) = encode_surface(lat, lon, false);
            let (y1, x1) = encode_surface(lat, lon, true);
            let even = CprPos { lat: y0, lon: x0, odd: false };
            let odd = CprPos { lat: y1, lon: x1, odd: true };
            let r = offset((lat, lon), bearing, dist_nm);
            match surface_global(even, odd, newest_odd, r.0, r.1) {
                Some(got) => assert_within_half_step((lat, lon), got, 90.0, newest_odd)?,
                None => prop_assert!(surface_near_nl_edge(lat), "None at {lat}, {lon}"),
            }
        }

        #[test]
        fn surface_local_round_trip(
            lat in -89.0f64..=89.0,
            lon in -180.0f64..180.0,
            odd: bool,
            bearing in 0.0f64..360.0,
            dist_nm in 0.0f64..=20.0,
        ) {
            let (y, x) = encode_surface(lat, lon, odd);
            let r = offset((lat, lon), bearing, dist_nm);
            let got = surface_local(CprPos { lat: y, lon: x, odd }, r.0, r.1);
            let got = got.ok_or_else(|| TestCaseError::fail(format!("None, ref {r:?}")))?;
            assert_within_half_step((lat, lon), got, 90.0, odd)?;
        }

        /// Near and at the poles the quadrant needs a reference on the same
        /// meridian; with one, 89°..=90° (including the ±90 edge case where
        /// the pair's latitude comes out as 0 and must be shifted by +90°)
        /// round-trips.
        #[test]
        fn surface_near_poles_with_exact_reference(
            lat in prop_oneof![89.0f64..=90.0, Just(90.0)],
            south: bool,
            lon in -180.0f64..180.0,
            newest_odd: bool,
        ) {
            let lat = if south { -lat } else { lat };
            let (y0, x0) = encode_surface(lat, lon, false);
            let (y1, x1) = encode_surface(lat, lon, true);
            let even = CprPos { lat: y0, lon: x0, odd: false };
            let odd = CprPos { lat: y1, lon: x1, odd: true };
            match surface_global(even, odd, newest_odd, lat, lon) {
                Some(got) => assert_within_half_step((lat, lon), got, 90.0, newest_odd)?,
                None => prop_assert!(surface_near_nl_edge(lat), "None at {lat}, {lon}"),
            }
            let newest = if newest_odd { odd } else { even };
            let got = surface_local(newest, lat, lon);
            let got = got.ok_or_else(|| TestCaseError::fail("local None".to_owned()))?;
            assert_within_half_step((lat, lon), got, 90.0, newest_odd)?;
        }

        #[test]
        fn never_panics_and_stays_in_range(
            a: u32, b: u32, c: u32, d: u32, fa: bool, fb: bool, newest_odd: bool,
            rlat in proptest::num::f64::ANY,
            rlon in proptest::num::f64::ANY,
            slat in -90.0f64..=90.0,
            slon in proptest::num::f64::ANY,
        ) {
            let p = CprPos { lat: a, lon: b, odd: fa };
            let q = CprPos { lat: c, lon: d, odd: fb };
            let pm = CprPos { lat: a & MASK17, lon: b & MASK17, odd: fa };
            let qm = CprPos { lat: c & MASK17, lon: d & MASK17, odd: fb };
            // The same raw values with the format bits a real pair would have.
            let (pe, qo) = (CprPos { odd: false, ..p }, CprPos { odd: true, ..q });
            let (pme, qmo) = (CprPos { odd: false, ..pm }, CprPos { odd: true, ..qm });
            let in_range = |r: Option<(f64, f64)>| match r {
                None => true,
                Some((la, lo)) => (-90.0..=90.0).contains(&la) && (-180.0..180.0).contains(&lo),
            };
            for (ra, ro) in [(rlat, rlon), (slat, slon), (slat, rlon)] {
                let al = airborne_local(p, ra, ro);
                prop_assert!(in_range(al));
                prop_assert_eq!(al, airborne_local(pm, ra, ro));
                let sl = surface_local(p, ra, ro);
                prop_assert!(in_range(sl));
                prop_assert_eq!(sl, surface_local(pm, ra, ro));
                prop_assert!(in_range(surface_global(p, q, newest_odd, ra, ro)));
                let sg = surface_global(pe, qo, newest_odd, ra, ro);
                prop_assert!(in_range(sg));
                prop_assert_eq!(sg, surface_global(pme, qmo, newest_odd, ra, ro));
                if !(ra.is_finite() && ro.is_finite()) {
                    prop_assert_eq!(al, None);
                    prop_assert_eq!(sl, None);
                    prop_assert_eq!(sg, None);
                }
            }
            prop_assert!(in_range(airborne_global(p, q, newest_odd)));
            let g = airborne_global(pe, qo, newest_odd);
            prop_assert!(in_range(g));
            prop_assert_eq!(g, airborne_global(pme, qmo, newest_odd));
            let (y, x) = encode_airborne(rlat, rlon, fa);
            prop_assert!(y <= MASK17 && x <= MASK17);
            let (y, x) = encode_surface(rlat, rlon, fa);
            prop_assert!(y <= MASK17 && x <= MASK17);
            let _ = nl(rlat);
            let _ = distance_km((rlat, rlon), (slat, slon));
        }
    }

    // ------------------------------------------------------ distance

    #[test]
    fn distance_known_values() {
        assert_eq!(distance_km((52.0, 4.0), (52.0, 4.0)), 0.0);
        // One degree of a great circle on a 6371 km sphere.
        let one_deg = 6371.0 * std::f64::consts::PI / 180.0;
        assert!((distance_km((0.0, 0.0), (1.0, 0.0)) - one_deg).abs() < 1e-9);
        assert!((distance_km((0.0, 179.5), (0.0, -179.5)) - one_deg).abs() < 1e-9);
        let half = distance_km((0.0, 0.0), (0.0, 180.0));
        assert!((half - 6371.0 * std::f64::consts::PI).abs() < 1e-6);
        assert!(distance_km((f64::NAN, 0.0), (0.0, 0.0)).is_nan());
    }

    #[test]
    fn references_are_validated() {
        let p = CprPos {
            lat: 93000,
            lon: 51372,
            odd: false,
        };
        assert_eq!(airborne_local(p, f64::NAN, 3.9), None);
        assert_eq!(airborne_local(p, 52.2, f64::INFINITY), None);
        assert_eq!(airborne_local(p, 91.0, 3.9), None);
        assert_eq!(surface_local(p, 52.2, f64::NAN), None);
        // Any finite reference longitude works, wrapped or not.
        let a = airborne_local(p, 52.258, 3.918).unwrap();
        let b = airborne_local(p, 52.258, 3.918 + 720.0).unwrap();
        assert!((a.0 - b.0).abs() < 1e-9 && (a.1 - b.1).abs() < 1e-9);
    }
}
