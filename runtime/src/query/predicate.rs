//! The clause kernel: a row test compiled into the loops a scan runs, its cost class,
//! and a clause (a test plus, for index-capable clauses, an index probe).
//!
//! Kept apart from the plan builder (`core.rs`) and the index probes (`probe.rs`)
//! because this is the part the executor's speed depends on: one dynamic call per clause
//! and per run of rows, never per row.

use std::sync::Arc;

use super::probe::IndexProbe;

/// A row test. Every implementor is a [`Predicate`] through the blanket impl, which
/// compiles the loops over runs of rows once per test type (an implementor whose test is
/// not known at compile time, `int_lookup.rs`, brings its own loops instead).
pub(crate) trait RowTest<T>: Send + Sync {
    /// Whether `row` passes.
    fn pass(&self, row: &T) -> bool;

    /// Appends each row of `rows` that passes to `out`, in order.
    fn select<'t>(&self, rows: &'t [T], out: &mut Vec<&'t T>) {
        for row in rows {
            if self.pass(row) {
                out.push(row);
            }
        }
    }

    /// Removes from `selected[from..]` the rows that fail, keeping the order.
    fn refine(&self, selected: &mut Vec<&T>, from: usize) {
        let mut kept = from;
        for at in from..selected.len() {
            let row = selected[at];
            if self.pass(row) {
                selected[kept] = row;
                kept += 1;
            }
        }
        selected.truncate(kept);
    }

    /// How many of `rows` pass.
    fn count(&self, rows: &[T]) -> usize {
        rows.iter().filter(|row| self.pass(row)).count()
    }
}

/// A row test, with the loops that apply it to a run of rows compiled once per clause.
///
/// A scan makes one dynamic call per clause and per run of rows (not per row): inside
/// [`select`](Self::select), [`refine`](Self::refine) and [`count`](Self::count) the test
/// is a concrete type whose test the compiler inlines into the loop.
pub(crate) trait Predicate<T>: Send + Sync {
    /// Whether `row` passes.
    fn test(&self, row: &T) -> bool;
    /// Appends each row of `rows` that passes to `out`, in order.
    fn select<'t>(&self, rows: &'t [T], out: &mut Vec<&'t T>);
    /// Removes from `selected[from..]` the rows that fail, keeping the order.
    fn refine(&self, selected: &mut Vec<&T>, from: usize);
    /// How many of `rows` pass.
    fn count(&self, rows: &[T]) -> usize;
}

impl<T, P: RowTest<T>> Predicate<T> for P {
    #[inline]
    fn test(&self, row: &T) -> bool {
        self.pass(row)
    }

    fn select<'t>(&self, rows: &'t [T], out: &mut Vec<&'t T>) {
        RowTest::select(self, rows, out)
    }

    fn refine(&self, selected: &mut Vec<&T>, from: usize) {
        RowTest::refine(self, selected, from)
    }

    fn count(&self, rows: &[T]) -> usize {
        RowTest::count(self, rows)
    }
}

/// A closure as a row test.
pub(super) struct Test<F>(pub(super) F);

impl<T, F: Fn(&T) -> bool + Send + Sync> RowTest<T> for Test<F> {
    #[inline(always)]
    fn pass(&self, row: &T) -> bool {
        (self.0)(row)
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
    pub(super) fn of<F>() -> Self {
        if std::mem::needs_drop::<F>() {
            Self::Indirect
        } else {
            Self::Inline
        }
    }
}

/// One `where_*` or `filter` clause: a row test, its cost class, and for index-capable
/// clauses the probe that names the candidate rows without scanning (the same object as
/// the test, so an indexed clause is one allocation, and one reference count).
pub(super) struct Clause<T> {
    kind: Kind<T>,
    pub(super) cost: Cost,
}

/// What a clause holds: a plain row test, or a probe that is its row test too.
enum Kind<T> {
    Test(Arc<dyn Predicate<T>>),
    Probe(IndexProbe<T>),
}

impl<T> Clause<T> {
    /// A clause that only tests rows.
    pub(super) fn test_only(test: Arc<dyn Predicate<T>>, cost: Cost) -> Self {
        Self {
            kind: Kind::Test(test),
            cost,
        }
    }

    /// An index-capable clause: `probe` is its row test as well.
    pub(super) fn probed(probe: IndexProbe<T>, cost: Cost) -> Self {
        Self {
            kind: Kind::Probe(probe),
            cost,
        }
    }

    /// The clause's row test.
    #[inline]
    pub(super) fn test(&self) -> &dyn Predicate<T> {
        match &self.kind {
            Kind::Test(test) => &**test,
            Kind::Probe(probe) => probe.get(),
        }
    }

    /// The clause's index probe, if it can name its candidates from an index.
    #[inline]
    pub(super) fn probe(&self) -> Option<&IndexProbe<T>> {
        match &self.kind {
            Kind::Test(_) => None,
            Kind::Probe(probe) => Some(probe),
        }
    }
}

impl<T> Clone for Clause<T> {
    fn clone(&self) -> Self {
        let kind = match &self.kind {
            Kind::Test(test) => Kind::Test(test.clone()),
            Kind::Probe(probe) => Kind::Probe(probe.clone()),
        };
        Self {
            kind,
            cost: self.cost,
        }
    }
}
