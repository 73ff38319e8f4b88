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
//! Each clause on an indexed field (`where_f`, `where_f_in`, and `where_f_contains` on an
//! indexed `Vec`) can name its candidate rows from the index. The planner asks every such
//! clause for its candidates and walks the smallest set, testing only the other clauses;
//! with no index-capable clause it scans the table. An indexed equality never scans, and
//! `count` on index clauses alone is `O(1)` (the bucket's size). Range clauses scan:
//! indexes are hash indexes (see the `table` module).
//!
//! Why no ordered (B-tree) index: a range or `order_by` over an in-memory table is a scan
//! of the dense row vector, which runs at the speed of a hand-written loop (the `query`
//! bench: 10K rows in a few microseconds). An ordered index would win only for very
//! selective ranges and for `order_by_f(..).limit(k)` with small `k`, and every indexed
//! field would cost every insert and update a tree update plus a clone of the key. The
//! hash index pays where scans hurt most: equality lookups and counts, which it answers
//! without touching the other rows.
//!
//! # Execution
//!
//! A scan walks the table's dense row vector. Each clause is a concrete closure behind one
//! trait object whose methods loop over a run of rows (select the matching slots, narrow a
//! selection, count), so the per-row test is inlined into a tight loop and a clause costs
//! one dynamic call per run, not per row. Clauses are kept cheapest first (a comparison of
//! an inline value, then one behind a pointer, then searches, then `filter` closures), so
//! the expensive tests only see rows the cheap ones let through. `count` counts in place,
//! and nothing is cloned until a row is known to be a result. Matches come out in id order
//! when the row vector is (rows inserted in ascending id order, the usual case for a fold);
//! otherwise the matching slots are sorted by id first. See `exec.rs`.

pub(crate) mod clauses;
pub(crate) mod core;
mod exec;
pub(crate) mod fields;
mod predicate;
pub(crate) mod probe;
mod route;
pub(crate) use route::KeyHasher;

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

    /// The matching rows, borrowed, in the query's order.
    fn rows(self) -> Vec<&'t T> {
        let (table, core) = self.into_parts();
        core.rows(table)
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
