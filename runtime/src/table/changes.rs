//! Change tracking for watchers: a table version and the ids changed recently.
//!
//! Every mutation bumps the version. While at least one watcher is registered,
//! the changed ids are also kept in a bounded ring, so a watcher can ask "which
//! rows changed since version v?" and skip re-running its query when none of them
//! can affect its result. With no watcher, a mutation costs one counter increment
//! and one relaxed load. A watcher further behind than the ring (or across a
//! `clear`) gets `None` and re-evaluates in full.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many changed ids are remembered for watchers.
const RING: usize = 4096;

pub(crate) struct ChangeLog<Id> {
    version: u64,
    watchers: AtomicUsize,
    ring: VecDeque<(u64, Id)>,
}

impl<Id> Default for ChangeLog<Id> {
    fn default() -> Self {
        Self {
            version: 0,
            watchers: AtomicUsize::new(0),
            ring: VecDeque::new(),
        }
    }
}

impl<Id: Clone> ChangeLog<Id> {
    /// Records that the row `id` changed (inserted, updated or removed).
    pub(crate) fn record(&mut self, id: &Id) {
        self.version += 1;
        if self.watchers.load(Ordering::Relaxed) > 0 {
            if self.ring.len() == RING {
                self.ring.pop_front();
            }
            self.ring.push_back((self.version, id.clone()));
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

    /// The ids changed after version `since`, or `None` if they are not all known.
    pub(crate) fn since(&self, since: u64) -> Option<impl Iterator<Item = &Id>> {
        let start = if since >= self.version {
            self.ring.len()
        } else {
            if self.ring.front()?.0 > since + 1 {
                return None;
            }
            self.ring.partition_point(|(v, _)| *v <= since)
        };
        Some(self.ring.range(start..).map(|(_, id)| id))
    }

    pub(crate) fn watchers(&self) -> usize {
        self.watchers.load(Ordering::Acquire)
    }

    pub(crate) fn add_watcher(&self) {
        self.watchers.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn remove_watcher(&self) {
        self.watchers.fetch_sub(1, Ordering::AcqRel);
    }
}
