//! Routing: after each batch, the fold wakes only the watchers the batch can affect.
//!
//! Without routing, every watcher would wake after every batch only to find (usually)
//! that nothing it shows changed: 1,000 idle watchers would cost 1,000 task wake-ups
//! and 1,000 scans of the changed ids per batch, on the same cores that ingest.
//!
//! Each watched table has one [`Registry`] (kept in the table's change log, so a table
//! replaced wholesale drops it). A watcher registers with:
//! - its *route* when its query has an index-capable clause (`where_f` on an indexed
//!   field, `where_f_in`, an indexed `where_f_contains`): the index slot and the hashes
//!   of the clause's keys (see `query::route`). Every row it can match carries one of
//!   those keys;
//! - the ids of its last result (`holding`), since a row that changes its key or is
//!   removed leaves the result without carrying the watched key any more;
//! - or no route at all: such a watcher is woken by every batch that changes the table
//!   and checks the changed ids itself.
//!
//! After each batch the fold calls `Routes::after_batch` (`routes.rs`) under the state's write lock.
//! Per changed id that costs a lookup in `holding` (skipped while no watcher holds rows),
//! the row itself (read at the slot its change recorded, so no id lookup: see
//! `table::changes`) and, per index slot some watcher is routed on, the hashes of the
//! row's keys and a lookup in `by_key` (whose keys are hashes already, so it does not hash
//! them again): work proportional to the changes, not to the watchers. The fold never
//! runs a watcher's query; a woken watcher does that itself when its consumer polls.
//!
//! Invariants:
//! - a watcher registers under the state's read lock and reads the table version there,
//!   and routing runs under the write lock: every batch after a watcher's first look is
//!   routed with the watcher registered;
//! - a wake-up is a `Notify::notify_one` permit: one sent while the watcher is busy is
//!   kept, never lost;
//! - the fold's end wakes every watcher (`Routes::end`), so streams finish.

//!
//! This file holds the per-table [`Registry`]; `routes.rs` the per-state list of routes the
//! fold drives, and `registration.rs` a watcher's registration (and its removal on drop).

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::Selector;
use super::routes::{Routes, TableRoute};
use crate::entity::Entity;
use crate::query::{IndexProbe, KeyHasher};
use crate::table::Table;

/// The watchers of one table and how to reach them; see the [module docs](self).
pub(crate) struct Registry<T: Entity> {
    pub(super) inner: Mutex<Inner<T>>,
    /// The table's count of watchers (shared with its change log, which records
    /// changed ids only while it is above 0).
    pub(super) watchers: Arc<AtomicUsize>,
}

pub(super) struct Inner<T: Entity> {
    /// The table version routed up to.
    pub(super) version: u64,
    pub(super) next_key: u64,
    pub(super) entries: HashMap<u64, Entry<T>>,
    /// Watchers without a route: woken by every change.
    pub(super) unrouted: Vec<u64>,
    /// (index slot, key hash) → routed watchers. The keys are hashes already, so
    /// the map only mixes them ([`KeyHasher`]) instead of SipHashing them again.
    pub(super) by_key: HashMap<(usize, u64), Vec<u64>, BuildHasherDefault<KeyHasher>>,
    /// The index slots routed on, with a probe that reads a row's keys and a user count.
    pub(super) slots: Vec<(usize, IndexProbe<T>, usize)>,
    /// Row id → routed watchers whose last result holds it.
    pub(super) holding: HashMap<T::Id, Vec<u64>>,
}

impl<T: Entity> Inner<T> {
    pub(super) fn new(version: u64) -> Self {
        Self {
            version,
            next_key: 0,
            entries: HashMap::new(),
            unrouted: Vec::new(),
            by_key: HashMap::default(),
            slots: Vec::new(),
            holding: HashMap::new(),
        }
    }
}

pub(super) struct Entry<T: Entity> {
    pub(super) notify: Arc<Notify>,
    pub(super) route: Option<(usize, Vec<u64>)>,
    pub(super) holds: Vec<T::Id>,
}

impl<T: Entity> Registry<T> {
    /// The registry of `table`, created (and its route added to `routes`) on first use.
    /// Called under the state's read lock.
    pub(super) fn of<S: 'static>(
        table: &Table<T>,
        select: &Selector<S, T>,
        routes: &Routes<S>,
    ) -> Arc<Self> {
        let registry = table.changes.registry(|| {
            let registry = Arc::new(Registry::<T> {
                inner: Mutex::new(Inner::new(table.changes.version())),
                watchers: table.changes.watcher_count(),
            });
            routes.add(Box::new(TableRoute {
                select: Arc::clone(select),
                registry: Arc::downgrade(&registry),
            }));
            registry
        });
        Arc::clone(registry)
    }

    /// Whether this is the registry of `table` (false once the table was replaced).
    pub(crate) fn serves(&self, table: &Table<T>) -> bool {
        table
            .changes
            .registry_if_any()
            .is_some_and(|mine| std::ptr::eq(Arc::as_ptr(mine), self))
    }

    pub(super) fn wake_all(&self) {
        for entry in self.inner.lock().entries.values() {
            entry.notify.notify_one();
        }
    }

    /// Wakes the watchers the changes since the last call may affect.
    pub(super) fn route(&self, table: &Table<T>) {
        let mut inner = self.inner.lock();
        let version = table.changes.version();
        let since = std::mem::replace(&mut inner.version, version);
        if since == version || inner.entries.is_empty() {
            return;
        }
        let inner = &*inner;
        let wake = |key: &u64| {
            if let Some(entry) = inner.entries.get(key) {
                entry.notify.notify_one();
            }
        };
        inner.unrouted.iter().for_each(wake);
        if inner.by_key.is_empty() && inner.holding.is_empty() {
            return;
        }
        let Some(changed) = table.changes.since(since) else {
            inner.entries.values().for_each(|e| e.notify.notify_one());
            return;
        };
        let mut hashes = Vec::new();
        for change in changed {
            if !inner.holding.is_empty()
                && let Some(keys) = inner.holding.get(&change.id)
            {
                keys.iter().for_each(wake);
            }
            if inner.by_key.is_empty() {
                continue;
            }
            let Some(row) = table.changed_row(change) else {
                continue;
            };
            for (slot, probe, _) in &inner.slots {
                hashes.clear();
                probe.row_key_hashes(table, row, &mut hashes);
                for hash in &hashes {
                    if let Some(keys) = inner.by_key.get(&(*slot, *hash)) {
                        keys.iter().for_each(wake);
                    }
                }
            }
        }
    }
}
