//! Which shards `tail` may read now, and from where. Pure: the tail task
//! feeds it shard listings and "drained" events and starts what it says.
//!
//! Kinesis keeps a partition key's records in order only within a shard.
//! When a shard is split or merged it is closed and its children take
//! over its hash range, so a key's older records are in the parent and
//! its newer ones in a child. The Kinesis Data Streams developer guide
//! ("Resharding, scaling, and parallel processing": "Data Routing, Data
//! Persistence, and Shard State after a Reshard") therefore has consumers
//! read a parent to its end before its children; the GetRecords reference
//! says a closed shard's end is reached when `NextShardIterator` is null,
//! and lists the `ChildShards` then.
//!
//! [`ShardPlan`] enforces that rule: a shard starts only when each of its
//! parents (one for a split, two for a merge) is drained. A parent that no
//! listing shows has aged out of the retention period and holds nothing to
//! wait for.

use std::collections::BTreeMap;

use crate::sbs::days_from_civil;

/// Where to start reading a shard (`--from`; GetShardIterator's
/// `ShardIteratorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// `LATEST`: only records written after the iterator is made.
    Latest,
    /// `TRIM_HORIZON`: the oldest record still retained.
    TrimHorizon,
    /// `AT_TIMESTAMP`: the first record that arrived at or after this
    /// Unix time, in milliseconds.
    AtTimestamp(i64),
}

/// Parse `--from`: `latest`, `trim-horizon` (also `trim_horizon`), an RFC
/// 3339 date-time (`2026-11-30T16:00:00Z`, `...T17:00:00.250+01:00`) or
/// Unix seconds (`1764518400`, `1764518400.5`).
pub fn parse_start(s: &str) -> Result<StartAt, String> {
    match s.to_ascii_lowercase().as_str() {
        "latest" => return Ok(StartAt::Latest),
        "trim-horizon" | "trim_horizon" => return Ok(StartAt::TrimHorizon),
        _ => {}
    }
    let bad = || {
        format!("{s:?} is not latest, trim-horizon, an RFC 3339 time (2026-11-30T16:00:00Z) or Unix seconds")
    };
    if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
        let secs: f64 = s.parse().map_err(|_| bad())?;
        if !(secs.is_finite() && secs < 1e13) {
            return Err(bad());
        }
        return Ok(StartAt::AtTimestamp((secs * 1000.0).round() as i64));
    }
    rfc3339_ms(s).map(StartAt::AtTimestamp).ok_or_else(bad)
}

/// RFC 3339 §5.6 `date-time` to Unix milliseconds (fractions beyond
/// milliseconds are truncated; a leap second reads as the next second).
fn rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(r)?;
        if part.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(part).ok()?.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0u32;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = &s[start..i.min(start + 3)];
        ms = frac.parse::<u32>().ok()? * 10u32.pow(3 - frac.len() as u32);
    }
    let offset_min: i64 = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let m = i64::from(oh * 60 + om);
            if *sign == b'-' {
                -m
            } else {
                m
            }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(y), mo, d);
    let secs = days * 86_400 + i64::from((h * 60 + mi) * 60 + sec) - offset_min * 60;
    Some(secs * 1000 + i64::from(ms))
}

/// A shard as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    /// The shard's id.
    pub id: String,
    /// `ParentShardId` and `AdjacentParentShardId` (a merge has both).
    pub parents: Vec<String>,
    /// The shard has an `EndingSequenceNumber`: it was split or merged and
    /// takes no more records.
    pub closed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Known, not started: a parent is not drained yet.
    Waiting,
    /// Handed out by [`ShardPlan::ready`].
    Reading,
    /// Read to its end (or nothing to read).
    Drained,
}

#[derive(Debug, Clone)]
struct Node {
    parents: Vec<String>,
    state: State,
    start: StartAt,
}

/// A shard to start reading, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// The shard to read.
    pub shard: String,
    /// Its start position: `--from` for shards of the first listing, `TRIM_HORIZON` for shards
    /// created since.
    pub start: StartAt,
}

/// The shards of one stream and the order in which they may be read.
#[derive(Debug, Clone)]
pub struct ShardPlan {
    from: StartAt,
    nodes: BTreeMap<String, Node>,
    listed_once: bool,
}

impl ShardPlan {
    /// An empty plan; shards of its first listing start at `from`.
    pub fn new(from: StartAt) -> Self {
        ShardPlan {
            from,
            nodes: BTreeMap::new(),
            listed_once: false,
        }
    }

    /// Take in a complete listing. Shards of the first listing start at
    /// `--from`; shards that appear later were created after we started
    /// and are read from `TRIM_HORIZON`, whole. With `--from latest` a
    /// shard already closed at the first listing is drained at once: no
    /// record can arrive in it after now. Shards already known keep their
    /// state. Returns how many shards were new.
    pub fn add_listing(&mut self, shards: &[ShardInfo]) -> usize {
        let first = !self.listed_once;
        self.listed_once = true;
        let mut new = 0;
        for s in shards {
            if self.nodes.contains_key(&s.id) {
                continue;
            }
            new += 1;
            let (start, state) = if first {
                let drained = self.from == StartAt::Latest && s.closed;
                (
                    self.from,
                    if drained {
                        State::Drained
                    } else {
                        State::Waiting
                    },
                )
            } else {
                (StartAt::TrimHorizon, State::Waiting)
            };
            self.nodes.insert(
                s.id.clone(),
                Node {
                    parents: s.parents.clone(),
                    state,
                    start,
                },
            );
        }
        new
    }

    /// Is `id` known from a listing?
    pub fn knows(&self, id: &str) -> bool {
        self.nodes.contains_key(id)
    }

    fn parents_drained(&self, node: &Node) -> bool {
        node.parents
            .iter()
            .all(|p| self.nodes.get(p).is_none_or(|n| n.state == State::Drained))
    }

    /// Shards that may start now: waiting, with every known parent
    /// drained. They are marked reading and never returned again.
    pub fn ready(&mut self) -> Vec<Launch> {
        let ids: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.state == State::Waiting && self.parents_drained(n))
            .map(|(id, _)| id.clone())
            .collect();
        ids.into_iter()
            .map(|id| {
                let n = self.nodes.get_mut(&id).expect("id taken from the map");
                n.state = State::Reading;
                Launch {
                    shard: id,
                    start: n.start,
                }
            })
            .collect()
    }

    /// `id` has been read to its end. Unknown ids are remembered as
    /// drained (a child may name them as parents later).
    pub fn drained(&mut self, id: &str) {
        match self.nodes.get_mut(id) {
            Some(n) => n.state = State::Drained,
            None => {
                self.nodes.insert(
                    id.to_owned(),
                    Node {
                        parents: Vec::new(),
                        state: State::Drained,
                        start: StartAt::TrimHorizon,
                    },
                );
            }
        }
    }

    /// Shards being read now.
    pub fn reading(&self) -> usize {
        self.nodes
            .values()
            .filter(|n| n.state == State::Reading)
            .count()
    }

    /// Shards waiting, each with the parents it waits for.
    pub fn waiting(&self) -> Vec<(String, Vec<String>)> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.state == State::Waiting)
            .map(|(id, n)| {
                let on = n
                    .parents
                    .iter()
                    .filter(|p| {
                        self.nodes
                            .get(p.as_str())
                            .is_some_and(|pn| pn.state != State::Drained)
                    })
                    .cloned()
                    .collect();
                (id.clone(), on)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parents: &[&str], closed: bool) -> ShardInfo {
        ShardInfo {
            id: id.into(),
            parents: parents.iter().map(|p| p.to_string()).collect(),
            closed,
        }
    }

    fn ids(l: &[Launch]) -> Vec<&str> {
        l.iter().map(|l| l.shard.as_str()).collect()
    }

    #[test]
    fn start_positions_parse() {
        assert_eq!(parse_start("latest"), Ok(StartAt::Latest));
        assert_eq!(parse_start("TRIM-HORIZON"), Ok(StartAt::TrimHorizon));
        assert_eq!(parse_start("trim_horizon"), Ok(StartAt::TrimHorizon));
        assert_eq!(
            parse_start("1764518400"),
            Ok(StartAt::AtTimestamp(1_764_518_400_000))
        );
        assert_eq!(
            parse_start("1764518400.25"),
            Ok(StartAt::AtTimestamp(1_764_518_400_250))
        );
        // 2025-11-30T16:00:00Z = 1764518400 (20 422 days + 16 h).
        assert_eq!(20_422 * 86_400 + 16 * 3600, 1_764_518_400);
        for s in [
            "2025-11-30T16:00:00Z",
            "2025-11-30t16:00:00z",
            "2025-11-30 16:00:00Z",
            "2025-11-30T17:00:00+01:00",
            "2025-11-30T15:30:00-00:30",
            "2025-11-30T16:00:00.000Z",
        ] {
            assert_eq!(
                parse_start(s),
                Ok(StartAt::AtTimestamp(1_764_518_400_000)),
                "{s}"
            );
        }
        assert_eq!(
            parse_start("2025-11-30T16:00:00.5Z"),
            Ok(StartAt::AtTimestamp(1_764_518_400_500))
        );
        assert_eq!(
            parse_start("2025-11-30T16:00:00.123456Z"),
            Ok(StartAt::AtTimestamp(1_764_518_400_123))
        );
        for bad in [
            "",
            "earliest",
            "2025-11-30",
            "2025-11-30T16:00:00",
            "2025-13-30T16:00:00Z",
            "2025-11-30T24:00:00Z",
            "2025-11-30T16:00:00.Z",
            "2025-11-30T16:00:00+0100",
            "2025-11-30T16:00:00Zjunk",
            "1.2.3",
            "1e9",
            "-5",
            "99999999999999999999",
            "２０２５-11-30T16:00:00Z",
        ] {
            assert!(parse_start(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn open_shards_start_at_once_from_the_given_position() {
        let mut p = ShardPlan::new(StartAt::AtTimestamp(5));
        p.add_listing(&[shard("a", &[], false), shard("b", &[], false)]);
        let l = p.ready();
        assert_eq!(ids(&l), ["a", "b"]);
        assert!(l.iter().all(|l| l.start == StartAt::AtTimestamp(5)));
        assert!(p.ready().is_empty(), "handed out twice");
        assert_eq!(p.reading(), 2);
    }

    #[test]
    fn split_children_wait_for_the_parent() {
        // Listed at start: parent 0 closed, children 1 and 2 open.
        let mut p = ShardPlan::new(StartAt::TrimHorizon);
        p.add_listing(&[
            shard("0", &[], true),
            shard("1", &["0"], false),
            shard("2", &["0"], false),
        ]);
        assert_eq!(ids(&p.ready()), ["0"]);
        assert_eq!(
            p.waiting(),
            [
                ("1".into(), vec!["0".into()]),
                ("2".into(), vec!["0".into()])
            ]
        );
        p.drained("0");
        let l = p.ready();
        assert_eq!(ids(&l), ["1", "2"]);
        assert!(l.iter().all(|l| l.start == StartAt::TrimHorizon));
    }

    #[test]
    fn merge_child_waits_for_both_parents() {
        let mut p = ShardPlan::new(StartAt::TrimHorizon);
        p.add_listing(&[
            shard("a", &[], true),
            shard("b", &[], true),
            shard("m", &["a", "b"], false),
        ]);
        assert_eq!(ids(&p.ready()), ["a", "b"]);
        p.drained("a");
        assert!(
            p.ready().is_empty(),
            "started before its second parent ended"
        );
        p.drained("b");
        assert_eq!(ids(&p.ready()), ["m"]);
    }

    #[test]
    fn grandchildren_wait_down_the_chain() {
        let mut p = ShardPlan::new(StartAt::TrimHorizon);
        p.add_listing(&[
            shard("g", &[], true),
            shard("c1", &["g"], true),
            shard("c2", &["g"], false),
            shard("gc", &["c1"], false),
        ]);
        assert_eq!(ids(&p.ready()), ["g"]);
        p.drained("g");
        assert_eq!(ids(&p.ready()), ["c1", "c2"]);
        assert!(p.ready().is_empty());
        p.drained("c1");
        assert_eq!(ids(&p.ready()), ["gc"]);
    }

    #[test]
    fn shards_found_later_read_whole_after_their_parents() {
        let mut p = ShardPlan::new(StartAt::Latest);
        assert_eq!(
            p.add_listing(&[shard("0", &[], false), shard("1", &[], false)]),
            2
        );
        let l = p.ready();
        assert!(l.iter().all(|l| l.start == StartAt::Latest));
        // Shard 0 is split while we read it; the relisting shows it closed.
        let relist = [
            shard("0", &[], true),
            shard("1", &[], false),
            shard("2", &["0"], false),
            shard("3", &["0"], false),
        ];
        assert_eq!(p.add_listing(&relist), 2);
        assert!(
            p.ready().is_empty(),
            "children started before shard 0 ended"
        );
        p.drained("0");
        let l = p.ready();
        assert_eq!(ids(&l), ["2", "3"]);
        assert!(l.iter().all(|l| l.start == StartAt::TrimHorizon));
        assert_eq!(p.add_listing(&relist), 0);
        assert!(p.ready().is_empty());
    }

    #[test]
    fn latest_skips_shards_closed_before_start() {
        let mut p = ShardPlan::new(StartAt::Latest);
        p.add_listing(&[
            shard("0", &[], true),
            shard("1", &["0"], true),
            shard("2", &["1"], false),
            shard("3", &["1"], false),
        ]);
        let l = p.ready();
        assert_eq!(ids(&l), ["2", "3"]);
        assert!(l.iter().all(|l| l.start == StartAt::Latest));
    }

    #[test]
    fn parents_aged_out_do_not_block() {
        // Shard "old" is past retention: no listing shows it.
        let mut p = ShardPlan::new(StartAt::TrimHorizon);
        p.add_listing(&[shard("1", &["old"], false), shard("2", &["old"], false)]);
        assert_eq!(ids(&p.ready()), ["1", "2"]);
        assert!(!p.knows("old"));
        // A drained report for an unknown shard is kept, not a panic.
        p.drained("ghost");
        assert!(p.knows("ghost"));
    }
}
