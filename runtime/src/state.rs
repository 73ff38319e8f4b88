//! States: what the runtime folds an event log into.
//!
//! A state is a plain struct (`#[derive(State)]`, `#[state(event = E)]`) whose
//! `Apply<E>` impl says how one event changes it. The runtime drives the fold:
//! record → decode + upcast ([`Event::decode`]) → [`State::apply_event`]. `apply`
//! must be pure (same events in, same state out: no clock, no randomness, no I/O),
//! which is what makes replay, snapshots and time travel agree with each other.

use std::any::{TypeId, type_name};
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Seq;
use crate::db::FoldCause;
use crate::event::Event;
use crate::store::{EventContext, RecordedEvent};

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

/// A state the runtime folds from the Db's one log. Derive it with
/// `#[derive(State)]` and `#[state(event = E)]` or `#[state(events(E1, E2, ..))]`.
///
/// A state folds exactly the event types it lists, in log order; records of
/// other types are skipped from their header (the payload is not decoded) and
/// still advance the state's applied position, so `wait_for_seq(s)` works for
/// any position `s` of the Db.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a foldkit state",
    label = "this type does not implement `foldkit::State`",
    note = "add `#[derive(State, Default, Serialize, Deserialize)]` and `#[state(event = YourEvent)]` to the struct"
)]
pub trait State: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Stable name of the state (model), used to name its snapshots.
    const NAME: &'static str;
    /// Schema version of the state (`#[state(version = N)]`, default 1).
    const VERSION: u32;
    /// Fingerprint of the struct's definition: changes when its fields change, so a
    /// snapshot written by another definition is detected and the state is replayed.
    const FINGERPRINT: u64;
    /// The event types this state folds, in the order listed.
    const EVENTS: &'static [EventType];

    /// Folds one stored event if it is of a type this state folds: decodes (and
    /// upcasts) it and applies it. `Ok(false)`: not one of this state's types.
    fn apply_recorded(&mut self, event: &RecordedEvent, meta: &Meta) -> Result<bool, FoldCause>;
}

/// An event type as registered with a Db: its stable name and Rust type.
#[derive(Clone, Copy)]
pub struct EventType {
    pub(crate) name: &'static str,
    pub(crate) id: fn() -> TypeId,
    pub(crate) rust_name: fn() -> &'static str,
}

impl EventType {
    /// The registration of event type `E`.
    pub const fn of<E: Event>() -> Self {
        Self {
            name: E::NAME,
            id: TypeId::of::<E>,
            rust_name: type_name::<E>,
        }
    }

    /// The stable name (`Event::NAME`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The Rust type's name.
    pub fn rust_name(&self) -> &'static str {
        (self.rust_name)()
    }

    pub(crate) fn type_id(&self) -> TypeId {
        (self.id)()
    }
}

impl std::fmt::Debug for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventType")
            .field("name", &self.name)
            .field("rust_name", &self.rust_name())
            .finish()
    }
}

/// Decodes `event` as `E` if it is of type `E` (the derive's building block).
#[doc(hidden)]
pub fn decode_if<E: Event>(event: &RecordedEvent) -> Result<Option<E>, FoldCause> {
    if &*event.name != E::NAME {
        return Ok(None);
    }
    Ok(Some(E::decode(event.schema_version, &event.payload)?))
}

/// What the runtime knows about the event being applied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Meta {
    /// The event's position in the Db's one log.
    pub seq: Seq,
    /// When the event was appended: milliseconds since the UNIX epoch.
    pub timestamp: u64,
    /// The schema version the event was stored with (before upcasting).
    pub version: u32,
    /// The event type's stable name: read it with [`event_name`](Self::event_name).
    event_name: Arc<str>,
    /// The stream (aggregate instance) the event was appended to: read it with
    /// [`stream_id`](Self::stream_id).
    stream_id: Option<Arc<str>>,
    /// The event's version in its stream: [`stream_version`](Self::stream_version).
    stream_version: Option<u64>,
    /// Who and what caused the append: [`context`](Self::context).
    context: Option<Arc<EventContext>>,
}

impl Meta {
    /// Metadata for an event at `seq`, appended at `timestamp` (ms since the UNIX
    /// epoch), stored with schema `version`.
    pub fn new(seq: Seq, timestamp: u64, version: u32) -> Self {
        Self {
            seq,
            timestamp,
            version,
            event_name: Arc::from(""),
            stream_id: None,
            stream_version: None,
            context: None,
        }
    }

    /// The metadata of a stored event.
    pub fn of(event: &RecordedEvent) -> Self {
        Self {
            seq: event.position,
            timestamp: event.timestamp,
            version: event.schema_version,
            event_name: Arc::clone(&event.name),
            stream_id: event.stream.as_ref().map(|s| Arc::clone(&s.id)),
            stream_version: event.stream.as_ref().map(|s| s.version),
            context: event.context.clone(),
        }
    }

    /// The same metadata, for an event of the stream `stream_id`.
    pub fn with_stream_id(mut self, stream_id: impl Into<Arc<str>>) -> Self {
        self.stream_id = Some(stream_id.into());
        self
    }

    /// The stream (aggregate instance) the event was appended to, if any:
    /// `"<aggregate name>/<id>"` for events written by `execute`, or the id given
    /// to `Db::append_to`.
    pub fn stream_id(&self) -> Option<&str> {
        self.stream_id.as_deref()
    }

    /// The event type's stable name (`Event::NAME`).
    pub fn event_name(&self) -> &str {
        &self.event_name
    }

    /// The event's version in its stream (the first event is 1), if in a stream.
    pub fn stream_version(&self) -> Option<u64> {
        self.stream_version
    }

    /// Who and what caused the append (correlation, causation, actor, metadata).
    pub fn context(&self) -> Option<&EventContext> {
        self.context.as_deref()
    }

    /// The correlation id of the append, if one was given.
    pub fn correlation_id(&self) -> Option<&str> {
        self.context.as_deref()?.correlation_id.as_deref()
    }

    /// The position of the event that caused this one, if given.
    pub fn causation(&self) -> Option<Seq> {
        self.context.as_deref()?.causation
    }

    /// The acting user or service, if given.
    pub fn actor(&self) -> Option<&str> {
        self.context.as_deref()?.actor.as_deref()
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
