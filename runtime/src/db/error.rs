//! The errors a [`Db`](super::Db) reports.
//!
//! A fold failure is shared by every waiter of a state (they all see the same
//! failure), so it lives behind an `Arc` in [`DbError::Fold`].

use std::path::PathBuf;
use std::sync::Arc;

use foldkit_storage::StorageError;

use crate::Seq;
use crate::db::envelope::EnvelopeError;
use crate::event::CodecError;
use crate::state::FoldError;

/// An error from opening, writing to or waiting on a [`Db`](super::Db).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The database directory could not be created, opened or locked.
    #[error("cannot open database directory {}: {source}", dir.display())]
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
    /// An event type's stable name cannot name a log directory.
    #[error("event name {name:?} cannot name a log: {reason}; set `#[event(name = \"..\")]`")]
    InvalidEventName {
        /// The event type's stable name.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two different Rust types registered with one stable event name.
    #[error(
        "event types `{first}` and `{second}` both have the stable name {name:?}: \
         one log cannot hold both; register only the newest version, or rename one"
    )]
    EventNameConflict {
        /// The shared stable name.
        name: &'static str,
        /// The Rust type registered first.
        first: &'static str,
        /// The Rust type registered second.
        second: &'static str,
    },
    /// The event type was not registered when the Db was opened.
    #[error(
        "event `{event}` has no log in this Db: register a state folded from it with \
         `.state::<S>()` or the event itself with `.event::<{event}>()` on the builder"
    )]
    UnknownEvent {
        /// The event type's stable name.
        event: &'static str,
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
    /// A record envelope could not be written (e.g. a stream id too long).
    #[error("cannot append `{event}`: {source}")]
    Envelope {
        /// The event type's stable name.
        event: &'static str,
        /// What is wrong with the envelope.
        source: EnvelopeError,
    },
    /// The log of an event type reported an error.
    #[error("log `{log}`: {source}")]
    Storage {
        /// The log's (directory) name.
        log: String,
        /// What the storage layer reported.
        source: StorageError,
    },
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
    /// A snapshot file could not be written or listed.
    #[error(transparent)]
    SnapshotIo(crate::snapshot::SnapshotIoError),
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
    /// A stored event could not be read back (corrupt envelope, newer schema, storage error).
    #[error("cannot read event {seq} of log `{log}`: {cause}")]
    Read {
        /// The log's name.
        log: String,
        /// The event's seq.
        seq: Seq,
        /// What went wrong.
        #[source]
        cause: FoldCause,
    },
}

/// Why a state stopped folding, or skipped an event: which state, which seq, what.
#[derive(Debug, thiserror::Error)]
#[error("state `{state}` cannot fold event {seq} of log `{log}`: {cause}")]
#[non_exhaustive]
pub struct FoldFailure {
    /// The state's stable name.
    pub state: &'static str,
    /// The log the state folds.
    pub log: String,
    /// The seq of the event that failed (for a storage error: the next seq to read).
    pub seq: Seq,
    /// What went wrong.
    #[source]
    pub cause: FoldCause,
}

/// What went wrong when folding one record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FoldCause {
    /// The record's envelope is malformed.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The event body does not decode (or upcast) to the state's event type.
    #[error(transparent)]
    Decode(#[from] CodecError),
    /// `Apply::apply` returned an error.
    #[error("apply failed: {0}")]
    Apply(#[from] FoldError),
    /// Reading the log failed.
    #[error("reading the log failed: {0}")]
    Storage(#[from] StorageError),
    /// `Apply::apply` panicked; the state may be half-updated, so it stops.
    #[error("apply panicked")]
    Panicked,
}
