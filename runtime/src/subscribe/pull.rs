//! The pull core shared by subscriptions and `db.events`: a store tail read
//! one batch at a time, only when the consumer asks for more.
//!
//! Why a state machine and not a spawned task: a task would read ahead into a
//! channel and a slow consumer would then either block the task or grow the
//! channel. Here nothing is fetched until the consumer polls, and at most one
//! batch (`batch` records) is held, so a slow consumer slows only itself.
//!
//! The in-flight `next_batch` future owns the tail (it is moved in and handed
//! back with the records), so the future can be kept across polls without a
//! self-reference; dropping it mid-flight drops the tail, losing nothing that
//! was not yet returned (the position is in the checkpoint, not in the tail).

use std::task::{Context, Poll};

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::Seq;
use crate::store::{RecordedEvent, StoreError, StoreTail};

type Fetch = BoxFuture<'static, (Box<dyn StoreTail>, Result<Vec<RecordedEvent>, StoreError>)>;

enum State {
    Idle(Box<dyn StoreTail>),
    Fetching(Fetch),
    /// The store was closed and every event was returned.
    Ended,
}

/// A store tail pulled on demand, at most one batch buffered.
pub(crate) struct Pull {
    state: State,
    buffered: std::vec::IntoIter<RecordedEvent>,
    batch: usize,
    /// The position after the last record handed out (or the start).
    next: Seq,
    /// The highest position fetched from the store so far (0: none).
    fetched: Seq,
}

impl Pull {
    /// Pulls from `tail`, `batch` records at a time (at least 1).
    pub(crate) fn new(tail: Box<dyn StoreTail>, batch: usize) -> Self {
        let next = tail.position();
        Self {
            state: State::Idle(tail),
            buffered: Vec::new().into_iter(),
            batch: batch.max(1),
            next,
            fetched: 0,
        }
    }

    /// The position of the next record this pull returns (at least).
    pub(crate) fn position(&self) -> Seq {
        self.next
    }

    /// The highest position fetched from the store so far (0 before the
    /// first batch): it grows once per batch.
    pub(crate) fn fetched(&self) -> Seq {
        self.fetched
    }

    /// The next record; `Ready(None)` once the store is closed and drained. A
    /// store error is returned once; the next poll retries from the same place.
    pub(crate) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<RecordedEvent, StoreError>>> {
        loop {
            if let Some(record) = self.buffered.next() {
                self.next = record.position + 1;
                return Poll::Ready(Some(Ok(record)));
            }
            match std::mem::replace(&mut self.state, State::Ended) {
                State::Ended => return Poll::Ready(None),
                State::Idle(mut tail) => {
                    let max = self.batch;
                    self.state = State::Fetching(
                        async move {
                            let result = tail.next_batch(max).await;
                            (tail, result)
                        }
                        .boxed(),
                    );
                }
                State::Fetching(mut fetch) => match fetch.poll_unpin(cx) {
                    Poll::Pending => {
                        self.state = State::Fetching(fetch);
                        return Poll::Pending;
                    }
                    Poll::Ready((tail, result)) => match result {
                        Ok(records) => {
                            if let Some(last) = records.last() {
                                self.fetched = self.fetched.max(last.position);
                            }
                            self.buffered = records.into_iter();
                            self.state = State::Idle(tail);
                        }
                        Err(StoreError::Closed) => return Poll::Ready(None),
                        Err(error) => {
                            self.state = State::Idle(tail);
                            return Poll::Ready(Some(Err(error)));
                        }
                    },
                },
            }
        }
    }
}
