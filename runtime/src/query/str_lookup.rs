//! The lookup behind `where_f(&str)` on an indexed `String` field, holding its key without
//! allocating a `String`.
//!
//! The generic [`Lookup`](super::probe::Lookup) holds its key as the field's type, so a
//! `&str` argument would first be copied into a `String`: one heap allocation and one free
//! per query. [`StrLookup`] keeps a short key inline ([`HeldStr`], an `ArrayString`) and
//! looks it up as a `&str` (`String: Borrow<str>`, and `str` hashes and orders as `String`
//! does, in the index's map and in watch routing). Under callgrind, that took a 10-row
//! indexed equality over 1M rows from 1,340 to 1,059 instructions (the `eq_probe`
//! example; the hand-written index there: 558).
//!
//! `Clauses::eq_indexed` and `Clauses::eq_ordered` take this path when the argument is a
//! borrowed string (`IntoValue::as_str_key`) and the field is a `String` (its accessor's
//! type says so); every other argument takes the generic one. Both give the same rows.

use std::collections::{BTreeMap, HashMap};

use arrayvec::ArrayString;

use super::predicate::RowTest;
use super::probe::{Candidates, IndexProbe, Probe, typed};
use crate::entity::Entity;
use crate::table::{Bucket, Seeded, Table};

/// The longest key held inline; a longer one is held in a `Box<str>`.
const INLINE: usize = 38;

/// A string, inline when it is at most [`INLINE`] bytes long.
enum HeldStr {
    /// A short string.
    Inline(ArrayString<INLINE>),
    /// A long one.
    Heap(Box<str>),
}

impl HeldStr {
    fn new(key: &str) -> Self {
        match ArrayString::from(key) {
            Ok(short) => HeldStr::Inline(short),
            Err(_) => HeldStr::Heap(key.into()),
        }
    }

    #[inline]
    fn as_str(&self) -> &str {
        match self {
            HeldStr::Inline(key) => key,
            HeldStr::Heap(key) => key,
        }
    }
}

/// A map from `String` keys to buckets that can be probed with a `&str`.
pub(super) trait StrKeyed: crate::table::index::KeyMap<String> {
    /// The bucket of `key`.
    fn bucket_of_str(&self, key: &str) -> Option<&Bucket>;
}

impl StrKeyed for HashMap<String, Bucket, Seeded> {
    #[inline]
    fn bucket_of_str(&self, key: &str) -> Option<&Bucket> {
        self.get(key)
    }
}

impl StrKeyed for BTreeMap<String, Bucket> {
    #[inline]
    fn bucket_of_str(&self, key: &str) -> Option<&Bucket> {
        self.get(key)
    }
}

/// Lookup of one string key in the index at `slot`, whose map is `M`; its row test is
/// "the field read by `get` is `key`".
struct StrLookup<T, M> {
    slot: usize,
    key: HeldStr,
    get: fn(&T) -> &String,
    map: std::marker::PhantomData<fn() -> M>,
}

impl<T> IndexProbe<T> {
    /// A lookup of `key` in the hash index at `slot` over the `String` field read by `get`.
    pub(super) fn hash_lookup_str(slot: usize, key: &str, get: fn(&T) -> &String) -> Self
    where
        T: Entity,
    {
        Self::str_lookup::<HashMap<String, Bucket, Seeded>>(slot, key, get)
    }

    /// A lookup of `key` in the ordered index at `slot` over the `String` field read by
    /// `get`.
    pub(super) fn ordered_lookup_str(slot: usize, key: &str, get: fn(&T) -> &String) -> Self
    where
        T: Entity,
    {
        Self::str_lookup::<BTreeMap<String, Bucket>>(slot, key, get)
    }

    fn str_lookup<M: StrKeyed>(slot: usize, key: &str, get: fn(&T) -> &String) -> Self
    where
        T: Entity,
    {
        Self(std::sync::Arc::new(StrLookup::<T, M> {
            slot,
            key: HeldStr::new(key),
            get,
            map: std::marker::PhantomData,
        }))
    }
}

impl<T, M: 'static> RowTest<T> for StrLookup<T, M> {
    #[inline(always)]
    fn pass(&self, row: &T) -> bool {
        (self.get)(row).as_str() == self.key.as_str()
    }
}

impl<T: 'static, M: StrKeyed> Probe<T> for StrLookup<T, M> {
    fn index(&self) -> usize {
        self.slot
    }

    fn candidates<'t>(&self, table: &'t Table<T>, _cap: usize) -> Candidates<'t>
    where
        T: Entity,
    {
        let Some(index) = typed::<T, String, M>(table, self.slot) else {
            return Candidates::Unavailable;
        };
        Candidates::of_key(index.map().bucket_of_str(self.key.as_str()))
    }

    fn route_keys(&self) -> Option<Vec<u64>> {
        Some(vec![super::route::key_hash(&self.key.as_str())])
    }
}

#[cfg(test)]
mod tests {
    use super::{HeldStr, INLINE};
    use crate::query::key_hash;

    #[test]
    fn a_held_string_gives_back_its_bytes_inline_or_not() {
        for key in [
            String::new(),
            "customer-42".to_owned(),
            "é".repeat(INLINE / 2),
            "x".repeat(INLINE),
            "x".repeat(INLINE + 1),
            "ü".repeat(300),
        ] {
            let held = HeldStr::new(&key);
            assert_eq!(held.as_str(), key);
            assert_eq!(
                matches!(held, HeldStr::Inline { .. }),
                key.len() <= INLINE,
                "{key:?}"
            );
            assert_eq!(key_hash(&held.as_str()), key_hash(&key));
        }
    }
}
