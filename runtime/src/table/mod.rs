//! `Table<T>`: rows keyed by id, plus the secondary indexes the entity declares.
//!
//! # Row storage
//!
//! Rows live densely in a `Vec<T>` (`rows`); a `BTreeMap` from id to slot (`slots`) finds a
//! row by id in `O(log n)` and lists the slots in ascending id order. A scan walks the
//! contiguous vector, so a query's predicate runs in a tight, cache-friendly loop (see
//! [`crate::query`]) instead of chasing tree nodes.
//!
//! The default query order is ascending id. While every row was inserted with a larger id
//! than the rows before it and none was moved out of place, the vector *is* in ascending id
//! order (`sorted`), and a scan emits its matches as it finds them, stopping early under a
//! `limit`. Otherwise (an out-of-order insert, a removal from the middle, an id change) a
//! scan sorts its matching slots by id, `O(m log m)` in the `m` matches. Loading a snapshot or
//! cloning a table rebuilds it in id order. [`Table::iter`] and serialization always go
//! through `slots`, so they yield rows in ascending id order either way, and the encoded
//! format (rows in ascending id order) does not depend on the storage.
//!
//! Invariants, kept by the mutation paths below:
//! - `slots.len() == rows.len()`, and `slots[rows[s].id()] == s` for every slot `s`;
//! - `sorted` implies that the ids of `rows` are strictly ascending;
//! - the index invariant (see [`HashIndex`]).
//!
//! Every mutation goes through [`Table::insert`], [`Table::update`], [`Table::remove`] or
//! [`Table::clear`], and each of those keeps the index invariant in one place,
//! `index`/`unindex` below, and records the change for watches (`changes`).

mod changes;
pub(crate) mod index;
mod serde_impl;

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::collections::btree_map;
use std::fmt;
use std::iter::FusedIterator;

pub(crate) use index::{AnyIndex, HashIndex, Keys};

pub(crate) use changes::{Change, ChangeLog};

use crate::entity::Entity;
use crate::query::{QueryBuilder, QueryCore};

/// Rows of one entity type, with the secondary indexes it declares.
///
/// ```
/// use foldkit::prelude::*;
///
/// #[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// struct Account {
///     #[entity(id)]
///     id: u64,
///     #[entity(index)]
///     owner: String,
///     balance: u64,
/// }
///
/// let mut accounts = Table::<Account>::new();
/// for (id, owner, balance) in [(1, "alice", 50), (2, "bob", 700), (3, "alice", 900)] {
///     accounts.insert(Account { id, owner: owner.into(), balance });
/// }
/// // Re-indexes only what changed.
/// accounts.update(&1, |a| a.balance += 25);
///
/// // The planner answers `owner` from its hash index; `balance` is scanned.
/// let rich_alice = accounts
///     .query()
///     .where_owner("alice")
///     .where_balance_gte(500u64)
///     .collect();
/// assert_eq!(rich_alice.iter().map(|a| a.id).collect::<Vec<_>>(), [3]);
///
/// // A reusable filter, and the terminals on the table.
/// let alice = Account::filter().where_owner("alice");
/// assert_eq!(accounts.count_where(&alice), 2);
/// assert_eq!(accounts.get(&1).map(|a| a.balance), Some(75));
/// let by_balance = accounts.query().order_by_balance(Desc).ids();
/// assert_eq!(by_balance, [3, 2, 1]);
/// ```
pub struct Table<T: Entity> {
    /// The rows, densely; see the module docs for their order.
    rows: Vec<T>,
    /// Id → slot in `rows`.
    slots: BTreeMap<T::Id, usize>,
    /// Whether `rows` is in ascending id order.
    sorted: bool,
    indexes: Vec<Box<dyn AnyIndex<T>>>,
    /// What changed, for watchers (not serialized, not compared).
    pub(crate) changes: ChangeLog<T>,
}

impl<T: Entity> Default for Table<T> {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            slots: BTreeMap::new(),
            sorted: true,
            indexes: T::indexes(),
            changes: ChangeLog::default(),
        }
    }
}

impl<T: Entity + Clone> Clone for Table<T> {
    fn clone(&self) -> Self {
        let mut table = Self::default();
        table.rows.reserve_exact(self.len());
        for row in self.iter() {
            table.insert(row.clone());
        }
        table
    }
}

impl<T: Entity + fmt::Debug> fmt::Debug for Table<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|row| (row.id(), row)))
            .finish()
    }
}

impl<T: Entity + PartialEq> PartialEq for Table<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .zip(other.iter())
                .all(|(a, b)| a.id() == b.id() && a == b)
    }
}

impl<T: Entity> Table<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many live watch streams follow this table.
    pub(crate) fn watchers(&self) -> usize {
        self.changes.watchers()
    }

    /// Inserts `row`, replacing and returning the row that had the same id.
    pub fn insert(&mut self, row: T) -> Option<T> {
        if let Some(&slot) = self.slots.get(row.id()) {
            self.changes.record(row.id(), Some(slot));
            let old = std::mem::replace(&mut self.rows[slot], row);
            self.unindex(&old);
            for index in &mut self.indexes {
                index.insert(&self.rows[slot]);
            }
            return Some(old);
        }
        self.changes.record(row.id(), Some(self.rows.len()));
        self.index(&row);
        if self.rows.last().is_some_and(|last| last.id() > row.id()) {
            self.sorted = false;
        }
        self.slots.insert(row.id().clone(), self.rows.len());
        self.rows.push(row);
        None
    }

    /// The row with this id.
    ///
    /// The id may be given in any borrowed form of the id type, as with
    /// [`BTreeMap::get`]: `get("bolt")` for a `String` id.
    pub fn get<Q>(&self, id: &Q) -> Option<&T>
    where
        T::Id: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.slots.get(id).map(|&slot| &self.rows[slot])
    }

    /// Inserts the row with this id if there is none (made by `make`), then applies
    /// `change` to it, in one step; returns whether the row was inserted.
    ///
    /// `change` runs on a new row too, so "create with defaults, then apply" is one
    /// call. The indexes are updated once.
    ///
    /// ```
    /// use foldkit::prelude::*;
    ///
    /// #[derive(Entity, Clone, Debug)]
    /// struct Stock { #[entity(id)] sku: String, qty: u32 }
    ///
    /// let mut stock = Table::<Stock>::new();
    /// let new = || Stock { sku: "bolt".into(), qty: 0 };
    /// assert!(stock.upsert("bolt", new, |s| s.qty += 5)); // inserted
    /// assert!(!stock.upsert("bolt", new, |s| s.qty += 2)); // updated
    /// assert_eq!(stock.get("bolt").map(|s| s.qty), Some(7));
    /// ```
    ///
    /// # Panics
    ///
    /// If `make` returns a row whose id is not `id` (a bug in the caller).
    pub fn upsert<Q>(
        &mut self,
        id: &Q,
        make: impl FnOnce() -> T,
        change: impl FnOnce(&mut T),
    ) -> bool
    where
        T::Id: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        if let Some(&slot) = self.slots.get(id) {
            let id = self.rows[slot].id().clone();
            self.update(&id, change);
            return false;
        }
        let mut row = make();
        assert!(
            row.id().borrow() == id,
            "Table::upsert: `make` returned a row with another id"
        );
        change(&mut row);
        self.insert(row);
        true
    }

    /// The row a recorded change is about, if it still exists: looked up at the slot the
    /// change recorded when the row is still there (ids are unique, so a row at that slot
    /// with that id is the one), else by id.
    pub(crate) fn changed_row(&self, change: &Change<T::Id>) -> Option<&T> {
        match change.slot.and_then(|slot| self.rows.get(slot)) {
            Some(row) if row.id() == &change.id => Some(row),
            _ => self.get(&change.id),
        }
    }

    /// Old name of [`get`](Self::get).
    #[doc(hidden)]
    #[deprecated(note = "use `Table::get`")]
    pub fn find_unique<Q>(&self, id: &Q) -> Option<&T>
    where
        T::Id: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.get(id)
    }

    /// Whether a row has this id (in any borrowed form of the id type).
    pub fn contains<Q>(&self, id: &Q) -> bool
    where
        T::Id: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.slots.contains_key(id)
    }

    /// Changes the row with this id in place and re-indexes the fields that changed.
    /// Returns `false` (and calls nothing) when no row has this id.
    ///
    /// If `change` alters the id, the row moves to its new id, replacing any row there.
    pub fn update(&mut self, id: &T::Id, change: impl FnOnce(&mut T)) -> bool {
        let Some(&slot) = self.slots.get(id) else {
            return false;
        };
        self.changes.record(id, Some(slot));
        let row = &mut self.rows[slot];
        for index in &mut self.indexes {
            index.begin_update(row);
        }
        change(row);
        if row.id() == id {
            for index in &mut self.indexes {
                index.end_update(id, row);
            }
            return true;
        }
        self.changes.record(row.id(), Some(slot));
        // The id changed: re-key the row, evicting whatever held the new id.
        let new_id = row.id().clone();
        self.slots.remove(id);
        if let Some(evicted) = self.slots.insert(new_id.clone(), slot) {
            let evicted = self.take_slot(evicted);
            self.unindex(&evicted);
        }
        let slot = self.slots[&new_id];
        for index in &mut self.indexes {
            index.end_update(id, &self.rows[slot]);
        }
        if self.sorted && !self.in_order_at(slot) {
            self.sorted = false;
        }
        true
    }

    /// Removes and returns the row with this id (in any borrowed form of the id type).
    pub fn remove<Q>(&mut self, id: &Q) -> Option<T>
    where
        T::Id: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let slot = self.slots.remove(id)?;
        let row = self.take_slot(slot);
        self.changes.record(row.id(), None);
        self.unindex(&row);
        Some(row)
    }

    /// Removes every row.
    pub fn clear(&mut self) {
        self.changes.record_all();
        self.rows.clear();
        self.slots.clear();
        self.sorted = true;
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
        self.into_iter()
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

    /// The rows in storage order (used by the query executor to scan).
    pub(crate) fn dense(&self) -> &[T] {
        &self.rows
    }

    /// Whether [`dense`](Self::dense) is in ascending id order.
    pub(crate) fn is_sorted(&self) -> bool {
        self.sorted
    }

    /// Removes the row at `slot` (already gone from `slots`) by moving the last row into its
    /// place, and re-points the moved row's slot.
    fn take_slot(&mut self, slot: usize) -> T {
        let row = self.rows.swap_remove(slot);
        if let Some(moved) = self.rows.get(slot) {
            // Whatever id the moved row has now, `slots` maps it to the old last slot.
            if let Some(at) = self.slots.get_mut(moved.id()) {
                *at = slot;
            }
            self.sorted = false;
        }
        row
    }

    /// Whether the row at `slot` sits between its neighbours in id order.
    fn in_order_at(&self, slot: usize) -> bool {
        let id = self.rows[slot].id();
        (slot == 0 || self.rows[slot - 1].id() < id)
            && self.rows.get(slot + 1).is_none_or(|next| id < next.id())
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

/// The rows of a [`Table`] in ascending id order (from [`Table::iter`] or `&table`).
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct Iter<'a, T: Entity> {
    slots: btree_map::Values<'a, T::Id, usize>,
    rows: &'a [T],
}

impl<T: Entity + fmt::Debug> fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

impl<T: Entity> Clone for Iter<'_, T> {
    fn clone(&self) -> Self {
        Self {
            slots: self.slots.clone(),
            rows: self.rows,
        }
    }
}

impl<'a, T: Entity> Iterator for Iter<'a, T> {
    type Item = &'a T;

    #[inline]
    fn next(&mut self) -> Option<&'a T> {
        self.slots.next().map(|&slot| &self.rows[slot])
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.slots.size_hint()
    }
}

impl<T: Entity> DoubleEndedIterator for Iter<'_, T> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        self.slots.next_back().map(|&slot| &self.rows[slot])
    }
}

impl<T: Entity> ExactSizeIterator for Iter<'_, T> {}

impl<T: Entity> FusedIterator for Iter<'_, T> {}

impl<'a, T: Entity> IntoIterator for &'a Table<T> {
    type Item = &'a T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        Iter {
            slots: self.slots.values(),
            rows: &self.rows,
        }
    }
}
