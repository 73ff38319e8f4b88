//! The memory window: the frames of the newest records, kept so that tails
//! and recent reads never touch a file.
//!
//! Kept apart from the state because its allocations are recycled: a hand-off
//! moves the write buffer into a chunk and takes back the allocation of an
//! evicted one, so steady appending allocates nothing. A chunk is kept from the
//! moment its frames are handed to the sync thread (see `State::hand_off`):
//! the sync thread writes them from the chunk itself (sharing it), so that
//! records queued for writing are read from memory like any recent one. Readers take a
//! [`MemorySpan`] under the lock (sharing a chunk, or copying from the write
//! buffer) and decode it outside the lock. An open seeds the window with the
//! newest frames of the active segment, as recovery just read and checked them
//! (`Chunks::seeded`): the reads right after an open need no file read.
//!
//! Invariant (kept by [`Chunks::keep`], called only by `State::hand_off`): the
//! chunks hold frames exactly as they are (or, while queued, will be) in their
//! segment file, oldest first, seqs contiguous from the first chunk's `first`
//! up to the state's `handed_seq`, each chunk within one segment; a chunk
//! holding a frame not yet written to the OS is never evicted.

use std::collections::VecDeque;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use crate::Seq;
use crate::active_scan::Tail;
use crate::error::StorageError;
use bytes::Bytes;

use crate::frame;

use super::Record;
use super::read::Run;

/// Bytes of frames the write buffer holds before the appender that fills it
/// hands it to the sync thread (which writes it to the OS).
pub(super) const HANDOFF_AT: usize = 64 << 10;
/// The most bytes of frames not yet written to the OS: the write buffer plus
/// the buffers handed to the sync thread and not yet written. An append that
/// would pass it waits until the sync thread has written enough (unless
/// nothing is unwritten: a larger batch alone is taken). Sixteen hand-offs: the
/// sync thread must fall fifteen buffers behind before an appender waits (a
/// bound of two buffers made `Never` appends several times slower). The
/// `FsyncPolicy` docs quote it (1 MiB).
pub(crate) const MAX_UNWRITTEN: usize = 1 << 20;
/// Bytes queued for writing at which an appender's hand-off wakes the sync
/// thread (the timer, an fsync or a full bound write smaller queues): one
/// wake-up per four hand-offs keeps the thread's wake-ups (and their cost on
/// the appenders' CPUs) low.
pub(super) const WAKE_AT: usize = 256 << 10;
/// The capacity `buf` (and each chunk) is allocated with: a hand-off plus a record.
pub(super) const BUF_CAPACITY: usize = HANDOFF_AT + 4096;
/// How many chunks of written frames are kept in memory for tails and reads
/// (besides those still queued for writing, which are always kept).
const RECENT_CHUNKS: usize = 2;
/// A hand-off that fits in the newest chunk up to this size is appended to it,
/// so that small hand-offs (group commit under `Always`) do not shrink the
/// memory window to a few records; a larger one becomes a chunk of its own (no
/// copy).
const CHUNK_BYTES: usize = HANDOFF_AT;

/// Frames already written to the OS, kept in memory.
pub(super) struct Chunk {
    /// The first seq of the segment the frames are in.
    segment: Seq,
    /// The frames of seqs `first..end`.
    first: Seq,
    pub(super) end: Seq,
    /// The file offset of `bytes[0]` in its segment.
    pub(super) start: u64,
    /// Shared with readers decoding it outside the lock.
    bytes: Arc<Vec<u8>>,
}

impl Chunk {
    /// `count` records from seq `from` in this chunk; `near` is where the
    /// segment's index puts `from` or the nearest indexed record before it
    /// (the walk starts there when it is in this chunk, else at the chunk's
    /// first frame).
    pub(super) fn span(
        &self,
        near: Option<(u64, Seq)>,
        from: Seq,
        count: usize,
        segment: PathBuf,
    ) -> MemorySpan {
        let (at, first) = match near {
            Some((offset, seq)) if offset >= self.start && seq >= self.first && seq <= from => {
                ((offset - self.start) as usize, seq)
            }
            _ => (0, self.first),
        };
        MemorySpan {
            bytes: SpanBytes::Chunk(Arc::clone(&self.bytes)),
            at,
            first,
            skip: (from - first) as usize,
            count,
            segment,
            start: self.start,
        }
    }
}

/// The newest flushed frames, oldest first (see the module invariant).
#[derive(Default)]
pub(super) struct Chunks(VecDeque<Chunk>);

impl Chunks {
    /// The first seq in memory, if any chunk is kept.
    pub(super) fn first_seq(&self) -> Option<Seq> {
        self.0.front().map(|c| c.first)
    }

    /// The chunk holding `seq`, if kept.
    pub(super) fn holding(&self, seq: Seq) -> Option<&Chunk> {
        self.0.get(self.0.partition_point(|c| c.end <= seq))
    }

    /// The chunks of a log just opened: the newest frames of its active segment
    /// (first seq `segment`, `offsets[i]` where record `segment + i` starts,
    /// `tail` the last of the segment's `len` valid bytes as recovery read and
    /// checked them), at most `RECENT_CHUNKS` chunks of at most `CHUNK_BYTES` each,
    /// so that the reads right after an open (a fold replaying a small log) come
    /// from memory instead of reading the file again. Empty when the newest
    /// frame alone is larger than a chunk or the tail does not cover the offsets.
    pub(super) fn seeded(segment: Seq, offsets: &[u64], len: u64, tail: &Tail) -> Chunks {
        let mut chunks = VecDeque::new();
        let (mut end, mut end_at) = (offsets.len(), len);
        while chunks.len() < RECENT_CHUNKS && end > 0 {
            let lowest = end_at.saturating_sub(CHUNK_BYTES as u64);
            let first = offsets[..end].partition_point(|&at| at < lowest);
            let start = offsets.get(first).copied().unwrap_or(end_at);
            let frames = tail.get(start, end_at);
            let Some(frames) = frames.filter(|_| first < end) else {
                break;
            };
            let mut kept = Vec::with_capacity(BUF_CAPACITY.max(frames.len()));
            kept.extend_from_slice(frames);
            chunks.push_front(Chunk {
                segment,
                first: segment + first as u64,
                end: segment + end as u64,
                start,
                bytes: Arc::new(kept),
            });
            (end, end_at) = (first, start);
        }
        Chunks(chunks)
    }

    /// Moves the just-handed-off `buf` (the frames of `first..end`, at file
    /// offset `start` of the segment starting at `segment`) into the chunks and
    /// leaves `buf` empty, reusing the allocation of an evicted chunk (or
    /// appending a small hand-off to the newest chunk), so that steady appending
    /// allocates nothing. Evicts only chunks whose every seq is below
    /// `written_end` (in the OS). Returns the chunk now holding the frames and
    /// where they are in it, for the sync thread to write from.
    pub(super) fn keep(
        &mut self,
        segment: Seq,
        (first, end): (Seq, Seq),
        start: u64,
        buf: &mut Vec<u8>,
        written_end: Seq,
    ) -> (Arc<Vec<u8>>, Range<usize>) {
        if let Some(last) = self.0.back_mut()
            && last.segment == segment
            && last.start + last.bytes.len() as u64 == start
            && last.bytes.len() + buf.len() <= CHUNK_BYTES
            && let Some(bytes) = Arc::get_mut(&mut last.bytes)
        {
            let at = bytes.len();
            bytes.extend_from_slice(buf);
            last.end = end;
            buf.clear();
            return (Arc::clone(&last.bytes), at..last.bytes.len());
        }
        let mut reused = None;
        while self.0.len() >= RECENT_CHUNKS && self.0.front().is_some_and(|c| c.end <= written_end)
        {
            let evicted = self
                .0
                .pop_front()
                .and_then(|c| Arc::try_unwrap(c.bytes).ok());
            reused = reused.or(evicted.filter(|v| v.capacity() <= 4 * BUF_CAPACITY));
        }
        let mut next = reused.unwrap_or_else(|| Vec::with_capacity(BUF_CAPACITY));
        next.clear();
        let bytes = Arc::new(std::mem::replace(buf, next));
        let range = 0..bytes.len();
        self.0.push_back(Chunk {
            segment,
            first,
            end,
            start,
            bytes: Arc::clone(&bytes),
        });
        (bytes, range)
    }
}

/// Frames of records in memory, taken under the lock and decoded outside it.
pub(crate) struct MemorySpan {
    bytes: SpanBytes,
    /// Where the frame of `first` starts in `bytes`.
    at: usize,
    first: Seq,
    /// Frames walked over before the first record taken.
    skip: usize,
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
    /// `count` frames from seq `first`, copied out of the write buffer (they
    /// start at file offset `start` of `segment`).
    pub(super) fn copied(
        bytes: Vec<u8>,
        first: Seq,
        count: usize,
        segment: PathBuf,
        start: u64,
    ) -> MemorySpan {
        MemorySpan {
            bytes: SpanBytes::Copied(bytes),
            at: 0,
            first,
            skip: 0,
            count,
            segment,
            start,
        }
    }

    /// Decodes the frames. A chunk's frames are copied out once, into one
    /// buffer the payloads share (a payload kept by a reader never pins a
    /// chunk, whose allocation the writer recycles).
    pub(super) fn records(self, max_len: usize) -> Result<Vec<Record>, StorageError> {
        let (bytes, at) = match self.bytes {
            SpanBytes::Chunk(chunk) => {
                let Some(tail) = chunk.get(self.at..) else {
                    return Err(StorageError::Corrupt {
                        segment: self.segment,
                        offset: self.start + self.at as u64,
                        reason: "in-memory span starts past its chunk".into(),
                    });
                };
                let len = span_len(tail, self.skip + self.count, max_len);
                (Bytes::copy_from_slice(&tail[..len]), 0)
            }
            SpanBytes::Copied(bytes) => (Bytes::from(bytes), self.at),
        };
        let run = Run {
            first: self.first,
            skip: self.skip,
            count: self.count,
            verify: false,
        };
        run.decode(&bytes, at, max_len)
            .map_err(|(offset, reason)| StorageError::Corrupt {
                segment: self.segment,
                offset: self.start + (self.at + offset - at) as u64,
                reason: format!("in-memory frame {reason}"),
            })
    }
}

/// The bytes the first `frames` frames of `bytes` take (fewer frames if fewer
/// parse: the decode that follows then reports why).
fn span_len(bytes: &[u8], frames: usize, max_len: usize) -> usize {
    let mut at = 0;
    for _ in 0..frames {
        let Some(header) = bytes
            .get(at..)
            .and_then(|b| b.first_chunk::<{ frame::HEADER_LEN }>())
            .and_then(|head| frame::parse_header(head, max_len).ok())
        else {
            break;
        };
        let end = at + frame::HEADER_LEN + header.len as usize;
        if end > bytes.len() {
            break;
        }
        at = end;
    }
    at
}
