//! Per-aircraft state: CPR pairing and position plausibility. Pure; time is
//! whatever the caller says (sample clock or the hex input's timestamps).
//!
//! CPR (DO-260B §A.1.7): a global airborne decode needs an even and an odd
//! position at most [`PAIR_SECONDS`] apart; after that, single messages are
//! decoded locally against the aircraft's last position, or against the
//! receiver when none is known. Every new position must be reachable from
//! the last one at [`MAX_SPEED_KT`], or it is rejected (a bad pair or a
//! wrong local zone gives jumps of hundreds of km).

use std::collections::HashMap;

use crate::modes::adsb::Me;
use crate::modes::cpr::{self, CprPos};
use crate::modes::{Body, Frame, Icao};

/// Even/odd messages further apart than this are not paired (DO-260B
/// §A.1.7.7 allows 10 s airborne; surface movement is slower but the same
/// bound keeps it simple).
pub const PAIR_SECONDS: f64 = 10.0;
/// Local decoding against the last position is trusted this long.
pub const LOCAL_REF_SECONDS: f64 = 60.0;
/// Fastest plausible ground speed, with margin over any airliner.
pub const MAX_SPEED_KT: f64 = 1000.0;
/// Local decoding against the receiver is only unambiguous within 180 NM
/// (half an airborne latitude zone); we insist on a bit less.
const RECEIVER_RANGE_KM: f64 = 300.0;
/// Aircraft not heard for this long are forgotten.
pub const FORGET_SECONDS: f64 = 300.0;

/// Most aircraft tracked at once. A busy site hears a few hundred; a feed
/// of valid frames from ever new addresses (noise, or hostile) would
/// otherwise grow the table for [`FORGET_SECONDS`] at whatever rate it
/// sends. A new address past it makes room with [`make_room`], counted in
/// [`TrackStats::evicted`].
pub const MAX_TRACKED: usize = 10_000;

/// Makes room for one more entry in `map` if it holds `cap`: removes the
/// eighth with the lowest `rank` (a caller ranks by last heard, with an
/// address heard only once, which costs little to lose, ranked lowest).
/// Evicting an eighth at once keeps a hostile feed of new addresses at a
/// few map operations per frame instead of a scan of the table per frame.
/// Returns how many were removed.
pub fn make_room<K, V>(map: &mut HashMap<K, V>, cap: usize, rank: impl Fn(&V) -> f64) -> usize
where
    K: Copy + Eq + std::hash::Hash,
{
    if map.len() < cap {
        return 0;
    }
    let mut ranked: Vec<(f64, K)> = map.iter().map(|(k, v)| (rank(v), *k)).collect();
    let n = (map.len() - cap + 1).max(cap / 8).min(ranked.len());
    if n < ranked.len() {
        ranked.select_nth_unstable_by(n, |a, b| a.0.total_cmp(&b.0));
    }
    for (_, k) in &ranked[..n] {
        map.remove(k);
    }
    n
}

#[derive(Debug, Clone, Copy)]
struct CprMsg {
    pos: CprPos,
    t: f64,
    surface: bool,
}

#[derive(Debug, Clone, Default)]
struct Aircraft {
    last_seen: f64,
    /// Frames heard, saturating: an address heard once is the first to go
    /// when the table is full.
    frames: u32,
    even: Option<CprMsg>,
    odd: Option<CprMsg>,
    position: Option<(f64, f64, f64)>,
    rejected_in_a_row: u32,
}

/// Counters of the tracking stage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackStats {
    /// Positions emitted, global and local together.
    pub positions: u64,
    /// Positions from a global (even/odd pair) CPR decode.
    pub positions_global: u64,
    /// Positions from a local CPR decode against a reference.
    pub positions_local: u64,
    /// Positions that failed the speed/range plausibility check.
    pub positions_rejected: u64,
    /// Aircraft dropped, stalest first, to make room for a new address
    /// because the table held [`MAX_TRACKED`].
    pub evicted: u64,
}

/// The aircraft table.
#[derive(Debug, Default)]
pub struct Tracker {
    receiver: Option<(f64, f64)>,
    aircraft: HashMap<Icao, Aircraft>,
    last_sweep: f64,
    /// Counters since start.
    pub stats: TrackStats,
}

impl Tracker {
    /// An empty table; `receiver` (lat, lon) enables local CPR decoding of surface and single
    /// airborne positions.
    pub fn new(receiver: Option<(f64, f64)>) -> Self {
        Self {
            receiver,
            ..Self::default()
        }
    }

    /// Aircraft currently tracked.
    pub fn len(&self) -> usize {
        self.aircraft.len()
    }

    /// No aircraft tracked.
    pub fn is_empty(&self) -> bool {
        self.aircraft.is_empty()
    }

    /// Account for `frame` received at `t` seconds; returns the position this
    /// frame produced, if any.
    pub fn update(&mut self, frame: &Frame, t: f64) -> Option<(f64, f64)> {
        self.sweep(t);
        if !self.aircraft.contains_key(&frame.icao) {
            self.stats.evicted += make_room(&mut self.aircraft, MAX_TRACKED, |a| {
                a.last_seen + if a.frames > 1 { FORGET_SECONDS } else { 0.0 }
            }) as u64;
        }
        let ac = self.aircraft.entry(frame.icao).or_default();
        ac.frames = ac.frames.saturating_add(1);
        ac.last_seen = ac.last_seen.max(t);
        let (cpr, surface) = match &frame.body {
            Body::ExtendedSquitter {
                me: Me::AirbornePosition { cpr: Some(c), .. },
                ..
            } => (*c, false),
            Body::ExtendedSquitter {
                me: Me::SurfacePosition { cpr: c, .. },
                ..
            } => (*c, true),
            _ => return None,
        };
        let msg = CprMsg {
            pos: cpr,
            t,
            surface,
        };
        if cpr.odd {
            ac.odd = Some(msg);
        } else {
            ac.even = Some(msg);
        }
        let receiver = self.receiver;
        let (found, global) = decode_position(ac, msg, receiver)?;
        // Plausibility against the last accepted position.
        if let Some((plat, plon, pt)) = ac.position {
            let dt = (t - pt).abs();
            let km = cpr::distance_km((plat, plon), found);
            let reach_km = MAX_SPEED_KT * 1.852 * dt / 3600.0 + 2.0;
            if km > reach_km {
                self.stats.positions_rejected += 1;
                ac.rejected_in_a_row += 1;
                // Several globally decoded fixes in a row that disagree with
                // the old position: the old one was the bad one.
                if ac.rejected_in_a_row >= 3 && global {
                    ac.position = None;
                    ac.rejected_in_a_row = 0;
                }
                return None;
            }
        }
        ac.rejected_in_a_row = 0;
        ac.position = Some((found.0, found.1, t));
        self.stats.positions += 1;
        if global {
            self.stats.positions_global += 1;
        } else {
            self.stats.positions_local += 1;
        }
        Some(found)
    }

    fn sweep(&mut self, t: f64) {
        if t - self.last_sweep < 10.0 {
            return;
        }
        self.last_sweep = t;
        self.aircraft
            .retain(|_, a| t - a.last_seen <= FORGET_SECONDS);
    }
}

/// Returns the position and whether it came from a global (pair) decode.
fn decode_position(
    ac: &Aircraft,
    msg: CprMsg,
    receiver: Option<(f64, f64)>,
) -> Option<((f64, f64), bool)> {
    // Global: the other format, same kind, recent enough.
    let other = if msg.pos.odd { ac.even } else { ac.odd };
    if let Some(o) =
        other.filter(|o| o.surface == msg.surface && (msg.t - o.t).abs() <= PAIR_SECONDS)
    {
        let (even, odd) = if msg.pos.odd {
            (o.pos, msg.pos)
        } else {
            (msg.pos, o.pos)
        };
        let newest_odd = msg.pos.odd;
        let global = if msg.surface {
            // Surface zones are 90°: a reference picks the quadrant.
            let r = ac.position.map(|(a, b, _)| (a, b)).or(receiver);
            r.and_then(|(rl, rn)| cpr::surface_global(even, odd, newest_odd, rl, rn))
        } else {
            cpr::airborne_global(even, odd, newest_odd)
        };
        if let Some(p) = global {
            if let Some(r) = receiver {
                // A receiver can't hear past the radio horizon (~400 NM at FL450).
                if cpr::distance_km(r, p) > 800.0 {
                    return None;
                }
            }
            return Some((p, true));
        }
    }
    // Local against the aircraft's own recent position.
    if let Some((lat, lon, t)) = ac.position {
        if (msg.t - t).abs() <= LOCAL_REF_SECONDS {
            let p = if msg.surface {
                cpr::surface_local(msg.pos, lat, lon)
            } else {
                cpr::airborne_local(msg.pos, lat, lon)
            }?;
            return Some((p, false));
        }
    }
    // Local against the receiver.
    let (rl, rn) = receiver?;
    let p = if msg.surface {
        cpr::surface_local(msg.pos, rl, rn)?
    } else {
        cpr::airborne_local(msg.pos, rl, rn)?
    };
    let limit = if msg.surface {
        45.0 * 1.852
    } else {
        RECEIVER_RANGE_KM
    };
    (cpr::distance_km((rl, rn), p) <= limit).then_some((p, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modes::{self, crc};

    /// A DF11 all-call reply from `icao` (II = 0: parity is the CRC).
    fn all_call(icao: u32) -> Frame {
        let mut b = [
            0x5D,
            (icao >> 16) as u8,
            (icao >> 8) as u8,
            icao as u8,
            0,
            0,
            0,
        ];
        let p = crc::checksum(&b[..4]);
        b[4..].copy_from_slice(&[(p >> 16) as u8, (p >> 8) as u8, p as u8]);
        modes::parse(&b).unwrap()
    }

    #[test]
    fn a_full_table_evicts_the_stalest_one_shot_addresses_first() {
        let mut t = Tracker::new(None);
        // An aircraft heard twice, then a flood of new addresses each heard
        // once, all after it.
        let steady = 0xABCDEF;
        t.update(&all_call(steady), 1.0);
        t.update(&all_call(steady), 1.5);
        let flood = MAX_TRACKED as u32 + 500;
        for i in 0..flood {
            t.update(&all_call(0x10_0000 + i), 2.0 + f64::from(i) * 1e-3);
            assert!(t.len() <= MAX_TRACKED);
        }
        assert!(t.stats.evicted >= 501, "{:?}", t.stats);
        assert_eq!(t.len() as u64 + t.stats.evicted, u64::from(flood) + 1);
        assert!(t.aircraft.contains_key(&Icao(steady)));
        assert!(t.aircraft.contains_key(&Icao(0x10_0000 + flood - 1)));
        assert!(!t.aircraft.contains_key(&Icao(0x10_0000)));
        // Once the flood is forgotten, nothing more is evicted.
        let evicted = t.stats.evicted;
        t.update(&all_call(0x20_0000), 2.0 + FORGET_SECONDS + 20.0);
        assert_eq!(t.len(), 1);
        assert_eq!(t.stats.evicted, evicted);
    }

    #[test]
    fn make_room_removes_an_eighth_by_rank_and_nothing_below_the_cap() {
        let mut m: HashMap<u32, f64> = (0..80).map(|k| (k, f64::from(k))).collect();
        assert_eq!(make_room(&mut m, 81, |v| *v), 0);
        assert_eq!(make_room(&mut m, 80, |v| *v), 10);
        assert_eq!(m.len(), 70);
        assert!((0..10).all(|k| !m.contains_key(&k)));
        assert!((10..80).all(|k| m.contains_key(&k)));
        // Over the cap (a smaller cap than before) goes down to one below it.
        assert_eq!(make_room(&mut m, 8, |v| *v), 63);
        assert_eq!(m.len(), 7);
        assert!(m.contains_key(&79));
    }
}
