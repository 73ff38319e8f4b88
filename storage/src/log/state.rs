//! The log's mutable state, kept under `Inner::state`, and its invariants.
//!
//! Every field is private to this module: the writer (`write`), the readers
//! (`read`), the lifecycle (`mod`) and the sync thread (`crate::sync`) change it
//! only through the methods below, so each invariant is kept in one place.
//!
//! Invariants:
//! - `next_seq` is one past the last appended record; seqs are contiguous
//!   (`push`).
//! - `written_seq <= handed_seq < next_seq`. The bytes of every record with
//!   seq <= `written_seq` are in the OS (written to the active or an earlier
//!   segment file). The frames of the records after `handed_seq`, and only
//!   those, are in `buf`, which starts at file offset `active.len -
//!   buf.len()` of the active segment (`push`, `hand_off`). The frames of the
//!   records from `written_seq + 1` to `handed_seq` were handed to the sync
//!   thread: they are in `queue`, in order and contiguous, ending where `buf`
//!   starts, all in the active segment (`hand_off`, `written`).
//! - Only the sync thread writes to a segment file (`to_write`, `written`;
//!   the sole exception is the best-effort write of a log dropped unclosed,
//!   `write_here`), one write at a time, so the file grows in queue order. An
//!   appender only hands buffers off (`hand_off_if_full`): no append runs a
//!   `write`.
//! - The unwritten bytes, `queued_bytes + buf.len()`, never exceed
//!   [`MAX_UNWRITTEN`], unless one batch larger than it was taken while
//!   nothing was unwritten (`room`).
//! - `chunks` holds the frames of the newest handed-off records, exactly as
//!   they are (or will be, once written) in their segment file, and never
//!   evicts an unwritten one (see `memory`): so every seq from the first
//!   chunk's `first` (or `handed_seq + 1`) to `next_seq - 1` is in memory, and
//!   in particular every record not yet in the OS. A read of a segment file
//!   never reaches past `written_seq` (`file_span`).
//! - A batch's frames are pushed into `buf` under one lock hold, never split
//!   across segments (`install_segment` is only called after a roll wrote
//!   `buf` and the queue).
//! - Timestamps never decrease along seqs (`timestamp`).
//! - Once `poison` is set, no write is attempted and every append fails with it
//!   (`writable`, `hand_off`, `to_write`, `poison`).
//! - While `rolling`, no record is pushed: the sync thread is sealing the
//!   active segment and creating the next (see `sync`); appenders wait for it
//!   (`room`, `take_roll`, `install_segment`).

use crate::active_scan::Tail;
use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::Seq;
use crate::error::StorageError;
use crate::frame::{self, HEADER_LEN};
use crate::recovery::{OPEN_READERS, SegmentIndex};
use crate::segment;
use crate::sidecar;

use super::memory::{BUF_CAPACITY, Chunks, HANDOFF_AT, MAX_UNWRITTEN, MemorySpan, WAKE_AT};

/// The most bytes one read from a segment file gathers.
const READ_CHUNK: u64 = 4 << 20;
/// The most index entries reserved up front for an active segment (4 MiB).
const MAX_INDEX_RESERVE: u64 = 1 << 19;

/// Reserves room in the active segment's index for as many records as the
/// segment can take (every frame at least `HEADER_LEN + 1` bytes), up to
/// [`MAX_INDEX_RESERVE`]: for segments up to ~17 MiB (the default is 16 MiB)
/// the index then never reallocates (copying itself) under the append lock.
/// The reservation is virtual memory until records use it; `install_segment`
/// trims it off the sealed segment.
pub(super) fn reserve_index(active: &mut SegmentIndex, segment_size: u64) {
    let room = segment_size.saturating_sub(active.len) / (HEADER_LEN as u64 + 1);
    active.offsets.reserve(room.min(MAX_INDEX_RESERVE) as usize);
}

/// Whether a batch fits in the active segment ([`State::room`]).
pub(super) enum Room {
    /// It fits: push it.
    Fits,
    /// A roll is under way: wait for it.
    Rolling,
    /// The segment is full: this caller has just marked the log `rolling` and
    /// must ask the sync thread for the roll.
    StartRoll,
    /// The batch would bring the unwritten bytes past [`MAX_UNWRITTEN`]: the
    /// write buffer was handed off; ask the sync thread to write, wait for a
    /// write, then try again.
    Backlog,
}

/// Where the records a read asks for are ([`State::file_span`]).
pub(super) enum FileSpan {
    /// Nothing to read (past the end, or removed meanwhile).
    Nothing,
    /// The segment holding them is not indexed yet: index it, then ask again.
    Unloaded {
        path: PathBuf,
        first_seq: Seq,
        end: Seq,
    },
    /// Read the bytes `start..end` of the segment at `path` (through `reader`
    /// when one is open), whose first frame is the record `first`, and take
    /// `count` records from `from` on.
    Read(FileRead),
}

/// One read of a segment file ([`FileSpan::Read`]).
pub(crate) struct FileRead {
    pub(crate) path: PathBuf,
    /// The segment's first seq and one past its last.
    pub(crate) segment: Seq,
    pub(crate) segment_end: Seq,
    /// Whether the segment is sealed (its index sparse, maybe from a file).
    pub(crate) sealed: bool,
    pub(crate) reader: Option<Arc<File>>,
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) first: Seq,
    pub(crate) from: Seq,
    pub(crate) count: usize,
}

/// A sealed segment's index, for the sync thread to write to its index file.
pub(crate) struct Sealed {
    pub(crate) path: PathBuf,
    pub(crate) expect: sidecar::Expect,
    pub(crate) stride: u32,
    pub(crate) offsets: Vec<u64>,
}

/// Frames handed to the sync thread, not yet written: `bytes[range]`, the
/// records up to `end - 1`.
struct Pending {
    bytes: Arc<Vec<u8>>,
    range: Range<usize>,
    end: Seq,
}

/// What the sync thread writes, outside the lock: the buffers queued when it
/// was taken, in order, to the end of the active segment ([`State::to_write`]).
pub(crate) struct ToWrite {
    file: Arc<File>,
    path: PathBuf,
    buffers: Vec<(Arc<Vec<u8>>, Range<usize>)>,
    /// One past the last seq they hold.
    end: Seq,
    bytes: usize,
}

impl ToWrite {
    /// Writes the buffers (calling the test hook first). Run by the sync thread
    /// only, outside the lock (the file grows in queue order: see the invariants).
    pub(crate) fn write(&self, hook: Option<&crate::FsyncHook>) -> Result<(), StorageError> {
        let failed = |e| StorageError::io("write segment", &self.path, e);
        if let Some(hook) = hook {
            hook().map_err(failed)?;
        }
        for (bytes, range) in &self.buffers {
            let frames = bytes.get(range.clone()).ok_or_else(|| {
                failed(std::io::Error::other(
                    "a queued range is outside its buffer",
                ))
            })?;
            (&*self.file).write_all(frames).map_err(failed)?;
        }
        Ok(())
    }
}

/// What the sync thread fsyncs: the active segment, up to `last`.
pub(crate) struct ToSync {
    pub(crate) file: Arc<File>,
    pub(crate) path: PathBuf,
    pub(crate) last: Seq,
}

pub(crate) struct State {
    segments: Vec<SegmentIndex>,
    /// The first seqs of the segments holding a read handle, oldest first (at
    /// most [`OPEN_READERS`]).
    readers: VecDeque<Seq>,
    /// The last segment's file, appended to.
    active: Arc<File>,
    /// Frames not yet handed to the sync thread.
    buf: Vec<u8>,
    next_seq: Seq,
    /// Every record up to it is in the OS.
    written_seq: Seq,
    /// Every record up to it is in the OS or in `queue`; the others in `buf`.
    handed_seq: Seq,
    /// Handed to the sync thread, not yet written, oldest first.
    queue: VecDeque<Pending>,
    /// The bytes of `queue`.
    queued_bytes: usize,
    /// The newest handed-off frames, oldest first.
    chunks: Chunks,
    /// The highest timestamp handed out.
    last_timestamp: u64,
    /// Records appended since the last fsync.
    unsynced: u64,
    poison: Option<StorageError>,
    closed: bool,
    /// The active segment is full: the sync thread is rolling it, appends wait.
    rolling: bool,
    /// The synced mark on disk describes the active segment as it is (see
    /// `crate::synced`): set at open, cleared by any write to the segment.
    marked: bool,
}

impl State {
    /// The state of a log just opened: `segments` as recovered (the last one
    /// active, its file `active`), nothing buffered.
    ///
    /// `active_tail` is the active segment's last bytes as recovery read and
    /// checked them: the newest of their frames seed the memory window.
    pub(super) fn new(
        segments: Vec<SegmentIndex>,
        active: File,
        active_tail: &Tail,
        last_timestamp: u64,
    ) -> State {
        let next_seq = segments.last().map_or(1, SegmentIndex::end_seq);
        let chunks = match segments.last() {
            Some(last) if last.stride == 1 && last.loaded => {
                Chunks::seeded(last.first_seq, &last.offsets, last.len, active_tail)
            }
            _ => Chunks::default(),
        };
        let readers = segments
            .iter()
            .filter(|s| s.reader.is_some())
            .map(|s| s.first_seq)
            .collect();
        State {
            segments,
            readers,
            active: Arc::new(active),
            buf: Vec::with_capacity(BUF_CAPACITY),
            next_seq,
            written_seq: next_seq - 1,
            handed_seq: next_seq - 1,
            queue: VecDeque::new(),
            queued_bytes: 0,
            chunks,
            last_timestamp,
            unsynced: 0,
            poison: None,
            closed: false,
            rolling: false,
            marked: false,
        }
    }

    fn active_path(&self) -> &Path {
        self.segments
            .last()
            .map_or(Path::new(""), |s| s.path.as_path())
    }

    pub(super) fn first_seq(&self) -> Seq {
        self.segments.first().map_or(1, |s| s.first_seq)
    }

    /// The seq the next record gets.
    #[inline]
    pub(super) fn next_seq(&self) -> Seq {
        self.next_seq
    }

    pub(crate) fn last_seq(&self) -> Option<Seq> {
        (self.next_seq > self.first_seq()).then(|| self.next_seq - 1)
    }

    /// The error for a read of `seq`, which the log does not hold.
    pub(super) fn not_found(&self, seq: Seq) -> StorageError {
        StorageError::NotFound {
            seq,
            first: self.last_seq().map(|_| self.first_seq()),
            last: self.last_seq(),
        }
    }

    #[inline]
    pub(super) fn writable(&self) -> Result<(), StorageError> {
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

    /// Like `writable`, but a closed log may still write what it buffered.
    fn writable_or_closed(&self) -> Result<(), StorageError> {
        match &self.poison {
            Some(poison) => Err(StorageError::Poisoned(Box::new(poison.clone()))),
            None => Ok(()),
        }
    }

    /// Whether a failure poisoned the log.
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poison.is_some()
    }

    /// Poisons the log with `error` (the first poison stays).
    pub(crate) fn poison(&mut self, error: &StorageError) {
        if self.poison.is_none() {
            crate::observe::poisoned(error);
        }
        self.poison.get_or_insert_with(|| error.clone());
    }

    /// Refuses further appends; returns the last seq to make durable.
    pub(super) fn close(&mut self) -> Option<Seq> {
        self.closed = true;
        self.last_seq()
    }

    /// Hands the write buffer to the sync thread: its frames join `queue` (and
    /// the memory window, which the sync thread writes them from), `buf` is
    /// left empty. Whether anything was handed off (the caller then asks the
    /// sync thread to write, unless it is the sync thread). No I/O.
    #[cold]
    pub(crate) fn hand_off(&mut self) -> bool {
        if self.buf.is_empty() || self.poison.is_some() {
            return false;
        }
        self.marked = false;
        let (segment, end_offset) = self
            .segments
            .last()
            .map_or((0, 0), |s| (s.first_seq, s.len));
        let start = end_offset - self.buf.len() as u64;
        let seqs = (self.handed_seq + 1, self.next_seq);
        let (bytes, range) =
            self.chunks
                .keep(segment, seqs, start, &mut self.buf, self.written_seq + 1);
        self.queued_bytes += range.len();
        self.queue.push_back(Pending {
            bytes,
            range,
            end: self.next_seq,
        });
        self.handed_seq = self.next_seq - 1;
        true
    }

    /// [`hand_off`](Self::hand_off) once the buffer holds [`HANDOFF_AT`] bytes;
    /// whether the sync thread must now be woken to write ([`WAKE_AT`] bytes
    /// are queued).
    #[inline]
    pub(super) fn hand_off_if_full(&mut self) -> bool {
        self.buf.len() >= HANDOFF_AT && self.hand_off() && self.queued_bytes >= WAKE_AT
    }

    /// On the sync thread: the buffers queued now, to write outside the lock
    /// (`None` when none is, or the log is poisoned: then no write is tried).
    pub(crate) fn to_write(&self) -> Option<ToWrite> {
        let last = self.queue.back().filter(|_| self.poison.is_none())?;
        Some(ToWrite {
            file: Arc::clone(&self.active),
            path: self.active_path().to_path_buf(),
            buffers: self
                .queue
                .iter()
                .map(|p| (Arc::clone(&p.bytes), p.range.clone()))
                .collect(),
            end: last.end,
            bytes: self.queued_bytes,
        })
    }

    /// On the sync thread, after `to`'s write: its records are in the OS, or
    /// the failure poisons the log (what is queued stays readable in memory).
    pub(crate) fn written(
        &mut self,
        to: ToWrite,
        result: Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let ToWrite {
            buffers,
            end,
            bytes,
            ..
        } = to;
        // Dropped before any eviction can try to recycle their chunks.
        drop(buffers);
        if let Err(error) = result {
            self.poison(&error);
            return Err(error);
        }
        while self.queue.front().is_some_and(|p| p.end <= end) {
            self.queue.pop_front();
        }
        self.queued_bytes -= bytes;
        crate::observe::flushed(end - 1 - self.written_seq, bytes);
        self.written_seq = end - 1;
        self.marked = false;
        Ok(())
    }

    /// Hands off and writes everything unwritten on the caller's thread: only
    /// for a log dropped without `close` (best effort, no fsync).
    pub(super) fn write_here(&mut self, hook: Option<&crate::FsyncHook>) {
        self.hand_off();
        if let Some(to) = self.to_write() {
            let result = to.write(hook);
            let _ = self.written(to, result);
        }
    }

    /// Hands the buffer off for an fsync round: everything appended is then
    /// counted synced; the caller writes what is queued ([`to_write`](Self::to_write))
    /// and fsyncs the returned file.
    pub(crate) fn prepare_sync(&mut self) -> Result<ToSync, StorageError> {
        self.writable_or_closed()?;
        self.hand_off();
        self.unsynced = 0;
        Ok(self.to_sync())
    }

    fn to_sync(&self) -> ToSync {
        ToSync {
            file: Arc::clone(&self.active),
            path: self
                .segments
                .last()
                .map(|s| s.path.clone())
                .unwrap_or_default(),
            last: self.next_seq - 1,
        }
    }

    /// Whether records were appended since the last fsync.
    pub(crate) fn has_unsynced(&self) -> bool {
        self.unsynced > 0
    }

    /// Whether the appends since the last fsync reach `n`.
    #[inline]
    pub(super) fn unsynced_reach(&self, n: u64) -> bool {
        self.unsynced >= n
    }

    /// Whether `incoming` bytes fit in the active segment of at most
    /// `segment_size` bytes; marks the log `rolling` when they do not (and no
    /// roll runs yet). A segment with no record always takes the batch.
    ///
    /// Else, when the batch would bring the unwritten bytes past
    /// [`MAX_UNWRITTEN`] (and some are unwritten), hands the buffer off and
    /// says [`Room::Backlog`].
    #[inline]
    pub(super) fn room(&mut self, incoming: u64, segment_size: u64) -> Room {
        if self.rolling {
            return Room::Rolling;
        }
        let unwritten = (self.queued_bytes + self.buf.len()) as u64;
        if unwritten > 0 && unwritten + incoming > MAX_UNWRITTEN as u64 {
            return self.backlog();
        }
        match self.segments.last() {
            Some(active) if !active.offsets.is_empty() && active.len + incoming > segment_size => {
                self.rolling = true;
                Room::StartRoll
            }
            _ => Room::Fits,
        }
    }

    #[cold]
    fn backlog(&mut self) -> Room {
        self.hand_off();
        Room::Backlog
    }

    /// On the sync thread, at the start of a roll: `None` when no roll is
    /// asked for; `Some(None)` when the log is poisoned or closed (the roll is
    /// called off); else the buffer handed off (the caller writes the queue)
    /// and the full segment to fsync.
    pub(crate) fn take_roll(&mut self) -> Option<Option<Result<ToSync, StorageError>>> {
        if !self.rolling {
            return None;
        }
        if self.poison.is_some() || self.closed {
            self.rolling = false;
            return Some(None);
        }
        self.hand_off();
        Some(Some(Ok(self.to_sync())))
    }

    /// A roll failed: appends resume (and fail with the poison).
    pub(crate) fn roll_failed(&mut self, error: &StorageError) {
        self.rolling = false;
        self.poison(error);
    }

    /// Installs the segment the sync thread created for a roll (its header and
    /// the directory entry are durable): it becomes the active one and appends
    /// resume. Every earlier record is durable.
    pub(super) fn install_segment(
        &mut self,
        dir: &Path,
        file: File,
        segment_size: u64,
    ) -> Option<Sealed> {
        debug_assert!(self.buf.is_empty() && self.queue.is_empty());
        let first_seq = self.next_seq;
        let sealed = self.segments.last_mut().map(|sealed| {
            let expect = sealed.seal();
            Sealed {
                path: sealed.path.clone(),
                expect,
                stride: sealed.stride,
                offsets: sealed.offsets.clone(),
            }
        });
        let mut active = SegmentIndex::created(segment::path(dir, first_seq), first_seq);
        reserve_index(&mut active, segment_size);
        self.segments.push(active);
        self.active = Arc::new(file);
        self.unsynced = 0;
        self.rolling = false;
        self.marked = false;
        sealed
    }

    /// Records that the synced mark on disk describes the active segment.
    pub(crate) fn set_marked(&mut self) {
        self.marked = true;
    }

    /// Whether the synced mark on disk describes the active segment.
    pub(crate) fn is_marked(&self) -> bool {
        self.marked
    }

    /// The active segment (its first seq and file) when a mark taken now would
    /// describe durable bytes only: the log is closed (nothing is written after),
    /// not poisoned, nothing is buffered or queued, and every record is covered by an
    /// fsync that has completed (the caller runs on the sync thread, after every
    /// round it prepared) or was found durable at open.
    pub(crate) fn to_mark(&self) -> Option<(Seq, Arc<File>)> {
        let durable = self.closed
            && self.poison.is_none()
            && self.buf.is_empty()
            && self.queue.is_empty()
            && self.unsynced == 0;
        let first_seq = self.segments.last()?.first_seq;
        (durable && !self.marked).then(|| (first_seq, Arc::clone(&self.active)))
    }

    /// The timestamp for the next record: the coarse clock, never below one
    /// handed out before. `now` is read before the lock is taken, so that the
    /// clock read overlaps the lock's acquisition.
    #[inline]
    pub(super) fn timestamp(&mut self, now: u64) -> u64 {
        self.last_timestamp = self.last_timestamp.max(now);
        self.last_timestamp
    }

    /// Encodes the record `seq` (the next one) into `buf`.
    #[inline]
    pub(super) fn push(&mut self, seq: Seq, timestamp: u64, flags: u32, payload: &[u8]) {
        let start = self.buf.len();
        frame::encode(&mut self.buf, seq, timestamp, flags, payload);
        let written = (self.buf.len() - start) as u64;
        if let Some(active) = self.segments.last_mut() {
            active.offsets.push(active.len);
            active.len += written;
            active.end = seq + 1;
        }
        self.next_seq = seq + 1;
        self.unsynced += 1;
    }

    /// Whether the record `from` is held by the log but not in memory (a read
    /// of it reads a segment file).
    pub(super) fn on_file_only(&self, from: Seq) -> bool {
        let front = self.chunks.first_seq().unwrap_or(self.handed_seq + 1);
        from >= self.first_seq() && from < front.min(self.next_seq)
    }

    /// The frames of up to `max` records from `from` on, if `from` is in memory:
    /// shared when in a chunk, copied when still in `buf`. Stops at the end of
    /// the chunk (or `buf`) holding `from`.
    pub(super) fn memory_span(&self, from: Seq, max: usize) -> Option<MemorySpan> {
        let front = self.chunks.first_seq().unwrap_or(self.handed_seq + 1);
        if from < front || from >= self.next_seq || max == 0 {
            return None;
        }
        let seg = self
            .segments
            .get(self.segments.partition_point(|s| s.end_seq() <= from))?;
        let offset = |seq: Seq| match seg.locate(seq) {
            Some((offset, at)) if at == seq => Some(offset),
            _ => None,
        };
        let stop_at = |end: Seq| end.min(from.saturating_add(max as u64));
        if from > self.handed_seq {
            // Records not handed off are in the active segment, indexed whole.
            let start = seg.len - self.buf.len() as u64;
            let stop = stop_at(self.next_seq);
            let at = (offset(from)?.checked_sub(start)?) as usize;
            let to = match stop == self.next_seq {
                true => self.buf.len(),
                false => (offset(stop)?.checked_sub(start)?) as usize,
            };
            return Some(MemorySpan::copied(
                self.buf.get(at..to)?.to_vec(),
                from,
                (stop - from) as usize,
                seg.path.clone(),
                start + at as u64,
            ));
        }
        let chunk = self.chunks.holding(from)?;
        Some(chunk.span(
            seg.locate(from),
            from,
            (stop_at(chunk.end) - from) as usize,
            seg.path.clone(),
        ))
    }

    /// Where up to `max` records from `from` on are in their segment file
    /// (only records whose bytes are in the file: seq <= `written_seq`; one
    /// read kept within [`READ_CHUNK`] bytes, unless one index entry's frames
    /// alone are larger). `from` is held by the log and not in memory.
    pub(super) fn file_span(&self, from: Seq, max: usize) -> FileSpan {
        let index = self.segments.partition_point(|s| s.end_seq() <= from);
        let Some(seg) = self.segments.get(index) else {
            return FileSpan::Nothing;
        };
        if !seg.loaded {
            return FileSpan::Unloaded {
                path: seg.path.clone(),
                first_seq: seg.first_seq,
                end: seg.end,
            };
        }
        let stop = seg
            .end_seq()
            .min(self.written_seq + 1)
            .min(from.saturating_add(max as u64));
        let Some((start, first)) = seg.locate(from).filter(|_| stop > from) else {
            // Unwritten records are always in memory (`memory_span`).
            return FileSpan::Nothing;
        };
        let stride = u64::from(seg.stride);
        let at = ((first - seg.first_seq) / stride) as usize;
        let mut until = (stop - seg.first_seq).div_ceil(stride) as usize;
        // Keep one read bounded.
        while until - at > 1 && seg.entry_offset(until) - start > READ_CHUNK {
            until = at + (until - at) / 2;
        }
        let stop = stop.min(seg.first_seq + until as u64 * stride);
        FileSpan::Read(FileRead {
            path: seg.path.clone(),
            segment: seg.first_seq,
            segment_end: seg.end,
            sealed: index + 1 < self.segments.len(),
            // The active segment's file is open for reading too.
            reader: match index + 1 < self.segments.len() {
                true => seg.reader.clone(),
                false => Some(Arc::clone(&self.active)),
            },
            start,
            end: seg.entry_offset(until),
            first,
            from,
            count: (stop - from) as usize,
        })
    }

    /// Keeps `reader` as the read handle of the segment starting at
    /// `first_seq` (if it is still there and has none), closing the oldest
    /// kept handle beyond [`OPEN_READERS`].
    pub(super) fn install_reader(&mut self, first_seq: Seq, reader: Arc<File>) {
        let Ok(i) = self
            .segments
            .binary_search_by_key(&first_seq, |s| s.first_seq)
        else {
            return;
        };
        if self.segments[i].reader.is_some() {
            return;
        }
        self.segments[i].reader = Some(reader);
        self.readers.push_back(first_seq);
        while self.readers.len() > OPEN_READERS {
            let Some(oldest) = self.readers.pop_front() else {
                break;
            };
            if let Ok(j) = self.segments.binary_search_by_key(&oldest, |s| s.first_seq) {
                self.segments[j].reader = None;
            }
        }
    }

    /// Installs the index of the sealed segment starting at `first_seq`, if it
    /// is still there, still sealed, and not indexed (or `replace`).
    pub(super) fn install_index(
        &mut self,
        first_seq: Seq,
        stride: u32,
        offsets: Vec<u64>,
        replace: bool,
    ) {
        let last = self.segments.len().saturating_sub(1);
        if let Some((i, seg)) = self
            .segments
            .iter_mut()
            .enumerate()
            .find(|(_, s)| s.first_seq == first_seq)
            && i < last
            && (!seg.loaded || replace)
        {
            seg.offsets = offsets;
            seg.stride = stride;
            seg.loaded = true;
        }
    }

    /// Removes the oldest segment if every record of it comes before `seq` and
    /// it is not the active one: `remove` deletes its file (under the lock, so
    /// that no reader indexes a segment being removed). Whether one was removed.
    pub(super) fn remove_oldest_before(
        &mut self,
        seq: Seq,
        remove: impl FnOnce(&Path) -> Result<(), StorageError>,
    ) -> Result<bool, StorageError> {
        let Some(first) = self.segments.first() else {
            return Ok(false);
        };
        if self.segments.len() < 2 || first.end_seq() > seq {
            return Ok(false);
        }
        remove(&first.path)?;
        let removed = self.segments.remove(0);
        self.readers.retain(|&seq| seq != removed.first_seq);
        Ok(true)
    }
}
