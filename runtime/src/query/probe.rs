//! Index probes: how an index-capable clause names its candidate rows from a table's
//! hash index (for the planner), and the keys it stands for (for watch routing).

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::entity::Entity;
use crate::table::{HashIndex, Table};

/// A clause's index lookup, built by [`IndexKey::probe`]. Not public API.
#[doc(hidden)]
pub struct IndexProbe<T>(pub(super) Arc<dyn Probe<T>>);

impl<T> Clone for IndexProbe<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> IndexProbe<T> {
    /// Looks up each distinct key of `keys` in the hash index at `slot`.
    pub(crate) fn lookup<K: std::hash::Hash + Eq + Clone + Send + Sync + 'static>(
        slot: usize,
        mut keys: Vec<K>,
    ) -> Self {
        if keys.len() == 1 {
            let key = keys.pop().expect("one key");
            return Self::lookup_one(slot, key);
        }
        let mut seen = std::collections::HashSet::with_capacity(keys.len());
        keys.retain(|key| seen.insert(key.clone()));
        Self(Arc::new(IndexLookup { slot, keys }))
    }

    /// Looks `key` up in the hash index at `slot`.
    pub(crate) fn lookup_one<K: std::hash::Hash + Eq + Clone + Send + Sync + 'static>(
        slot: usize,
        key: K,
    ) -> Self {
        Self(Arc::new(IndexLookupOne { slot, key }))
    }
}

/// The id buckets an index probe names: one (the usual case, without allocating), or
/// several.
pub(super) enum Buckets<'t, Id> {
    /// One bucket.
    One(&'t BTreeSet<Id>),
    /// Any number of buckets.
    Many(Vec<&'t BTreeSet<Id>>),
}

impl<'t, Id> Buckets<'t, Id> {
    /// The buckets as a slice.
    pub(super) fn as_slice(&self) -> &[&'t BTreeSet<Id>] {
        match self {
            Buckets::One(bucket) => std::slice::from_ref(bucket),
            Buckets::Many(buckets) => buckets,
        }
    }
}

/// Names the rows a clause can match from an index: the union of some id buckets.
pub(super) trait Probe<T>: Send + Sync {
    /// The buckets (pairwise disjoint), or `None` when the index is not there.
    fn buckets<'t>(&self, table: &'t Table<T>) -> Option<Buckets<'t, T::Id>>
    where
        T: Entity;
    /// For watch routing: the index slot, and the hashes of the keys looked up.
    fn route_keys(&self) -> (usize, Vec<u64>);
    /// For watch routing: the hashes of `row`'s keys in the index at this probe's slot.
    fn row_key_hashes(&self, table: &Table<T>, row: &T, out: &mut Vec<u64>)
    where
        T: Entity;
}

/// The hash index at `slot` of `table`, if its keys are `K`.
fn hash_index<T: Entity, K: std::hash::Hash + Eq + Clone + Send + Sync + 'static>(
    table: &Table<T>,
    slot: usize,
) -> Option<&HashIndex<T, K>> {
    table
        .indexes()
        .get(slot)?
        .as_any()
        .downcast_ref::<HashIndex<T, K>>()
}

/// Lookup of several keys in the hash index at `slot`.
struct IndexLookup<K> {
    slot: usize,
    keys: Vec<K>,
}

impl<T, K: std::hash::Hash + Eq + Clone + Send + Sync + 'static> Probe<T> for IndexLookup<K> {
    fn buckets<'t>(&self, table: &'t Table<T>) -> Option<Buckets<'t, T::Id>>
    where
        T: Entity,
    {
        let index = hash_index::<T, K>(table, self.slot)?;
        Some(Buckets::Many(
            self.keys.iter().filter_map(|key| index.get(key)).collect(),
        ))
    }

    fn route_keys(&self) -> (usize, Vec<u64>) {
        (
            self.slot,
            self.keys.iter().map(super::route::key_hash).collect(),
        )
    }

    fn row_key_hashes(&self, table: &Table<T>, row: &T, out: &mut Vec<u64>)
    where
        T: Entity,
    {
        row_key_hashes::<T, K>(table, self.slot, row, out);
    }
}

/// For watch routing: the hashes of `row`'s keys in the hash index at `slot`.
fn row_key_hashes<T: Entity, K: std::hash::Hash + Eq + Clone + Send + Sync + 'static>(
    table: &Table<T>,
    slot: usize,
    row: &T,
    out: &mut Vec<u64>,
) {
    if let Some(index) = hash_index::<T, K>(table, slot) {
        out.extend(index.keys_of(row).iter().map(super::route::key_hash));
    }
}

/// Lookup of one key in the hash index at `slot`.
struct IndexLookupOne<K> {
    slot: usize,
    key: K,
}

impl<T, K: std::hash::Hash + Eq + Clone + Send + Sync + 'static> Probe<T> for IndexLookupOne<K> {
    fn buckets<'t>(&self, table: &'t Table<T>) -> Option<Buckets<'t, T::Id>>
    where
        T: Entity,
    {
        let index = hash_index::<T, K>(table, self.slot)?;
        Some(match index.get(&self.key) {
            Some(bucket) => Buckets::One(bucket),
            None => Buckets::Many(Vec::new()),
        })
    }

    fn route_keys(&self) -> (usize, Vec<u64>) {
        (self.slot, vec![super::route::key_hash(&self.key)])
    }

    fn row_key_hashes(&self, table: &Table<T>, row: &T, out: &mut Vec<u64>)
    where
        T: Entity,
    {
        row_key_hashes::<T, K>(table, self.slot, row, out);
    }
}
