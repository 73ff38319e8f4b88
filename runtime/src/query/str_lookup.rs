//! The lookup behind `where_f(&str)` on an indexed `String` field: it holds its key
//! without allocating a `String`, and lives inside its clause without an `Arc`.
//!
//! The generic [`Lookup`](super::probe::Lookup) holds its key as the field's type, so a
//! `&str` argument would first be copied into a `String`, and the lookup is shared behind
//! an `Arc<dyn ..>`: two heap allocations and two frees per query. [`StrLookup`] keeps a
//! short key inline ([`HeldStr`], an `ArrayString`), looks it up as a `&str` (`String:
//! Borrow<str>`, and `str` hashes and orders as `String` does, in the index's map and in
//! watch routing), and is a concrete type (the index kind is a field, not a type
//! parameter), so `IndexProbe` holds it inline. Under callgrind, a 10-row indexed
//! equality over 1M rows went from 1,340 to 1,059 instructions with the inline key, and
//! to about 820 with the inline probe (the `eq_probe` example; the hand-written index
//! there: about 570).
//!
//! `Clauses::eq_indexed` and `Clauses::eq_ordered` take this path when the argument is a
//! borrowed string (`IntoValue::as_str_key`) and the field is a `String` (its accessor's
//! type says so); every other argument takes the generic one. Both give the same rows.

use arrayvec::ArrayString;

use super::predicate::RowTest;
use super::probe::{Candidates, IndexProbe, MapKind, Probe, one_key};
use crate::entity::Entity;
use crate::table::Table;

/// The longest key held inline; a longer one is held in a `Box<str>`.
const INLINE: usize = 38;

/// A string, inline when it is at most [`INLINE`] bytes long.
#[derive(Clone)]
enum HeldStr {
    /// A short string.
    Inline(ArrayString<INLINE>),
    /// A long one.
    Heap(Box<str>),
}

impl HeldStr {
    #[inline]
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

/// Lookup of one string key in the index at `slot`; its row test is "the field read by
/// `get` is `key`". Small and concrete, so a clause holds it inline
/// ([`IndexProbe::inline_str`]).
pub(super) struct StrLookup<T> {
    slot: usize,
    kind: MapKind,
    key: HeldStr,
    get: fn(&T) -> &String,
}

impl<T> Clone for StrLookup<T> {
    fn clone(&self) -> Self {
        Self {
            slot: self.slot,
            kind: self.kind,
            key: self.key.clone(),
            get: self.get,
        }
    }
}

impl<T> IndexProbe<T> {
    /// A lookup of `key` in the hash index at `slot` over the `String` field read by `get`.
    pub(super) fn hash_lookup_str(slot: usize, key: &str, get: fn(&T) -> &String) -> Self {
        Self::str_lookup(slot, MapKind::Hash, key, get)
    }

    /// A lookup of `key` in the ordered index at `slot` over the `String` field read by
    /// `get`.
    pub(super) fn ordered_lookup_str(slot: usize, key: &str, get: fn(&T) -> &String) -> Self {
        Self::str_lookup(slot, MapKind::Ordered, key, get)
    }

    fn str_lookup(slot: usize, kind: MapKind, key: &str, get: fn(&T) -> &String) -> Self {
        Self::inline_str(StrLookup {
            slot,
            kind,
            key: HeldStr::new(key),
            get,
        })
    }
}

impl<T> RowTest<T> for StrLookup<T> {
    #[inline(always)]
    fn pass(&self, row: &T) -> bool {
        (self.get)(row).as_str() == self.key.as_str()
    }
}

impl<T> Probe<T> for StrLookup<T> {
    fn index(&self) -> usize {
        self.slot
    }

    fn candidates<'t>(&self, table: &'t Table<T>, _cap: usize) -> Candidates<'t>
    where
        T: Entity,
    {
        one_key::<T, String, str>(table, self.slot, self.kind, self.key.as_str())
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
