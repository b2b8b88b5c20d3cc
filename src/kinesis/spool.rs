//! The on-disk spool: records that cannot be sent now (offline, throttled,
//! stream missing, shutdown) wait here, oldest first, until the sender
//! acknowledges them as delivered.
//!
//! # Format
//!
//! The spool directory holds segment files `NNNNNNNNNNNNNNNNNNNN.seg`
//! (20-digit zero-padded id, increasing; oldest = lowest) and an `ack`
//! file. Everything is little-endian.
//!
//! ```text
//! segment = header entry*
//! header  = "AKSPOOL" version:u8 (=1) created_unix_ms:u64          16 bytes
//! entry   = len:u32 crc:u32 key_len:u16 key:[u8; key_len] data:[u8]
//!           len = 2 + key_len + data.len()   (3 ..= 2 + 1 MiB)
//!           crc = CRC-32/IEEE over the 4 len bytes then the len payload bytes
//! ack     = "AKACK\0\0" version:u8 (=1) segment:u64 offset:u64 index:u64
//!           crc:u32 (CRC-32 of the 32 bytes before it)                 36 bytes
//! ```
//!
//! Segments are append-only: a process appends only to the segment it
//! created (on open it always starts a new one), and rolls to a new one
//! past `segment_bytes`. Whole segments are deleted once every entry in
//! them is acknowledged, or when the spool is over `max_bytes` (oldest
//! first; the records lost are counted and returned).
//!
//! # Durability and crashes
//!
//! - [`Spool::append`] writes the entry with one `write` call: once it
//!   returns, the record survives a crash of this process, but not a power
//!   loss. A segment is fsynced when it is rolled (every `segment_bytes`,
//!   default 4 MiB) and on [`Spool::sync`], never per record: SD cards wear
//!   out. Records appended since the last roll or sync can be lost on power
//!   loss; call `sync` at shutdown.
//! - A torn or corrupt entry (power loss mid-write, garbage, bit rot) fails
//!   its length or CRC check. Everything from the first bad entry to the end
//!   of that segment is skipped and counted in bytes ([`Recovery`],
//!   [`SpoolStats`]); other segments are unaffected. This never panics.
//! - Acknowledgements are kept in memory and written to `ack` (write to a
//!   temporary file, fsync, rename) only on [`Spool::sync`], to spare the
//!   card. After a crash, records acknowledged since the last `sync` are
//!   replayed and sent again: delivery is at-least-once, never at-most-once.
//!   An `ack` file that is missing, corrupt or points at a position that no
//!   longer exists is ignored and the whole oldest segment is replayed.
//! - On open the segments are replayed oldest first, from the saved ack
//!   position; the caller sends them before new data.
//!
//! Opening reads and checks every segment once (up to `max_bytes`), so a
//! full spool costs a few seconds at start on a Pi.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod format;

use super::crc32::{crc32, Crc32};
use super::record::{Record, RecordError};
use format::*;

/// Default `--spool-max-bytes`.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Default segment size: a 256 MiB spool has 64 of them, so dropping the
/// oldest loses at most 1/64 of it.
pub const DEFAULT_SEGMENT_BYTES: u64 = 4 * 1024 * 1024;

/// Spool size settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolOptions {
    /// Cap on the segment files' total size (`--spool-max-bytes`); beyond
    /// it the oldest segments are dropped.
    pub max_bytes: u64,
    /// A segment is rolled (fsynced, closed, a new one started) once the
    /// next entry would take it past this size.
    pub segment_bytes: u64,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        SpoolOptions {
            max_bytes: DEFAULT_MAX_BYTES,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
        }
    }
}

/// A spool problem. I/O errors name the file or directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// The spool directory cannot be created or read.
    #[error("spool directory {}: {source}", path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A spool file cannot be created, written, synced or removed.
    #[error("spool file {}: {op}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What was being done: "create", "write", "sync", ...
        op: &'static str,
        /// Why it failed.
        source: io::Error,
    },
    /// A segment written by a newer format version; left untouched.
    #[error("spool file {}: format version {version}, this program reads {VERSION}", path.display())]
    UnsupportedVersion {
        /// The segment.
        path: PathBuf,
        /// The version byte in its header.
        version: u8,
    },
    /// `segment_bytes` must exceed the header and `max_bytes` must be at
    /// least `segment_bytes`.
    #[error("spool options: segment size {segment_bytes} and max size {max_bytes} do not fit (need {HEADER_LEN} < segment <= max)")]
    BadOptions {
        /// The spool's size cap, bytes.
        max_bytes: u64,
        /// The segment size, bytes.
        segment_bytes: u64,
    },
    /// The record alone is bigger than the whole spool may be.
    #[error("record for {key} needs {size} bytes in the spool; spool-max-bytes is {max_bytes}")]
    TooLarge {
        /// The record's partition key.
        key: String,
        /// The record's size in the spool, bytes.
        size: u64,
        /// The spool's size cap, bytes.
        max_bytes: u64,
    },
    /// The record breaks a Kinesis limit and could never be sent.
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// Where a spooled record ends; give it back to [`Spool::ack`]. Ordered
/// like the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpoolPos {
    segment: u64,
    /// Byte offset just past the entry.
    offset: u64,
    /// Index of the entry within its segment.
    index: u64,
}

impl SpoolPos {
    /// Segment id (the file name's number).
    pub fn segment(&self) -> u64 {
        self.segment
    }

    /// Byte offset just past the entry in its segment.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

/// What [`Spool::open`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Segments kept (with records to replay).
    pub segments: usize,
    /// Records to replay.
    pub records: u64,
    /// Bytes of segment files kept.
    pub bytes: u64,
    /// Segments with a torn or corrupt part (header or tail).
    pub corrupt_segments: u64,
    /// Bytes skipped as torn or corrupt.
    pub corrupt_bytes: u64,
    /// Records dropped because the spool was over `max_bytes` (e.g. after
    /// the cap was lowered).
    pub dropped: Dropped,
    /// The saved ack position was found and used.
    pub ack_restored: bool,
    /// A new segment could not be started because the disk is full: the
    /// spool opened anyway (what it holds can be sent) and tries again at
    /// the next append.
    pub start_error: Option<String>,
}

/// The disk (or the user's quota) is full.
pub fn is_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Records lost to the size cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Records dropped.
    pub records: u64,
    /// Bytes of those records.
    pub bytes: u64,
    /// SBS lines in those records (a record holds one or more, see
    /// [`crate::kinesis::record`]), so that what was lost can be set
    /// against lines made. Not known for segments removed from under the
    /// spool ([`Spool::check_dir`]), which only count records.
    pub lines: u64,
}

impl Dropped {
    fn add(&mut self, other: Dropped) {
        self.records += other.records;
        self.bytes += other.bytes;
        self.lines += other.lines;
    }
}

/// Spool depth and lifetime counters, for the stats line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Records not yet acknowledged.
    pub records: u64,
    /// Bytes of segment files on disk.
    pub bytes: u64,
    /// Segment files on disk.
    pub segments: usize,
    /// Records dropped by the size cap since open (including at open).
    pub dropped: Dropped,
    /// Torn or corrupt bytes skipped since open (including at open).
    pub corrupt_bytes: u64,
    /// Segment files found torn or corrupt since open.
    pub corrupt_segments: u64,
    /// Bytes written to segment files since open (headers and entries):
    /// the wear the spool puts on an SD card.
    pub written_bytes: u64,
}

/// An on-disk FIFO of [`Record`]s with acknowledgement. See the module
/// docs for the format and crash behaviour.
///
/// Use: [`Spool::append`] what cannot be sent; [`Spool::peek_batch`] the
/// oldest records, send them, then [`Spool::ack`] the last position sent
/// successfully; [`Spool::sync`] at shutdown and now and then.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    opts: SpoolOptions,
    /// Oldest first. When `writer` is set it appends to the last one.
    segments: VecDeque<Segment>,
    writer: Option<File>,
    /// Acknowledged prefix of `segments[0]`: byte offset and entry count.
    head_offset: u64,
    head_index: u64,
    next_id: u64,
    total_bytes: u64,
    ack_dirty: bool,
    dropped: Dropped,
    corrupt_bytes: u64,
    corrupt_segments: u64,
    /// Reused entry encoding buffer.
    buf: Vec<u8>,
    /// The size cap in force: `max_bytes`, or less when the file system
    /// has less free ([`Spool::refresh_cap`]).
    cap: u64,
    /// Device and inode of `dir` when opened, to notice it being removed.
    dir_id: Option<(u64, u64)>,
    /// See [`SpoolStats::written_bytes`].
    written_bytes: u64,
}

/// Free space kept for the rest of the system: 5 % of the file system, at
/// most 64 MiB. A spool that filled the card would stop the Pi's logs and
/// updates too.
pub fn reserve_bytes(fs_size: u64) -> u64 {
    (fs_size / 20).min(64 * 1024 * 1024)
}

/// Size and free bytes (for an unprivileged user) of the file system that
/// holds `dir` (statvfs(3)).
fn fs_space(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable
    // statvfs that the call fills in.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frsize = st.f_frsize as u64;
    Some((st.f_blocks as u64 * frsize, st.f_bavail as u64 * frsize))
}

fn dir_id(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

impl Spool {
    /// Open (creating if needed) the spool in `dir`, check every segment,
    /// and position the reader at the saved ack point. Torn or corrupt
    /// data is skipped and counted in the returned [`Recovery`]; it is
    /// never an error. Errors are about the directory or files themselves
    /// (missing permissions, read-only file system) and name the path.
    pub fn open(
        dir: impl AsRef<Path>,
        opts: SpoolOptions,
    ) -> Result<(Spool, Recovery), SpoolError> {
        let dir = dir.as_ref().to_path_buf();
        if opts.segment_bytes <= HEADER_LEN || opts.max_bytes < opts.segment_bytes {
            return Err(SpoolError::BadOptions {
                max_bytes: opts.max_bytes,
                segment_bytes: opts.segment_bytes,
            });
        }
        let dir_err = |source| SpoolError::Dir {
            path: dir.clone(),
            source,
        };
        fs::create_dir_all(&dir).map_err(dir_err)?;
        let ack = read_ack(&dir);
        let mut ids = Vec::new();
        for entry in fs::read_dir(&dir).map_err(dir_err)? {
            let entry = entry.map_err(dir_err)?;
            if let Some(id) = entry.file_name().to_str().and_then(parse_seg_name) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        remove_file(&dir.join(ACK_TMP))?;

        let mut spool = Spool {
            dir,
            opts,
            segments: VecDeque::new(),
            writer: None,
            head_offset: HEADER_LEN,
            head_index: 0,
            next_id: 1,
            total_bytes: 0,
            ack_dirty: false,
            dropped: Dropped::default(),
            corrupt_bytes: 0,
            corrupt_segments: 0,
            buf: Vec::new(),
            cap: opts.max_bytes,
            dir_id: None,
            written_bytes: 0,
        };
        spool.dir_id = dir_id(&spool.dir);
        let mut recovery = Recovery::default();
        let mut max_id = ack.map_or(0, |a| a.segment);
        for id in ids {
            max_id = max_id.max(id);
            let path = spool.seg_path(id);
            if ack.is_some_and(|a| id < a.segment) {
                // Fully acknowledged before the last sync; the unlink was
                // lost in a crash.
                remove_file(&path)?;
                continue;
            }
            let want = ack.filter(|a| a.segment == id).map(|a| a.offset);
            let Some((seg, scan_want)) = spool.load_segment(id, want)? else {
                continue;
            };
            if let Some(index) = scan_want {
                spool.head_offset = want.unwrap_or(HEADER_LEN);
                spool.head_index = index;
                recovery.ack_restored = true;
            }
            spool.total_bytes += seg.file_len;
            spool.segments.push_back(seg);
        }
        if let (Some(a), false) = (ack, recovery.ack_restored) {
            // If the acked segment is gone, all of it was delivered and
            // reading from the oldest remaining segment is exact. If it is
            // there but the offset is not an entry boundary, the position
            // is unusable and the whole segment is replayed (at-least-once).
            recovery.ack_restored = spool.segments.front().is_none_or(|s| s.id > a.segment);
        }
        spool.next_id = max_id.saturating_add(1);
        // A fully acknowledged oldest segment can go now.
        spool.remove_acked_front()?;
        spool.refresh_cap();
        recovery.dropped = spool.enforce_cap(0)?;
        let stats = spool.stats();
        recovery.segments = stats.segments;
        recovery.records = stats.records;
        recovery.bytes = stats.bytes;
        recovery.corrupt_bytes = spool.corrupt_bytes;
        recovery.corrupt_segments = spool.corrupt_segments;
        // Created now, not at the first append, so an unwritable directory
        // is reported at start. A full disk is not a reason not to start:
        // what is spooled can still be sent, and appending is tried again.
        match spool.start_segment() {
            Ok(()) => {}
            Err(SpoolError::File { source, .. }) if is_full(&source) => {
                recovery.start_error = Some(source.to_string());
            }
            Err(e) => return Err(e),
        }
        Ok((spool, recovery))
    }

    /// Sets the cap in force: `max_bytes`, or what the spool holds plus
    /// the file system's free space less [`reserve_bytes`], whichever is
    /// smaller. Called at open and whenever a segment is started, so the
    /// spool shrinks its cap as the card fills with other things.
    pub fn refresh_cap(&mut self) {
        self.cap = match fs_space(&self.dir) {
            Some((size, free)) => self
                .opts
                .max_bytes
                .min(self.total_bytes + free.saturating_sub(reserve_bytes(size))),
            None => self.opts.max_bytes,
        };
    }

    /// The cap in force (see [`Spool::refresh_cap`]).
    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// After a failed write (a full disk, a bad card): closes the segment
    /// being written and drops the oldest segment to make room. What it
    /// dropped is counted, as the size cap's drops are.
    pub fn relieve(&mut self) -> Dropped {
        if let Some(file) = self.writer.take() {
            // Its data is on disk as far as it got; a sync error changes
            // nothing now.
            let _ = file.sync_data();
        }
        let dropped = self.drop_front().ok().flatten().unwrap_or_default();
        self.refresh_cap();
        self.dropped.add(dropped);
        dropped
    }

    /// Counts records that could not be spooled at all (the disk refused
    /// them even after [`Spool::relieve`]) with the dropped ones.
    pub fn count_lost(&mut self, record: &Record) {
        self.dropped.add(Dropped {
            records: 1,
            bytes: record.data.len() as u64,
            lines: record.line_count() as u64,
        });
    }

    /// Whether the directory is still the one opened. When it was removed
    /// (or replaced), the segments in it are gone with it: they are
    /// counted as dropped, the directory is made again and appending
    /// starts over in it. `Some` with what was lost when that happened.
    pub fn check_dir(&mut self) -> Option<Dropped> {
        let now = dir_id(&self.dir);
        if now.is_some() && now == self.dir_id {
            return None;
        }
        let lost = Dropped {
            records: self.pending_records(),
            bytes: self.total_bytes,
            lines: 0,
        };
        self.writer = None;
        self.segments.clear();
        self.total_bytes = 0;
        self.head_offset = HEADER_LEN;
        self.head_index = 0;
        self.ack_dirty = true;
        let _ = fs::create_dir_all(&self.dir);
        self.dir_id = dir_id(&self.dir);
        self.dropped.add(lost);
        Some(lost)
    }

    fn seg_path(&self, id: u64) -> PathBuf {
        self.dir.join(seg_name(id))
    }

    /// Check segment `id` at open. `None` if it has nothing readable (it is
    /// removed). With `want`, also says whether that offset is an entry
    /// boundary and how many entries precede it.
    fn load_segment(
        &mut self,
        id: u64,
        want: Option<u64>,
    ) -> Result<Option<(Segment, Option<u64>)>, SpoolError> {
        let path = self.seg_path(id);
        let mut file = File::open(&path).map_err(file_err(&path, "open"))?;
        let file_len = file.metadata().map_err(file_err(&path, "stat"))?.len();
        let mut header = [0u8; HEADER_LEN as usize];
        let header_ok = file_len >= HEADER_LEN && file.read_exact(&mut header).is_ok();
        if header_ok && &header[..7] == SEG_MAGIC && header[7] != VERSION {
            return Err(SpoolError::UnsupportedVersion {
                path,
                version: header[7],
            });
        }
        if !header_ok || &header[..7] != SEG_MAGIC {
            // A file torn while being created (size 0 or a partial header)
            // held no records; anything longer is garbage worth reporting.
            if file_len > 0 {
                self.corrupt_segments += 1;
                self.corrupt_bytes += file_len;
            }
            remove_file(&path)?;
            return Ok(None);
        }
        let mut ms = [0u8; 8];
        ms.copy_from_slice(&header[8..16]);
        let created = UNIX_EPOCH + Duration::from_millis(u64::from_le_bytes(ms));
        let scan = scan_entries(file, file_len, want);
        if scan.valid_len < file_len {
            self.corrupt_segments += 1;
            self.corrupt_bytes += file_len - scan.valid_len;
        }
        if scan.entries == 0 {
            remove_file(&path)?;
            return Ok(None);
        }
        Ok(Some((
            Segment {
                id,
                valid_len: scan.valid_len,
                file_len,
                entries: scan.entries,
                created,
            },
            scan.want_index,
        )))
    }

    /// Create a new segment to append to, if there is none.
    fn start_segment(&mut self) -> Result<(), SpoolError> {
        if self.writer.is_some() {
            return Ok(());
        }
        self.refresh_cap();
        let id = self.next_id;
        let path = self.seg_path(id);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(file_err(&path, "create"))?;
        self.next_id = self.next_id.saturating_add(1);
        let created = SystemTime::now();
        let mut header = [0u8; HEADER_LEN as usize];
        header[..7].copy_from_slice(SEG_MAGIC);
        header[7] = VERSION;
        header[8..].copy_from_slice(&unix_ms(created).to_le_bytes());
        if let Err(e) = file.write_all(&header) {
            // Leave nothing half-made behind; the next attempt uses a new id.
            let _ = fs::remove_file(&path);
            return Err(file_err(&path, "write")(e));
        }
        // The new name (and any unlinks before it) reach the disk with the
        // directory; the header itself is synced with the first roll/sync.
        sync_dir(&self.dir)?;
        self.segments.push_back(Segment {
            id,
            valid_len: HEADER_LEN,
            file_len: HEADER_LEN,
            entries: 0,
            created,
        });
        self.total_bytes += HEADER_LEN;
        self.written_bytes += HEADER_LEN;
        self.writer = Some(file);
        Ok(())
    }

    /// Fsync and close the segment being appended to.
    fn seal(&mut self) -> Result<(), SpoolError> {
        if let Some(file) = self.writer.take() {
            if let Some(seg) = self.segments.back() {
                let path = self.seg_path(seg.id);
                file.sync_data().map_err(file_err(&path, "fsync"))?;
            }
        }
        Ok(())
    }

    fn is_active(&self, index: usize) -> bool {
        self.writer.is_some() && index + 1 == self.segments.len()
    }

    /// Remove the oldest segment, resetting the read head.
    fn pop_front(&mut self) -> Result<Option<Segment>, SpoolError> {
        let Some(seg) = self.segments.pop_front() else {
            return Ok(None);
        };
        if self.writer.is_some() && self.segments.is_empty() {
            self.writer = None;
        }
        self.total_bytes -= seg.file_len;
        self.head_offset = HEADER_LEN;
        self.head_index = 0;
        self.ack_dirty = true;
        remove_file(&self.seg_path(seg.id))?;
        Ok(Some(seg))
    }

    /// Removes the oldest segment; what of it was not yet acknowledged
    /// (the records dropped), `None` when there is none.
    fn drop_front(&mut self) -> Result<Option<Dropped>, SpoolError> {
        let Some(front) = self.segments.front() else {
            return Ok(None);
        };
        let lost = Dropped {
            records: front.entries.saturating_sub(self.head_index),
            bytes: front.valid_len.saturating_sub(self.head_offset),
            lines: self.count_lines(front.id, self.head_offset, front.valid_len),
        };
        Ok(self.pop_front()?.map(|_| lost))
    }

    /// SBS lines in the entries of segment `id` from `offset` to
    /// `valid_len`: read back only when a segment is dropped unsent, which
    /// a spool that keeps up never does. An unreadable rest counts 0.
    fn count_lines(&self, id: u64, offset: u64, valid_len: u64) -> u64 {
        let Ok(mut file) = File::open(self.seg_path(id)) else {
            return 0;
        };
        if offset >= valid_len || file.seek(SeekFrom::Start(offset)).is_err() {
            return 0;
        }
        let mut r = BufReader::with_capacity(64 * 1024, file);
        let (mut left, mut lines, mut buf) = (valid_len - offset, 0, Vec::new());
        while let Ok(Some(n)) = read_entry(&mut r, left, &mut buf) {
            left -= n;
            if let Some((_, data)) = payload_parts(&buf) {
                lines += super::record::record_lines(data).count() as u64;
            }
        }
        lines
    }

    /// Drop the oldest segment if it is fully acknowledged and not being
    /// appended to.
    fn remove_acked_front(&mut self) -> Result<(), SpoolError> {
        let done = self
            .segments
            .front()
            .is_some_and(|s| self.head_index >= s.entries || self.head_offset >= s.valid_len);
        if done && !self.is_active(0) {
            self.pop_front()?;
        }
        Ok(())
    }

    /// Drop oldest segments until `extra` more bytes fit under the cap.
    fn enforce_cap(&mut self, extra: u64) -> Result<Dropped, SpoolError> {
        let mut dropped = Dropped::default();
        while self.total_bytes + extra > self.cap {
            if self.segments.len() > 1 || (self.writer.is_none() && !self.segments.is_empty()) {
                if let Some(d) = self.drop_front()? {
                    dropped.add(d);
                }
            } else if self.segments.front().is_some_and(|s| s.entries > 0) {
                // Only the active segment is left and it is too big: start
                // a new one so this one can go.
                self.seal()?;
                self.start_segment()?;
            } else {
                // Nothing left to drop (cannot happen: callers check that
                // `extra` fits in an empty spool).
                break;
            }
        }
        self.dropped.add(dropped);
        Ok(dropped)
    }

    /// Append a record. Returns what the size cap dropped to make room
    /// (usually nothing); the caller warns and counts. A record that breaks
    /// a Kinesis limit is refused (it could never be sent).
    pub fn append(&mut self, record: &Record) -> Result<Dropped, SpoolError> {
        record.validate()?;
        let key = record.partition_key.as_bytes();
        let payload = 2 + key.len() + record.data.len();
        let need = ENTRY_PREFIX + payload as u64;
        if HEADER_LEN + need > self.opts.max_bytes {
            return Err(SpoolError::TooLarge {
                key: record.partition_key.clone(),
                size: HEADER_LEN + need,
                max_bytes: self.opts.max_bytes,
            });
        }
        // validate(): key <= 256 chars = at most 1024 bytes, fits u16.
        let key_len = key.len() as u16;
        let len = (payload as u32).to_le_bytes();
        self.buf.clear();
        self.buf.extend_from_slice(&len);
        self.buf.extend_from_slice(&[0; 4]);
        self.buf.extend_from_slice(&key_len.to_le_bytes());
        self.buf.extend_from_slice(key);
        self.buf.extend_from_slice(&record.data);
        let mut crc = Crc32::new();
        crc.update(&len);
        crc.update(&self.buf[8..]);
        self.buf[4..8].copy_from_slice(&crc.finish().to_le_bytes());

        if let Some(seg) = self.segments.back() {
            if self.writer.is_some()
                && seg.entries > 0
                && seg.valid_len + need > self.opts.segment_bytes
            {
                self.seal()?;
            }
        }
        let header = if self.writer.is_none() { HEADER_LEN } else { 0 };
        let dropped = self.enforce_cap(need + header)?;
        self.start_segment()?;

        let (Some(file), Some(seg)) = (self.writer.as_mut(), self.segments.back_mut()) else {
            // start_segment() succeeded, so both exist.
            return Ok(dropped);
        };
        if let Err(e) = file.write_all(&self.buf) {
            // Part of the entry may be on disk: stop appending here (reads
            // stop at valid_len; a reopen counts the torn tail) and start
            // a new segment next time.
            let on_disk = file
                .metadata()
                .map(|m| m.len())
                .unwrap_or(seg.valid_len + need);
            self.total_bytes += on_disk.saturating_sub(seg.file_len);
            seg.file_len = on_disk.max(seg.file_len);
            let id = seg.id;
            self.writer = None;
            let path = self.seg_path(id);
            return Err(file_err(&path, "write")(e));
        }
        seg.valid_len += need;
        seg.file_len += need;
        seg.entries += 1;
        self.total_bytes += need;
        self.written_bytes += need;
        Ok(dropped)
    }

    /// The oldest unacknowledged records, in order: at most `max_records`,
    /// and at most `max_bytes` of data + keys, except that the first record
    /// is always returned (so a small limit cannot stall the spool; records
    /// are at most 1 MiB). Peeking again without [`Spool::ack`] returns the
    /// same records.
    ///
    /// A record that fails its check now (the file changed since open), or
    /// cannot be read (I/O error, e.g. a bad SD card sector), ends its
    /// segment like a torn tail: skipped and counted, so that one bad spot
    /// cannot stall the spool forever. A segment file deleted behind our
    /// back counts the same way. Other errors opening a segment (e.g. too
    /// many open files) are returned and the call can be retried.
    pub fn peek_batch(
        &mut self,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<(SpoolPos, Record)>, SpoolError> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut i = 0;
        let mut buf = std::mem::take(&mut self.buf);
        while i < self.segments.len() && out.len() < max_records {
            let (id, valid_len) = (self.segments[i].id, self.segments[i].valid_len);
            let (mut offset, mut index) = if i == 0 {
                (self.head_offset, self.head_index)
            } else {
                (HEADER_LEN, 0)
            };
            if offset < valid_len {
                let path = self.seg_path(id);
                let mut file = match File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        self.truncate_segment(i, offset, index);
                        i += 1;
                        continue;
                    }
                    Err(e) => {
                        self.buf = buf;
                        return Err(file_err(&path, "open")(e));
                    }
                };
                if let Err(e) = file.seek(SeekFrom::Start(offset)) {
                    self.buf = buf;
                    return Err(file_err(&path, "seek")(e));
                }
                let mut r = BufReader::with_capacity(64 * 1024, file);
                loop {
                    if out.len() >= max_records {
                        break;
                    }
                    match read_entry(&mut r, valid_len - offset, &mut buf) {
                        Ok(None) => break,
                        Ok(Some(n)) => {
                            // read_entry checked the payload.
                            let Some((key, data)) = payload_parts(&buf) else {
                                break;
                            };
                            let size = key.len() + data.len();
                            if !out.is_empty() && bytes + size > max_bytes {
                                self.buf = buf;
                                return Ok(out);
                            }
                            bytes += size;
                            offset += n;
                            out.push((
                                SpoolPos {
                                    segment: id,
                                    offset,
                                    index,
                                },
                                Record {
                                    partition_key: key.to_owned(),
                                    data: data.to_vec(),
                                },
                            ));
                            index += 1;
                        }
                        Err(Fault::Corrupt | Fault::Io) => {
                            self.truncate_segment(i, offset, index);
                            break;
                        }
                    }
                }
            }
            i += 1;
        }
        self.buf = buf;
        Ok(out)
    }

    /// Segment `i` turned out bad from `offset` (entry `index`) on.
    fn truncate_segment(&mut self, i: usize, offset: u64, index: u64) {
        if self.is_active(i) {
            self.writer = None;
        }
        let seg = &mut self.segments[i];
        self.corrupt_segments += 1;
        self.corrupt_bytes += seg.valid_len - offset;
        seg.valid_len = offset;
        seg.entries = index;
    }

    /// Mark every record up to and including `up_to` as delivered. Whole
    /// segments are deleted as soon as they are fully acknowledged (except
    /// the one being appended to). The position is saved by the next
    /// [`Spool::sync`]. Positions from before a drop or an earlier ack are
    /// ignored.
    pub fn ack(&mut self, up_to: SpoolPos) -> Result<(), SpoolError> {
        while let Some(front) = self.segments.front() {
            if front.id < up_to.segment {
                if self.is_active(0) {
                    // Not a position we handed out; everything is acked.
                    self.head_offset = front.valid_len;
                    self.head_index = front.entries;
                    self.ack_dirty = true;
                    break;
                }
                self.pop_front()?;
            } else {
                if front.id == up_to.segment
                    && up_to.offset > self.head_offset
                    && up_to.offset <= front.valid_len
                {
                    self.head_offset = up_to.offset;
                    self.head_index = up_to.index + 1;
                    self.ack_dirty = true;
                }
                break;
            }
        }
        self.remove_acked_front()
    }

    /// Make everything appended so far, and the ack position, survive a
    /// power loss: fsync the segment being written, save `ack`, fsync the
    /// directory. Call at shutdown and at a modest interval.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if let (Some(file), Some(seg)) = (&self.writer, self.segments.back()) {
            let path = self.seg_path(seg.id);
            file.sync_data().map_err(file_err(&path, "fsync"))?;
        }
        if self.ack_dirty {
            let point = match self.segments.front() {
                Some(s) => AckPoint {
                    segment: s.id,
                    offset: self.head_offset,
                    index: self.head_index,
                },
                None => AckPoint {
                    segment: self.next_id,
                    offset: HEADER_LEN,
                    index: 0,
                },
            };
            let mut bytes = Vec::with_capacity(ACK_LEN);
            bytes.extend_from_slice(ACK_MAGIC);
            bytes.push(VERSION);
            bytes.extend_from_slice(&point.segment.to_le_bytes());
            bytes.extend_from_slice(&point.offset.to_le_bytes());
            bytes.extend_from_slice(&point.index.to_le_bytes());
            let crc = crc32(&bytes);
            bytes.extend_from_slice(&crc.to_le_bytes());
            let tmp = self.dir.join(ACK_TMP);
            let mut f = File::create(&tmp).map_err(file_err(&tmp, "create"))?;
            f.write_all(&bytes).map_err(file_err(&tmp, "write"))?;
            f.sync_all().map_err(file_err(&tmp, "fsync"))?;
            let dst = self.dir.join(ACK_FILE);
            fs::rename(&tmp, &dst).map_err(file_err(&dst, "rename"))?;
            self.ack_dirty = false;
        }
        sync_dir(&self.dir)
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records not yet acknowledged.
    pub fn pending_records(&self) -> u64 {
        let total: u64 = self.segments.iter().map(|s| s.entries).sum();
        total.saturating_sub(self.head_index)
    }

    /// True if every record has been acknowledged.
    pub fn is_empty(&self) -> bool {
        self.pending_records() == 0
    }

    /// Creation time of the oldest segment holding unacknowledged records:
    /// no such record is older than this (for the "oldest age" stat).
    pub fn oldest_created(&self) -> Option<SystemTime> {
        if self.is_empty() {
            return None;
        }
        self.segments
            .iter()
            .enumerate()
            .find(|(i, s)| {
                if *i == 0 {
                    self.head_index < s.entries
                } else {
                    s.entries > 0
                }
            })
            .map(|(_, s)| s.created)
    }

    /// Depth and counters.
    pub fn stats(&self) -> SpoolStats {
        SpoolStats {
            records: self.pending_records(),
            bytes: self.total_bytes,
            segments: self.segments.len(),
            dropped: self.dropped,
            corrupt_bytes: self.corrupt_bytes,
            corrupt_segments: self.corrupt_segments,
            written_bytes: self.written_bytes,
        }
    }
}

#[cfg(test)]
mod tests;
