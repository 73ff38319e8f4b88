//! Streams: the events of one aggregate instance, appended with optimistic concurrency.
//!
//! A stream is the subsequence of one event type's log whose envelopes carry a
//! given stream id. Its version is the number of events in it (0: no such stream).
//! The index (stream id → its seqs, in order) lives in memory; it is built on first
//! use by scanning the log's envelope headers (bodies are not decoded), so a Db that
//! never uses streams pays nothing at open, and it is rebuilt the same way after a
//! restart, which is what makes it always agree with the log.
//!
//! Invariant: a stream's entry changes only while its async lock is held, and that
//! lock is held across version check + append + index update. Two writers of one
//! stream therefore serialize (no lost update, no interleaving), while writers of
//! different streams proceed in parallel, sharing the log's group commit.

use std::collections::HashMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::sync::Arc;

use foldkit_storage::Log;
use tokio::sync::{Mutex, OnceCell, OwnedMutexGuard};

use crate::Seq;
use crate::db::cancel::finish_detached;
use crate::db::db::{Db, EventLog};
use crate::db::envelope::Envelope;
use crate::db::error::{DbError, FoldCause};
use crate::event::Event;
use crate::state::Meta;

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
    pub(crate) fn admits(self, actual: u64) -> bool {
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

/// The seqs of one stream, in order; guarded by the stream's lock.
type Entry = Arc<Mutex<Vec<Seq>>>;

/// The stream index of one log, built on first use.
#[derive(Default)]
pub(crate) struct LazyStreamIndex(OnceCell<StreamIndex>);

/// Stream id → the stream's seqs.
struct StreamIndex {
    streams: parking_lot::Mutex<HashMap<Arc<str>, Entry>>,
}

impl StreamIndex {
    /// Scans `log`'s envelopes (not the bodies) for stream ids.
    fn build(log: &Log, name: &str) -> Result<Self, DbError> {
        let storage = |source| DbError::Storage {
            log: name.to_owned(),
            source,
        };
        let mut streams: HashMap<Arc<str>, Vec<Seq>> = HashMap::new();
        for record in log.range(..).map_err(storage)? {
            let record = record.map_err(storage)?;
            let envelope = Envelope::decode(&record.payload).map_err(|e| DbError::Read {
                log: name.to_owned(),
                seq: record.seq,
                cause: FoldCause::Envelope(e),
            })?;
            if let Some(id) = envelope.stream_id {
                match streams.get_mut(id) {
                    Some(seqs) => seqs.push(record.seq),
                    None => {
                        streams.insert(Arc::from(id), vec![record.seq]);
                    }
                }
            }
        }
        let streams = streams
            .into_iter()
            .map(|(id, seqs)| (id, Arc::new(Mutex::new(seqs))))
            .collect();
        Ok(Self {
            streams: parking_lot::Mutex::new(streams),
        })
    }

    /// The entry of `id`, created (empty) if the stream does not exist yet.
    fn entry(&self, id: &str) -> Entry {
        let mut streams = self.streams.lock();
        match streams.get(id) {
            Some(entry) => Arc::clone(entry),
            None => Arc::clone(streams.entry(Arc::from(id)).or_default()),
        }
    }

    /// The entry of `id` if the stream exists; reading never creates one.
    fn existing(&self, id: &str) -> Option<Entry> {
        self.streams.lock().get(id).cloned()
    }
}

/// One stream, locked for writing: check its version, then append.
pub(crate) struct StreamGuard<'db> {
    db: &'db Db,
    log: &'db EventLog,
    id: String,
    seqs: OwnedMutexGuard<Vec<Seq>>,
}

impl StreamGuard<'_> {
    /// The stream's version: its number of events.
    pub(crate) fn version(&self) -> u64 {
        self.seqs.len() as u64
    }

    /// Appends `events` as one atomic batch if the version is `expected`, and
    /// gives the guard back with the result.
    ///
    /// Cancel-safe: once started, the append and the index update finish
    /// together (in a task of their own if the caller is dropped, see
    /// `cancel`), so the index always agrees with the log; the stream stays
    /// locked until they are done.
    pub(crate) async fn append<E: Event>(
        self,
        expected: ExpectedVersion,
        events: impl IntoIterator<Item = E>,
    ) -> Result<(Self, StreamAppend), DbError> {
        let actual = self.version();
        if !expected.admits(actual) {
            return Err(DbError::Conflict {
                stream: self.id.clone(),
                expected,
                actual,
            });
        }
        let StreamGuard { db, log, id, seqs } = self;
        let (owner, stream) = (db.clone(), id.clone());
        let events: Vec<E> = events.into_iter().collect();
        let work = async move {
            let mut seqs = seqs;
            let appended = owner.append_batch_to(Some(&stream), events).await;
            if let Ok(range) = &appended {
                seqs.extend(range.clone());
            }
            (seqs, appended)
        };
        let (seqs, appended) = finish_detached(work).await.map_err(|_| DbError::Closed)?;
        let range = appended?;
        let guard = StreamGuard { db, log, id, seqs };
        let version = guard.version();
        Ok((
            guard,
            StreamAppend {
                seqs: range,
                version,
            },
        ))
    }
}

impl Db {
    /// Appends `events` to the stream `stream_id` as one atomic batch, if the
    /// stream is at the `expected` version; otherwise nothing is written and the
    /// error is [`DbError::Conflict`] with the actual version.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe in the sense that the stream stays consistent: dropped while
    /// it waits for the stream's lock, nothing happens; dropped once the append
    /// started, the append and the stream's index update still finish together
    /// (in a task of their own), and the stream is unlocked after them. The
    /// caller then does not know whether the events were appended: read
    /// [`Db::stream_version`] to find out.
    pub async fn append_to<E: Event>(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: impl IntoIterator<Item = E>,
    ) -> Result<StreamAppend, DbError> {
        let guard = self.lock_stream::<E>(stream_id).await?;
        let (_, appended) = guard.append(expected, events).await?;
        Ok(appended)
    }

    /// The version (number of events) of the stream `stream_id` of `E`'s log; 0
    /// when it does not exist.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads (a drop during the first use's index scan, on
    /// the blocking pool, leaves the index unbuilt; the next call builds it).
    pub async fn stream_version<E: Event>(&self, stream_id: &str) -> Result<u64, DbError> {
        let log = self.log_of::<E>()?;
        Ok(match self.stream_index(log).await?.existing(stream_id) {
            Some(entry) => entry.lock().await.len() as u64,
            None => 0,
        })
    }

    /// The events of the stream `stream_id`, in order, decoded and upcast. Reads
    /// only that stream's records (through the index), never the whole log.
    /// The records are read on the blocking pool.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads; a drop leaves a read on the blocking pool to
    /// finish, unused.
    pub async fn read_stream<E: Event>(
        &self,
        stream_id: &str,
    ) -> Result<Vec<StoredEvent<E>>, DbError> {
        self.read_stream_until(stream_id, u64::MAX).await
    }

    /// The first `version` events of the stream `stream_id` (all, if it has fewer).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads (see [`Db::read_stream`]).
    pub async fn read_stream_until<E: Event>(
        &self,
        stream_id: &str,
        version: u64,
    ) -> Result<Vec<StoredEvent<E>>, DbError> {
        let log = self.log_of::<E>()?;
        let seqs = match self.stream_index(log).await?.existing(stream_id) {
            Some(entry) => entry.lock().await.clone(),
            None => return Ok(Vec::new()),
        };
        let len = usize::try_from(version)
            .unwrap_or(usize::MAX)
            .min(seqs.len());
        let mut seqs = seqs;
        seqs.truncate(len);
        read_events(log, seqs).await
    }

    /// Locks the stream `stream_id` of `E`'s log for a check-and-append.
    pub(crate) async fn lock_stream<E: Event>(
        &self,
        stream_id: &str,
    ) -> Result<StreamGuard<'_>, DbError> {
        if stream_id.is_empty() {
            return Err(DbError::EmptyStreamId);
        }
        let log = self.log_of::<E>()?;
        let entry = self.stream_index(log).await?.entry(stream_id);
        let seqs = entry.lock_owned().await;
        Ok(StreamGuard {
            db: self,
            log,
            id: stream_id.to_owned(),
            seqs,
        })
    }

    /// Whether `log` holds any event appended to a stream.
    pub(crate) async fn has_streams(&self, log: &EventLog) -> Result<bool, DbError> {
        Ok(!self.stream_index(log).await?.streams.lock().is_empty())
    }

    async fn stream_index<'a>(&self, log: &'a EventLog) -> Result<&'a StreamIndex, DbError> {
        log.streams
            .0
            .get_or_try_init(|| async {
                let (storage, name) = (log.log.clone(), log.name.clone());
                tokio::task::spawn_blocking(move || StreamIndex::build(&storage, &name))
                    .await
                    .map_err(|_| DbError::Closed)?
            })
            .await
    }
}

impl StreamGuard<'_> {
    /// The events of the locked stream, decoded, in order (read on the blocking pool).
    pub(crate) async fn events<E: Event>(&self) -> Result<Vec<StoredEvent<E>>, DbError> {
        read_events(self.log, self.seqs.clone()).await
    }
}

/// Reads and decodes the records at `seqs` (one stream's, in order) on the
/// blocking pool: they may be in segment files. Dropping the future leaves
/// the read to finish there, unused.
async fn read_events<E: Event>(
    log: &EventLog,
    seqs: Vec<Seq>,
) -> Result<Vec<StoredEvent<E>>, DbError> {
    if seqs.is_empty() {
        return Ok(Vec::new());
    }
    let (storage, name) = (log.log.clone(), log.name.clone());
    let read = tokio::task::spawn_blocking(move || read_events_blocking(&storage, &name, &seqs));
    match read.await {
        Ok(events) => events,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => Err(DbError::Closed),
    }
}

/// Reads and decodes the records at `seqs`, in the calling thread.
fn read_events_blocking<E: Event>(
    log: &Log,
    name: &str,
    seqs: &[Seq],
) -> Result<Vec<StoredEvent<E>>, DbError> {
    let read_error = |seq, cause| DbError::Read {
        log: name.to_owned(),
        seq,
        cause,
    };
    let mut out = Vec::with_capacity(seqs.len());
    for (i, &seq) in seqs.iter().enumerate() {
        let record = log
            .read(seq)
            .map_err(|e| read_error(seq, FoldCause::Storage(e)))?;
        let envelope = Envelope::decode(&record.payload)
            .map_err(|e| read_error(seq, FoldCause::Envelope(e)))?;
        let event = E::decode(envelope.version, envelope.body)
            .map_err(|e| read_error(seq, FoldCause::Decode(e)))?;
        let meta = Meta::new(seq, record.timestamp, envelope.version)
            .with_optional_stream_id(envelope.stream_id);
        out.push(StoredEvent {
            event,
            meta,
            stream_version: i as u64 + 1,
        });
    }
    Ok(out)
}
