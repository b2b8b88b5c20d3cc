//! The spool's on-disk format (see [`super`]'s module docs): segment and
//! ack file layout, reading entries back, and the file helpers that turn
//! I/O errors into [`SpoolError`]s naming the file.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::SpoolError;
use crate::kinesis::crc32::{crc32, Crc32};
use crate::kinesis::record::MAX_RECORD_BYTES;

pub(super) const SEG_MAGIC: &[u8; 7] = b"AKSPOOL";
pub(super) const ACK_MAGIC: &[u8; 7] = b"AKACK\0\0";
pub(super) const VERSION: u8 = 1;
/// Segment header length; the first entry starts here.
pub(super) const HEADER_LEN: u64 = 16;
/// `len` + `crc`.
pub(super) const ENTRY_PREFIX: u64 = 8;
/// Largest `len`: key_len field plus a maximal record.
pub(super) const MAX_PAYLOAD: u64 = 2 + MAX_RECORD_BYTES as u64;
pub(super) const ACK_LEN: usize = 36;
pub(super) const ACK_FILE: &str = "ack";
pub(super) const ACK_TMP: &str = "ack.tmp";

#[derive(Debug)]
pub(super) struct Segment {
    pub(super) id: u64,
    /// Entries are readable in `HEADER_LEN..valid_len`.
    pub(super) valid_len: u64,
    /// Size on disk (counts toward the cap), `>= valid_len`.
    pub(super) file_len: u64,
    /// Entries in `HEADER_LEN..valid_len`.
    pub(super) entries: u64,
    pub(super) created: SystemTime,
}

/// The saved read position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct AckPoint {
    pub(super) segment: u64,
    pub(super) offset: u64,
    pub(super) index: u64,
}

pub(super) fn seg_name(id: u64) -> String {
    format!("{id:020}.seg")
}

pub(super) fn parse_seg_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(super) fn file_err<'a>(
    path: &'a Path,
    op: &'static str,
) -> impl FnOnce(io::Error) -> SpoolError + 'a {
    move |source| SpoolError::File {
        path: path.to_path_buf(),
        op,
        source,
    }
}

pub(super) fn remove_file(path: &Path) -> Result<(), SpoolError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(file_err(path, "remove")(e)),
        _ => Ok(()),
    }
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| SpoolError::Dir {
            path: dir.to_path_buf(),
            source,
        })
}

/// Why an entry could not be read.
pub(super) enum Fault {
    /// Bad length, bad CRC, bad key, or the file ends inside the entry.
    Corrupt,
    /// The read itself failed.
    Io,
}

impl From<io::Error> for Fault {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Fault::Corrupt
        } else {
            Fault::Io
        }
    }
}

/// Read the entry at the reader's position into `buf` (its payload) with
/// `avail` bytes left in the readable part of the segment. `Ok(None)` at
/// a clean end; otherwise the entry's total length.
pub(super) fn read_entry<R: Read>(
    r: &mut R,
    avail: u64,
    buf: &mut Vec<u8>,
) -> Result<Option<u64>, Fault> {
    if avail == 0 {
        return Ok(None);
    }
    if avail < ENTRY_PREFIX {
        return Err(Fault::Corrupt);
    }
    let mut prefix = [0u8; 8];
    r.read_exact(&mut prefix)?;
    let len_bytes = [prefix[0], prefix[1], prefix[2], prefix[3]];
    let len = u64::from(u32::from_le_bytes(len_bytes));
    let crc = u32::from_le_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
    if !(3..=MAX_PAYLOAD).contains(&len) || ENTRY_PREFIX + len > avail {
        return Err(Fault::Corrupt);
    }
    // len <= MAX_PAYLOAD, about 1 MiB: fits usize.
    buf.resize(len as usize, 0);
    r.read_exact(buf)?;
    let mut c = Crc32::new();
    c.update(&len_bytes);
    c.update(buf);
    if c.finish() != crc {
        return Err(Fault::Corrupt);
    }
    payload_parts(buf).ok_or(Fault::Corrupt)?;
    Ok(Some(ENTRY_PREFIX + len))
}

/// Split a CRC-checked payload into key and data, checking the key like
/// Kinesis would. `None` if it is not a valid record.
pub(super) fn payload_parts(payload: &[u8]) -> Option<(&str, &[u8])> {
    let key_len = usize::from(u16::from_le_bytes([*payload.first()?, *payload.get(1)?]));
    let key = payload.get(2..2 + key_len)?;
    let key = std::str::from_utf8(key).ok()?;
    let data = &payload[2 + key_len..];
    let n = key.chars().count();
    if !(crate::kinesis::record::MIN_PARTITION_KEY_CHARS
        ..=crate::kinesis::record::MAX_PARTITION_KEY_CHARS)
        .contains(&n)
        || key.len() + data.len() > MAX_RECORD_BYTES
    {
        return None;
    }
    Some((key, data))
}

/// The result of checking one segment file.
pub(super) struct Scan {
    pub(super) valid_len: u64,
    pub(super) entries: u64,
    /// If `want` was an entry boundary: how many entries precede it.
    pub(super) want_index: Option<u64>,
}

/// Check every entry of a segment whose header is fine, up to `file_len`.
pub(super) fn scan_entries(file: File, file_len: u64, want: Option<u64>) -> Scan {
    let mut r = BufReader::with_capacity(64 * 1024, file);
    let mut buf = Vec::new();
    let mut offset = HEADER_LEN;
    let mut entries = 0;
    let mut want_index = (want == Some(HEADER_LEN)).then_some(0);
    if r.seek(SeekFrom::Start(HEADER_LEN)).is_ok() {
        while let Ok(Some(n)) = read_entry(&mut r, file_len - offset, &mut buf) {
            offset += n;
            entries += 1;
            if want == Some(offset) {
                want_index = Some(entries);
            }
        }
    }
    Scan {
        valid_len: offset,
        entries,
        want_index,
    }
}

pub(super) fn read_ack(dir: &Path) -> Option<AckPoint> {
    let bytes = fs::read(dir.join(ACK_FILE)).ok()?;
    if bytes.len() != ACK_LEN || &bytes[..7] != ACK_MAGIC || bytes[7] != VERSION {
        return None;
    }
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[i..i + 8]);
        u64::from_le_bytes(b)
    };
    let crc = u32::from_le_bytes([bytes[32], bytes[33], bytes[34], bytes[35]]);
    if crc32(&bytes[..32]) != crc {
        return None;
    }
    Some(AckPoint {
        segment: u64_at(8),
        offset: u64_at(16),
        index: u64_at(24),
    })
}

pub(super) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis().try_into().unwrap_or(u64::MAX))
        .unwrap_or(0)
}
