//! `Table<T>`: rows keyed by id, plus the secondary indexes the entity declares.
//!
//! Rows live in a `BTreeMap` keyed by id: lookups are `O(log n)`, iteration is in ascending
//! id order (the default query order, so an unordered query never sorts), and serialization
//! is deterministic, which keeps snapshots byte-identical across runs.
//!
//! Every mutation goes through [`Table::insert`], [`Table::update`] or [`Table::remove`], and
//! each of those keeps the index invariant (see [`HashIndex`]) in one place, `index`/`unindex` below:
//! that is where change tracking for watches hooks in.

mod changes;
mod index;
mod serde_impl;

use std::collections::BTreeMap;
use std::fmt;

pub use index::{AnyIndex, HashIndex, Keys, index_each, index_one};

pub(crate) use changes::ChangeLog;

use crate::entity::Entity;
use crate::query::{QueryBuilder, QueryCore};

/// Rows of one entity type, with the secondary indexes it declares.
pub struct Table<T: Entity> {
    rows: BTreeMap<T::Id, T>,
    indexes: Vec<Box<dyn AnyIndex<T>>>,
    /// What changed, for watchers (not serialized, not compared).
    pub(crate) changes: ChangeLog<T::Id>,
}

impl<T: Entity> Default for Table<T> {
    fn default() -> Self {
        Self {
            rows: BTreeMap::new(),
            indexes: T::indexes(),
            changes: ChangeLog::default(),
        }
    }
}

impl<T: Entity + Clone> Clone for Table<T> {
    fn clone(&self) -> Self {
        let mut table = Self::default();
        for row in self.rows.values() {
            table.insert(row.clone());
        }
        table
    }
}

impl<T: Entity + fmt::Debug> fmt::Debug for Table<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.rows.iter()).finish()
    }
}

impl<T: Entity + PartialEq> PartialEq for Table<T> {
    fn eq(&self, other: &Self) -> bool {
        self.rows == other.rows
    }
}

impl<T: Entity> Table<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many live watch streams follow this table.
    pub fn watchers(&self) -> usize {
        self.changes.watchers()
    }

    /// Inserts `row`, replacing and returning the row that had the same id.
    pub fn insert(&mut self, row: T) -> Option<T> {
        self.changes.record(row.id());
        let old = self.rows.remove(row.id());
        if let Some(old) = &old {
            self.unindex(old);
        }
        self.index(&row);
        self.rows.insert(row.id().clone(), row);
        old
    }

    /// The row with this id.
    pub fn get(&self, id: &T::Id) -> Option<&T> {
        self.rows.get(id)
    }

    /// The row with this id (same as [`get`](Self::get); the name matches the query terminals).
    pub fn find_unique(&self, id: &T::Id) -> Option<&T> {
        self.rows.get(id)
    }

    /// Whether a row has this id.
    pub fn contains(&self, id: &T::Id) -> bool {
        self.rows.contains_key(id)
    }

    /// Changes the row with this id in place and re-indexes the fields that changed.
    /// Returns `false` (and calls nothing) when no row has this id.
    ///
    /// If `change` alters the id, the row moves to its new id, replacing any row there.
    pub fn update(&mut self, id: &T::Id, change: impl FnOnce(&mut T)) -> bool {
        let Some(row) = self.rows.get_mut(id) else {
            return false;
        };
        self.changes.record(id);
        for index in &mut self.indexes {
            index.begin_update(row);
        }
        change(row);
        if row.id() != id {
            self.changes.record(row.id());
        }
        if row.id() == id {
            for index in &mut self.indexes {
                index.end_update(id, row);
            }
            return true;
        }
        // The id changed: move the row, evicting whatever held the new id.
        let Some(row) = self.rows.remove(id) else {
            return true;
        };
        if let Some(evicted) = self.rows.remove(row.id()) {
            self.unindex(&evicted);
        }
        for index in &mut self.indexes {
            index.end_update(id, &row);
        }
        self.rows.insert(row.id().clone(), row);
        true
    }

    /// Removes and returns the row with this id.
    pub fn remove(&mut self, id: &T::Id) -> Option<T> {
        let row = self.rows.remove(id)?;
        self.changes.record(id);
        self.unindex(&row);
        Some(row)
    }

    /// Removes every row.
    pub fn clear(&mut self) {
        self.changes.record_all();
        self.rows.clear();
        for index in &mut self.indexes {
            index.clear();
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Rows in ascending id order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator {
        self.rows.values()
    }

    /// A typed query over this table: chain `where_*`, `order_by_*`, `limit`, then a terminal.
    pub fn query(&self) -> T::Query<&Self> {
        T::Query::from_parts(self, QueryCore::new())
    }

    /// Rows matching a reusable filter (`Order::filter().where_..()`), in its order.
    pub fn find_many(&self, filter: &impl QueryBuilder<Entity = T>) -> Vec<T>
    where
        T: Clone,
    {
        filter.core().collect(self)
    }

    /// Number of rows matching a reusable filter (after its offset and limit).
    pub fn count_where(&self, filter: &impl QueryBuilder<Entity = T>) -> usize {
        filter.core().count(self)
    }

    /// Whether any row matches a reusable filter.
    pub fn exists_where(&self, filter: &impl QueryBuilder<Entity = T>) -> bool {
        filter.core().exists(self)
    }

    /// The secondary indexes, in declaration order (used by the query planner).
    pub(crate) fn indexes(&self) -> &[Box<dyn AnyIndex<T>>] {
        &self.indexes
    }

    /// The row map (used by the query executor).
    pub(crate) fn rows(&self) -> &BTreeMap<T::Id, T> {
        &self.rows
    }

    fn index(&mut self, row: &T) {
        for index in &mut self.indexes {
            index.insert(row);
        }
    }

    fn unindex(&mut self, row: &T) {
        for index in &mut self.indexes {
            index.remove(row);
        }
    }
}

impl<'a, T: Entity> IntoIterator for &'a Table<T> {
    type Item = &'a T;
    type IntoIter = std::collections::btree_map::Values<'a, T::Id, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.rows.values()
    }
}
