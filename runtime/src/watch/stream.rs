//! One watcher: its query, its registration, what it last emitted; and the stream over it.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;

use super::registration::Registration;
use super::{Selector, WatchSource};
use crate::db::{FoldStatus, StateCell};
use crate::entity::Entity;
use crate::query::QueryCore;
use crate::state::State;
use crate::table::Table;

/// A stream of a watched query's results; see the [module docs](super).
///
/// It ends after the state stops folding (the Db was closed, or the fold failed),
/// once it has emitted the final result if that differs from the last one.
#[must_use = "streams do nothing unless polled"]
pub struct WatchStream<T> {
    inner: Pin<Box<dyn Stream<Item = Vec<T>> + Send>>,
}

impl<T> Stream for WatchStream<T> {
    type Item = Vec<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<T>>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl<T> std::fmt::Debug for WatchStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream").finish_non_exhaustive()
    }
}

impl<T: Entity + Clone + PartialEq + Send + Sync + 'static> WatchStream<T> {
    /// The stream of `watcher`'s results; `emit_first`: start with the current one.
    pub(super) fn new<S: State>(watcher: Watcher<S, T>, emit_first: bool) -> Self {
        let stream =
            futures::stream::unfold((watcher, emit_first), |(mut watcher, first)| async move {
                if first {
                    let result = watcher.evaluate_now();
                    return Some((result, (watcher, false)));
                }
                let result = watcher.next_change().await?;
                Some((result, (watcher, false)))
            });
        Self {
            inner: Box::pin(stream),
        }
    }
}

/// One registered watcher: its query, what it last emitted, and what it has seen.
pub(super) struct Watcher<S, T: Entity> {
    cell: Arc<StateCell<S>>,
    select: Selector<S, T>,
    core: QueryCore<T>,
    registration: Registration<T>,
    last: Vec<T>,
    last_ids: HashSet<T::Id>,
    /// The table version the last look was at.
    seen_version: u64,
    /// The fold has stopped and the final result was looked at.
    ended: bool,
}

impl<S: State, T: Entity + Clone + PartialEq> Watcher<S, T> {
    /// Registers a watcher of `core` on the source's table.
    pub(super) fn new(source: WatchSource<S, T>, core: QueryCore<T>) -> Self {
        let state = source.cell.value.read();
        let table = (source.select)(&state);
        let registration = Registration::new(table, &source.select, &source.cell.watch, &core);
        let seen_version = table.changes.version();
        drop(state);
        Self {
            cell: source.cell,
            select: source.select,
            core,
            registration,
            last: Vec::new(),
            last_ids: HashSet::new(),
            seen_version,
            ended: false,
        }
    }

    /// Runs the query now and remembers the result.
    pub(super) fn evaluate_now(&mut self) -> Vec<T> {
        let cell = Arc::clone(&self.cell);
        let state = cell.value.read();
        let table = (self.select)(&state);
        if !self.registration.serves(table) {
            self.reregister(table);
        }
        self.seen_version = table.changes.version();
        let result = self.core.collect(table);
        self.remember(&result);
        drop(state);
        result
    }

    /// Moves the registration to `table`, which replaced the one registered on.
    fn reregister(&mut self, table: &Table<T>) {
        self.registration = Registration::new(table, &self.select, &self.cell.watch, &self.core);
    }

    /// Remembers `result` as the last emitted; called under the read lock.
    fn remember(&mut self, result: &[T]) {
        self.last_ids = result.iter().map(|row| row.id().clone()).collect();
        self.registration.hold(self.last_ids.iter().cloned());
        self.last = result.to_vec();
    }

    /// Waits for a change of the result; `None` after the state stopped folding.
    pub(super) async fn next_change(&mut self) -> Option<Vec<T>> {
        loop {
            if self.ended {
                return None;
            }
            let running = matches!(self.cell.progress.borrow().status, FoldStatus::Running);
            if running {
                self.registration.notified().await;
            }
            // Read after the wake-up: a fold that ended is done with the state.
            let running = matches!(self.cell.progress.borrow().status, FoldStatus::Running);
            self.ended = !running;
            if let Some(result) = self.look() {
                return Some(result);
            }
        }
    }

    /// Re-runs the query if a change since the last look may affect it; the new
    /// result if it differs from the last one emitted.
    fn look(&mut self) -> Option<Vec<T>> {
        let cell = Arc::clone(&self.cell);
        let state = cell.value.read();
        let table = (self.select)(&state);
        let affected = if self.registration.serves(table) {
            self.affected(table)
        } else {
            self.reregister(table);
            true
        };
        self.seen_version = table.changes.version();
        if !affected {
            return None;
        }
        let result = self.core.collect(table);
        if result == self.last {
            return None;
        }
        self.remember(&result);
        Some(result)
    }

    /// Whether a row changed since the last look was in the last result or now
    /// matches the filter (`true` when the changes are not all known).
    fn affected(&self, table: &Table<T>) -> bool {
        if table.changes.version() == self.seen_version {
            return false;
        }
        match table.changes.since(self.seen_version) {
            Some(mut changes) => changes.any(|change| {
                self.last_ids.contains(&change.id)
                    || table
                        .changed_row(change)
                        .is_some_and(|row| self.core.matches(row))
            }),
            None => true,
        }
    }
}
