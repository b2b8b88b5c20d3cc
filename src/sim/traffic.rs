//! The simulated aircraft: identities, kinematics and what they transmit.
//!
//! Kinematics are deliberately simple (flat earth around each aircraft,
//! constant speed, constant-rate turns and climbs that change every minute
//! or two): the decoder only needs tracks that are plausible to its CPR
//! and speed checks, not flight dynamics.

use std::collections::HashSet;

use super::encode::{self, GroundVelocity, Interrogator, ReplyHeader};
use super::rng::Rng;
use crate::modes::Icao;

/// Range from the receiver within which aircraft are placed, NM.
pub const PLACEMENT_RANGE_NM: f64 = 150.0;
/// Aircraft that fly beyond this range are replaced by a new one.
pub const DEPARTURE_RANGE_NM: f64 = 160.0;
const MIN_ALT_FT: f64 = 1_000.0;
const MAX_ALT_FT: f64 = 41_000.0;
/// Mean replies per second to ground interrogations per aircraft, unless
/// configured: half the aircraft at 1-4/s, a quiet site's radar coverage.
pub const DEFAULT_REPLY_RATE: f64 = 1.25;

/// What an aircraft sends next, or does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// DF17 TC 11 airborne position.
    Position,
    /// DF17 TC 19 subtype 1 velocity.
    Velocity,
    /// DF17 TC 4 identification.
    Ident,
    /// DF11 acquisition squitter.
    AllCall,
    /// A reply to a ground interrogation: DF4, 5, 20 or 21.
    Interrogated,
    /// Change of turn rate or vertical profile; transmits nothing.
    Manoeuvre,
}

impl Kind {
    /// Interval to the next event of this kind. The squitter intervals are
    /// the uniformly distributed ones of Annex 10 Vol IV §3.1.2.8.5.2
    /// (acquisition: 0.8–1.2 s) and §3.1.2.8.6.4 / DO-260B §2.2.3.3.1.4
    /// (position and velocity 0.4–0.6 s, identification 4.8–5.2 s), whose
    /// jitter exists to decorrelate transponders; replies to ground
    /// interrogations follow a Poisson process.
    pub(crate) fn interval(self, rng: &mut Rng, reply_rate: f64) -> f64 {
        match self {
            Kind::Position | Kind::Velocity => rng.uniform(0.4, 0.6),
            Kind::Ident => rng.uniform(4.8, 5.2),
            Kind::AllCall => rng.uniform(0.8, 1.2),
            Kind::Interrogated => rng.exponential(1.0 / reply_rate),
            Kind::Manoeuvre => rng.exponential(90.0),
        }
    }

    /// Delay of the first event of a newly created aircraft: a random
    /// phase within one interval, so aircraft do not start in lockstep.
    pub(crate) fn first(self, rng: &mut Rng, reply_rate: f64) -> f64 {
        match self {
            Kind::Interrogated | Kind::Manoeuvre => self.interval(rng, reply_rate),
            _ => rng.f64() * self.interval(rng, reply_rate),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Aircraft {
    pub icao: Icao,
    pub callsign: String,
    /// Mode A code as an octal number.
    pub squawk: u16,
    pub category: u8,
    pub lat: f64,
    pub lon: f64,
    pub alt_ft: f64,
    pub gs_kt: f64,
    pub track_deg: f64,
    pub turn_dps: f64,
    pub vrate_fpm: f64,
    pub target_alt_ft: f64,
    pub gnss_minus_baro_ft: i32,
    pub snr_db: f64,
    pub freq_hz: f64,
    /// Replies per second to ground interrogations; 0 when no radar is
    /// talking to this one.
    pub reply_rate: f64,
    pub next_odd: bool,
    pub updated_s: f64,
}

/// Everything about the traffic a new aircraft needs to know.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spawn {
    pub receiver: (f64, f64),
    pub snr_db: (f64, f64),
    pub max_freq_offset_hz: f64,
    /// Mean replies per second to ground interrogations, over all aircraft.
    pub reply_rate: f64,
}

/// A random 24-bit address that is neither all zeros nor all ones and not
/// already in use.
pub(crate) fn new_icao(rng: &mut Rng, used: &mut HashSet<u32>) -> Icao {
    loop {
        let a = rng.next_u64() as u32 & 0xFF_FFFF;
        if a != 0 && a != 0xFF_FFFF && used.insert(a) {
            return Icao(a);
        }
    }
}

fn new_callsign(rng: &mut Rng) -> String {
    let mut s = String::with_capacity(8);
    for _ in 0..3 {
        s.push(char::from(b'A' + rng.below(26) as u8));
    }
    let digits = 1 + rng.below(4);
    s.push(char::from(b'1' + rng.below(9) as u8));
    for _ in 1..digits {
        s.push(char::from(b'0' + rng.below(10) as u8));
    }
    s
}

fn new_squawk(rng: &mut Rng) -> u16 {
    loop {
        let sq = rng.below(0o10000) as u16;
        // Emergency codes would make a demo look alarming; 0000 is not a
        // code anyone is assigned.
        if ![0, 0o7500, 0o7600, 0o7700].contains(&sq) {
            return sq;
        }
    }
}

impl Aircraft {
    pub(crate) fn new(rng: &mut Rng, icao: Icao, sp: &Spawn, t: f64) -> Self {
        let (rlat, rlon) = sp.receiver;
        // Uniform over the disc: radius ∝ sqrt(u).
        let r = PLACEMENT_RANGE_NM * rng.f64().sqrt();
        let bearing = rng.uniform(0.0, 360.0).to_radians();
        let lat = rlat + r * bearing.cos() / 60.0;
        let lon = wrap_lon(rlon + r * bearing.sin() / (60.0 * rlat.to_radians().cos()));
        let alt_ft = rng.uniform(MIN_ALT_FT, MAX_ALT_FT);
        // Faster when higher, as airliners are; ±40 kt of individuality.
        let gs_kt = (150.0
            + 330.0 * (alt_ft - MIN_ALT_FT) / (MAX_ALT_FT - MIN_ALT_FT)
            + rng.uniform(-40.0, 40.0))
        .clamp(150.0, 480.0);
        let mut a = Aircraft {
            icao,
            callsign: new_callsign(rng),
            squawk: new_squawk(rng),
            category: 1 + rng.below(5) as u8,
            lat,
            lon,
            alt_ft,
            gs_kt,
            track_deg: rng.uniform(0.0, 360.0),
            turn_dps: 0.0,
            vrate_fpm: 0.0,
            target_alt_ft: alt_ft,
            gnss_minus_baro_ft: 25 * rng.uniform(-8.0, 24.0).round() as i32,
            snr_db: rng.uniform(sp.snr_db.0, sp.snr_db.1),
            freq_hz: rng.uniform(-sp.max_freq_offset_hz, sp.max_freq_offset_hz),
            // Half the aircraft are being interrogated, at 1-4 replies/s
            // scaled so that the mean over all is `sp.reply_rate`.
            reply_rate: if rng.chance(0.5) {
                rng.uniform(1.0, 4.0) * (sp.reply_rate / DEFAULT_REPLY_RATE)
            } else {
                0.0
            },
            next_odd: rng.chance(0.5),
            updated_s: t,
        };
        a.manoeuvre(rng);
        a
    }

    /// Picks a new turn rate and, sometimes, a new cleared altitude.
    pub(crate) fn manoeuvre(&mut self, rng: &mut Rng) {
        self.turn_dps = if rng.chance(0.3) {
            rng.uniform(0.1, 0.5) * if rng.chance(0.5) { 1.0 } else { -1.0 }
        } else {
            0.0
        };
        if rng.chance(0.4) {
            self.target_alt_ft = rng.uniform(MIN_ALT_FT, MAX_ALT_FT);
            let rate = rng.uniform(500.0, 2500.0);
            self.vrate_fpm = if self.target_alt_ft > self.alt_ft {
                rate
            } else {
                -rate
            };
        }
    }

    /// Flies from the last update to `t`.
    pub(crate) fn advance(&mut self, t: f64) {
        let dt = t - self.updated_s;
        if dt <= 0.0 {
            return;
        }
        self.updated_s = t;
        // Move along the mean track of the interval: exact for the arc's
        // chord direction, and dt is under a second between updates.
        let mid = (self.track_deg + self.turn_dps * dt / 2.0).to_radians();
        self.track_deg = (self.track_deg + self.turn_dps * dt).rem_euclid(360.0);
        let d_nm = self.gs_kt * dt / 3600.0;
        self.lat += d_nm * mid.cos() / 60.0;
        self.lon = wrap_lon(self.lon + d_nm * mid.sin() / (60.0 * self.lat.to_radians().cos()));
        self.alt_ft += self.vrate_fpm * dt / 60.0;
        let reached = (self.vrate_fpm > 0.0 && self.alt_ft >= self.target_alt_ft)
            || (self.vrate_fpm < 0.0 && self.alt_ft <= self.target_alt_ft);
        if reached {
            self.alt_ft = self.target_alt_ft;
            self.vrate_fpm = 0.0;
        }
    }

    /// Distance from `(lat, lon)` in NM (equirectangular: fine at 160 NM).
    pub(crate) fn range_nm(&self, (lat, lon): (f64, f64)) -> f64 {
        let dn = (self.lat - lat) * 60.0;
        let de = wrap_lon(self.lon - lon) * 60.0 * lat.to_radians().cos();
        dn.hypot(de)
    }

    /// Encodes the frame for `kind` from the current state. `pick` is a
    /// uniform number in [0, 1) choosing among the interrogation replies.
    pub(crate) fn frame(&mut self, kind: Kind, pick: f64) -> Option<Frame> {
        let alt = self.alt_ft.round() as i32;
        let h = ReplyHeader::default();
        Some(match kind {
            Kind::Position => {
                let odd = self.next_odd;
                self.next_odd = !odd;
                Frame::Long(encode::encode_df17_position(
                    self.icao, alt, self.lat, self.lon, odd,
                ))
            }
            Kind::Velocity => {
                let trk = self.track_deg.to_radians();
                let v = GroundVelocity {
                    ew_kt: (self.gs_kt * trk.sin()).round() as i32,
                    ns_kt: (self.gs_kt * trk.cos()).round() as i32,
                    vrate_fpm: self.vrate_fpm.round() as i32,
                    vrate_baro: true,
                    gnss_minus_baro_ft: Some(self.gnss_minus_baro_ft),
                    nac_v: 1,
                    intent_change: false,
                    ifr: false,
                };
                Frame::Long(encode::encode_df17_velocity(self.icao, &v))
            }
            // Callsigns are generated from the character set, so encoding
            // cannot fail; `ok()?` keeps that an invariant, not a panic.
            Kind::Ident => Frame::Long(
                encode::encode_df17_identification(self.icao, 4, self.category, &self.callsign)
                    .ok()?,
            ),
            Kind::AllCall => Frame::Short(encode::encode_df11(self.icao, 5, Interrogator::Ii(0))),
            Kind::Interrogated => {
                let mb = || encode::mb_bds20(&self.callsign).ok();
                // Altitude requests outnumber identity requests, as with
                // Mode S radars that poll altitude every scan.
                if pick < 0.35 {
                    Frame::Short(encode::encode_df4(self.icao, &h, alt))
                } else if pick < 0.6 {
                    Frame::Short(encode::encode_df5(self.icao, &h, self.squawk))
                } else if pick < 0.85 {
                    Frame::Long(encode::encode_df20(self.icao, &h, alt, mb()?))
                } else {
                    Frame::Long(encode::encode_df21(self.icao, &h, self.squawk, mb()?))
                }
            }
            Kind::Manoeuvre => return None,
        })
    }
}

fn wrap_lon(lon: f64) -> f64 {
    (lon + 180.0).rem_euclid(360.0) - 180.0
}

/// An encoded frame, without allocating.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Frame {
    Short([u8; 7]),
    Long([u8; 14]),
}

impl Frame {
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Frame::Short(b) => b,
            Frame::Long(b) => b,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spawn() -> Spawn {
        Spawn {
            receiver: (37.5, 14.0),
            snr_db: (15.0, 30.0),
            max_freq_offset_hz: 100e3,
            reply_rate: DEFAULT_REPLY_RATE,
        }
    }

    #[test]
    fn aircraft_are_plausible() {
        let mut rng = Rng::new(3, 0);
        let mut used = HashSet::new();
        for _ in 0..2000 {
            let icao = new_icao(&mut rng, &mut used);
            let a = Aircraft::new(&mut rng, icao, &spawn(), 0.0);
            assert!(a.range_nm((37.5, 14.0)) <= PLACEMENT_RANGE_NM + 1e-6);
            assert!((1000.0..=41000.0).contains(&a.alt_ft));
            assert!((150.0..=480.0).contains(&a.gs_kt));
            assert!((15.0..30.0).contains(&a.snr_db));
            assert!(a.freq_hz.abs() <= 100e3);
            assert!(encode::callsign_bits(&a.callsign).is_ok(), "{}", a.callsign);
            assert!((4..=7).contains(&a.callsign.len()));
            assert!(a.squawk < 0o10000);
        }
        assert_eq!(used.len(), 2000);
    }

    #[test]
    fn straight_flight_covers_ground_speed() {
        let mut rng = Rng::new(4, 0);
        let mut a = Aircraft::new(&mut rng, Icao(1), &spawn(), 0.0);
        a.turn_dps = 0.0;
        a.vrate_fpm = 0.0;
        let start = (a.lat, a.lon);
        for i in 1..=600 {
            a.advance(f64::from(i) * 0.5);
        }
        let flown = a.range_nm(start);
        let expect = a.gs_kt * 300.0 / 3600.0;
        assert!(
            (flown - expect).abs() < 0.01 * expect,
            "{flown} vs {expect}"
        );
    }

    #[test]
    fn climbs_level_off_at_target() {
        let mut rng = Rng::new(5, 0);
        let mut a = Aircraft::new(&mut rng, Icao(1), &spawn(), 0.0);
        a.alt_ft = 5000.0;
        a.target_alt_ft = 6000.0;
        a.vrate_fpm = 2000.0;
        a.advance(60.0);
        assert_eq!(a.alt_ft, 6000.0);
        assert_eq!(a.vrate_fpm, 0.0);
    }
}
