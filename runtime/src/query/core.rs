//! `QueryCore<T>`: the plan a builder accumulates, and the clause constructors the
//! generated per-field methods call.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use super::Direction;
use super::fields::{ContainsField, EqField, IndexKey, OptionField, OrdField, SortField};
use crate::entity::Entity;
use crate::table::{HashIndex, Table};

type Compare<T> = Arc<dyn Fn(&T, &T) -> Ordering + Send + Sync>;

/// A row test, with the loops that apply it to a run of rows compiled once per clause.
///
/// A scan makes one dynamic call per clause and per run of rows (not per row): inside
/// [`select`](Self::select), [`refine`](Self::refine) and [`count`](Self::count) the test
/// is a concrete closure the compiler inlines into the loop.
pub(super) trait Predicate<T>: Send + Sync {
    /// Whether `row` passes.
    fn test(&self, row: &T) -> bool;
    /// Appends each row of `rows` that passes to `out`, in order.
    fn select<'t>(&self, rows: &'t [T], out: &mut Vec<&'t T>);
    /// Removes from `selected[from..]` the rows that fail, keeping the order.
    fn refine(&self, selected: &mut Vec<&T>, from: usize);
    /// How many of `rows` pass.
    fn count(&self, rows: &[T]) -> usize;
}

/// The one [`Predicate`]: a closure.
struct Test<F>(F);

impl<T, F: Fn(&T) -> bool + Send + Sync> Predicate<T> for Test<F> {
    #[inline]
    fn test(&self, row: &T) -> bool {
        (self.0)(row)
    }

    fn select<'t>(&self, rows: &'t [T], out: &mut Vec<&'t T>) {
        for row in rows {
            if (self.0)(row) {
                out.push(row);
            }
        }
    }

    fn refine(&self, selected: &mut Vec<&T>, from: usize) {
        let mut kept = from;
        for at in from..selected.len() {
            let row = selected[at];
            if (self.0)(row) {
                selected[kept] = row;
                kept += 1;
            }
        }
        selected.truncate(kept);
    }

    fn count(&self, rows: &[T]) -> usize {
        rows.iter().filter(|row| (self.0)(row)).count()
    }
}

/// A rough per-row cost class of a clause, so a scan runs the cheap tests first (clauses
/// AND together, so their order cannot change the result).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Cost {
    /// One comparison of an inline value (integers, enums, ...).
    Inline,
    /// A comparison that reads behind a pointer (`String`, `Vec`, ...).
    Indirect,
    /// A search through a collection or string, or several comparisons.
    Search,
    /// A user closure (`filter`): unknown, assumed dear.
    Opaque,
}

impl Cost {
    /// The cost of comparing values of `F`: [`Indirect`](Self::Indirect) when `F` owns heap
    /// data (approximated by `needs_drop`), [`Inline`](Self::Inline) otherwise.
    fn of<F>() -> Self {
        if std::mem::needs_drop::<F>() {
            Self::Indirect
        } else {
            Self::Inline
        }
    }
}

/// One `where_*` or `filter` clause: a row test, its cost class, and for index-capable
/// clauses the probe that names the candidate rows without scanning.
pub(super) struct Clause<T> {
    pub(super) test: Arc<dyn Predicate<T>>,
    pub(super) cost: Cost,
    pub(super) probe: Option<IndexProbe<T>>,
}

/// A clause's index lookup, built by [`IndexKey::probe`]. Not public API.
#[doc(hidden)]
pub struct IndexProbe<T>(pub(super) Arc<dyn Probe<T>>);

impl<T> Clone for IndexProbe<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> IndexProbe<T> {
    /// Looks up each distinct key of `keys` in the hash index at `slot`.
    pub(crate) fn lookup<K: std::hash::Hash + Eq + Clone + Send + Sync + 'static>(
        slot: usize,
        mut keys: Vec<K>,
    ) -> Self {
        if keys.len() == 1 {
            let key = keys.pop().expect("one key");
            return Self::lookup_one(slot, key);
        }
        let mut seen = std::collections::HashSet::with_capacity(keys.len());
        keys.retain(|key| seen.insert(key.clone()));
        Self(Arc::new(IndexLookup { slot, keys }))
    }

    /// Looks `key` up in the hash index at `slot`.
    pub(crate) fn lookup_one<K: std::hash::Hash + Eq + Clone + Send + Sync + 'static>(
        slot: usize,
        key: K,
    ) -> Self {
        Self(Arc::new(IndexLookupOne { slot, key }))
    }
}

impl<T> Clone for Clause<T> {
    fn clone(&self) -> Self {
        Self {
            test: self.test.clone(),
            cost: self.cost,
            probe: self.probe.clone(),
        }
    }
}

/// The id buckets an index probe names: one (the usual case, without allocating), or
/// several.
pub(super) enum Buckets<'t, Id> {
    /// One bucket.
    One(&'t BTreeSet<Id>),
    /// Any number of buckets.
    Many(Vec<&'t BTreeSet<Id>>),
}

impl<'t, Id> Buckets<'t, Id> {
    /// The buckets as a slice.
    pub(super) fn as_slice(&self) -> &[&'t BTreeSet<Id>] {
        match self {
            Buckets::One(bucket) => std::slice::from_ref(bucket),
            Buckets::Many(buckets) => buckets,
        }
    }
}

/// Names the rows a clause can match from an index: the union of some id buckets.
pub(super) trait Probe<T>: Send + Sync {
    /// The buckets (pairwise disjoint), or `None` when the index is not there.
    fn buckets<'t>(&self, table: &'t Table<T>) -> Option<Buckets<'t, T::Id>>
    where
        T: Entity;
    /// For watch routing: the index slot, and the hashes of the keys looked up.
    fn route_keys(&self) -> (usize, Vec<u64>);
    /// For watch routing: the hashes of `row`'s keys in the index at this probe's slot.
    fn row_key_hashes(&self, table: &Table<T>, row: &T, out: &mut Vec<u64>)
    where
        T: Entity;
}

/// The hash index at `slot` of `table`, if its keys are `K`.
fn hash_index<T: Entity, K: std::hash::Hash + Eq + Clone + Send + Sync + 'static>(
    table: &Table<T>,
    slot: usize,
) -> Option<&HashIndex<T, K>> {
    table
        .indexes()
        .get(slot)?
        .as_any()
        .downcast_ref::<HashIndex<T, K>>()
}

/// Lookup of several keys in the hash index at `slot`.
struct IndexLookup<K> {
    slot: usize,
    keys: Vec<K>,
}

impl<T, K: std::hash::Hash + Eq + Clone + Send + Sync + 'static> Probe<T> for IndexLookup<K> {
    fn buckets<'t>(&self, table: &'t Table<T>) -> Option<Buckets<'t, T::Id>>
    where
        T: Entity,
    {
        let index = hash_index::<T, K>(table, self.slot)?;
        Some(Buckets::Many(
            self.keys.iter().filter_map(|key| index.get(key)).collect(),
        ))
    }

    fn route_keys(&self) -> (usize, Vec<u64>) {
        (
            self.slot,
            self.keys.iter().map(super::route::key_hash).collect(),
        )
    }

    fn row_key_hashes(&self, table: &Table<T>, row: &T, out: &mut Vec<u64>)
    where
        T: Entity,
    {
        row_key_hashes::<T, K>(table, self.slot, row, out);
    }
}

/// For watch routing: the hashes of `row`'s keys in the hash index at `slot`.
fn row_key_hashes<T: Entity, K: std::hash::Hash + Eq + Clone + Send + Sync + 'static>(
    table: &Table<T>,
    slot: usize,
    row: &T,
    out: &mut Vec<u64>,
) {
    if let Some(index) = hash_index::<T, K>(table, slot) {
        out.extend(index.keys_of(row).iter().map(super::route::key_hash));
    }
}

/// Lookup of one key in the hash index at `slot`.
struct IndexLookupOne<K> {
    slot: usize,
    key: K,
}

impl<T, K: std::hash::Hash + Eq + Clone + Send + Sync + 'static> Probe<T> for IndexLookupOne<K> {
    fn buckets<'t>(&self, table: &'t Table<T>) -> Option<Buckets<'t, T::Id>>
    where
        T: Entity,
    {
        let index = hash_index::<T, K>(table, self.slot)?;
        Some(match index.get(&self.key) {
            Some(bucket) => Buckets::One(bucket),
            None => Buckets::Many(Vec::new()),
        })
    }

    fn route_keys(&self) -> (usize, Vec<u64>) {
        (self.slot, vec![super::route::key_hash(&self.key)])
    }

    fn row_key_hashes(&self, table: &Table<T>, row: &T, out: &mut Vec<u64>)
    where
        T: Entity,
    {
        row_key_hashes::<T, K>(table, self.slot, row, out);
    }
}

/// A query plan: clauses (ANDed), orderings, offset and limit. Cheap to clone, `Send +
/// Sync + 'static`, and independent of where the rows come from.
///
/// Built through a generated query type's methods; the plan itself only runs, tests
/// (`matches`) and narrows (`filter`, `offset`, `limit`).
#[must_use = "a query plan does nothing until it is run"]
pub struct QueryCore<T> {
    /// Ordered by [`Cost`], cheapest first (see `push`).
    pub(super) clauses: Vec<Clause<T>>,
    pub(super) order: Vec<Compare<T>>,
    pub(super) offset: usize,
    pub(super) limit: Option<usize>,
}

impl<T> Clone for QueryCore<T> {
    fn clone(&self) -> Self {
        Self {
            clauses: self.clauses.clone(),
            order: self.order.clone(),
            offset: self.offset,
            limit: self.limit,
        }
    }
}

impl<T> Default for QueryCore<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for QueryCore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryCore")
            .field("clauses", &self.clauses.len())
            .field("orderings", &self.order.len())
            .field("offset", &self.offset)
            .field("limit", &self.limit)
            .finish()
    }
}

impl<T> QueryCore<T> {
    /// A plan that matches every row, in id order.
    pub fn new() -> Self {
        Self {
            clauses: Vec::new(),
            order: Vec::new(),
            offset: 0,
            limit: None,
        }
    }

    /// Whether `row` passes every clause (order, offset and limit aside).
    pub fn matches(&self, row: &T) -> bool {
        self.clauses.iter().all(|clause| clause.test.test(row))
    }

    /// The number of clauses (`where_*` and `filter` calls).
    pub fn clause_count(&self) -> usize {
        self.clauses.len()
    }

    /// How many results are skipped (set with [`offset`](Self::offset)).
    pub fn offset_len(&self) -> usize {
        self.offset
    }

    /// How many results are kept at most (set with [`limit`](Self::limit)).
    pub fn limit_len(&self) -> Option<usize> {
        self.limit
    }

    fn test(self, cost: Cost, test: impl Fn(&T) -> bool + Send + Sync + 'static) -> Self {
        self.push(Clause {
            test: Arc::new(Test(test)),
            cost,
            probe: None,
        })
    }

    /// Adds `clause` after every clause that costs no more, so `clauses` stays ordered by
    /// cost (ties in call order) and a scan tests the cheap clauses first.
    fn push(mut self, clause: Clause<T>) -> Self {
        let at = self
            .clauses
            .partition_point(|other| other.cost <= clause.cost);
        self.clauses.insert(at, clause);
        self
    }

    fn probed(
        self,
        probe: IndexProbe<T>,
        cost: Cost,
        test: impl Fn(&T) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.push(Clause {
            test: Arc::new(Test(test)),
            cost,
            probe: Some(probe),
        })
    }

    /// Keeps rows for which `keep` returns true.
    pub fn filter(self, keep: impl Fn(&T) -> bool + Send + Sync + 'static) -> Self {
        self.test(Cost::Opaque, keep)
    }

    /// Skips the first `n` results.
    pub fn offset(mut self, n: usize) -> Self {
        self.offset = n;
        self
    }

    /// Keeps at most `n` results.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Field equals `value`.
    pub(crate) fn eq<M, S, F, G>(self, get: G, value: F) -> Self
    where
        F: EqField<T, M, S>,
        G: Fn(&T) -> &F + Send + Sync + 'static,
    {
        self.test(Cost::of::<F>(), move |row| get(row).field_eq(&value))
    }

    /// Field differs from `value`.
    pub(crate) fn ne<M, S, F, G>(self, get: G, value: F) -> Self
    where
        F: EqField<T, M, S>,
        G: Fn(&T) -> &F + Send + Sync + 'static,
    {
        self.test(Cost::of::<F>(), move |row| !get(row).field_eq(&value))
    }

    /// Field equals one of `values`.
    pub(crate) fn any_of<M, S, F, G>(self, get: G, values: Vec<F>) -> Self
    where
        F: EqField<T, M, S>,
        G: Fn(&T) -> &F + Send + Sync + 'static,
    {
        let cost = match values.len() {
            0 | 1 => Cost::of::<F>(),
            _ => Cost::Search,
        };
        self.test(cost, move |row| {
            let field = get(row);
            values.iter().any(|value| field.field_eq(value))
        })
    }

    /// Indexed field (the hash index at `slot`) equals `value`: answered from the index.
    pub(crate) fn eq_indexed<M, S, F, G>(self, get: G, slot: usize, value: F) -> Self
    where
        F: IndexKey<T, M, S>,
        G: Fn(&T) -> &F + Send + Sync + 'static,
    {
        self.probed(
            F::probe(slot, vec![value.key_clone()]),
            Cost::of::<F>(),
            move |row| get(row).key_eq(&value),
        )
    }

    /// Indexed field (the hash index at `slot`) equals one of `values`: answered from the index.
    pub(crate) fn any_of_indexed<M, S, F, G>(self, get: G, slot: usize, values: Vec<F>) -> Self
    where
        F: IndexKey<T, M, S>,
        G: Fn(&T) -> &F + Send + Sync + 'static,
    {
        let keys = values.iter().map(IndexKey::key_clone).collect();
        let cost = match values.len() {
            0 | 1 => Cost::of::<F>(),
            _ => Cost::Search,
        };
        self.probed(F::probe(slot, keys), cost, move |row| {
            let field = get(row);
            values.iter().any(|value| field.key_eq(value))
        })
    }

    /// Field lies within the bounds.
    ///
    /// Each shape of bounds gets its own test, so a scan's loop holds one comparison per
    /// bound and no branch on the bound's kind.
    pub(crate) fn range<M, S, F, G>(self, get: G, low: Bound<F>, high: Bound<F>) -> Self
    where
        F: OrdField<T, M, S>,
        G: Fn(&T) -> &F + Send + Sync + 'static,
    {
        use Bound::{Excluded, Included, Unbounded};
        let cost = Cost::of::<F>();
        match (low, high) {
            (Unbounded, Unbounded) => self.test(Cost::Inline, |_| true),
            (Included(low), Unbounded) => self.test(cost, move |row| get(row).field_ge(&low)),
            (Excluded(low), Unbounded) => self.test(cost, move |row| get(row).field_gt(&low)),
            (Unbounded, Included(high)) => self.test(cost, move |row| get(row).field_le(&high)),
            (Unbounded, Excluded(high)) => self.test(cost, move |row| get(row).field_lt(&high)),
            (Included(low), Included(high)) => self.test(cost, move |row| {
                let field = get(row);
                field.field_ge(&low) && field.field_le(&high)
            }),
            (low, high) => self.test(cost, move |row| {
                let field = get(row);
                let above = match &low {
                    Included(low) => field.field_ge(low),
                    Excluded(low) => field.field_gt(low),
                    Unbounded => true,
                };
                above
                    && match &high {
                        Included(high) => field.field_le(high),
                        Excluded(high) => field.field_lt(high),
                        Unbounded => true,
                    }
            }),
        }
    }

    /// Field (a `Vec`, set or `String`) contains `needle`.
    pub(crate) fn contains<M, S, F, G>(self, get: G, needle: F::Needle) -> Self
    where
        F: ContainsField<T, M, S>,
        G: Fn(&T) -> &F + Send + Sync + 'static,
    {
        self.test(Cost::Search, move |row| get(row).field_contains(&needle))
    }

    /// Indexed `Vec` field (the element index at `slot`) contains `needle`: answered from the index.
    pub(crate) fn contains_indexed<M, S, K, G>(self, get: G, slot: usize, needle: K) -> Self
    where
        K: IndexKey<T, M, S>,
        G: Fn(&T) -> &[K] + Send + Sync + 'static,
    {
        self.probed(
            K::probe(slot, vec![needle.key_clone()]),
            Cost::Search,
            move |row| get(row).iter().any(|key| key.key_eq(&needle)),
        )
    }

    /// `Option` field is `Some` (`some = true`) or `None` (`some = false`).
    pub(crate) fn some<M, S, F, G>(self, get: G, some: bool) -> Self
    where
        F: OptionField<T, M, S>,
        G: Fn(&T) -> &F + Send + Sync + 'static,
    {
        self.test(Cost::Inline, move |row| get(row).field_is_some() == some)
    }

    /// Orders by the field, after any earlier orderings; ties keep ascending id order.
    pub(crate) fn order_by<M, S, F, G>(mut self, get: G, direction: Direction) -> Self
    where
        F: SortField<T, M, S>,
        G: Fn(&T) -> &F + Send + Sync + 'static,
    {
        self.order.push(match direction {
            Direction::Asc => Arc::new(move |a, b| get(a).field_sort(get(b))),
            Direction::Desc => Arc::new(move |a, b| get(b).field_sort(get(a))),
        });
        self
    }
}
