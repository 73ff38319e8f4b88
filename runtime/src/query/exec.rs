//! Planning and running a [`QueryCore`] against a [`Table`].

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use super::QueryCore;
use crate::entity::Entity;
use crate::table::Table;

/// The access path the planner picked.
enum Access<'t, Id> {
    /// Walk every row in id order.
    Scan,
    /// Walk the union of these (disjoint) id buckets; clause `by` is satisfied by construction.
    Index {
        by: usize,
        buckets: Vec<&'t BTreeSet<Id>>,
    },
}

impl<T: Entity> QueryCore<T> {
    /// Picks the index-capable clause with the fewest candidates, or a scan.
    fn access<'t>(&self, table: &'t Table<T>) -> Access<'t, T::Id> {
        let mut best: Option<(usize, usize, Vec<&'t BTreeSet<T::Id>>)> = None;
        for (at, clause) in self.clauses.iter().enumerate() {
            let Some(buckets) = clause
                .probe
                .as_ref()
                .and_then(|probe| probe.0.buckets(table))
            else {
                continue;
            };
            let size: usize = buckets.iter().map(|bucket| bucket.len()).sum();
            if best
                .as_ref()
                .is_none_or(|(_, best_size, _)| size < *best_size)
            {
                best = Some((at, size, buckets));
            }
        }
        match best {
            Some((by, _, buckets)) => Access::Index { by, buckets },
            None => Access::Scan,
        }
    }

    /// Calls `visit` with each matching row in ascending id order until it breaks.
    fn each_match<'t>(&self, table: &'t Table<T>, mut visit: impl FnMut(&'t T) -> ControlFlow<()>) {
        match self.access(table) {
            Access::Scan => {
                for row in table.rows().values() {
                    if self.matches(row) && visit(row).is_break() {
                        return;
                    }
                }
            }
            Access::Index { by, buckets } => {
                let rest = |row: &T| {
                    self.clauses
                        .iter()
                        .enumerate()
                        .all(|(at, clause)| at == by || (clause.test)(row))
                };
                let mut check = |id: &T::Id| match table.rows().get(id) {
                    Some(row) if rest(row) => visit(row),
                    _ => ControlFlow::Continue(()),
                };
                if let [bucket] = buckets.as_slice() {
                    for id in bucket.iter() {
                        if check(id).is_break() {
                            return;
                        }
                    }
                } else {
                    let mut ids: Vec<&T::Id> =
                        buckets.iter().flat_map(|bucket| bucket.iter()).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    for id in ids {
                        if check(id).is_break() {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Calls `emit` with each result row, in order, after offset and limit.
    fn each_result<'t>(&self, table: &'t Table<T>, mut emit: impl FnMut(&'t T)) {
        let take = self.limit.unwrap_or(usize::MAX);
        if take == 0 {
            return;
        }
        if self.order.is_empty() {
            let (mut skipped, mut taken) = (0, 0);
            self.each_match(table, |row| {
                if skipped < self.offset {
                    skipped += 1;
                    return ControlFlow::Continue(());
                }
                emit(row);
                taken += 1;
                if taken == take {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            return;
        }
        let mut rows = Vec::new();
        self.each_match(table, |row| {
            rows.push(row);
            ControlFlow::Continue(())
        });
        // Stable: rows arrive in id order, so ties stay in ascending id order.
        rows.sort_by(|a, b| {
            self.order
                .iter()
                .map(|compare| compare(a, b))
                .find(|ordering| ordering.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        rows.into_iter().skip(self.offset).take(take).for_each(emit);
    }

    /// The result rows, borrowed from `table`.
    pub fn rows<'t>(&self, table: &'t Table<T>) -> Vec<&'t T> {
        let mut out = Vec::new();
        self.each_result(table, |row| out.push(row));
        out
    }

    /// The result rows, cloned.
    pub fn collect(&self, table: &Table<T>) -> Vec<T>
    where
        T: Clone,
    {
        let mut out = Vec::new();
        self.each_result(table, |row| out.push(row.clone()));
        out
    }

    /// The ids of the result rows.
    pub fn ids(&self, table: &Table<T>) -> Vec<T::Id> {
        let mut out = Vec::new();
        self.each_result(table, |row| out.push(row.id().clone()));
        out
    }

    /// The first result row.
    pub fn first<'t>(&self, table: &'t Table<T>) -> Option<&'t T> {
        if self.order.is_empty() {
            let mut first = None;
            let take = self.limit.map_or(1, |n| n.min(1));
            self.clone()
                .limit(take)
                .each_result(table, |row| first = Some(row));
            return first;
        }
        self.rows(table).into_iter().next()
    }

    /// The number of result rows. `O(1)` when every clause is an index clause on one bucket
    /// set (e.g. a lone indexed equality).
    pub fn count(&self, table: &Table<T>) -> usize {
        let take = self.limit.unwrap_or(usize::MAX);
        let matching = match self.access(table) {
            Access::Index { buckets, .. } if self.clauses.len() == 1 => {
                buckets.iter().map(|bucket| bucket.len()).sum()
            }
            _ => {
                let stop = self.offset.saturating_add(take);
                let mut seen = 0usize;
                self.each_match(table, |_| {
                    seen += 1;
                    if seen >= stop {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                });
                seen
            }
        };
        matching.saturating_sub(self.offset).min(take)
    }

    /// Whether there is any result row.
    pub fn exists(&self, table: &Table<T>) -> bool {
        self.limit != Some(0) && self.clone().limit(1).count(table) > 0
    }
}
