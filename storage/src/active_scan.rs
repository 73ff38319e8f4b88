//! Validating a clean active segment in blocks, at open.
//!
//! Why: recovery checks every record of the active segment (see `recovery`). Reading the
//! segment whole for that put tens of MB (up to the segment size) into one fresh buffer
//! that was dropped right after the check: on a large log, the page faults of that buffer
//! were a good part of the open. The usual segment at open is clean (a closed log, or one
//! whose last append completed), so [`scan`] reads it through one reused buffer of
//! [`BLOCK`] bytes (grown only for a frame larger than that) and keeps only its
//! last [`TAIL`] bytes (the newest frames, which seed the memory window).
//!
//! It decides nothing but "clean": any record that does not check (bad, cut short, a seq
//! out of order), a batch still open at the end, or a header that does not check makes it
//! return `None`, and recovery reads the segment whole and decides, repairs and reports
//! exactly as it always did. So a clean segment gives the index the whole-file scan gives
//! (the tests compare them), and every other segment takes the whole-file path.
//!
//! Nothing read from the file sizes the buffer unchecked: it grows for a frame only when
//! the file holds that frame's bytes.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::Seq;
use crate::error::StorageError;
use crate::frame::{self, BATCH_CONTINUES, HEADER_LEN, Invalid};
use crate::segment::{self, SEGMENT_HEADER_LEN};

/// Bytes read at a time.
pub(crate) const BLOCK: usize = 1 << 20;

/// How many of the segment's last bytes are kept for the memory window: at least the
/// `RECENT_CHUNKS` chunks of `CHUNK_BYTES` it seeds (`log::memory`).
pub(crate) const TAIL: usize = 256 << 10;

/// The last bytes of the active segment's valid records: the file's bytes from
/// `start` to its valid length.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    pub(crate) start: u64,
    pub(crate) bytes: Vec<u8>,
}

impl Tail {
    /// The whole segment's valid bytes (as the whole-file path read them).
    pub(crate) fn whole(bytes: Vec<u8>) -> Tail {
        Tail { start: 0, bytes }
    }

    /// The file's bytes `from..to`, if this tail holds them.
    pub(crate) fn get(&self, from: u64, to: u64) -> Option<&[u8]> {
        let from = usize::try_from(from.checked_sub(self.start)?).ok()?;
        let to = usize::try_from(to.checked_sub(self.start)?).ok()?;
        self.bytes.get(from..to)
    }
}

/// A clean active segment, validated.
#[derive(Debug)]
pub(crate) struct Clean {
    /// Where each record starts.
    pub(crate) offsets: Vec<u64>,
    /// The file's length: every byte is a valid record's.
    pub(crate) len: u64,
    /// The timestamp of the last record (0 if none).
    pub(crate) last_timestamp: u64,
    /// Its last bytes.
    pub(crate) tail: Tail,
}

/// Reads the segment at `path` (first seq `first_seq`) in blocks of `block` bytes; the
/// segment when it is clean (see the module docs), `None` when the whole-file path must
/// decide. Fails only on I/O errors.
pub(crate) fn scan(
    path: &Path,
    first_seq: Seq,
    max_len: usize,
    block: usize,
) -> Result<Option<Clean>, StorageError> {
    let io = |action: &'static str| move |e| StorageError::io(action, path, e);
    let mut file = File::open(path).map_err(io("open segment"))?;
    let file_len = file.metadata().map_err(io("stat segment"))?.len();
    let mut reader = Blocks::new(block);
    if reader
        .fill(&mut file, SEGMENT_HEADER_LEN as usize)
        .map_err(io("read segment"))?
        < SEGMENT_HEADER_LEN as usize
        || segment::check_header(reader.bytes(), first_seq).is_err()
    {
        return Ok(None);
    }
    reader.consume(SEGMENT_HEADER_LEN as usize);
    let mut offsets = Vec::new();
    let mut next_seq = first_seq;
    let mut batch_open = false;
    let mut last_timestamp = 0;
    loop {
        match frame::decode(reader.bytes(), max_len) {
            Ok((header, _)) if header.seq == next_seq => {
                offsets.push(reader.offset);
                batch_open = header.flags & BATCH_CONTINUES != 0;
                last_timestamp = header.timestamp;
                next_seq += 1;
                reader.consume(HEADER_LEN + header.len as usize);
            }
            Err(Invalid::Short) => {
                // A frame is at least its header; once the header is there, its length
                // says how much, and the file must hold that much.
                let need = match reader.bytes().first_chunk::<HEADER_LEN>() {
                    Some(head) => match frame::parse_header(head, max_len) {
                        Ok(header) => HEADER_LEN + header.len as usize,
                        Err(_) => return Ok(None),
                    },
                    None => HEADER_LEN,
                };
                let available = file_len.saturating_sub(reader.offset);
                if reader.bytes().is_empty() && available == 0 {
                    break; // the clean end
                }
                if (need as u64) > available {
                    return Ok(None); // cut short: the whole-file path cuts it
                }
                let had = reader.bytes().len();
                if reader.fill(&mut file, need).map_err(io("read segment"))? <= had {
                    return Ok(None); // the file ended before its length said
                }
            }
            Ok(_) | Err(Invalid::Bad(_)) => return Ok(None),
        }
    }
    if batch_open || reader.offset != file_len {
        return Ok(None);
    }
    let keep = TAIL.min(usize::try_from(file_len - SEGMENT_HEADER_LEN).unwrap_or(TAIL));
    let start = file_len - keep as u64;
    let mut bytes = vec![0; keep];
    file.seek(SeekFrom::Start(start))
        .and_then(|_| file.read_exact(&mut bytes))
        .map_err(io("read segment"))?;
    Ok(Some(Clean {
        offsets,
        len: file_len,
        last_timestamp,
        tail: Tail { start, bytes },
    }))
}

/// A window on the file: `buf[at..filled]` are the file's bytes from `offset` on.
struct Blocks {
    buf: Vec<u8>,
    at: usize,
    filled: usize,
    /// The file offset of `buf[at]`.
    offset: u64,
    block: usize,
}

impl Blocks {
    fn new(block: usize) -> Blocks {
        Blocks {
            buf: vec![0; block.max(HEADER_LEN)],
            at: 0,
            filled: 0,
            offset: 0,
            block: block.max(HEADER_LEN),
        }
    }

    /// The bytes read and not consumed.
    fn bytes(&self) -> &[u8] {
        &self.buf[self.at..self.filled]
    }

    /// Marks `n` of [`bytes`](Self::bytes) as consumed (`n` at most their length).
    fn consume(&mut self, n: usize) {
        self.at += n;
        self.offset += n as u64;
    }

    /// Reads until at least `want` bytes are unconsumed or the file ends, moving the
    /// unconsumed ones to the front first and growing the buffer if `want` does not fit;
    /// returns how many are unconsumed then.
    fn fill(&mut self, file: &mut File, want: usize) -> std::io::Result<usize> {
        self.buf.copy_within(self.at..self.filled, 0);
        self.filled -= self.at;
        self.at = 0;
        if self.buf.len() < want {
            self.buf.resize(want.max(self.block), 0);
        }
        while self.filled < want {
            match file.read(&mut self.buf[self.filled..]) {
                Ok(0) => break,
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.filled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::MAX_PAYLOAD;

    /// A segment starting at seq 7 in `dir`: its header, then a record per length of
    /// `lens` (each at least 1; seq 7 on, timestamp `100 + seq`), the one at index `batch_from` and after
    /// continuing a batch up to the last (closed unless `open_batch`); returns its
    /// path, bytes and where each record starts.
    fn segment(
        dir: &Path,
        lens: &[usize],
        batch_from: usize,
        open_batch: bool,
    ) -> (std::path::PathBuf, Vec<u8>, Vec<u64>) {
        drop(segment::create(dir, 7).expect("create"));
        let path = segment::path(dir, 7);
        let mut bytes = std::fs::read(&path).expect("read");
        let mut offsets = Vec::new();
        for (i, &len) in lens.iter().enumerate() {
            let seq = 7 + i as u64;
            let last = i + 1 == lens.len();
            let continues = i >= batch_from && (!last || open_batch);
            let flags = if continues { BATCH_CONTINUES } else { 0 };
            offsets.push(bytes.len() as u64);
            let payload: Vec<u8> = (0..len).map(|b| (b as u8) ^ (seq as u8)).collect();
            frame::encode(&mut bytes, seq, 100 + seq, flags, &payload);
        }
        std::fs::write(&path, &bytes).expect("write");
        (path, bytes, offsets)
    }

    #[test]
    fn a_clean_segment_gives_every_record_whatever_the_block_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Records smaller and larger than the blocks, so frames straddle block ends and
        // some need the buffer to grow; enough of them that the tail is not the segment.
        let lens: Vec<usize> = (0..3000)
            .map(|i| 1 + (i * 7919) % 700 + i % 3 * 2000)
            .collect();
        let (path, bytes, offsets) = segment(dir.path(), &lens, 2990, false);
        for block in [1, 31, 100, 4096, 65_536, BLOCK] {
            let clean = scan(&path, 7, MAX_PAYLOAD, block)
                .expect("scan")
                .unwrap_or_else(|| panic!("block {block}: a clean segment is clean"));
            assert_eq!(clean.offsets, offsets, "block {block}");
            assert_eq!(clean.len, bytes.len() as u64);
            assert_eq!(clean.last_timestamp, 100 + 7 + lens.len() as u64 - 1);
            let start = bytes.len() - TAIL;
            assert_eq!(clean.tail.start, start as u64);
            assert_eq!(clean.tail.bytes, bytes[start..]);
            assert_eq!(
                clean.tail.get(offsets[2999], bytes.len() as u64),
                bytes.get(offsets[2999] as usize..)
            );
            assert_eq!(clean.tail.get(0, 10), None, "before the tail");
        }
        // A segment of its header only, and one smaller than the tail.
        for lens in [&[][..], &[5, 10, 3000][..]] {
            let dir = tempfile::tempdir().expect("tempdir");
            let (path, bytes, offsets) = segment(dir.path(), lens, usize::MAX, false);
            let clean = scan(&path, 7, MAX_PAYLOAD, 64)
                .expect("scan")
                .expect("clean");
            assert_eq!(clean.offsets, offsets);
            assert_eq!(clean.len, bytes.len() as u64);
            assert_eq!(clean.tail.bytes, bytes[SEGMENT_HEADER_LEN as usize..]);
        }
    }

    #[test]
    fn anything_but_a_clean_segment_goes_to_the_whole_file_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lens: Vec<usize> = (0..200).map(|i| 1 + i * 37 % 500).collect();
        let (path, bytes, offsets) = segment(dir.path(), &lens, 195, false);
        let unclean = |what: &str, damaged: &[u8]| {
            std::fs::write(&path, damaged).expect("write");
            for block in [50, BLOCK] {
                let scanned = scan(&path, 7, MAX_PAYLOAD, block).expect("scan");
                assert!(scanned.is_none(), "{what}, block {block}: {scanned:?}");
            }
        };
        for cut in [1, 7, 40] {
            unclean("cut short", &bytes[..bytes.len() - cut]);
        }
        let mut flipped = bytes.clone();
        flipped[offsets[100] as usize + 40] ^= 1;
        unclean("a flipped byte", &flipped);
        let mut garbage = bytes.clone();
        garbage.extend_from_slice(&[0xff; 64]);
        unclean("bytes after the last record", &garbage);
        let mut zeros = bytes.clone();
        zeros.extend_from_slice(&[0; 4096]);
        unclean("zeros after the last record", &zeros);
        unclean("a header only half there", &bytes[..10]);
        let mut wrong_seq = bytes[..offsets[1] as usize].to_vec();
        frame::encode(&mut wrong_seq, 9, 1, 0, b"seq 9 where 8 belongs");
        unclean("a seq out of order", &wrong_seq);
        let other = tempfile::tempdir().expect("tempdir");
        let (_, open, _) = segment(other.path(), &lens, 195, true);
        unclean("a batch still open", &open);
        assert!(
            scan(&path, 8, MAX_PAYLOAD, BLOCK).expect("scan").is_none(),
            "another first seq"
        );
    }
}
