//! Change tracking for watchers: a table version and the ids changed recently.
//!
//! Every mutation bumps the version. While at least one watcher is registered,
//! the changed ids are also kept in a bounded ring, so a watcher can ask "which
//! rows changed since version v?" and skip re-running its query when none of them
//! can affect its result. With no watcher, a mutation costs one counter increment
//! and one relaxed load. A watcher further behind than the ring (or across a
//! `clear`) gets `None` and re-evaluates in full.
//!
//! The table also carries the watch registry of its watchers (see `watch::registry`),
//! so a table that is replaced wholesale drops its registry and the watchers notice they
//! must re-register on the new one.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crate::entity::Entity;
use crate::watch::Registry;

/// How many changed ids are remembered for watchers.
const RING: usize = 4096;

pub(crate) struct ChangeLog<T: Entity> {
    version: u64,
    /// Live watchers of this table (shared with its watch registry).
    watchers: Arc<AtomicUsize>,
    ring: VecDeque<Change<T::Id>>,
    registry: OnceLock<Arc<Registry<T>>>,
}

/// One recorded change: the table version it made, the row's id, and the slot the row
/// sat in right after the change (`None` once removed). The slot is a hint that spares
/// routing an id lookup; rows move (a removal swaps the last row into the gap), so a
/// reader checks the id at the slot before trusting it ([`Table::changed_row`]).
///
/// [`Table::changed_row`]: super::Table::changed_row
pub(crate) struct Change<Id> {
    version: u64,
    pub(crate) id: Id,
    pub(crate) slot: Option<usize>,
}

impl<T: Entity> Default for ChangeLog<T> {
    fn default() -> Self {
        Self {
            version: 0,
            watchers: Arc::new(AtomicUsize::new(0)),
            ring: VecDeque::new(),
            registry: OnceLock::new(),
        }
    }
}

impl<T: Entity> ChangeLog<T> {
    /// Records that the row `id` changed (inserted or updated: it is now at `slot`; or
    /// removed: `None`).
    pub(crate) fn record(&mut self, id: &T::Id, slot: Option<usize>) {
        self.version += 1;
        if self.watchers.load(Ordering::Relaxed) > 0 {
            if self.ring.len() == RING {
                self.ring.pop_front();
            }
            self.ring.push_back(Change {
                version: self.version,
                id: id.clone(),
                slot,
            });
        }
    }

    /// Records that every row may have changed.
    pub(crate) fn record_all(&mut self) {
        self.version += 1;
        self.ring.clear();
    }

    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// The changes after version `since`, or `None` if they are not all known.
    pub(crate) fn since(&self, since: u64) -> Option<impl Iterator<Item = &Change<T::Id>>> {
        let start = if since >= self.version {
            self.ring.len()
        } else {
            if self.ring.front()?.version > since + 1 {
                return None;
            }
            self.ring.partition_point(|change| change.version <= since)
        };
        Some(self.ring.range(start..))
    }

    /// The watch registry of this table, created by `init` on first use.
    pub(crate) fn registry(&self, init: impl FnOnce() -> Arc<Registry<T>>) -> &Arc<Registry<T>> {
        self.registry.get_or_init(init)
    }

    /// The watch registry, if a watcher ever registered on this table.
    pub(crate) fn registry_if_any(&self) -> Option<&Arc<Registry<T>>> {
        self.registry.get()
    }

    pub(crate) fn watchers(&self) -> usize {
        self.watchers.load(Ordering::Acquire)
    }

    /// The shared count of live watchers, for the watch registry to keep.
    pub(crate) fn watcher_count(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.watchers)
    }
}
