//! Recovery: what `Log::open` does with the segments it finds.
//!
//! The last (active) segment is read and every record validated (frame checksum,
//! contiguous seqs: in blocks when it is clean, see `active_scan`, else whole);
//! earlier, sealed segments are checked at their header at open and their index
//! files (`sidecar`) loaded, so opening a long log costs one segment, not the
//! whole history. A sealed segment's frames are checked as
//! they are read; one without a valid index file is validated whole on its
//! first read. Then:
//! - A bad record in the *last* segment with no valid record after it is a torn
//!   tail: the file is cut back to the last good record and fsynced, and the cut
//!   is reported in the [`RecoveryReport`].
//! - A bad record followed by a valid one, a bad record in an earlier segment, or
//!   a missing segment is corruption: `open` fails with [`StorageError::Corrupt`]
//!   naming the segment and offset. Nothing is skipped.
//! - A batch whose last record is missing is dropped whole (cut back to its first
//!   record), so a batch is recovered completely or not at all.
//! - A last segment whose header was never completely written (a crash while it
//!   was created) is removed; the one before it then becomes the active one. It
//!   was fsynced before that segment was created (a roll syncs first), so it is
//!   checked as a sealed one: a bad frame in it is corruption, not a torn tail.
//! - Nothing read from the directory sizes an allocation or indexes a slice
//!   unchecked: a segment name that is not 20 digits of a seq in
//!   `1..=i64::MAX`, an entry that is not a regular file, or a sealed segment
//!   too short for the seqs its name and the next one's claim is
//!   [`StorageError::Corrupt`] naming the segment, at open.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::Seq;
use crate::active_scan::{self, Tail};
use crate::error::StorageError;
use crate::frame::{self, BATCH_CONTINUES, HEADER_LEN, Invalid};
use crate::segment::{self, SEGMENT_HEADER_LEN};
use crate::sidecar;

/// What recovery found and repaired when the log was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Valid records in the log after recovery.
    pub records: u64,
    /// Segment files in the log after recovery.
    pub segments: usize,
    /// Bytes cut from the end of the log (a torn write or an incomplete batch).
    pub truncated_bytes: u64,
    /// Complete records dropped because their batch was incomplete.
    pub truncated_records: u64,
    /// The segment that was cut, if any.
    pub truncated_segment: Option<PathBuf>,
    /// Segment files removed because their header was never fully written.
    pub removed_segments: usize,
}

impl RecoveryReport {
    /// Whether recovery changed anything on disk.
    pub fn repaired(&self) -> bool {
        self.truncated_bytes > 0 || self.removed_segments > 0
    }
}

/// The index of one segment: where its records start.
///
/// The active (last) segment indexes every record. A sealed one keeps every
/// [`sidecar::STRIDE`]-th (a read walks the frames in between), loaded at open
/// from its index file (see `sidecar`); without a valid one it is indexed
/// lazily: at open only its header is checked and its seqs are known from the
/// next segment's first seq; its records are read and validated, all of them,
/// the first time one is needed.
#[derive(Debug)]
pub(crate) struct SegmentIndex {
    pub(crate) first_seq: Seq,
    pub(crate) path: PathBuf,
    /// Where records `0, stride, 2 * stride, ..` start (empty until `loaded`).
    pub(crate) offsets: Vec<u64>,
    /// Records per entry of `offsets`: 1 while active.
    pub(crate) stride: u32,
    /// Valid bytes in the file (header included).
    pub(crate) len: u64,
    /// Whether `offsets` is known.
    pub(crate) loaded: bool,
    /// One past the last seq.
    pub(crate) end: Seq,
    /// A handle for reads, once a read opened one.
    pub(crate) reader: Option<Arc<File>>,
}

impl SegmentIndex {
    /// The index of a segment just created at `path`, holding no record.
    pub(crate) fn created(path: PathBuf, first_seq: Seq) -> SegmentIndex {
        SegmentIndex {
            first_seq,
            path,
            offsets: Vec::new(),
            stride: 1,
            len: SEGMENT_HEADER_LEN,
            loaded: true,
            end: first_seq,
            reader: None,
        }
    }

    /// One past the segment's last seq.
    pub(crate) fn end_seq(&self) -> Seq {
        self.end
    }

    /// Where the record `seq` (held by this loaded segment) or the nearest
    /// indexed one before it starts: `(offset, seq there)`.
    pub(crate) fn locate(&self, seq: Seq) -> Option<(u64, Seq)> {
        let stride = u64::from(self.stride);
        let entry = (seq.checked_sub(self.first_seq)?) / stride;
        let offset = *self.offsets.get(usize::try_from(entry).ok()?)?;
        Some((offset, self.first_seq + entry * stride))
    }

    /// Where the entry `entry` of `offsets` starts, or the segment's end past
    /// the last one.
    pub(crate) fn entry_offset(&self, entry: usize) -> u64 {
        self.offsets.get(entry).copied().unwrap_or(self.len)
    }

    /// Makes the index of this just-sealed segment sparse; returns what its
    /// index file must say.
    pub(crate) fn seal(&mut self) -> sidecar::Expect {
        if self.stride == 1 {
            self.offsets = sidecar::sparsify(&self.offsets);
            self.stride = sidecar::STRIDE;
        }
        self.expect()
    }

    /// What this segment's index file must agree with.
    pub(crate) fn expect(&self) -> sidecar::Expect {
        sidecar::Expect {
            first_seq: self.first_seq,
            records: self.end - self.first_seq,
            len: self.len,
        }
    }
}

/// The most segments that keep a file handle open for reads.
pub(crate) const OPEN_READERS: usize = 32;

/// Reads and validates every record of a sealed segment that must hold exactly
/// the seqs `first_seq..end_seq`; returns their offsets and the file's length.
pub(crate) fn index_sealed(
    path: &Path,
    first_seq: Seq,
    end_seq: Seq,
    max_len: usize,
) -> Result<(Vec<u64>, u64), StorageError> {
    let bytes = fs::read(path).map_err(|e| StorageError::io("read segment", path, e))?;
    segment::check_header(&bytes, first_seq).map_err(|reason| corrupt(path, 0, reason.into()))?;
    // Sized by the bytes read, never by the seqs the file names claim: every
    // frame takes at least `HEADER_LEN + 1` bytes.
    let most = bytes.len().saturating_sub(SEGMENT_HEADER_LEN as usize) / (HEADER_LEN + 1);
    let claimed = usize::try_from(end_seq.saturating_sub(first_seq)).unwrap_or(usize::MAX);
    let mut offsets = Vec::with_capacity(claimed.min(most));
    let mut pos = SEGMENT_HEADER_LEN as usize;
    let mut next = first_seq;
    while pos < bytes.len() {
        let header = match frame::decode(&bytes[pos..], max_len) {
            Ok((header, _)) if header.seq == next && next < end_seq => header,
            Ok((header, _)) => {
                return Err(corrupt(
                    path,
                    pos as u64,
                    format!("record has seq {}, expected {next}", header.seq),
                ));
            }
            Err(Invalid::Short) => {
                return Err(corrupt(path, pos as u64, "record cut short".into()));
            }
            Err(Invalid::Bad(why)) => return Err(corrupt(path, pos as u64, why.into())),
        };
        offsets.push(pos as u64);
        next += 1;
        pos += HEADER_LEN + header.len as usize;
    }
    if next != end_seq {
        return Err(corrupt(
            path,
            pos as u64,
            format!(
                "the segment ends before seq {next}, but the next segment starts at seq {end_seq}: records are missing"
            ),
        ));
    }
    Ok((offsets, bytes.len() as u64))
}

/// The log as recovered: its segments, indexed, and what was repaired.
pub(crate) struct Recovered {
    pub(crate) segments: Vec<SegmentIndex>,
    pub(crate) report: RecoveryReport,
    /// The timestamp of the last record of the last segment (0 if it has none),
    /// so that the reopened log keeps timestamps from decreasing.
    pub(crate) last_timestamp: u64,
    /// The last segment's last bytes as read and checked (up to its valid length;
    /// empty when there is no segment): they seed the log's memory window.
    pub(crate) active_tail: Tail,
}

/// Validates and repairs the segments in `dir`.
pub(crate) fn recover(dir: &Path, max_len: usize) -> Result<Recovered, StorageError> {
    let mut found = segment::list(dir)?;
    let mut report = RecoveryReport::default();
    // The last segment, read whole; set aside if its header was never written (a
    // crash while it was created), so that the one before it is then recovered as
    // the last. That one was sealed: a roll fsyncs a segment before it creates the
    // next, so its end cannot be torn, and it is scanned as a sealed segment (a
    // bad frame is corruption, reported, never cut).
    let mut last_bytes = None;
    let mut last_clean = None;
    let mut unwritten: Option<(PathBuf, u64)> = None;
    if let Some((first_seq, path)) = found.last() {
        // The usual open: a clean last segment, checked in blocks (`active_scan`).
        // Anything else is read whole and decided below.
        last_clean = active_scan::scan(path, *first_seq, max_len, active_scan::BLOCK)?;
        if last_clean.is_none() {
            let bytes = fs::read(path).map_err(|e| StorageError::io("read segment", path, e))?;
            let never_written =
                bytes.len() < SEGMENT_HEADER_LEN as usize || bytes.iter().all(|&b| b == 0);
            if segment::check_header(&bytes, *first_seq).is_err() && never_written {
                // Removed once the segment before it checked out (below): until then it
                // stays, so a failed open leaves the evidence for the next one.
                unwritten = Some((path.clone(), bytes.len() as u64));
                found.pop();
            } else {
                last_bytes = Some(bytes);
            }
        }
    }
    let mut segments: Vec<SegmentIndex> = Vec::with_capacity(found.len());
    let count = found.len();
    let next_firsts: Vec<Seq> = found.iter().skip(1).map(|(seq, _)| *seq).collect();
    let mut last_timestamp = 0;
    let mut active_tail = Tail::default();
    for (i, (first_seq, path)) in found.into_iter().enumerate() {
        if i + 1 < count {
            // The newest sealed segments keep the handle opened to check their
            // header, for the reads that follow a restart.
            let keep_reader = i + OPEN_READERS >= count;
            segments.push(sealed(&path, first_seq, next_firsts[i], keep_reader)?);
            continue;
        }
        if let Some(clean) = last_clean.take() {
            last_timestamp = clean.last_timestamp;
            active_tail = clean.tail;
            segments.push(SegmentIndex {
                first_seq,
                path,
                end: first_seq + clean.offsets.len() as u64,
                offsets: clean.offsets,
                stride: 1,
                len: clean.len,
                loaded: true,
                reader: None,
            });
            continue;
        }
        let bytes = match last_bytes.take() {
            Some(bytes) => bytes,
            None => fs::read(&path).map_err(|e| StorageError::io("read segment", &path, e))?,
        };
        segment::check_header(&bytes, first_seq)
            .map_err(|reason| corrupt(&path, 0, reason.into()))?;
        let index = scan(
            &path,
            first_seq,
            &bytes,
            unwritten.is_none(),
            max_len,
            &mut report,
        )?;
        last_timestamp = index
            .offsets
            .last()
            .and_then(|&at| bytes.get(at as usize..)?.first_chunk::<HEADER_LEN>())
            .and_then(|head| frame::parse_header(head, max_len).ok())
            .map_or(0, |header| header.timestamp);
        let mut bytes = bytes;
        bytes.truncate(usize::try_from(index.len).unwrap_or(usize::MAX));
        active_tail = Tail::whole(bytes);
        segments.push(index);
    }
    if let Some((path, len)) = unwritten {
        fs::remove_file(&path).map_err(|e| StorageError::io("remove torn segment", &path, e))?;
        segment::sync_dir(dir)?;
        report.removed_segments += 1;
        report.truncated_bytes += len;
    }
    report.records = segments.iter().map(|s| s.end_seq() - s.first_seq).sum();
    report.segments = segments.len();
    Ok(Recovered {
        segments,
        report,
        last_timestamp,
        active_tail,
    })
}

/// A sealed segment, checked at its header only (see [`SegmentIndex`]).
fn sealed(
    path: &Path,
    first_seq: Seq,
    end: Seq,
    keep_reader: bool,
) -> Result<SegmentIndex, StorageError> {
    let mut file = fs::File::open(path).map_err(|e| StorageError::io("open segment", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| StorageError::io("stat segment", path, e))?
        .len();
    let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
    std::io::Read::read_exact(&mut file, &mut header)
        .map_err(|_| corrupt(path, 0, "segment header is cut short".into()))?;
    segment::check_header(&header, first_seq).map_err(|reason| corrupt(path, 0, reason.into()))?;
    if end <= first_seq {
        return Err(corrupt(
            path,
            0,
            format!("segment starts at seq {first_seq}, but the next one starts at seq {end}"),
        ));
    }
    // Each record takes at least `HEADER_LEN + 1` bytes: a file too short for
    // the seqs up to the next segment's is missing records (checked here, at
    // open, from the names and the file's length, without reading it).
    let records = end - first_seq;
    let needed = records
        .saturating_mul(HEADER_LEN as u64 + 1)
        .saturating_add(SEGMENT_HEADER_LEN);
    if len < needed {
        return Err(corrupt(
            path,
            0,
            format!(
                "segment of {len} bytes cannot hold the {records} records from seq {first_seq} to seq {end} (where the next segment starts): records are missing"
            ),
        ));
    }
    let mut index = SegmentIndex {
        first_seq,
        path: path.to_path_buf(),
        offsets: Vec::new(),
        stride: sidecar::STRIDE,
        len,
        loaded: false,
        end,
        reader: None,
    };
    match sidecar::load(path, index.expect()) {
        Ok(Some((stride, offsets))) => {
            index.stride = stride;
            index.offsets = offsets;
            index.loaded = true;
            index.reader = keep_reader.then(|| Arc::new(file));
        }
        Ok(None) => {}
        Err(why) => tracing::warn!(
            segment = %path.display(),
            "the segment's index file {why}: ignored, the segment is indexed on its first read"
        ),
    }
    Ok(index)
}

/// Indexes one segment's records; cuts a torn tail when `is_last`.
fn scan(
    path: &Path,
    first_seq: Seq,
    bytes: &[u8],
    is_last: bool,
    max_len: usize,
    report: &mut RecoveryReport,
) -> Result<SegmentIndex, StorageError> {
    let mut offsets = Vec::new();
    let mut pos = SEGMENT_HEADER_LEN as usize;
    let mut next_seq = first_seq;
    // Index (into `offsets`) of the first record of a batch still open.
    let mut open_batch: Option<usize> = None;
    let mut torn = false;
    while pos < bytes.len() {
        let bad = match frame::decode(&bytes[pos..], max_len) {
            Ok((header, _)) if header.seq == next_seq => {
                offsets.push(pos as u64);
                if header.flags & BATCH_CONTINUES != 0 {
                    open_batch.get_or_insert(offsets.len() - 1);
                } else {
                    open_batch = None;
                }
                next_seq += 1;
                pos += HEADER_LEN + header.len as usize;
                continue;
            }
            Ok((header, _)) => format!("record has seq {}, expected {next_seq}", header.seq),
            Err(Invalid::Short) => "record cut short".to_owned(),
            Err(Invalid::Bad(why)) => why.to_owned(),
        };
        if !is_last {
            return Err(corrupt(path, pos as u64, bad));
        }
        if let Some(at) = valid_record_after(bytes, pos + 1, next_seq, max_len) {
            return Err(corrupt(
                path,
                pos as u64,
                format!("{bad}, but a valid record follows at offset {at}"),
            ));
        }
        torn = true;
        break;
    }
    let mut valid_len = pos as u64;
    if let Some(start) = open_batch {
        if !is_last {
            return Err(corrupt(
                path,
                offsets[start],
                "a batch continues past the end of its segment".into(),
            ));
        }
        report.truncated_records += (offsets.len() - start) as u64;
        valid_len = offsets[start];
        offsets.truncate(start);
        torn = true;
    }
    if torn {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| StorageError::io("open segment", path, e))?;
        file.set_len(valid_len)
            .map_err(|e| StorageError::io("truncate torn tail", path, e))?;
        file.sync_all()
            .map_err(|e| StorageError::io("fsync segment", path, e))?;
        report.truncated_bytes += bytes.len() as u64 - valid_len;
        report.truncated_segment = Some(path.to_path_buf());
    }
    let end = first_seq + offsets.len() as u64;
    Ok(SegmentIndex {
        first_seq,
        path: path.to_path_buf(),
        offsets,
        stride: 1,
        len: valid_len,
        loaded: true,
        end,
        reader: None,
    })
}

/// The offset of a valid record with seq >= `min_seq` at or after `from`, if any.
fn valid_record_after(bytes: &[u8], from: usize, min_seq: Seq, max_len: usize) -> Option<usize> {
    (from..bytes.len().saturating_sub(HEADER_LEN - 1)).find(|&at| {
        matches!(frame::decode(&bytes[at..], max_len), Ok((header, _)) if header.seq >= min_seq)
    })
}

fn corrupt(path: &Path, offset: u64, reason: String) -> StorageError {
    StorageError::Corrupt {
        segment: path.to_path_buf(),
        offset,
        reason,
    }
}
