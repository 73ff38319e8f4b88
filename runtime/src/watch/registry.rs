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
//! After each batch the fold calls [`Routes::after_batch`] under the state's write lock.
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

use std::any::Any;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::Selector;
use crate::entity::Entity;
use crate::query::{IndexProbe, KeyHasher, QueryCore};
use crate::table::Table;

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

    fn add(&self, route: Box<dyn Route<S>>) {
        let mut list = self.list.lock();
        list.push(route);
        self.len.store(list.len(), Ordering::Release);
    }
}

/// One watched table of a state.
trait Route<S>: Send + Sync {
    /// Wakes the watchers the last batch may affect; `false` once the route is dead
    /// (no watcher left, or the table was replaced).
    fn route(&self, state: &S) -> bool;
    /// Wakes every watcher.
    fn wake_all(&self);
}

struct TableRoute<S, T: Entity> {
    select: Selector<S, T>,
    registry: Weak<Registry<T>>,
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

/// The watchers of one table and how to reach them; see the [module docs](self).
pub(crate) struct Registry<T: Entity> {
    inner: Mutex<Inner<T>>,
    /// The table's count of watchers (shared with its change log, which records
    /// changed ids only while it is above 0).
    watchers: Arc<AtomicUsize>,
}

struct Inner<T: Entity> {
    /// The table version routed up to.
    version: u64,
    next_key: u64,
    entries: HashMap<u64, Entry<T>>,
    /// Watchers without a route: woken by every change.
    unrouted: Vec<u64>,
    /// (index slot, key hash) → routed watchers. The keys are hashes already, so
    /// the map only mixes them ([`KeyHasher`]) instead of SipHashing them again.
    by_key: HashMap<(usize, u64), Vec<u64>, BuildHasherDefault<KeyHasher>>,
    /// The index slots routed on, with a probe that reads a row's keys and a user count.
    slots: Vec<(usize, IndexProbe<T>, usize)>,
    /// Row id → routed watchers whose last result holds it.
    holding: HashMap<T::Id, Vec<u64>>,
}

impl<T: Entity> Inner<T> {
    fn new(version: u64) -> Self {
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

struct Entry<T: Entity> {
    notify: Arc<Notify>,
    route: Option<(usize, Vec<u64>)>,
    holds: Vec<T::Id>,
}

impl<T: Entity> Registry<T> {
    /// The registry of `table`, created (and its route added to `routes`) on first use.
    /// Called under the state's read lock.
    fn of<S: 'static>(
        table: &Table<T>,
        select: &Selector<S, T>,
        routes: &Routes<S>,
    ) -> Option<Arc<Self>> {
        let erased = table.changes.registry(|| {
            let registry = Arc::new(Registry::<T> {
                inner: Mutex::new(Inner::new(table.changes.version())),
                watchers: table.changes.watcher_count(),
            });
            routes.add(Box::new(TableRoute {
                select: Arc::clone(select),
                registry: Arc::downgrade(&registry),
            }));
            registry as Arc<dyn Any + Send + Sync>
        });
        Arc::clone(erased).downcast::<Registry<T>>().ok()
    }

    /// Whether this is the registry of `table` (false once the table was replaced).
    pub(crate) fn serves(&self, table: &Table<T>) -> bool {
        table.changes.registry_if_any().is_some_and(|mine| {
            std::ptr::eq(
                Arc::as_ptr(mine).cast::<()>(),
                std::ptr::from_ref(self).cast(),
            )
        })
    }

    fn wake_all(&self) {
        for entry in self.inner.lock().entries.values() {
            entry.notify.notify_one();
        }
    }

    /// Wakes the watchers the changes since the last call may affect.
    fn route(&self, table: &Table<T>) {
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

/// A watcher's registration on a table; dropping it unregisters.
pub(crate) struct Registration<T: Entity> {
    registry: Arc<Registry<T>>,
    key: u64,
    notify: Arc<Notify>,
    routed: bool,
}

impl<T: Entity> Registration<T> {
    /// Registers a watcher running `core` on `table`. Called under the state's read lock.
    pub(crate) fn new<S: 'static>(
        table: &Table<T>,
        select: &Selector<S, T>,
        routes: &Routes<S>,
        core: &QueryCore<T>,
    ) -> Self {
        let registry = match Registry::of(table, select, routes) {
            Some(registry) => registry,
            // The slot holds another type's registry: impossible, a table's entity
            // type is fixed. Fall back to a private registry (woken by nothing but
            // the fold's end), rather than panic.
            None => Arc::new(Registry {
                inner: Mutex::new(Inner::new(0)),
                watchers: Arc::new(AtomicUsize::new(0)),
            }),
        };
        let notify = Arc::new(Notify::new());
        let probe = core.route_probe();
        let route = probe.as_ref().map(IndexProbe::route_keys);
        let mut inner = registry.inner.lock();
        let key = inner.next_key;
        inner.next_key += 1;
        match (&route, probe) {
            (Some((slot, hashes)), Some(probe)) => {
                for hash in hashes {
                    inner.by_key.entry((*slot, *hash)).or_default().push(key);
                }
                match inner.slots.iter_mut().find(|(s, _, _)| s == slot) {
                    Some((_, _, users)) => *users += 1,
                    None => inner.slots.push((*slot, probe, 1)),
                }
            }
            _ => inner.unrouted.push(key),
        }
        inner.entries.insert(
            key,
            Entry {
                notify: Arc::clone(&notify),
                route: route.clone(),
                holds: Vec::new(),
            },
        );
        drop(inner);
        registry.watchers.fetch_add(1, Ordering::AcqRel);
        crate::observability::watchers(T::NAME, 1.0, registry.watchers.load(Ordering::Relaxed));
        Self {
            registry,
            key,
            notify,
            routed: route.is_some(),
        }
    }

    /// Waits for a batch that may affect the watcher (or for the fold's end).
    pub(crate) async fn notified(&self) {
        self.notify.notified().await;
    }

    /// Whether this registration is on `table` (false once the table was replaced).
    pub(crate) fn serves(&self, table: &Table<T>) -> bool {
        self.registry.serves(table)
    }

    /// Records the ids of the watcher's new result, so changes to those rows wake it.
    pub(crate) fn hold(&self, ids: impl Iterator<Item = T::Id>) {
        if !self.routed {
            return; // woken by every change anyway
        }
        let mut inner = self.registry.inner.lock();
        let inner = &mut *inner;
        let Some(entry) = inner.entries.get_mut(&self.key) else {
            return;
        };
        for id in entry.holds.drain(..) {
            unhold(&mut inner.holding, &id, self.key);
        }
        for id in ids {
            inner.holding.entry(id.clone()).or_default().push(self.key);
            entry.holds.push(id);
        }
    }
}

fn unhold<Id: std::hash::Hash + Eq>(holding: &mut HashMap<Id, Vec<u64>>, id: &Id, key: u64) {
    if let Some(keys) = holding.get_mut(id) {
        keys.retain(|k| *k != key);
        if keys.is_empty() {
            holding.remove(id);
        }
    }
}

fn unlist(keys: &mut Vec<u64>, key: u64) {
    if let Some(at) = keys.iter().position(|k| *k == key) {
        keys.swap_remove(at);
    }
}

impl<T: Entity> Drop for Registration<T> {
    fn drop(&mut self) {
        let mut inner = self.registry.inner.lock();
        let inner = &mut *inner;
        if let Some(entry) = inner.entries.remove(&self.key) {
            for id in &entry.holds {
                unhold(&mut inner.holding, id, self.key);
            }
            match entry.route {
                Some((slot, hashes)) => {
                    for hash in hashes {
                        if let Some(keys) = inner.by_key.get_mut(&(slot, hash)) {
                            unlist(keys, self.key);
                            if keys.is_empty() {
                                inner.by_key.remove(&(slot, hash));
                            }
                        }
                    }
                    if let Some(at) = inner.slots.iter().position(|(s, _, _)| *s == slot) {
                        inner.slots[at].2 -= 1;
                        if inner.slots[at].2 == 0 {
                            inner.slots.swap_remove(at);
                        }
                    }
                }
                None => unlist(&mut inner.unrouted, self.key),
            }
        }
        self.registry.watchers.fetch_sub(1, Ordering::AcqRel);
        crate::observability::watchers(
            T::NAME,
            -1.0,
            self.registry.watchers.load(Ordering::Relaxed),
        );
    }
}
