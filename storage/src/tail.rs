//! Tails: read a log from a seq on, then follow it as records are appended.
//!
//! A tail reads in batches (from memory for recent records, from the segment
//! files when it is behind) and sleeps on the log's append notification when it
//! has caught up. Registering for the notification *before* looking for records
//! means an append between the look and the sleep is never missed. Checking
//! `closed` before looking means a tail ends only after every record appended
//! before the close was handed out.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use futures::Stream;

use crate::Seq;
use crate::error::StorageError;
use crate::log::{Inner, Record};

/// How many records the `Stream` impl fetches at a time.
const STREAM_BATCH: usize = 256;

/// A batch being fetched for the `Stream` impl; it owns the cursor meanwhile.
type PendingBatch =
    Pin<Box<dyn Future<Output = (Cursor, Result<Vec<Record>, StorageError>)> + Send>>;

/// Follows a log: the records from a seq on, then live ones. Also a
/// [`Stream`] of records, which ends when the log is closed and drained.
pub struct Tail {
    core: Option<Cursor>,
    buffered: VecDeque<Record>,
    pending: Option<PendingBatch>,
    position: Seq,
    ended: bool,
}

struct Cursor {
    inner: Arc<Inner>,
    next: Seq,
}

impl Cursor {
    async fn next_batch(&mut self, max: usize) -> Result<Vec<Record>, StorageError> {
        loop {
            let notified = self.inner.appended.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let waiting = Waiting::enter(&self.inner);
            let closed = self.inner.closed.load(Ordering::Acquire);
            let batch = self.inner.read_batch(self.next, max.max(1))?;
            if let Some(last) = batch.last() {
                self.next = last.seq + 1;
                return Ok(batch);
            }
            if closed {
                return Err(StorageError::Closed);
            }
            notified.await;
            drop(waiting);
        }
    }
}

impl Tail {
    pub(crate) fn new(inner: Arc<Inner>, from: Seq) -> Tail {
        Tail {
            core: Some(Cursor { inner, next: from }),
            buffered: VecDeque::new(),
            pending: None,
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
    /// [`StorageError::Closed`].
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<Record>, StorageError> {
        if self.buffered.is_empty() {
            if let Some(pending) = self.pending.take() {
                let (core, result) = pending.await;
                self.core = Some(core);
                self.buffered.extend(result?);
            } else {
                let Some(core) = self.core.as_mut() else {
                    return Err(StorageError::Closed);
                };
                self.buffered.extend(core.next_batch(max).await?);
            }
        }
        let take = max.max(1).min(self.buffered.len());
        let batch: Vec<Record> = self.buffered.drain(..take).collect();
        if let Some(last) = batch.last() {
            self.position = last.seq + 1;
        }
        Ok(batch)
    }
}

impl Stream for Tail {
    type Item = Result<Record, StorageError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(record) = this.buffered.pop_front() {
                this.position = record.seq + 1;
                return Poll::Ready(Some(Ok(record)));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            if this.pending.is_none() {
                let Some(mut core) = this.core.take() else {
                    return Poll::Ready(None);
                };
                this.pending = Some(Box::pin(async move {
                    let result = core.next_batch(STREAM_BATCH).await;
                    (core, result)
                }));
            }
            let Some(pending) = this.pending.as_mut() else {
                return Poll::Ready(None);
            };
            let (core, result) = match pending.as_mut().poll(cx) {
                Poll::Ready(done) => done,
                Poll::Pending => return Poll::Pending,
            };
            this.pending = None;
            this.core = Some(core);
            match result {
                Ok(batch) => this.buffered.extend(batch),
                Err(StorageError::Closed) => this.ended = true,
                Err(error) => return Poll::Ready(Some(Err(error))),
            }
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
struct Waiting<'a>(&'a Inner);

impl<'a> Waiting<'a> {
    fn enter(inner: &'a Inner) -> Self {
        inner.waiting.fetch_add(1, Ordering::SeqCst);
        Waiting(inner)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}
