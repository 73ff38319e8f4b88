//! Running a [`QueryCore`] against a [`Table`] along the access path the planner picked
//! (`plan.rs`).
//!
//! A scan reads the table's dense row vector in runs: per run, the cheapest clause
//! [`select`](super::predicate::Predicate::select)s the matching rows in one monomorphic
//! loop and each further clause [`refine`](super::predicate::Predicate::refine)s them, so a
//! clause costs one dynamic call per run rather than one per row. An index path reads its
//! candidate slots in runs the same way, testing every clause but the one that named them.
//!
//! Matching rows go to a [`Sink`]:
//! - no ordering and rows arriving in id order (the row vector is in id order): the first
//!   `offset + limit` are the result, and the scan (or the index read) stops there;
//! - a limit otherwise: a top-k selection ([`TopK`]) of `offset + limit` rows by the
//!   query's order, then ascending id — never a sort of every match. A scan feeding it
//!   reads each run of rows in whichever order is cheaper, as measured on the runs
//!   before: the clauses first (when they reject more rows), or first the comparison
//!   with the worst row selected so far (when it does: late in a scan whose best rows
//!   are already found, almost every row fails it), then the clauses on the rest;
//! - no limit: every match, sorted once at the end.
//!
//! A walk of an ordered index emits rows in the query's order already: bucket by bucket
//! (a bucket holds one key, so its rows tie on the first ordering and are ordered by the
//! rest, then id), stopping once `offset + limit` rows passed the other clauses.
//!
//! Results are references into the table until a terminal clones them (`collect`).

use std::cmp::Ordering;
use std::ops::{ControlFlow, Range};

use super::Direction;
use super::QueryCore;
use super::order::{ById, SortKey, TopK};
use super::plan::{Access, Want};
use super::predicate::Clause;
use super::probe::{Buckets, Candidates, IndexProbe};
use crate::entity::Entity;
use crate::table::{Bucket, Slot, Table};

/// Rows in the first run of a scan that may stop early; each later run doubles, up to
/// [`LONGEST_RUN`].
const FIRST_RUN: usize = 64;
/// The longest run of a scan that may stop early.
const LONGEST_RUN: usize = 16 * 1024;
/// Rows per run of a scan feeding a top-k selection: few enough that the matches are
/// still in cache when they are offered.
const TOP_RUN: usize = 64;
/// Runs after which a scan feeding a top-k selection measures again the share it has not
/// measured for the longest.
const REMEASURE: usize = 32;
/// Candidates per run of an index read (the first runs of one that may stop early are
/// shorter, see [`index_runs`]).
const INDEX_RUN: usize = 256;

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

/// The lengths of the runs an index read takes: growing from 16 when it may stop early.
fn index_runs(early: bool) -> impl Iterator<Item = usize> {
    let mut next = if early { 16 } else { INDEX_RUN };
    std::iter::from_fn(move || {
        let run = next;
        next = (next * 2).min(INDEX_RUN);
        Some(run)
    })
}

/// The slots of `buckets` (pairwise disjoint, each ascending, `size` in all, every
/// slot below `rows`) in ascending order. Many of the rows: marked in a bitmap of
/// the table and read back in order (a pass over `rows / 64` words); few: gathered
/// and sorted (each bucket is a run the stable sort merges).
fn in_slot_order(buckets: &[&Bucket], size: usize, rows: usize) -> SlotOrder {
    if size.saturating_mul(16) >= rows {
        let mut words = vec![0u64; rows.div_ceil(64)];
        for bucket in buckets {
            for slot in bucket.iter() {
                let slot = slot as usize;
                words[slot / 64] |= 1 << (slot % 64);
            }
        }
        SlotOrder::Bits {
            words,
            at: 0,
            word: 0,
        }
    } else {
        let mut slots: Vec<Slot> = buckets.iter().flat_map(|bucket| bucket.iter()).collect();
        slots.sort();
        SlotOrder::Sorted(slots.into_iter())
    }
}

/// Slots in ascending order, from [`in_slot_order`].
enum SlotOrder {
    /// Set bits of `words`; `word` is what is left of `words[at - 1]`.
    Bits {
        words: Vec<u64>,
        at: usize,
        word: u64,
    },
    Sorted(std::vec::IntoIter<Slot>),
}

impl Iterator for SlotOrder {
    type Item = Slot;

    #[inline]
    fn next(&mut self) -> Option<Slot> {
        match self {
            SlotOrder::Sorted(slots) => slots.next(),
            SlotOrder::Bits { words, at, word } => {
                while *word == 0 {
                    *word = *words.get(*at)?;
                    *at += 1;
                }
                let bit = word.trailing_zeros();
                *word &= *word - 1;
                // Below `rows`, which came from a `u32` slot count.
                Some(((*at - 1) * 64) as Slot + bit)
            }
        }
    }
}

/// Where matching rows go (see the module docs).
enum Sink<'t, T> {
    /// Rows arrive in the result order: keep the first `k`.
    First { out: Vec<&'t T>, k: usize },
    /// Keep the best `k` by the query's order.
    Top(TopK<'t, T>),
    /// Keep every row, to sort at the end.
    All(Vec<&'t T>),
}

impl<T: Entity> QueryCore<T> {
    /// The sort key at position `from` of the orderings, or the id after the last one.
    fn key_at(&self, from: usize) -> &dyn SortKey<T> {
        match self.order.get(from) {
            Some(key) => &*key.key,
            None => &ById,
        }
    }

    /// How `a` and `b` compare after the key at `from` ties: by the later orderings, then
    /// by id (equal when `from` is the id itself).
    fn tie(&self, from: usize, a: &T, b: &T) -> Ordering {
        if from >= self.order.len() {
            return Ordering::Equal;
        }
        for key in &self.order[from + 1..] {
            let order = key.key.cmp(a, b);
            if order.is_ne() {
                return order;
            }
        }
        a.id().cmp(b.id())
    }

    /// Appends to `out` the best `k` of `rows` by the orderings from `from` on (then id),
    /// in order; leaves `rows` in any order.
    fn best_into<'t>(&self, rows: &mut Vec<&'t T>, from: usize, k: usize, out: &mut Vec<&'t T>) {
        if rows.len() <= 1 {
            out.extend(rows.iter().take(k));
            return;
        }
        let first = self.key_at(from);
        let rest = |a: &T, b: &T| self.tie(from, a, b);
        if k < rows.len() / 2 {
            let mut top = TopK::new(k);
            first.offer(rows, &mut top, &rest);
            out.extend(top.finish(first, &rest));
            return;
        }
        first.sort(rows, &rest);
        out.extend(rows.iter().take(k));
    }

    /// The sink for the first `k` results (all with `None`) of rows that arrive in id
    /// order iff `in_id_order`.
    fn sink<'t>(&self, k: Option<usize>, in_id_order: bool) -> Sink<'t, T> {
        match k {
            _ if self.order.is_empty() && in_id_order => Sink::First {
                out: Vec::new(),
                k: k.unwrap_or(usize::MAX),
            },
            Some(k) => Sink::Top(TopK::new(k)),
            None => Sink::All(Vec::new()),
        }
    }

    /// The rows `sink` kept, in the result order.
    fn finish<'t>(&self, sink: Sink<'t, T>) -> Vec<&'t T> {
        match sink {
            Sink::First { mut out, k } => {
                out.truncate(k);
                out
            }
            Sink::Top(top) => {
                let rest = |a: &T, b: &T| self.tie(0, a, b);
                top.finish(self.key_at(0), &rest)
            }
            Sink::All(mut out) => {
                let rest = |a: &T, b: &T| self.tie(0, a, b);
                self.key_at(0).sort(&mut out, &rest);
                out
            }
        }
    }

    /// Appends the rows of `run` that pass every clause to `out`, in order.
    fn select<'t>(&self, run: &'t [T], out: &mut Vec<&'t T>) {
        match self.clauses.split_first() {
            None => out.extend(run),
            Some((first, rest)) => {
                let from = out.len();
                first.test().select(run, out);
                for clause in rest {
                    if out.len() == from {
                        break;
                    }
                    clause.test().refine(out, from);
                }
            }
        }
    }

    /// Scans every row into `sink`, stopping once it is full.
    fn scan_into<'t>(&self, table: &'t Table<T>, sink: &mut Sink<'t, T>) {
        let rows = table.dense();
        match sink {
            Sink::First { out, k } => {
                for run in runs(rows.len(), *k < rows.len()) {
                    self.select(&rows[run], out);
                    if out.len() >= *k {
                        break;
                    }
                }
            }
            Sink::All(out) => self.select(rows, out),
            Sink::Top(top) => {
                let first = self.key_at(0);
                let rest = |a: &T, b: &T| self.tie(0, a, b);
                let mut run = Vec::with_capacity(TOP_RUN);
                // The shares of rows that pass the clauses (measured on runs read clauses
                // first) and that come before the worst selected row (measured on runs
                // read comparison first), and how many runs ago each was measured: each is
                // measured again now and then, as the selection fills with better rows.
                let (mut passing, mut before) = (1.0f64, 1.0f64);
                let (mut since_passing, mut since_before) = (usize::MAX, usize::MAX);
                for chunk in rows.chunks(TOP_RUN) {
                    run.clear();
                    let size = chunk.len() as f64;
                    let worst = top.worst().filter(|_| {
                        since_before >= REMEASURE || since_passing < REMEASURE && before < passing
                    });
                    if let Some(worst) = worst {
                        first.select_before(chunk, worst, &rest, &mut run);
                        (before, since_before) = (run.len() as f64 / size, 0);
                        since_passing = since_passing.saturating_add(1);
                        for clause in self.clauses.iter() {
                            if run.is_empty() {
                                break;
                            }
                            clause.test().refine(&mut run, 0);
                        }
                    } else {
                        self.select(chunk, &mut run);
                        (passing, since_passing) = (run.len() as f64 / size, 0);
                        since_before = since_before.saturating_add(1);
                    }
                    first.offer(&run, top, &rest);
                }
            }
        }
    }

    /// Appends to `out` the rows of the next `max` slots of `slots` that pass `others`;
    /// returns whether `slots` ran out.
    fn gather<'t>(
        rows: &'t [T],
        slots: &mut impl Iterator<Item = Slot>,
        others: &[&Clause<T>],
        out: &mut Vec<&'t T>,
        max: usize,
    ) -> bool {
        let from = out.len();
        out.extend(slots.by_ref().take(max).map(|slot| &rows[slot as usize]));
        let exhausted = out.len() - from < max;
        for clause in others {
            if out.len() == from {
                break;
            }
            clause.test().refine(out, from);
        }
        exhausted
    }

    /// Appends to `out` the rows of `slots` that pass `others` until `out` holds `k`, in
    /// runs that grow from short ones.
    fn take_first<'t>(
        rows: &'t [T],
        mut slots: impl Iterator<Item = Slot>,
        others: &[&Clause<T>],
        out: &mut Vec<&'t T>,
        k: usize,
    ) {
        for run in index_runs(true) {
            let exhausted = Self::gather(rows, &mut slots, others, out, run.min(k - out.len()));
            if exhausted || out.len() >= k {
                break;
            }
        }
    }

    /// The clauses not in `skip` (positions).
    fn others(&self, skip: &[usize]) -> Vec<&Clause<T>> {
        self.clauses
            .iter()
            .enumerate()
            .filter(|(at, _)| !skip.contains(at))
            .map(|(_, clause)| clause)
            .collect()
    }

    /// Reads the `size` candidates of `buckets` (clause `by` holds on them) into `sink`.
    fn index_into<'t>(
        &self,
        table: &'t Table<T>,
        by: usize,
        (buckets, size): (&Buckets<'t>, usize),
        sink: &mut Sink<'t, T>,
    ) {
        let rows = table.dense();
        let others = self.others(&[by]);
        let buckets = buckets.as_slice();
        match sink {
            Sink::First { out, k } => {
                out.reserve(size.min(*k));
                match buckets {
                    [one] => Self::take_first(rows, one.iter(), &others, out, *k),
                    many => {
                        // Rows must arrive in id order, which (the rows being in id
                        // order) is slot order.
                        let slots = in_slot_order(many, size, rows.len());
                        Self::take_first(rows, slots, &others, out, *k);
                    }
                }
            }
            Sink::All(out) => {
                out.reserve(size);
                let mut slots = buckets.iter().flat_map(|bucket| bucket.iter());
                Self::gather(rows, &mut slots, &others, out, usize::MAX);
            }
            Sink::Top(top) => {
                let first = self.key_at(0);
                let rest = |a: &T, b: &T| self.tie(0, a, b);
                let mut slots = buckets.iter().flat_map(|bucket| bucket.iter());
                let mut run = Vec::with_capacity(size.min(INDEX_RUN));
                loop {
                    run.clear();
                    let exhausted = Self::gather(rows, &mut slots, &others, &mut run, INDEX_RUN);
                    first.offer(&run, top, &rest);
                    if exhausted {
                        break;
                    }
                }
            }
        }
    }

    /// Walks `probe` in `direction`: the first `k` results in order, or `None` once more
    /// than `budget` rows were read.
    fn walk<'t>(
        &self,
        table: &'t Table<T>,
        probe: &IndexProbe<T>,
        direction: Direction,
        satisfied: &[usize],
        budget: Option<usize>,
        k: usize,
    ) -> Option<Vec<&'t T>> {
        let rows = table.dense();
        // A bucket's slots are in result order when they are in id order and nothing but
        // the walked key orders the rows.
        let in_order = table.is_sorted() && self.order.len() == 1;
        let others = self.others(satisfied);
        let mut out: Vec<&'t T> = Vec::with_capacity(k.min(64));
        let mut read = 0usize;
        let mut over = false;
        let mut group: Vec<&'t T> = Vec::new();
        probe.get().walk(table, direction, &mut |bucket| {
            let mut slots = bucket.iter();
            if in_order {
                // Take the bucket's rows in order until `k` are in.
                while out.len() < k {
                    let need = k - out.len();
                    if Self::gather(rows, &mut slots, &others, &mut out, need) {
                        break;
                    }
                }
            } else {
                group.clear();
                Self::gather(rows, &mut slots, &others, &mut group, usize::MAX);
                self.best_into(&mut group, 1, k - out.len(), &mut out);
            }
            read = read.saturating_add(bucket.len());
            if out.len() >= k {
                return ControlFlow::Break(());
            }
            if budget.is_some_and(|budget| read > budget) {
                over = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        });
        (!over).then_some(out)
    }

    /// The first `k` results in order (all with `None`), along `access`.
    fn run<'t>(&self, table: &'t Table<T>, access: Access<'t, T>, k: Option<usize>) -> Vec<&'t T> {
        match access {
            Access::Scan => {
                let mut sink = self.sink(k, table.is_sorted());
                self.scan_into(table, &mut sink);
                self.finish(sink)
            }
            Access::Index { by, size, buckets } => {
                let mut sink = self.sink(k, table.is_sorted());
                self.index_into(table, by, (&buckets, size), &mut sink);
                self.finish(sink)
            }
            Access::Walk {
                probe,
                direction,
                satisfied,
                budget,
                otherwise,
            } => {
                let limit = k.unwrap_or(usize::MAX);
                match self.walk(table, &probe, direction, &satisfied, budget, limit) {
                    Some(rows) => rows,
                    None => self.run(table, *otherwise, k),
                }
            }
        }
    }

    /// The result rows, in order, after skipping `offset` and keeping at most `take`.
    fn results<'t>(&self, table: &'t Table<T>, offset: usize, take: usize) -> Vec<&'t T> {
        if take == 0 || table.is_empty() {
            return Vec::new();
        }
        if let Some(rows) = self.one_bucket(table, offset, take) {
            return rows;
        }
        let k = offset.saturating_add(take);
        let k = (k < table.len()).then_some(k);
        let access = self.access(table, Want::Rows { k });
        let mut out = self.run(table, access, k);
        out.drain(..offset.min(out.len()));
        out
    }

    /// The results of a query that is one index lookup of one key and nothing else (no
    /// ordering, no other clause), on a table whose rows are stored in id order: the
    /// bucket's rows, read straight into a vector of the right size. `None` when the query
    /// is not of that shape, or when the planner would scan instead (the bucket holds too
    /// many of the rows), so the general path decides.
    ///
    /// It is what the general path does for such a query (the bucket's slots are in id
    /// order, so its rows are the result), without the planning, the sink and the runs
    /// that the general path needs for everything else: for a lookup that returns a
    /// handful of rows those cost more than the lookup itself (issue #18).
    fn one_bucket<'t>(
        &self,
        table: &'t Table<T>,
        offset: usize,
        take: usize,
    ) -> Option<Vec<&'t T>> {
        let [clause] = self.clauses.as_slice() else {
            return None;
        };
        let probe = clause.probe()?;
        if !self.order.is_empty() || self.force.is_some() || !table.is_sorted() {
            return None;
        }
        if probe.get().is_range() {
            return None;
        }
        let Candidates::Exact { buckets, size } = probe.get().candidates(table, usize::MAX) else {
            return None;
        };
        let bucket = match buckets.as_slice() {
            [] => return Some(Vec::new()),
            [bucket] => *bucket,
            _ => return None,
        };
        if !Self::index_beats_scan(size, 1, table.len()) {
            return None;
        }
        let rows = table.dense();
        match bucket.as_slice() {
            // A slice's `skip` and `take` are index arithmetic, and the loop knows its
            // length: about a third of the instructions of the bucket iterator's chain
            // (callgrind, the `eq_probe` example). Collected, not extended into a vector
            // made beforehand: the slice iterator's exact length sizes the one allocation
            // and the loop writes without a capacity check.
            Some(slots) => {
                let slots = slots.get(offset..).unwrap_or_default();
                let slots = &slots[..take.min(slots.len())];
                Some(slots.iter().map(|&slot| &rows[slot as usize]).collect())
            }
            None => {
                let mut out = Vec::with_capacity(size.saturating_sub(offset).min(take));
                out.extend(
                    bucket
                        .iter()
                        .skip(offset)
                        .take(take)
                        .map(|slot| &rows[slot as usize]),
                );
                Some(out)
            }
        }
    }

    /// The result rows, borrowed from `table`.
    pub fn rows<'t>(&self, table: &'t Table<T>) -> Vec<&'t T> {
        self.results(table, self.offset, self.limit.unwrap_or(usize::MAX))
    }

    /// Calls `visit` with each result row, borrowed from `table`, in order.
    pub fn for_each<'t>(&self, table: &'t Table<T>, visit: impl FnMut(&'t T)) {
        self.rows(table).into_iter().for_each(visit);
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

    /// The number of result rows. `O(1)` when the only clause is an indexed equality (the
    /// bucket's size).
    pub fn count(&self, table: &Table<T>) -> usize {
        self.count_bounded(table, self.limit.unwrap_or(usize::MAX))
    }

    /// Whether there is any result row.
    pub fn exists(&self, table: &Table<T>) -> bool {
        self.limit != Some(0) && self.count_bounded(table, 1) > 0
    }

    /// The number of result rows after `self.offset`, at most `take`. Order does not
    /// matter for a count, so nothing is sorted.
    fn count_bounded(&self, table: &Table<T>, take: usize) -> usize {
        let stop = self.offset.saturating_add(take);
        let matching = match self.access(table, Want::Count) {
            Access::Index { size, .. } if self.clauses.len() == 1 => size,
            Access::Index { by, buckets, .. } => {
                let (rows, others) = (table.dense(), self.others(&[by]));
                let mut slots = buckets.as_slice().iter().flat_map(|bucket| bucket.iter());
                let mut run = Vec::new();
                let mut seen = 0usize;
                for length in index_runs(stop < usize::MAX) {
                    run.clear();
                    let exhausted = Self::gather(rows, &mut slots, &others, &mut run, length);
                    seen += run.len();
                    if exhausted || seen >= stop {
                        break;
                    }
                }
                seen
            }
            Access::Scan | Access::Walk { .. } => self.count_scan(table.dense(), stop),
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
                    seen += only.test().count(&rows[run]);
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
