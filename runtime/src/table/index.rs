//! Secondary indexes: field value → the [`Bucket`] of slots of the rows holding it.
//!
//! Two kinds share one implementation ([`Index`]), differing in the map from key to
//! bucket ([`KeyMap`]):
//! - [`HashIndex`] (`#[entity(index)]`): a hash map, for equality, `_in` and `contains`;
//! - [`OrderedIndex`] (`#[entity(index(ordered))]`): a B-tree map, for equality, ranges
//!   and walking rows in key order (`order_by_f(..).limit(k)`).
//!
//! Invariant (kept by [`Table`](crate::Table)'s mutation paths, which call these methods
//! with each row's current slot): for every row `r` at slot `s` and every key `k` that the
//! index extracts from `r`, `map[k]` contains `s`, and `map` holds nothing else; no bucket
//! is empty. Buckets hold slots, not ids, so when a removal moves the last row into the
//! gap the table re-points that row's slot here ([`AnyIndex::repoint`]).
//!
//! Hash maps use foldhash with a random seed per map (see the `table` module on HashDoS).

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use super::bucket::{Bucket, Slot};
use crate::entity::Entity;

/// The seeded hasher of the table's hash maps.
pub(crate) type Seeded = foldhash::fast::RandomState;

/// How an index reads its keys from a row: one key per row, or one per element of a `Vec`.
pub enum Keys<T, K> {
    /// The field itself is the key.
    One(fn(&T) -> &K),
    /// Each element of the (`Vec`) field is a key.
    Each(fn(&T) -> &[K]),
}

impl<T, K> Clone for Keys<T, K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T, K> Copy for Keys<T, K> {}

impl<T, K> Keys<T, K> {
    fn of<'r>(&self, row: &'r T) -> &'r [K] {
        match self {
            Keys::One(get) => std::slice::from_ref(get(row)),
            Keys::Each(get) => get(row),
        }
    }
}

/// A secondary index a [`Table`](crate::Table) maintains; object-safe so one table holds
/// indexes over fields of different types.
pub trait AnyIndex<T: Entity>: Send + Sync {
    /// The indexed field's name.
    fn field(&self) -> &'static str;
    /// Files `row`, at `slot`, under each of its keys.
    fn insert(&mut self, row: &T, slot: Slot);
    /// Removes `row`, at `slot`, from each of its keys.
    fn remove(&mut self, row: &T, slot: Slot);
    /// `row` moved from slot `from` to slot `to`.
    fn repoint(&mut self, row: &T, from: Slot, to: Slot);
    /// Remembers `row`'s keys before an in-place update.
    fn begin_update(&mut self, row: &T);
    /// Re-files `row` (at `slot`) after an in-place update, touching the map only if a key
    /// changed.
    fn end_update(&mut self, row: &T, slot: Slot);
    /// Drops every entry.
    fn clear(&mut self);
    /// Replaces every entry with those of `rows`, each at its position (a bulk load: each
    /// key is filed once, with its whole bucket, instead of growing it row by row).
    fn load(&mut self, rows: &[T]);
    /// An empty index of the same shape.
    fn empty(&self) -> Box<dyn AnyIndex<T>>;
    /// Appends the routing hashes of `row`'s keys to `out` (see `query::route`).
    fn key_hashes(&self, row: &T, out: &mut Vec<u64>);
    /// For typed lookups (downcast to a `HashIndex` or an `OrderedIndex`).
    fn as_any(&self) -> &dyn Any;
    /// Checks the index invariant against `rows` (for tests): `Err` says what is wrong.
    fn check(&self, rows: &[T]) -> Result<(), String>;
}

/// The map from key to bucket an [`Index`] keeps.
pub trait KeyMap<K>: Default + Send + Sync + 'static {
    /// The bucket of `key`.
    fn bucket(&self, key: &K) -> Option<&Bucket>;
    /// The bucket of `key`, to change.
    fn bucket_mut(&mut self, key: &K) -> Option<&mut Bucket>;
    /// Adds `key` (absent) with `bucket`.
    fn add(&mut self, key: K, bucket: Bucket);
    /// Drops `key`.
    fn drop_key(&mut self, key: &K);
    /// Drops every key.
    fn clear(&mut self);
    /// The map of `keyed`: every (key, slot) pair, in ascending slot order (a row whose
    /// `Vec` field holds a key twice gives the pair twice, and it is filed once). The
    /// pairs are read from the rows as they are needed (`Clone`: a build may read them
    /// twice), not collected first; about `pairs` of them (a hint for what to reserve).
    fn build<'k>(keyed: impl Iterator<Item = (&'k K, Slot)> + Clone, pairs: usize) -> Self
    where
        K: 'k;
    /// Every key's bucket, in no particular order (for invariant checks only).
    fn buckets(&self) -> Box<dyn Iterator<Item = &Bucket> + '_>;
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> KeyMap<K> for HashMap<K, Bucket, Seeded> {
    #[inline]
    fn bucket(&self, key: &K) -> Option<&Bucket> {
        self.get(key)
    }
    #[inline]
    fn bucket_mut(&mut self, key: &K) -> Option<&mut Bucket> {
        self.get_mut(key)
    }
    fn add(&mut self, key: K, bucket: Bucket) {
        self.insert(key, bucket);
    }
    fn drop_key(&mut self, key: &K) {
        self.remove(key);
    }
    fn clear(&mut self) {
        HashMap::clear(self);
    }
    fn build<'k>(keyed: impl Iterator<Item = (&'k K, Slot)> + Clone, hint: usize) -> Self
    where
        K: 'k,
    {
        // Number each distinct key (borrowed) in order of first sight and note which
        // key every pair has; then place all slots key by key in one vector (a counting
        // sort, stable: a key's slots stay ascending) and file each key once, with a
        // bucket made from its run. One hash probe per pair and one allocation per
        // bucket, instead of a vector per key grown slot by slot.
        let mut numbers: HashMap<&K, u32, Seeded> = HashMap::default();
        let mut keys: Vec<&K> = Vec::new();
        // Per key: its slot count, then (after the prefix sum) where its run ends.
        let mut ends: Vec<usize> = Vec::new();
        // Per key: the last slot filed, so a row whose `Vec` field holds a key twice
        // files it once (pairs come in ascending slot order).
        let mut last: Vec<Slot> = Vec::new();
        let mut pairs: Vec<(u32, Slot)> = Vec::with_capacity(hint);
        for (key, slot) in keyed {
            let number = *numbers.entry(key).or_insert_with(|| {
                keys.push(key);
                ends.push(0);
                last.push(Slot::MAX);
                // At most one key per pair, and pairs are slots of a table (< u32::MAX).
                (keys.len() - 1) as u32
            });
            let at = number as usize;
            if last[at] != slot {
                last[at] = slot;
                ends[at] += 1;
                pairs.push((number, slot));
            }
        }
        drop(numbers);
        let mut total = 0;
        for end in &mut ends {
            total += *end;
            *end = total;
        }
        // Fill each run from its end backwards, walking the pairs backwards: the
        // slots of a run come out ascending.
        let mut runs: Vec<Slot> = vec![0; total];
        let mut fill = ends.clone();
        for &(number, slot) in pairs.iter().rev() {
            let at = &mut fill[number as usize];
            *at -= 1;
            runs[*at] = slot;
        }
        drop(pairs);
        let mut map = HashMap::with_capacity_and_hasher(keys.len(), Seeded::default());
        let mut start = 0;
        for (key, end) in keys.into_iter().zip(ends) {
            if let Some(bucket) = Bucket::from_sorted(&runs[start..end]) {
                map.insert(key.clone(), bucket);
            }
            start = end;
        }
        map
    }
    fn buckets(&self) -> Box<dyn Iterator<Item = &Bucket> + '_> {
        Box::new(self.values())
    }
}

impl<K: Ord + Clone + Send + Sync + 'static> KeyMap<K> for BTreeMap<K, Bucket> {
    #[inline]
    fn bucket(&self, key: &K) -> Option<&Bucket> {
        self.get(key)
    }
    #[inline]
    fn bucket_mut(&mut self, key: &K) -> Option<&mut Bucket> {
        self.get_mut(key)
    }
    fn add(&mut self, key: K, bucket: Bucket) {
        self.insert(key, bucket);
    }
    fn drop_key(&mut self, key: &K) {
        self.remove(key);
    }
    fn clear(&mut self) {
        BTreeMap::clear(self);
    }
    fn build<'k>(keyed: impl Iterator<Item = (&'k K, Slot)> + Clone, hint: usize) -> Self
    where
        K: 'k,
    {
        // Keys that already arrive in order (timestamps of rows in id order) are grouped
        // straight from the rows; others are collected and sorted first (stable: the slots
        // of one key stay ascending). The map is then built bottom-up from the groups.
        if keyed.clone().is_sorted_by(|a, b| a.0 <= b.0) {
            return Self::grouped(keyed);
        }
        let mut sorted: Vec<(&K, Slot)> = Vec::with_capacity(hint);
        sorted.extend(keyed);
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        Self::grouped(sorted.into_iter())
    }
    fn buckets(&self) -> Box<dyn Iterator<Item = &Bucket> + '_> {
        Box::new(self.values())
    }
}

/// Building an ordered index's map from its pairs in key order.
trait Grouped<K> {
    /// The map of `keyed`, (key, slot) pairs in ascending key order, and for one key in
    /// ascending slot order.
    fn grouped<'k>(keyed: impl Iterator<Item = (&'k K, Slot)>) -> Self
    where
        K: 'k;
}

impl<K: Ord + Clone> Grouped<K> for BTreeMap<K, Bucket> {
    fn grouped<'k>(keyed: impl Iterator<Item = (&'k K, Slot)>) -> Self
    where
        K: 'k,
    {
        let mut keyed = keyed.peekable();
        let groups = std::iter::from_fn(|| {
            let (key, first) = keyed.next()?;
            if keyed.peek().is_none_or(|(next, _)| *next != key) {
                // A key of one row (the usual case of nearly unique keys): no vector.
                return Some((key.clone(), Bucket::One(first)));
            }
            let mut slots = vec![first];
            while let Some((_, slot)) = keyed.next_if(|(next, _)| *next == key) {
                if slots.last() != Some(&slot) {
                    slots.push(slot);
                }
            }
            Some((key.clone(), Bucket::from_sorted(&slots)?))
        });
        groups.collect()
    }
}

/// An index over the keys of one field, in the map `M`.
pub struct Index<T: Entity, K, M> {
    field: &'static str,
    keys: Keys<T, K>,
    map: M,
    /// The keys of the row being updated (see [`AnyIndex::begin_update`]).
    pending: Vec<K>,
}

/// A hash index (`#[entity(index)]`).
pub type HashIndex<T, K> = Index<T, K, HashMap<K, Bucket, Seeded>>;

/// An ordered index (`#[entity(index(ordered))]`).
pub type OrderedIndex<T, K> = Index<T, K, BTreeMap<K, Bucket>>;

impl<T: Entity, K: Clone + PartialEq + Send + Sync + 'static, M: KeyMap<K>> Index<T, K, M> {
    /// An empty index of `field`, reading keys with `keys`.
    pub fn new(field: &'static str, keys: Keys<T, K>) -> Self {
        Self {
            field,
            keys,
            map: M::default(),
            pending: Vec::new(),
        }
    }

    /// The slots of the rows holding `key`; `None` when there are none.
    #[inline]
    pub(crate) fn get(&self, key: &K) -> Option<&Bucket> {
        self.map.bucket(key)
    }

    /// The map from key to bucket.
    pub(crate) fn map(&self) -> &M {
        &self.map
    }

    fn add(&mut self, key: &K, slot: Slot) {
        match self.map.bucket_mut(key) {
            Some(bucket) => bucket.insert(slot),
            None => self.map.add(key.clone(), Bucket::One(slot)),
        }
    }

    fn drop_slot(&mut self, key: &K, slot: Slot) {
        if let Some(bucket) = self.map.bucket_mut(key)
            && bucket.remove(slot)
        {
            self.map.drop_key(key);
        }
    }
}

impl<T, K, M> AnyIndex<T> for Index<T, K, M>
where
    T: Entity,
    K: Hash + Clone + PartialEq + Send + Sync + 'static,
    M: KeyMap<K>,
{
    fn field(&self) -> &'static str {
        self.field
    }

    fn insert(&mut self, row: &T, slot: Slot) {
        let keys = self.keys;
        for key in keys.of(row) {
            self.add(key, slot);
        }
    }

    fn remove(&mut self, row: &T, slot: Slot) {
        let keys = self.keys;
        for key in keys.of(row) {
            self.drop_slot(key, slot);
        }
    }

    fn repoint(&mut self, row: &T, from: Slot, to: Slot) {
        let keys = self.keys;
        for key in keys.of(row) {
            if let Some(bucket) = self.map.bucket_mut(key) {
                bucket.repoint(from, to);
            }
        }
    }

    fn begin_update(&mut self, row: &T) {
        self.pending.clear();
        self.pending.extend_from_slice(self.keys.of(row));
    }

    fn end_update(&mut self, row: &T, slot: Slot) {
        let keys = self.keys;
        let new_keys = keys.of(row);
        if new_keys == self.pending.as_slice() {
            return;
        }
        let old_keys = std::mem::take(&mut self.pending);
        for key in &old_keys {
            self.drop_slot(key, slot);
        }
        for key in new_keys {
            self.add(key, slot);
        }
        self.pending = old_keys;
        self.pending.clear();
    }

    fn clear(&mut self) {
        self.map.clear();
    }

    fn load(&mut self, rows: &[T]) {
        let keys = self.keys;
        let keyed = rows
            .iter()
            .enumerate()
            .flat_map(move |(at, row)| keys.of(row).iter().map(move |key| (key, at as Slot)));
        self.map = M::build(keyed, rows.len());
    }

    fn empty(&self) -> Box<dyn AnyIndex<T>> {
        Box::new(Self::new(self.field, self.keys))
    }

    fn key_hashes(&self, row: &T, out: &mut Vec<u64>) {
        out.extend(self.keys.of(row).iter().map(crate::query::key_hash));
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn check(&self, rows: &[T]) -> Result<(), String> {
        let mut filed = 0usize;
        for (at, row) in rows.iter().enumerate() {
            let keys = self.keys.of(row);
            for (i, key) in keys.iter().enumerate() {
                if keys[..i].contains(key) {
                    continue;
                }
                filed += 1;
                let slot = at as Slot;
                if !self
                    .map
                    .bucket(key)
                    .is_some_and(|bucket| bucket.contains(slot))
                {
                    return Err(format!(
                        "index `{}`: slot {at} missing under its key",
                        self.field
                    ));
                }
            }
        }
        let mut held = 0usize;
        for bucket in self.map.buckets() {
            let slots: Vec<Slot> = bucket.iter().collect();
            if slots.is_empty() || !slots.is_sorted_by(|a, b| a < b) {
                return Err(format!(
                    "index `{}`: a bucket is empty or unsorted",
                    self.field
                ));
            }
            held += slots.len();
        }
        if held != filed {
            return Err(format!(
                "index `{}` holds {held} entries for {filed} row keys",
                self.field
            ));
        }
        Ok(())
    }
}

/// A boxed index keyed by the field itself (for the derive).
#[doc(hidden)]
pub fn index_one<T: Entity, M, K: crate::query::fields::IndexKey<T, M, ()>>(
    field: &'static str,
    get: fn(&T) -> &K,
) -> Box<dyn AnyIndex<T>> {
    K::new_index(field, Keys::One(get))
}

/// A boxed ordered index for `#[entity(index(ordered))]` (for the derive).
#[doc(hidden)]
pub fn index_ordered<T: Entity, M, K: crate::query::fields::OrderedKey<T, M, ()>>(
    field: &'static str,
    get: fn(&T) -> &K,
) -> Box<dyn AnyIndex<T>> {
    K::new_ordered_index(field, Keys::One(get))
}

/// A boxed index keyed by each element of a `Vec` field (for the derive).
#[doc(hidden)]
pub fn index_each<T: Entity, M, K: crate::query::fields::IndexKey<T, M, ()>>(
    field: &'static str,
    get: fn(&T) -> &[K],
) -> Box<dyn AnyIndex<T>> {
    K::new_index(field, Keys::Each(get))
}
