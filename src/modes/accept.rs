//! Frame acceptance: CRC check, guarded error repair and address
//! confirmation — the stage that decides which demodulated bit strings are
//! real replies, and that keeps phantom aircraft out.
//!
//! Rules (each a defence against a way false frames get in):
//! - DF11 (IC=0), DF17 and DF18 with a zero residue confirm their address
//!   (Annex 10 Vol IV §3.1.2.3.3: PI = parity, 24 bits of protection).
//! - Error repair (1 bit by default, 2 opt-in) is only accepted when the
//!   repaired frame is a DF11/17/18 naming an address already confirmed by a
//!   clean frame. A repair that invents a new address is how readsb produces
//!   phantom `2124D3` on modes1. A flipped bit inside the DF field is
//!   repaired too when the frame still slices as DF11/17/18.
//! - DF0/4/5/16/20/21 carry AP = parity XOR address, so any bit string
//!   "has" an address; they are accepted only for confirmed addresses, and
//!   one that reports an altitude far from the aircraft's last report is a
//!   chance match, not a reply. Those
//!   from not-yet-confirmed addresses are held for [`HOLD_SECONDS`] and
//!   released if a DF11/17/18 confirms the address in time.
//! - DF11 with a non-zero interrogator code (IC) is 128 times likelier to be
//!   noise than IC=0, and one with a few bit errors in its last bits is
//!   indistinguishable from a reply to another interrogator. So a non-zero
//!   IC counts only once that interrogator has been heard
//!   [`TRUSTED_IC_COUNT`] times from confirmed aircraft; until then its
//!   replies are held, and released when it becomes trusted. An IC with a single bit set from an interrogator not
//!   yet trusted is read as an IC=0 squitter with one bit error (that is
//!   what such an error looks like) and repaired.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use super::crc;
use super::frame::{df_bits, df_of};

/// How long an AP reply from an unconfirmed address waits for confirmation.
pub const HOLD_SECONDS: f64 = 10.0;
/// How long an address stays confirmed after its last frame.
pub const CONFIRM_SECONDS: f64 = 60.0;
/// Bound on held frames; the oldest go first.
pub const MAX_HELD: usize = 4096;
/// Altitude disagreement tolerated between an AP reply and the aircraft's
/// last report, plus what a steep climb or descent adds over the interval.
const ALT_SLACK_FT: f64 = 1000.0;
const MAX_CLIMB_FPM: f64 = 10_000.0;

/// The barometric altitude a frame carries: AC13 of DF0/4/16/20, AC12 of a
/// DF17/18 airborne position (TC 9-18).
fn frame_altitude(b: &[u8; 14]) -> Option<i32> {
    match df_of(b[0]) {
        0 | 4 | 16 | 20 => super::fields::ac13_ft(id13(b)),
        17 | 18 if (9..=18).contains(&(b[4] >> 3)) => {
            super::fields::ac12_ft((u16::from(b[5]) << 4) | u16::from(b[6] >> 4))
        }
        _ => None,
    }
}

/// The 13-bit field after DF and the 3-bit field (bits 20-32): the
/// altitude code of DF0/4/16/20, the identity code of DF5/21.
fn id13(b: &[u8; 14]) -> u16 {
    u16::from_be_bytes([b[2], b[3]]) & 0x1FFF
}

/// DF11 replies with one IC from confirmed aircraft before that IC is trusted.
pub const TRUSTED_IC_COUNT: u32 = 3;

/// A frame that left the demodulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// The frame, in the first `len` bytes.
    pub bytes: [u8; 14],
    /// Frame length: 7 (56 bits) or 14 (112 bits).
    pub len: u8,
    /// Absolute index of the sample where the preamble starts.
    pub sample: u64,
    /// Mean magnitude of the preamble pulses (0..65535).
    pub signal: u16,
    /// Reception time on a 12 MHz clock, the Beast format's timestamp: our
    /// sample clock scaled for IQ sources, the feeder's clock passed through
    /// for a Beast source (mlat needs the receiver's own clock).
    pub timestamp: u64,
    /// Bits flipped by error repair.
    pub repaired: u8,
    /// Held until its address was confirmed, so emitted late.
    pub late: bool,
}

impl Received {
    /// The frame's `len` bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// What [`Acceptor::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Parity clean (DF11 IC=0 / DF17 / DF18): confirms the address.
    Clean,
    /// Valid for a confirmed address (AP formats, DF11 with IC≠0).
    Known,
    /// Repaired this many bits; address confirmed before.
    Repaired(u8),
    /// One bit repaired, address not confirmed, but the flipped bit was among
    /// the frame's least certain decisions: emitted, confirms nothing.
    RepairedNew,
    /// Address not (yet) confirmed: hold.
    Hold,
}

impl Verdict {
    /// Preference when several phase hypotheses decode: clean beats repaired
    /// beats held.
    pub fn rank(self) -> u8 {
        match self {
            Verdict::Clean => 5,
            Verdict::Known => 4,
            Verdict::Repaired(n) => 4 - n.min(3),
            Verdict::RepairedNew => 1,
            Verdict::Hold => 0,
        }
    }
}

/// A checked candidate: the verdict and the address it speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// How far the frame is to be trusted.
    pub verdict: Verdict,
    /// The 24-bit address the frame's parity speaks for.
    pub icao: u32,
}

/// Counters of the acceptance stage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcceptStats {
    /// Frames emitted, by downlink format (index = DF, 0-24).
    pub accepted_by_df: [u64; 25],
    /// Frames emitted after a one-bit repair.
    pub repaired_1bit: u64,
    /// Frames emitted after a two-bit repair.
    pub repaired_2bit: u64,
    /// Frames held until their address was confirmed.
    pub held: u64,
    /// Held frames released once their address was confirmed.
    pub released: u64,
    /// Held frames dropped because their address never was.
    pub expired: u64,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    frame: Received,
    icao: u32,
}

/// Hashes the 24-bit keys here (syndromes, addresses) with one multiply:
/// they are looked up for every candidate frame, and SipHash's flood
/// resistance buys nothing for tables bounded by the aircraft in range.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u32(u32::from(b));
        }
    }
    fn write_u32(&mut self, x: u32) {
        let h = (self.0 ^ u64::from(x)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // Fold the high half down: the table indexes with the low bits.
        self.0 = h ^ (h >> 29);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type KeyMap<V> = HashMap<u32, V, BuildHasherDefault<KeyHasher>>;

/// Syndrome tables: residue of an error pattern -> the bit(s) to flip.
struct Syndromes {
    one: [KeyMap<u8>; 2],
    two: [KeyMap<(u8, u8)>; 2],
    /// Syndrome of each single bit, by position.
    bit: [Vec<u32>; 2],
}

fn syndrome_of(len: usize, bits: &[usize]) -> u32 {
    let mut f = [0u8; 14];
    for &b in bits {
        f[b / 8] ^= 0x80 >> (b % 8);
    }
    crc::residue(&f[..len])
}

fn syndromes() -> &'static Syndromes {
    static S: OnceLock<Syndromes> = OnceLock::new();
    S.get_or_init(|| {
        let mut one = [KeyMap::default(), KeyMap::default()];
        let mut two = [KeyMap::default(), KeyMap::default()];
        let mut bit = [Vec::new(), Vec::new()];
        for (k, len) in [7usize, 14].into_iter().enumerate() {
            for a in 0..len * 8 {
                bit[k].push(syndrome_of(len, &[a]));
                one[k].insert(syndrome_of(len, &[a]), a as u8);
                for b in a + 1..len * 8 {
                    two[k].insert(syndrome_of(len, &[a, b]), (a as u8, b as u8));
                }
            }
        }
        Syndromes { one, two, bit }
    })
}

/// The least certain bits among which a two-bit repair is looked for when
/// the address is already confirmed.
pub const WEAK_PAIR_BITS: usize = 8;

/// A pair among the `WEAK_PAIR_BITS` least certain bits whose syndromes
/// explain `residue`. The CRC is linear, so each pair costs one XOR: 28
/// patterns, fewer than the 112 a one-bit repair already tries.
fn weak_pair(syn: &[u32], margins: &[u32], residue: u32) -> Option<(u8, u8)> {
    let weak = weakest::<WEAK_PAIR_BITS>(&margins[..margins.len().min(syn.len())]);
    for (x, &(mx, a)) in weak.iter().enumerate() {
        for &(my, b) in &weak[x + 1..] {
            if mx != u32::MAX && my != u32::MAX && syn[a] ^ syn[b] == residue {
                return Some((a as u8, b as u8));
            }
        }
    }
    None
}

/// The `N` smallest margins as (margin, bit), smallest first; slots beyond
/// the frame's bits hold `u32::MAX`.
fn weakest<const N: usize>(margins: &[u32]) -> [(u32, usize); N] {
    let mut weak = [(u32::MAX, 0); N];
    for (i, &m) in margins.iter().enumerate() {
        if m < weak[N - 1].0 {
            let mut j = N - 1;
            while j > 0 && weak[j - 1].0 > m {
                weak[j] = weak[j - 1];
                j -= 1;
            }
            weak[j] = (m, i);
        }
    }
    weak
}

/// Bits of [`Acceptor`]'s filter of confirmed addresses: 8 KiB, about
/// 0.2 % of them set by 150 aircraft.
const CONFIRMED_BITS: usize = 1 << 16;

/// Where address `icao` falls in the filter of confirmed addresses.
fn bloom_slot(icao: u32) -> usize {
    (icao.wrapping_mul(0x9E37_79B1) >> 16) as usize
}

/// Set `icao`'s bit in the filter of confirmed addresses.
fn bloom_set(bits: &mut [u64; CONFIRMED_BITS / 64], icao: u32) {
    let k = bloom_slot(icao);
    bits[k / 64] |= 1 << (k % 64);
}

/// The least certain bits of an address/parity reply among which one
/// misread bit is looked for, when its residue names no confirmed
/// aircraft (see `Acceptor::repair_ap`).
pub const AP_WEAK_BITS: usize = 4;

/// A bit is doubtful when its margin is under the frame's mean margin
/// divided by this.
const DOUBT_FRACTION: u32 = 4;

/// How many of a frame's least certain bits a repair for a new address may
/// touch.
pub const WEAK_BITS: usize = 2;

/// Whether every bit in `bits` is among the `WEAK_BITS` smallest margins.
fn is_among_weakest(margins: &[u32], bits: &[u8]) -> bool {
    bits.iter().all(|&b| {
        let Some(&mb) = margins.get(usize::from(b)) else {
            return false;
        };
        margins.iter().filter(|&&m| m < mb).count() < WEAK_BITS
    })
}

fn flip(bytes: &mut [u8; 14], bit: u8) {
    bytes[usize::from(bit / 8)] ^= 0x80 >> (bit % 8);
}

fn aa(bytes: &[u8]) -> u32 {
    (u32::from(bytes[1]) << 16) | (u32::from(bytes[2]) << 8) | u32::from(bytes[3])
}

/// The acceptance stage. Time is measured in samples so that results do not
/// depend on wall clock or on how the input was split.
pub struct Acceptor {
    fix_bits: u8,
    sample_rate: f64,
    confirmed: KeyMap<u64>,
    /// One bit per hash of the confirmed addresses (a one-hash Bloom
    /// filter), asked before `confirmed`: [`Acceptor::repair_ap`] asks
    /// about dozens of addresses per garbage candidate, nearly all of them
    /// unknown.
    maybe_confirmed: Box<[u64; CONFIRMED_BITS / 64]>,
    /// Last altitude each aircraft reported (feet, sample), to judge AP
    /// replies that claim to be from it.
    altitude: KeyMap<(i32, u64)>,
    /// Last identity code (13-bit ID field of DF5/21) of each aircraft,
    /// with its sample, to judge repaired identity replies.
    ident: KeyMap<(u16, u64)>,
    ic_seen: [u32; 128],
    held: VecDeque<Held>,
    last_sweep: u64,
    /// Counters since start.
    pub stats: AcceptStats,
}

impl Acceptor {
    /// `fix_bits`: 0, 1 (default) or 2 bits of error repair for DF11/17/18.
    pub fn new(sample_rate: u32, fix_bits: u8) -> Self {
        if fix_bits > 0 {
            let _ = syndromes();
        }
        Self {
            fix_bits: fix_bits.min(2),
            sample_rate: f64::from(sample_rate),
            confirmed: KeyMap::default(),
            maybe_confirmed: Box::new([0; CONFIRMED_BITS / 64]),
            altitude: KeyMap::default(),
            ident: KeyMap::default(),
            ic_seen: [0; 128],
            held: VecDeque::new(),
            last_sweep: 0,
            stats: AcceptStats::default(),
        }
    }

    fn samples(&self, seconds: f64) -> u64 {
        (seconds * self.sample_rate) as u64
    }

    /// Whether `icao` sent a clean frame within the confirmation window before sample `now`.
    pub fn is_confirmed(&self, icao: u32, now: u64) -> bool {
        let k = bloom_slot(icao);
        self.maybe_confirmed[k / 64] >> (k % 64) & 1 == 1
            && self
                .confirmed
                .get(&icao)
                .is_some_and(|&t| now.saturating_sub(t) <= self.samples(CONFIRM_SECONDS))
    }

    /// Judge a candidate without changing state. May repair `bytes` in place
    /// (only when the verdict is `Repaired`). `None` = not a frame.
    ///
    /// `margins` holds, per bit, how clearly it was decided (difference of
    /// the two half-bit energies); it lets a repair of a frame from a new
    /// address be judged by whether the flipped bit was a doubtful one.
    pub fn check(
        &self,
        bytes: &mut [u8; 14],
        len: usize,
        now: u64,
        margins: &[u32],
    ) -> Option<Checked> {
        let df = df_of(bytes[0]);
        let residue = crc::residue(&bytes[..len]);
        if df_bits(df) != len * 8 {
            return None;
        }
        match df {
            17 | 18 => {
                if residue == 0 {
                    return Some(Checked {
                        verdict: Verdict::Clean,
                        icao: aa(bytes),
                    });
                }
                self.repair(bytes, len, residue, now, margins)
            }
            11 => {
                let icao = aa(bytes);
                if residue == 0 {
                    return Some(Checked {
                        verdict: Verdict::Clean,
                        icao,
                    });
                }
                if residue & !0x7F == 0 {
                    let trusted = self.ic_seen[residue as usize] >= TRUSTED_IC_COUNT;
                    // A code with a single bit set is exactly what one bit
                    // error in the low PI bits of an IC=0 squitter looks like;
                    // unless that interrogator is known, read it as that.
                    if residue.count_ones() == 1 && !trusted && self.fix_bits > 0 {
                        let bit = (len * 8 - 1 - residue.trailing_zeros() as usize) as u8;
                        flip(bytes, bit);
                        let verdict = if self.is_confirmed(icao, now) {
                            Verdict::Repaired(1)
                        } else {
                            Verdict::Hold
                        };
                        return Some(Checked { verdict, icao });
                    }
                    // Other codes: real only once that interrogator has been
                    // heard repeatedly; corrupted squitters scatter over
                    // many codes, each seen once.
                    let verdict = if trusted {
                        Verdict::Known
                    } else {
                        Verdict::Hold
                    };
                    return Some(Checked { verdict, icao });
                }
                self.repair(bytes, len, residue, now, margins)
            }
            0 | 4 | 5 | 16 | 20 | 21 => {
                let confirmed = self.is_confirmed(residue, now);
                if !confirmed {
                    if let Some(c) = self.repair_ap(bytes, len, residue, now, margins) {
                        return Some(c);
                    }
                }
                let verdict = if confirmed {
                    // A garbage bit string "has" a random address; when it
                    // lands on a confirmed one, the altitude it carries is
                    // random too. A real reply agrees with what the aircraft
                    // last reported.
                    if !self.altitude_plausible(residue, bytes, now) {
                        return None;
                    }
                    Verdict::Known
                } else {
                    Verdict::Hold
                };
                Some(Checked {
                    verdict,
                    icao: residue,
                })
            }
            _ => None,
        }
    }

    fn repair(
        &self,
        bytes: &mut [u8; 14],
        len: usize,
        residue: u32,
        now: u64,
        margins: &[u32],
    ) -> Option<Checked> {
        if self.fix_bits == 0 {
            return None;
        }
        let s = syndromes();
        let k = usize::from(len == 14);
        let mut fixed = *bytes;
        let (n, weakest) = if let Some(&bit) = s.one[k].get(&residue) {
            flip(&mut fixed, bit);
            (1, is_among_weakest(margins, &[bit]))
        } else if let Some((a, b)) = self
            .is_confirmed(aa(bytes), now)
            .then(|| weak_pair(&s.bit[k], margins, residue))
            .flatten()
        {
            // Two doubtful bits (typically where an overlapping reply's
            // pulses fell): tried only when the address as read is already
            // confirmed, which spares the search on garbage.
            flip(&mut fixed, a);
            flip(&mut fixed, b);
            (2, false)
        } else if self.fix_bits >= 2 {
            let &(a, b) = s.two[k].get(&residue)?;
            flip(&mut fixed, a);
            flip(&mut fixed, b);
            (2, false)
        } else {
            return None;
        };
        let icao = aa(&fixed);
        let df = df_of(fixed[0]);
        if !matches!(df, 11 | 17 | 18) || df_bits(df) != len * 8 {
            return None;
        }
        // A repair may speak for a new address only if it flipped one of the
        // least certain bits of a DF17/18: a real single-bit error sits where
        // the decision was marginal, while a garbage frame whose residue
        // happens to match a syndrome names a random bit. That cuts the odds
        // of a phantom by WEAK_BITS/112 on top of the 112/2^24 of a syndrome
        // match. Such a frame is emitted but confirms nothing.
        let verdict = if self.is_confirmed(icao, now) {
            Verdict::Repaired(n)
        } else if weakest && df != 11 {
            Verdict::RepairedNew
        } else {
            return None;
        };
        *bytes = fixed;
        Some(Checked { verdict, icao })
    }

    /// An address/parity reply (Annex 10 Vol IV §3.1.2.3.3.2: the parity
    /// field is the CRC XOR the address) with a misread bit or two reads as
    /// a reply from an address nobody sent. The CRC is linear, so flipping
    /// bits moves the residue by their syndromes: if that lands on a
    /// confirmed aircraft, the reply may be its. Overlapping replies make
    /// such errors often, and address/parity replies are most of what a
    /// busy site's radars elicit.
    ///
    /// Only doubtful bits are flipped (under a quarter of the frame's mean
    /// margin): one among the AP_WEAK_BITS least certain, else a pair among
    /// at most WEAK_PAIR_BITS; a frame with more doubtful bits than that is
    /// not searched. A garbage candidate then lands on one of N confirmed
    /// addresses with odds of at most 32·N/2²⁴ (about 1 in 3 500 with 150
    /// aircraft), so the repaired reply must also say what that aircraft
    /// said last: the same altitude (within the slack of
    /// [`Acceptor::altitude_plausible`]; a random code does that a few
    /// times in a hundred) or the same identity code (once in 8 192). A
    /// repair two aircraft could claim is refused.
    fn repair_ap(
        &self,
        bytes: &mut [u8; 14],
        len: usize,
        residue: u32,
        now: u64,
        margins: &[u32],
    ) -> Option<Checked> {
        if self.fix_bits == 0 {
            return None;
        }
        let syn = &syndromes().bit[usize::from(len == 14)];
        let margins = &margins[..margins.len().min(len * 8)];
        // Doubtful bits: decided by under a quarter of the frame's mean
        // margin. More than a few of them and this is no reply with a bit
        // or two misread, but garbage (slicing inside another reply, or
        // noise), which is most of what gets here: not worth the search.
        let total: u32 = margins.iter().sum();
        let limit = total / (margins.len().max(1) as u32 * DOUBT_FRACTION);
        // Counted first, branch-free (it vectorizes): most candidates stop
        // here, and this runs for every address/parity candidate.
        let n = margins.iter().map(|&m| u32::from(m < limit)).sum::<u32>() as usize;
        if n > WEAK_PAIR_BITS {
            return None;
        }
        let mut weak = [(u32::MAX, 0usize); WEAK_PAIR_BITS];
        for (slot, (i, &m)) in weak.iter_mut().zip(
            margins
                .iter()
                .enumerate()
                .filter(|&(_, &m)| m < limit)
                .take(n),
        ) {
            *slot = (m, i);
        }
        let weak = &mut weak[..n];
        weak.sort_unstable();
        // One misread bit among the least certain, else two; a repair two
        // aircraft could claim is refused.
        let mut found = None;
        for &(_, a) in weak.iter().take(AP_WEAK_BITS) {
            if let Some(claim) = self.ap_claim(bytes, residue ^ syn[a], &[a], now) {
                if found.replace((claim, 1)).is_some() {
                    return None;
                }
            }
        }
        if found.is_none() {
            for (x, &(_, a)) in weak.iter().enumerate() {
                for &(_, b) in &weak[x + 1..] {
                    let icao = residue ^ syn[a] ^ syn[b];
                    if let Some(claim) = self.ap_claim(bytes, icao, &[a, b], now) {
                        if found.replace((claim, 2)).is_some() {
                            return None;
                        }
                    }
                }
            }
        }
        let ((fixed, icao), n) = found?;
        *bytes = fixed;
        Some(Checked {
            verdict: Verdict::Repaired(n),
            icao,
        })
    }

    /// `bytes` with bits `flips` flipped, if that makes it a reply from
    /// confirmed aircraft `icao` saying what it said last.
    fn ap_claim(
        &self,
        bytes: &[u8; 14],
        icao: u32,
        flips: &[usize],
        now: u64,
    ) -> Option<([u8; 14], u32)> {
        if !self.is_confirmed(icao, now) {
            return None;
        }
        let mut fixed = *bytes;
        for &bit in flips {
            flip(&mut fixed, bit as u8);
        }
        self.says_what_it_said(icao, &fixed, now)
            .then_some((fixed, icao))
    }

    /// Whether an address/parity reply carries what aircraft `icao` last
    /// reported in that field: its altitude (DF0/4/16/20) or identity code
    /// (DF5/21). Unknown counts as no.
    fn says_what_it_said(&self, icao: u32, bytes: &[u8; 14], now: u64) -> bool {
        match df_of(bytes[0]) {
            0 | 4 | 16 | 20 => {
                self.altitude.contains_key(&icao)
                    && frame_altitude(bytes).is_some()
                    && self.altitude_plausible(icao, bytes, now)
            }
            5 | 21 => self
                .ident
                .get(&icao)
                .is_some_and(|&(code, _)| code == id13(bytes)),
            _ => false,
        }
    }

    /// Record the chosen candidate and append what is now emitted to `out`:
    /// the frame itself unless held, and any held frames its confirmation
    /// releases.
    pub fn commit(&mut self, frame: Received, checked: Checked, out: &mut Vec<Received>) {
        let now = frame.sample;
        self.sweep(now);
        let df = df_of(frame.bytes[0]);
        if df == 11 {
            let ic = (crc::residue(frame.bytes()) & 0x7F) as usize;
            if ic != 0 && self.is_confirmed(checked.icao, now) {
                self.ic_seen[ic] = self.ic_seen[ic].saturating_add(1);
                if self.ic_seen[ic] == TRUSTED_IC_COUNT && checked.verdict == Verdict::Hold {
                    // This reply makes the interrogator trusted: it and the
                    // ones held before it are real.
                    self.stats.accepted_by_df[11] += 1;
                    out.push(frame);
                    self.release(
                        |h| {
                            df_of(h.frame.bytes[0]) == 11
                                && crc::residue(h.frame.bytes()) & 0x7F == ic as u32
                        },
                        now,
                        out,
                    );
                    return;
                }
            }
        }
        match checked.verdict {
            Verdict::Hold => {
                if self.held.len() >= MAX_HELD {
                    self.held.pop_front();
                    self.stats.expired += 1;
                }
                self.held.push_back(Held {
                    frame,
                    icao: checked.icao,
                });
                self.stats.held += 1;
                return;
            }
            Verdict::Repaired(n) => {
                if n == 1 {
                    self.stats.repaired_1bit += 1;
                } else {
                    self.stats.repaired_2bit += 1;
                }
            }
            Verdict::RepairedNew => self.stats.repaired_1bit += 1,
            Verdict::Clean | Verdict::Known => {}
        }
        let confirms = matches!(checked.verdict, Verdict::Clean)
            || (df == 11 && checked.verdict == Verdict::Known);
        self.stats.accepted_by_df[usize::from(df)] += 1;
        out.push(Received {
            repaired: match checked.verdict {
                Verdict::Repaired(n) => n,
                Verdict::RepairedNew => 1,
                _ => 0,
            },
            ..frame
        });
        if let Some(alt) = frame_altitude(&frame.bytes) {
            self.altitude.insert(checked.icao, (alt, now));
        }
        if matches!(df, 5 | 21) {
            self.ident.insert(checked.icao, (id13(&frame.bytes), now));
        }
        if confirms {
            let newly = !self.is_confirmed(checked.icao, now);
            self.confirmed.insert(checked.icao, now);
            bloom_set(&mut self.maybe_confirmed, checked.icao);
            if newly {
                let icao = checked.icao;
                self.release(|h| h.icao == icao, now, out);
            }
        } else if let Some(t) = self.confirmed.get_mut(&checked.icao) {
            *t = (*t).max(now);
        }
    }

    /// Emit the held frames that `which` picks (and that are recent enough).
    fn release(&mut self, which: impl Fn(&Held) -> bool, now: u64, out: &mut Vec<Received>) {
        let window = self.samples(HOLD_SECONDS);
        let stats = &mut self.stats;
        // In place: rebuilding the queue copied every held frame for each
        // newly confirmed aircraft, a million copies (5 % of the ARM1176's
        // instructions) in 30 s of a busy sky. Held frames keep their order.
        self.held.retain(|h| {
            let release = which(h) && now.saturating_sub(h.frame.sample) <= window;
            if release {
                let df = df_of(h.frame.bytes[0]);
                stats.accepted_by_df[usize::from(df)] += 1;
                stats.released += 1;
                out.push(Received {
                    late: true,
                    ..h.frame
                });
            }
            !release
        });
    }

    /// Drop held frames and confirmations that have timed out. Cheap enough
    /// to call per frame; does real work at most once a second of samples.
    fn sweep(&mut self, now: u64) {
        if now.saturating_sub(self.last_sweep) < self.samples(1.0) {
            return;
        }
        self.last_sweep = now;
        let hold = self.samples(HOLD_SECONDS);
        while let Some(h) = self.held.front() {
            if now.saturating_sub(h.frame.sample) > hold {
                self.held.pop_front();
                self.stats.expired += 1;
            } else {
                break;
            }
        }
        let keep = self.samples(CONFIRM_SECONDS);
        self.confirmed.retain(|_, t| now.saturating_sub(*t) <= keep);
        self.maybe_confirmed.fill(0);
        for &icao in self.confirmed.keys() {
            bloom_set(&mut self.maybe_confirmed, icao);
        }
        // What aircraft last said is only asked of confirmed ones: forget
        // it with them, so that neither table grows with every aircraft
        // that ever flew by.
        self.altitude
            .retain(|_, (_, t)| now.saturating_sub(*t) <= keep);
        self.ident
            .retain(|_, (_, t)| now.saturating_sub(*t) <= keep);
    }

    /// Whether the altitude in `bytes` fits the aircraft's last reported
    /// altitude: within ALT_SLACK_FT plus what MAX_CLIMB_FPM allows since
    /// then. No altitude on either side counts as plausible.
    fn altitude_plausible(&self, icao: u32, bytes: &[u8; 14], now: u64) -> bool {
        let Some(&(known, t)) = self.altitude.get(&icao) else {
            return true;
        };
        let alt = match frame_altitude(bytes) {
            Some(a) => a,
            // A non-zero code that decodes to nothing (an illegal Gillham
            // pattern) from an aircraft reporting good altitudes is noise.
            None if matches!(df_of(bytes[0]), 0 | 4 | 16 | 20) && id13(bytes) != 0 => return false,
            None => return true,
        };
        let minutes = now.saturating_sub(t) as f64 / self.sample_rate / 60.0;
        f64::from((alt - known).abs()) <= ALT_SLACK_FT + MAX_CLIMB_FPM * minutes
    }
}

/// A freshly demodulated frame, for tests.
#[cfg(test)]
fn rx(bytes: [u8; 14], len: u8, sample: u64) -> Received {
    Received {
        bytes,
        len,
        sample,
        signal: 0,
        timestamp: sample * 5,
        repaired: 0,
        late: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn df11(icao: u32, ic: u8) -> [u8; 14] {
        let mut b = [0u8; 14];
        b[0] = 0x5D;
        b[1..4].copy_from_slice(&icao.to_be_bytes()[1..]);
        let p = crc::checksum(&b[..4]) ^ u32::from(ic);
        b[4..7].copy_from_slice(&p.to_be_bytes()[1..]);
        b
    }

    fn commit(a: &mut Acceptor, mut bytes: [u8; 14], len: usize, now: u64) -> Option<Received> {
        let c = a.check(&mut bytes, len, now, &[1000; 112])?;
        let mut out = Vec::new();
        a.commit(rx(bytes, len as u8, now), c, &mut out);
        out.pop()
    }

    #[test]
    fn single_bit_ic_is_read_as_a_damaged_squitter_until_trusted() {
        let mut a = Acceptor::new(2_400_000, 1);
        assert!(commit(&mut a, df11(0x4D2023, 0), 7, 0).is_some());
        // IC=4 (one bit) from an untrusted interrogator: repaired to IC=0.
        let got = commit(&mut a, df11(0x4D2023, 4), 7, 10).unwrap();
        assert_eq!(got.bytes, df11(0x4D2023, 0));
        assert_eq!(got.repaired, 1);
        // IC=0x3C (four bits): held until heard TRUSTED_IC_COUNT times,
        // then the held ones come out with it, as sent.
        let mut out = Vec::new();
        for t in 0..u64::from(TRUSTED_IC_COUNT) {
            let mut b = df11(0x4D2023, 0x3C);
            let c = a.check(&mut b, 7, 20 + t, &[1000; 112]).unwrap();
            let frame = rx(b, 7, 20 + t);
            a.commit(frame, c, &mut out);
            let expect = if t + 1 < u64::from(TRUSTED_IC_COUNT) {
                0
            } else {
                TRUSTED_IC_COUNT as usize
            };
            assert_eq!(out.len(), expect, "after {} replies", t + 1);
        }
        assert!(out.iter().all(|r| r.bytes == df11(0x4D2023, 0x3C)));
        // Trusted from now on.
        assert_eq!(
            commit(&mut a, df11(0x4D2023, 0x3C), 7, 30).unwrap().bytes,
            df11(0x4D2023, 0x3C)
        );
        // A code heard once stays unconfirmed.
        assert!(commit(&mut a, df11(0x4D2023, 0x09), 7, 31).is_none());
    }

    #[test]
    fn ap_replies_wait_for_confirmation_and_expire() {
        let mut a = Acceptor::new(2_000_000, 1);
        // DF4 from 484FDE before any squitter: held.
        let mut df4 = [0u8; 14];
        df4[..4].copy_from_slice(&[0x20, 0x00, 0x17, 0x18]);
        let p = crc::checksum(&df4[..4]) ^ 0x484FDE;
        df4[4..7].copy_from_slice(&p.to_be_bytes()[1..]);
        assert!(commit(&mut a, df4, 7, 0).is_none());
        // A clean squitter releases it, marked late.
        let mut out = Vec::new();
        let mut sq = df11(0x484FDE, 0);
        let c = a.check(&mut sq, 7, 1000, &[1000; 112]).unwrap();
        a.commit(rx(sq, 7, 1000), c, &mut out);
        assert_eq!(out.len(), 2);
        assert!(out.iter().any(|r| r.late && r.bytes == df4));
        // A held reply older than HOLD_SECONDS is not released.
        let mut b = Acceptor::new(2_000_000, 1);
        assert!(commit(&mut b, df4, 7, 0).is_none());
        let later = (HOLD_SECONDS * 2_000_000.0) as u64 + 10;
        let mut out = Vec::new();
        let c = b.check(&mut sq, 7, later, &[1000; 112]).unwrap();
        b.commit(rx(sq, 7, later), c, &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn repair_never_invents_an_address() {
        // readsb's phantom on modes1, 8a2124d36ce0712df20a0398e37d, is the
        // CRC-clean result of a 1-bit "repair" of a corrupt frame (our slicer
        // never reads anything within 2 bits of it there; the recordings test
        // checks that 2124D3 never appears). Corrupt it by one bit, as the
        // original was, and check the guard.
        let hex = "8a2124d36ce0712df20a0398e37d";
        let mut clean = [0u8; 14];
        for (i, byte) in clean.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        assert_eq!(crc::residue(&clean), 0);
        let bit = 60u8;
        let mut corrupt = clean;
        flip(&mut corrupt, bit);
        let a = Acceptor::new(2_400_000, 1);
        // The bit the repair would flip was decided clearly: refused.
        let mut margins = [1000u32; 112];
        margins[10] = 1;
        margins[11] = 1;
        assert_eq!(a.check(&mut corrupt.clone(), 14, 0, &margins), None);
        // Only if it was among the two least certain bits is the repair
        // believed, and then it confirms nothing.
        margins[usize::from(bit)] = 0;
        let mut b = corrupt;
        let c = a.check(&mut b, 14, 0, &margins).unwrap();
        assert_eq!(c.verdict, Verdict::RepairedNew);
        assert_eq!(b, clean);
        let mut a = a;
        let mut out = Vec::new();
        a.commit(rx(b, 14, 0), c, &mut out);
        assert!(!a.is_confirmed(0x2124D3, 0));
    }
}

#[cfg(test)]
mod altitude_tests {
    use super::*;

    /// A 56-bit (DF0/4/5) or 112-bit (DF16/20/21) reply from `icao`
    /// carrying `ac13`; the long ones with some Comm-B bits set.
    fn ap_frame(df: u8, ac13: u16, icao: u32) -> [u8; 14] {
        let len = df_bits(df) / 8;
        let mut b = [0u8; 14];
        b[0] = df << 3;
        b[2..4].copy_from_slice(&ac13.to_be_bytes());
        if len == 14 {
            b[4..11].copy_from_slice(&[0x20, 0x2C, 0xC3, 0x71, 0xC3, 0x2C, 0xE0]);
        }
        let p = crc::checksum(&b[..len - 3]) ^ icao;
        b[len - 3..len].copy_from_slice(&p.to_be_bytes()[1..]);
        b
    }

    #[test]
    fn altitude_fields_are_read() {
        // DF4 vector df4-alt-36000: 20001718029FCD.
        let mut b = [0u8; 14];
        b[..7].copy_from_slice(&[0x20, 0x00, 0x17, 0x18, 0x02, 0x9F, 0xCD]);
        assert_eq!(frame_altitude(&b), Some(36000));
        // DF17 alt-39000: 8D40058B58C901375147EFD09357.
        let b: [u8; 14] = [
            0x8D, 0x40, 0x05, 0x8B, 0x58, 0xC9, 0x01, 0x37, 0x51, 0x47, 0xEF, 0xD0, 0x93, 0x57,
        ];
        assert_eq!(frame_altitude(&b), Some(39000));
    }

    #[test]
    fn a_reply_far_from_the_known_altitude_is_not_the_aircrafts() {
        let mut a = Acceptor::new(2_400_000, 1);
        // Confirm 40058B at 39000 ft with its airborne position squitter.
        let mut sq: [u8; 14] = [
            0x8D, 0x40, 0x05, 0x8B, 0x58, 0xC9, 0x01, 0x37, 0x51, 0x47, 0xEF, 0xD0, 0x93, 0x57,
        ];
        let c = a.check(&mut sq, 14, 0, &[1000; 112]).unwrap();
        let mut out = Vec::new();
        a.commit(rx(sq, 14, 0), c, &mut out);
        // DF4 at 36000 ft (AC 0x1718) a second later: 3000 ft off, rejected.
        let mut far = ap_frame(4, 0x1718, 0x40058B);
        assert_eq!(a.check(&mut far, 7, 2_400_000, &[1000; 112]), None);
        // DF4 at 39000 ft (Q=1: (39000+1000)/25 = 1600 -> AC bits) accepted.
        let n: u16 = 1600;
        let ac = ((n & 0x7F0) << 2) | ((n & 0x008) << 1) | 0x0010 | (n & 0x007);
        let mut near = ap_frame(4, ac, 0x40058B);
        assert_eq!(crate::modes::fields::ac13_ft(ac), Some(39000));
        assert_eq!(
            a.check(&mut near, 7, 2_400_000, &[1000; 112])
                .unwrap()
                .verdict,
            Verdict::Known
        );
    }

    /// 40058B confirmed at 39000 ft by its squitter at sample 0.
    fn confirmed_at_39000() -> Acceptor {
        let mut a = Acceptor::new(2_400_000, 1);
        let mut sq: [u8; 14] = [
            0x8D, 0x40, 0x05, 0x8B, 0x58, 0xC9, 0x01, 0x37, 0x51, 0x47, 0xEF, 0xD0, 0x93, 0x57,
        ];
        let c = a.check(&mut sq, 14, 0, &[1000; 112]).unwrap();
        a.commit(rx(sq, 14, 0), c, &mut Vec::new());
        a
    }

    /// Margins where `weak` bits are the least certain.
    fn doubtful(weak: &[usize]) -> [u32; 112] {
        let mut m = [1000u32; 112];
        for (k, &b) in weak.iter().enumerate() {
            m[b] = 10 + k as u32;
        }
        m
    }

    fn ac_of(ft: i32) -> u16 {
        let n = ((ft + 1000) / 25) as u16;
        ((n & 0x7F0) << 2) | ((n & 0x008) << 1) | 0x0010 | (n & 0x007)
    }

    #[test]
    fn an_ap_reply_with_a_doubtful_misread_bit_is_the_confirmed_aircrafts() {
        let a = confirmed_at_39000();
        let good = ap_frame(20, ac_of(39000), 0x40058B);
        for bits in [vec![9usize], vec![40], vec![12, 50]] {
            let mut bad = good;
            for &b in &bits {
                flip(&mut bad, b as u8);
            }
            let c = a.check(&mut bad, 14, 2_400_000, &doubtful(&bits));
            assert_eq!(
                c,
                Some(Checked {
                    verdict: Verdict::Repaired(bits.len() as u8),
                    icao: 0x40058B
                }),
                "bits {bits:?}"
            );
            assert_eq!(bad, good, "bits {bits:?}");
        }
    }

    #[test]
    fn an_ap_repair_needs_a_doubtful_bit_and_the_aircrafts_own_report() {
        let a = confirmed_at_39000();
        // The misread bit decided clearly: held as an unknown address, not
        // repaired.
        let mut bad = ap_frame(20, ac_of(39000), 0x40058B);
        flip(&mut bad, 60);
        let kept = bad;
        let c = a.check(&mut bad, 14, 2_400_000, &doubtful(&[61, 62, 63, 64, 65]));
        assert_eq!(c.map(|c| c.verdict), Some(Verdict::Hold));
        assert_eq!(bad, kept, "left as read");
        // Doubtful, but 20 000 ft from what 40058B reported: not its.
        let mut far = ap_frame(20, ac_of(19000), 0x40058B);
        flip(&mut far, 60);
        let c = a.check(&mut far, 14, 2_400_000, &doubtful(&[60]));
        assert_eq!(c.map(|c| c.verdict), Some(Verdict::Hold));
        // An identity reply from an aircraft whose identity code nobody has
        // heard yet: nothing to compare with, not repaired.
        let mut id = ap_frame(21, 0x0808, 0x40058B);
        flip(&mut id, 60);
        let c = a.check(&mut id, 14, 2_400_000, &doubtful(&[60]));
        assert_eq!(c.map(|c| c.verdict), Some(Verdict::Hold));
    }

    #[test]
    fn an_identity_reply_is_repaired_against_the_code_last_heard() {
        let mut a = confirmed_at_39000();
        let good = ap_frame(5, 0x0808, 0x40058B);
        let mut first = good;
        let c = a.check(&mut first, 7, 1_000, &[1000; 112]).unwrap();
        assert_eq!(c.verdict, Verdict::Known);
        a.commit(rx(first, 7, 1_000), c, &mut Vec::new());
        let mut bad = good;
        flip(&mut bad, 30);
        let c = a.check(&mut bad, 7, 2_400_000, &doubtful(&[30])).unwrap();
        assert_eq!(c.verdict, Verdict::Repaired(1));
        assert_eq!(bad, good);
        // Another code with the same misread bit: not the aircraft's.
        let mut other = ap_frame(5, 0x1234, 0x40058B);
        flip(&mut other, 30);
        let c = a.check(&mut other, 7, 2_400_000, &doubtful(&[30])).unwrap();
        assert_eq!(c.verdict, Verdict::Hold);
    }
}
