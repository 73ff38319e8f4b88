//! The errors of process managers.

use crate::Seq;
use crate::store::StoreError;

/// Why a process manager could not start, or a dead letter could not be handled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// A manager commands an aggregate the builder did not register.
    #[error(
        "process manager `{process_manager}` commands aggregate `{aggregate}` (`{rust_type}`), \
         which is not registered: add `.aggregate::<{rust_type}>()` to the Db builder"
    )]
    UnregisteredAggregate {
        /// The manager's name.
        process_manager: &'static str,
        /// The aggregate's name.
        aggregate: &'static str,
        /// The aggregate's Rust type.
        rust_type: &'static str,
    },
    /// Two registered managers share a name.
    #[error("two process managers are named `{name}`: names must be unique in a Db")]
    DuplicateName {
        /// The shared name.
        name: &'static str,
    },
    /// The store cannot keep the manager's snapshots under its name.
    #[error("process manager `{name}` cannot be stored under its name: {reason}")]
    InvalidName {
        /// The manager's name.
        name: &'static str,
        /// The store's reason.
        reason: String,
    },
    /// Every stored snapshot of the manager fails to decode.
    #[error(
        "process manager `{process_manager}`: its snapshot at position {position} does not decode \
         (was `State` changed?): {reason}"
    )]
    Snapshot {
        /// The manager's name.
        process_manager: &'static str,
        /// The newest snapshot's position.
        position: Seq,
        /// What failed.
        reason: String,
    },
    /// The store failed.
    #[error("process manager `{process_manager}`: the store failed")]
    Store {
        /// The manager's name.
        process_manager: &'static str,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The manager is not registered with this Db.
    #[error(
        "process manager `{name}` is not registered: add `.process_manager::<..>()` to the builder"
    )]
    NotRegistered {
        /// The manager's name.
        name: &'static str,
    },
    /// No dead letter has this id (handled already, or never parked).
    #[error("no dead letter {id}")]
    UnknownDeadLetter {
        /// The id asked for.
        id: String,
    },
    /// The retried reaction failed again; it stays parked.
    #[error("dead letter {id} failed again: {error}")]
    RetryFailed {
        /// The dead letter's id.
        id: String,
        /// Why it failed.
        error: String,
    },
    /// The manager stopped (failed at an event) before reaching the position.
    #[error("process manager `{name}` stopped at position {position}: {reason}")]
    Stopped {
        /// The manager's name.
        name: &'static str,
        /// The last position processed.
        position: Seq,
        /// Why it stopped.
        reason: String,
    },
    /// The Db was closed.
    #[error("the Db is closed")]
    Closed,
}
