//! The errors of subscriptions.

use crate::Seq;
use crate::event::CodecError;
use crate::store::StoreError;

/// Why a subscription could not start, deliver or acknowledge.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// The store cannot keep a checkpoint under this name.
    #[error("subscription name {name:?} cannot be used: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Why it is refused (the runtime's check or the store's).
        reason: String,
    },
    /// A filter names an event type the Db did not register.
    #[error(
        "subscription filter on event type `{rust_type}` (stable name {event:?}), which this Db \
         does not register: add `.event::<{rust_type}>()` (or a state or aggregate using it) to the builder"
    )]
    UnknownEvent {
        /// The event type's stable name.
        event: &'static str,
        /// The Rust type.
        rust_type: &'static str,
    },
    /// A subscription of this name is running in this Db already.
    #[error("subscription {name:?} is already running in this Db")]
    AlreadyActive {
        /// The name.
        name: String,
    },
    /// `ack` was given a position the subscription has not read yet.
    #[error(
        "subscription {name:?} cannot acknowledge position {position}: it has read up to {scanned}"
    )]
    AckAhead {
        /// The subscription's name.
        name: String,
        /// The position given.
        position: Seq,
        /// The last position read.
        scanned: Seq,
    },
    /// A stored event does not decode as the subscribed type.
    #[error("the event at position {position} does not decode")]
    Decode {
        /// Its position.
        position: Seq,
        /// Why.
        #[source]
        source: CodecError,
    },
    /// The store failed (reading the checkpoint or the log, or writing the checkpoint).
    #[error("subscription {name:?}: the store failed")]
    Store {
        /// The subscription's name (empty for `db.events`).
        name: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
}
