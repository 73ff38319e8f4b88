//! The log: appends under one short lock, reads through a per-segment index.
//!
//! The write path is kept to the bare minimum per record: a coarse clock read
//! (before the lock), then under the lock the frame encoded into `buf` (CRC
//! included) and its offset pushed to the active segment's index; no
//! allocation, no syscall (until `buf` holds 64 KiB). Readers pay for what they
//! read: they decode frames from memory (copying the payloads out) or from the
//! segment files.
//!
//! Invariants kept here (all under `Inner::state`):
//! - `next_seq` is one past the last appended record; seqs are contiguous.
//! - The bytes of every record with seq <= `flushed_seq` are in the OS (written
//!   to the active or an earlier segment file); the frames of the others, and
//!   only those, are in `buf`, which starts at file offset `active.len -
//!   buf.len()` of the active segment.
//! - `chunks` holds the frames of the newest flushed records, exactly as they
//!   are in their segment file: seqs contiguous from the first chunk's `first`
//!   up to `flushed_seq`, each chunk within one segment. So every seq from the
//!   first chunk's `first` (or `flushed_seq + 1`) to `next_seq - 1` is in memory.
//! - A batch's frames are written into `buf` under one lock hold, never split
//!   across segments (a roll flushes `buf` first).
//! - Timestamps never decrease along seqs (`last_timestamp`).
//! - Once `poison` is set, no write is attempted and every append fails with it.
//! - While `rolling`, no record is pushed: the sync thread is sealing the
//!   active segment and creating the next (see `sync`); appenders wait for it.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::{Bound, RangeBounds, RangeInclusive};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::sync::{Notify, watch};

use crate::Seq;
use crate::clock;
use crate::error::StorageError;
use crate::frame::{self, BATCH_CONTINUES, HEADER_LEN};
use crate::lock::DirLock;
use crate::options::LogOptions;
use crate::recovery::{self, RecoveryReport, SegmentIndex};
use crate::segment::{self, SEGMENT_HEADER_LEN};
use crate::sync::{SyncState, Syncer};
use crate::tail::Tail;

/// Bytes buffered before they are written to the OS.
const FLUSH_AT: usize = 64 << 10;
/// The capacity `buf` (and each chunk) is allocated with: a flush plus a record.
const BUF_CAPACITY: usize = FLUSH_AT + 4096;
/// How many chunks of flushed frames are kept in memory for tails and reads.
const RECENT_CHUNKS: usize = 2;
/// A flush that fits in the newest chunk up to this size is appended to it, so
/// that small flushes (group commit under `Always`) do not shrink the memory
/// window to a few records; a larger one becomes a chunk of its own (no copy).
const CHUNK_BYTES: usize = FLUSH_AT;
/// The most bytes one read from a segment file gathers.
const READ_CHUNK: u64 = 4 << 20;
/// The most index entries reserved up front for an active segment (4 MiB).
const MAX_INDEX_RESERVE: u64 = 1 << 19;

/// Reserves room in the active segment's index for as many records as the
/// segment can take (every frame at least `HEADER_LEN + 1` bytes), up to
/// [`MAX_INDEX_RESERVE`]: for segments up to ~17 MiB (the default is 16 MiB)
/// the index then never reallocates (copying itself) under the append lock.
/// The reservation is virtual memory until records use it; `roll` trims it off
/// the sealed segment.
fn reserve_index(active: &mut SegmentIndex, segment_size: u64) {
    let room = segment_size.saturating_sub(active.len) / (HEADER_LEN as u64 + 1);
    active.offsets.reserve(room.min(MAX_INDEX_RESERVE) as usize);
}

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

/// Rewrites one payload in place once its seq and timestamp are known.
type Fill<'a> = dyn FnMut(Seq, u64, &mut [u8]) + 'a;

/// A batch put in the log by [`Log::try_enqueue_batch_with`], not yet known durable.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "wait_durable tells when the batch is durable"]
pub struct Enqueued {
    /// The seqs the records got.
    pub seqs: RangeInclusive<Seq>,
    /// The timestamp every record of the batch got.
    pub timestamp: u64,
    /// Whether the policy wants an fsync before acknowledging.
    sync: bool,
}

/// What [`Log::try_enqueue_batch_with`] did.
#[derive(Debug)]
#[must_use]
pub enum Enqueue {
    /// The batch is in the log.
    Done(Enqueued),
    /// The active segment is full and being rolled: wait, then try again.
    Rolling(RollWait),
}

/// The end of a segment roll, to wait for before enqueueing again.
#[derive(Debug)]
pub struct RollWait(watch::Receiver<crate::sync::Status>);

impl RollWait {
    /// Waits until the roll is done (or the log is closed).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only waits.
    pub async fn wait(mut self) {
        let _ = self.0.changed().await;
    }
}

/// A segmented, append-only log in a directory. Cheap to clone: clones share it.
#[derive(Clone)]
pub struct Log {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) options: LogOptions,
    report: RecoveryReport,
    pub(crate) state: Mutex<State>,
    /// Woken after an append (when a tail waits) and on close: tails wait on it.
    pub(crate) appended: Arc<Notify>,
    /// Tails waiting on `appended`. Appends skip the wake-up when it is 0. A tail
    /// counts itself in *before* it takes the state lock to look for records, and
    /// an append reads the count *under* the lock, after its record is in: the
    /// lock orders the two critical sections, so either the tail's look sees the
    /// record or the append sees the count. No wake-up is lost.
    pub(crate) waiting: std::sync::atomic::AtomicUsize,
    pub(crate) sync: SyncState,
    pub(crate) closed: AtomicBool,
    lock: Mutex<Option<DirLock>>,
    syncer: Mutex<Option<Syncer>>,
}

/// Frames already written to the OS, kept in memory (see the module invariants).
struct Chunk {
    /// The first seq of the segment the frames are in.
    segment: Seq,
    /// The frames of seqs `first..end`.
    first: Seq,
    end: Seq,
    /// The file offset of `bytes[0]` in its segment.
    start: u64,
    /// Shared with readers decoding it outside the lock.
    bytes: Arc<Vec<u8>>,
}

/// Frames of records in memory, taken under the lock and decoded outside it.
struct MemorySpan {
    bytes: SpanBytes,
    /// Where the first frame starts in `bytes`.
    at: usize,
    first: Seq,
    count: usize,
    /// For the error should a frame not parse (it never should).
    segment: PathBuf,
    start: u64,
}

enum SpanBytes {
    Chunk(Arc<Vec<u8>>),
    Copied(Vec<u8>),
}

impl MemorySpan {
    fn records(&self, max_len: usize) -> Result<Vec<Record>, StorageError> {
        let bytes = match &self.bytes {
            SpanBytes::Chunk(bytes) => bytes.as_slice(),
            SpanBytes::Copied(bytes) => bytes.as_slice(),
        };
        let mut records = Vec::with_capacity(self.count);
        let mut at = self.at;
        for expected in self.first..self.first + self.count as u64 {
            let parsed = bytes
                .get(at..)
                .and_then(|b| b.first_chunk::<HEADER_LEN>())
                .and_then(|head| frame::parse_header(head, max_len).ok())
                .filter(|header| header.seq == expected)
                .and_then(|header| {
                    let end = at + HEADER_LEN + header.len as usize;
                    Some((header, bytes.get(at + HEADER_LEN..end)?, end))
                });
            let Some((header, payload, end)) = parsed else {
                return Err(StorageError::Corrupt {
                    segment: self.segment.clone(),
                    offset: self.start + at as u64,
                    reason: format!("in-memory frame of seq {expected} does not parse"),
                });
            };
            records.push(Record {
                seq: header.seq,
                timestamp: header.timestamp,
                payload: Arc::from(payload),
            });
            at = end;
        }
        Ok(records)
    }
}

pub(crate) struct State {
    segments: Vec<SegmentIndex>,
    /// The last segment's file, appended to.
    pub(crate) active: Arc<File>,
    /// Frames not yet written to the OS.
    pub(crate) buf: Vec<u8>,
    pub(crate) next_seq: Seq,
    pub(crate) flushed_seq: Seq,
    /// The newest flushed frames, oldest first.
    chunks: VecDeque<Chunk>,
    /// The highest timestamp handed out.
    last_timestamp: u64,
    /// Records appended since the last fsync.
    pub(crate) unsynced: u64,
    pub(crate) poison: Option<StorageError>,
    pub(crate) closed: bool,
    /// The active segment is full: the sync thread is rolling it, appends wait.
    pub(crate) rolling: bool,
}

impl State {
    fn active_path(&self) -> &Path {
        self.segments
            .last()
            .map_or(Path::new(""), |s| s.path.as_path())
    }

    pub(crate) fn active_segment_path(&self) -> Option<PathBuf> {
        self.segments.last().map(|s| s.path.clone())
    }

    fn first_seq(&self) -> Seq {
        self.segments.first().map_or(1, |s| s.first_seq)
    }

    pub(crate) fn last_seq(&self) -> Option<Seq> {
        (self.next_seq > self.first_seq()).then(|| self.next_seq - 1)
    }

    #[inline]
    fn writable(&self) -> Result<(), StorageError> {
        if self.poison.is_none() && !self.closed {
            return Ok(());
        }
        self.not_writable()
    }

    #[cold]
    fn not_writable(&self) -> Result<(), StorageError> {
        if let Some(poison) = &self.poison {
            return Err(StorageError::Poisoned(Box::new(poison.clone())));
        }
        if self.closed {
            return Err(StorageError::Closed);
        }
        Ok(())
    }

    /// Writes the buffer to the active segment. A failure poisons the log.
    pub(crate) fn flush(&mut self) -> Result<(), StorageError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.writable_or_closed()?;
        if let Err(e) = (&*self.active).write_all(&self.buf) {
            let error = StorageError::io("write segment", self.active_path(), e);
            self.poison = Some(error.clone());
            return Err(error);
        }
        self.keep_flushed();
        self.flushed_seq = self.next_seq - 1;
        Ok(())
    }

    /// Moves the just-written `buf` into `chunks` and leaves `buf` empty, reusing
    /// the allocation of an evicted chunk (or appending a small flush to the
    /// newest chunk), so that steady appending allocates nothing.
    fn keep_flushed(&mut self) {
        let (segment, end_offset) = self
            .segments
            .last()
            .map_or((0, 0), |s| (s.first_seq, s.len));
        let start = end_offset - self.buf.len() as u64;
        let (first, end) = (self.flushed_seq + 1, self.next_seq);
        if let Some(last) = self.chunks.back_mut()
            && last.segment == segment
            && last.start + last.bytes.len() as u64 == start
            && last.bytes.len() + self.buf.len() <= CHUNK_BYTES
            && let Some(bytes) = Arc::get_mut(&mut last.bytes)
        {
            bytes.extend_from_slice(&self.buf);
            last.end = end;
            self.buf.clear();
            return;
        }
        let reused = if self.chunks.len() >= RECENT_CHUNKS {
            self.chunks
                .pop_front()
                .and_then(|c| Arc::try_unwrap(c.bytes).ok())
                .filter(|v| v.capacity() <= 4 * BUF_CAPACITY)
        } else {
            None
        };
        let mut next = reused.unwrap_or_else(|| Vec::with_capacity(BUF_CAPACITY));
        next.clear();
        let bytes = std::mem::replace(&mut self.buf, next);
        self.chunks.push_back(Chunk {
            segment,
            first,
            end,
            start,
            bytes: Arc::new(bytes),
        });
    }

    /// Like `writable`, but a closed log may still flush what it buffered.
    fn writable_or_closed(&self) -> Result<(), StorageError> {
        match &self.poison {
            Some(poison) => Err(StorageError::Poisoned(Box::new(poison.clone()))),
            None => Ok(()),
        }
    }

    /// The frames of up to `max` records from `from` on, if `from` is in memory:
    /// shared when in a chunk, copied when still in `buf`. Stops at the end of
    /// the chunk (or `buf`) holding `from`.
    fn memory_span(&self, from: Seq, max: usize) -> Option<MemorySpan> {
        let front = self
            .chunks
            .front()
            .map_or(self.flushed_seq + 1, |c| c.first);
        if from < front || from >= self.next_seq || max == 0 {
            return None;
        }
        let seg = self
            .segments
            .get(self.segments.partition_point(|s| s.end_seq() <= from))?;
        let offset = |seq: Seq| seg.offsets.get((seq - seg.first_seq) as usize).copied();
        let stop_at = |end: Seq| end.min(from.saturating_add(max as u64));
        if from > self.flushed_seq {
            let start = seg.len - self.buf.len() as u64;
            let stop = stop_at(self.next_seq);
            let at = (offset(from)?.checked_sub(start)?) as usize;
            let to = match stop == self.next_seq {
                true => self.buf.len(),
                false => (offset(stop)?.checked_sub(start)?) as usize,
            };
            return Some(MemorySpan {
                bytes: SpanBytes::Copied(self.buf.get(at..to)?.to_vec()),
                at: 0,
                first: from,
                count: (stop - from) as usize,
                segment: seg.path.clone(),
                start: start + at as u64,
            });
        }
        let chunk = self
            .chunks
            .get(self.chunks.partition_point(|c| c.end <= from))?;
        let at = (offset(from)?.checked_sub(chunk.start)?) as usize;
        Some(MemorySpan {
            bytes: SpanBytes::Chunk(Arc::clone(&chunk.bytes)),
            at,
            first: from,
            count: (stop_at(chunk.end) - from) as usize,
            segment: seg.path.clone(),
            start: chunk.start,
        })
    }

    /// The timestamp for the next record: the coarse clock, never below one
    /// handed out before. `now` is read before the lock is taken, so that the
    /// clock read overlaps the lock's acquisition.
    #[inline]
    fn timestamp(&mut self, now: u64) -> u64 {
        self.last_timestamp = self.last_timestamp.max(now);
        self.last_timestamp
    }

    #[inline]
    fn push(&mut self, seq: Seq, timestamp: u64, flags: u32, payload: &[u8]) {
        let start = self.buf.len();
        frame::encode(&mut self.buf, seq, timestamp, flags, payload);
        let written = (self.buf.len() - start) as u64;
        if let Some(active) = self.segments.last_mut() {
            active.offsets.push(active.len);
            active.len += written;
        }
        self.next_seq = seq + 1;
        self.unsynced += 1;
    }
}

impl Log {
    /// Opens (creating if needed) the log in `dir`, recovering it: a torn tail is
    /// cut and reported in [`Log::recovery_report`]; corruption is an error.
    ///
    /// Fails at once if another `Log` has the directory open. Starts the log's
    /// sync thread.
    ///
    /// Does file I/O (it reads and validates the last segment, may cut a torn
    /// tail, and fsyncs): call it from a blocking context
    /// (`tokio::task::spawn_blocking`), not from an async task.
    pub fn open(dir: impl AsRef<Path>, options: LogOptions) -> Result<Log, StorageError> {
        let dir = dir.as_ref().to_path_buf();
        if dir.exists() && !dir.is_dir() {
            return Err(StorageError::NotADirectory { path: dir });
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| StorageError::io("create log directory", &dir, e))?;
        let lock = DirLock::acquire(&dir)?;
        let recovered = recovery::recover(&dir, options.max_record_size)?;
        let mut segments = recovered.segments;
        let active = match segments.last() {
            Some(last) => {
                let file = segment::open_append(&last.path)?;
                file.sync_all()
                    .map_err(|e| StorageError::io("fsync segment", &last.path, e))?;
                file
            }
            None => {
                let file = segment::create(&dir, 1)?;
                segments.push(SegmentIndex {
                    first_seq: 1,
                    path: segment::path(&dir, 1),
                    offsets: Vec::new(),
                    len: SEGMENT_HEADER_LEN,
                    loaded: true,
                    end: 1,
                });
                file
            }
        };
        if let Some(active) = segments.last_mut() {
            reserve_index(active, options.segment_size);
        }
        let next_seq = segments.last().map_or(1, SegmentIndex::end_seq);
        let state = State {
            segments,
            active: Arc::new(active),
            buf: Vec::with_capacity(BUF_CAPACITY),
            next_seq,
            flushed_seq: next_seq - 1,
            chunks: VecDeque::new(),
            last_timestamp: recovered.last_timestamp,
            unsynced: 0,
            poison: None,
            closed: false,
            rolling: false,
        };
        let inner = Arc::new(Inner {
            dir,
            report: recovered.report,
            state: Mutex::new(state),
            appended: Arc::new(Notify::new()),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            sync: SyncState::new(next_seq - 1),
            closed: AtomicBool::new(false),
            lock: Mutex::new(Some(lock)),
            syncer: Mutex::new(None),
            options,
        });
        *inner.syncer.lock() = Some(Syncer::start(&inner)?);
        Ok(Log { inner })
    }

    /// What recovery found and repaired when the log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Appends one record and returns its seq. Under [`FsyncPolicy::Always`](crate::FsyncPolicy::Always) it
    /// returns once the record is durable (under `EveryN(n)`, the append that
    /// completes the n-th unsynced record does). Must be called within a tokio
    /// runtime. It never blocks on an fsync: fsyncs and segment rolls run on
    /// the log's sync thread, which the append awaits (it may write a full
    /// 64 KiB buffer to the OS, a `write` to the page cache).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes leaves the log working and
    /// consistent; the record is then either wholly in the log (appended, and
    /// made durable like any other record, but its seq is not returned) or not
    /// in it at all (the drop came while the append waited for a segment roll).
    /// A caller that must know which reads [`Log::last_seq`] or the records.
    pub async fn append(&self, payload: &[u8]) -> Result<Seq, StorageError> {
        self.check_payload(payload)?;
        let incoming = (HEADER_LEN + payload.len()) as u64;
        let (seq, sync, wake) = loop {
            let mut roll = {
                let now = clock::now_ms();
                let mut st = self.inner.state.lock();
                st.writable()?;
                match self.room(&mut st, incoming) {
                    None => {
                        let seq = st.next_seq;
                        let timestamp = st.timestamp(now);
                        st.push(seq, timestamp, 0, payload);
                        let sync = self.after_append(&mut st)?;
                        break (seq, sync, self.inner.tails_waiting());
                    }
                    Some(roll) => roll,
                }
            };
            // The sync thread is rolling the segment: wait, then try again.
            let _ = roll.changed().await;
        };
        if wake {
            self.inner.appended.notify_waiters();
        }
        if sync {
            self.inner.sync_to(seq).await?;
        }
        Ok(seq)
    }

    /// Appends several records as one batch: after a crash, all of them are in
    /// the log or none is. Returns their seqs. Waits for durability like
    /// [`Log::append`].
    ///
    /// # Cancel safety
    ///
    /// As for [`Log::append`]: after a drop the whole batch is in the log or
    /// none of it is.
    pub async fn append_batch<P: AsRef<[u8]>>(
        &self,
        payloads: &[P],
    ) -> Result<RangeInclusive<Seq>, StorageError> {
        let enqueued = loop {
            match self.enqueue(payloads, None)? {
                Enqueue::Done(enqueued) => break enqueued,
                Enqueue::Rolling(roll) => roll.wait().await,
            }
        };
        self.wait_durable(&enqueued).await?;
        Ok(enqueued.seqs)
    }

    /// The first, synchronous half of [`append_batch`](Self::append_batch): puts
    /// the batch in the log (readable and tailed at once) without waiting for
    /// durability, or says that the active segment is full and being rolled
    /// ([`Enqueue::Rolling`]: wait for it, then call again).
    ///
    /// `fill(seq, timestamp, payload)` is called for each payload under the
    /// log's lock, once its seq and timestamp are known, and may rewrite the
    /// payload's bytes in place (a hash chain over seqs and timestamps); it
    /// must not change their length. Then [`wait_durable`](Self::wait_durable)
    /// waits for what the fsync policy promises. A caller that never waits
    /// still has its batch appended (durable at the next sync).
    pub fn try_enqueue_batch_with<P: AsRef<[u8]>>(
        &self,
        payloads: &[P],
        mut fill: impl FnMut(Seq, u64, &mut [u8]),
    ) -> Result<Enqueue, StorageError> {
        self.enqueue(payloads, Some(&mut fill))
    }

    /// [`try_enqueue_batch_with`](Self::try_enqueue_batch_with) without
    /// rewriting the payloads.
    pub fn try_enqueue_batch<P: AsRef<[u8]>>(
        &self,
        payloads: &[P],
    ) -> Result<Enqueue, StorageError> {
        self.enqueue(payloads, None)
    }

    fn enqueue<P: AsRef<[u8]>>(
        &self,
        payloads: &[P],
        mut fill: Option<&mut Fill<'_>>,
    ) -> Result<Enqueue, StorageError> {
        if payloads.is_empty() {
            return Err(StorageError::EmptyBatch);
        }
        let mut bytes = 0u64;
        for payload in payloads {
            self.check_payload(payload.as_ref())?;
            bytes += (HEADER_LEN + payload.as_ref().len()) as u64;
        }
        let mut scratch = Vec::new();
        let (enqueued, wake) = {
            let now = clock::now_ms();
            let mut st = self.inner.state.lock();
            st.writable()?;
            if let Some(roll) = self.room(&mut st, bytes) {
                return Ok(Enqueue::Rolling(RollWait(roll)));
            }
            let (first, timestamp) = (st.next_seq, st.timestamp(now));
            let last_index = payloads.len() - 1;
            for (i, payload) in payloads.iter().enumerate() {
                let flags = if i < last_index { BATCH_CONTINUES } else { 0 };
                let seq = first + i as u64;
                match fill.as_mut() {
                    Some(fill) => {
                        scratch.clear();
                        scratch.extend_from_slice(payload.as_ref());
                        fill(seq, timestamp, &mut scratch);
                        st.push(seq, timestamp, flags, &scratch);
                    }
                    None => st.push(seq, timestamp, flags, payload.as_ref()),
                }
            }
            let sync = self.after_append(&mut st)?;
            let enqueued = Enqueued {
                seqs: first..=first + last_index as u64,
                timestamp,
                sync,
            };
            (enqueued, self.inner.tails_waiting())
        };
        if wake {
            self.inner.appended.notify_waiters();
        }
        Ok(Enqueue::Done(enqueued))
    }

    /// Waits until `enqueued` is as durable as the fsync policy promises an
    /// acknowledged append to be (at once for every policy but those that fsync).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future leaves the batch appended; it becomes
    /// durable with a later sync.
    pub async fn wait_durable(&self, enqueued: &Enqueued) -> Result<(), StorageError> {
        if enqueued.sync {
            self.inner.sync_to(*enqueued.seqs.end()).await?;
        }
        Ok(())
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
        if from >= st.next_seq || max == 0 {
            return Some(Ok(Vec::new()));
        }
        let span = st.memory_span(from, max)?;
        drop(st);
        Some(span.records(self.inner.options.max_record_size))
    }

    #[inline]
    fn check_payload(&self, payload: &[u8]) -> Result<(), StorageError> {
        let max = self.inner.options.max_record_size;
        match payload.len() {
            0 => Err(StorageError::EmptyPayload),
            len if len > max => Err(StorageError::PayloadTooLarge { len, max }),
            _ => Ok(()),
        }
    }

    /// Flushes a full buffer; says whether the append must wait for an fsync.
    #[inline]
    fn after_append(&self, st: &mut State) -> Result<bool, StorageError> {
        if st.buf.len() >= FLUSH_AT {
            st.flush()?;
        }
        let sync = st.unsynced >= self.inner.options.fsync.sync_after();
        if sync {
            self.inner.sync.arrive();
        }
        Ok(sync)
    }

    /// `None` when `incoming` bytes fit in the active segment; else a receiver
    /// that sees the end of the roll that makes room (started here when the
    /// segment is full and no roll runs yet). A full segment is rolled by the
    /// sync thread (see `sync`): no fsync runs on the append path.
    #[inline]
    fn room(&self, st: &mut State, incoming: u64) -> Option<watch::Receiver<crate::sync::Status>> {
        if st.rolling {
            return Some(self.inner.sync.roll_watch());
        }
        match st.segments.last() {
            Some(active)
                if !active.offsets.is_empty()
                    && active.len + incoming > self.inner.options.segment_size =>
            {
                st.rolling = true;
                Some(self.inner.sync.request_roll())
            }
            _ => None,
        }
    }

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
            (st.first_seq(), st.next_seq)
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

    /// Makes every record appended so far durable (the fsync runs on the log's
    /// sync thread).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a drop leaves nothing behind (the sync thread still makes the
    /// records durable; a later `sync` waits for that same fsync).
    pub async fn sync(&self) -> Result<(), StorageError> {
        let last = self.inner.state.lock().last_seq();
        match last {
            Some(seq) => self.inner.sync_to(seq).await,
            None => Ok(()),
        }
    }

    /// Refuses further appends, makes everything appended durable, ends tails
    /// once they have read everything, stops the sync thread and releases the
    /// directory. Closing a closed log returns at once (`Ok`, or the error that
    /// poisoned it).
    ///
    /// # Cancel safety
    ///
    /// A drop leaves the log closed to appends (tails end once drained, reads
    /// still work) with its final fsync requested (the sync thread still runs
    /// it), but the directory lock still held. Call `close` again to finish:
    /// it waits for that fsync, stops the sync thread and releases the lock.
    pub async fn close(&self) -> Result<(), StorageError> {
        let last = {
            let mut st = self.inner.state.lock();
            st.closed = true;
            st.last_seq()
        };
        // After `st.closed`: a tail that sees `closed` has every record appended.
        self.inner.closed.store(true, Ordering::Release);
        self.inner.appended.notify_waiters();
        let result = match last {
            Some(seq) => self.inner.sync_to(seq).await,
            None => Ok(()),
        };
        // Only once the records are durable (or the log is poisoned): a close
        // dropped before this point leaves these steps to the next `close`.
        if let Some(syncer) = self.inner.syncer.lock().take() {
            syncer.stop();
        }
        drop(self.inner.lock.lock().take());
        result
    }

    /// Removes the segments whose records all come before `seq` (never the active
    /// one). Returns how many segments were removed.
    ///
    /// Does file I/O (removals, a directory fsync): call it from a blocking
    /// context (`tokio::task::spawn_blocking`), not from an async task.
    ///
    /// A segment whose removal fails stays in the log (its records still read)
    /// and the error names it; the segments removed before it stay removed.
    pub fn truncate_before(&self, seq: Seq) -> Result<usize, StorageError> {
        let mut removed = 0;
        let result = loop {
            let mut st = self.inner.state.lock();
            let Some(first) = st.segments.first() else {
                break Ok(());
            };
            if st.segments.len() < 2 || first.end_seq() > seq {
                break Ok(());
            }
            // Under the lock, so that no reader indexes a segment being removed.
            if let Err(e) = std::fs::remove_file(&first.path) {
                break Err(StorageError::io("remove segment", &first.path, e));
            }
            st.segments.remove(0);
            removed += 1;
        };
        if removed > 0 {
            segment::sync_dir(&self.inner.dir)?;
        }
        result.map(|()| removed)
    }

    fn not_found(&self, seq: Seq) -> StorageError {
        StorageError::NotFound {
            seq,
            first: self.first_seq(),
            last: self.last_seq(),
        }
    }
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.inner.dir)
            .field("last_seq", &self.last_seq())
            .field("fsync", &self.inner.options.fsync)
            .finish()
    }
}

impl Inner {
    /// Installs the segment the sync thread created for a roll (its header and
    /// the directory entry are durable): it becomes the active one and appends
    /// resume. Every earlier record is durable.
    pub(crate) fn install_segment(&self, file: File) {
        let mut st = self.state.lock();
        let first_seq = st.next_seq;
        if let Some(sealed) = st.segments.last_mut() {
            sealed.offsets.shrink_to_fit();
        }
        let mut active = SegmentIndex {
            first_seq,
            path: segment::path(&self.dir, first_seq),
            offsets: Vec::new(),
            len: SEGMENT_HEADER_LEN,
            loaded: true,
            end: first_seq,
        };
        reserve_index(&mut active, self.options.segment_size);
        st.segments.push(active);
        st.active = Arc::new(file);
        st.unsynced = 0;
        st.rolling = false;
    }

    /// Whether a tail waits for records. Called under the state lock, after the
    /// record is in: see `waiting` for why that loses no wake-up.
    #[inline]
    fn tails_waiting(&self) -> bool {
        self.waiting.load(Ordering::Acquire) > 0
    }

    /// Indexes the sealed segment starting at `first_seq` (outside the lock),
    /// then installs the index if the segment is still there and not indexed.
    fn load_sealed(&self, path: &Path, first_seq: Seq, end: Seq) -> Result<(), StorageError> {
        let (offsets, len) =
            recovery::index_sealed(path, first_seq, end, self.options.max_record_size)?;
        let mut st = self.state.lock();
        if let Some(seg) = st.segments.iter_mut().find(|s| s.first_seq == first_seq)
            && !seg.loaded
        {
            seg.offsets = offsets;
            seg.len = len;
            seg.loaded = true;
        }
        Ok(())
    }

    /// What a tail finds at `from` without touching a file: the records, when
    /// they are in memory; `File` when they must be read from a segment file
    /// ([`Inner::read_batch`], on the blocking pool); `Nothing` past the end.
    pub(crate) fn look(&self, from: Seq, max: usize) -> Result<Look, StorageError> {
        let st = self.state.lock();
        if from >= st.next_seq || max == 0 {
            return Ok(Look::Nothing);
        }
        if from < st.first_seq() {
            return Err(StorageError::NotFound {
                seq: from,
                first: st.last_seq().map(|_| st.first_seq()),
                last: st.last_seq(),
            });
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
        let (path, offsets, file_end, first) = loop {
            let st = self.state.lock();
            if from >= st.next_seq || max == 0 {
                return Ok(Vec::new());
            }
            if from < st.first_seq() {
                return Err(StorageError::NotFound {
                    seq: from,
                    first: st.last_seq().map(|_| st.first_seq()),
                    last: st.last_seq(),
                });
            }
            if let Some(span) = st.memory_span(from, max) {
                drop(st);
                return span.records(self.options.max_record_size);
            }
            let index = st.segments.partition_point(|s| s.end_seq() <= from);
            let Some(seg) = st.segments.get(index) else {
                return Ok(Vec::new());
            };
            if !seg.loaded {
                let (path, first_seq, end) = (seg.path.clone(), seg.first_seq, seg.end);
                drop(st);
                self.load_sealed(&path, first_seq, end)?;
                continue;
            }
            // Only records whose bytes are in the file: seq <= flushed_seq.
            let stop = seg
                .end_seq()
                .min(st.flushed_seq + 1)
                .min(from.saturating_add(max as u64));
            if stop <= from {
                // Unflushed records are always in memory (`memory_span`).
                return Ok(Vec::new());
            }
            let at = (from - seg.first_seq) as usize;
            let mut until = (stop - seg.first_seq) as usize;
            let end_of = |i: usize| seg.offsets.get(i).copied().unwrap_or(seg.len);
            // Keep one read bounded.
            while until - at > 1 && end_of(until) - seg.offsets[at] > READ_CHUNK {
                until = at + (until - at) / 2;
            }
            let offsets = seg.offsets[at..until].to_vec();
            let file_end = end_of(until);
            break (seg.path.clone(), offsets, file_end, from);
        };
        read_frames(
            &path,
            &offsets,
            file_end,
            first,
            self.options.max_record_size,
        )
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.sync.stop();
        // Best effort: hand buffered records to the OS (no fsync) on drop.
        let _ = self.state.get_mut().flush();
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
