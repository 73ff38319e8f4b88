//! Index files: a sealed segment's sparse index, persisted beside it.
//!
//! Why: without it, a sealed segment recovered at open is indexed by reading
//! and checking it whole on its first read, so the first read of an old record
//! after a restart costs a full segment (16 MiB by default). The sync thread
//! writes `<first seq>.idx` when it seals a segment, a read that had to index a
//! segment writes it then, and open loads it: a read of any record then costs
//! one positioned read of at most [`STRIDE`] frames.
//!
//! The index is a cache of what its segment says, never trusted over it:
//! - it is checked whole (magic, format, CRC32C), against its segment (first
//!   seq, record count as the next segment's name gives it, length) and for
//!   shape (the first offset right after the segment header, offsets strictly
//!   increasing and inside the segment); one that fails a check is ignored,
//!   reported at `warn`, and the segment is indexed by reading it;
//! - every frame read through it is still checked (checksum and seq), so a
//!   stale index that passed those checks can only lead to a `Corrupt` error
//!   naming the segment and offset, never to a wrong record.
//!
//! It is written without fsync (a torn or lost one fails its checks and is
//! rebuilt), through a temporary file and a rename, so that a reader never sees
//! half of one. A new segment file removes any index left under its name.
//!
//! ```text
//! offset size field
//! 0      8    magic      b"FOLDIDX\0"
//! 8      4    format     1, u32 LE
//! 12     4    stride     records per entry, u32 LE (1..=65536)
//! 16     8    first_seq  u64 LE: the segment's first seq
//! 24     8    records    u64 LE: records in the segment
//! 32     8    len        u64 LE: the segment's length in bytes
//! 40     8*n  offsets    u64 LE each: where records 0, stride, 2*stride, .. start
//! 40+8n  4    crc        CRC32C of every byte before it
//! ```
//! where `n = ceil(records / stride)`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::Seq;
use crate::segment::SEGMENT_HEADER_LEN;

/// Records per index entry of a sealed segment: a read of one record walks at
/// most `STRIDE - 1` frames before it, and the index takes 8 bytes per
/// `STRIDE` records (in memory and on disk).
pub(crate) const STRIDE: u32 = 32;

const MAGIC: &[u8; 8] = b"FOLDIDX\0";
const FORMAT: u32 = 1;
const HEAD_LEN: usize = 40;
const MAX_STRIDE: u32 = 1 << 16;
const EXTENSION: &str = "idx";

/// The index file of the segment at `segment` (`<first seq>.seg` → `.idx`).
pub(crate) fn path(segment: &Path) -> PathBuf {
    segment.with_extension(EXTENSION)
}

/// The sparse offsets of `offsets` (one per record): every `STRIDE`-th.
pub(crate) fn sparsify(offsets: &[u64]) -> Vec<u64> {
    offsets.iter().step_by(STRIDE as usize).copied().collect()
}

/// What a sealed segment's index file must agree with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expect {
    pub(crate) first_seq: Seq,
    pub(crate) records: u64,
    pub(crate) len: u64,
}

/// Writes the index of a sealed segment (no fsync: see the module docs).
pub(crate) fn write(
    segment: &Path,
    expect: Expect,
    stride: u32,
    offsets: &[u64],
) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(HEAD_LEN + 8 * offsets.len() + 4);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT.to_le_bytes());
    bytes.extend_from_slice(&stride.to_le_bytes());
    bytes.extend_from_slice(&expect.first_seq.to_le_bytes());
    bytes.extend_from_slice(&expect.records.to_le_bytes());
    bytes.extend_from_slice(&expect.len.to_le_bytes());
    for offset in offsets {
        bytes.extend_from_slice(&offset.to_le_bytes());
    }
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let target = path(segment);
    let tmp = target.with_extension("idx.tmp");
    let mut file = fs::File::create(&tmp)?;
    file.write_all(&bytes)?;
    drop(file);
    fs::rename(&tmp, &target)
}

/// Removes the index of `segment`, if there is one.
pub(crate) fn remove(segment: &Path) -> std::io::Result<()> {
    match fs::remove_file(path(segment)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Loads the index of a sealed segment: `Ok(None)` when there is none,
/// `Err(why)` when it is there but fails a check (the caller ignores it).
pub(crate) fn load(
    segment: &Path,
    expect: Expect,
) -> Result<Option<(u32, Vec<u64>)>, &'static str> {
    let bytes = match fs::read(path(segment)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(_) => return Err("cannot be read"),
    };
    parse(&bytes, expect).map(Some)
}

fn parse(bytes: &[u8], expect: Expect) -> Result<(u32, Vec<u64>), &'static str> {
    let Some((body, crc)) = bytes.split_last_chunk::<4>() else {
        return Err("is cut short");
    };
    if body.len() < HEAD_LEN {
        return Err("is cut short");
    }
    if crc32c::crc32c(body) != u32::from_le_bytes(*crc) {
        return Err("fails its checksum");
    }
    let (head, entries) = body.split_at(HEAD_LEN);
    let u32_at = |at: usize| u32::from_le_bytes(head[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().expect("8 bytes"));
    if &head[..8] != MAGIC || u32_at(8) != FORMAT {
        return Err("has a bad magic or format");
    }
    let stride = u32_at(12);
    if !(1..=MAX_STRIDE).contains(&stride) {
        return Err("has a bad stride");
    }
    if u64_at(16) != expect.first_seq || u64_at(24) != expect.records || u64_at(32) != expect.len {
        return Err("does not match its segment (first seq, record count or length)");
    }
    // The entry count follows from the checked head; the bytes must hold it
    // exactly (nothing read sizes an allocation before this check).
    let count = expect.records.div_ceil(u64::from(stride));
    if entries.len() as u64 != count.saturating_mul(8) {
        return Err("holds the wrong number of entries");
    }
    let offsets: Vec<u64> = entries
        .chunks_exact(8)
        .map(|e| u64::from_le_bytes(e.try_into().expect("8 bytes")))
        .collect();
    let increasing = offsets.windows(2).all(|w| w[0] < w[1]);
    let first_ok = offsets.first().is_none_or(|&o| o == SEGMENT_HEADER_LEN);
    let inside = offsets.last().is_none_or(|&o| o < expect.len);
    if !(increasing && first_ok && inside) {
        return Err("has offsets out of order or outside the segment");
    }
    Ok((stride, offsets))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPECT: Expect = Expect {
        first_seq: 7,
        records: 70,
        len: 10_000,
    };

    fn offsets() -> Vec<u64> {
        (0..3).map(|i| SEGMENT_HEADER_LEN + i * 1000).collect()
    }

    #[test]
    fn round_trips_and_rejects_every_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let seg = dir.path().join("00000000000000000007.seg");
        assert_eq!(load(&seg, EXPECT), Ok(None));
        write(&seg, EXPECT, STRIDE, &offsets()).unwrap();
        assert_eq!(load(&seg, EXPECT), Ok(Some((STRIDE, offsets()))));
        for other in [
            Expect {
                first_seq: 8,
                ..EXPECT
            },
            Expect {
                records: 71,
                ..EXPECT
            },
            Expect {
                len: 10_001,
                ..EXPECT
            },
        ] {
            assert!(load(&seg, other).is_err(), "{other:?}");
        }
        remove(&seg).unwrap();
        assert_eq!(load(&seg, EXPECT), Ok(None));
        remove(&seg).unwrap();
    }

    #[test]
    fn every_flipped_byte_and_every_cut_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let seg = dir.path().join("00000000000000000007.seg");
        write(&seg, EXPECT, STRIDE, &offsets()).unwrap();
        let good = fs::read(path(&seg)).unwrap();
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            assert!(parse(&bad, EXPECT).is_err(), "flip at {at}");
            assert!(parse(&good[..at], EXPECT).is_err(), "cut at {at}");
        }
    }

    #[test]
    fn a_well_formed_index_with_bad_offsets_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let seg = dir.path().join("00000000000000000007.seg");
        for bad in [
            vec![SEGMENT_HEADER_LEN, 500, 400],
            vec![SEGMENT_HEADER_LEN + 1, 500, 900],
            vec![SEGMENT_HEADER_LEN, 500, 10_000],
            vec![SEGMENT_HEADER_LEN, 500],
        ] {
            write(&seg, EXPECT, STRIDE, &bad).unwrap();
            assert!(load(&seg, EXPECT).is_err(), "{bad:?}");
        }
    }
}
