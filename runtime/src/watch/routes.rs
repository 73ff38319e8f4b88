//! The routes of one state: one per watched table, driven by the fold after each batch
//! (see `registry.rs` for what a route does with a batch).

use std::sync::Weak;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::Selector;
use super::registry::Registry;
use crate::entity::Entity;

/// The routes of one state, one per watched table; the fold drives them.
pub(crate) struct Routes<S> {
    list: Mutex<Vec<Box<dyn Route<S>>>>,
    /// `list.len()`, read without the lock on every batch.
    len: AtomicUsize,
}

impl<S> Default for Routes<S> {
    fn default() -> Self {
        Self {
            list: Mutex::new(Vec::new()),
            len: AtomicUsize::new(0),
        }
    }
}

impl<S> Routes<S> {
    /// Wakes the watchers the batch just applied to `state` may affect. Called by the
    /// fold after each batch, under the state's write lock.
    pub(crate) fn after_batch(&self, state: &S) {
        if self.len.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut list = self.list.lock();
        list.retain(|route| route.route(state));
        self.len.store(list.len(), Ordering::Release);
    }

    /// The fold stopped: every watcher looks once more, then its stream ends.
    pub(crate) fn end(&self) {
        for route in self.list.lock().iter() {
            route.wake_all();
        }
    }

    pub(super) fn add(&self, route: Box<dyn Route<S>>) {
        let mut list = self.list.lock();
        list.push(route);
        self.len.store(list.len(), Ordering::Release);
    }
}

/// One watched table of a state.
pub(super) trait Route<S>: Send + Sync {
    /// Wakes the watchers the last batch may affect; `false` once the route is dead
    /// (no watcher left, or the table was replaced).
    fn route(&self, state: &S) -> bool;
    /// Wakes every watcher.
    fn wake_all(&self);
}

pub(super) struct TableRoute<S, T: Entity> {
    pub(super) select: Selector<S, T>,
    pub(super) registry: Weak<Registry<T>>,
}

impl<S: 'static, T: Entity> Route<S> for TableRoute<S, T> {
    fn route(&self, state: &S) -> bool {
        let Some(registry) = self.registry.upgrade() else {
            return false;
        };
        let table = (self.select)(state);
        if !registry.serves(table) {
            // Replaced: every watcher looks and re-registers on the new table.
            registry.wake_all();
            return false;
        }
        registry.route(table);
        true
    }

    fn wake_all(&self) {
        if let Some(registry) = self.registry.upgrade() {
            registry.wake_all();
        }
    }
}
