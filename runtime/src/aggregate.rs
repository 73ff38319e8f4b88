//! Aggregates: the write side. A command is checked against the current state of
//! one aggregate instance (one account, one counter) and turned into events.
//!
//! `handle` decides, `apply` evolves: `handle` never mutates and `apply` never
//! fails, so replaying an instance's events always rebuilds the state `handle`
//! saw. The runtime appends the events of one command as one atomic batch, guarded
//! by the instance's version (optimistic concurrency).

use crate::event::Event;

/// A consistency boundary: validates commands against its state and emits events.
///
/// ```
/// use foldkit::prelude::*;
///
/// #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// enum CounterEvent { Incremented { by: u64 } }
///
/// #[derive(Default, Clone)]
/// struct Counter { value: u64 }
///
/// #[derive(Debug, PartialEq, thiserror::Error)]
/// enum CounterError {
///     #[error("the counter would overflow")]
///     Overflow,
/// }
///
/// impl Aggregate for Counter {
///     const NAME: &'static str = "counter";
///     type Event = CounterEvent;
///     type Command = u64;
///     type Error = CounterError;
///
///     fn handle(&self, by: u64) -> Result<Vec<CounterEvent>, CounterError> {
///         self.value.checked_add(by).ok_or(CounterError::Overflow)?;
///         Ok(vec![CounterEvent::Incremented { by }])
///     }
///
///     fn apply(&mut self, event: &CounterEvent) {
///         match event { CounterEvent::Incremented { by } => self.value += by }
///     }
/// }
/// # let mut c = Counter::default();
/// # for e in c.handle(2).unwrap() { c.apply(&e); }
/// # assert_eq!(c.value, 2);
///
/// // `?` turns a refused command (or a Db error) into a `Box<dyn Error>`.
/// async fn add(db: &Db, by: u64) -> Result<u64, Box<dyn std::error::Error>> {
///     Ok(db.aggregate::<Counter>().execute("hits", by).await?.state.value)
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a foldkit aggregate",
    label = "this type does not implement `foldkit::Aggregate`",
    note = "write `impl Aggregate for {Self}` with `NAME`, `Event`, `Command`, `Error`, `handle` and `apply`"
)]
pub trait Aggregate: Default + Clone + Send + Sync + 'static {
    /// Stable name of the aggregate type (e.g. `"account"`). Stream ids are scoped by it.
    const NAME: &'static str;
    /// The events this aggregate emits and is rebuilt from.
    type Event: Event + Clone;
    /// What callers ask the aggregate to do.
    type Command;
    /// Why a command was rejected by the domain (no event is written then): any
    /// `std::error::Error + Send + Sync + 'static` (see [`AggregateError`]), so that
    /// `execute(..).await?` converts into `Box<dyn Error>` or `anyhow::Error`.
    type Error: AggregateError;

    /// Decides which events a command produces, given the current state. Must not
    /// mutate: the runtime applies the events itself once they are durable.
    fn handle(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Evolves the state by one event. Must not fail: events are facts.
    fn apply(&mut self, event: &Self::Event);
}

/// What [`Aggregate::Error`] must be: a `std::error::Error + Send + Sync + 'static`.
///
/// Implemented for every such type; derive one with `#[derive(Debug, thiserror::Error)]`
/// (a `String` is not an error type: wrap it). It exists only to give a clear
/// compile error when the bound does not hold.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an aggregate's `Error`: it must implement `std::error::Error + Send + Sync + 'static`",
    label = "not a `std::error::Error + Send + Sync + 'static`",
    note = "derive it: `#[derive(Debug, thiserror::Error)]` with an `#[error(\"...\")]` message per variant",
    note = "a `String` or `&str` is not an error type: wrap it in an enum or struct that derives `thiserror::Error`"
)]
pub trait AggregateError {
    /// The value as a `std::error::Error` trait object (for generic code).
    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static);
}

#[diagnostic::do_not_recommend]
impl<T: std::error::Error + Send + Sync + 'static> AggregateError for T {
    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }
}
