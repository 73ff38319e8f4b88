//! The planner: which access path answers a query on a table, chosen by comparing costs.
//!
//! Costs are in units of one row read by a scan:
//! - a scan reads `n` rows (fewer when it can stop early: no ordering, rows stored in id
//!   order, a limit);
//! - an index clause names its candidates: a lookup's buckets have known sizes, a range's
//!   are counted by walking its keys, with a cap (a range over more than a sample's worth
//!   of keys is first estimated by testing the clause on [`SAMPLE`] rows spread over the
//!   table, and not walked at all if the estimate already exceeds what a scan costs). A
//!   candidate costs [`FETCH`] units (the row is read through its slot, in ascending slot
//!   order for one bucket), [`FETCH_MERGED`] when several buckets are merged first. The
//!   index is used only when its candidates cost less than the scan; with several index
//!   clauses the one with the fewest candidates drives, and the others are tested on its
//!   rows (the intersection, starting from the smallest);
//! - a walk of an ordered index in the query's order (`order_by_f(..).limit(k)` where `f`
//!   has one, narrowed by the query's ranges on `f`) costs [`WALK`] units per row it reads.
//!   With no other clause it reads `offset + limit` rows (plus ties). With other clauses
//!   it reads about `(offset + limit) / s` rows, `s` being their selectivity among the
//!   walked rows, estimated from a sample; the walk is tried only when that estimate is
//!   well under the alternative, and it gives up after a budget of a quarter of the
//!   alternative's cost, which then runs. So a walk that the sample misjudged costs at
//!   most a quarter more than the plan it replaced.

use super::probe::{Buckets, Candidates, IndexProbe};
use super::{Direction, QueryCore};
use crate::entity::Entity;
use crate::table::Table;

/// Cost of reading one candidate row through an index, relative to a scanned row.
const FETCH: usize = 2;
/// The same when the candidates come from several buckets, merged into slot order
/// first (measured: `find_many_10k_wide_eq` in `benches/query_scale.rs`).
const FETCH_MERGED: usize = 3;
/// Cost of reading one row by walking an ordered index.
const WALK: usize = 4;
/// Rows tested to estimate a selectivity.
const SAMPLE: usize = 64;
/// Below this cost, plans are compared without sampling (a sample would cost more than
/// a wrong choice).
const WORTH_SAMPLING: usize = 8 * 1024;

/// The access path a query takes on a table, as [`QueryCore::explain`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Plan {
    /// Reads the rows in storage order, testing every clause (stopping early when it can).
    Scan,
    /// Reads the candidates of the index on `field` (`candidates` rows) and tests the
    /// other clauses on them.
    Index {
        /// The indexed field whose clause names the candidates.
        field: &'static str,
        /// How many candidate rows the index names.
        candidates: usize,
    },
    /// Walks the ordered index on `field` in the query's order, stopping after the
    /// offset and limit are filled (falling back to another plan if it reads too many
    /// rows that fail the other clauses).
    Walk {
        /// The field of the first ordering, which has an ordered index.
        field: &'static str,
        /// The direction of the walk.
        direction: Direction,
    },
}

/// An access path to force, for tests that compare every path with a naive result. Not
/// public API.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Force {
    /// Scan, whatever the indexes.
    Scan,
    /// Use the index clause with the fewest candidates, whatever the cost.
    Index,
    /// Walk the ordered index of the first ordering if it has one (without a budget).
    Walk,
}

/// What the query is run for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    /// The result rows; `k` is `offset + limit` when that is fewer than the rows.
    Rows { k: Option<usize> },
    /// A count (order does not matter).
    Count,
}

/// The access path the planner picked.
pub(super) enum Access<'t, T> {
    /// Read every row.
    Scan,
    /// Read the union of these (disjoint) buckets, `size` slots in all; clause `by` holds
    /// on them by construction.
    Index {
        by: usize,
        size: usize,
        buckets: Buckets<'t>,
    },
    /// Walk `probe` (a range over the first ordering's ordered index) in `direction`;
    /// the clauses `satisfied` hold on its rows by construction. If it reads more than
    /// `budget` rows, give up and run `otherwise`.
    Walk {
        probe: IndexProbe<T>,
        direction: Direction,
        satisfied: Vec<usize>,
        budget: Option<usize>,
        otherwise: Box<Access<'t, T>>,
    },
}

/// A walk [`QueryCore::walk_plan`] proposes (see [`Access::Walk`]).
struct Walk<T> {
    probe: IndexProbe<T>,
    direction: Direction,
    satisfied: Vec<usize>,
    budget: Option<usize>,
}

impl<T: Entity> QueryCore<T> {
    /// Forces an access path where it applies (for tests). Not public API.
    #[doc(hidden)]
    pub fn force(mut self, force: Force) -> Self {
        self.force = Some(force);
        self
    }

    /// Which access path this query takes on `table` now (it depends on the table's
    /// contents: bucket sizes, range sizes, samples).
    pub fn explain(&self, table: &Table<T>) -> Plan {
        let k = self.offset.saturating_add(self.limit.unwrap_or(usize::MAX));
        let k = (k < table.len()).then_some(k);
        let field = |slot: usize| table.indexes().get(slot).map_or("?", |index| index.field());
        match self.access(table, Want::Rows { k }) {
            Access::Scan => Plan::Scan,
            Access::Index { by, size, .. } => Plan::Index {
                field: self.clauses[by]
                    .probe()
                    .map_or("?", |probe| field(probe.get().index())),
                candidates: size,
            },
            Access::Walk {
                probe, direction, ..
            } => Plan::Walk {
                field: field(probe.get().index()),
                direction,
            },
        }
    }

    /// Picks the access path for `want`.
    pub(super) fn access<'t>(&self, table: &'t Table<T>, want: Want) -> Access<'t, T> {
        let n = table.len();
        if self.force == Some(Force::Scan) || n == 0 {
            return Access::Scan;
        }
        let forced_index = self.force == Some(Force::Index);
        // A walk that every clause holds on by construction reads `k` rows (and ties):
        // nothing else reads fewer, so it needs no comparison.
        if let Want::Rows { k: Some(k) } = want
            && !forced_index
            && k.saturating_mul(WALK) < n
            && let Some(walk) = self.narrowed_walk()
            && walk.satisfied.len() == self.clauses.len()
        {
            return Access::Walk {
                probe: walk.probe,
                direction: walk.direction,
                satisfied: walk.satisfied,
                budget: None,
                otherwise: Box::new(Access::Scan),
            };
        }
        let index = self.best_index(table, forced_index);
        let scan_cost = self.scan_cost(table, want, index.as_ref().map(|(_, size, b)| (*size, b)));
        let otherwise = match index {
            Some((by, size, buckets))
                if forced_index
                    || want == Want::Count && self.clauses.len() == 1
                    || Self::index_beats_scan(size, buckets.as_slice().len(), scan_cost) =>
            {
                Access::Index { by, size, buckets }
            }
            _ => Access::Scan,
        };
        if let Want::Rows { k } = want
            && !forced_index
        {
            let alternative = match &otherwise {
                Access::Index { size, buckets, .. } => {
                    Self::fetch_cost(*size, buckets.as_slice().len())
                }
                _ => scan_cost,
            };
            if let Some(walk) = self.walk_plan(table, k, alternative) {
                return Access::Walk {
                    probe: walk.probe,
                    direction: walk.direction,
                    satisfied: walk.satisfied,
                    budget: walk.budget,
                    otherwise: Box::new(otherwise),
                };
            }
        }
        otherwise
    }

    /// Whether reading `size` candidates from `buckets` buckets of an index costs less
    /// than a scan that costs `scan_cost`.
    #[inline]
    pub(super) fn index_beats_scan(size: usize, buckets: usize, scan_cost: usize) -> bool {
        Self::fetch_cost(size, buckets) < scan_cost
    }

    /// What reading `size` candidates from `buckets` buckets of an index costs.
    #[inline]
    fn fetch_cost(size: usize, buckets: usize) -> usize {
        size.saturating_mul(if buckets > 1 { FETCH_MERGED } else { FETCH })
    }

    /// What a scan costs for `want`: `n`, or less when it stops early (no ordering, rows
    /// in id order, a small limit), estimated from a sample when an index of `index`'s
    /// size (and bucket shape) is the alternative and the difference matters.
    fn scan_cost(&self, table: &Table<T>, want: Want, index: Option<(usize, &Buckets)>) -> usize {
        let n = table.len();
        let Want::Rows { k: Some(k) } = want else {
            return n;
        };
        if !self.order.is_empty() || !table.is_sorted() {
            return n;
        }
        // A single bucket stops early as well (its slots are in id order), and reads only
        // candidates: it is never worse than the early-stopping scan when it is cheaper
        // than a full one. Several buckets are gathered in full first.
        match index {
            Some((size, buckets))
                if buckets.as_slice().len() > 1
                    && size.saturating_mul(FETCH) >= WORTH_SAMPLING
                    && size.saturating_mul(FETCH) < n =>
            {
                let (passing, seen) = sample(table.dense(), |row| self.matches(row));
                // `k` matches take about `k / selectivity` rows (smoothed, so a sample
                // without a match does not promise an early stop).
                let rows = (k as u128 * (seen as u128 + 2)) / (passing as u128 + 1);
                usize::try_from(rows).unwrap_or(usize::MAX).min(n)
            }
            _ => n,
        }
    }

    /// The index clause with the fewest candidates: (clause position, size, buckets).
    /// Unless `forced`, a range over more candidates than a scan is worth is skipped.
    fn best_index<'t>(
        &self,
        table: &'t Table<T>,
        forced: bool,
    ) -> Option<(usize, usize, Buckets<'t>)> {
        let n = table.len();
        let cap = if forced { usize::MAX } else { n / FETCH };
        let mut best: Option<(usize, usize, Buckets<'t>)> = None;
        for (at, clause) in self.clauses.iter().enumerate() {
            let Some(probe) = clause.probe() else {
                continue;
            };
            // No use collecting more candidates than the best so far.
            let limit = best.as_ref().map_or(cap, |(_, size, _)| (*size).min(cap));
            let candidates = if probe.get().is_range() && !forced {
                let small = SAMPLE.min(limit);
                match probe.get().candidates(table, small) {
                    Candidates::Over if limit > small => {
                        let (passing, seen) = sample(table.dense(), |row| clause.test().test(row));
                        let estimate = passing.saturating_mul(n) / seen.max(1);
                        if estimate >= limit {
                            continue;
                        }
                        probe.get().candidates(table, limit)
                    }
                    other => other,
                }
            } else {
                probe.get().candidates(table, limit)
            };
            if let Candidates::Exact { buckets, size } = candidates
                && best.as_ref().is_none_or(|(_, best, _)| size < *best)
            {
                best = Some((at, size, buckets));
            }
        }
        best
    }

    /// The walk of the first ordering's ordered index, if it has one, narrowed by the
    /// query's ranges on the same index (those clauses then hold by construction).
    fn narrowed_walk(&self) -> Option<Walk<T>> {
        let (walker, direction) = self.order.first()?.walk.as_ref()?;
        // `None` while the walk is the whole (unbounded) index: the first range on it is
        // then the walk itself, the next ones narrow it.
        let mut probe: Option<IndexProbe<T>> = None;
        let mut satisfied = Vec::new();
        for (at, clause) in self.clauses.iter().enumerate() {
            let Some(range) = clause.probe() else {
                continue;
            };
            if !range.get().is_range() || range.get().index() != walker.get().index() {
                continue;
            }
            let narrowed = match &probe {
                None => Some(range.clone()),
                Some(probe) => probe.get().narrow(range.get()),
            };
            if narrowed.is_some() {
                probe = narrowed;
                satisfied.push(at);
            }
        }
        Some(Walk {
            probe: probe.unwrap_or_else(|| walker.clone()),
            direction: *direction,
            satisfied,
            budget: None,
        })
    }

    /// The walk, if the query has one and a limit and it is expected to cost less than
    /// `alternative` (forced: whenever there is one).
    fn walk_plan(&self, table: &Table<T>, k: Option<usize>, alternative: usize) -> Option<Walk<T>> {
        let mut walk = self.narrowed_walk()?;
        if self.force == Some(Force::Walk) {
            return Some(walk);
        }
        let k = k?;
        if walk.satisfied.len() == self.clauses.len() {
            // Every row walked is a result: the walk reads `k` rows (and ties).
            return (k.saturating_mul(WALK) < alternative).then_some(walk);
        }
        let budget = alternative / WALK / 4;
        if budget < k {
            return None;
        }
        // The selectivity of the other clauses among the rows in the walked range.
        let (in_range, passing) = sample_pair(
            table.dense(),
            |row| walk.probe.get().test(row),
            |row| self.matches(row),
        );
        let expected = (k as u128 * (in_range as u128 + 2)) / (passing as u128 + 1);
        walk.budget = Some(budget);
        (expected <= budget as u128 / 2).then_some(walk)
    }
}

/// Of up to [`SAMPLE`] rows spread evenly over `rows`, how many pass `keep`, and how many
/// were tested.
fn sample<T>(rows: &[T], keep: impl Fn(&T) -> bool) -> (usize, usize) {
    let (_, passing, seen) = sample_rows(rows, |_| true, keep);
    (passing, seen)
}

/// Of up to [`SAMPLE`] rows spread evenly over `rows`: how many pass `first`, and how
/// many of those pass `then`.
fn sample_pair<T>(
    rows: &[T],
    first: impl Fn(&T) -> bool,
    then: impl Fn(&T) -> bool,
) -> (usize, usize) {
    let (first, then, _) = sample_rows(rows, first, then);
    (first, then)
}

fn sample_rows<T>(
    rows: &[T],
    first: impl Fn(&T) -> bool,
    then: impl Fn(&T) -> bool,
) -> (usize, usize, usize) {
    let count = rows.len().min(SAMPLE);
    if count == 0 {
        return (0, 0, 0);
    }
    let step = rows.len() / count;
    let (mut passed_first, mut passed_both) = (0, 0);
    for at in 0..count {
        let row = &rows[at * step + step / 2];
        if first(row) {
            passed_first += 1;
            if then(row) {
                passed_both += 1;
            }
        }
    }
    (passed_first, passed_both, count)
}
