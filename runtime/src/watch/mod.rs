//! Watch streams: queries that push their result when it changes.
//!
//! `handle.watch(|s| &s.orders)` gives the entity's generated query builder over a
//! [`WatchSource`], so the same `where_*` / `order_by_*` / `limit` methods apply;
//! `.stream()` ([`WatchQuery`]) turns it into a `Stream<Item = Vec<T>>`.
//!
//! ```
//! use foldkit::prelude::*;
//! use futures::StreamExt;
//!
//! #[derive(Event, Serialize, Deserialize, Clone, Debug)]
//! enum Ev { Placed { id: u64, total: u64 }, Closed { id: u64 } }
//!
//! #[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! struct Order {
//!     #[entity(id)]
//!     id: u64,
//!     #[entity(index)]
//!     open: bool,
//!     total: u64,
//! }
//!
//! #[derive(State, Default, Serialize, Deserialize)]
//! #[state(event = Ev)]
//! struct Book { orders: Table<Order> }
//!
//! impl Apply<Ev> for Book {
//!     fn apply(&mut self, event: Ev, _: &Meta) -> Result<(), FoldError> {
//!         match event {
//!             Ev::Placed { id, total } => { self.orders.insert(Order { id, open: true, total }); }
//!             Ev::Closed { id } => { self.orders.update(&id, |o| o.open = false); }
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! # let dir = tempfile::tempdir()?;
//! let db = Db::builder(dir.path()).state::<Book>().open().await?;
//! let book = db.state::<Book>();
//! let mut open = book.watch(|s| &s.orders).where_open(true).order_by_total(Desc).stream();
//! assert_eq!(open.next().await, Some(vec![])); // the current result, at once
//!
//! db.append(Ev::Placed { id: 1, total: 250 }).await?;
//! assert_eq!(open.next().await.map(|rows| rows.len()), Some(1));
//! db.append(Ev::Closed { id: 1 }).await?; // a row leaving the result emits too
//! assert_eq!(open.next().await, Some(vec![]));
//!
//! let mut total = Box::pin(book.watch_value(|s| s.orders.iter().map(|o| o.total).sum::<u64>()));
//! assert_eq!(total.next().await, Some(250));
//! db.close().await?;
//! assert_eq!(open.next().await, None, "streams end when the Db closes");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! How it stays cheap:
//! - The fold never evaluates watchers. After each batch it *routes* the changed
//!   rows (module `registry`): a watcher whose query has an indexed equality is woken
//!   only by a changed row carrying one of its keys, or by a change to a row of its
//!   last result; other watchers are woken by any change to their table. That costs
//!   the fold a few hash lookups per changed row, however many watchers there are.
//! - A woken stream, when polled, reads the table's change log (see `table::changes`):
//!   if no changed row was in its last result and none now matches its filter, the
//!   query is not re-run. A row that leaves the filter was in the last result, so it
//!   triggers a re-run (and an emission).
//! - A new result is emitted only if it differs from the last one emitted.
//! - Nothing is queued: a slow consumer gets the latest result when it polls.
//!   Dropping the stream unregisters it from the table.
//! - A table replaced wholesale (`self.orders = Table::new()` in `apply`) is noticed:
//!   its watchers re-run and re-register on the new table.
//!
//! Streams end once the state stops folding (the Db closed, or the fold failed),
//! after emitting the final result if it changed.

mod registration;
mod registry;
mod routes;
mod stream;

use std::sync::Arc;

use futures::Stream;

pub(crate) use registry::Registry;
pub(crate) use routes::Routes;
pub use stream::WatchStream;
use stream::Watcher;

use crate::db::{FoldStatus, Handle, StateCell};
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

impl<S, T: Entity> std::fmt::Debug for WatchSource<S, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchSource")
            .field("state", &std::any::type_name::<S>())
            .field("table", &T::NAME)
            .finish_non_exhaustive()
    }
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
        let start = (cell, progress, compute, None::<V>, false);
        futures::stream::unfold(
            start,
            |(cell, mut progress, compute, last, ended)| async move {
                if ended {
                    return None;
                }
                loop {
                    if last.is_some() && progress.changed().await.is_err() {
                        return None;
                    }
                    let ended = !matches!(progress.borrow_and_update().status, FoldStatus::Running);
                    let value = compute(&cell.value.read());
                    if last.as_ref() != Some(&value) {
                        return Some((
                            value.clone(),
                            (cell, progress, compute, Some(value), ended),
                        ));
                    }
                    if ended {
                        return None;
                    }
                }
            },
        )
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
