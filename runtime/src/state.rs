//! States: what the runtime folds an event log into.
//!
//! A state is a plain struct (`#[derive(State)]`, `#[state(event = E)]`) whose
//! `Apply<E>` impl says how one event changes it. The runtime drives the fold:
//! record → decode + upcast ([`Event::decode`]) → [`State::apply_event`]. `apply`
//! must be pure (same events in, same state out: no clock, no randomness, no I/O),
//! which is what makes replay, snapshots and time travel agree with each other.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Seq;
use crate::event::Event;

/// How a state changes when an event of type `E` is folded into it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not say how to apply `{E}`",
    label = "missing `impl Apply<{E}> for {Self}`",
    note = "write `impl Apply<{E}> for {Self} {{ fn apply(&mut self, event: {E}, meta: &Meta) -> Result<(), FoldError> {{ .. }} }}`"
)]
pub trait Apply<E> {
    /// Folds one event into the state. Must be pure: same events in, same state out.
    fn apply(&mut self, event: E, meta: &Meta) -> Result<(), FoldError>;
}

/// A state the runtime folds from the log of [`State::Event`]. Derive it with
/// `#[derive(State)]` and `#[state(event = E)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a foldkit state",
    label = "this type does not implement `foldkit::State`",
    note = "add `#[derive(State, Default, Serialize, Deserialize)]` and `#[state(event = YourEvent)]` to the struct"
)]
pub trait State: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The event type whose log this state is folded from.
    type Event: Event;
    /// Stable name of the state (model), used to name its snapshots.
    const NAME: &'static str;
    /// Schema version of the state (`#[state(version = N)]`, default 1).
    const VERSION: u32;
    /// Fingerprint of the struct's definition: changes when its fields change, so a
    /// snapshot written by another definition is detected and the state is replayed.
    const FINGERPRINT: u64;

    /// Folds one decoded event into the state.
    fn apply_event(&mut self, event: Self::Event, meta: &Meta) -> Result<(), FoldError>;
}

/// What the runtime knows about the event being applied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Meta {
    /// The event's sequence number in its log.
    pub seq: Seq,
    /// When the event was appended: milliseconds since the UNIX epoch.
    pub timestamp: u64,
    /// The schema version the event was stored with (before upcasting).
    pub version: u32,
    /// The stream (aggregate instance) the event was appended to: read it with
    /// [`stream_id`](Self::stream_id).
    stream_id: Option<Arc<str>>,
}

impl Meta {
    /// Metadata for an event at `seq`, appended at `timestamp` (ms since the UNIX
    /// epoch), stored with schema `version`.
    pub fn new(seq: Seq, timestamp: u64, version: u32) -> Self {
        Self {
            seq,
            timestamp,
            version,
            stream_id: None,
        }
    }

    /// The same metadata, for an event of the stream `stream_id`.
    pub fn with_stream_id(mut self, stream_id: impl Into<Arc<str>>) -> Self {
        self.stream_id = Some(stream_id.into());
        self
    }

    pub(crate) fn with_optional_stream_id(mut self, stream_id: Option<&str>) -> Self {
        self.stream_id = stream_id.map(Arc::from);
        self
    }

    /// The stream (aggregate instance) the event was appended to, if any:
    /// `"<aggregate name>/<id>"` for events written by `execute`, or the id given
    /// to `Db::append_to`.
    pub fn stream_id(&self) -> Option<&str> {
        self.stream_id.as_deref()
    }
}

/// An error returned by [`Apply::apply`]: the event could not be folded.
///
/// The runtime attaches the state's name and the event's seq when it reports it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct FoldError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl FoldError {
    /// A fold error with a message saying what was wrong.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// A fold error caused by another error.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// The message given when the error was made.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// A state field that snapshots can store: `Serialize + DeserializeOwned`.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "state field of type `{Self}` cannot be snapshotted: it does not implement `Serialize` and `Deserialize`",
    label = "this field's type must implement `Serialize` and `Deserialize`",
    note = "add `#[derive(Serialize, Deserialize)]` to `{Self}`, or keep the field out of the state"
)]
pub trait SnapshotField {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> SnapshotField for T {}

/// Compile-time check, emitted by `#[derive(State)]` for every field.
#[doc(hidden)]
pub const fn assert_snapshot_field<T: SnapshotField>() {}

/// What a state type itself must implement, checked once by `#[derive(State)]` so a
/// missing derive is one error that lists them all.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a foldkit state: it must implement `Default`, `Serialize`, `Deserialize`, `Send` and `Sync`",
    label = "a state is snapshotted and shared between threads",
    note = "add `#[derive(Default, Serialize, Deserialize)]` to `{Self}` (use `foldkit::prelude::*` for the serde derives), and keep its fields `Send + Sync`"
)]
pub trait StateBounds: Default + Serialize + DeserializeOwned + Send + Sync + 'static {}

#[diagnostic::do_not_recommend]
impl<T: Default + Serialize + DeserializeOwned + Send + Sync + 'static> StateBounds for T {}

/// Compile-time check, emitted by `#[derive(State)]` at the state's name.
#[doc(hidden)]
pub const fn assert_state<T: StateBounds>() {}
