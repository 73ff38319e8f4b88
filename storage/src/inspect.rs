//! Read-only inspection of a log directory: what `foldkit verify`, `info` and
//! `events` use beside a running writer.
//!
//! [`Log::open`](crate::Log::open) takes the directory's lock and *repairs* what
//! it finds (it cuts a torn tail). A tool that looks at a live or damaged log
//! must do neither: [`scan`] reads the segment files as they are, takes no lock,
//! writes nothing, and reports a torn tail (an append in flight, or a crash's
//! leftovers) instead of cutting it. Damage anywhere else is reported with its
//! segment and offset, exactly as recovery would refuse it, and the scan stops
//! there: nothing past the first bad record is trusted.
//!
//! Beside a writer, the last segment may grow (or a new one appear) while it is
//! read: the scan sees a prefix of the log, possibly ending in a partly written
//! record, which it reports as the torn tail. Poll again from
//! [`ScanReport::next_seq`] to see more (`foldkit events --follow`).

use std::fs;
use std::path::{Path, PathBuf};

use crate::Seq;
use crate::error::StorageError;
use crate::frame::{self, BATCH_CONTINUES, HEADER_LEN, Invalid};
use crate::segment::{self, SEGMENT_HEADER_LEN};
use crate::sidecar;

/// One valid record, as the scan found it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ScannedRecord<'a> {
    /// The record's seq.
    pub seq: Seq,
    /// Its timestamp (ms since the UNIX epoch).
    pub timestamp: u64,
    /// The segment file holding it.
    pub segment: &'a Path,
    /// The byte offset of its frame in the segment.
    pub offset: u64,
    /// Its payload.
    pub payload: &'a [u8],
}

/// One segment file, as the scan found it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScannedSegment {
    /// The segment file.
    pub path: PathBuf,
    /// The seq its name (and header) gives its first record.
    pub first_seq: Seq,
    /// Valid records read from it (0 for a segment skipped by `from`).
    pub records: u64,
    /// The file's size in bytes.
    pub bytes: u64,
}

/// Where a scan stopped before the end of the files.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Damage {
    /// The segment file.
    pub segment: PathBuf,
    /// The byte offset of the first bad byte (a frame or the segment header).
    pub offset: u64,
    /// Bytes from `offset` to the end of that segment.
    pub bytes: u64,
    /// Complete records at the end that recovery would also drop (an
    /// incomplete batch); they are not passed to the visitor.
    pub dropped_records: u64,
    /// What is wrong.
    pub reason: String,
}

/// What a [`scan`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScanReport {
    /// Every segment file, in seq order.
    pub segments: Vec<ScannedSegment>,
    /// Valid records passed to the visitor.
    pub records: u64,
    /// The first seq of the log (`None`: no segment).
    pub first_seq: Option<Seq>,
    /// The last valid seq seen (`None`: none).
    pub last_seq: Option<Seq>,
    /// A torn tail at the end of the last segment: what `Log::open` would cut.
    /// Not corruption (an append in flight looks the same).
    pub torn_tail: Option<Damage>,
    /// Damage before the tail: `Log::open` would refuse the directory.
    pub corruption: Option<Damage>,
}

impl ScanReport {
    /// The seq after the last valid record seen: where to scan from next.
    pub fn next_seq(&self) -> Seq {
        self.last_seq
            .map_or(self.first_seq.unwrap_or(1), |last| last + 1)
    }
}

/// How to scan.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ScanOptions {
    /// Records before this seq are checked only where needed to reach it:
    /// whole segments before it are skipped (their header is still checked),
    /// and its records are not passed to the visitor.
    pub from: Seq,
    /// The largest payload accepted (as `LogOptions::max_record_size`).
    pub max_record_size: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            from: 1,
            max_record_size: 1 << 30,
        }
    }
}

impl ScanOptions {
    /// Starts visiting records at `seq`.
    pub fn from(mut self, seq: Seq) -> Self {
        self.from = seq;
        self
    }
}

/// The length of the segment at `path` and its first header bytes (fewer when
/// the file is shorter than a header).
fn read_header(path: &Path) -> Result<(u64, Vec<u8>), StorageError> {
    use std::io::Read;
    let file = fs::File::open(path).map_err(|e| StorageError::io("open segment", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| StorageError::io("stat segment", path, e))?
        .len();
    let mut header = Vec::with_capacity(segment::SEGMENT_HEADER_LEN as usize);
    file.take(segment::SEGMENT_HEADER_LEN)
        .read_to_end(&mut header)
        .map_err(|e| StorageError::io("read segment header", path, e))?;
    Ok((len, header))
}

/// Reads every segment in `dir` without locking or repairing, calling `visit`
/// with each valid record from `options.from` on, in seq order, and reports the
/// segments, a torn tail and the first damage. `visit` returns `false` to stop
/// early. Errors only when the directory or a file cannot be read, or a file
/// name is not a segment's.
///
/// Blocking file I/O: call it from a blocking context.
pub fn scan(
    dir: impl AsRef<Path>,
    options: &ScanOptions,
    mut visit: impl FnMut(&ScannedRecord<'_>) -> bool,
) -> Result<ScanReport, StorageError> {
    let dir = dir.as_ref();
    let meta = fs::metadata(dir).map_err(|e| StorageError::io("stat log directory", dir, e))?;
    if !meta.is_dir() {
        return Err(StorageError::NotADirectory { path: dir.into() });
    }
    let found = segment::list(dir)?;
    let mut report = ScanReport {
        first_seq: found.first().map(|(seq, _)| *seq),
        ..ScanReport::default()
    };
    let count = found.len();
    for (i, (first_seq, path)) in found.iter().enumerate() {
        let is_last = i + 1 == count;
        let next_first = found.get(i + 1).map(|(seq, _)| *seq);
        // A whole segment before `from` is skipped, but only when the next one
        // starts at or before `from` (so no record of interest is in it).
        if next_first.is_some_and(|next| next <= options.from) {
            let (bytes, header) = read_header(path)?;
            if let Err(reason) = segment::check_header(&header, *first_seq) {
                report.segments.push(ScannedSegment {
                    path: path.clone(),
                    first_seq: *first_seq,
                    records: 0,
                    bytes,
                });
                report.corruption = Some(Damage {
                    segment: path.clone(),
                    offset: 0,
                    bytes,
                    dropped_records: 0,
                    reason: reason.to_owned(),
                });
                return Ok(report);
            }
            report.segments.push(ScannedSegment {
                path: path.clone(),
                first_seq: *first_seq,
                records: 0,
                bytes,
            });
            report.last_seq = next_first.map(|next| next - 1);
            continue;
        }
        let bytes = fs::read(path).map_err(|e| StorageError::io("read segment", path, e))?;
        let mut scanned = ScannedSegment {
            path: path.clone(),
            first_seq: *first_seq,
            records: 0,
            bytes: bytes.len() as u64,
        };
        let outcome = scan_segment(path, *first_seq, &bytes, options, &mut scanned, &mut visit);
        report.records += scanned.records;
        report.segments.push(scanned);
        match outcome {
            Outcome::Complete { last } => {
                if let Some(last) = last {
                    report.last_seq = Some(last);
                }
                if let Some(next) = next_first {
                    let expected = last.map_or(*first_seq, |l| l + 1);
                    if next != expected {
                        report.corruption = Some(Damage {
                            segment: path.clone(),
                            offset: bytes.len() as u64,
                            bytes: 0,
                            dropped_records: 0,
                            reason: format!(
                                "the segment ends before seq {expected}, but the next segment starts at seq {next}: records are missing"
                            ),
                        });
                        return Ok(report);
                    }
                }
            }
            Outcome::Stopped { last } => {
                report.last_seq = last.or(report.last_seq);
                return Ok(report);
            }
            Outcome::Damaged { last, damage } => {
                report.last_seq = last.or(report.last_seq);
                if is_last && damage.torn {
                    report.torn_tail = Some(damage.damage);
                } else {
                    report.corruption = Some(damage.damage);
                }
                return Ok(report);
            }
        }
    }
    Ok(report)
}

struct Found {
    damage: Damage,
    /// Whether, were this the last segment, it would be a torn tail.
    torn: bool,
}

enum Outcome {
    Complete { last: Option<Seq> },
    Stopped { last: Option<Seq> },
    Damaged { last: Option<Seq>, damage: Found },
}

/// One record of a batch not yet known to be complete.
struct Pending {
    seq: Seq,
    timestamp: u64,
    offset: usize,
    len: usize,
}

fn scan_segment(
    path: &Path,
    first_seq: Seq,
    bytes: &[u8],
    options: &ScanOptions,
    scanned: &mut ScannedSegment,
    visit: &mut impl FnMut(&ScannedRecord<'_>) -> bool,
) -> Outcome {
    let damage = |offset: usize, dropped: u64, reason: String, torn: bool| Found {
        damage: Damage {
            segment: path.to_path_buf(),
            offset: offset as u64,
            bytes: (bytes.len() - offset.min(bytes.len())) as u64,
            dropped_records: dropped,
            reason,
        },
        torn,
    };
    if let Err(reason) = segment::check_header(bytes, first_seq) {
        // A header never fully written (a crash while creating the segment,
        // or a writer creating it right now) is a torn tail.
        let never_written =
            bytes.len() < SEGMENT_HEADER_LEN as usize || bytes.iter().all(|&b| b == 0);
        return Outcome::Damaged {
            last: None,
            damage: damage(0, 0, reason.into(), never_written),
        };
    }
    let mut pos = SEGMENT_HEADER_LEN as usize;
    let mut next_seq = first_seq;
    let mut last = None;
    // Records of an open batch: passed on only once its last record is seen,
    // as recovery keeps a batch whole or not at all.
    let mut batch: Vec<Pending> = Vec::new();
    while pos < bytes.len() {
        let bad = match frame::decode(&bytes[pos..], options.max_record_size) {
            Ok((header, _)) if header.seq == next_seq => {
                batch.push(Pending {
                    seq: header.seq,
                    timestamp: header.timestamp,
                    offset: pos,
                    len: header.len as usize,
                });
                next_seq += 1;
                pos += HEADER_LEN + header.len as usize;
                if header.flags & BATCH_CONTINUES == 0 {
                    for record in batch.drain(..) {
                        last = Some(record.seq);
                        scanned.records += 1;
                        if record.seq < options.from {
                            continue;
                        }
                        let start = record.offset + HEADER_LEN;
                        let scanned_record = ScannedRecord {
                            seq: record.seq,
                            timestamp: record.timestamp,
                            segment: path,
                            offset: record.offset as u64,
                            payload: &bytes[start..start + record.len],
                        };
                        if !visit(&scanned_record) {
                            return Outcome::Stopped { last };
                        }
                    }
                }
                continue;
            }
            Ok((header, _)) => format!("record has seq {}, expected {next_seq}", header.seq),
            Err(Invalid::Short) => "record cut short".to_owned(),
            Err(Invalid::Bad(why)) => why.to_owned(),
        };
        // Recovery's rule: a bad record followed by a valid one is corruption,
        // not a torn tail.
        let torn = match valid_record_after(bytes, pos + 1, next_seq, options.max_record_size) {
            Some(at) => {
                return Outcome::Damaged {
                    last,
                    damage: damage(
                        pos,
                        0,
                        format!("{bad}, but a valid record follows at offset {at}"),
                        false,
                    ),
                };
            }
            None => true,
        };
        let (at, dropped) = batch
            .first()
            .map_or((pos, 0), |first| (first.offset, batch.len() as u64));
        return Outcome::Damaged {
            last,
            damage: damage(at, dropped, bad, torn),
        };
    }
    if let Some(first) = batch.first() {
        return Outcome::Damaged {
            last,
            damage: damage(
                first.offset,
                batch.len() as u64,
                "a batch continues past the end of its segment".into(),
                true,
            ),
        };
    }
    Outcome::Complete { last }
}

/// The offset of a valid record with seq >= `min_seq` at or after `from`, if any.
fn valid_record_after(bytes: &[u8], from: usize, min_seq: Seq, max_len: usize) -> Option<usize> {
    (from..bytes.len().saturating_sub(HEADER_LEN - 1)).find(|&at| {
        matches!(frame::decode(&bytes[at..], max_len), Ok((header, _)) if header.seq >= min_seq)
    })
}

/// The lock a repair holds: the directory's writer lock, so no `Log` opens it
/// meanwhile. Dropping it releases the directory.
#[derive(Debug)]
pub struct RepairLock {
    _lock: crate::lock::DirLock,
    dir: PathBuf,
}

impl RepairLock {
    /// Takes the writer lock of the log directory `dir`; fails with
    /// [`StorageError::Locked`] at once if a writer has it open.
    pub fn acquire(dir: impl AsRef<Path>) -> Result<RepairLock, StorageError> {
        let dir = dir.as_ref().to_path_buf();
        Ok(RepairLock {
            _lock: crate::lock::DirLock::acquire(&dir)?,
            dir,
        })
    }

    /// Cuts the log at `offset` of `segment` (a segment of this directory):
    /// the file keeps its first `offset` bytes (an offset inside the header
    /// removes the file), and every later segment is removed. Each change is
    /// fsynced. Returns the segment files removed.
    ///
    /// This is the one writing operation of this module: the caller copies
    /// what it wants to keep aside first.
    pub fn truncate(&self, segment: &Path, offset: u64) -> Result<Vec<PathBuf>, StorageError> {
        let found = segment::list(&self.dir)?;
        let at = found
            .iter()
            .position(|(_, path)| path == segment)
            .ok_or_else(|| StorageError::NotFound {
                seq: 0,
                first: found.first().map(|(seq, _)| *seq),
                last: None,
            })?;
        let mut removed = Vec::new();
        // Index files describe the bytes cut or removed here.
        for (_, path) in &found[at..] {
            sidecar::remove(path).map_err(|e| StorageError::io("remove segment index", path, e))?;
        }
        for (_, later) in found[at + 1..].iter().rev() {
            fs::remove_file(later).map_err(|e| StorageError::io("remove segment", later, e))?;
            removed.push(later.clone());
        }
        if offset < SEGMENT_HEADER_LEN {
            fs::remove_file(segment).map_err(|e| StorageError::io("remove segment", segment, e))?;
            removed.push(segment.to_path_buf());
        } else {
            let file = fs::OpenOptions::new()
                .write(true)
                .open(segment)
                .map_err(|e| StorageError::io("open segment", segment, e))?;
            file.set_len(offset)
                .map_err(|e| StorageError::io("truncate segment", segment, e))?;
            file.sync_all()
                .map_err(|e| StorageError::io("fsync segment", segment, e))?;
        }
        segment::sync_dir(&self.dir)?;
        removed.reverse();
        Ok(removed)
    }
}

/// The valid records of one segment file whose name gives `first_seq`,
/// counted from its start up to its first bad byte (what a repair that
/// removes the segment drops). Read-only.
pub fn count_records(segment: &Path, first_seq: Seq) -> Result<u64, StorageError> {
    let bytes = fs::read(segment).map_err(|e| StorageError::io("read segment", segment, e))?;
    let mut scanned = ScannedSegment {
        path: segment.to_path_buf(),
        first_seq,
        records: 0,
        bytes: bytes.len() as u64,
    };
    let _ = scan_segment(
        segment,
        first_seq,
        &bytes,
        &ScanOptions::default().from(Seq::MAX),
        &mut scanned,
        &mut |_| true,
    );
    Ok(scanned.records)
}

/// The segment files of `dir` with the first seq each name gives, in seq order.
pub fn segments(dir: impl AsRef<Path>) -> Result<Vec<(Seq, PathBuf)>, StorageError> {
    segment::list(dir.as_ref())
}
