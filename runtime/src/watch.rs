//! Watch streams: queries that push their result when it changes.
//!
//! `handle.watch(|s| &s.orders)` gives the entity's generated query builder over a
//! [`WatchSource`], so the same `where_*` / `order_by_*` / `limit` methods apply;
//! `.stream()` ([`WatchQuery`]) turns it into a `Stream<Item = Vec<T>>`.
//!
//! How it stays cheap:
//! - The fold never evaluates watchers. It publishes the applied seq once per
//!   batch; a stream wakes on that, when it is polled.
//! - A woken stream reads the table's change log (see `table::changes`): if no
//!   changed row was in its last result and none now matches its filter, the query
//!   is not re-run. A row that leaves the filter was in the last result, so it
//!   triggers a re-run (and an emission).
//! - A new result is emitted only if it differs from the last one emitted.
//! - Nothing is queued: a slow consumer gets the latest result when it polls.
//!   Dropping the stream unregisters it from the table.

use std::collections::HashSet;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::watch;

use crate::db::{Handle, Progress, StateCell};
use crate::entity::Entity;
use crate::query::{QueryBuilder, QueryCore};
use crate::state::State;
use crate::table::Table;

/// Picks the watched table out of the state.
type Selector<S, T> = Arc<dyn for<'a> Fn(&'a S) -> &'a Table<T> + Send + Sync>;

/// Where a watch builder's rows come from: one table of a state.
pub struct WatchSource<S, T: Entity> {
    cell: Arc<StateCell<S>>,
    select: Selector<S, T>,
}

impl<S: State> Handle<S> {
    /// Starts a watch on the table `select` picks: chain `where_*`, `order_by_*`,
    /// `limit`, `offset`, then call `.stream()`.
    pub fn watch<T, F>(&self, select: F) -> T::Query<WatchSource<S, T>>
    where
        T: Entity,
        F: for<'a> Fn(&'a S) -> &'a Table<T> + Send + Sync + 'static,
    {
        let source = WatchSource {
            cell: Arc::clone(&self.cell),
            select: Arc::new(select),
        };
        <T::Query<WatchSource<S, T>>>::from_parts(source, QueryCore::new())
    }

    /// The watcher's current result, and a stream of its later changes (which
    /// does not repeat the current result).
    pub fn snapshot_and_watch<T, Q>(&self, watcher: Q) -> (Vec<T>, WatchStream<T>)
    where
        T: Entity + Clone + PartialEq + Send + Sync,
        T::Id: Send + Sync,
        Q: QueryBuilder<Entity = T, Source = WatchSource<S, T>>,
    {
        let (source, core) = watcher.into_parts();
        let mut watch = Watcher::new(source, core);
        let current = watch.evaluate_now();
        (current, WatchStream::new(watch, false))
    }

    /// A stream of `compute(&state)`: the current value at once, then each new
    /// value that differs from the last one emitted. It is re-computed after each
    /// batch the fold applies.
    pub fn watch_value<V, F>(
        &self,
        compute: F,
    ) -> impl Stream<Item = V> + Send + 'static + use<S, V, F>
    where
        V: PartialEq + Clone + Send + Sync + 'static,
        F: Fn(&S) -> V + Send + Sync + 'static,
    {
        let cell = Arc::clone(&self.cell);
        let progress = cell.progress.subscribe();
        let start = (cell, progress, compute, None::<V>);
        futures::stream::unfold(start, |(cell, mut progress, compute, last)| async move {
            loop {
                if last.is_some() && progress.changed().await.is_err() {
                    return None;
                }
                let value = compute(&cell.value.read());
                if last.as_ref() != Some(&value) {
                    return Some((value.clone(), (cell, progress, compute, Some(value))));
                }
            }
        })
    }
}

/// `.stream()` for watch builders (in the prelude).
pub trait WatchQuery<S, T: Entity>: QueryBuilder<Entity = T, Source = WatchSource<S, T>> {
    /// The stream of results: the current one at once, then each change.
    fn stream(self) -> WatchStream<T>
    where
        S: State,
        T: Clone + PartialEq + Send + Sync,
    {
        let (source, core) = self.into_parts();
        WatchStream::new(Watcher::new(source, core), true)
    }
}

impl<S, T: Entity, Q: QueryBuilder<Entity = T, Source = WatchSource<S, T>>> WatchQuery<S, T> for Q {}

/// A stream of a watched query's results; see the [module docs](self).
pub struct WatchStream<T> {
    inner: std::pin::Pin<Box<dyn Stream<Item = Vec<T>> + Send>>,
}

impl<T> Stream for WatchStream<T> {
    type Item = Vec<T>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Vec<T>>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl<T: Clone + PartialEq + Send + Sync + 'static> WatchStream<T> {
    fn new<S: State>(watcher: Watcher<S, T>, emit_first: bool) -> Self
    where
        T: Entity,
    {
        let stream =
            futures::stream::unfold((watcher, emit_first), |(mut watcher, first)| async move {
                if first {
                    let result = watcher.evaluate_now();
                    return Some((result, (watcher, false)));
                }
                watcher
                    .next_change()
                    .await
                    .map(|result| (result, (watcher, false)))
            });
        Self {
            inner: Box::pin(stream),
        }
    }
}

/// One registered watcher: its query, what it last emitted, and what it has seen.
struct Watcher<S, T: Entity> {
    cell: Arc<StateCell<S>>,
    select: Selector<S, T>,
    core: QueryCore<T>,
    progress: watch::Receiver<Progress>,
    last: Vec<T>,
    last_ids: HashSet<T::Id>,
    seen_version: u64,
}

impl<S: State, T: Entity + Clone + PartialEq> Watcher<S, T> {
    fn new(source: WatchSource<S, T>, core: QueryCore<T>) -> Self {
        let progress = source.cell.progress.subscribe();
        let state = source.cell.value.read();
        // Registered under the read lock: every later change is recorded for us.
        (source.select)(&state).changes.add_watcher();
        drop(state);
        Self {
            cell: source.cell,
            select: source.select,
            core,
            progress,
            last: Vec::new(),
            last_ids: HashSet::new(),
            seen_version: 0,
        }
    }

    /// Runs the query now and remembers the result.
    fn evaluate_now(&mut self) -> Vec<T> {
        let state = self.cell.value.read();
        let table = (self.select)(&state);
        self.seen_version = table.changes.version();
        let result = self.core.collect(table);
        drop(state);
        self.remember(&result);
        result
    }

    fn remember(&mut self, result: &[T]) {
        self.last_ids = result.iter().map(|row| row.id().clone()).collect();
        self.last = result.to_vec();
    }

    /// Waits for a change of the result; `None` once the state stops folding.
    async fn next_change(&mut self) -> Option<Vec<T>> {
        loop {
            self.progress.changed().await.ok()?;
            let state = self.cell.value.read();
            let table = (self.select)(&state);
            let version = table.changes.version();
            if version == self.seen_version {
                continue;
            }
            let affected = match table.changes.since(self.seen_version) {
                Some(mut ids) => ids.any(|id| {
                    self.last_ids.contains(id)
                        || table.get(id).is_some_and(|row| self.core.matches(row))
                }),
                None => true,
            };
            self.seen_version = version;
            if !affected {
                continue;
            }
            let result = self.core.collect(table);
            drop(state);
            if result != self.last {
                self.remember(&result);
                return Some(result);
            }
        }
    }
}

impl<S, T: Entity> Drop for Watcher<S, T> {
    fn drop(&mut self) {
        (self.select)(&self.cell.value.read())
            .changes
            .remove_watcher();
    }
}
