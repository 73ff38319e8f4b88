//! The errors a store reports across the seam.

use crate::Seq;
use crate::db::ExpectedVersion;

/// An error from an [`EventStore`](super::EventStore).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The stream was not at the expected version: nothing was appended.
    #[error("stream `{stream}` has moved: expected {expected}, but it is at version {actual}")]
    Conflict {
        /// The stream id.
        stream: String,
        /// The version the writer expected.
        expected: ExpectedVersion,
        /// The stream's version when the append was attempted.
        actual: u64,
    },
    /// Another store (in this process or another) has the data open.
    #[error("{what} is already open by another Db")]
    AlreadyOpen {
        /// What is open (the directory).
        what: String,
    },
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
    /// The batch was malformed (empty, an empty stream id, a name too long, ..).
    #[error("invalid append: {0}")]
    InvalidBatch(String),
    /// A name the store cannot keep: a state's snapshots or a subscription's
    /// checkpoint under it (empty, control characters, too long once escaped, ..).
    #[error("{kind} {name:?} cannot be stored: {reason}")]
    InvalidName {
        /// What kind of name it is ("state name", "subscription name", ..).
        kind: &'static str,
        /// The name given.
        name: String,
        /// Why the store refuses it.
        reason: String,
    },
    /// A value given to the store is beyond what it can keep (a position past
    /// PostgreSQL's `bigint`): nothing was written.
    #[error("{what} {value} is out of range: this store keeps at most {max}")]
    OutOfRange {
        /// What the value is ("snapshot position", ..).
        what: String,
        /// The value given.
        value: u64,
        /// The largest value the store keeps.
        max: u64,
    },
    /// The position is not (or no longer) stored.
    #[error("position {position} is not stored (the store holds {first:?}..={last:?})")]
    NotFound {
        /// The position asked for.
        position: Seq,
        /// The first stored position, if any.
        first: Option<Seq>,
        /// The last stored position, if any.
        last: Option<Seq>,
    },
    /// Stored data failed a check: `what` names the place (segment and offset,
    /// table and row, file), `reason` the check.
    #[error("corrupt data at {what}: {reason}")]
    Corrupt {
        /// Where the damage is.
        what: String,
        /// What check failed.
        reason: String,
    },
    /// The store's data is of a format this build does not read.
    #[error("{what} has format version {found}; this build reads {supported}")]
    Format {
        /// What was opened.
        what: String,
        /// The version found.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The store was opened read-only (an inspecting tool): it writes nothing.
    #[error("{what} is open read-only: cannot {operation}")]
    ReadOnly {
        /// The store (its description).
        what: String,
        /// What was refused ("append", "write a snapshot", ..).
        operation: &'static str,
    },
    /// The store does not implement this (optional) operation.
    #[error("{what} cannot {operation}")]
    Unsupported {
        /// The store (its description).
        what: String,
        /// What it cannot do ("list snapshot names", ..).
        operation: &'static str,
    },
    /// What was opened holds no foldkit data (a database without its tables).
    #[error("{what} is not a foldkit store: {reason}")]
    NotAStore {
        /// What was opened (a directory, a database URL without credentials).
        what: String,
        /// What is missing.
        reason: String,
    },
    /// The backend (file system, database server, ..) reported an error.
    #[error("{action}")]
    Backend {
        /// What was being done, and where.
        action: String,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl StoreError {
    /// A backend error: `action` says what was being done and where.
    pub fn backend(
        action: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        StoreError::Backend {
            action: action.into(),
            source: source.into(),
        }
    }

    /// Whether this is an optimistic-concurrency conflict.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }
}
