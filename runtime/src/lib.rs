//! foldkit: derive-driven, embedded event sourcing.
//!
//! Describe the domain with derives — [`Event`] (a versioned codec with upcasting),
//! [`Entity`] (rows with typed queries and indexes), [`State`] (what events fold
//! into) — and a [`Db`] folds an append-only, crash-safe log on disk into
//! in-memory state that you query, [watch], snapshot and restart from.
//! [`Aggregate`]s add commands with optimistic concurrency.
//!
//! ```
//! use foldkit::prelude::*;
//!
//! #[derive(Event, Serialize, Deserialize, Clone, Debug)]
//! enum TaskEvent {
//!     Added { id: u64, title: String },
//!     Done { id: u64 },
//! }
//!
//! #[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! struct Task {
//!     #[entity(id)]
//!     id: u64,
//!     title: String,
//!     #[entity(index)]
//!     done: bool,
//! }
//!
//! #[derive(State, Default, Serialize, Deserialize)]
//! #[state(event = TaskEvent)]
//! struct Board {
//!     tasks: Table<Task>,
//! }
//!
//! impl Apply<TaskEvent> for Board {
//!     fn apply(&mut self, event: TaskEvent, _meta: &Meta) -> Result<(), FoldError> {
//!         match event {
//!             TaskEvent::Added { id, title } => {
//!                 self.tasks.insert(Task { id, title, done: false });
//!             }
//!             TaskEvent::Done { id } => {
//!                 self.tasks.update(&id, |task| task.done = true);
//!             }
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir()?;
//! let db = Db::builder(dir.path()).state::<Board>().open().await?;
//! db.append(TaskEvent::Added { id: 1, title: "write docs".into() }).await?;
//! let seq = db.append(TaskEvent::Done { id: 1 }).await?;
//! let board = db.state::<Board>();
//! board.wait_for_seq(seq).await?; // read your writes
//! assert_eq!(board.read().tasks.query().where_done(true).count(), 1);
//! db.close().await?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod aggregate;
mod chain;
#[cfg(feature = "cli")]
pub mod cli;
mod db;
pub mod entity;
mod event;
pub mod inspect;
pub mod observability;
pub mod process;
pub mod query;
pub mod snapshot;
mod state;
pub mod store;
pub mod subscribe;
pub mod table;
pub mod testing;
pub mod watch;

pub use foldkit_macros::{Entity, Event, State};
pub use foldkit_storage as storage;
pub use foldkit_storage::{FsyncPolicy, Seq};

pub use aggregate::{Aggregate, AggregateError};
pub use db::{
    Aggregates, Db, DbBuilder, DbError, ExecuteError, Executed, ExpectedVersion, FoldCause,
    FoldErrorPolicy, FoldFailure, Handle, Loaded, OpenReport, ReadGuard, RejectedSnapshot,
    SnapshotUse, StateOpened, StoredEvent, StreamAppend,
};
pub use entity::{Entity, EntityId};
pub use event::{CodecError, Event};
pub use process::{ProcessManager, Reaction, Reacts};
pub use query::{Asc, Desc, Detached, Direction, Fetch, QueryBuilder, QueryCore};
pub use state::{Apply, EventType, FoldError, Meta, State};
pub use store::{EventContext, EventStore, FileStore, RecordedEvent};
pub use subscribe::{Events, Subscription};
pub use table::Table;

/// The errors foldkit returns, in one place to match on.
///
/// Most callers need only the checks: [`DbError::is_conflict`],
/// [`DbError::is_closed`], [`ExecuteError::rejected`], [`ExecuteError::is_conflict`].
/// Every type here is also at the crate root; [`DbError`] and [`ExecuteError`] are
/// in the [`prelude`].
pub mod error {
    pub use crate::db::{DbError, ExecuteError, FoldCause, FoldFailure};
    pub use crate::event::CodecError;
    pub use crate::process::ProcessError;
    pub use crate::snapshot::{IdentityMismatch, SnapshotError};
    pub use crate::state::FoldError;
    pub use crate::store::StoreError;
    pub use crate::store::file::EnvelopeError;
    pub use crate::subscribe::SubscribeError;
    pub use foldkit_storage::StorageError;
}

/// serde, re-exported: the foldkit derives expand to paths through it.
///
/// The `Serialize`/`Deserialize` derives in the prelude are serde's own, and their
/// expansion names the `serde` crate: a crate that uses them depends on `serde` (with the
/// `derive` feature) itself, or adds `#[serde(crate = "foldkit::serde")]` to each type.
pub use serde;

/// Everything a user needs to model a domain: `use foldkit::prelude::*;`.
pub mod prelude {
    pub use crate::query::{Asc, Desc, Fetch, QueryBuilder};
    pub use crate::watch::WatchQuery;
    pub use crate::{Aggregate, Apply, Entity, Event, FoldError, Meta, State, Table};
    pub use crate::{
        Db, DbError, ExecuteError, ExpectedVersion, FoldErrorPolicy, FsyncPolicy, Handle,
    };
    pub use serde::{Deserialize, Serialize};
}

#[doc(hidden)]
pub mod __private {
    //! Items the derives expand to. Not public API: no stability promise.
    pub use crate::db::FoldCause;
    pub use crate::entity::assert_entity_id;
    pub use crate::event::{
        NoEvent, UpcastFrom, check_previous, decode_oldest, decode_with_previous,
    };
    pub use crate::query::clauses::{Clauses, FieldOf, IntoValue, Values};
    pub use crate::query::fields::{
        ContainsField, EqField, IndexKey, OptionField, OrdField, OrderedKey, SortField,
    };
    pub use crate::query::probe::IndexProbe;
    pub use crate::state::{
        EventType, SnapshotField, StateBounds, assert_snapshot_field, assert_state, decode_if,
    };
    pub use crate::store::RecordedEvent;
    pub use crate::table::index::{AnyIndex, Keys, index_each, index_one, index_ordered};
    /// Rows per chunk of a table's binary layout (for tests that pin the layout).
    pub const TABLE_CHUNK_ROWS: usize = crate::table::serde_impl::CHUNK_ROWS;
    pub use std::ops::Bound::{Excluded, Included, Unbounded};

    /// Checks `table`'s internal invariants (slots, id order, every index's buckets), for
    /// tests: `Err` names the first one broken.
    pub fn check_table<T: crate::Entity>(table: &crate::Table<T>) -> Result<(), String> {
        table.check_invariants()
    }
    pub use crate::query::Force;

    /// How many live watch streams follow `table` (for tests of the watch registry).
    pub fn watchers<T: crate::Entity>(table: &crate::Table<T>) -> usize {
        table.watchers()
    }
    pub use std::boxed::Box;
    pub use std::ops::Bound;
    pub use std::vec::Vec;
}
