//! What crosses the store seam: events to append, and events as stored.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use bytes::Bytes;

use crate::Seq;
use crate::db::ExpectedVersion;

/// Who and what caused an append: carried in the envelope of each event and
/// visible in [`Meta`](crate::Meta).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct EventContext {
    /// Groups the events of one workflow or request.
    pub correlation_id: Option<String>,
    /// The position of the event that caused this one (a process manager's reaction).
    pub causation: Option<Seq>,
    /// The acting user or service.
    pub actor: Option<String>,
    /// Free-form string metadata.
    pub metadata: BTreeMap<String, String>,
}

impl EventContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the correlation id.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the causing event's position.
    pub fn caused_by(mut self, position: Seq) -> Self {
        self.causation = Some(position);
        self
    }

    /// Sets the acting user or service.
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Adds one metadata entry.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.correlation_id.is_none()
            && self.causation.is_none()
            && self.actor.is_none()
            && self.metadata.is_empty()
    }
}

/// One event to append: its type's stable name and schema version, and its
/// encoded body (postcard, as [`Event::encode_into`](crate::Event) writes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The event type's stable name (`Event::NAME`).
    pub name: Arc<str>,
    /// The schema version the body was encoded with.
    pub schema_version: u32,
    /// The encoded event.
    pub payload: Vec<u8>,
}

/// The stream a batch is appended to, and what the writer believes its version is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamExpectation {
    /// The stream id (e.g. `"account/42"`); never empty.
    pub stream: String,
    /// Checked atomically with the write.
    pub expected: ExpectedVersion,
}

/// One atomic append.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppendBatch {
    /// The events, in order; never empty.
    pub events: Vec<NewEvent>,
    /// The stream the events belong to, if any.
    pub stream: Option<StreamExpectation>,
    /// Carried by every event of the batch.
    pub context: Option<Arc<EventContext>>,
    /// A retry with the same key appends nothing and returns the first result.
    pub idempotency_key: Option<String>,
}

impl AppendBatch {
    /// A batch of `events`, to no stream, without context or key.
    pub fn new(events: Vec<NewEvent>) -> Self {
        Self {
            events,
            stream: None,
            context: None,
            idempotency_key: None,
        }
    }

    /// The batch, to `stream` at the `expected` version.
    pub fn to_stream(mut self, stream: impl Into<String>, expected: ExpectedVersion) -> Self {
        self.stream = Some(StreamExpectation {
            stream: stream.into(),
            expected,
        });
        self
    }

    /// The batch, with `context` on every event.
    pub fn with_context(mut self, context: Arc<EventContext>) -> Self {
        self.context = Some(context);
        self
    }

    /// The batch, with an idempotency key.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The positions the events got, in order.
    pub positions: RangeInclusive<Seq>,
    /// The stream's version after the append (0 for a batch to no stream).
    pub stream_version: u64,
    /// `true` when an earlier append with the same idempotency key is returned
    /// and nothing was written now.
    pub deduplicated: bool,
}

/// A stream and the version of one event in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamRef {
    /// The stream id.
    pub id: Arc<str>,
    /// The event's version in the stream (the first event is 1).
    pub version: u64,
}

/// One stored event as a store returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedEvent {
    /// Its position in the Db's one order.
    pub position: Seq,
    /// When it was appended: milliseconds since the UNIX epoch (monotonic per store).
    pub timestamp: u64,
    /// The event type's stable name.
    pub name: Arc<str>,
    /// The schema version its payload was encoded with.
    pub schema_version: u32,
    /// The stream and stream version, if appended to a stream.
    pub stream: Option<StreamRef>,
    /// The batch's context, if any.
    pub context: Option<Arc<EventContext>>,
    /// The chain hash of this record, when the store keeps a hash chain
    /// (boxed: records are moved by value along every read path, and most
    /// stores keep no chain).
    pub chain_hash: Option<Box<[u8; 32]>>,
    /// The encoded event.
    pub payload: Bytes,
}

impl RecordedEvent {
    /// A recorded event with the required fields; the rest are empty.
    pub fn new(
        position: Seq,
        timestamp: u64,
        name: Arc<str>,
        schema_version: u32,
        payload: Bytes,
    ) -> Self {
        Self {
            position,
            timestamp,
            name,
            schema_version,
            stream: None,
            context: None,
            chain_hash: None,
            payload,
        }
    }

    /// `event`, encoded as a stored event at `position` (for tests and tools).
    pub fn encode<E: crate::Event>(
        position: Seq,
        timestamp: u64,
        event: &E,
    ) -> Result<Self, crate::CodecError> {
        Ok(Self::new(
            position,
            timestamp,
            Arc::from(E::NAME),
            E::VERSION,
            Bytes::from(event.encode()?),
        ))
    }

    /// The same event, in `stream` at `version`.
    pub fn in_stream(mut self, stream: Arc<str>, version: u64) -> Self {
        self.stream = Some(StreamRef {
            id: stream,
            version,
        });
        self
    }

    /// The same event, with `context`.
    pub fn with_context(mut self, context: Option<Arc<EventContext>>) -> Self {
        self.context = context;
        self
    }

    /// The same event, with a chain hash.
    pub fn with_chain_hash(mut self, hash: Option<[u8; 32]>) -> Self {
        self.chain_hash = hash.map(Box::new);
        self
    }
}
