//! Tails: read a log from a seq on, then follow it as records are appended.
//!
//! A tail reads in batches: inline from memory for recent records (the hot
//! path), on tokio's blocking pool from the segment files when it is behind (in
//! reads of many batches, the next one started as soon as one arrives), and
//! sleeps on the log's append notification when it has caught up. Registering
//! for the notification *before* looking for records means an append between the
//! look and the sleep is never missed. Checking `closed` before looking means a
//! tail ends only after every record appended before the close was handed out.
//!
//! Cancel safety: every piece of state lives in the `Tail`, never in the future
//! of a call: the cursor, the records fetched but not yet returned, the file
//! read in flight (its `JoinHandle`, which owns a copy of the position) and the
//! registered notification. A dropped `next_batch` (or `next`) therefore loses
//! nothing; the next call picks up where it stopped.
//! (A tail left registered keeps counting as waiting: appends then wake it,
//! which costs them a notification each until the tail is polled or dropped.)

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};

use futures::Stream;
use tokio::sync::futures::OwnedNotified;
use tokio::task::JoinHandle;

use crate::Seq;
use crate::error::StorageError;
use crate::log::{Inner, Look, Record};

/// How many records the `Stream` impl fetches at a time.
const STREAM_BATCH: usize = 256;
/// The fewest records one read of the segment files asks for (it also stops at
/// the end of a segment, and at 4 MiB): one trip to the blocking pool serves
/// many batches.
const FILE_BATCH: usize = 16 * 1024;

/// Follows a log: the records from a seq on, then live ones. Also a
/// [`Stream`] of records, which ends when the log is closed and drained.
pub struct Tail {
    inner: Arc<Inner>,
    /// The next seq to fetch from the log (past `buffered`).
    next: Seq,
    /// Fetched, not yet returned.
    buffered: VecDeque<Record>,
    /// A read of the segment files from `next` on, on the blocking pool.
    reading: Option<JoinHandle<Result<Vec<Record>, StorageError>>>,
    /// Registered for the next append while caught up.
    sleeping: Option<(Pin<Box<OwnedNotified>>, Waiting)>,
    /// The next seq this tail returns.
    position: Seq,
    /// The `Stream` has ended (the log is closed and drained).
    ended: bool,
}

impl Tail {
    pub(crate) fn new(inner: Arc<Inner>, from: Seq) -> Tail {
        Tail {
            inner,
            next: from,
            buffered: VecDeque::new(),
            reading: None,
            sleeping: None,
            position: from,
            ended: false,
        }
    }

    /// The next seq this tail will yield.
    pub fn position(&self) -> Seq {
        self.position
    }

    /// Waits until at least one record is available and returns up to `max` of
    /// them, in order. After the log is closed and every record was returned:
    /// [`StorageError::Closed`]. Records behind the in-memory window are read
    /// from the segment files on tokio's blocking pool (so it must be called
    /// within a tokio runtime to keep file reads off the async threads; outside
    /// one it reads inline).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future loses no record and keeps the position.
    /// Records already fetched, and a file read in flight, are kept in the
    /// `Tail` and returned by the next call.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<Record>, StorageError> {
        let max = max.max(1);
        if self.buffered.is_empty() {
            std::future::poll_fn(|cx| self.poll_fill(cx, max)).await?;
        }
        let take = max.min(self.buffered.len());
        let batch: Vec<Record> = self.buffered.drain(..take).collect();
        if let Some(last) = batch.last() {
            self.position = last.seq + 1;
        }
        Ok(batch)
    }

    /// Fetches at least one record into `buffered` (up to `max`), or fails.
    fn poll_fill(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<Result<(), StorageError>> {
        loop {
            if let Some(reading) = self.reading.as_mut() {
                let result = ready!(Pin::new(reading).poll(cx));
                self.reading = None;
                let batch = match result {
                    Ok(batch) => batch?,
                    // A panic in the read is a bug of this crate: it is not
                    // turned into an error of the disk's.
                    Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
                    Err(_) => {
                        return Poll::Ready(Err(StorageError::Cancelled {
                            op: "read segments of",
                            path: self.inner.dir.clone(),
                        }));
                    }
                };
                if self.keep(batch) {
                    // Read ahead: the next file read runs while these records
                    // are consumed.
                    if self.inner.on_file_only(self.next) {
                        self.start_read(FILE_BATCH)?;
                    }
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            if let Some((notified, _)) = self.sleeping.as_mut() {
                ready!(notified.as_mut().poll(cx));
                self.sleeping = None;
            }
            // Look without registering first: records are usually there.
            match self.inner.look(self.next, max)? {
                Look::Records(batch) => {
                    if self.keep(batch) {
                        return Poll::Ready(Ok(()));
                    }
                    continue;
                }
                Look::File => {
                    if self.start_read(max)? {
                        return Poll::Ready(Ok(()));
                    }
                    continue;
                }
                Look::Nothing => {}
            }
            let mut notified = Box::pin(Arc::clone(&self.inner.appended).notified_owned());
            notified.as_mut().enable();
            let waiting = Waiting::enter(&self.inner);
            let closed = self.inner.closed.load(Ordering::Acquire);
            match self.inner.look(self.next, max)? {
                Look::Records(batch) => {
                    if self.keep(batch) {
                        return Poll::Ready(Ok(()));
                    }
                }
                Look::File => {
                    if self.start_read(max)? {
                        return Poll::Ready(Ok(()));
                    }
                }
                Look::Nothing if closed => return Poll::Ready(Err(StorageError::Closed)),
                Look::Nothing => self.sleeping = Some((notified, waiting)),
            }
        }
    }

    /// Keeps a fetched batch (which starts at `next`); says whether it held any.
    fn keep(&mut self, batch: Vec<Record>) -> bool {
        let Some(last) = batch.last() else {
            return false;
        };
        debug_assert_eq!(batch.first().map(|r| r.seq), Some(self.next));
        self.next = last.seq + 1;
        self.buffered.extend(batch);
        true
    }

    /// Starts reading from `next` on from the segment files on the blocking
    /// pool; outside a tokio runtime it reads inline. Says whether it kept
    /// records (inline) already.
    fn start_read(&mut self, max: usize) -> Result<bool, StorageError> {
        let max = max.max(FILE_BATCH);
        let (inner, from) = (Arc::clone(&self.inner), self.next);
        let read = move || inner.read_batch(from, max);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                self.reading = Some(handle.spawn_blocking(read));
                Ok(false)
            }
            Err(_) => {
                let batch = read()?;
                Ok(self.keep(batch))
            }
        }
    }
}

impl Stream for Tail {
    type Item = Result<Record, StorageError>;

    /// # Cancel safety
    ///
    /// Cancel safe, like [`Tail::next_batch`]: a dropped `next()` loses no record.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(record) = this.buffered.pop_front() {
            this.position = record.seq + 1;
            return Poll::Ready(Some(Ok(record)));
        }
        if this.ended {
            return Poll::Ready(None);
        }
        match ready!(this.poll_fill(cx, STREAM_BATCH)) {
            Ok(()) => {
                let record = this.buffered.pop_front();
                if let Some(record) = &record {
                    this.position = record.seq + 1;
                }
                Poll::Ready(record.map(Ok))
            }
            Err(StorageError::Closed) => {
                this.ended = true;
                Poll::Ready(None)
            }
            Err(error) => Poll::Ready(Some(Err(error))),
        }
    }
}

impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tail")
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

/// Counts a tail among the waiters while it looks for records and sleeps.
struct Waiting(Arc<Inner>);

impl Waiting {
    fn enter(inner: &Arc<Inner>) -> Self {
        inner.waiting.fetch_add(1, Ordering::SeqCst);
        Waiting(Arc::clone(inner))
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}
