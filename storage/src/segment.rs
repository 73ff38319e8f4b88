//! Segment files: `<first seq, 20 digits>.seg`, each starting with a header.
//!
//! ```text
//! offset size field
//! 0      8    magic      b"FOLDSEG\0"
//! 8      4    format     1, u32 LE
//! 12     4    crc        CRC32C of bytes 0..12 and 16..24
//! 16     8    first_seq  u64 LE: the seq of the segment's first record
//! ```
//!
//! Invariants: a segment holds contiguous seqs starting at `first_seq`; the name
//! and the header agree; a new segment is fsynced and so is the directory before
//! any record is written to it.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::Seq;
use crate::error::StorageError;

pub(crate) const SEGMENT_HEADER_LEN: u64 = 24;
const MAGIC: &[u8; 8] = b"FOLDSEG\0";
const FORMAT: u32 = 1;
const EXTENSION: &str = "seg";

/// The path of the segment whose first record is `first_seq`.
pub(crate) fn path(dir: &Path, first_seq: Seq) -> PathBuf {
    dir.join(format!("{first_seq:020}.{EXTENSION}"))
}

fn header(first_seq: Seq) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&FORMAT.to_le_bytes());
    h[16..24].copy_from_slice(&first_seq.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&h[..12]), &h[16..24]);
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks a segment header against the seq its file name gives.
pub(crate) fn check_header(bytes: &[u8], first_seq: Seq) -> Result<(), &'static str> {
    if bytes.len() < SEGMENT_HEADER_LEN as usize {
        return Err("segment header is cut short");
    }
    if bytes[..SEGMENT_HEADER_LEN as usize] != header(first_seq) {
        return Err("segment header does not match (bad magic, format, checksum or first seq)");
    }
    Ok(())
}

/// Creates a segment file with its header, fsyncs it and the directory.
pub(crate) fn create(dir: &Path, first_seq: Seq) -> Result<File, StorageError> {
    let path = path(dir, first_seq);
    // An index file left under this name (by a segment removed by repair) would
    // describe other bytes.
    crate::sidecar::remove(&path)
        .map_err(|e| StorageError::io("remove a stale segment index", &path, e))?;
    let mut file = OpenOptions::new()
        .create_new(true)
        .read(true)
        .append(true)
        .open(&path)
        .map_err(|e| StorageError::io("create segment", &path, e))?;
    file.write_all(&header(first_seq))
        .map_err(|e| StorageError::io("write segment header", &path, e))?;
    file.sync_all()
        .map_err(|e| StorageError::io("fsync segment", &path, e))?;
    sync_dir(dir)?;
    Ok(file)
}

/// Opens an existing segment for appending.
pub(crate) fn open_append(path: &Path) -> Result<File, StorageError> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .open(path)
        .map_err(|e| StorageError::io("open segment", path, e))
}

/// The largest first seq a segment file may name: seqs then stay far from
/// `u64::MAX` (no arithmetic on them can overflow) and fit an `i64`.
pub(crate) const MAX_FIRST_SEQ: Seq = i64::MAX as u64;

/// The digits of a segment file name.
const NAME_DIGITS: usize = 20;

/// The segments in `dir`, sorted by first seq. A `.seg` entry that is not a
/// regular file named by 20 digits with a seq from 1 to [`MAX_FIRST_SEQ`] is
/// [`StorageError::Corrupt`], naming it.
pub(crate) fn list(dir: &Path) -> Result<Vec<(Seq, PathBuf)>, StorageError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StorageError::io("list log directory", dir, e))? {
        let path = entry
            .map_err(|e| StorageError::io("list log directory", dir, e))?
            .path();
        if path.extension().is_none_or(|e| e != EXTENSION) {
            continue;
        }
        let bad = |reason: &str| StorageError::Corrupt {
            segment: path.clone(),
            offset: 0,
            reason: reason.into(),
        };
        let seq = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| s.len() == NAME_DIGITS && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<Seq>().ok())
            .ok_or_else(|| bad("segment file name is not a seq of 20 digits"))?;
        if !(1..=MAX_FIRST_SEQ).contains(&seq) {
            return Err(bad(&format!(
                "segment file name gives first seq {seq}, outside 1..={MAX_FIRST_SEQ}"
            )));
        }
        let is_file = fs::metadata(&path)
            .map_err(|e| StorageError::io("stat segment", &path, e))?
            .is_file();
        if !is_file {
            return Err(bad("a segment is not a regular file"));
        }
        found.push((seq, path));
    }
    found.sort_by_key(|(seq, _)| *seq);
    Ok(found)
}

/// Makes creations, renames and deletions in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io("fsync log directory", dir, e))
}
