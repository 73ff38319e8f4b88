//! Typed queries: one generic plan, evaluated by generic code, built through thin
//! generated methods.
//!
//! # Design
//!
//! `#[derive(Entity)]` on `Order` generates one builder type, `OrderQuery<S>`, generic over
//! its *source* `S`:
//!
//! - `&Table<Order>` — from [`Table::query`]; run it with the [`Fetch`] terminals
//!   (`collect`, `count`, `exists`, `first`, `ids`, `rows`);
//! - [`Detached`] — from `Order::filter()`: a reusable filter (`Clone + Send + Sync +
//!   'static`) for [`Table::find_many`], [`Table::count_where`], [`Table::exists_where`];
//! - any other source a later context defines (a watch), through [`QueryBuilder::from_parts`].
//!
//! The builder holds nothing but its source and a [`QueryCore<Order>`]: the list of clauses
//! (each a predicate plus, for an indexed equality, an index probe), the orderings, and
//! offset/limit. Per field, the derive emits a handful of one-line methods
//! (`where_status`, `where_total_cents_gt`, `order_by_placed_at`, …) that hand a field
//! accessor to a generic `QueryCore` method; comparison, ordering, planning and execution are
//! all here, written once.
//!
//! Each generated method's capability bound (e.g. `u64: OrdField<Order, total_cents, S>`)
//! names a per-field marker type and mentions the source `S`, so it is checked where the
//! method is *called*; the capability traits (`foldkit::__private::{EqField, OrdField, ..}`) carry `#[diagnostic::on_unimplemented]`
//! messages that name the field and the fix.
//!
//! # Semantics
//!
//! Clauses AND together. Results come in ascending id order unless ordered with
//! `order_by_*` (chainable; ties fall back to ascending id). `offset` then `limit` apply
//! last. [`QueryCore::matches`] tests one row against the clauses (ignoring order, offset
//! and limit): a watcher uses it to tell whether a changed row can affect its result.
//!
//! # Planning
//!
//! Each clause on an indexed field (`where_f`, `where_f_in`, `where_f_contains` on an
//! indexed `Vec`, and on a field with an ordered index also the ranges `where_f_gt`..
//! `where_f_between`) can name its candidate rows from the index. An ordering on a field
//! with an ordered index can walk that index in order. The planner (`plan.rs`) compares
//! the costs of a scan, of reading the candidates of the smallest index clause (testing
//! the others on them), and of a walk, and takes the cheapest; [`QueryCore::explain`]
//! says which. An indexed equality never scans, and `count` on one index clause is
//! answered from bucket sizes.
//!
//! Index kinds (see the `table` module): `#[entity(index)]` is a hash index (equality in
//! `O(1)`); `#[entity(index(ordered))]` an ordered one (equality in `O(log n)`, ranges in
//! `O(log n + m)`, and `order_by_f(..).limit(k)` in about `O(log n + k)` when the other
//! clauses are rare enough not to be skipped over for long). Each indexed field costs
//! every insert and key change one index update.
//!
//! # Execution
//!
//! A scan walks the table's dense row vector. Each clause is a concrete type behind one
//! trait object whose methods loop over a run of rows (select the matching rows, narrow a
//! selection, count), so the per-row test is inlined into a tight loop and a clause costs
//! one dynamic call per run, not per row. Clauses are kept cheapest first (a comparison of
//! an inline value, then one behind a pointer, then searches, then `filter` closures), so
//! the expensive tests only see rows the cheap ones let through. `count` counts in place,
//! and nothing is cloned until a row is known to be a result. With an ordering and a
//! limit, the best `offset + limit` rows are selected without sorting the others. See
//! `exec.rs`.
//!
//! # Borrowed results
//!
//! `collect()` (and `Table::find_many`) clone the result rows: simple, and detached from
//! the read guard. [`Fetch::rows`], [`Fetch::iter`] and [`Fetch::for_each`] (and
//! `Table::find_many_ref`) hand out `&T` into the table instead, copying nothing; that is
//! the cheaper API whenever the result is read under the guard. (Rows are not stored as
//! `Arc<T>` to make `collect` cheap: the `query` bench measures both, and shared rows
//! cost every scan a pointer chase per row and every insert an allocation, while a
//! borrowed result costs nothing.)

pub(crate) mod clauses;
pub(crate) mod core;
mod exec;
pub(crate) mod fields;
mod int_lookup;
mod list;
mod order;
mod plan;
mod predicate;
pub(crate) mod probe;
mod route;
mod str_lookup;
pub(crate) use route::{KeyHasher, key_hash};

#[doc(hidden)]
pub use self::plan::Force;
pub use self::plan::Plan;

use crate::entity::Entity;
use crate::table::Table;

pub use self::core::QueryCore;
pub(crate) use self::probe::IndexProbe;

/// Sort direction for `order_by_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

pub use Direction::{Asc, Desc};

/// The source of a reusable filter: not bound to any table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Detached;

/// What every generated builder (`OrderQuery<S>`) is: a source plus a [`QueryCore`].
///
/// Contexts that run queries (tables here, watches elsewhere) build one with
/// [`from_parts`](Self::from_parts) and take it apart with [`into_parts`](Self::into_parts).
pub trait QueryBuilder: Sized {
    /// The entity the builder queries.
    type Entity: Entity;
    /// Where the rows come from.
    type Source;
    /// A builder over `source` with the clauses of `core`.
    fn from_parts(source: Self::Source, core: QueryCore<Self::Entity>) -> Self;
    /// The source and the plan.
    fn into_parts(self) -> (Self::Source, QueryCore<Self::Entity>);
    /// The plan built so far.
    fn core(&self) -> &QueryCore<Self::Entity>;
}

impl<T: Entity> QueryBuilder for QueryCore<T> {
    type Entity = T;
    type Source = Detached;
    fn from_parts(_: Detached, core: QueryCore<T>) -> Self {
        core
    }
    fn into_parts(self) -> (Detached, QueryCore<T>) {
        (Detached, self)
    }
    fn core(&self) -> &QueryCore<T> {
        self
    }
}

/// Terminals of a query over a table (`table.query()...`).
pub trait Fetch<'t, T: Entity>: QueryBuilder<Entity = T, Source = &'t Table<T>> {
    /// The matching rows, cloned, in the query's order.
    fn collect(self) -> Vec<T>
    where
        T: Clone,
    {
        let (table, core) = self.into_parts();
        core.collect(table)
    }

    /// The matching rows, borrowed, in the query's order (no row is copied).
    fn rows(self) -> Vec<&'t T> {
        let (table, core) = self.into_parts();
        core.rows(table)
    }

    /// An iterator over the matching rows, borrowed, in the query's order (no row is
    /// copied; the references are gathered first).
    fn iter(self) -> std::vec::IntoIter<&'t T> {
        self.rows().into_iter()
    }

    /// Calls `visit` with each matching row, borrowed, in the query's order.
    fn for_each(self, visit: impl FnMut(&'t T)) {
        let (table, core) = self.into_parts();
        core.for_each(table, visit);
    }

    /// The first matching row in the query's order, borrowed.
    fn first_ref(self) -> Option<&'t T> {
        let (table, core) = self.into_parts();
        core.first(table)
    }

    /// The access path the query takes on this table (scan, index, or ordered walk).
    fn explain(self) -> Plan {
        let (table, core) = self.into_parts();
        core.explain(table)
    }

    /// How many rows match (after offset and limit).
    fn count(self) -> usize {
        let (table, core) = self.into_parts();
        core.count(table)
    }

    /// Whether any row matches (after offset and limit).
    fn exists(self) -> bool {
        let (table, core) = self.into_parts();
        core.exists(table)
    }

    /// The first matching row in the query's order, cloned.
    fn first(self) -> Option<T>
    where
        T: Clone,
    {
        let (table, core) = self.into_parts();
        core.first(table).cloned()
    }

    /// The ids of the matching rows, in the query's order.
    fn ids(self) -> Vec<T::Id> {
        let (table, core) = self.into_parts();
        core.ids(table)
    }
}

impl<'t, T: Entity, B: QueryBuilder<Entity = T, Source = &'t Table<T>>> Fetch<'t, T> for B {}
