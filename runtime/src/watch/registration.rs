//! A watcher's registration on a table's [`Registry`]: its route (or none), the ids it
//! holds, and its wake-up; dropping it unregisters.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::Notify;

use super::Selector;
use super::registry::{Entry, Registry};
use super::routes::Routes;
use crate::entity::Entity;
use crate::query::{IndexProbe, QueryCore};
use crate::table::Table;

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
        let registry = Registry::of(table, select, routes);
        let notify = Arc::new(Notify::new());
        let probe = core.route_probe();
        let route = probe.as_ref().and_then(IndexProbe::route_keys);
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
