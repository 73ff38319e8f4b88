//! The Db runtime: appends events to one ordered log (behind the store seam)
//! and folds them into states.
//!
//! - [`builder`]: what to fold and where to store;
//! - [`db`]: the store, append and close;
//! - [`registry`]: the event types a Db knows;
//! - [`fold`]: the task that folds the log into one state;
//! - [`handle`]: reading a state and waiting for it to catch up;
//! - [`snapshots`]: where states start, bundles, time travel, compaction;
//!   [`prefetch`]: a state's newest snapshot decoded while the log recovers;
//! - [`streams`] and [`aggregates`]: streams with optimistic concurrency, commands.

mod aggregates;
mod body;
mod builder;
mod close;
#[allow(clippy::module_inception)] // `db::db` holds the `Db` type; the folder is the runtime.
mod db;
mod error;
mod fold;
mod handle;
mod open_report;
mod policy;
mod prefetch;
mod registry;
mod snapshots;
mod streams;

pub use aggregates::{Aggregates, ExecuteError, Executed, Loaded};
pub use builder::DbBuilder;
pub use db::Db;
pub(crate) use db::Inner as DbInner;
pub use error::{DbError, FoldCause, FoldFailure};
pub(crate) use handle::{FoldStatus, StateCell};
pub use handle::{Handle, ReadGuard};
pub use open_report::{OpenReport, RejectedSnapshot, SnapshotUse, StateOpened};
pub use policy::FoldErrorPolicy;
pub use streams::{ExpectedVersion, StoredEvent, StreamAppend};
