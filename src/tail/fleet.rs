//! The aircraft table of `tail --table`: the latest state of every
//! aircraft, merged from the SBS lines read off the stream, and its text
//! rendering. Pure: lines and times in, a table out.
//!
//! Each SBS line carries only some fields (SBS_FORMAT.md §3: a MSG,1 has
//! the callsign, a MSG,3 the altitude and position, a MSG,4 speed and
//! track, a MSG,6 the squawk), so the state is merged field by field.
//! Lines do not arrive in time order: shards are read concurrently, the
//! sender's retries reorder records (see `kinesis` "Ordering"), and
//! packed records hold a few seconds of lines. So every field remembers
//! the generation time (SBS field 7/8) of the line that set it, and an
//! older line never overwrites a newer value.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use crate::modes::Icao;
use crate::sbs::SbsLine;

/// Aircraft unheard for this long, in stream time (behind the newest line
/// seen), leave the table.
pub const FORGET_AFTER_MS: i64 = 300_000;

/// A value and the generation time of the line that set it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Timed<T> {
    value: Option<T>,
    at_ms: i64,
}

impl<T: Copy> Timed<T> {
    /// Take `v` unless the value we hold came from a newer line.
    fn offer(&mut self, v: Option<T>, at_ms: i64) {
        if let Some(v) = v {
            if self.value.is_none() || at_ms >= self.at_ms {
                self.value = Some(v);
                self.at_ms = at_ms;
            }
        }
    }
}

/// One aircraft's merged state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Aircraft {
    callsign: Timed<[u8; 8]>,
    squawk: Timed<u16>,
    altitude_ft: Timed<i32>,
    gs_kt: Timed<f64>,
    track_deg: Timed<f64>,
    position: Timed<(f64, f64)>,
    /// Lines seen for this aircraft, in any order.
    pub messages: u64,
    /// Newest generation time seen, Unix ms.
    pub last_seen_ms: i64,
}

impl Aircraft {
    /// Latest flight identity, trailing spaces trimmed.
    pub fn callsign(&self) -> Option<&str> {
        self.callsign
            .value
            .as_ref()
            .and_then(|c| std::str::from_utf8(c).ok())
            .map(str::trim_end)
    }
    /// Latest Mode A code (four octal digits read as decimal).
    pub fn squawk(&self) -> Option<u16> {
        self.squawk.value
    }
    /// Latest barometric altitude, feet.
    pub fn altitude_ft(&self) -> Option<i32> {
        self.altitude_ft.value
    }
    /// Latest ground speed, knots.
    pub fn gs_kt(&self) -> Option<f64> {
        self.gs_kt.value
    }
    /// Latest track, degrees.
    pub fn track_deg(&self) -> Option<f64> {
        self.track_deg.value
    }
    /// Latest position, (lat, lon) degrees.
    pub fn position(&self) -> Option<(f64, f64)> {
        self.position.value
    }
}

/// How one shard's reader is doing, for the table's footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardStatus {
    /// Waiting for a parent shard to be drained.
    Waiting,
    /// Reading; `MillisBehindLatest` of the last GetRecords, if any yet.
    Reading(Option<i64>),
    /// Read to its end (closed by a reshard).
    Drained,
}

/// Every aircraft seen, and the shards' progress.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    aircraft: HashMap<Icao, Aircraft>,
    shards: BTreeMap<String, ShardStatus>,
    /// Newest generation time of any line: the stream's "now".
    newest_ms: i64,
    /// Lines merged.
    pub lines: u64,
    /// Lines that were not SBS `MSG` lines.
    pub bad_lines: u64,
}

impl Fleet {
    /// An empty table.
    pub fn new() -> Self {
        Fleet::default()
    }

    /// Merge one line.
    pub fn update(&mut self, l: &SbsLine) {
        self.lines += 1;
        let t = l.generated_ms;
        self.newest_ms = self.newest_ms.max(t);
        let a = self.aircraft.entry(l.icao).or_default();
        a.messages += 1;
        a.last_seen_ms = a.last_seen_ms.max(t);
        a.callsign.offer(l.callsign, t);
        a.squawk.offer(l.squawk, t);
        a.altitude_ft.offer(l.altitude_ft, t);
        a.gs_kt.offer(l.gs_kt, t);
        a.track_deg.offer(l.track_deg, t);
        a.position.offer(l.lat.zip(l.lon), t);
    }

    /// Count a line that did not parse.
    pub fn bad_line(&mut self) {
        self.bad_lines += 1;
    }

    /// The aircraft `icao`, if seen.
    pub fn get(&self, icao: Icao) -> Option<&Aircraft> {
        self.aircraft.get(&icao)
    }

    /// Aircraft in the table.
    pub fn len(&self) -> usize {
        self.aircraft.len()
    }

    /// No aircraft in the table.
    pub fn is_empty(&self) -> bool {
        self.aircraft.is_empty()
    }

    /// Record the status of `shard` for the footer.
    pub fn set_shard(&mut self, shard: &str, status: ShardStatus) {
        self.shards.insert(shard.to_owned(), status);
    }

    /// Drop aircraft unheard for [`FORGET_AFTER_MS`] of stream time, so a
    /// day-long read keeps a bounded table.
    pub fn forget_old(&mut self) {
        let cutoff = self.newest_ms - FORGET_AFTER_MS;
        self.aircraft.retain(|_, a| a.last_seen_ms >= cutoff);
    }

    /// The table as text, newest first, at most `max_rows` aircraft rows
    /// (the rest are counted in the header). Ages are from `now_ms`
    /// (wall clock), so old data reads as old.
    pub fn render(&self, now_ms: i64, max_rows: usize) -> String {
        let mut rows: Vec<(&Icao, &Aircraft)> = self.aircraft.iter().collect();
        rows.sort_by(|a, b| b.1.last_seen_ms.cmp(&a.1.last_seen_ms).then(a.0.cmp(b.0)));
        let mut s = String::with_capacity(96 * (rows.len().min(max_rows) + 4));
        let shown = rows.len().min(max_rows);
        let _ = write!(s, "{} aircraft", rows.len());
        if shown < rows.len() {
            let _ = write!(s, " ({shown} shown)");
        }
        let _ = writeln!(s, ", {} lines, {} bad", self.lines, self.bad_lines);
        let _ = writeln!(
            s,
            "ICAO   CALLSIGN SQWK   ALT ft  GS kt  TRK   LAT        LON         MSGS   AGE s"
        );
        let opt = |v: Option<String>, w: usize| format!("{:>w$}", v.unwrap_or_default());
        for (icao, a) in rows.into_iter().take(max_rows) {
            let (lat, lon) = match a.position() {
                Some((la, lo)) => (Some(format!("{la:.5}")), Some(format!("{lo:.5}"))),
                None => (None, None),
            };
            let age = (now_ms - a.last_seen_ms).max(0) as f64 / 1000.0;
            let _ = writeln!(
                s,
                "{icao} {:<8} {} {} {} {} {} {} {:>6} {:>7.1}",
                a.callsign().unwrap_or(""),
                opt(a.squawk().map(|q| format!("{:04o}", q & 0o7777)), 4),
                opt(a.altitude_ft().map(|v| v.to_string()), 8),
                opt(a.gs_kt().map(|v| format!("{v:.0}")), 6),
                opt(a.track_deg().map(|v| format!("{v:.0}")), 4),
                opt(lat, 10),
                opt(lon, 11),
                a.messages,
                age,
            );
        }
        s.push_str("shards:");
        if self.shards.is_empty() {
            s.push_str(" none yet");
        }
        for (id, st) in &self.shards {
            let short = id.strip_prefix("shardId-").unwrap_or(id);
            let _ = match st {
                ShardStatus::Waiting => write!(s, " {short} waiting for parent;"),
                ShardStatus::Reading(None) => write!(s, " {short} starting;"),
                ShardStatus::Reading(Some(ms)) => write!(s, " {short} {ms} ms behind;"),
                ShardStatus::Drained => write!(s, " {short} drained;"),
            };
        }
        if s.ends_with(';') {
            s.pop();
        }
        s.push('\n');
        s
    }
}

/// `HH:MM:SS` UTC of a Unix-ms time, for snapshot headers.
fn clock(ms: i64) -> String {
    let s = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

impl Fleet {
    /// The whole table as one plain snapshot (stdout is not a terminal),
    /// headed `--- HH:MM:SS UTC`.
    pub fn render_snapshot(&self, now_ms: i64) -> String {
        format!(
            "--- {} UTC\n{}\n",
            clock(now_ms),
            self.render(now_ms, usize::MAX)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(t: i64) -> SbsLine {
        SbsLine::empty(3, Icao(0x4D2023), t, t)
    }

    #[test]
    fn fields_merge_across_message_types() {
        let mut f = Fleet::new();
        f.update(&SbsLine {
            msg_type: 1,
            callsign: Some(*b"AMC421  "),
            ..line(1000)
        });
        f.update(&SbsLine {
            altitude_ft: Some(22875),
            lat: Some(37.1),
            lon: Some(13.7),
            ..line(1100)
        });
        f.update(&SbsLine {
            msg_type: 4,
            gs_kt: Some(390.0),
            track_deg: Some(158.0),
            ..line(1200)
        });
        f.update(&SbsLine {
            msg_type: 6,
            squawk: Some(0o112),
            ..line(1300)
        });
        let a = f.get(Icao(0x4D2023)).unwrap();
        assert_eq!(a.callsign(), Some("AMC421"));
        assert_eq!(a.altitude_ft(), Some(22875));
        assert_eq!(a.position(), Some((37.1, 13.7)));
        assert_eq!((a.gs_kt(), a.track_deg()), (Some(390.0), Some(158.0)));
        assert_eq!(a.squawk(), Some(0o112));
        assert_eq!(a.messages, 4);
        assert_eq!(a.last_seen_ms, 1300);
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn older_lines_never_overwrite_newer_values() {
        let mut f = Fleet::new();
        f.update(&SbsLine {
            altitude_ft: Some(30000),
            ..line(2000)
        });
        // Late arrival of an older line: counted, but the altitude stays.
        f.update(&SbsLine {
            altitude_ft: Some(29000),
            squawk: Some(0o7000),
            ..line(1000)
        });
        let a = f.get(Icao(0x4D2023)).unwrap();
        assert_eq!(a.altitude_ft(), Some(30000));
        // A field the newer line did not carry is still filled.
        assert_eq!(a.squawk(), Some(0o7000));
        assert_eq!(a.messages, 2);
        assert_eq!(a.last_seen_ms, 2000);
        // Same time: the later-read line wins.
        f.update(&SbsLine {
            altitude_ft: Some(30100),
            ..line(2000)
        });
        assert_eq!(f.get(Icao(0x4D2023)).unwrap().altitude_ft(), Some(30100));
        // A line without the field leaves it alone.
        f.update(&line(3000));
        assert_eq!(f.get(Icao(0x4D2023)).unwrap().altitude_ft(), Some(30100));
    }

    #[test]
    fn half_a_position_is_not_a_position() {
        let mut f = Fleet::new();
        f.update(&SbsLine {
            lat: Some(1.0),
            ..line(1)
        });
        assert_eq!(f.get(Icao(0x4D2023)).unwrap().position(), None);
    }

    #[test]
    fn old_aircraft_are_forgotten_in_stream_time() {
        let mut f = Fleet::new();
        f.update(&line(0));
        f.update(&SbsLine {
            icao: Icao(1),
            ..line(FORGET_AFTER_MS)
        });
        f.forget_old();
        assert_eq!(f.len(), 2, "exactly at the limit stays");
        f.update(&SbsLine {
            icao: Icao(2),
            ..line(FORGET_AFTER_MS + 1)
        });
        f.forget_old();
        assert_eq!(f.len(), 2);
        assert!(f.get(Icao(0x4D2023)).is_none());
    }

    #[test]
    fn table_rows_newest_first_with_shards() {
        let mut f = Fleet::new();
        f.update(&SbsLine {
            icao: Icao(0xABCDEF),
            callsign: Some(*b"OLD1    "),
            ..line(1_000)
        });
        f.update(&SbsLine {
            altitude_ft: Some(-75),
            squawk: Some(0o7),
            gs_kt: Some(101.4),
            track_deg: Some(359.6),
            lat: Some(-37.5),
            lon: Some(-122.25),
            ..line(9_000)
        });
        f.bad_line();
        f.set_shard("shardId-000000000001", ShardStatus::Reading(Some(1200)));
        f.set_shard("shardId-000000000002", ShardStatus::Waiting);
        f.set_shard("shardId-000000000000", ShardStatus::Drained);
        let t = f.render(10_000, 50);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "2 aircraft, 2 lines, 1 bad");
        assert!(lines[1].starts_with("ICAO "));
        let cols: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "4D2023",
                "0007",
                "-75",
                "101",
                "360",
                "-37.50000",
                "-122.25000",
                "1",
                "1.0"
            ]
        );
        let cols: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(cols, ["ABCDEF", "OLD1", "1", "9.0"]);
        assert_eq!(
            lines[4],
            "shards: 000000000000 drained; 000000000001 1200 ms behind; 000000000002 waiting for parent"
        );
        // Columns line up: every row as wide as the header up to AGE.
        assert_eq!(lines[2].len(), lines[3].len());
        let t = f.render(10_000, 1);
        assert!(t.starts_with("2 aircraft (1 shown)"), "{t}");
        assert_eq!(t.lines().count(), 4);
    }
}
