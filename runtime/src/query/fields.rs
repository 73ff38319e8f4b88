//! What a field's type must support for each kind of clause.
//!
//! Each trait is keyed by the entity `E`, a per-field marker type `M` (named like the field)
//! and the builder's source `S`. A generated method bounds the field's type by one of them;
//! since the bound mentions `S`, the compiler checks it at the call, and the
//! `on_unimplemented` message names the field and says what to do. Each trait has one
//! blanket implementation over the std trait it stands for, plus `Send + Sync + 'static` so
//! a clause can live in a reusable filter.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashSet};
use std::hash::Hash;

use std::ops::Bound;

use super::probe::{Elements, Field, IndexProbe, KeyList};
use crate::entity::Entity;
use crate::table::{AnyIndex, HashIndex, Keys, OrderedIndex};

/// Field types that `where_f`, `where_f_ne` and `where_f_in` can compare.
#[diagnostic::on_unimplemented(
    message = "field `{M}` of `{E}` cannot be compared for equality: its type `{Self}` does not implement `PartialEq`",
    label = "`{M}` has no `==`",
    note = "if `{Self}` is your type, derive `PartialEq` for it; otherwise test the field in `.filter(|row| ..)`"
)]
pub trait EqField<E, M, S>: Send + Sync + 'static {
    /// `self == other`.
    fn field_eq(&self, other: &Self) -> bool;
}

#[diagnostic::do_not_recommend]
impl<F: PartialEq + Send + Sync + 'static, E, M, S> EqField<E, M, S> for F {
    #[inline]
    fn field_eq(&self, other: &Self) -> bool {
        self == other
    }
}

/// Field types that `where_f_gt/_gte/_lt/_lte/_between` can compare.
#[diagnostic::on_unimplemented(
    message = "field `{M}` of `{E}` cannot be compared with `<` or `>`: its type `{Self}` does not implement `PartialOrd`",
    label = "`{M}` is not ordered",
    note = "if `{Self}` is your type, derive `PartialOrd` for it; otherwise test the field in `.filter(|row| ..)`"
)]
pub trait OrdField<E, M, S>: Send + Sync + 'static {
    /// `self.partial_cmp(other)`.
    fn field_cmp(&self, other: &Self) -> Option<Ordering>;
    /// `self < other`.
    #[inline]
    fn field_lt(&self, other: &Self) -> bool {
        matches!(self.field_cmp(other), Some(Ordering::Less))
    }
    /// `self <= other`.
    #[inline]
    fn field_le(&self, other: &Self) -> bool {
        matches!(
            self.field_cmp(other),
            Some(Ordering::Less | Ordering::Equal)
        )
    }
    /// `self > other`.
    #[inline]
    fn field_gt(&self, other: &Self) -> bool {
        matches!(self.field_cmp(other), Some(Ordering::Greater))
    }
    /// `self >= other`.
    #[inline]
    fn field_ge(&self, other: &Self) -> bool {
        matches!(
            self.field_cmp(other),
            Some(Ordering::Greater | Ordering::Equal)
        )
    }
}

#[diagnostic::do_not_recommend]
impl<F: PartialOrd + Send + Sync + 'static, E, M, S> OrdField<E, M, S> for F {
    #[inline]
    fn field_cmp(&self, other: &Self) -> Option<Ordering> {
        self.partial_cmp(other)
    }
    #[inline]
    fn field_lt(&self, other: &Self) -> bool {
        self < other
    }
    #[inline]
    fn field_le(&self, other: &Self) -> bool {
        self <= other
    }
    #[inline]
    fn field_gt(&self, other: &Self) -> bool {
        self > other
    }
    #[inline]
    fn field_ge(&self, other: &Self) -> bool {
        self >= other
    }
}

/// Field types that `order_by_f` can sort by: a total order.
#[diagnostic::on_unimplemented(
    message = "cannot order by field `{M}` of `{E}`: its type `{Self}` does not implement `Ord`",
    label = "`{M}` has no total order",
    note = "if `{Self}` is your type, derive `PartialEq, Eq, PartialOrd, Ord` for it; floats have no total order: store an integer (e.g. cents) or a total-order wrapper, or sort the collected rows with `f64::total_cmp`"
)]
pub trait SortField<E, M, S>: Send + Sync + 'static {
    /// `self.cmp(other)`.
    fn field_sort(&self, other: &Self) -> Ordering;
}

#[diagnostic::do_not_recommend]
impl<F: Ord + Send + Sync + 'static, E, M, S> SortField<E, M, S> for F {
    #[inline]
    fn field_sort(&self, other: &Self) -> Ordering {
        self.cmp(other)
    }
}

/// Field types that `where_f_contains` can search: `Vec`, `String`, sets.
#[diagnostic::on_unimplemented(
    message = "field `{M}` of `{E}` cannot be searched with `contains`: its type `{Self}` is not a `Vec`, set or `String` of comparable items",
    label = "`{M}` has no `contains`",
    note = "`where_{M}_contains` works on `Vec<T>`, `BTreeSet<T>`, `HashSet<T>` and `String` fields; use `.filter(|row| ..)` otherwise"
)]
pub trait ContainsField<E, M, S>: Send + Sync + 'static {
    /// What is searched for: an element, or a substring.
    type Needle: Send + Sync + 'static;
    /// Whether `self` contains `needle`.
    fn field_contains(&self, needle: &Self::Needle) -> bool;
}

#[diagnostic::do_not_recommend]
impl<X: PartialEq + Send + Sync + 'static, E, M, S> ContainsField<E, M, S> for Vec<X> {
    type Needle = X;
    #[inline]
    fn field_contains(&self, needle: &X) -> bool {
        self.contains(needle)
    }
}

#[diagnostic::do_not_recommend]
impl<X: Ord + Send + Sync + 'static, E, M, S> ContainsField<E, M, S> for BTreeSet<X> {
    type Needle = X;
    #[inline]
    fn field_contains(&self, needle: &X) -> bool {
        self.contains(needle)
    }
}

#[diagnostic::do_not_recommend]
impl<X: Hash + Eq + Send + Sync + 'static, E, M, S> ContainsField<E, M, S> for HashSet<X> {
    type Needle = X;
    #[inline]
    fn field_contains(&self, needle: &X) -> bool {
        self.contains(needle)
    }
}

#[diagnostic::do_not_recommend]
impl<E, M, S> ContainsField<E, M, S> for String {
    type Needle = String;
    #[inline]
    fn field_contains(&self, needle: &String) -> bool {
        self.contains(needle.as_str())
    }
}

/// Field types that `where_f_is_some` / `where_f_is_none` can test: `Option`.
#[diagnostic::on_unimplemented(
    message = "field `{M}` of `{E}` is not an `Option`: its type `{Self}` has no `is_some`/`is_none`",
    label = "`{M}` is not optional",
    note = "`where_{M}_is_some` and `where_{M}_is_none` exist for `Option<T>` fields only"
)]
pub trait OptionField<E, M, S>: Send + Sync + 'static {
    /// Whether the option holds a value.
    fn field_is_some(&self) -> bool;
}

#[diagnostic::do_not_recommend]
impl<X: Send + Sync + 'static, E, M, S> OptionField<E, M, S> for Option<X> {
    #[inline]
    fn field_is_some(&self) -> bool {
        self.is_some()
    }
}

/// Key types a secondary index (`#[entity(index)]`) can hold.
///
/// It has no `Hash`/`Eq` supertraits on purpose: a bound `F: IndexKey<E, M, S>` in a
/// generated method must not elaborate into bounds that lack `S` (those would be checked
/// at the derive, repeating the one error the index constructor already reports). The
/// methods build what needs those bounds, inside the blanket impl that has them.
#[diagnostic::on_unimplemented(
    message = "field `{M}` of `{E}` cannot be indexed: its key type `{Self}` does not implement `Hash + Eq + Clone + Send + Sync`",
    label = "`#[entity(index)]` needs a hashable key",
    note = "if `{Self}` is your type, derive `Hash, PartialEq, Eq, Clone` for it; floats cannot be hash keys: store an integer (e.g. cents), or remove `#[entity(index)]` from `{M}`"
)]
pub trait IndexKey<E, M, S>: Send + Sync + 'static {
    /// An empty hash index over these keys.
    fn new_index<T: Entity>(field: &'static str, keys: Keys<T, Self>) -> Box<dyn AnyIndex<T>>
    where
        Self: Sized;
    /// The clause "the field read by `get` is one of `keys`", answered from the hash index
    /// at `slot`.
    fn lookup<T: 'static, G>(slot: usize, keys: Vec<Self>, get: G) -> IndexProbe<T>
    where
        Self: Sized,
        G: Fn(&T) -> &Self + Send + Sync + 'static;
    /// The clause "the field read by `get` is `key`", answered from the hash index at
    /// `slot`.
    fn lookup_one<T: 'static, G>(slot: usize, key: Self, get: G) -> IndexProbe<T>
    where
        Self: Sized,
        G: Fn(&T) -> &Self + Send + Sync + 'static;
    /// The clause "the `Vec` field read by `get` contains `key`", answered from the element
    /// index at `slot`.
    fn lookup_element<T: 'static, G>(slot: usize, key: Self, get: G) -> IndexProbe<T>
    where
        Self: Sized,
        G: Fn(&T) -> &[Self] + Send + Sync + 'static;
}

#[diagnostic::do_not_recommend]
impl<K: Hash + Eq + Clone + Send + Sync + 'static, E, M, S> IndexKey<E, M, S> for K {
    fn new_index<T: Entity>(field: &'static str, keys: Keys<T, Self>) -> Box<dyn AnyIndex<T>> {
        Box::new(HashIndex::new(field, keys))
    }
    fn lookup<T: 'static, G>(slot: usize, keys: Vec<Self>, get: G) -> IndexProbe<T>
    where
        G: Fn(&T) -> &Self + Send + Sync + 'static,
    {
        IndexProbe::hash_lookup(slot, KeyList::distinct(keys), Field(get))
    }
    fn lookup_one<T: 'static, G>(slot: usize, key: Self, get: G) -> IndexProbe<T>
    where
        G: Fn(&T) -> &Self + Send + Sync + 'static,
    {
        IndexProbe::hash_lookup(slot, KeyList::One(key), Field(get))
    }
    fn lookup_element<T: 'static, G>(slot: usize, key: Self, get: G) -> IndexProbe<T>
    where
        G: Fn(&T) -> &[Self] + Send + Sync + 'static,
    {
        IndexProbe::hash_lookup(slot, KeyList::One(key), Elements(get))
    }
}

/// Key types an ordered index (`#[entity(index(ordered))]`) can hold: a total order (for
/// the B-tree) and a hash (for routing watchers on equality clauses).
#[diagnostic::on_unimplemented(
    message = "field `{M}` of `{E}` cannot have an ordered index: its key type `{Self}` does not implement `Ord + Hash + Eq + Clone + Send + Sync`",
    label = "`#[entity(index(ordered))]` needs a totally ordered key",
    note = "if `{Self}` is your type, derive `PartialEq, Eq, PartialOrd, Ord, Hash, Clone` for it; floats have no total order: store an integer (e.g. cents), or use a plain `#[entity(index)]`"
)]
pub trait OrderedKey<E, M, S>: Send + Sync + 'static {
    /// An empty ordered index over these keys.
    fn new_ordered_index<T: Entity>(
        field: &'static str,
        keys: Keys<T, Self>,
    ) -> Box<dyn AnyIndex<T>>
    where
        Self: Sized;
    /// The clause "the field read by `get` is one of `keys`", answered from the ordered
    /// index at `slot`.
    fn lookup_ordered<T: 'static, G>(slot: usize, keys: Vec<Self>, get: G) -> IndexProbe<T>
    where
        Self: Sized,
        G: Fn(&T) -> &Self + Send + Sync + 'static;
    /// The clause "the field read by `get` is `key`", answered from the ordered index at
    /// `slot`.
    fn lookup_ordered_one<T: 'static, G>(slot: usize, key: Self, get: G) -> IndexProbe<T>
    where
        Self: Sized,
        G: Fn(&T) -> &Self + Send + Sync + 'static;
    /// The clause "the field read by `get` lies within `low` and `high`", answered by
    /// walking the ordered index at `slot`.
    fn range<T: 'static, G>(
        slot: usize,
        low: Bound<Self>,
        high: Bound<Self>,
        get: G,
    ) -> IndexProbe<T>
    where
        Self: Sized,
        G: Fn(&T) -> &Self + Clone + Send + Sync + 'static;
    /// `self.cmp(other)`.
    fn key_cmp(&self, other: &Self) -> Ordering;
}

#[diagnostic::do_not_recommend]
impl<K: Ord + Hash + Eq + Clone + Send + Sync + 'static, E, M, S> OrderedKey<E, M, S> for K {
    fn new_ordered_index<T: Entity>(
        field: &'static str,
        keys: Keys<T, Self>,
    ) -> Box<dyn AnyIndex<T>> {
        Box::new(OrderedIndex::new(field, keys))
    }
    fn lookup_ordered<T: 'static, G>(slot: usize, keys: Vec<Self>, get: G) -> IndexProbe<T>
    where
        G: Fn(&T) -> &Self + Send + Sync + 'static,
    {
        IndexProbe::ordered_lookup(slot, KeyList::distinct(keys), Field(get))
    }
    fn lookup_ordered_one<T: 'static, G>(slot: usize, key: Self, get: G) -> IndexProbe<T>
    where
        G: Fn(&T) -> &Self + Send + Sync + 'static,
    {
        IndexProbe::ordered_lookup(slot, KeyList::One(key), Field(get))
    }
    fn range<T: 'static, G>(
        slot: usize,
        low: Bound<Self>,
        high: Bound<Self>,
        get: G,
    ) -> IndexProbe<T>
    where
        G: Fn(&T) -> &Self + Clone + Send + Sync + 'static,
    {
        IndexProbe::range(slot, low, high, get)
    }
    #[inline(always)]
    fn key_cmp(&self, other: &Self) -> Ordering {
        self.cmp(other)
    }
}
