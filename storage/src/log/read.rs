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
use std::io::{Read, Seek, SeekFrom};
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use crate::Seq;
use crate::error::StorageError;
use crate::frame;
use crate::recovery;
use crate::tail::Tail;

use super::state::FileSpan;
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
    /// The bytes appended.
    pub payload: Arc<[u8]>,
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
        Some(span.records(self.inner.options.max_record_size))
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
        self.inner.state.lock().last_seq()
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
    /// Indexes the sealed segment starting at `first_seq` (outside the lock),
    /// then installs the index if the segment is still there and not indexed.
    fn load_sealed(&self, path: &Path, first_seq: Seq, end: Seq) -> Result<(), StorageError> {
        let (offsets, len) =
            recovery::index_sealed(path, first_seq, end, self.options.max_record_size)?;
        self.state.lock().install_index(first_seq, offsets, len);
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
                Ok(Look::Records(span.records(self.options.max_record_size)?))
            }
            None => Ok(Look::File),
        }
    }

    /// Up to `max` records from `from` on: from memory when recent, else from the
    /// segment file holding `from`. Empty when `from` is past the end.
    pub(crate) fn read_batch(&self, from: Seq, max: usize) -> Result<Vec<Record>, StorageError> {
        let (path, offsets, file_end) = loop {
            let st = self.state.lock();
            if from >= st.next_seq() || max == 0 {
                return Ok(Vec::new());
            }
            if from < st.first_seq() {
                return Err(st.not_found(from));
            }
            if let Some(span) = st.memory_span(from, max) {
                drop(st);
                return span.records(self.options.max_record_size);
            }
            match st.file_span(from, max) {
                FileSpan::Nothing => return Ok(Vec::new()),
                FileSpan::Unloaded {
                    path,
                    first_seq,
                    end,
                } => {
                    drop(st);
                    self.load_sealed(&path, first_seq, end)?;
                }
                FileSpan::Read { path, offsets, end } => break (path, offsets, end),
            }
        };
        read_frames(
            &path,
            &offsets,
            file_end,
            from,
            self.options.max_record_size,
        )
    }
}

/// Reads the frames at `offsets` (contiguous, ending at `end`) from `path`.
fn read_frames(
    path: &Path,
    offsets: &[u64],
    end: u64,
    first: Seq,
    max_len: usize,
) -> Result<Vec<Record>, StorageError> {
    let Some(&start) = offsets.first() else {
        return Ok(Vec::new());
    };
    let mut file = File::open(path).map_err(|e| StorageError::io("open segment", path, e))?;
    file.seek(SeekFrom::Start(start))
        .map_err(|e| StorageError::io("seek segment", path, e))?;
    let mut bytes = vec![0u8; (end - start) as usize];
    file.read_exact(&mut bytes)
        .map_err(|e| StorageError::io("read segment", path, e))?;
    let mut records = Vec::with_capacity(offsets.len());
    for (i, &offset) in offsets.iter().enumerate() {
        let local = (offset - start) as usize;
        let expected = first + i as u64;
        let corrupt = |reason: &str| StorageError::Corrupt {
            segment: path.to_path_buf(),
            offset,
            reason: format!("{reason} (reading seq {expected})"),
        };
        let (header, payload) = match frame::decode(&bytes[local..], max_len) {
            Ok(parsed) => parsed,
            Err(frame::Invalid::Short) => return Err(corrupt("record cut short")),
            Err(frame::Invalid::Bad(why)) => return Err(corrupt(why)),
        };
        if header.seq != expected {
            return Err(corrupt("unexpected seq"));
        }
        records.push(Record {
            seq: header.seq,
            timestamp: header.timestamp,
            payload: Arc::from(payload),
        });
    }
    Ok(records)
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
