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

type Test<T> = Arc<dyn Fn(&T) -> bool + Send + Sync>;
type Compare<T> = Arc<dyn Fn(&T, &T) -> Ordering + Send + Sync>;

/// One `where_*` or `filter` clause: a row test, and for index-capable clauses the probe
/// that names the candidate rows without scanning.
pub(super) struct Clause<T> {
    pub(super) test: Test<T>,
    pub(super) probe: Option<IndexProbe<T>>,
}

/// A clause's index lookup, built by [`IndexKey::probe`].
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
        let mut seen = std::collections::HashSet::with_capacity(keys.len());
        keys.retain(|key| seen.insert(key.clone()));
        Self(Arc::new(IndexLookup { slot, keys }))
    }
}

impl<T> Clone for Clause<T> {
    fn clone(&self) -> Self {
        Self {
            test: self.test.clone(),
            probe: self.probe.clone(),
        }
    }
}

/// Names the rows a clause can match from an index: the union of some id buckets.
pub(super) trait Probe<T>: Send + Sync {
    /// The buckets (pairwise disjoint), or `None` when the index is not there.
    fn buckets<'t>(&self, table: &'t Table<T>) -> Option<Vec<&'t BTreeSet<T::Id>>>
    where
        T: Entity;
    /// For watch routing: the index slot, and the hashes of the keys looked up.
    fn route_keys(&self) -> (usize, Vec<u64>);
    /// For watch routing: the hashes of `row`'s keys in the index at this probe's slot.
    fn row_key_hashes(&self, table: &Table<T>, row: &T, out: &mut Vec<u64>)
    where
        T: Entity;
}

/// Lookup of one or more keys in the hash index at `slot`.
struct IndexLookup<K> {
    slot: usize,
    keys: Vec<K>,
}

impl<T, K: std::hash::Hash + Eq + Clone + Send + Sync + 'static> Probe<T> for IndexLookup<K> {
    fn buckets<'t>(&self, table: &'t Table<T>) -> Option<Vec<&'t BTreeSet<T::Id>>>
    where
        T: Entity,
    {
        let index = table.indexes().get(self.slot)?;
        let index = index.as_any().downcast_ref::<HashIndex<T, K>>()?;
        Some(self.keys.iter().filter_map(|key| index.get(key)).collect())
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
        let index = table.indexes().get(self.slot);
        if let Some(index) = index.and_then(|i| i.as_any().downcast_ref::<HashIndex<T, K>>()) {
            out.extend(index.keys_of(row).iter().map(super::route::key_hash));
        }
    }
}

/// A query plan: clauses (ANDed), orderings, offset and limit. Cheap to clone, `Send +
/// Sync + 'static`, and independent of where the rows come from.
pub struct QueryCore<T> {
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
        self.clauses.iter().all(|clause| (clause.test)(row))
    }

    /// The number of clauses (`where_*` and `filter` calls).
    pub fn clause_count(&self) -> usize {
        self.clauses.len()
    }

    /// Rows to skip (from `offset`).
    pub fn skip(&self) -> usize {
        self.offset
    }

    /// Rows to keep at most (from `limit`).
    pub fn take(&self) -> Option<usize> {
        self.limit
    }

    fn test(mut self, test: impl Fn(&T) -> bool + Send + Sync + 'static) -> Self {
        self.clauses.push(Clause {
            test: Arc::new(test),
            probe: None,
        });
        self
    }

    fn probed(
        mut self,
        probe: IndexProbe<T>,
        test: impl Fn(&T) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.clauses.push(Clause {
            test: Arc::new(test),
            probe: Some(probe),
        });
        self
    }

    /// Keeps rows for which `keep` returns true.
    pub fn filter(self, keep: impl Fn(&T) -> bool + Send + Sync + 'static) -> Self {
        self.test(keep)
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
    pub fn eq<M, S, F, G>(self, get: G, value: F) -> Self
    where
        F: EqField<T, M, S>,
        G: Fn(&T) -> &F + Send + Sync + 'static,
    {
        self.test(move |row| get(row).field_eq(&value))
    }

    /// Field differs from `value`.
    pub fn ne<M, S, F, G>(self, get: G, value: F) -> Self
    where
        F: EqField<T, M, S>,
        G: Fn(&T) -> &F + Send + Sync + 'static,
    {
        self.test(move |row| !get(row).field_eq(&value))
    }

    /// Field equals one of `values`.
    pub fn any_of<M, S, F, G>(self, get: G, values: Vec<F>) -> Self
    where
        F: EqField<T, M, S>,
        G: Fn(&T) -> &F + Send + Sync + 'static,
    {
        self.test(move |row| {
            let field = get(row);
            values.iter().any(|value| field.field_eq(value))
        })
    }

    /// Indexed field (the hash index at `slot`) equals `value`: answered from the index.
    pub fn eq_indexed<M, S, F, G>(self, get: G, slot: usize, value: F) -> Self
    where
        F: IndexKey<T, M, S>,
        G: Fn(&T) -> &F + Send + Sync + 'static,
    {
        self.probed(F::probe(slot, vec![value.key_clone()]), move |row| {
            get(row).key_eq(&value)
        })
    }

    /// Indexed field (the hash index at `slot`) equals one of `values`: answered from the index.
    pub fn any_of_indexed<M, S, F, G>(self, get: G, slot: usize, values: Vec<F>) -> Self
    where
        F: IndexKey<T, M, S>,
        G: Fn(&T) -> &F + Send + Sync + 'static,
    {
        let keys = values.iter().map(IndexKey::key_clone).collect();
        self.probed(F::probe(slot, keys), move |row| {
            let field = get(row);
            values.iter().any(|value| field.key_eq(value))
        })
    }

    /// Field lies within the bounds.
    pub fn range<M, S, F, G>(self, get: G, low: Bound<F>, high: Bound<F>) -> Self
    where
        F: OrdField<T, M, S>,
        G: Fn(&T) -> &F + Send + Sync + 'static,
    {
        self.test(move |row| {
            let field = get(row);
            let above = match &low {
                Bound::Included(low) => matches!(
                    field.field_cmp(low),
                    Some(Ordering::Greater | Ordering::Equal)
                ),
                Bound::Excluded(low) => matches!(field.field_cmp(low), Some(Ordering::Greater)),
                Bound::Unbounded => true,
            };
            above
                && match &high {
                    Bound::Included(high) => {
                        matches!(
                            field.field_cmp(high),
                            Some(Ordering::Less | Ordering::Equal)
                        )
                    }
                    Bound::Excluded(high) => matches!(field.field_cmp(high), Some(Ordering::Less)),
                    Bound::Unbounded => true,
                }
        })
    }

    /// Field (a `Vec`, set or `String`) contains `needle`.
    pub fn contains<M, S, F, G>(self, get: G, needle: F::Needle) -> Self
    where
        F: ContainsField<T, M, S>,
        G: Fn(&T) -> &F + Send + Sync + 'static,
    {
        self.test(move |row| get(row).field_contains(&needle))
    }

    /// Indexed `Vec` field (the element index at `slot`) contains `needle`: answered from the index.
    pub fn contains_indexed<M, S, K, G>(self, get: G, slot: usize, needle: K) -> Self
    where
        K: IndexKey<T, M, S>,
        G: Fn(&T) -> &[K] + Send + Sync + 'static,
    {
        self.probed(K::probe(slot, vec![needle.key_clone()]), move |row| {
            get(row).iter().any(|key| key.key_eq(&needle))
        })
    }

    /// `Option` field is `Some` (`some = true`) or `None` (`some = false`).
    pub fn is_some<M, S, F, G>(self, get: G, some: bool) -> Self
    where
        F: OptionField<T, M, S>,
        G: Fn(&T) -> &F + Send + Sync + 'static,
    {
        self.test(move |row| get(row).field_is_some() == some)
    }

    /// Orders by the field, after any earlier orderings; ties keep ascending id order.
    pub fn order_by<M, S, F, G>(mut self, get: G, direction: Direction) -> Self
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
