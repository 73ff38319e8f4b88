//! The synced mark: what the last fsync of the active segment covered, so that
//! an open of a log nobody wrote to since can skip its own fsync.
//!
//! Why: `Log::open` makes every record it finds durable (the `FsyncPolicy`
//! table counts an open as a point up to which nothing is lost), so it fsyncs
//! the active segment: a process killed before its records were fsynced left
//! them in the OS's cache only. That fsync costs as much as the rest of a small
//! open together (a flush of the disk's cache even when nothing is dirty), and
//! is wasted when the last close fsynced the segment and nothing touched it
//! since: the common case of a log reopened after a clean close.
//!
//! So when the active segment is durable whole and nothing will write to it (an
//! open's own fsync, before anything is appended; a close, once every record is
//! fsynced, on the sync thread), the log takes the file's stamp (length,
//! device, inode, modification and change times, as the OS reports them) and
//! writes `<dir>/SYNCED`: the segment's first seq and that stamp. A close after
//! an open that found the mark current, with nothing appended, writes nothing. An open whose active segment has the same first seq and the same stamp
//! skips the fsync: its bytes are those the fsync covered. Any write to the file
//! since then (an append, which grows it; a repair, which cuts it) changes the
//! length or the change time, a copied or replaced file has another inode, and
//! then the open fsyncs as before.
//!
//! The mark is only a hint, never trusted over the segment: it is taken only
//! once every byte of the segment is covered by a completed fsync (so a mark that
//! exists never describes a byte not yet durable), without fsync of its own, through a temporary file and a rename (a
//! torn or lost one fails its checks or is missing: the open then fsyncs). A
//! mark that cannot be written costs the next open its fsync, nothing else.
//! Outside Unix no stamp is taken: every open fsyncs.
//!
//! ```text
//! offset size field
//! 0      8    magic      b"FOLDSYN\0"
//! 8      4    format     1, u32 LE
//! 12     8    first_seq  u64 LE: the active segment's first seq
//! 20     40   stamp      len, dev, ino u64 LE; mtime, ctime in ns since the epoch, i64 LE
//! 60     4    crc        CRC32C of every byte before it
//! ```

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::Seq;

const MAGIC: &[u8; 8] = b"FOLDSYN\0";
const FORMAT: u32 = 1;
const FILE_NAME: &str = "SYNCED";
const STAMP_LEN: usize = 40;
const LEN: usize = 8 + 4 + 8 + STAMP_LEN + 4;

/// What the OS says of a segment file: equal stamps mean the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    dev: u64,
    ino: u64,
    modified_ns: i64,
    changed_ns: i64,
}

impl Stamp {
    #[cfg(unix)]
    fn of(file: &File) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata().ok()?;
        let ns = |secs: i64, nanos: i64| secs.checked_mul(1_000_000_000)?.checked_add(nanos);
        Some(Stamp {
            len: meta.len(),
            dev: meta.dev(),
            ino: meta.ino(),
            modified_ns: ns(meta.mtime(), meta.mtime_nsec())?,
            changed_ns: ns(meta.ctime(), meta.ctime_nsec())?,
        })
    }

    #[cfg(not(unix))]
    fn of(_: &File) -> Option<Stamp> {
        None
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.dev.to_le_bytes());
        out.extend_from_slice(&self.ino.to_le_bytes());
        out.extend_from_slice(&self.modified_ns.to_le_bytes());
        out.extend_from_slice(&self.changed_ns.to_le_bytes());
    }
}

/// A mark of a segment file.
pub(crate) struct Mark(Vec<u8>);

impl Mark {
    /// The mark of `file`, the segment whose first seq is `first_seq`, as it is
    /// now (`None` when the OS gives no stamp).
    pub(crate) fn of(first_seq: Seq, file: &File) -> Option<Mark> {
        let stamp = Stamp::of(file)?;
        let mut out = Vec::with_capacity(LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.extend_from_slice(&first_seq.to_le_bytes());
        stamp.encode(&mut out);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Some(Mark(out))
    }

    /// Whether the mark in `dir` is this one: the segment is byte for byte
    /// what an fsync covered, so it need not be fsynced.
    pub(crate) fn is_recorded(&self, dir: &Path) -> bool {
        fs::read(dir.join(FILE_NAME)).is_ok_and(|bytes| bytes == self.0)
    }

    /// Records the mark in `dir`. Call it only when every byte the mark
    /// describes is durable (an fsync that began after the mark was taken, or
    /// a completed one that covered every write before it). Best effort (see the module docs): a failure is reported at
    /// `debug` and costs the next open an fsync.
    /// Returns whether it was written.
    pub(crate) fn record(&self, dir: &Path) -> bool {
        let target = dir.join(FILE_NAME);
        let tmp = dir.join("SYNCED.tmp");
        let written = File::create(&tmp)
            .and_then(|mut f| f.write_all(&self.0))
            .and_then(|()| fs::rename(&tmp, &target));
        if let Err(error) = &written {
            tracing::debug!(dir = %dir.display(), %error, "foldkit-storage: cannot write the synced mark; the next open fsyncs");
        }
        written.is_ok()
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn segment(dir: &Path) -> File {
        let path = dir.join("seg");
        fs::write(&path, b"header and records").expect("write");
        File::options()
            .read(true)
            .append(true)
            .open(path)
            .expect("open")
    }

    fn covered(dir: &Path, first_seq: Seq, file: &File) -> bool {
        Mark::of(first_seq, file).expect("a stamp").is_recorded(dir)
    }

    #[test]
    fn a_mark_covers_its_segment_until_the_segment_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut file = segment(dir.path());
        assert!(!covered(dir.path(), 1, &file), "no mark yet");
        Mark::of(1, &file).expect("a stamp").record(dir.path());
        assert!(covered(dir.path(), 1, &file));
        assert!(!covered(dir.path(), 2, &file), "another segment");
        file.write_all(b"more").expect("append");
        assert!(!covered(dir.path(), 1, &file), "the segment grew");
    }

    #[test]
    fn a_damaged_mark_covers_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = segment(dir.path());
        Mark::of(1, &file).expect("a stamp").record(dir.path());
        let path = dir.path().join(FILE_NAME);
        let mut bytes = fs::read(&path).expect("mark");
        assert_eq!(bytes.len(), LEN);
        bytes[LEN - 1] ^= 1;
        fs::write(&path, &bytes).expect("write");
        assert!(!covered(dir.path(), 1, &file), "a bad checksum");
        bytes.truncate(LEN - 4);
        fs::write(&path, &bytes).expect("write");
        assert!(!covered(dir.path(), 1, &file), "a short mark");
    }
}
