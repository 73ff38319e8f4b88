//! The lookup behind `where_f(n)` on an indexed integer field, held inline in its clause.
//!
//! The generic [`Lookup`](super::probe::Lookup) is shared behind an `Arc<dyn ..>`, because
//! a clause is generic over the entity only and its key can be of any type: one heap
//! allocation and one free per query, for a key of a few bytes. Integer keys are the most
//! common indexed keys (ids of other entities), and their types are a closed set, so
//! [`IntLookup`] names each one in an enum ([`IntKey`]) and `IndexProbe` holds it inline,
//! like the one-string-key lookup (`str_lookup.rs`).
//!
//! A scan may test the clause on every row, so its row loops must stay as fast as the
//! generic clause's, whose accessor the compiler inlines into them. An accessor stored as
//! a function pointer and called per row made such a scan 35% slower (3.5 → 4.7 ms over
//! 1M rows). So the lookup holds no accessor: it holds [`RowLoops`], the loops themselves,
//! compiled per field (its [`FieldOf`] marker) with the accessor inlined, one indirect
//! call per run of rows as for every clause.
//!
//! `Clauses::eq_indexed` and `Clauses::eq_ordered` take this path when the field's type is
//! one of these integers (a type comparison that folds away); every other key takes the
//! generic one. Both give the same rows, and route watchers alike (the key hashes as its
//! own type).

use std::any::Any;

use super::clauses::FieldOf;
use super::predicate::RowTest;
use super::probe::{Candidates, IndexProbe, MapKind, Probe, one_key};
use crate::entity::Entity;
use crate::table::Table;

/// Lookup of one integer key in the index at `slot`; its row test is "the field is the
/// key", run by `loops`.
pub(super) struct IntLookup<T> {
    slot: usize,
    kind: MapKind,
    key: IntKey,
    /// [`RowLoops::of`] for the field: one pointer, so the clause stays as small as a
    /// string lookup's and moves as cheaply.
    loops: fn() -> RowLoops<T>,
}

impl<T> Clone for IntLookup<T> {
    fn clone(&self) -> Self {
        Self {
            slot: self.slot,
            kind: self.kind,
            key: self.key,
            loops: self.loops,
        }
    }
}

/// The row test of one integer field against an [`IntKey`], and the loops applying it to
/// runs of rows ([`RowTest`]'s methods), compiled for that field by [`RowLoops::of`].
pub(super) struct RowLoops<T> {
    test: fn(&IntKey, &T) -> bool,
    select: for<'t> fn(&IntKey, &'t [T], &mut Vec<&'t T>),
    refine: fn(&IntKey, &mut Vec<&T>, usize),
    count: fn(&IntKey, &[T]) -> usize,
}

impl<T> RowLoops<T> {
    /// The loops for the field `M` (of type `F`), with its accessor inlined.
    fn of<F: 'static, M: FieldOf<T, F>>() -> Self {
        RowLoops {
            test: test::<T, F, M>,
            select: select::<T, F, M>,
            refine: refine::<T, F, M>,
            count: count::<T, F, M>,
        }
    }
}

fn test<T, F: 'static, M: FieldOf<T, F>>(key: &IntKey, row: &T) -> bool {
    key.get::<F>()
        .is_some_and(|key| IntKey::same((M::GET)(row), key))
}

fn select<'t, T, F: 'static, M: FieldOf<T, F>>(key: &IntKey, rows: &'t [T], out: &mut Vec<&'t T>) {
    let Some(key) = key.get::<F>() else { return };
    for row in rows {
        if IntKey::same((M::GET)(row), key) {
            out.push(row);
        }
    }
}

fn refine<T, F: 'static, M: FieldOf<T, F>>(key: &IntKey, selected: &mut Vec<&T>, from: usize) {
    let Some(key) = key.get::<F>() else {
        selected.truncate(from);
        return;
    };
    let mut kept = from;
    for at in from..selected.len() {
        let row = selected[at];
        if IntKey::same((M::GET)(row), key) {
            selected[kept] = row;
            kept += 1;
        }
    }
    selected.truncate(kept);
}

fn count<T, F: 'static, M: FieldOf<T, F>>(key: &IntKey, rows: &[T]) -> usize {
    let Some(key) = key.get::<F>() else { return 0 };
    rows.iter()
        .filter(|row| IntKey::same((M::GET)(row), key))
        .count()
}

/// Declares [`IntKey`] with one variant per integer type, and the code that matches on it.
/// (Not `u128`/`i128`: they would double the key's size and alignment for every clause;
/// such keys take the generic lookup.)
macro_rules! int_keys {
    ($($variant:ident($int:ty)),* $(,)?) => {
        /// A key of one of the integer types.
        #[derive(Clone, Copy)]
        enum IntKey {
            $($variant($int),)*
        }

        impl IntKey {
            /// `key`, if `F` is one of the integer types.
            #[inline]
            fn of<F: 'static>(key: &F) -> Option<Self> {
                let key: &dyn Any = key;
                $(
                    if let Some(key) = key.downcast_ref::<$int>() {
                        return Some(IntKey::$variant(*key));
                    }
                )*
                None
            }

            /// The key as an `F`, if it is one.
            #[inline(always)]
            fn get<F: 'static>(&self) -> Option<&F> {
                match self {
                    $(IntKey::$variant(key) => (key as &dyn Any).downcast_ref::<F>(),)*
                }
            }

            /// Whether `a == b`, for `F` one of the integer types (with `F` known, the
            /// comparisons of the other types fold away).
            #[inline(always)]
            fn same<F: 'static>(a: &F, b: &F) -> bool {
                let (a, b): (&dyn Any, &dyn Any) = (a, b);
                $(
                    if let (Some(a), Some(b)) = (a.downcast_ref::<$int>(), b.downcast_ref::<$int>()) {
                        return a == b;
                    }
                )*
                false
            }

            fn candidates<'t, T: Entity>(&self, table: &'t Table<T>, slot: usize, kind: MapKind)
                -> Candidates<'t>
            {
                match self {
                    $(IntKey::$variant(key) => one_key::<T, $int, $int>(table, slot, kind, key),)*
                }
            }

            fn route_key(&self) -> u64 {
                match self {
                    $(IntKey::$variant(key) => super::route::key_hash(key),)*
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
    /// A lookup of `key` in the index of kind `kind` at `slot`, over the field `M`, held
    /// inline; `None` if `F` is not an integer type.
    #[inline]
    pub(super) fn int_lookup<F: 'static, M: FieldOf<T, F>>(
        slot: usize,
        kind: MapKind,
        key: &F,
    ) -> Option<Self> {
        let key = IntKey::of(key)?;
        Some(Self::inline_int(IntLookup {
            slot,
            kind,
            key,
            loops: RowLoops::of::<F, M>,
        }))
    }
}

impl<T> RowTest<T> for IntLookup<T> {
    #[inline]
    fn pass(&self, row: &T) -> bool {
        ((self.loops)().test)(&self.key, row)
    }

    fn select<'t>(&self, rows: &'t [T], out: &mut Vec<&'t T>) {
        ((self.loops)().select)(&self.key, rows, out)
    }

    fn refine(&self, selected: &mut Vec<&T>, from: usize) {
        ((self.loops)().refine)(&self.key, selected, from)
    }

    fn count(&self, rows: &[T]) -> usize {
        ((self.loops)().count)(&self.key, rows)
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

#[cfg(test)]
mod tests {
    use super::IntKey;

    #[test]
    fn an_int_key_is_its_own_type_only() {
        let key = IntKey::of(&7u32).expect("u32 is an integer key");
        assert_eq!(key.get::<u32>(), Some(&7));
        assert_eq!(key.get::<u64>(), None);
        assert!(IntKey::of(&"7").is_none());
        assert!(IntKey::same(&-3i64, &-3i64) && !IntKey::same(&-3i64, &3i64));
        assert!(!IntKey::same(&"a", &"a"), "not an integer type");
    }
}
