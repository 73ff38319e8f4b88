//! `QueryCore<T>`: the plan a builder accumulates (clauses, orderings, offset, limit),
//! and the clause constructors the generated per-field methods reach through
//! `query::clauses`. The clause kernel is in `predicate.rs`, index probes in `probe.rs`.

use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use thin_vec::ThinVec;

use super::Direction;
use super::fields::{
    ContainsField, EqField, IndexKey, OptionField, OrdField, OrderedKey, SortField,
};
use super::list::ClauseList;
use super::order::{ByKey, OrderKey};
use super::predicate::{Clause, Cost, Test};
use super::probe::IndexProbe;

/// A query plan: clauses (ANDed), orderings, offset and limit. Cheap to clone, `Send +
/// Sync + 'static`, and independent of where the rows come from.
///
/// Built through a generated query type's methods; the plan itself only runs, tests
/// (`matches`) and narrows (`filter`, `offset`, `limit`).
#[must_use = "a query plan does nothing until it is run"]
pub struct QueryCore<T> {
    /// Ordered by [`Cost`], cheapest first (see `push`).
    pub(super) clauses: ClauseList<T>,
    /// A `ThinVec` (one pointer, no allocation while empty): most plans have no
    /// ordering, and a smaller plan moves without a `memcpy` call.
    pub(super) order: ThinVec<OrderKey<T>>,
    pub(super) offset: usize,
    pub(super) limit: Option<usize>,
    /// An access path forced by a test (see [`force`](Self::force)).
    pub(super) force: Option<super::plan::Force>,
}

impl<T> Clone for QueryCore<T> {
    fn clone(&self) -> Self {
        Self {
            clauses: self.clauses.clone(),
            order: self.order.clone(),
            offset: self.offset,
            limit: self.limit,
            force: self.force,
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
            clauses: ClauseList::Empty,
            order: ThinVec::new(),
            offset: 0,
            limit: None,
            force: None,
        }
    }

    /// Whether `row` passes every clause (order, offset and limit aside).
    pub fn matches(&self, row: &T) -> bool {
        self.clauses.iter().all(|clause| clause.test().test(row))
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
        self.push(Clause::test_only(Arc::new(Test(test)), cost))
    }

    /// Adds `clause` after every clause that costs no more, so `clauses` stays ordered by
    /// cost (ties in call order) and a scan tests the cheap clauses first.
    #[inline]
    fn push(mut self, clause: Clause<T>) -> Self {
        if self.clauses.is_empty() {
            // The common first clause: no search, no shifting.
            self.clauses = ClauseList::One(clause);
            return self;
        }
        let at = self
            .clauses
            .partition_point(|other| other.cost <= clause.cost);
        self.clauses.insert(at, clause);
        self
    }

    /// Adds an index-capable clause: `probe` is its row test as well as its index probe.
    #[inline]
    pub(super) fn probed(self, probe: IndexProbe<T>, cost: Cost) -> Self {
        self.push(Clause::probed(probe, cost))
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
        T: 'static,
    {
        self.probed(F::lookup_one(slot, value, get), Cost::of::<F>())
    }

    /// Indexed field (the hash index at `slot`) equals one of `values`: answered from the index.
    pub(crate) fn any_of_indexed<M, S, F, G>(self, get: G, slot: usize, values: Vec<F>) -> Self
    where
        F: IndexKey<T, M, S>,
        G: Fn(&T) -> &F + Send + Sync + 'static,
        T: 'static,
    {
        let cost = Self::any_cost::<F>(values.len());
        self.probed(F::lookup(slot, values, get), cost)
    }

    /// Field with an ordered index (at `slot`) equals `value`: answered from the index.
    pub(crate) fn eq_ordered<M, S, F, G>(self, get: G, slot: usize, value: F) -> Self
    where
        F: OrderedKey<T, M, S>,
        G: Fn(&T) -> &F + Send + Sync + 'static,
        T: 'static,
    {
        self.probed(F::lookup_ordered_one(slot, value, get), Cost::of::<F>())
    }

    /// Field with an ordered index (at `slot`) equals one of `values`: answered from the
    /// index.
    pub(crate) fn any_of_ordered<M, S, F, G>(self, get: G, slot: usize, values: Vec<F>) -> Self
    where
        F: OrderedKey<T, M, S>,
        G: Fn(&T) -> &F + Send + Sync + 'static,
        T: 'static,
    {
        let cost = Self::any_cost::<F>(values.len());
        self.probed(F::lookup_ordered(slot, values, get), cost)
    }

    /// Field with an ordered index (at `slot`) lies within the bounds: answered by walking
    /// the index when the planner finds that cheaper than a scan.
    pub(crate) fn range_ordered<M, S, F, G>(
        self,
        get: G,
        slot: usize,
        low: Bound<F>,
        high: Bound<F>,
    ) -> Self
    where
        F: OrderedKey<T, M, S>,
        G: Fn(&T) -> &F + Clone + Send + Sync + 'static,
        T: 'static,
    {
        self.probed(F::range(slot, low, high, get), Cost::of::<F>())
    }

    fn any_cost<F>(values: usize) -> Cost {
        match values {
            0 | 1 => Cost::of::<F>(),
            _ => Cost::Search,
        }
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
        T: 'static,
    {
        self.probed(K::lookup_element(slot, needle, get), Cost::Search)
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
        T: 'static,
    {
        let key: Arc<dyn super::order::SortKey<T>> = match direction {
            Direction::Asc => Arc::new(ByKey(move |a: &T, b: &T| get(a).field_sort(get(b)))),
            Direction::Desc => Arc::new(ByKey(move |a: &T, b: &T| get(b).field_sort(get(a)))),
        };
        self.order.push(OrderKey { key, walk: None });
        self
    }

    /// Orders by a field with an ordered index (at `slot`), after any earlier orderings;
    /// the planner may answer it by walking the index in key order.
    pub(crate) fn order_by_ordered<M, S, F, G>(
        mut self,
        get: G,
        slot: usize,
        direction: Direction,
    ) -> Self
    where
        F: OrderedKey<T, M, S>,
        G: Fn(&T) -> &F + Clone + Send + Sync + 'static,
        T: 'static,
    {
        let walk = F::range(slot, Bound::Unbounded, Bound::Unbounded, get.clone());
        let key: Arc<dyn super::order::SortKey<T>> = match direction {
            Direction::Asc => Arc::new(ByKey(move |a: &T, b: &T| get(a).key_cmp(get(b)))),
            Direction::Desc => Arc::new(ByKey(move |a: &T, b: &T| get(b).key_cmp(get(a)))),
        };
        self.order.push(OrderKey {
            key,
            walk: Some((walk, direction)),
        });
        self
    }
}
