use super::*;
use crate::kinesis::record::MAX_RECORD_BYTES;
use proptest::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "adsb-kinesis-spool-{tag}-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn segments(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = match fs::read_dir(&self.0) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "seg"))
                .collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn rec(i: usize, len: usize) -> Record {
    let mut data = format!("MSG,{i},").into_bytes();
    data.resize(len.max(data.len() + 1) - 1, b'x');
    data.push(b'\n');
    Record {
        partition_key: format!("{:06X}", i & 0xFF_FFFF),
        data,
    }
}

/// Bytes one record takes in a segment.
fn entry_len(r: &Record) -> u64 {
    ENTRY_PREFIX + 2 + r.encoded_size() as u64
}

fn small(segment_bytes: u64, max_bytes: u64) -> SpoolOptions {
    SpoolOptions {
        max_bytes,
        segment_bytes,
    }
}

fn drain(spool: &mut Spool) -> Vec<Record> {
    let mut out = Vec::new();
    loop {
        let batch = spool.peek_batch(7, 1 << 20).unwrap();
        let Some((last, _)) = batch.last() else {
            return out;
        };
        let last = *last;
        out.extend(batch.into_iter().map(|(_, r)| r));
        spool.ack(last).unwrap();
    }
}

fn peek_all(spool: &mut Spool) -> Vec<Record> {
    spool
        .peek_batch(usize::MAX, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(_, r)| r)
        .collect()
}

#[test]
fn round_trip() {
    let dir = TempDir::new("roundtrip");
    let (mut spool, rec0) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    assert_eq!(rec0, Recovery::default());
    assert!(spool.is_empty());
    assert_eq!(spool.oldest_created(), None);
    let records: Vec<Record> = (0..100).map(|i| rec(i, 60)).collect();
    for r in &records {
        assert_eq!(spool.append(r).unwrap(), Dropped::default());
    }
    assert_eq!(spool.pending_records(), 100);
    assert!(spool.oldest_created().is_some());
    // Peeking twice gives the same records.
    assert_eq!(peek_all(&mut spool), records);
    assert_eq!(peek_all(&mut spool), records);
    assert_eq!(drain(&mut spool), records);
    assert!(spool.is_empty());
    assert_eq!(spool.peek_batch(10, 1000).unwrap(), vec![]);
}

#[test]
fn empty_and_odd_records() {
    let dir = TempDir::new("odd");
    let (mut spool, _) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    let odd = vec![
        Record {
            partition_key: "K".into(),
            data: vec![],
        },
        Record {
            partition_key: "é".repeat(256),
            data: vec![0, 255, b'\n', 0],
        },
        Record {
            partition_key: "ABCDEF".into(),
            data: vec![7; MAX_RECORD_BYTES - 6],
        },
    ];
    for r in &odd {
        spool.append(r).unwrap();
    }
    drop(spool);
    let (mut spool, recovery) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    assert_eq!(recovery.records, 3);
    assert_eq!(drain(&mut spool), odd);
}

#[test]
fn invalid_records_refused() {
    let dir = TempDir::new("invalid");
    let (mut spool, _) = Spool::open(dir.path(), small(4096, 8192)).unwrap();
    let too_big_for_kinesis = Record {
        partition_key: "ABCDEF".into(),
        data: vec![0; MAX_RECORD_BYTES],
    };
    assert!(matches!(
        spool.append(&too_big_for_kinesis),
        Err(SpoolError::Record(RecordError::TooLarge { .. }))
    ));
    let too_big_for_spool = rec(1, 9000);
    assert!(matches!(
        spool.append(&too_big_for_spool),
        Err(SpoolError::TooLarge {
            max_bytes: 8192,
            ..
        })
    ));
    let no_key = Record {
        partition_key: String::new(),
        data: vec![],
    };
    assert!(matches!(
        spool.append(&no_key),
        Err(SpoolError::Record(RecordError::BadPartitionKey { .. }))
    ));
    assert!(spool.is_empty());
}

#[test]
fn reopen_replays_in_order_then_new_data() {
    let dir = TempDir::new("reopen");
    let opts = small(1000, 1 << 20);
    let first: Vec<Record> = (0..50).map(|i| rec(i, 40)).collect();
    {
        let (mut spool, _) = Spool::open(dir.path(), opts).unwrap();
        for r in &first {
            spool.append(r).unwrap();
        }
        // Dropped without sync: a process exit, not a power loss.
    }
    assert!(dir.segments().len() > 2, "several segments were written");
    let (mut spool, recovery) = Spool::open(dir.path(), opts).unwrap();
    assert_eq!(recovery.records, 50);
    assert_eq!(recovery.corrupt_bytes, 0);
    assert!(!recovery.ack_restored);
    let more: Vec<Record> = (50..60).map(|i| rec(i, 40)).collect();
    for r in &more {
        spool.append(r).unwrap();
    }
    let all: Vec<Record> = first.iter().chain(&more).cloned().collect();
    assert_eq!(drain(&mut spool), all);
}

#[test]
fn ack_removes_segments_and_survives_reopen_after_sync() {
    let dir = TempDir::new("ack");
    let opts = small(600, 1 << 20);
    let records: Vec<Record> = (0..60).map(|i| rec(i, 40)).collect();
    let (mut spool, _) = Spool::open(dir.path(), opts).unwrap();
    for r in &records {
        spool.append(r).unwrap();
    }
    let before = dir.segments().len();
    let batch = spool.peek_batch(25, usize::MAX).unwrap();
    assert_eq!(batch.len(), 25);
    spool.ack(batch[24].0).unwrap();
    assert_eq!(spool.pending_records(), 35);
    let after = dir.segments().len();
    assert!(
        after < before,
        "acked segments deleted ({before} -> {after})"
    );
    // An old position is ignored.
    spool.ack(batch[3].0).unwrap();
    assert_eq!(spool.pending_records(), 35);
    spool.sync().unwrap();
    drop(spool);

    let (mut spool, recovery) = Spool::open(dir.path(), opts).unwrap();
    assert!(recovery.ack_restored);
    assert_eq!(recovery.records, 35);
    assert_eq!(drain(&mut spool), records[25..]);
    spool.sync().unwrap();
    drop(spool);

    let (spool, recovery) = Spool::open(dir.path(), opts).unwrap();
    assert!(recovery.ack_restored);
    assert_eq!(recovery.records, 0);
    assert!(spool.is_empty());
    // Only the fresh segment is left.
    assert_eq!(dir.segments().len(), 1);
}

#[test]
fn unsynced_ack_replays_at_least_once() {
    let dir = TempDir::new("unsynced");
    let opts = small(100_000, 1 << 20);
    let records: Vec<Record> = (0..10).map(|i| rec(i, 40)).collect();
    let (mut spool, _) = Spool::open(dir.path(), opts).unwrap();
    for r in &records {
        spool.append(r).unwrap();
    }
    let batch = spool.peek_batch(4, usize::MAX).unwrap();
    spool.ack(batch[3].0).unwrap();
    spool.sync().unwrap();
    let batch = spool.peek_batch(4, usize::MAX).unwrap();
    spool.ack(batch[3].0).unwrap();
    drop(spool); // crash before the second ack was synced
    let (mut spool, recovery) = Spool::open(dir.path(), opts).unwrap();
    assert!(recovery.ack_restored);
    // The 4 records acked after the sync come again; the first 4 do not.
    assert_eq!(drain(&mut spool), records[4..]);
}

#[test]
fn corrupt_ack_file_is_ignored() {
    let dir = TempDir::new("badack");
    let opts = small(100_000, 1 << 20);
    let records: Vec<Record> = (0..5).map(|i| rec(i, 40)).collect();
    let (mut spool, _) = Spool::open(dir.path(), opts).unwrap();
    for r in &records {
        spool.append(r).unwrap();
    }
    let batch = spool.peek_batch(2, usize::MAX).unwrap();
    spool.ack(batch[1].0).unwrap();
    spool.sync().unwrap();
    drop(spool);
    let ack = dir.path().join(ACK_FILE);
    let mut bytes = fs::read(&ack).unwrap();
    bytes[20] ^= 1;
    fs::write(&ack, &bytes).unwrap();
    let (mut spool, recovery) = Spool::open(dir.path(), opts).unwrap();
    assert!(!recovery.ack_restored);
    assert_eq!(drain(&mut spool), records);
}

#[test]
fn peek_limits() {
    let dir = TempDir::new("peek");
    let (mut spool, _) = Spool::open(dir.path(), small(500, 1 << 20)).unwrap();
    let records: Vec<Record> = (0..20).map(|i| rec(i, 94)).collect(); // 100 bytes each
    for r in &records {
        spool.append(r).unwrap();
    }
    assert_eq!(spool.peek_batch(0, usize::MAX).unwrap(), vec![]);
    assert_eq!(spool.peek_batch(3, usize::MAX).unwrap().len(), 3);
    assert_eq!(spool.peek_batch(100, 350).unwrap().len(), 3);
    assert_eq!(spool.peek_batch(100, 400).unwrap().len(), 4);
    // The first record comes even if it alone is over the byte limit.
    assert_eq!(spool.peek_batch(100, 10).unwrap().len(), 1);
    // Across segment boundaries, positions increase.
    let all = spool.peek_batch(100, usize::MAX).unwrap();
    assert_eq!(all.len(), 20);
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(all.first().unwrap().0.segment() < all.last().unwrap().0.segment());
}

#[test]
fn cap_drops_oldest_and_counts() {
    let dir = TempDir::new("cap");
    let opts = small(1000, 4000);
    let (mut spool, _) = Spool::open(dir.path(), opts).unwrap();
    let records: Vec<Record> = (0..200).map(|i| rec(i, 84)).collect(); // 100-byte entries
    let mut dropped = Dropped::default();
    for r in &records {
        dropped.add(spool.append(r).unwrap());
        let on_disk: u64 = dir
            .segments()
            .iter()
            .map(|p| fs::metadata(p).unwrap().len())
            .sum();
        assert!(on_disk <= opts.max_bytes, "{on_disk}");
        assert_eq!(spool.stats().bytes, on_disk);
    }
    assert!(dropped.records > 0);
    assert_eq!(spool.stats().dropped, dropped);
    let left = drain(&mut spool);
    assert_eq!(dropped.records as usize + left.len(), records.len());
    // What is left is the newest, in order.
    assert_eq!(left, records[records.len() - left.len()..]);
}

/// Dropped lines are the lines of the unsent records dropped, not of the
/// ones already acknowledged in the same segment, so that lines made =
/// lines delivered + lines dropped.
#[test]
fn drops_count_the_lines_of_unsent_records_only() {
    let dir = TempDir::new("cap-lines");
    let (mut spool, _) = Spool::open(dir.path(), small(1000, 4000)).unwrap();
    let lines = |i: usize| i % 3 + 1;
    let records: Vec<Record> = (0..120)
        .map(|i| {
            let mut r = rec(i, 30);
            r.data = r.data.repeat(lines(i));
            r
        })
        .collect();
    let mut delivered = Vec::new();
    let mut dropped = Dropped::default();
    for (i, r) in records.iter().enumerate() {
        dropped.add(spool.append(r).unwrap());
        if i % 10 == 9 {
            // Send a few now and then, as a slow link would.
            let batch = spool.peek_batch(3, 1 << 20).unwrap();
            if let Some((last, _)) = batch.last() {
                spool.ack(*last).unwrap();
            }
            delivered.extend(batch.into_iter().map(|(_, r)| r));
        }
    }
    delivered.extend(drain(&mut spool));
    assert!(dropped.records > 0);
    let count = |rs: &[Record]| rs.iter().map(|r| r.line_count() as u64).sum::<u64>();
    assert_eq!(count(&delivered) + dropped.lines, count(&records));
    assert_eq!(
        delivered.len() as u64 + dropped.records,
        records.len() as u64
    );
    assert_eq!(spool.stats().dropped, dropped);
}

#[test]
fn cap_with_reader_mid_segment() {
    let dir = TempDir::new("capmid");
    let opts = small(1000, 3000);
    let (mut spool, _) = Spool::open(dir.path(), opts).unwrap();
    let records: Vec<Record> = (0..100).map(|i| rec(i, 84)).collect();
    for r in &records[..5] {
        spool.append(r).unwrap();
    }
    let batch = spool.peek_batch(2, usize::MAX).unwrap();
    spool.ack(batch[1].0).unwrap();
    let mut dropped = 0;
    for r in &records[5..] {
        dropped += spool.append(r).unwrap().records;
    }
    let left = drain(&mut spool);
    assert_eq!(2 + dropped as usize + left.len(), records.len());
    assert_eq!(left, records[records.len() - left.len()..]);
}

#[test]
fn lower_cap_at_open_drops_oldest() {
    let dir = TempDir::new("lowercap");
    let records: Vec<Record> = (0..100).map(|i| rec(i, 84)).collect();
    let (mut spool, _) = Spool::open(dir.path(), small(1000, 1 << 20)).unwrap();
    for r in &records {
        spool.append(r).unwrap();
    }
    drop(spool);
    let (mut spool, recovery) = Spool::open(dir.path(), small(1000, 3000)).unwrap();
    assert!(recovery.dropped.records > 0);
    let left = drain(&mut spool);
    assert_eq!(recovery.dropped.records as usize + left.len(), 100);
    assert_eq!(left, records[100 - left.len()..]);
}

#[test]
fn truncated_last_entry_is_skipped_and_counted() {
    let dir = TempDir::new("torn");
    let records: Vec<Record> = (0..3).map(|i| rec(i, 50)).collect();
    let (mut spool, _) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    for r in &records {
        spool.append(r).unwrap();
    }
    drop(spool);
    let seg = dir.segments().pop().unwrap();
    let len = fs::metadata(&seg).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let (mut spool, recovery) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    assert_eq!(recovery.records, 2);
    assert_eq!(recovery.corrupt_segments, 1);
    assert_eq!(recovery.corrupt_bytes, entry_len(&records[2]) - 5);
    assert_eq!(spool.stats().corrupt_bytes, recovery.corrupt_bytes);
    // New data goes to a new segment and all of it is readable.
    spool.append(&records[2]).unwrap();
    assert_eq!(drain(&mut spool), records);
}

#[test]
fn garbage_tail_is_skipped_and_counted() {
    let dir = TempDir::new("garbage");
    let records: Vec<Record> = (0..3).map(|i| rec(i, 50)).collect();
    let (mut spool, _) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    for r in &records {
        spool.append(r).unwrap();
    }
    spool.sync().unwrap();
    drop(spool);
    let seg = dir.segments().pop().unwrap();
    // Pseudo-random bytes (xorshift), starting with a length too big to
    // be an entry.
    let mut x: u32 = 0x9E37_79B9;
    let mut garbage = vec![0xFF, 0xFF, 0xFF, 0x7F];
    garbage.extend((0..96).map(|_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as u8
    }));
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&garbage).unwrap();
    drop(f);
    let (mut spool, recovery) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    assert_eq!(recovery.records, 3);
    assert_eq!(recovery.corrupt_segments, 1);
    assert_eq!(recovery.corrupt_bytes, 100);
    assert_eq!(drain(&mut spool), records);
}

#[test]
fn flipped_bit_ends_segment() {
    let dir = TempDir::new("bitflip");
    let opts = small(100_000, 1 << 20);
    let records: Vec<Record> = (0..4).map(|i| rec(i, 50)).collect();
    let (mut spool, _) = Spool::open(dir.path(), opts).unwrap();
    for r in &records {
        spool.append(r).unwrap();
    }
    drop(spool);
    let seg = dir.segments().pop().unwrap();
    let mut bytes = fs::read(&seg).unwrap();
    let second = (HEADER_LEN + entry_len(&records[0])) as usize;
    bytes[second + 20] ^= 0x10;
    fs::write(&seg, &bytes).unwrap();
    let (mut spool, recovery) = Spool::open(dir.path(), opts).unwrap();
    assert_eq!(recovery.records, 1);
    assert_eq!(
        recovery.corrupt_bytes,
        records[1..].iter().map(entry_len).sum::<u64>()
    );
    assert_eq!(drain(&mut spool), records[..1]);
}

#[test]
fn corruption_found_while_reading_is_skipped() {
    let dir = TempDir::new("readcorrupt");
    let opts = small(100_000, 1 << 20);
    let records: Vec<Record> = (0..4).map(|i| rec(i, 50)).collect();
    let (mut spool, _) = Spool::open(dir.path(), opts).unwrap();
    for r in &records {
        spool.append(r).unwrap();
    }
    // Someone damages the segment being written.
    let seg = dir.segments().pop().unwrap();
    let mut bytes = fs::read(&seg).unwrap();
    let third = (HEADER_LEN + 2 * entry_len(&records[0])) as usize;
    bytes[third + 12] ^= 0xFF;
    fs::write(&seg, &bytes).unwrap();
    assert_eq!(peek_all(&mut spool), records[..2]);
    assert_eq!(spool.stats().corrupt_segments, 1);
    assert_eq!(spool.stats().corrupt_bytes, 2 * entry_len(&records[0]));
    // Appends continue in a new segment and are readable.
    spool.append(&records[3]).unwrap();
    let mut want = records[..2].to_vec();
    want.push(records[3].clone());
    assert_eq!(drain(&mut spool), want);
}

#[test]
fn segment_deleted_behind_our_back_is_skipped() {
    let dir = TempDir::new("deleted");
    let opts = small(300, 1 << 20);
    let records: Vec<Record> = (0..12).map(|i| rec(i, 84)).collect(); // 100-byte entries
    let (mut spool, _) = Spool::open(dir.path(), opts).unwrap();
    for r in &records {
        spool.append(r).unwrap();
    }
    let first = dir.segments().remove(0);
    let lost = spool.segments[0].entries as usize;
    fs::remove_file(&first).unwrap();
    assert_eq!(drain(&mut spool), records[lost..]);
    assert_eq!(spool.stats().corrupt_segments, 1);
}

#[test]
fn empty_torn_and_foreign_files() {
    let dir = TempDir::new("files");
    fs::create_dir_all(dir.path()).unwrap();
    // A segment torn at creation, one with only a header, a file that is
    // not ours, and a leftover temporary ack file.
    fs::write(dir.path().join(seg_name(1)), b"").unwrap();
    let mut header = SEG_MAGIC.to_vec();
    header.push(VERSION);
    header.extend_from_slice(&[0; 8]);
    fs::write(dir.path().join(seg_name(2)), &header).unwrap();
    fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
    fs::write(dir.path().join(ACK_TMP), b"junk").unwrap();
    let (mut spool, recovery) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    assert_eq!(recovery.corrupt_bytes, 0);
    assert_eq!(recovery.records, 0);
    assert!(!dir.path().join(seg_name(1)).exists());
    assert!(!dir.path().join(seg_name(2)).exists());
    assert!(!dir.path().join(ACK_TMP).exists());
    assert!(dir.path().join("notes.txt").exists());
    // New segments continue after the highest id seen.
    spool.append(&rec(1, 20)).unwrap();
    assert_eq!(dir.segments(), vec![dir.path().join(seg_name(3))]);
}

#[test]
fn newer_format_version_is_an_error() {
    let dir = TempDir::new("version");
    fs::create_dir_all(dir.path()).unwrap();
    let mut header = SEG_MAGIC.to_vec();
    header.push(VERSION + 1);
    header.extend_from_slice(&[0; 8]);
    let path = dir.path().join(seg_name(7));
    fs::write(&path, &header).unwrap();
    match Spool::open(dir.path(), SpoolOptions::default()) {
        Err(SpoolError::UnsupportedVersion { path: p, version }) => {
            assert_eq!(p, path);
            assert_eq!(version, VERSION + 1);
        }
        other => panic!("{other:?}"),
    }
    assert!(path.exists(), "left untouched");
}

#[test]
fn unusable_directory_error_names_path() {
    let dir = TempDir::new("unusable");
    fs::create_dir_all(dir.path()).unwrap();
    let file = dir.path().join("a-file");
    fs::write(&file, b"x").unwrap();
    let spool_dir = file.join("spool");
    let err = Spool::open(&spool_dir, SpoolOptions::default()).unwrap_err();
    assert!(matches!(&err, SpoolError::Dir { path, .. } if *path == spool_dir));
    assert!(
        err.to_string().contains(&*spool_dir.to_string_lossy()),
        "{err}"
    );
}

#[test]
fn bad_options_rejected() {
    let dir = TempDir::new("opts");
    assert!(matches!(
        Spool::open(dir.path(), small(HEADER_LEN, 1000)),
        Err(SpoolError::BadOptions { .. })
    ));
    assert!(matches!(
        Spool::open(dir.path(), small(1000, 999)),
        Err(SpoolError::BadOptions { .. })
    ));
}

#[test]
fn creates_missing_directory() {
    let dir = TempDir::new("mkdir");
    let nested = dir.path().join("a/b/c");
    let (mut spool, _) = Spool::open(&nested, SpoolOptions::default()).unwrap();
    assert_eq!(spool.dir(), nested);
    spool.append(&rec(1, 20)).unwrap();
    spool.sync().unwrap();
    assert!(nested.join(ACK_FILE).exists() || !spool.is_empty());
}

/// A valid encoded entry, for building hostile segment files.
fn encode(r: &Record) -> Vec<u8> {
    let key = r.partition_key.as_bytes();
    let len = ((2 + key.len() + r.data.len()) as u32).to_le_bytes();
    let mut payload = (key.len() as u16).to_le_bytes().to_vec();
    payload.extend_from_slice(key);
    payload.extend_from_slice(&r.data);
    let mut c = Crc32::new();
    c.update(&len);
    c.update(&payload);
    let mut out = len.to_vec();
    out.extend_from_slice(&c.finish().to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

#[test]
fn encode_matches_append() {
    let dir = TempDir::new("encode");
    let (mut spool, _) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    let r = rec(42, 30);
    spool.append(&r).unwrap();
    let bytes = fs::read(dir.segments().pop().unwrap()).unwrap();
    assert_eq!(&bytes[HEADER_LEN as usize..], &encode(&r)[..]);
}

/// Chunks of a hostile segment file.
#[derive(Debug, Clone)]
enum Chunk {
    Valid(usize),
    Random(Vec<u8>),
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any bytes as a segment file (with or without a valid header, valid
    /// entries mixed with garbage): opening and reading never panic, only
    /// the valid prefix is replayed, and skipped bytes are counted.
    #[test]
    fn random_segment_never_panics(
        header in any::<bool>(),
        chunks in proptest::collection::vec(
            prop_oneof![
                (1usize..200).prop_map(Chunk::Valid),
                proptest::collection::vec(any::<u8>(), 0..300).prop_map(Chunk::Random),
            ],
            0..8,
        ),
    ) {
        let dir = TempDir::new("prop-random");
        fs::create_dir_all(dir.path()).unwrap();
        let mut bytes = Vec::new();
        if header {
            bytes.extend_from_slice(SEG_MAGIC);
            bytes.push(VERSION);
            bytes.extend_from_slice(&[0; 8]);
        }
        let mut valid_prefix = Vec::new();
        let mut clean = header;
        for (i, chunk) in chunks.iter().enumerate() {
            match chunk {
                Chunk::Valid(len) => {
                    let r = rec(i, *len);
                    bytes.extend_from_slice(&encode(&r));
                    if clean { valid_prefix.push(r); }
                }
                Chunk::Random(b) => {
                    bytes.extend_from_slice(b);
                    if !b.is_empty() { clean = false; }
                }
            }
        }
        let path = dir.path().join(seg_name(5));
        fs::write(&path, &bytes).unwrap();
        let (mut spool, recovery) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
        let got = drain(&mut spool);
        for r in &got {
            prop_assert!(r.validate().is_ok());
        }
        // Random bytes may by chance continue the valid prefix, never cut it.
        prop_assert!(got.len() >= valid_prefix.len());
        prop_assert_eq!(&got[..valid_prefix.len()], &valid_prefix[..]);
        let replayed: u64 = got.iter().map(entry_len).sum();
        if header || !got.is_empty() {
            prop_assert_eq!(HEADER_LEN + replayed + recovery.corrupt_bytes, bytes.len() as u64);
        } else {
            prop_assert_eq!(recovery.corrupt_bytes, bytes.len() as u64);
        }
    }

    /// Any bytes as the ack file are harmless.
    #[test]
    fn random_ack_file_never_panics(ack in proptest::collection::vec(any::<u8>(), 0..64)) {
        let dir = TempDir::new("prop-ack");
        let records: Vec<Record> = (0..3).map(|i| rec(i, 30)).collect();
        let (mut spool, _) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
        for r in &records { spool.append(r).unwrap(); }
        drop(spool);
        fs::write(dir.path().join(ACK_FILE), &ack).unwrap();
        let (mut spool, _) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
        prop_assert_eq!(drain(&mut spool), records);
    }
}

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    PeekAck(usize),
    Sync,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..120).prop_map(Op::Append),
        3 => (1usize..10).prop_map(Op::PeekAck),
        1 => Just(Op::Sync),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    // Every segment roll fsyncs (on purpose): keep the case count modest.
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The spool against a model queue, with many small segments and no
    /// cap pressure: records come out in order; after a reopen the replay
    /// starts somewhere between the last synced ack and the last ack
    /// (at-least-once, never skipping an unacknowledged record).
    #[test]
    fn spool_matches_model(ops in proptest::collection::vec(op(), 1..80)) {
        let dir = TempDir::new("prop-model");
        let opts = small(800, 1 << 24);
        let (mut spool, _) = Spool::open(dir.path(), opts).unwrap();
        let mut model: Vec<Record> = Vec::new();
        let mut acked = 0usize;
        let mut synced = 0usize;
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Append(len) => {
                    let r = rec(i, len);
                    prop_assert_eq!(spool.append(&r).unwrap(), Dropped::default());
                    model.push(r);
                }
                Op::PeekAck(n) => {
                    let batch = spool.peek_batch(n, usize::MAX).unwrap();
                    let want = &model[acked..(acked + n).min(model.len())];
                    let got: Vec<Record> = batch.iter().map(|(_, r)| r.clone()).collect();
                    prop_assert_eq!(&got[..], want);
                    if let Some((pos, _)) = batch.last() {
                        spool.ack(*pos).unwrap();
                        acked += batch.len();
                    }
                }
                Op::Sync => {
                    spool.sync().unwrap();
                    synced = acked;
                }
                Op::Reopen => {
                    drop(spool);
                    let (s, recovery) = Spool::open(dir.path(), opts).unwrap();
                    spool = s;
                    prop_assert_eq!(recovery.corrupt_bytes, 0);
                    let pending = recovery.records as usize;
                    prop_assert!(pending <= model.len() - synced);
                    prop_assert!(pending >= model.len() - acked);
                    acked = model.len() - pending;
                    synced = synced.min(acked);
                }
            }
            prop_assert_eq!(spool.pending_records() as usize, model.len() - acked);
        }
        prop_assert_eq!(drain(&mut spool), model[acked..].to_vec());
    }

    /// With a tight cap: every record appended is delivered, dropped
    /// (and counted) or still pending; what is delivered is in order.
    #[test]
    fn cap_conserves_counts(ops in proptest::collection::vec(op(), 1..120)) {
        let dir = TempDir::new("prop-cap");
        let opts = small(700, 2800);
        let (mut spool, _) = Spool::open(dir.path(), opts).unwrap();
        let mut appended = 0u64;
        let mut delivered: Vec<Record> = Vec::new();
        let mut dropped = 0u64;
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Append(len) => {
                    dropped += spool.append(&rec(i, len)).unwrap().records;
                    appended += 1;
                }
                Op::PeekAck(n) => {
                    let batch = spool.peek_batch(n, usize::MAX).unwrap();
                    if let Some((pos, _)) = batch.last() {
                        spool.ack(*pos).unwrap();
                    }
                    delivered.extend(batch.into_iter().map(|(_, r)| r));
                }
                Op::Sync | Op::Reopen => spool.sync().unwrap(),
            }
            prop_assert!(spool.stats().bytes <= opts.max_bytes);
            prop_assert_eq!(appended, delivered.len() as u64 + dropped + spool.pending_records());
        }
        delivered.extend(drain(&mut spool));
        prop_assert_eq!(appended, delivered.len() as u64 + dropped);
        // Keys are 6-digit hex of the append index: increasing.
        prop_assert!(delivered.windows(2).all(|w| w[0].partition_key < w[1].partition_key));
    }
}
