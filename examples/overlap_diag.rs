//! Diagnostic for issue 17: where the busy sky's replies are lost. On the
//! busy sky of `examples/busy.rs` (one seed), prints the frames decoded
//! that were never sent; for the overlapped replies of 12 dB and more,
//! the fraction found by their level relative to the strongest reply
//! overlapping them and by which started first; for missed 112-bit
//! replies at least as strong as what overlaps them, the fewest bit errors
//! any slicing near the truth gives and how doubtful the wrong bits were
//! (rank by margin); the missed replies of 10 dB and more by format and
//! fewest bit errors; and clear recall per dB.
//!
//! `cargo run --release --example overlap_diag [-- SEED [RATE_MSPS]]`
//! (about a minute: it slices every missed reply at 25 hypotheses).
use std::collections::HashMap;

use adsb_kinesis::decoder::IqDecoder;
use adsb_kinesis::demod::{slice_at, Rate};
use adsb_kinesis::iq::MagnitudeConverter;
use adsb_kinesis::sim::recall::busy_sky;
use adsb_kinesis::sim::{Simulator, TruthFrame};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seed: u64 = args.first().map_or(1, |a| a.parse().unwrap());
    let rate_hz: u32 = args
        .get(1)
        .map_or(2_400_000, |a| (a.parse::<f64>().unwrap() * 1e6) as u32);
    let cfg = busy_sky(seed, rate_hz);
    let rate = Rate::from_hz(rate_hz).unwrap();
    let mut sim = Simulator::new(cfg.clone());
    let mut dec = IqDecoder::new(cfg.format, rate, 1);
    let (mut buf, mut truth, mut out) = (vec![0u8; 1 << 16], Vec::<TruthFrame>::new(), Vec::new());
    let mut all: Vec<TruthFrame> = Vec::new();
    let mut mag = Vec::new();
    let mut conv = MagnitudeConverter::new(cfg.format);
    loop {
        let n = sim.fill(&mut buf, &mut truth);
        all.append(&mut truth);
        if n == 0 {
            break;
        }
        conv.convert(&buf[..n], &mut mag);
        dec.push(&buf[..n], &mut out);
    }
    dec.finish(&mut out);
    let mut got: HashMap<Vec<u8>, Vec<(u64, bool, u8)>> = HashMap::new();
    for r in &out {
        got.entry(r.frame.bytes().to_vec())
            .or_default()
            .push((r.sample, false, r.repaired));
    }
    let found: Vec<bool> = all
        .iter()
        .map(|t| {
            got.get_mut(&t.bytes)
                .and_then(|v| {
                    v.iter_mut()
                        .find(|(at, u, _)| !u && at.abs_diff(t.sample) <= 4)
                })
                .map(|s| s.1 = true)
                .is_some()
        })
        .collect();
    for (b, v) in &got {
        for (at, used, rep) in v {
            if !used {
                println!(
                    "false: {} at {at} df{} repaired {rep}",
                    adsb_kinesis::modes::Hex(b),
                    b[0] >> 3
                );
            }
        }
    }
    let dur = |t: &TruthFrame| (8.0 + 8.0 * t.bytes.len() as f64) * 1e-6;
    // bins: [first|second][delta bin]
    let edges = [-100.0, -9.0, -6.0, -3.0, 0.0, 3.0, 6.0, 9.0, 100.0];
    let mut tab = [[(0usize, 0usize); 8]; 3];
    let mut clear_by_snr = [(0usize, 0usize); 30];
    let mut errs = [0usize; 10];
    let mut worst_rank = [[0usize; 8]; 5];
    for (i, t) in all.iter().enumerate() {
        if !t.overlapped {
            let b = (t.snr_db as usize).min(29);
            clear_by_snr[b].0 += 1;
            clear_by_snr[b].1 += usize::from(found[i]);
            continue;
        }
        if t.snr_db < 12.0 {
            continue;
        }
        // strongest partner
        let (t0, t1) = (t.time_s, t.time_s + dur(t));
        let mut best: Option<(f64, bool)> = None;
        let lo = i.saturating_sub(40);
        for (j, o) in all.iter().enumerate().skip(lo).take(80) {
            if j == i {
                continue;
            }
            let (o0, o1) = (o.time_s, o.time_s + dur(o));
            if o0 < t1 && t0 < o1 && best.is_none_or(|(s, _)| o.snr_db > s) {
                best = Some((o.snr_db, t0 <= o0));
            }
        }
        let Some((ps, first)) = best else { continue };
        let d = t.snr_db - ps;
        let k = edges
            .windows(2)
            .position(|w| d >= w[0] && d < w[1])
            .unwrap();
        let row = if first { 0 } else { 1 };
        tab[row][k].0 += 1;
        tab[row][k].1 += usize::from(found[i]);
        tab[2][k].0 += 1;
        tab[2][k].1 += usize::from(found[i]);
        if !found[i] && d >= 0.0 && t.bytes.len() == 14 {
            // best slicing near the truth
            let mut bestc: Option<(u32, Vec<usize>)> = None;
            for s in t.sample.saturating_sub(2)..=t.sample + 2 {
                for p in 0..5 {
                    if let Some((b, _, _, m)) = slice_at(rate, &mag, s as usize, p) {
                        let wrong: Vec<usize> = (0..112)
                            .filter(|&k| (b[k / 8] ^ t.bytes[k / 8]) >> (7 - k % 8) & 1 == 1)
                            .collect();
                        if bestc
                            .as_ref()
                            .is_none_or(|(e, _)| (wrong.len() as u32) < *e)
                        {
                            // rank of wrong bits by margin
                            let mut order: Vec<usize> = (0..112).collect();
                            order.sort_by_key(|&k| m[k]);
                            let ranks: Vec<usize> = wrong
                                .iter()
                                .map(|w| order.iter().position(|o| o == w).unwrap())
                                .collect();
                            bestc = Some((wrong.len() as u32, ranks));
                        }
                    }
                }
            }
            if let Some((e, ranks)) = bestc {
                let k = (e as usize).min(9);
                errs[k] += 1;
                let worst = ranks.iter().copied().max().unwrap_or(0);
                if e <= 4 {
                    worst_rank[e as usize][worst.min(31) / 4] += 1;
                }
            }
        }
    }
    println!("missed stronger DF17-len frames: min bit errors 0..9+: {errs:?}");
    for (e, w) in worst_rank.iter().enumerate() {
        println!("  {e} errors: worst rank /4 bins {w:?}");
    }
    println!("overlapped replies >= 12 dB, by own minus strongest partner's SNR");
    println!("bins: <-9 -9..-6 -6..-3 -3..0 0..3 3..6 6..9 >9");
    for (name, row) in ["starts first", "starts inside", "all"].iter().zip(tab) {
        let cells: Vec<String> = row
            .iter()
            .map(|(n, f)| format!("{:>5.2}/{:<5}", *f as f64 / (*n).max(1) as f64, n))
            .collect();
        println!("{name:>14}: {}", cells.join(" "));
    }
    // Missed frames of every kind: by DF class and best bit-error count.
    let mut miss = std::collections::BTreeMap::<(u8, bool, usize), usize>::new();
    let mut sent_df = std::collections::BTreeMap::<u8, (usize, usize)>::new();
    for (i, t) in all.iter().enumerate() {
        let e = sent_df.entry(t.df()).or_default();
        e.0 += 1;
        e.1 += usize::from(found[i]);
        if found[i] || t.snr_db < 10.0 {
            continue;
        }
        let mut best = 99usize;
        for s in t.sample.saturating_sub(2)..=t.sample + 2 {
            for p in 0..5 {
                if let Some((b, _, _, _)) = slice_at(rate, &mag, s as usize, p) {
                    let wrong: usize = (0..t.bytes.len())
                        .map(|k| (b[k] ^ t.bytes[k]).count_ones() as usize)
                        .sum();
                    best = best.min(wrong);
                }
            }
        }
        *miss.entry((t.df(), t.overlapped, best.min(5))).or_default() += 1;
    }
    println!("sent/found by DF: {sent_df:?}");
    println!("missed >=10 dB by (df, overlapped, min errors capped 5):");
    for ((df, o, e), n) in &miss {
        if *e <= 2 {
            println!("  df{df} overlapped={o} errors={e}: {n}");
        }
    }
    println!("clear by snr:");
    for (s, (n, f)) in clear_by_snr.iter().enumerate().filter(|(_, (n, _))| *n > 0) {
        print!("{s}:{:.2} ", *f as f64 / *n as f64);
    }
    println!();
}
