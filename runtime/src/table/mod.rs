//! `Table<T>`: rows keyed by id, plus the secondary indexes the entity declares.
//!
//! # Row storage
//!
//! Rows live densely in a `Vec<T>` (`rows`); a hash table of slots keyed by the id of the
//! row at each slot (`slots`) finds a row by id in `O(1)`. It stores the 4-byte slot only,
//! not a copy of the id: a lookup compares the id in the row, which the caller reads next
//! anyway, so the table costs 5 bytes per bucket instead of `size_of::<Id>() + 4` rounded
//! up (17 for a `u64` id), and ids that own heap memory (`String`) are not stored twice. A scan walks the contiguous vector, so a query's predicate runs in
//! a tight, cache-friendly loop (see [`crate::query`]) instead of chasing tree nodes, and
//! index buckets hold slots (see `bucket`), so an index lookup reads its rows directly.
//! A removal moves the last row into the gap (`swap_remove`) and re-points that row's slot
//! in `slots` and in every index.
//!
//! The default query order is ascending id. While every row was inserted with a larger id
//! than the rows before it and none was moved out of place, the vector *is* in ascending id
//! order (`sorted`), and a scan emits its matches as it finds them, stopping early under a
//! `limit`. Otherwise (an out-of-order insert, a removal from the middle, an id change) a
//! query orders its matches by id itself (see `query::exec`), and [`Table::iter`] walks a
//! permutation of the slots in id order, computed on first use after a change and kept
//! until the next one (`id_order`). Loading a snapshot or cloning a table rebuilds it in
//! id order. Iteration and serialization yield rows in ascending id order either way, so
//! the encoded format (rows in ascending id order) does not depend on the storage.
//!
//! # Hashing and HashDoS
//!
//! `slots` (through `hasher`) and the hash indexes use foldhash, seeded at random per map: a per-process
//! random seed combined with a per-map seed, so two tables (and two runs) hash the same id
//! differently. Ids and indexed values may come from users (through events), so someone
//! may pick them to collide. foldhash is not a cryptographic hash; what its seeding
//! guarantees is that no set of inputs collides in every map, so colliding ids must be
//! found against one running process's secret seeds, from timing alone. A collision costs
//! time (longer probe sequences in that one map), never correctness: every lookup compares
//! the ids themselves. Nothing a query, an iteration or a snapshot returns depends on hash
//! order: no hash map is ever enumerated.
//!
//! Invariants, kept by the mutation paths below:
//! - `slots.len() == rows.len()`, and `slots` holds every slot `s` once, under the hash
//!   of `rows[s].id()`;
//! - `sorted` implies that the ids of `rows` are strictly ascending;
//! - `id_order`, when set, lists every slot once, in ascending id order of its row;
//! - the index invariant (see `index`).
//!
//! Every mutation goes through [`Table::insert`], [`Table::update`], [`Table::remove`] or
//! [`Table::clear`], and each of those keeps the index invariant in one place and records
//! the change for watches (`changes`).

pub(crate) mod bucket;
mod changes;
pub(crate) mod index;
mod iter;
mod load;
pub(crate) mod serde_impl;

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::OnceLock;

pub(crate) use bucket::{Bucket, Slot};
pub(crate) use index::{AnyIndex, HashIndex, Keys, OrderedIndex, Seeded};
pub use iter::Iter;

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
    /// The slots of `rows`, each under the hash (by `hasher`) of its row's id.
    slots: hashbrown::HashTable<Slot>,
    /// Hashes ids for `slots`.
    hasher: Seeded,
    /// Whether `rows` is in ascending id order.
    sorted: bool,
    /// The slots in ascending id order, when not `sorted` (reset by every mutation).
    id_order: OnceLock<Box<[Slot]>>,
    indexes: Vec<Box<dyn AnyIndex<T>>>,
    /// What changed, for watchers (not serialized, not compared).
    pub(crate) changes: ChangeLog<T>,
}

impl<T: Entity> Default for Table<T> {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            slots: hashbrown::HashTable::new(),
            hasher: Seeded::default(),
            sorted: true,
            id_order: OnceLock::new(),
            indexes: T::indexes(),
            changes: ChangeLog::default(),
        }
    }
}

impl<T: Entity + Clone> Clone for Table<T> {
    fn clone(&self) -> Self {
        let rows = self.iter().cloned().collect();
        // The rows of a table have distinct ids, and no more than a table holds.
        Self::from_rows(rows).unwrap_or_else(|_| unreachable!("a table's rows form a table"))
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

    /// Reserves room for `additional` more rows.
    pub fn reserve(&mut self, additional: usize) {
        self.rows.reserve(additional);
        let (rows, hasher) = (&self.rows, &self.hasher);
        self.slots
            .reserve(additional, |&s| hasher.hash_one(rows[s as usize].id()));
    }

    /// How many live watch streams follow this table.
    pub(crate) fn watchers(&self) -> usize {
        self.changes.watchers()
    }

    /// Inserts `row`, replacing and returning the row that had the same id.
    ///
    /// # Panics
    ///
    /// If the table already holds `u32::MAX` rows.
    pub fn insert(&mut self, row: T) -> Option<T> {
        let hash = self.hasher.hash_one(row.id());
        if let Some(slot) = self.find(hash, row.id()) {
            let at = slot as usize;
            self.changes.record(row.id(), Some(at));
            for index in &mut self.indexes {
                index.begin_update(&self.rows[at]);
            }
            let old = std::mem::replace(&mut self.rows[at], row);
            for index in &mut self.indexes {
                index.end_update(&self.rows[at], slot);
            }
            return Some(old);
        }
        let at = self.rows.len();
        let slot = Slot::try_from(at).expect("a table holds at most u32::MAX rows");
        self.changes.record(row.id(), Some(at));
        for index in &mut self.indexes {
            index.insert(&row, slot);
        }
        if self.rows.last().is_some_and(|last| last.id() > row.id()) {
            self.sorted = false;
        }
        self.id_order.take();
        self.rows.push(row);
        self.map(hash, slot);
        None
    }

    /// The row with this id.
    ///
    /// The id may be given in any borrowed form of the id type, as with
    /// [`HashMap::get`](std::collections::HashMap::get): `get("bolt")` for a `String` id.
    #[inline]
    pub fn get<Q>(&self, id: &Q) -> Option<&T>
    where
        T::Id: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let slot = self.find(self.hasher.hash_one(id), id)?;
        Some(&self.rows[slot as usize])
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
        Q: Hash + Eq + ?Sized,
    {
        if let Some(slot) = self.find(self.hasher.hash_one(id), id) {
            let id = self.rows[slot as usize].id().clone();
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
        Q: Hash + Eq + ?Sized,
    {
        self.get(id)
    }

    /// Whether a row has this id (in any borrowed form of the id type).
    pub fn contains<Q>(&self, id: &Q) -> bool
    where
        T::Id: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.find(self.hasher.hash_one(id), id).is_some()
    }

    /// Changes the row with this id in place and re-indexes the fields that changed.
    /// Returns `false` (and calls nothing) when no row has this id.
    ///
    /// If `change` alters the id, the row moves to its new id, replacing any row there.
    pub fn update(&mut self, id: &T::Id, change: impl FnOnce(&mut T)) -> bool {
        let old_hash = self.hasher.hash_one(id);
        let Some(slot) = self.find(old_hash, id) else {
            return false;
        };
        let at = slot as usize;
        self.changes.record(id, Some(at));
        for index in &mut self.indexes {
            index.begin_update(&self.rows[at]);
        }
        change(&mut self.rows[at]);
        for index in &mut self.indexes {
            index.end_update(&self.rows[at], slot);
        }
        if self.rows[at].id() == id {
            return true;
        }
        // The id changed: re-key the row, evicting whatever held the new id.
        self.id_order.take();
        let new_id = self.rows[at].id().clone();
        self.changes.record(&new_id, Some(at));
        self.unmap(old_hash, slot);
        let new_hash = self.hasher.hash_one(&new_id);
        // Another row holding the new id (this one is unmapped, so not found).
        let evicted = self.find(new_hash, &new_id);
        self.map(new_hash, slot);
        if let Some(evicted) = evicted {
            self.unmap(new_hash, evicted);
            self.take_slot(evicted);
        }
        let Some(at) = self.find(new_hash, &new_id).map(|s| s as usize) else {
            unreachable!("the re-keyed row is mapped");
        };
        if self.sorted && !self.in_order_at(at) {
            self.sorted = false;
        }
        true
    }

    /// Removes and returns the row with this id (in any borrowed form of the id type).
    pub fn remove<Q>(&mut self, id: &Q) -> Option<T>
    where
        T::Id: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(id);
        let slot = self.find(hash, id)?;
        self.unmap(hash, slot);
        let row = self.take_slot(slot);
        self.changes.record(row.id(), None);
        Some(row)
    }

    /// Removes every row.
    pub fn clear(&mut self) {
        self.changes.record_all();
        self.rows.clear();
        self.slots.clear();
        self.sorted = true;
        self.id_order.take();
        for index in &mut self.indexes {
            index.clear();
        }
    }

    /// Number of rows.
    #[inline]
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Rows in ascending id order.
    ///
    /// `O(1)` to start while the rows are stored in id order (see the module docs);
    /// otherwise the first call after a change sorts the slots by id once.
    pub fn iter(&self) -> Iter<'_, T> {
        if self.sorted {
            Iter::dense(&self.rows)
        } else {
            Iter::ordered(&self.rows, self.id_order())
        }
    }

    /// A typed query over this table: chain `where_*`, `order_by_*`, `limit`, then a terminal.
    pub fn query(&self) -> T::Query<&Self> {
        T::Query::from_parts(self, QueryCore::new())
    }

    /// Rows matching a reusable filter (`Order::filter().where_..()`), in its order,
    /// cloned. [`find_many_ref`](Self::find_many_ref) borrows them instead.
    pub fn find_many(&self, filter: &impl QueryBuilder<Entity = T>) -> Vec<T>
    where
        T: Clone,
    {
        filter.core().collect(self)
    }

    /// Rows matching a reusable filter, in its order, borrowed from the table (no row is
    /// copied).
    pub fn find_many_ref(&self, filter: &impl QueryBuilder<Entity = T>) -> Vec<&T> {
        filter.core().rows(self)
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
    #[inline]
    pub(crate) fn dense(&self) -> &[T] {
        &self.rows
    }

    /// Whether [`dense`](Self::dense) is in ascending id order.
    #[inline]
    pub(crate) fn is_sorted(&self) -> bool {
        self.sorted
    }

    /// The slots in ascending id order of their rows (for an unsorted table).
    fn id_order(&self) -> &[Slot] {
        self.id_order.get_or_init(|| {
            let mut order: Vec<Slot> = (0..self.rows.len() as Slot).collect();
            order.sort_unstable_by(|&a, &b| {
                self.rows[a as usize].id().cmp(self.rows[b as usize].id())
            });
            order.into_boxed_slice()
        })
    }

    /// Removes the row at `slot` (already gone from `slots`) from the indexes and the rows,
    /// by moving the last row into its place, and re-points the moved row's slot.
    fn take_slot(&mut self, slot: Slot) -> T {
        let at = slot as usize;
        for index in &mut self.indexes {
            index.remove(&self.rows[at], slot);
        }
        let row = self.rows.swap_remove(at);
        if let Some(moved) = self.rows.get(at) {
            let from = self.rows.len() as Slot;
            for index in &mut self.indexes {
                index.repoint(moved, from, slot);
            }
            // Whatever id the moved row has now, `slots` holds it as the old last slot.
            let hash = self.hasher.hash_one(moved.id());
            if let Some(mapped) = self.slots.find_mut(hash, |&s| s == from) {
                *mapped = slot;
            }
            self.sorted = false;
        }
        self.id_order.take();
        row
    }

    /// Checks the invariants of the module docs, for tests: `Err` names the first broken one.
    pub(crate) fn check_invariants(&self) -> Result<(), String> {
        if self.slots.len() != self.rows.len() {
            return Err(format!(
                "{} slots for {} rows",
                self.slots.len(),
                self.rows.len()
            ));
        }
        for (at, row) in self.rows.iter().enumerate() {
            let hash = self.hasher.hash_one(row.id());
            if self.find(hash, row.id()).map(|s| s as usize) != Some(at) {
                return Err(format!(
                    "row {:?} at slot {at} is not mapped there",
                    row.id()
                ));
            }
        }
        if self.sorted && !self.rows.is_sorted_by(|a, b| a.id() < b.id()) {
            return Err("marked sorted, but the ids are not ascending".into());
        }
        if let Some(order) = self.id_order.get() {
            let ids: Vec<&T::Id> = order.iter().map(|&s| self.rows[s as usize].id()).collect();
            if order.len() != self.rows.len() || !ids.is_sorted_by(|a, b| a < b) {
                return Err("the id order is stale".into());
            }
        }
        for index in &self.indexes {
            index.check(&self.rows)?;
        }
        Ok(())
    }

    /// The slot of the row with this id (whose hash is `hash`).
    #[inline]
    fn find<Q>(&self, hash: u64, id: &Q) -> Option<Slot>
    where
        T::Id: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let rows = &self.rows;
        self.slots
            .find(hash, |&s| rows[s as usize].id().borrow() == id)
            .copied()
    }

    /// Adds `slot` (absent) under `hash`, the hash of its row's id.
    fn map(&mut self, hash: u64, slot: Slot) {
        let (rows, hasher) = (&self.rows, &self.hasher);
        self.slots
            .insert_unique(hash, slot, |&s| hasher.hash_one(rows[s as usize].id()));
    }

    /// Drops `slot` from under `hash` (matched by the slot itself: the row's id may have
    /// changed since it was mapped).
    fn unmap(&mut self, hash: u64, slot: Slot) {
        if let Ok(entry) = self.slots.find_entry(hash, |&s| s == slot) {
            entry.remove();
        }
    }

    /// Whether the row at `at` sits between its neighbours in id order.
    fn in_order_at(&self, at: usize) -> bool {
        let id = self.rows[at].id();
        (at == 0 || self.rows[at - 1].id() < id)
            && self.rows.get(at + 1).is_none_or(|next| id < next.id())
    }
}

impl<'a, T: Entity> IntoIterator for &'a Table<T> {
    type Item = &'a T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}
