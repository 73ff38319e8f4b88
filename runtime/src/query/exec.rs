//! Planning and running a [`QueryCore`] against a [`Table`].
//!
//! A scan reads the table's dense row vector (see the `table` module) in runs: per run, the
//! cheapest clause [`select`](super::predicate::Predicate::select)s the matching rows in one
//! monomorphic loop and each further clause [`refine`](super::predicate::Predicate::refine)s
//! them, so a clause costs one dynamic call per run rather than one per row. A scan that
//! may stop early (a `limit`, `first`, `exists`, a bounded `count`) reads runs of growing
//! length, starting small; one that reads everything reads a single run. `count` with a
//! single clause counts in place without collecting slots.
//!
//! When the vector is in id order, matches come out in the default (ascending id) order as
//! they are found; otherwise the matching rows are sorted by id before anything is emitted.
//! Results are references into the table until a terminal clones them (`collect`).

use std::collections::BTreeSet;
use std::ops::{ControlFlow, Range};

use super::QueryCore;
use super::probe::Buckets;
use crate::entity::Entity;
use crate::table::Table;

/// The access path the planner picked.
enum Access<'t, Id> {
    /// Read every row.
    Scan,
    /// Walk the union of these (disjoint) id buckets, `size` ids in all; clause `by` is
    /// satisfied by construction.
    Index {
        by: usize,
        size: usize,
        buckets: Buckets<'t, Id>,
    },
}

/// Rows in the first run of a scan that may stop early; each later run doubles, up to
/// [`LONGEST_RUN`].
const FIRST_RUN: usize = 64;
/// The longest run of a scan that may stop early.
const LONGEST_RUN: usize = 16 * 1024;

/// The runs `0..len` is read in: one run, or runs of growing length when `early` (the
/// caller may stop after any of them).
fn runs(len: usize, early: bool) -> impl Iterator<Item = Range<usize>> {
    let mut next = if early { FIRST_RUN } else { usize::MAX };
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= len {
            return None;
        }
        let end = start.saturating_add(next).min(len);
        next = next.saturating_mul(2).min(LONGEST_RUN.max(next));
        let run = start..end;
        start = end;
        Some(run)
    })
}

impl<T: Entity> QueryCore<T> {
    /// Picks the index-capable clause with the fewest candidates, or a scan.
    fn access<'t>(&self, table: &'t Table<T>) -> Access<'t, T::Id> {
        // (clause position, candidate count, buckets) of the best index clause so far.
        type Best<'t, Id> = Option<(usize, usize, Buckets<'t, Id>)>;
        let mut best: Best<'t, T::Id> = None;
        for (at, clause) in self.clauses.iter().enumerate() {
            let Some(buckets) = clause
                .probe
                .as_ref()
                .and_then(|probe| probe.0.buckets(table))
            else {
                continue;
            };
            let size: usize = buckets.as_slice().iter().map(|bucket| bucket.len()).sum();
            if best
                .as_ref()
                .is_none_or(|(_, best_size, _)| size < *best_size)
            {
                best = Some((at, size, buckets));
            }
        }
        match best {
            Some((by, size, buckets)) => Access::Index { by, size, buckets },
            None => Access::Scan,
        }
    }

    /// Appends the rows of `run` that pass every clause to `out`, in order.
    fn select<'t>(&self, run: &'t [T], out: &mut Vec<&'t T>) {
        match self.clauses.split_first() {
            None => out.extend(run),
            Some((first, rest)) => {
                let from = out.len();
                first.test.select(run, out);
                for clause in rest {
                    if out.len() == from {
                        break;
                    }
                    clause.test.refine(out, from);
                }
            }
        }
    }

    /// The rows passing every clause, in ascending id order, found by a scan. It may stop
    /// once it has `enough` of them (then it returns at least `enough`).
    fn scan<'t>(&self, table: &'t Table<T>, enough: usize) -> Vec<&'t T> {
        let rows = table.dense();
        let mut out = Vec::new();
        if table.is_sorted() {
            for run in runs(rows.len(), enough < rows.len()) {
                self.select(&rows[run], &mut out);
                if out.len() >= enough {
                    break;
                }
            }
        } else {
            self.select(rows, &mut out);
            out.sort_unstable_by(|a, b| a.id().cmp(b.id()));
        }
        out
    }

    /// Calls `visit` with each row of the union of `buckets` that passes every clause but
    /// `by` (which the buckets satisfy), in ascending id order, until it breaks.
    fn each_indexed<'t>(
        &self,
        table: &'t Table<T>,
        by: usize,
        buckets: &[&BTreeSet<T::Id>],
        mut visit: impl FnMut(&'t T) -> ControlFlow<()>,
    ) {
        let rest = |row: &T| {
            self.clauses
                .iter()
                .enumerate()
                .all(|(at, clause)| at == by || clause.test.test(row))
        };
        // Through the id map, not a binary search of the rows: the map is a fraction of the
        // rows' size, so its nodes stay in cache (criterion, 10 candidates in 10K rows:
        // 261 ns against 527 ns for binary searches, though callgrind counts fewer
        // instructions for the latter).
        let mut check = |id: &T::Id| match table.get(id) {
            Some(row) if rest(row) => visit(row),
            _ => ControlFlow::Continue(()),
        };
        if let [bucket] = buckets {
            for id in bucket.iter() {
                if check(id).is_break() {
                    return;
                }
            }
        } else {
            let mut ids: Vec<&T::Id> = buckets.iter().flat_map(|bucket| bucket.iter()).collect();
            ids.sort_unstable();
            ids.dedup();
            for id in ids {
                if check(id).is_break() {
                    return;
                }
            }
        }
    }

    /// The result rows, in order, after skipping `offset` and keeping at most `take`.
    fn results<'t>(&self, table: &'t Table<T>, offset: usize, take: usize) -> Vec<&'t T> {
        if take == 0 {
            return Vec::new();
        }
        let ordered = !self.order.is_empty();
        // Without an ordering, the first `offset + take` matches in id order are enough.
        let enough = if ordered {
            usize::MAX
        } else {
            offset.saturating_add(take)
        };
        let mut out = match self.access(table) {
            Access::Scan => self.scan(table, enough),
            Access::Index { by, size, buckets } => {
                let mut out = Vec::with_capacity(size.min(enough));
                self.each_indexed(table, by, buckets.as_slice(), |row| {
                    out.push(row);
                    if out.len() >= enough {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                });
                out
            }
        };
        if ordered {
            // Stable: rows arrive in id order, so ties stay in ascending id order.
            out.sort_by(|a, b| {
                self.order
                    .iter()
                    .map(|compare| compare(a, b))
                    .find(|ordering| ordering.is_ne())
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
        }
        let end = offset.saturating_add(take).min(out.len());
        out.truncate(end);
        out.drain(..offset.min(end));
        out
    }

    /// The result rows, borrowed from `table`.
    pub fn rows<'t>(&self, table: &'t Table<T>) -> Vec<&'t T> {
        self.results(table, self.offset, self.limit.unwrap_or(usize::MAX))
    }

    /// The result rows, cloned.
    pub fn collect(&self, table: &Table<T>) -> Vec<T>
    where
        T: Clone,
    {
        self.rows(table).into_iter().cloned().collect()
    }

    /// The ids of the result rows.
    pub fn ids(&self, table: &Table<T>) -> Vec<T::Id> {
        self.rows(table)
            .into_iter()
            .map(|row| row.id().clone())
            .collect()
    }

    /// The first result row.
    pub fn first<'t>(&self, table: &'t Table<T>) -> Option<&'t T> {
        let take = self.limit.map_or(1, |n| n.min(1));
        self.results(table, self.offset, take).pop()
    }

    /// The number of result rows. `O(1)` when every clause is an index clause on one bucket
    /// set (e.g. a lone indexed equality).
    pub fn count(&self, table: &Table<T>) -> usize {
        self.count_bounded(table, self.limit.unwrap_or(usize::MAX))
    }

    /// Whether there is any result row.
    pub fn exists(&self, table: &Table<T>) -> bool {
        self.limit != Some(0) && self.count_bounded(table, 1) > 0
    }

    /// The number of result rows after `self.offset`, at most `take`. Order does not
    /// matter for a count, so a scan never sorts.
    fn count_bounded(&self, table: &Table<T>, take: usize) -> usize {
        let stop = self.offset.saturating_add(take);
        let matching = match self.access(table) {
            Access::Index { size, .. } if self.clauses.len() == 1 => size,
            Access::Index { by, buckets, .. } => {
                let mut seen = 0usize;
                self.each_indexed(table, by, buckets.as_slice(), |_| {
                    seen += 1;
                    if seen >= stop {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                });
                seen
            }
            Access::Scan => self.count_scan(table.dense(), stop),
        };
        matching.saturating_sub(self.offset).min(take)
    }

    /// How many rows pass every clause, or any number `>= stop` once that many do.
    fn count_scan(&self, rows: &[T], stop: usize) -> usize {
        let early = stop < rows.len();
        let mut seen = 0;
        match self.clauses.as_slice() {
            [] => return rows.len(),
            [only] => {
                for run in runs(rows.len(), early) {
                    seen += only.test.count(&rows[run]);
                    if seen >= stop {
                        break;
                    }
                }
            }
            _ => {
                let mut selected = Vec::new();
                for run in runs(rows.len(), early) {
                    selected.clear();
                    self.select(&rows[run], &mut selected);
                    seen += selected.len();
                    if seen >= stop {
                        break;
                    }
                }
            }
        }
        seen
    }
}
