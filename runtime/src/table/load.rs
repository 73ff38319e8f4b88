//! Bulk load: a table built from all its rows at once (decoding a snapshot, cloning).
//!
//! Inserting the rows one by one costs, per row, a probe of the id → slot table that grows
//! by rehashing, a probe of every index, a bucket grown by one slot (a new allocation for
//! a `Few`), and a change record. Loading them together instead fills the id → slot map
//! once at its final capacity (ids are not copied into it), files each index key once with its whole bucket
//! ([`AnyIndex::load`]: an ordered index sorts its keys once and builds its B-tree bottom
//! up), and trims the row vector's spare capacity, so a restored table holds no slack.
//! The result is the same table the inserts would have built (same rows at the same
//! slots, same buckets), which `check_invariants` and the tests compare.

use std::hash::BuildHasher;
use std::sync::OnceLock;

use super::{AnyIndex, ChangeLog, Seeded, Slot, Table};
use crate::entity::Entity;

/// Why rows cannot form a table.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LoadError<Id> {
    /// Two rows have this id.
    Duplicate(Id),
    /// More rows than a table holds (`u32::MAX`).
    TooMany(usize),
}

impl<T: Entity> Table<T> {
    /// The table of `rows`, each at its position in the vector (see the module docs).
    pub(crate) fn from_rows(mut rows: Vec<T>) -> Result<Self, LoadError<T::Id>> {
        if Slot::try_from(rows.len()).is_err() {
            return Err(LoadError::TooMany(rows.len()));
        }
        let hasher = Seeded::default();
        let mut slots = hashbrown::HashTable::with_capacity(rows.len());
        for (at, row) in rows.iter().enumerate() {
            let hash = hasher.hash_one(row.id());
            let entry = slots.entry(
                hash,
                |&s: &Slot| rows[s as usize].id() == row.id(),
                |&s| hasher.hash_one(rows[s as usize].id()),
            );
            match entry {
                hashbrown::hash_table::Entry::Occupied(_) => {
                    return Err(LoadError::Duplicate(row.id().clone()));
                }
                hashbrown::hash_table::Entry::Vacant(vacant) => {
                    vacant.insert(at as Slot);
                }
            }
        }
        let sorted = rows.is_sorted_by(|a, b| a.id() < b.id());
        rows.shrink_to_fit();
        let mut indexes: Vec<Box<dyn AnyIndex<T>>> = T::indexes();
        for index in &mut indexes {
            index.load(&rows);
        }
        let mut changes = ChangeLog::default();
        changes.record_all();
        Ok(Table {
            rows,
            slots,
            hasher,
            sorted,
            id_order: OnceLock::new(),
            indexes,
            changes,
        })
    }
}
