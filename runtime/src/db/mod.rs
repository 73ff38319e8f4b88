//! The Db runtime: appends events to logs on disk and folds them into states.
//!
//! - [`builder`]: what to fold and how to store it;
//! - [`db`]: the directory, its logs, append and close;
//! - [`envelope`]: the bytes of one stored event;
//! - [`fold`]: the task that folds one log into one state;
//! - [`handle`]: reading a state and waiting for it to catch up.

mod aggregates;
mod builder;
mod cancel;
mod close;
#[allow(clippy::module_inception)] // `db::db` holds the `Db` type; the folder is the runtime.
mod db;
mod envelope;
mod error;
mod fold;
mod handle;
mod log_name;
mod policy;
mod snapshots;
mod start;
mod streams;

pub use aggregates::{Aggregates, ExecuteError, Executed, Loaded};
pub use builder::DbBuilder;
pub use db::Db;
pub use envelope::{Envelope, EnvelopeError};
pub use error::{DbError, FoldCause, FoldFailure};
pub(crate) use handle::{FoldStatus, StateCell};
pub use handle::{Handle, ReadGuard};
pub use policy::FoldErrorPolicy;
pub use start::{RejectedSnapshot, StartReport, StartSource};
pub use streams::{ExpectedVersion, StoredEvent, StreamAppend};
