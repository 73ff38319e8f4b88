//! Index probes: how an index-capable clause names its candidate rows from one of the
//! table's indexes (for the planner), walks an ordered index in key order (for
//! `order_by_f(..).limit(k)`), and which keys it stands for (for watch routing).
//!
//! An indexed clause is one object that is both the row test ([`RowTest`]) and the probe
//! ([`Probe`]), so building it allocates once and holds its key once.
//!
//! - [`Lookup`]: `where_f(v)` / `where_f_in(vs)` on an indexed field (hash or ordered), and
//!   `where_f_contains(x)` on an indexed `Vec` field — exact buckets, routable;
//! - [`Range`]: `where_f_gt/_gte/_lt/_lte/_between` on an ordered field, and the unbounded
//!   walk behind `order_by_f` on one — buckets in key order, not routable (a range names
//!   no finite set of keys).

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::ops::{Bound, ControlFlow};
use std::sync::Arc;

use super::Direction;
use super::int_lookup::IntLookup;
use super::predicate::{Predicate, RowTest};
use super::str_lookup::StrLookup;
use crate::entity::Entity;
use crate::table::{Bucket, Seeded, Table, index::Index};

/// A clause's index lookup, built by the `IndexKey` / `OrderedKey` constructors. Not
/// public API.
#[doc(hidden)]
pub struct IndexProbe<T>(Held<T>);

/// Where a probe lives: shared behind an `Arc` (any key type), or inline (one string or
/// integer key, the most common indexed equalities, which then allocate nothing; see
/// `str_lookup.rs` and `int_lookup.rs`).
enum Held<T> {
    Shared(Arc<dyn Indexed<T>>),
    Str(StrLookup<T>),
    Int(IntLookup<T>),
}

impl<T> Clone for IndexProbe<T> {
    fn clone(&self) -> Self {
        Self(match &self.0 {
            Held::Shared(probe) => Held::Shared(probe.clone()),
            Held::Str(lookup) => Held::Str(lookup.clone()),
            Held::Int(lookup) => Held::Int(lookup.clone()),
        })
    }
}

impl<T> IndexProbe<T> {
    /// A probe shared behind an `Arc`.
    fn shared(probe: impl Indexed<T> + 'static) -> Self {
        Self(Held::Shared(Arc::new(probe)))
    }

    /// A one-string-key lookup, held inline.
    pub(super) fn inline_str(lookup: StrLookup<T>) -> Self {
        Self(Held::Str(lookup))
    }

    /// A one-integer-key lookup, held inline.
    pub(super) fn inline_int(lookup: IntLookup<T>) -> Self {
        Self(Held::Int(lookup))
    }

    /// The probe, which is its clause's row test too.
    #[inline]
    pub(super) fn get(&self) -> &dyn Indexed<T> {
        match &self.0 {
            Held::Shared(probe) => &**probe,
            Held::Str(lookup) => lookup,
            Held::Int(lookup) => lookup,
        }
    }

    /// A lookup of `keys` in the hash index at `slot`.
    pub(super) fn hash_lookup<K, R>(slot: usize, keys: KeyList<K>, read: R) -> Self
    where
        T: 'static,
        K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
        R: Reads<T, K>,
    {
        Self::shared(Lookup::<K, R, HashMap<K, Bucket, Seeded>>::new(
            slot, keys, read,
        ))
    }

    /// A lookup of `keys` in the ordered index at `slot`.
    pub(super) fn ordered_lookup<K, R>(slot: usize, keys: KeyList<K>, read: R) -> Self
    where
        T: 'static,
        K: Ord + std::hash::Hash + Clone + Send + Sync + 'static,
        R: Reads<T, K>,
    {
        Self::shared(Lookup::<K, R, BTreeMap<K, Bucket>>::new(slot, keys, read))
    }

    /// The keys within `low` and `high` of the ordered index at `slot`, read by `get`.
    pub(super) fn range<K, G>(slot: usize, low: Bound<K>, high: Bound<K>, get: G) -> Self
    where
        T: 'static,
        K: Ord + std::hash::Hash + Clone + Send + Sync + 'static,
        G: Fn(&T) -> &K + Clone + Send + Sync + 'static,
    {
        Self::shared(Range::new(slot, low, high, get))
    }
}

/// A row test that is also a probe.
pub(super) trait Indexed<T>: Predicate<T> + Probe<T> {}

impl<T, P: Predicate<T> + Probe<T>> Indexed<T> for P {}

/// The buckets a probe names: one (the usual case, without allocating), or several.
/// They are pairwise disjoint: distinct keys of a one-key-per-row index, or one key.
pub(super) enum Buckets<'t> {
    /// One bucket.
    One(&'t Bucket),
    /// Any number of buckets.
    Many(Vec<&'t Bucket>),
}

impl<'t> Buckets<'t> {
    /// The buckets as a slice.
    pub(super) fn as_slice(&self) -> &[&'t Bucket] {
        match self {
            Buckets::One(bucket) => std::slice::from_ref(bucket),
            Buckets::Many(buckets) => buckets,
        }
    }
}

/// What a probe can say about its candidates.
pub(super) enum Candidates<'t> {
    /// The index is not there (cannot happen for the derive's own probes).
    Unavailable,
    /// Exactly these buckets, `size` slots in all.
    Exact { buckets: Buckets<'t>, size: usize },
    /// More than the cap the planner asked with.
    Over,
}

impl<'t> Candidates<'t> {
    /// The candidates of one key: its bucket, or none when the index lacks the key.
    pub(super) fn of_key(bucket: Option<&'t Bucket>) -> Self {
        match bucket {
            Some(bucket) => Candidates::Exact {
                size: bucket.len(),
                buckets: Buckets::One(bucket),
            },
            None => Candidates::Exact {
                buckets: Buckets::Many(Vec::new()),
                size: 0,
            },
        }
    }
}

/// Names the rows a clause can match from an index.
pub(super) trait Probe<T>: Send + Sync {
    /// The position of the probed index among the table's indexes.
    fn index(&self) -> usize;
    /// The candidate buckets. A lookup always answers exactly; a range walks its keys and
    /// answers [`Candidates::Over`] once more than `cap` slots are found.
    fn candidates<'t>(&self, table: &'t Table<T>, cap: usize) -> Candidates<'t>
    where
        T: Entity;
    /// For watch routing: the hashes of the keys looked up, or `None` for a range.
    fn route_keys(&self) -> Option<Vec<u64>>;
    /// Whether this is a range over an ordered index (it can [`walk`](Self::walk)).
    fn is_range(&self) -> bool {
        false
    }
    /// Calls `visit` with each bucket in the range, in key order (`Desc`: largest key
    /// first), until it breaks. Returns `false` (visiting nothing) if this probe cannot
    /// walk.
    fn walk<'t>(
        &self,
        _table: &'t Table<T>,
        _direction: Direction,
        _visit: &mut dyn FnMut(&'t Bucket) -> ControlFlow<()>,
    ) -> bool
    where
        T: Entity,
    {
        false
    }
    /// A range over the same index covering the intersection of this range and `other`'s,
    /// if `other` is a range over the same index.
    fn narrow(&self, _other: &dyn Probe<T>) -> Option<IndexProbe<T>> {
        None
    }
    /// This range's bounds, as `&(Bound<K>, Bound<K>)` (for [`narrow`](Self::narrow)).
    fn bounds(&self) -> Option<&dyn Any> {
        None
    }
}

/// Which kind of index a lookup probes (each keeps its keys in its own map type), for the
/// inline lookups, which hold it as a value rather than as a type parameter.
#[derive(Clone, Copy, Debug)]
pub(super) enum MapKind {
    /// `#[entity(index)]`: `HashMap<K, Bucket, Seeded>`.
    Hash,
    /// `#[entity(index(ordered))]`: `BTreeMap<K, Bucket>`.
    Ordered,
}

/// The candidates of one key, looked up as `&Q`, in the index of kind `kind` at `slot`
/// whose keys are `K`.
#[inline]
pub(super) fn one_key<'t, T, K, Q>(
    table: &'t Table<T>,
    slot: usize,
    kind: MapKind,
    key: &Q,
) -> Candidates<'t>
where
    T: Entity,
    K: std::borrow::Borrow<Q> + std::hash::Hash + Ord + Clone + Send + Sync + 'static,
    Q: std::hash::Hash + Eq + Ord + ?Sized,
{
    let bucket = match kind {
        MapKind::Hash => {
            typed::<T, K, HashMap<K, Bucket, Seeded>>(table, slot).map(|index| index.map().get(key))
        }
        MapKind::Ordered => {
            typed::<T, K, BTreeMap<K, Bucket>>(table, slot).map(|index| index.map().get(key))
        }
    };
    match bucket {
        Some(bucket) => Candidates::of_key(bucket),
        None => Candidates::Unavailable,
    }
}

/// The index at `slot` of `table`, if it is an `Index<T, K, M>`.
pub(super) fn typed<T: Entity, K: 'static, M: 'static>(
    table: &Table<T>,
    slot: usize,
) -> Option<&Index<T, K, M>> {
    table
        .indexes()
        .get(slot)?
        .as_any()
        .downcast_ref::<Index<T, K, M>>()
}

/// How a lookup reads a row's value(s) of the indexed field.
pub(super) trait Reads<T, K>: Send + Sync + 'static {
    /// Whether `row` holds one of `keys`.
    fn holds(&self, row: &T, keys: &[K]) -> bool;
}

/// A one-key field (`where_f`, `where_f_in`).
pub(super) struct Field<G>(pub(super) G);

impl<T, K: PartialEq, G: Fn(&T) -> &K + Send + Sync + 'static> Reads<T, K> for Field<G> {
    #[inline(always)]
    fn holds(&self, row: &T, keys: &[K]) -> bool {
        let value = (self.0)(row);
        match keys {
            [key] => value == key,
            keys => keys.contains(value),
        }
    }
}

/// A `Vec` field, each element a key (`where_f_contains`).
pub(super) struct Elements<G>(pub(super) G);

impl<T, K: PartialEq, G: Fn(&T) -> &[K] + Send + Sync + 'static> Reads<T, K> for Elements<G> {
    #[inline(always)]
    fn holds(&self, row: &T, keys: &[K]) -> bool {
        let values = (self.0)(row);
        keys.iter().any(|key| values.contains(key))
    }
}

/// The keys a lookup looks up: one (the usual case, without allocating) or several.
pub(super) enum KeyList<K> {
    /// One key.
    One(K),
    /// Distinct keys.
    Many(Vec<K>),
}

impl<K: PartialEq> KeyList<K> {
    /// The distinct values of `keys`.
    pub(super) fn distinct(mut keys: Vec<K>) -> Self {
        let mut at = 0;
        while at < keys.len() {
            if keys[..at].contains(&keys[at]) {
                keys.swap_remove(at);
            } else {
                at += 1;
            }
        }
        KeyList::Many(keys)
    }
}

impl<K> KeyList<K> {
    #[inline]
    fn as_slice(&self) -> &[K] {
        match self {
            KeyList::One(key) => std::slice::from_ref(key),
            KeyList::Many(keys) => keys,
        }
    }
}

/// Lookup of some keys in the index at `slot`, whose map is `M`; its row test is "the
/// field holds one of `keys`".
pub(super) struct Lookup<K, R, M> {
    slot: usize,
    keys: KeyList<K>,
    read: R,
    map: PhantomData<fn() -> M>,
}

impl<K, R, M> Lookup<K, R, M> {
    fn new(slot: usize, keys: KeyList<K>, read: R) -> Self {
        Self {
            slot,
            keys,
            read,
            map: PhantomData,
        }
    }
}

impl<T, K, R, M> RowTest<T> for Lookup<K, R, M>
where
    K: Send + Sync,
    R: Reads<T, K>,
    M: 'static,
{
    #[inline(always)]
    fn pass(&self, row: &T) -> bool {
        self.read.holds(row, self.keys.as_slice())
    }
}

impl<T, K, R, M> Probe<T> for Lookup<K, R, M>
where
    K: std::hash::Hash + Clone + PartialEq + Send + Sync + 'static,
    R: Reads<T, K>,
    M: crate::table::index::KeyMap<K>,
{
    fn index(&self) -> usize {
        self.slot
    }

    fn candidates<'t>(&self, table: &'t Table<T>, _cap: usize) -> Candidates<'t>
    where
        T: Entity,
    {
        let Some(index) = typed::<T, K, M>(table, self.slot) else {
            return Candidates::Unavailable;
        };
        if let KeyList::One(key) = &self.keys {
            return Candidates::of_key(index.get(key));
        }
        let keys = self.keys.as_slice();
        let buckets: Vec<&Bucket> = keys.iter().filter_map(|key| index.get(key)).collect();
        Candidates::Exact {
            size: buckets.iter().map(|bucket| bucket.len()).sum(),
            buckets: Buckets::Many(buckets),
        }
    }

    fn route_keys(&self) -> Option<Vec<u64>> {
        Some(
            self.keys
                .as_slice()
                .iter()
                .map(super::route::key_hash)
                .collect(),
        )
    }
}

/// The keys between two bounds of an ordered index at `slot`, read by `get`.
pub(super) struct Range<K, G> {
    slot: usize,
    bounds: (Bound<K>, Bound<K>),
    get: G,
}

impl<K: Ord, G> Range<K, G> {
    /// The keys within `low` and `high`.
    pub(super) fn new(slot: usize, low: Bound<K>, high: Bound<K>, get: G) -> Self {
        Self {
            slot,
            bounds: (low, high),
            get,
        }
    }

    /// Whether no key can lie within the bounds (`BTreeMap::range` would panic on them).
    fn is_empty(&self) -> bool {
        use Bound::{Excluded, Included};
        match &self.bounds {
            (Included(low), Included(high)) => low > high,
            (Included(low) | Excluded(low), Included(high) | Excluded(high)) => low >= high,
            _ => false,
        }
    }
}

impl<T, K, G> RowTest<T> for Range<K, G>
where
    K: Ord + Send + Sync,
    G: Fn(&T) -> &K + Send + Sync,
{
    #[inline(always)]
    fn pass(&self, row: &T) -> bool {
        let value = (self.get)(row);
        let above = match &self.bounds.0 {
            Bound::Included(low) => value >= low,
            Bound::Excluded(low) => value > low,
            Bound::Unbounded => true,
        };
        above
            && match &self.bounds.1 {
                Bound::Included(high) => value <= high,
                Bound::Excluded(high) => value < high,
                Bound::Unbounded => true,
            }
    }
}

impl<T, K, G> Probe<T> for Range<K, G>
where
    K: Ord + std::hash::Hash + Clone + Send + Sync + 'static,
    G: Fn(&T) -> &K + Clone + Send + Sync + 'static,
{
    fn index(&self) -> usize {
        self.slot
    }

    fn candidates<'t>(&self, table: &'t Table<T>, cap: usize) -> Candidates<'t>
    where
        T: Entity,
    {
        let Some(index) = typed::<T, K, BTreeMap<K, Bucket>>(table, self.slot) else {
            return Candidates::Unavailable;
        };
        let mut buckets = Vec::new();
        let mut size = 0usize;
        if !self.is_empty() {
            for bucket in index.map().range::<K, _>(self.bounds_ref()).map(|(_, b)| b) {
                size += bucket.len();
                if size > cap {
                    return Candidates::Over;
                }
                buckets.push(bucket);
            }
        }
        Candidates::Exact {
            buckets: Buckets::Many(buckets),
            size,
        }
    }

    fn route_keys(&self) -> Option<Vec<u64>> {
        None
    }

    fn is_range(&self) -> bool {
        true
    }

    fn walk<'t>(
        &self,
        table: &'t Table<T>,
        direction: Direction,
        visit: &mut dyn FnMut(&'t Bucket) -> ControlFlow<()>,
    ) -> bool
    where
        T: Entity,
    {
        let Some(index) = typed::<T, K, BTreeMap<K, Bucket>>(table, self.slot) else {
            return false;
        };
        if self.is_empty() {
            return true;
        }
        let mut range = index.map().range::<K, _>(self.bounds_ref()).map(|(_, b)| b);
        let _ = match direction {
            Direction::Asc => range.try_for_each(visit),
            Direction::Desc => range.rev().try_for_each(visit),
        };
        true
    }

    fn narrow(&self, other: &dyn Probe<T>) -> Option<IndexProbe<T>> {
        if other.index() != self.slot {
            return None;
        }
        let (low, high) = other.bounds()?.downcast_ref::<(Bound<K>, Bound<K>)>()?;
        let low = tighter(&self.bounds.0, low, std::cmp::Ordering::Greater);
        let high = tighter(&self.bounds.1, high, std::cmp::Ordering::Less);
        Some(IndexProbe::shared(Range::new(
            self.slot,
            low,
            high,
            self.get.clone(),
        )))
    }

    fn bounds(&self) -> Option<&dyn Any> {
        Some(&self.bounds)
    }
}

impl<K, G> Range<K, G> {
    fn bounds_ref(&self) -> (Bound<&K>, Bound<&K>) {
        (self.bounds.0.as_ref(), self.bounds.1.as_ref())
    }
}

/// Of two bounds on one side, the one that admits fewer keys: for a low bound (`keep =
/// Greater`) the larger, for a high bound (`keep = Less`) the smaller; on a tie the
/// excluding one.
fn tighter<K: Ord + Clone>(a: &Bound<K>, b: &Bound<K>, keep: std::cmp::Ordering) -> Bound<K> {
    use Bound::{Excluded, Included, Unbounded};
    match (a, b) {
        (Unbounded, other) | (other, Unbounded) => other.clone(),
        (Included(x) | Excluded(x), Included(y) | Excluded(y)) => {
            let order = x.cmp(y);
            if order == keep {
                a.clone()
            } else if order == keep.reverse() {
                b.clone()
            } else if matches!(a, Excluded(_)) {
                a.clone()
            } else {
                b.clone()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tighter;
    use std::cmp::Ordering::{Greater, Less};
    use std::ops::Bound::{Excluded, Included, Unbounded};

    #[test]
    fn tighter_bounds_admit_the_intersection() {
        assert_eq!(tighter(&Included(3), &Excluded(5), Greater), Excluded(5));
        assert_eq!(tighter(&Included(5), &Excluded(5), Greater), Excluded(5));
        assert_eq!(tighter(&Included(5), &Included(2), Greater), Included(5));
        assert_eq!(tighter(&Unbounded, &Included(2), Greater), Included(2));
        assert_eq!(tighter(&Included(3), &Excluded(5), Less), Included(3));
        assert_eq!(tighter(&Included(5), &Excluded(5), Less), Excluded(5));
        assert_eq!(tighter::<i32>(&Unbounded, &Unbounded, Less), Unbounded);
    }
}
