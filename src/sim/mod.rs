//! Mode S signal synthesizer: the demo source, and the backbone of the
//! demodulator's sensitivity tests.
//!
//! [`Simulator`] streams RTL-SDR-like IQ samples of a configurable crowd of
//! aircraft, together with the truth: every frame it put on the air, when,
//! and how strong. Memory use is constant however long it runs (the daemon
//! uses it as an endless demo source with `duration_s = f64::INFINITY`):
//! transmissions are generated just in time from a queue holding the next
//! event of each aircraft, and samples are made a block at a time.
//!
//! # Signal model
//!
//! Each reply is the Annex 10 Vol IV §3.1.2.2 pulse train (see
//! [`signal`]) starting at a continuous, not sample-aligned, time, on a
//! carrier offset by the aircraft's frequency error with a random phase per
//! reply. Replies add as complex signals, so overlapping replies interfere
//! as they do in the air. Complex white Gaussian noise is added and the
//! result quantised to [`SampleFormat::Cu8`] or [`SampleFormat::Cs16`],
//! interleaved I then Q.
//!
//! # SNR
//!
//! `snr_db = 10·log10(A² / N)`, where
//! - `A` is the amplitude of the reply's pulses: the flat top that a pulse
//!   long enough for the receiver filter to settle reaches (a merged 1 µs
//!   pulse gets within 0.1 % of it). An isolated 0.5 µs pulse, rounded by
//!   the filter, peaks lower: by 0.75 dB at 2.0 MS/s and 0.34 dB at
//!   2.4 MS/s (measured by `signal::tests::isolated_pulse_peak_loss`).
//! - `N = E|n|²` is the total power of the complex noise per sample, i.e.
//!   the noise in the whole sampled bandwidth (the sample rate, which is
//!   also the noise bandwidth of the receiver filter, see [`signal`]):
//!   [`NOISE_POWER_LSB2`] = 25 LSB², 3.5 LSB rms on each of I and Q, about
//!   what an RTL-SDR at moderate gain shows. So 20 dB means a pulse
//!   amplitude of 50 LSB, and Cu8 output starts clipping above about
//!   28 dB (A > 127.5 LSB), as a strong nearby aircraft does on a real
//!   dongle.
//!
//! In words: pulse power over complex noise power in the sampled
//! bandwidth. In Cs16 output everything is scaled by [`CS16_PER_LSB`].

pub mod encode;
pub mod recall;
pub(crate) mod rng;
pub mod signal;
mod traffic;

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::fmt;
use std::io::{self, BufWriter, Write};

use crate::iq::SampleFormat;
use rng::Rng;
pub use signal::{Cf32, PulseShaper, Reply, CS16_PER_LSB};
use traffic::{Aircraft, Frame, Kind, Spawn, DEPARTURE_RANGE_NM};

/// Complex noise power per sample, in Cu8 LSB² (see the module docs).
pub const NOISE_POWER_LSB2: f64 = 25.0;

/// Samples made per internal step: bounds the scratch buffer whatever size
/// of output buffer the caller hands to [`Simulator::fill`].
const BLOCK: usize = 16_384;

/// Longest reply on the air: 8 µs preamble + 112 µs data.
const MAX_AIR_US: f64 = 120.0;

/// Random streams, so that the noise does not change when the traffic
/// model draws one more number and vice versa.
const STREAM_TRAFFIC: u64 = 1;
const STREAM_NOISE: u64 = 2;

/// What to simulate.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Number of aircraft in the air at any time. One that flies out of
    /// range is replaced by a new one with a new address.
    pub aircraft: usize,
    /// Length of the run in seconds; `f64::INFINITY` runs forever.
    pub duration_s: f64,
    /// Samples per second, e.g. 2 000 000 or 2 400 000.
    pub sample_rate: u32,
    /// Output sample format.
    pub format: SampleFormat,
    /// Each aircraft's SNR (as defined in the module docs) is drawn
    /// uniformly from `low..high` dB.
    pub snr_db: (f64, f64),
    /// Seed of every random choice: the same config gives the same bytes.
    pub seed: u64,
    /// Probability, per reply, that another aircraft's reply is made to
    /// start 5–100 µs into it (within its duration), 2–10 dB weaker. Needs
    /// at least two aircraft. The extra replies come on top of the normal
    /// rates.
    pub overlap: f64,
    /// Receiver latitude and longitude, degrees. Aircraft are placed within
    /// 150 NM of it.
    pub receiver: (f64, f64),
    /// Each aircraft's carrier offset is drawn uniformly from ±this, Hz
    /// (transponders may be off 1090 MHz by up to 1 MHz, Annex 10 Vol IV
    /// §3.1.2.2.1; the RTL-SDR's crystal adds its own).
    pub max_freq_offset_hz: f64,
    /// Mean replies per second, per aircraft, to ground interrogations
    /// (DF4/5/20/21), on top of the squitters' ~6.2/s. Half the aircraft
    /// reply, at 0.8–3.2 × this; a busy site's sky of 150 aircraft makes
    /// ~2 500 replies/s with about 10.
    pub reply_rate: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            aircraft: 10,
            duration_s: 10.0,
            sample_rate: 2_400_000,
            format: SampleFormat::Cu8,
            snr_db: (15.0, 30.0),
            seed: 1,
            overlap: 0.0,
            receiver: (37.5, 14.0),
            max_freq_offset_hz: 100e3,
            reply_rate: traffic::DEFAULT_REPLY_RATE,
        }
    }
}

/// A configuration the simulator cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SimConfigError {
    /// The sample rate is below 1 MS/s.
    #[error("sample_rate must be at least 1 MS/s to carry 0.5 µs pulses, got {0}")]
    SampleRate(u32),
    /// The duration is negative or not a number.
    #[error("duration_s must be a non-negative number of seconds or infinity, got {0}")]
    Duration(f64),
    /// The SNR range is not finite or is inverted.
    #[error("snr_db must be a finite range low <= high, got {0:?}")]
    Snr((f64, f64)),
    /// The overlap fraction is outside 0..=1.
    #[error("overlap must be within 0..=1, got {0}")]
    Overlap(f64),
    /// The receiver position is off the supported globe.
    #[error("receiver must be a latitude within ±80° and a longitude within ±180°, got {0:?}")]
    Receiver((f64, f64)),
    /// The frequency offset is negative or too large for the sample rate.
    #[error("max_freq_offset_hz must be within 0 and a quarter of the sample rate, got {0}")]
    FreqOffset(f64),
    /// Too many aircraft.
    #[error("aircraft must be at most 1 000 000, got {0}")]
    Aircraft(usize),
    /// The reply rate is negative, not a number or beyond what a
    /// transponder can sustain.
    #[error("reply_rate must be within 0 and 100 replies per second, got {0}")]
    ReplyRate(f64),
}

impl SimConfigError {
    /// The option of `run` or `simulate` that holds the bad value: the
    /// receiver's position is `lat`/`lon` there.
    pub fn field(&self) -> &'static str {
        match self {
            SimConfigError::SampleRate(_) => "sample_rate",
            SimConfigError::Duration(_) => "duration",
            SimConfigError::Snr(_) => "snr",
            SimConfigError::Overlap(_) => "overlap",
            SimConfigError::Receiver((lat, _)) if !(-80.0..=80.0).contains(lat) => "lat",
            SimConfigError::Receiver(_) => "lon",
            SimConfigError::FreqOffset(_) => "max_freq_offset_hz",
            SimConfigError::Aircraft(_) => "aircraft",
            SimConfigError::ReplyRate(_) => "reply_rate",
        }
    }
}

impl SimConfig {
    /// Checks every field; [`Simulator::try_new`] calls this.
    pub fn validate(&self) -> Result<(), SimConfigError> {
        if self.sample_rate < 1_000_000 {
            return Err(SimConfigError::SampleRate(self.sample_rate));
        }
        if self.duration_s.is_nan() || self.duration_s < 0.0 {
            return Err(SimConfigError::Duration(self.duration_s));
        }
        let (lo, hi) = self.snr_db;
        if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
            return Err(SimConfigError::Snr(self.snr_db));
        }
        if !(0.0..=1.0).contains(&self.overlap) {
            return Err(SimConfigError::Overlap(self.overlap));
        }
        let (lat, lon) = self.receiver;
        if !((-80.0..=80.0).contains(&lat) && (-180.0..=180.0).contains(&lon)) {
            return Err(SimConfigError::Receiver(self.receiver));
        }
        if !(0.0..=f64::from(self.sample_rate) / 4.0).contains(&self.max_freq_offset_hz) {
            return Err(SimConfigError::FreqOffset(self.max_freq_offset_hz));
        }
        if self.aircraft > 1_000_000 {
            return Err(SimConfigError::Aircraft(self.aircraft));
        }
        if !(0.0..=100.0).contains(&self.reply_rate) {
            return Err(SimConfigError::ReplyRate(self.reply_rate));
        }
        Ok(())
    }

    /// Samples in the whole run, `None` when it runs forever.
    pub fn total_samples(&self) -> Option<u64> {
        self.duration_s
            .is_finite()
            .then(|| (self.duration_s * f64::from(self.sample_rate)).round() as u64)
    }
}

/// One frame the simulator transmitted.
#[derive(Clone, Debug, PartialEq)]
pub struct TruthFrame {
    /// Index of the sample nearest the centre of the first preamble pulse,
    /// i.e. `round((time_s + 0.25 µs) · sample_rate)`.
    pub sample: u64,
    /// Time of the leading edge (50 % point) of the first preamble pulse,
    /// seconds from the first sample.
    pub time_s: f64,
    /// The frame, 7 or 14 bytes, parity included.
    pub bytes: Vec<u8>,
    /// SNR of this reply, dB (module docs): its aircraft's, or for a
    /// deliberately overlapping reply 2–10 dB below the one it overlaps.
    pub snr_db: f64,
    /// Its time on the air (preamble to last bit) intersects another
    /// reply's, whether made so deliberately ([`SimConfig::overlap`]) or
    /// by chance.
    pub overlapped: bool,
}

impl TruthFrame {
    /// Downlink format: the first 5 bits.
    pub fn df(&self) -> u8 {
        self.bytes[0] >> 3
    }
}

/// The truth-file line: `<sample> <time_s> <HEX> <snr_db>[ overlap]`.
impl fmt::Display for TruthFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:.7} {} {:.1}",
            self.sample,
            self.time_s,
            crate::modes::Hex(&self.bytes),
            self.snr_db
        )?;
        if self.overlapped {
            f.write_str(" overlap")?;
        }
        Ok(())
    }
}

/// Counts of what was transmitted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Complex samples written.
    pub samples: u64,
    /// Frames reported in the truth.
    pub frames: u64,
    /// Of which overlapped another.
    pub overlapped: u64,
    /// Frames by downlink format (index = DF).
    pub by_df: [u64; 32],
}

/// A scheduled event; ordered by time, then by creation so that ties (which
/// only a contrived config produces) still resolve the same way every run.
#[derive(Clone, Copy, Debug)]
struct Event {
    t: f64,
    seq: u64,
    slot: usize,
    generation: u64,
    kind: Kind,
    /// Set for a deliberately overlapping reply: its SNR, dB.
    forced_snr: Option<f64>,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    // Reversed: BinaryHeap is a max-heap and we want the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.t.total_cmp(&self.t).then(other.seq.cmp(&self.seq))
    }
}

/// A reply on the air (or about to be).
#[derive(Clone, Debug)]
struct OnAir {
    frame: Frame,
    lead: f64,
    amplitude: f32,
    phase: f64,
    freq: f64,
    time_s: f64,
    snr_db: f64,
    sample: u64,
    air_end: f64,
    end: i64,
    overlapped: bool,
    reported: bool,
}

/// The aircraft and their event queue.
struct Traffic {
    rng: Rng,
    aircraft: Vec<Aircraft>,
    /// Bumped when a slot gets a new aircraft, to ignore its predecessor's
    /// queued events.
    generation: Vec<u64>,
    used: HashSet<u32>,
    queue: BinaryHeap<Event>,
    seq: u64,
    spawn: Spawn,
}

impl Traffic {
    fn new(cfg: &SimConfig) -> Self {
        let mut t = Traffic {
            rng: Rng::new(cfg.seed, STREAM_TRAFFIC),
            aircraft: Vec::with_capacity(cfg.aircraft),
            generation: vec![0; cfg.aircraft],
            used: HashSet::with_capacity(cfg.aircraft),
            queue: BinaryHeap::with_capacity(cfg.aircraft * 6),
            seq: 0,
            spawn: Spawn {
                receiver: cfg.receiver,
                snr_db: cfg.snr_db,
                max_freq_offset_hz: cfg.max_freq_offset_hz,
                reply_rate: cfg.reply_rate,
            },
        };
        for slot in 0..cfg.aircraft {
            let icao = traffic::new_icao(&mut t.rng, &mut t.used);
            t.aircraft
                .push(Aircraft::new(&mut t.rng, icao, &t.spawn, 0.0));
            t.schedule_all(slot, 0.0);
        }
        t
    }

    fn push(&mut self, t: f64, slot: usize, kind: Kind, forced_snr: Option<f64>) {
        self.seq += 1;
        self.queue.push(Event {
            t,
            seq: self.seq,
            slot,
            generation: self.generation[slot],
            kind,
            forced_snr,
        });
    }

    fn schedule_all(&mut self, slot: usize, now: f64) {
        let rate = self.aircraft[slot].reply_rate;
        for kind in [
            Kind::Position,
            Kind::Velocity,
            Kind::Ident,
            Kind::AllCall,
            Kind::Manoeuvre,
        ] {
            let dt = kind.first(&mut self.rng, rate);
            self.push(now + dt, slot, kind, None);
        }
        if rate > 0.0 {
            let dt = Kind::Interrogated.first(&mut self.rng, rate);
            self.push(now + dt, slot, Kind::Interrogated, None);
        }
    }

    /// Replaces the aircraft in `slot` by a new one.
    fn respawn(&mut self, slot: usize, now: f64) {
        self.used.remove(&self.aircraft[slot].icao.0);
        self.generation[slot] += 1;
        let icao = traffic::new_icao(&mut self.rng, &mut self.used);
        self.aircraft[slot] = Aircraft::new(&mut self.rng, icao, &self.spawn, now);
        self.schedule_all(slot, now);
    }
}

/// Streaming Mode S IQ generator; see the module docs.
pub struct Simulator {
    cfg: SimConfig,
    shaper: PulseShaper,
    traffic: Traffic,
    noise: Rng,
    noise_sigma: f32,
    on_air: VecDeque<OnAir>,
    /// Next sample to produce.
    pos: u64,
    total: Option<u64>,
    buf: Vec<Cf32>,
    stats: SimStats,
}

impl Simulator {
    /// # Panics
    /// If the config is invalid ([`SimConfig::validate`]); use
    /// [`Simulator::try_new`] for configs from users.
    pub fn new(cfg: SimConfig) -> Self {
        match Self::try_new(cfg) {
            Ok(s) => s,
            Err(e) => panic!("invalid simulator config: {e}"),
        }
    }

    /// A simulator for `cfg`, or the first field of it that is out of range.
    pub fn try_new(cfg: SimConfig) -> Result<Self, SimConfigError> {
        cfg.validate()?;
        Ok(Simulator {
            shaper: PulseShaper::new(cfg.sample_rate),
            traffic: Traffic::new(&cfg),
            noise: Rng::new(cfg.seed, STREAM_NOISE),
            noise_sigma: NOISE_POWER_LSB2.sqrt() as f32,
            on_air: VecDeque::new(),
            pos: 0,
            total: cfg.total_samples(),
            buf: vec![Cf32::default(); BLOCK],
            stats: SimStats::default(),
            cfg,
        })
    }

    /// The configuration it runs.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// Counts so far.
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// Samples produced so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Writes the next IQ samples into `out` (as many whole samples as fit,
    /// never past the end of the run) and appends to `truth` the frames
    /// whose [`TruthFrame::sample`] falls among them, in order. Returns the
    /// bytes written: 0 once the run is over (or if `out` cannot hold one
    /// sample). Output does not depend on how the run is cut into calls.
    pub fn fill(&mut self, out: &mut [u8], truth: &mut Vec<TruthFrame>) -> usize {
        let bps = self.cfg.format.bytes_per_sample();
        let mut written = 0;
        loop {
            let room = (out.len() - written) / bps;
            let left = self.total.map_or(u64::MAX, |t| t - self.pos);
            let n = room
                .min(BLOCK)
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            if n == 0 {
                return written;
            }
            self.block(n, &mut out[written..written + n * bps], truth);
            written += n * bps;
        }
    }

    fn block(&mut self, n: usize, out: &mut [u8], truth: &mut Vec<TruthFrame>) {
        let fs = f64::from(self.cfg.sample_rate);
        let s0 = self.pos;
        let s1 = s0 + n as u64;
        // Bring on every reply that starts before the block ends plus the
        // longest reply: then all replies that can overlap one reported in
        // this block are known, and its `overlapped` flag is final.
        let horizon =
            s1 as f64 + (MAX_AIR_US * 1e-6 * fs) + 2.0 * signal::FILTER_HALF_SAMPLES + 2.0;
        self.materialise(horizon / fs);

        let buf = &mut self.buf[..n];
        for v in buf.iter_mut() {
            let (i, q) = self.noise.complex_gaussian();
            *v = Cf32 {
                re: i * self.noise_sigma,
                im: q * self.noise_sigma,
            };
        }
        for r in &mut self.on_air {
            let reply = Reply {
                bytes: r.frame.bytes(),
                lead: r.lead,
                amplitude: r.amplitude,
                phase: r.phase,
                freq: r.freq,
            };
            self.shaper.add(&reply, buf, s0 as i64);
            if !r.reported && r.sample < s1 {
                r.reported = true;
                let bytes = r.frame.bytes().to_vec();
                self.stats.frames += 1;
                self.stats.overlapped += u64::from(r.overlapped);
                self.stats.by_df[usize::from(bytes[0] >> 3)] += 1;
                truth.push(TruthFrame {
                    sample: r.sample,
                    time_s: r.time_s,
                    bytes,
                    snr_db: r.snr_db,
                    overlapped: r.overlapped,
                });
            }
        }
        while self
            .on_air
            .front()
            .is_some_and(|r| r.reported && r.end <= s1 as i64)
        {
            self.on_air.pop_front();
        }
        signal::quantise(self.cfg.format, buf, out);
        self.pos = s1;
        self.stats.samples = s1;
    }

    /// Turns queued events up to time `until` into replies on the air.
    fn materialise(&mut self, until: f64) {
        let fs = f64::from(self.cfg.sample_rate);
        while self.traffic.queue.peek().is_some_and(|e| e.t < until) {
            let Some(ev) = self.traffic.queue.pop() else {
                break;
            };
            let tr = &mut self.traffic;
            if ev.generation != tr.generation[ev.slot] {
                continue;
            }
            tr.aircraft[ev.slot].advance(ev.t);
            if ev.forced_snr.is_none() {
                let rate = tr.aircraft[ev.slot].reply_rate;
                let dt = ev.kind.interval(&mut tr.rng, rate);
                tr.push(ev.t + dt, ev.slot, ev.kind, None);
            }
            match ev.kind {
                Kind::Manoeuvre => {
                    tr.aircraft[ev.slot].manoeuvre(&mut tr.rng);
                    continue;
                }
                Kind::Position
                    if tr.aircraft[ev.slot].range_nm(self.cfg.receiver) > DEPARTURE_RANGE_NM =>
                {
                    tr.respawn(ev.slot, ev.t);
                    continue;
                }
                _ => {}
            }
            let pick = tr.rng.f64();
            let phase = tr.rng.uniform(0.0, std::f64::consts::TAU);
            let Some(frame) = tr.aircraft[ev.slot].frame(ev.kind, pick) else {
                continue;
            };
            let ac = &tr.aircraft[ev.slot];
            let snr_db = ev.forced_snr.unwrap_or(ac.snr_db);
            let bits = frame.bytes().len() * 8;
            let air_s = (8.0 + bits as f64) * 1e-6;
            let lead = ev.t * fs;
            let reply = OnAir {
                frame,
                lead,
                amplitude: (NOISE_POWER_LSB2 * 10f64.powf(snr_db / 10.0)).sqrt() as f32,
                phase,
                freq: ac.freq_hz / fs,
                time_s: ev.t,
                snr_db,
                sample: (lead + signal::CHIP_US * 1e-6 * fs / 2.0).round() as u64,
                air_end: lead + air_s * fs,
                end: self.shaper.extent(lead, bits).1,
                overlapped: false,
                reported: false,
            };

            // Deliberate overlap: another aircraft answers while this reply
            // is still on the air, weaker, as when two aircraft at different
            // ranges answer the same interrogation.
            if ev.forced_snr.is_none() && tr.aircraft.len() >= 2 && tr.rng.chance(self.cfg.overlap)
            {
                let n = tr.aircraft.len() as u64;
                let mut other = tr.rng.below(n - 1) as usize;
                if other >= ev.slot {
                    other += 1;
                }
                let kinds = [
                    Kind::Position,
                    Kind::Velocity,
                    Kind::Ident,
                    Kind::AllCall,
                    Kind::Interrogated,
                ];
                let kind = kinds[tr.rng.below(kinds.len() as u64) as usize];
                let delay = tr.rng.uniform(5e-6, (100e-6f64).min(air_s - 5e-6));
                let weaker = tr.rng.uniform(2.0, 10.0);
                tr.push(ev.t + delay, other, kind, Some(snr_db - weaker));
            }

            // A reply cut off by the end of the run is not transmitted, so
            // the truth lists only whole frames.
            if self.total.is_some_and(|t| reply.end > t as i64) {
                continue;
            }
            self.put_on_air(reply);
        }
    }

    fn put_on_air(&mut self, mut reply: OnAir) {
        for other in self.on_air.iter_mut() {
            if other.air_end > reply.lead {
                other.overlapped = true;
                reply.overlapped = true;
            }
        }
        self.on_air.push_back(reply);
    }
}

/// Runs a whole (finite) simulation into `iq` and writes the truth to
/// `truth`, one [`TruthFrame`] line per frame in sample order.
pub fn simulate(
    cfg: &SimConfig,
    iq: &mut impl Write,
    truth: &mut impl Write,
) -> io::Result<SimStats> {
    if !cfg.duration_s.is_finite() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "simulate needs a finite duration_s",
        ));
    }
    let mut sim = Simulator::try_new(cfg.clone())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut frames = Vec::new();
    let mut lines = BufWriter::new(truth);
    loop {
        frames.clear();
        let n = sim.fill(&mut buf, &mut frames);
        if n == 0 {
            break;
        }
        iq.write_all(&buf[..n])?;
        for f in &frames {
            writeln!(lines, "{f}")?;
        }
    }
    lines.flush()?;
    Ok(sim.stats().clone())
}

#[cfg(test)]
mod tests;
