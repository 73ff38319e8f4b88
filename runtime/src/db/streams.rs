//! Streams: the events of one aggregate instance, appended with optimistic concurrency.
//!
//! A stream is the subsequence of the Db's one log whose events carry a given
//! stream id. Its version is the number of events in it (0: no such stream).
//! The store keeps the stream index and checks an [`ExpectedVersion`] atomically
//! with the append, so two writers of one stream (in any process) never both
//! succeed at one version, while writers of different streams proceed in
//! parallel, sharing the log's group commit.

use std::fmt;
use std::ops::RangeInclusive;
use std::sync::Arc;

use crate::Seq;
use crate::db::db::Db;
use crate::db::error::{DbError, FoldCause};
use crate::event::Event;
use crate::state::Meta;
use crate::store::{AppendBatch, EventContext, RecordedEvent};

/// What the writer believes a stream's version is, checked atomically with the append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectedVersion {
    /// Append whatever the version.
    Any,
    /// The stream must not exist yet (version 0).
    NoStream,
    /// The stream must be at exactly this version (its number of events).
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream at version `actual` satisfies this expectation.
    pub fn admits(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => actual == v,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream (version 0)"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// The result of appending to a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAppend {
    /// The seqs the events got in their log.
    pub seqs: RangeInclusive<Seq>,
    /// The stream's version after the append.
    pub version: u64,
}

/// One event of a stream, with where and when it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent<E> {
    /// The event, upcast to the current schema.
    pub event: E,
    /// Its seq, timestamp, stored schema version and stream id.
    pub meta: Meta,
    /// The stream's version once this event is applied (the first event is 1).
    pub stream_version: u64,
}

impl Db {
    /// Appends `events` to the stream `stream_id` as one atomic batch, if the
    /// stream is at the `expected` version; otherwise nothing is written and the
    /// error is [`DbError::Conflict`] with the actual version. The check is made
    /// by the store, atomically with the write (every store, every process).
    ///
    /// # Cancel safety
    ///
    /// As [`Db::append`]: the batch is appended whole or not at all.
    pub async fn append_to<E: Event>(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: impl IntoIterator<Item = E>,
    ) -> Result<StreamAppend, DbError> {
        let (appended, _) = self
            .append_to_with(stream_id, expected, events, None, None)
            .await?;
        Ok(appended)
    }

    /// [`append_to`](Self::append_to) with a context on every event and an
    /// idempotency key; the flag says the store returned an earlier append
    /// with the same key (nothing was written now).
    pub(crate) async fn append_to_with<E: Event>(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: impl IntoIterator<Item = E>,
        context: Option<Arc<EventContext>>,
        idempotency_key: Option<String>,
    ) -> Result<(StreamAppend, bool), DbError> {
        if stream_id.is_empty() {
            return Err(DbError::EmptyStreamId);
        }
        let mut batch =
            AppendBatch::new(self.encode_events(events)?).to_stream(stream_id, expected);
        batch.context = context;
        batch.idempotency_key = idempotency_key;
        let appended = self.append_raw(batch).await?;
        let stream = StreamAppend {
            seqs: appended.positions,
            version: appended.stream_version,
        };
        Ok((stream, appended.deduplicated))
    }

    /// The version (number of events) of the stream `stream_id`; 0 when it
    /// does not exist.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads.
    pub async fn stream_version(&self, stream_id: &str) -> Result<u64, DbError> {
        Ok(self.inner.store.stream_version(stream_id).await?)
    }

    /// The events of the stream `stream_id`, in order, decoded and upcast. Reads
    /// only that stream's events (the store's stream index), never the whole log.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads.
    pub async fn read_stream<E: Event>(
        &self,
        stream_id: &str,
    ) -> Result<Vec<StoredEvent<E>>, DbError> {
        self.read_stream_versions(stream_id, 1..=u64::MAX).await
    }

    /// The first `version` events of the stream `stream_id` (all, if it has fewer).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads.
    pub async fn read_stream_until<E: Event>(
        &self,
        stream_id: &str,
        version: u64,
    ) -> Result<Vec<StoredEvent<E>>, DbError> {
        if version == 0 {
            return Ok(Vec::new());
        }
        self.read_stream_versions(stream_id, 1..=version).await
    }

    /// The events of `stream_id` with versions in `versions`, decoded as `E`.
    pub(crate) async fn read_stream_versions<E: Event>(
        &self,
        stream_id: &str,
        versions: RangeInclusive<u64>,
    ) -> Result<Vec<StoredEvent<E>>, DbError> {
        let recorded = self.inner.store.read_stream(stream_id, versions).await?;
        recorded.iter().map(decode_stored::<E>).collect()
    }
}

/// Decodes one stored event of a stream as `E`.
pub(crate) fn decode_stored<E: Event>(event: &RecordedEvent) -> Result<StoredEvent<E>, DbError> {
    let read_error = |cause| DbError::Read {
        seq: event.position,
        cause,
    };
    if &*event.name != E::NAME {
        return Err(read_error(FoldCause::OtherType {
            found: Arc::clone(&event.name),
            expected: E::NAME,
        }));
    }
    let decoded = E::decode(event.schema_version, &event.payload)
        .map_err(|e| read_error(FoldCause::Decode(e)))?;
    Ok(StoredEvent {
        event: decoded,
        meta: Meta::of(event),
        stream_version: event.stream.as_ref().map_or(0, |s| s.version),
    })
}
