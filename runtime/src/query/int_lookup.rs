//! The lookup behind `where_f(n)` on an indexed integer field, held inline in its clause.
//!
//! The generic [`Lookup`](super::probe::Lookup) is shared behind an `Arc<dyn ..>`, because
//! a clause is generic over the entity only and its key can be of any type: one heap
//! allocation and one free per query, for a key of a few bytes. Integer keys are the most
//! common indexed keys (ids of other entities), and their types are a closed set, so
//! [`IntLookup`] names each one in an enum ([`IntKey`]) and `IndexProbe` holds it inline,
//! like the one-string-key lookup (`str_lookup.rs`).
//!
//! `Clauses::eq_indexed` and `Clauses::eq_ordered` take this path when the field's type is
//! one of these integers (a type comparison on its accessor that folds away); every other
//! key takes the generic one. Both give the same rows, and route watchers alike (the key
//! hashes as its own type).

use std::any::Any;

use super::predicate::RowTest;
use super::probe::{Candidates, IndexProbe, MapKind, Probe, one_key};
use crate::entity::Entity;
use crate::table::Table;

/// Lookup of one integer key in the index at `slot`; its row test is "the field is the
/// key".
pub(super) struct IntLookup<T> {
    slot: usize,
    kind: MapKind,
    key: IntKey<T>,
}

impl<T> Clone for IntLookup<T> {
    fn clone(&self) -> Self {
        Self {
            slot: self.slot,
            kind: self.kind,
            key: self.key.clone(),
        }
    }
}

/// Declares [`IntKey`] with one variant per integer type (the key and the field's
/// accessor), and the code that matches on it.
macro_rules! int_keys {
    ($($variant:ident($int:ty)),* $(,)?) => {
        /// A key of one of the integer types, with the accessor of the field it is
        /// compared with.
        enum IntKey<T> {
            $($variant($int, fn(&T) -> &$int),)*
        }

        impl<T> Clone for IntKey<T> {
            fn clone(&self) -> Self {
                match self {
                    $(IntKey::$variant(key, get) => IntKey::$variant(*key, *get),)*
                }
            }
        }

        impl<T> IntKey<T> {
            /// `key` with the accessor `get`, if `F` is one of the integer types.
            #[inline]
            fn of<F: 'static>(key: &F, get: fn(&T) -> &F) -> Option<Self>
            where
                T: 'static,
            {
                let key: &dyn Any = key;
                let get: &dyn Any = &get;
                $(
                    if let (Some(key), Some(get)) =
                        (key.downcast_ref::<$int>(), get.downcast_ref::<fn(&T) -> &$int>())
                    {
                        return Some(IntKey::$variant(*key, *get));
                    }
                )*
                None
            }

            #[inline(always)]
            fn holds(&self, row: &T) -> bool {
                match self {
                    $(IntKey::$variant(key, get) => get(row) == key,)*
                }
            }

            fn candidates<'t>(&self, table: &'t Table<T>, slot: usize, kind: MapKind)
                -> Candidates<'t>
            where
                T: Entity,
            {
                match self {
                    $(IntKey::$variant(key, _) => {
                        one_key::<T, $int, $int>(table, slot, kind, key)
                    })*
                }
            }

            fn route_key(&self) -> u64 {
                match self {
                    $(IntKey::$variant(key, _) => super::route::key_hash(key),)*
                }
            }
        }
    };
}

int_keys!(
    U8(u8),
    U16(u16),
    U32(u32),
    U64(u64),
    Usize(usize),
    I8(i8),
    I16(i16),
    I32(i32),
    I64(i64),
    Isize(isize),
);

impl<T: 'static> IndexProbe<T> {
    /// A lookup of `key` in the index of kind `kind` at `slot`, over the field read by
    /// `get`, held inline; `None` if `F` is not an integer type.
    #[inline]
    pub(super) fn int_lookup<F: 'static>(
        slot: usize,
        kind: MapKind,
        key: &F,
        get: fn(&T) -> &F,
    ) -> Option<Self> {
        let key = IntKey::of(key, get)?;
        Some(Self::inline_int(IntLookup { slot, kind, key }))
    }
}

impl<T> RowTest<T> for IntLookup<T> {
    #[inline(always)]
    fn pass(&self, row: &T) -> bool {
        self.key.holds(row)
    }
}

impl<T> Probe<T> for IntLookup<T> {
    fn index(&self) -> usize {
        self.slot
    }

    fn candidates<'t>(&self, table: &'t Table<T>, _cap: usize) -> Candidates<'t>
    where
        T: Entity,
    {
        self.key.candidates(table, self.slot, self.kind)
    }

    fn route_keys(&self) -> Option<Vec<u64>> {
        Some(vec![self.key.route_key()])
    }
}
