//! The `Entity` trait: what `#[derive(Entity)]` tells the runtime about a row type.
//!
//! The derive stays thin: it names the id, lists the secondary indexes and points at the
//! generated query builder. Everything that evaluates a query lives in [`crate::query`];
//! everything that stores rows and keeps indexes lives in [`crate::table`].

use std::fmt::Debug;
use std::hash::Hash;

use crate::query::QueryBuilder;
use crate::table::AnyIndex;

/// A row type stored in a [`Table`](crate::Table). Implement it with `#[derive(Entity)]`.
///
/// ```
/// use foldkit::prelude::*;
///
/// #[derive(Entity, Serialize, Deserialize, Clone, Debug)]
/// struct User {
///     #[entity(id)]
///     id: u64,
///     #[entity(index)]
///     name: String,
/// }
///
/// let mut users = Table::<User>::default();
/// users.insert(User { id: 1, name: "ada".into() });
/// assert_eq!(users.query().where_name("ada").count(), 1);
/// ```
pub trait Entity: Sized + 'static {
    /// The type of the `#[entity(id)]` field.
    type Id: EntityId;
    /// The generated query builder over a source `S` (a table, a detached filter, a watch).
    type Query<S>: QueryBuilder<Entity = Self, Source = S>;
    /// The struct's name, for messages.
    const NAME: &'static str;
    /// The row's id (the `#[entity(id)]` field).
    fn id(&self) -> &Self::Id;
    /// Fresh, empty secondary indexes, one per `#[entity(index)]` field, in declaration
    /// order. Emitted by the derive; not meant to be called.
    #[doc(hidden)]
    fn indexes() -> Vec<Box<dyn AnyIndex<Self>>>;
}

/// What an id type must be able to do: hash, compare, order, clone, print, cross threads.
#[diagnostic::on_unimplemented(
    message = "the `#[entity(id)]` field's type `{Self}` cannot be an entity id",
    label = "an id must implement `Hash + Eq + Ord + Clone + Debug + Send + Sync + 'static`",
    note = "if `{Self}` is your type, derive `Hash, PartialEq, Eq, PartialOrd, Ord, Clone, Debug` for it; otherwise use an integer, a `String` or a newtype of them as the id"
)]
pub trait EntityId: Hash + Eq + Ord + Clone + Debug + Send + Sync + 'static {}

#[diagnostic::do_not_recommend]
impl<T: Hash + Eq + Ord + Clone + Debug + Send + Sync + 'static> EntityId for T {}

/// Compile-time check, emitted by `#[derive(Entity)]` at the id field's type so a type that
/// cannot be an id is reported once, there, with the message of [`EntityId`].
#[doc(hidden)]
pub const fn assert_entity_id<T: EntityId>() {}
