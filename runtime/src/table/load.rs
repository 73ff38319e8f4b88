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
//!
//! The id map and each index read the rows and nothing else, so a large load
//! ([`Table::from_rows_parallel`], used when decoding) builds each index on a thread of
//! its own while the calling thread builds the id map.

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

/// Below this many rows a load builds the id map and the indexes on the calling thread:
/// a thread costs more than it saves.
const PARALLEL_MIN: usize = 1 << 16;

impl<T: Entity> Table<T> {
    /// The table of `rows`, each at its position in the vector (see the module docs).
    pub(crate) fn from_rows(rows: Vec<T>) -> Result<Self, LoadError<T::Id>> {
        Self::load(rows, |rows, sorted, indexes| {
            for index in indexes {
                index.load(rows);
            }
            slots_of(rows, sorted)
        })
    }

    /// As [`Table::from_rows`], building each index on a thread of its own while this one
    /// builds the id map (for large tables; the result is the same).
    pub(crate) fn from_rows_parallel(rows: Vec<T>) -> Result<Self, LoadError<T::Id>>
    where
        T: Send + Sync,
    {
        if rows.len() < PARALLEL_MIN {
            return Self::from_rows(rows);
        }
        Self::load(rows, |rows, sorted, indexes| {
            // Each index is a task, taken by the first free thread: one started per
            // index, and this one once the id map is built (so a thread that cannot be
            // started only makes the load slower).
            let count = indexes.len();
            let tasks = std::sync::Mutex::new(indexes.iter_mut().collect::<Vec<_>>());
            let work = || loop {
                let task = tasks
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .pop();
                match task {
                    Some(index) => index.load(rows),
                    None => break,
                }
            };
            std::thread::scope(|scope| {
                for _ in 0..count {
                    let started = std::thread::Builder::new()
                        .name("foldkit-index".into())
                        .spawn_scoped(scope, work);
                    if started.is_err() {
                        break;
                    }
                }
                let slots = slots_of(rows, sorted);
                work();
                slots
            })
        })
    }

    /// The table of `rows`, whose id map and indexes `build` makes (given the rows and
    /// whether their ids ascend, it fills every index and returns the id map).
    fn load(
        mut rows: Vec<T>,
        build: impl FnOnce(&[T], bool, &mut [Box<dyn AnyIndex<T>>]) -> Result<Slots, LoadError<T::Id>>,
    ) -> Result<Self, LoadError<T::Id>> {
        if Slot::try_from(rows.len()).is_err() {
            return Err(LoadError::TooMany(rows.len()));
        }
        let sorted = rows.is_sorted_by(|a, b| a.id() < b.id());
        rows.shrink_to_fit();
        let mut indexes: Vec<Box<dyn AnyIndex<T>>> = T::indexes();
        let (slots, hasher) = build(&rows, sorted, &mut indexes)?;
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

/// A table's id map and its hasher.
type Slots = (hashbrown::HashTable<Slot>, Seeded);

/// The id map of `rows` (at most `Slot::MAX` of them; `sorted`: their ids strictly
/// ascend): each row's slot under the hash of its id; a second row with one id is an
/// error.
fn slots_of<T: Entity>(rows: &[T], sorted: bool) -> Result<Slots, LoadError<T::Id>> {
    let hasher = Seeded::default();
    let mut slots = hashbrown::HashTable::with_capacity(rows.len());
    if sorted {
        // Strictly ascending ids are distinct (the usual case: a table encodes in id
        // order): no probe for a duplicate.
        for (at, row) in rows.iter().enumerate() {
            slots.insert_unique(hasher.hash_one(row.id()), at as Slot, |&s| {
                hasher.hash_one(rows[s as usize].id())
            });
        }
        return Ok((slots, hasher));
    }
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
    Ok((slots, hasher))
}
