//! A batch as the file store's writer reads it, borrowed, and the records of a
//! batch just appended, built from it.
//!
//! The writer only reads a batch: an owned [`AppendBatch`] (what the seam
//! takes) and the Db's own appends, their events encoded back to back into a
//! reused buffer (`db::body`), are both seen through [`BatchRef`], so an
//! append through the Db needs no `Vec` of events. [`Fresh`] hands the Db the records of
//! the batch it appended, without reading them back from the log, so it can
//! fold them in place.

use std::cell::RefCell;
use std::ops::Deref;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::store::{
    AppendBatch, Appended, EventContext, NewEvent, RecordedEvent, StreamExpectation,
};

/// One event of a batch: its type's name, schema version and encoded body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventRef<'a> {
    pub(crate) name: &'a Arc<str>,
    pub(crate) schema_version: u32,
    pub(crate) payload: &'a [u8],
}

impl<'a> From<&'a NewEvent> for EventRef<'a> {
    fn from(event: &'a NewEvent) -> Self {
        EventRef {
            name: &event.name,
            schema_version: event.schema_version,
            payload: &event.payload,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Events<'a> {
    /// Events of one type, their bodies back to back: body `i` ends at `ends[i]`.
    Packed {
        name: &'a Arc<str>,
        schema_version: u32,
        bodies: &'a [u8],
        ends: &'a [usize],
    },
    Many(&'a [NewEvent]),
}

/// A batch, borrowed: events, stream expectation, context and idempotency key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchRef<'a> {
    events: Events<'a>,
    pub(crate) stream: Option<&'a StreamExpectation>,
    pub(crate) context: Option<&'a Arc<EventContext>>,
    pub(crate) idempotency_key: Option<&'a str>,
}

impl<'a> BatchRef<'a> {
    /// Events of one type, to no stream, without context or key: body `i` of
    /// `bodies` ends at `ends[i]` (ascending, the last at most `bodies.len()`).
    pub(crate) fn packed(
        name: &'a Arc<str>,
        schema_version: u32,
        bodies: &'a [u8],
        ends: &'a [usize],
    ) -> Self {
        debug_assert!(ends.windows(2).all(|w| w[0] <= w[1]));
        debug_assert!(ends.last().is_none_or(|&end| end <= bodies.len()));
        BatchRef {
            events: Events::Packed {
                name,
                schema_version,
                bodies,
                ends,
            },
            stream: None,
            context: None,
            idempotency_key: None,
        }
    }

    /// The batch, with `context` on every event.
    pub(crate) fn with_context(mut self, context: Option<&'a Arc<EventContext>>) -> Self {
        self.context = context;
        self
    }

    /// The batch as the seam takes it, every body copied (for an append that
    /// must wait before it can try again).
    pub(crate) fn to_owned_batch(self) -> AppendBatch {
        let mut batch = AppendBatch::new(
            self.events()
                .map(|event| NewEvent {
                    name: Arc::clone(event.name),
                    schema_version: event.schema_version,
                    payload: event.payload.to_vec(),
                })
                .collect(),
        );
        batch.stream = self.stream.cloned();
        batch.context = self.context.cloned();
        batch.idempotency_key = self.idempotency_key.map(str::to_owned);
        batch
    }

    /// How many events the batch holds.
    pub(crate) fn len(&self) -> usize {
        match self.events {
            Events::Packed { ends, .. } => ends.len(),
            Events::Many(events) => events.len(),
        }
    }

    /// The events, in order.
    pub(crate) fn events(&self) -> EventsIter<'a> {
        EventsIter {
            events: self.events,
            at: 0,
        }
    }
}

/// The events of a [`BatchRef`], in order.
pub(crate) struct EventsIter<'a> {
    events: Events<'a>,
    at: usize,
}

impl<'a> Iterator for EventsIter<'a> {
    type Item = EventRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<EventRef<'a>> {
        let i = self.at;
        let event = match self.events {
            Events::Packed {
                name,
                schema_version,
                bodies,
                ends,
            } => {
                let end = *ends.get(i)?;
                let start = i.checked_sub(1).map_or(0, |before| ends[before]);
                EventRef {
                    name,
                    schema_version,
                    // In bounds: `packed` takes ascending ends within the bodies.
                    payload: &bodies[start..end],
                }
            }
            Events::Many(events) => EventRef::from(events.get(i)?),
        };
        self.at = i + 1;
        Some(event)
    }
}

impl<'a> From<&'a AppendBatch> for BatchRef<'a> {
    fn from(batch: &'a AppendBatch) -> Self {
        BatchRef {
            events: Events::Many(&batch.events),
            stream: batch.stream.as_ref(),
            context: batch.context.as_ref(),
            idempotency_key: batch.idempotency_key.as_deref(),
        }
    }
}

/// A batch just appended by [`FileStore::try_append_then`](super::FileStore):
/// its positions, and the batch itself, from which its records are built
/// without reading them back.
pub(crate) struct Fresh<'a> {
    pub(crate) appended: &'a Appended,
    pub(crate) timestamp: u64,
    pub(crate) chained: bool,
    pub(crate) batch: BatchRef<'a>,
}

impl Fresh<'_> {
    /// How many events the batch holds.
    pub(crate) fn len(&self) -> usize {
        self.batch.len()
    }

    /// The batch's records as a read would return them (the same fields; each
    /// payload copied once, see [`shared_copy`]); `None` when the
    /// store keeps a hash chain (the hashes are only in the log).
    pub(crate) fn records(&self) -> Option<FreshRecords> {
        if self.chained {
            return None;
        }
        let batch = self.batch;
        let context = batch.context.filter(|c| !c.is_empty());
        let count = batch.len() as u64;
        let stream = batch.stream.map(|s| {
            let first = self.appended.stream_version + 1 - count;
            (Arc::<str>::from(s.stream.as_str()), first)
        });
        let record = |i: usize, position, event: EventRef<'_>| {
            let record = RecordedEvent::new(
                position,
                self.timestamp,
                Arc::clone(event.name),
                event.schema_version,
                shared_copy(event.payload),
            )
            .with_context(context.cloned());
            match &stream {
                Some((id, first)) => record.in_stream(Arc::clone(id), first + i as u64),
                None => record,
            }
        };
        let mut records = self
            .appended
            .positions
            .clone()
            .zip(batch.events())
            .enumerate()
            .map(|(i, (position, event))| record(i, position, event));
        Some(match (batch.len(), records.next()) {
            (1, Some(one)) => FreshRecords::One([one]),
            (_, first) => FreshRecords::Many(first.into_iter().chain(records).collect()),
        })
    }
}

/// The records of a fresh batch: one without a `Vec`, or several.
pub(crate) enum FreshRecords {
    One([RecordedEvent; 1]),
    Many(Vec<RecordedEvent>),
}

impl Deref for FreshRecords {
    type Target = [RecordedEvent];

    fn deref(&self) -> &[RecordedEvent] {
        match self {
            FreshRecords::One(one) => one,
            FreshRecords::Many(many) => many,
        }
    }
}

/// The buffers the writer encodes a batch's envelopes into, kept between
/// appends so that an append of events of a usual size allocates nothing.
///
/// Bounded: what one batch leaves beyond [`Scratch::KEEP`] buffers, or in
/// buffers grown past [`Scratch::KEEP_BYTES`], is freed by the next.
#[derive(Debug, Default)]
pub(crate) struct Scratch(Vec<Vec<u8>>);

impl Scratch {
    /// How many buffers are kept between batches.
    const KEEP: usize = 16;
    /// The largest buffer kept between batches.
    const KEEP_BYTES: usize = 16 * 1024;

    /// `n` buffers for the next batch (their contents are stale: each is
    /// cleared by the envelope encoder). Trims what the previous batch left.
    pub(crate) fn take(&mut self, n: usize) -> &mut [Vec<u8>] {
        self.0.truncate(Self::KEEP);
        for buf in &mut self.0 {
            if buf.capacity() > Self::KEEP_BYTES {
                *buf = Vec::new();
            }
        }
        if self.0.len() < n {
            self.0.resize_with(n, Vec::new);
        }
        &mut self.0[..n]
    }
}

/// Payloads up to this long are copied into the per-thread arena.
const ARENA_UP_TO: usize = 512;
/// The size of each arena buffer.
const ARENA_BYTES: usize = 16 * 1024;

thread_local! {
    static ARENA: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// A copy of `payload` as [`Bytes`]. A short one is carved from a buffer this
/// thread reuses once every copy carved from it is dropped: records folded in
/// place live only for the fold, so a single append costs a reference count
/// instead of an allocation and a free. (The fold keeps no payload of that
/// size: `LastRecord` computes a short record's identity at once.)
fn shared_copy(payload: &[u8]) -> Bytes {
    if payload.len() > ARENA_UP_TO {
        return Bytes::copy_from_slice(payload);
    }
    let carved = ARENA.try_with(|arena| {
        let mut arena = arena.try_borrow_mut().ok()?;
        if arena.capacity() < payload.len() {
            // Reclaims the buffer when every earlier copy is gone, else
            // starts a new one (the old one lives until its copies drop).
            arena.reserve(ARENA_BYTES);
        }
        arena.extend_from_slice(payload);
        Some(arena.split().freeze())
    });
    match carved {
        Ok(Some(bytes)) => bytes,
        _ => Bytes::copy_from_slice(payload),
    }
}
