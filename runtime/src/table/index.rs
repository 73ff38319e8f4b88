//! Secondary hash indexes: field value → ids of the rows holding it.
//!
//! Invariant (kept by [`Table`](crate::Table)'s mutation paths): for every row `r` in the
//! table and every key `k` that the index extracts from `r`, `map[k]` contains `r.id()`, and
//! `map` holds nothing else; no bucket is empty. Buckets are `BTreeSet`s so that an index
//! lookup yields ids in ascending order (the default query order) and so that removing one
//! id from a large bucket is `O(log n)`.

use std::any::Any;
use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

use crate::entity::Entity;

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
    /// Adds `row` under each of its keys.
    fn insert(&mut self, row: &T);
    /// Removes `row` from each of its keys.
    fn remove(&mut self, row: &T);
    /// Remembers `row`'s keys before an in-place update.
    fn begin_update(&mut self, row: &T);
    /// Re-indexes after an in-place update, touching the map only if a key or the id changed.
    fn end_update(&mut self, old_id: &T::Id, row: &T);
    /// Drops every entry.
    fn clear(&mut self);
    /// An empty index of the same shape.
    fn empty(&self) -> Box<dyn AnyIndex<T>>;
    /// For typed lookups (downcast to [`HashIndex`]).
    fn as_any(&self) -> &dyn Any;
}

/// A hash index over the keys of one field.
pub struct HashIndex<T: Entity, K> {
    field: &'static str,
    keys: Keys<T, K>,
    map: HashMap<K, BTreeSet<T::Id>>,
    pending: Vec<K>,
}

impl<T: Entity, K: Hash + Eq + Clone + Send + Sync + 'static> HashIndex<T, K> {
    /// An empty index of `field`, reading keys with `keys`.
    pub fn new(field: &'static str, keys: Keys<T, K>) -> Self {
        Self {
            field,
            keys,
            map: HashMap::new(),
            pending: Vec::new(),
        }
    }

    /// The ids of the rows holding `key`, ascending; `None` when there are none.
    pub fn get(&self, key: &K) -> Option<&BTreeSet<T::Id>> {
        self.map.get(key)
    }

    /// The keys this index files `row` under.
    pub(crate) fn keys_of<'r>(&self, row: &'r T) -> &'r [K] {
        self.keys.of(row)
    }

    fn add(&mut self, key: &K, id: &T::Id) {
        if let Some(ids) = self.map.get_mut(key) {
            ids.insert(id.clone());
        } else {
            self.map.insert(key.clone(), BTreeSet::from([id.clone()]));
        }
    }

    fn drop_id(&mut self, key: &K, id: &T::Id) {
        if let Some(ids) = self.map.get_mut(key) {
            ids.remove(id);
            if ids.is_empty() {
                self.map.remove(key);
            }
        }
    }
}

impl<T: Entity, K: Hash + Eq + Clone + Send + Sync + 'static> AnyIndex<T> for HashIndex<T, K> {
    fn field(&self) -> &'static str {
        self.field
    }

    fn insert(&mut self, row: &T) {
        let keys = self.keys;
        for key in keys.of(row) {
            self.add(key, row.id());
        }
    }

    fn remove(&mut self, row: &T) {
        let keys = self.keys;
        for key in keys.of(row) {
            self.drop_id(key, row.id());
        }
    }

    fn begin_update(&mut self, row: &T) {
        self.pending.clear();
        self.pending.extend_from_slice(self.keys.of(row));
    }

    fn end_update(&mut self, old_id: &T::Id, row: &T) {
        let keys = self.keys;
        let new_keys = keys.of(row);
        if old_id == row.id() && new_keys == self.pending.as_slice() {
            return;
        }
        let old_keys = std::mem::take(&mut self.pending);
        for key in &old_keys {
            self.drop_id(key, old_id);
        }
        for key in new_keys {
            self.add(key, row.id());
        }
        self.pending = old_keys;
        self.pending.clear();
    }

    fn clear(&mut self) {
        self.map.clear();
    }

    fn empty(&self) -> Box<dyn AnyIndex<T>> {
        Box::new(Self::new(self.field, self.keys))
    }

    fn as_any(&self) -> &dyn Any {
        self
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

/// A boxed index for `#[entity(index(ordered))]` (for the derive): a hash index whose key
/// type is checked to be totally ordered (the ordered index itself is not built yet).
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
