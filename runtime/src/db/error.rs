//! The errors a [`Db`](super::Db) reports.
//!
//! A fold failure is shared by every waiter of a state (they all see the same
//! failure), so it lives behind an `Arc` in [`DbError::Fold`].

use std::path::PathBuf;
use std::sync::Arc;

use crate::Seq;
use crate::event::CodecError;
use crate::state::FoldError;
use crate::store::StoreError;

/// An error from opening, writing to or waiting on a [`Db`](super::Db).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The database directory could not be created, opened or locked.
    #[error("cannot open database directory {}", dir.display())]
    Dir {
        /// The database directory.
        dir: PathBuf,
        /// What the file system reported.
        source: std::io::Error,
    },
    /// Another `Db` (in this process or another) has the directory open.
    #[error("database directory {} is already open by another Db", dir.display())]
    AlreadyOpen {
        /// The database directory.
        dir: PathBuf,
    },
    /// An event type's stable name cannot be stored in an envelope.
    #[error("event name {name:?} cannot be stored: {reason}; set `#[event(name = \"..\")]`")]
    InvalidEventName {
        /// The event type's stable name.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two different Rust types registered with one stable event name.
    #[error(
        "event types `{first}` and `{second}` both have the stable name {name:?}: \
         a Db cannot tell their events apart; register only the newest version, or rename one"
    )]
    EventNameConflict {
        /// The shared stable name.
        name: &'static str,
        /// The Rust type registered first.
        first: &'static str,
        /// The Rust type registered second.
        second: &'static str,
    },
    /// The event type was not registered when the Db was opened (or an older
    /// schema version of a registered one was appended).
    #[error("{}", unknown_event(event, rust_type, *registered))]
    UnknownEvent {
        /// The event type's stable name.
        event: &'static str,
        /// The Rust type that was passed (`std::any::type_name`).
        rust_type: &'static str,
        /// The Rust type this Db registered under the same stable name, if any
        /// (then `rust_type` is another schema version of it).
        registered: Option<&'static str>,
    },
    /// The state type was not registered when the Db was opened.
    #[error("state `{state}` is not registered: add `.state::<{state}>()` to the Db builder")]
    UnknownState {
        /// The state type's stable name.
        state: &'static str,
    },
    /// `append_batch` was given no events.
    #[error("cannot append an empty batch of `{event}` events")]
    EmptyBatch {
        /// The event type's stable name.
        event: &'static str,
    },
    /// An event could not be encoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The store reported an error.
    #[error("the event store failed")]
    Store(#[source] StoreError),
    /// A state stopped folding: the event at `seq` could not be read, decoded or applied.
    #[error(transparent)]
    Fold(Arc<FoldFailure>),
    /// The Db was closed (or dropped) before the operation could complete.
    #[error("the Db is closed")]
    Closed,
    /// The stream was not at the expected version: nothing was appended.
    #[error("stream `{stream}` has moved: expected {expected}, but it is at version {actual}")]
    Conflict {
        /// The stream id.
        stream: String,
        /// The version the writer expected.
        expected: crate::db::streams::ExpectedVersion,
        /// The stream's version when the append was attempted.
        actual: u64,
    },
    /// A snapshot could not be encoded or decoded.
    #[error(transparent)]
    Snapshot(crate::snapshot::SnapshotError),
    /// A restored bundle's snapshot reflects events the log does not hold.
    #[error(
        "cannot restore state `{state}` at seq {seq}: the log ends at seq {last}; restore a bundle taken from this log"
    )]
    RestoreBeyondLog {
        /// The state's name.
        state: &'static str,
        /// The seq in the bundle.
        seq: Seq,
        /// The log's last seq.
        last: Seq,
    },
    /// A stream id must not be empty.
    #[error("a stream id must not be empty")]
    EmptyStreamId,
    /// A stored event could not be read back (corrupt envelope, newer schema, store error).
    #[error("cannot read the event at position {seq}")]
    Read {
        /// The event's position.
        seq: Seq,
        /// What went wrong.
        #[source]
        cause: FoldCause,
    },
}

/// The common checks, so callers need not match on variants (`DbError` is
/// `#[non_exhaustive]`).
impl DbError {
    /// A stream was not at the expected version ([`DbError::Conflict`]): nothing was
    /// written; reload and retry, or report a stale write to the client.
    pub fn is_conflict(&self) -> bool {
        matches!(self, DbError::Conflict { .. })
    }

    /// The Db was closed or dropped before the operation completed ([`DbError::Closed`]).
    pub fn is_closed(&self) -> bool {
        matches!(self, DbError::Closed)
    }

    /// Another `Db` holds the directory ([`DbError::AlreadyOpen`]).
    pub fn is_already_open(&self) -> bool {
        matches!(self, DbError::AlreadyOpen { .. })
    }

    /// A type (event or state) was used without being registered on the builder
    /// ([`DbError::UnknownEvent`], [`DbError::UnknownState`]): a programming error.
    pub fn is_not_registered(&self) -> bool {
        matches!(
            self,
            DbError::UnknownEvent { .. } | DbError::UnknownState { .. }
        )
    }

    /// The stream's version when a [`DbError::Conflict`] was detected.
    pub fn conflict_version(&self) -> Option<u64> {
        match self {
            DbError::Conflict { actual, .. } => Some(*actual),
            _ => None,
        }
    }

    /// The failed event, when a state stopped folding ([`DbError::Fold`]).
    pub fn fold_failure(&self) -> Option<&FoldFailure> {
        match self {
            DbError::Fold(failure) => Some(failure),
            _ => None,
        }
    }
}

/// Why a state stopped folding, or skipped an event: which state, which event, what.
#[derive(Debug, thiserror::Error)]
#[error("state `{state}` cannot fold the event at position {seq}{}", event.as_deref().map(|e| format!(" (`{e}`)")).unwrap_or_default())]
#[non_exhaustive]
pub struct FoldFailure {
    /// The state's stable name.
    pub state: &'static str,
    /// The position of the event that failed (for a store error: the next to read).
    pub seq: Seq,
    /// The event type's stable name, when the event was read.
    pub event: Option<std::sync::Arc<str>>,
    /// What went wrong.
    #[source]
    pub cause: FoldCause,
}

/// What went wrong when folding one record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FoldCause {
    /// The event body does not decode (or upcast) to the state's event type.
    #[error("the event does not decode")]
    Decode(#[source] CodecError),
    /// `Apply::apply` returned an error.
    #[error("apply failed")]
    Apply(#[source] FoldError),
    /// Reading the store failed.
    #[error("reading the store failed")]
    Store(#[source] StoreError),
    /// A stream held an event of another type than the one asked for.
    #[error("the event is a `{found}`, not a `{expected}`")]
    OtherType {
        /// The stored event's type name.
        found: std::sync::Arc<str>,
        /// The type name asked for.
        expected: &'static str,
    },
    /// `Apply::apply` panicked; the state may be half-updated, so it stops.
    #[error("apply panicked")]
    Panicked,
}

impl From<CodecError> for FoldCause {
    fn from(error: CodecError) -> Self {
        FoldCause::Decode(error)
    }
}

impl From<FoldError> for FoldCause {
    fn from(error: FoldError) -> Self {
        FoldCause::Apply(error)
    }
}

impl From<StoreError> for DbError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict {
                stream,
                expected,
                actual,
            } => DbError::Conflict {
                stream,
                expected,
                actual,
            },
            StoreError::Closed => DbError::Closed,
            other => DbError::Store(other),
        }
    }
}

/// The text of [`DbError::UnknownEvent`]: it names the type the caller passed.
fn unknown_event(event: &str, rust_type: &str, registered: Option<&str>) -> String {
    match registered {
        Some(registered) => format!(
            "event type `{rust_type}` is not the one this Db registered the name {event:?} for: \
             it holds `{registered}`, the current schema version (older versions are \
             only read and upcast); append `{registered}` events, or write older \
             versions in a test with `foldkit::testing::write_legacy`"
        ),
        None => format!(
            "event type `{rust_type}` (stable name {event:?}) is not registered with this Db: \
             register a state that folds it with `.state::<S>()`, an aggregate with \
             `.aggregate::<A>()`, or the event itself with `.event::<{rust_type}>()` on the builder"
        ),
    }
}
