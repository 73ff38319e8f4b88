//! The read path: single reads, ranges, and what tails look up.
//!
//! Readers pay for what they read: recent records are decoded from the memory
//! window (`memory`) outside the lock; older ones are read from their segment
//! file, located under the lock through the per-segment index and read outside
//! it. A sealed segment recovered at open is indexed on its first read
//! (`Inner::load_sealed`). Segment files are read on the caller's thread, so
//! every path that may touch a file is documented as blocking.

use std::collections::VecDeque;
use std::fs::File;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::Seq;
use crate::error::StorageError;
use crate::frame;
use crate::recovery;
use crate::sidecar;
use crate::tail::Tail;

use super::state::{FileRead, FileSpan};
use super::{Inner, Log};

/// What [`Inner::look`] found.
pub(crate) enum Look {
    Records(Vec<Record>),
    File,
    Nothing,
}

/// One record: its seq, when it was appended, and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record's sequence number.
    pub seq: Seq,
    /// When it was appended: milliseconds since the UNIX epoch, from a coarse
    /// clock (the kernel tick, 1-4 ms). Never lower than the timestamp of an
    /// earlier record appended since the log was opened, or of the last record
    /// it held then (when its active segment held any), even if the wall clock
    /// steps back.
    pub timestamp: u64,
    /// The bytes appended. Records read together share one buffer: keeping
    /// one payload keeps that read's buffer (at most a few MiB) alive.
    pub payload: Bytes,
}

impl Log {
    /// Reads the record at `seq`.
    ///
    /// May read a segment file (for records not among the newest in memory):
    /// call it from a blocking context (`tokio::task::spawn_blocking`), not from
    /// an async task.
    pub fn read(&self, seq: Seq) -> Result<Record, StorageError> {
        let mut records = self.inner.read_batch(seq, 1)?;
        records.pop().ok_or_else(|| self.not_found(seq))
    }

    /// The records in `range` (clamped to what is appended now), read in order.
    ///
    /// The iterator reads segment files as it goes: drive it from a blocking
    /// context (`tokio::task::spawn_blocking`), not from an async task.
    pub fn range(
        &self,
        range: impl RangeBounds<Seq>,
    ) -> Result<impl Iterator<Item = Result<Record, StorageError>> + Send + 'static, StorageError>
    {
        let (first, end) = {
            let st = self.inner.state.lock();
            (st.first_seq(), st.next_seq())
        };
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => first,
        };
        let stop = match range.end_bound() {
            Bound::Included(&s) => s.saturating_add(1),
            Bound::Excluded(&s) => s,
            Bound::Unbounded => end,
        }
        .min(end);
        if start < first && start < stop {
            return Err(self.not_found(start));
        }
        Ok(RangeIter {
            inner: Arc::clone(&self.inner),
            next: start,
            end: stop,
            buffered: VecDeque::new(),
        })
    }

    /// Up to `max` records from `from` on, if they are all in memory now (the
    /// recent window); `None` when reading them would touch a file. Never blocks
    /// on I/O: for async callers on the hot path.
    pub fn read_in_memory(
        &self,
        from: Seq,
        max: usize,
    ) -> Option<Result<Vec<Record>, StorageError>> {
        let st = self.inner.state.lock();
        if from >= st.next_seq() || max == 0 {
            return Some(Ok(Vec::new()));
        }
        let span = st.memory_span(from, max)?;
        drop(st);
        Some(span.records(frame::MAX_PAYLOAD))
    }

    /// Up to `max` records from `from` on, if they can be read without waiting
    /// on a disk: from memory, or (on Linux) from a segment file already open
    /// for reads whose bytes are all in the OS page cache (`preadv2` with
    /// `RWF_NOWAIT`). `None` when that is not so: then read them from a
    /// blocking context ([`Log::read`], [`Log::range`]). For async callers
    /// reading a few old records (a stream after a restart).
    pub fn read_nowait(&self, from: Seq, max: usize) -> Option<Result<Vec<Record>, StorageError>> {
        let read = {
            let st = self.inner.state.lock();
            if from >= st.next_seq() || max == 0 {
                return Some(Ok(Vec::new()));
            }
            if from < st.first_seq() {
                return Some(Err(st.not_found(from)));
            }
            if let Some(span) = st.memory_span(from, max) {
                drop(st);
                return Some(span.records(frame::MAX_PAYLOAD));
            }
            match st.file_span(from, max) {
                FileSpan::Read(read) if read.reader.is_some() => read,
                _ => return None,
            }
        };
        read_file_nowait(&read, frame::MAX_PAYLOAD)
    }

    /// A tail from `from`: the records already appended, then live ones.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use foldkit_storage::{Log, LogOptions};
    /// use futures::StreamExt;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let log = Log::open(dir.path(), LogOptions::default())?;
    /// log.append(b"before").await?;
    /// let mut tail = log.tail(1);
    /// let writer = log.clone();
    /// tokio::spawn(async move { writer.append(b"after").await });
    /// let first = tail.next().await.expect("open tail")?;
    /// let second = tail.next().await.expect("open tail")?;
    /// assert_eq!((&*first.payload, &*second.payload), (&b"before"[..], &b"after"[..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn tail(&self, from: Seq) -> Tail {
        Tail::new(Arc::clone(&self.inner), from.max(1))
    }

    /// The first seq in the log, if it holds any record.
    pub fn first_seq(&self) -> Option<Seq> {
        let st = self.inner.state.lock();
        st.last_seq().map(|_| st.first_seq())
    }

    /// The last seq in the log, if it holds any record.
    pub fn last_seq(&self) -> Option<Seq> {
        Some(self.inner.last.load(Ordering::Acquire)).filter(|&seq| seq > 0)
    }

    fn not_found(&self, seq: Seq) -> StorageError {
        StorageError::NotFound {
            seq,
            first: self.first_seq(),
            last: self.last_seq(),
        }
    }
}

impl Inner {
    /// Indexes the sealed segment starting at `first_seq` by reading it whole
    /// (outside the lock), installs the index if the segment is still there
    /// (and not indexed, unless `replace`), and writes its index file for the
    /// next open (a failure to write it is only reported: the file is a cache).
    fn index_sealed(
        &self,
        path: &Path,
        first_seq: Seq,
        end: Seq,
        replace: bool,
    ) -> Result<(), StorageError> {
        let (offsets, len) = recovery::index_sealed(path, first_seq, end, frame::MAX_PAYLOAD)?;
        let sparse = sidecar::sparsify(&offsets);
        let expect = sidecar::Expect {
            first_seq,
            records: end - first_seq,
            len,
        };
        if let Err(error) = sidecar::write(path, expect, sidecar::STRIDE, &sparse) {
            tracing::warn!(segment = %path.display(), %error, "cannot write the segment's index file");
        }
        self.state
            .lock()
            .install_index(first_seq, sidecar::STRIDE, sparse, replace);
        Ok(())
    }

    /// What a tail finds at `from` without touching a file: the records, when
    /// they are in memory; `File` when they must be read from a segment file
    /// ([`Inner::read_batch`], on the blocking pool); `Nothing` past the end.
    pub(crate) fn look(&self, from: Seq, max: usize) -> Result<Look, StorageError> {
        let st = self.state.lock();
        if from >= st.next_seq() || max == 0 {
            return Ok(Look::Nothing);
        }
        if from < st.first_seq() {
            return Err(st.not_found(from));
        }
        match st.memory_span(from, max) {
            Some(span) => {
                drop(st);
                Ok(Look::Records(span.records(frame::MAX_PAYLOAD)?))
            }
            None => Ok(Look::File),
        }
    }

    /// Whether reading `from` would read a segment file (for read-ahead).
    pub(crate) fn on_file_only(&self, from: Seq) -> bool {
        self.state.lock().on_file_only(from)
    }

    /// Up to `max` records from `from` on: from memory when recent, else from the
    /// segment file holding `from`. Empty when `from` is past the end.
    pub(crate) fn read_batch(&self, from: Seq, max: usize) -> Result<Vec<Record>, StorageError> {
        let mut reindexed = false;
        loop {
            let read = loop {
                let st = self.state.lock();
                if from >= st.next_seq() || max == 0 {
                    return Ok(Vec::new());
                }
                if from < st.first_seq() {
                    return Err(st.not_found(from));
                }
                if let Some(span) = st.memory_span(from, max) {
                    drop(st);
                    return span.records(frame::MAX_PAYLOAD);
                }
                match st.file_span(from, max) {
                    FileSpan::Nothing => return Ok(Vec::new()),
                    FileSpan::Unloaded {
                        path,
                        first_seq,
                        end,
                    } => {
                        drop(st);
                        self.index_sealed(&path, first_seq, end, false)?;
                    }
                    FileSpan::Read(read) => break read,
                }
            };
            let (records, opened) = match read_file(&read, frame::MAX_PAYLOAD) {
                Err(StorageError::Corrupt { .. }) if read.sealed && !reindexed => {
                    // The index may be stale (an index file describing other
                    // bytes): index the segment by reading it whole, which reports
                    // real corruption where it is, then read again.
                    self.index_sealed(&read.path, read.segment, read.segment_end, true)?;
                    reindexed = true;
                    continue;
                }
                result => result?,
            };
            if let Some(file) = opened {
                self.state.lock().install_reader(read.segment, file);
            }
            return Ok(records);
        }
    }
}

/// Consecutive frames to decode: `count` records after walking over `skip`
/// frames, the first of them the record `first`.
pub(super) struct Run {
    pub(super) first: Seq,
    pub(super) skip: usize,
    pub(super) count: usize,
    /// Whether to check each frame's CRC (frames read from a file), or only
    /// its header (frames this process wrote, still in memory).
    pub(super) verify: bool,
}

impl Run {
    /// Decodes the run starting at `at` in `bytes`; the records' payloads
    /// share `bytes`. On failure: the offset in `bytes` and why.
    pub(super) fn decode(
        &self,
        bytes: &Bytes,
        mut at: usize,
        max_len: usize,
    ) -> Result<Vec<Record>, (usize, String)> {
        let mut records = Vec::with_capacity(self.count);
        let total = self.skip + self.count;
        for (i, expected) in (self.first..).take(total).enumerate() {
            let rest = bytes.get(at..).unwrap_or_default();
            let parsed = match self.verify {
                true => frame::decode(rest, max_len).map(|(h, _)| h),
                false => rest
                    .first_chunk::<{ frame::HEADER_LEN }>()
                    .ok_or(frame::Invalid::Short)
                    .and_then(|head| frame::parse_header(head, max_len))
                    .and_then(|h| match rest.len() >= frame::HEADER_LEN + h.len as usize {
                        true => Ok(h),
                        false => Err(frame::Invalid::Short),
                    }),
            };
            let header = match parsed {
                Ok(header) if header.seq == expected => header,
                Ok(header) => {
                    return Err((
                        at,
                        format!("has seq {}, expected seq {expected}", header.seq),
                    ));
                }
                Err(frame::Invalid::Short) => {
                    return Err((at, format!("of seq {expected} is cut short")));
                }
                Err(frame::Invalid::Bad(why)) => {
                    return Err((at, format!("of seq {expected} is invalid: {why}")));
                }
            };
            let payload_at = at + frame::HEADER_LEN;
            at = payload_at + header.len as usize;
            if i >= self.skip {
                records.push(Record {
                    seq: header.seq,
                    timestamp: header.timestamp,
                    payload: bytes.slice(payload_at..at),
                });
            }
        }
        Ok(records)
    }
}

/// Reads one span of a segment file (on the caller's thread), through its
/// open read handle or one opened now (returned, for the log to keep).
fn read_file(
    read: &FileRead,
    max_len: usize,
) -> Result<(Vec<Record>, Option<Arc<File>>), StorageError> {
    let path = &read.path;
    let (file, opened) = match &read.reader {
        Some(file) => (Arc::clone(file), None),
        None => {
            let file =
                Arc::new(File::open(path).map_err(|e| StorageError::io("open segment", path, e))?);
            (Arc::clone(&file), Some(file))
        }
    };
    let len = usize::try_from(read.end - read.start).map_err(|_| StorageError::Corrupt {
        segment: path.clone(),
        offset: read.start,
        reason: "a read span does not fit in memory".into(),
    })?;
    let mut bytes = vec![0u8; len];
    read_exact_at(&file, &mut bytes, read.start)
        .map_err(|e| StorageError::io("read segment", path, e))?;
    Ok((decode_read(read, Bytes::from(bytes), max_len)?, opened))
}

/// [`read_file`] through the span's open handle, if its bytes are all in
/// the page cache; `None` otherwise (or off Linux).
#[cfg(target_os = "linux")]
fn read_file_nowait(read: &FileRead, max_len: usize) -> Option<Result<Vec<Record>, StorageError>> {
    use rustix::io::{ReadWriteFlags, preadv2};
    let file = read.reader.as_ref()?;
    let len = usize::try_from(read.end - read.start).ok()?;
    let mut bytes = vec![0u8; len];
    let got = preadv2(
        file,
        &mut [std::io::IoSliceMut::new(&mut bytes)],
        read.start,
        ReadWriteFlags::NOWAIT,
    );
    if got.ok()? != len {
        return None;
    }
    Some(decode_read(read, Bytes::from(bytes), max_len))
}

#[cfg(not(target_os = "linux"))]
fn read_file_nowait(_: &FileRead, _: usize) -> Option<Result<Vec<Record>, StorageError>> {
    None
}

/// Decodes the bytes of a file read (checking every frame).
fn decode_read(read: &FileRead, bytes: Bytes, max_len: usize) -> Result<Vec<Record>, StorageError> {
    let run = Run {
        first: read.first,
        skip: (read.from - read.first) as usize,
        count: read.count,
        verify: true,
    };
    run.decode(&bytes, 0, max_len)
        .map_err(|(offset, reason)| StorageError::Corrupt {
            segment: read.path.clone(),
            offset: read.start + offset as u64,
            reason: format!("record {reason}"),
        })
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

/// The iterator `Log::range` returns: reads ahead in chunks.
struct RangeIter {
    inner: Arc<Inner>,
    next: Seq,
    end: Seq,
    buffered: VecDeque<Record>,
}

impl Iterator for RangeIter {
    type Item = Result<Record, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffered.is_empty() && self.next < self.end {
            let want = (self.end - self.next).min(4096) as usize;
            match self.inner.read_batch(self.next, want) {
                Ok(batch) => {
                    self.next += batch.len() as u64;
                    if batch.is_empty() {
                        // The records were removed meanwhile (truncate_before).
                        self.next = self.end;
                    }
                    self.buffered.extend(batch);
                }
                Err(error) => {
                    self.next = self.end;
                    return Some(Err(error));
                }
            }
        }
        self.buffered.pop_front().map(Ok)
    }
}
