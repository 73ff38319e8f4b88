//! Watch routing: which index keys a query's rows must carry.
//!
//! A watch stream should wake only when a changed row could change its result. For a
//! query with an index-capable clause (an indexed `where_f`, `where_f_in` or
//! `where_f_contains`) every matching row carries one of that clause's keys in the
//! clause's index, so a changed row whose keys hash elsewhere cannot have entered the
//! result. Keys are compared by a fixed 64-bit hash: a collision only costs a spurious
//! wake-up, never a missed one.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher, Hash};

use super::QueryCore;
use super::core::IndexProbe;
use crate::entity::Entity;
use crate::table::Table;

/// The hash routing uses for index keys (fixed keys: equal keys hash equal everywhere).
pub(crate) fn key_hash<K: Hash>(key: &K) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(key)
}

impl<T> QueryCore<T> {
    /// The first index-capable clause: every row this query matches carries one of its keys.
    pub(crate) fn route_probe(&self) -> Option<IndexProbe<T>> {
        self.clauses.iter().find_map(|clause| clause.probe.clone())
    }
}

impl<T> IndexProbe<T> {
    /// The index slot, and the hashes of the keys this probe looks up.
    pub(crate) fn route_keys(&self) -> (usize, Vec<u64>) {
        self.0.route_keys()
    }

    /// Appends the hashes of `row`'s keys in this probe's index to `out`.
    pub(crate) fn row_key_hashes(&self, table: &Table<T>, row: &T, out: &mut Vec<u64>)
    where
        T: Entity,
    {
        self.0.row_key_hashes(table, row, out);
    }
}
