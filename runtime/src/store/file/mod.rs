//! The file store: the Db's one log in a directory, the embedded default.
//!
//! Layout of a Db directory (format 2):
//!
//! ```text
//! <dir>/FORMAT                    "foldkit-format 2": refuses other layouts at open
//! <dir>/LOCK                      OS file lock, held while a store has the directory open
//! <dir>/log/                      the one ordered log (foldkit-storage segments)
//! <dir>/streams.idx               persisted stream index (see `index`)
//! <dir>/snapshots/<state>/<position>.snap
//! <dir>/checkpoints/<name>.ckpt   subscription checkpoints
//! ```
//!
//! Each log record is one event in an [`Envelope`] (its type's name, schema
//! version, stream and stream version, context, idempotency key, chain hash).
//! Appends are serialized by one short lock (`writer`) that checks stream
//! expectations and idempotency keys against the in-memory index, encodes the
//! envelopes and puts the batch in the log; durability (group commit) is
//! awaited after the lock is released, so concurrent appenders share fsyncs.
//!
//! File I/O runs on the blocking pool; reads of recent records come from the
//! log's memory window without leaving the caller's thread.

mod batch;
pub(crate) mod chain;
mod envelope;
pub(crate) mod files;
pub(crate) mod index;
mod names;
mod stream_read;
#[cfg(test)]
mod tests;

use std::fs::{File, TryLockError};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use foldkit_storage::{Enqueue, FsyncPolicy, Log, LogOptions, Record, RollWait, StorageError};
use futures::future::BoxFuture;
use parking_lot::Mutex;

pub use envelope::{Envelope, EnvelopeError, HASH_LEN};

use self::batch::Scratch;
pub(crate) use self::batch::{BatchRef, Fresh};
use self::envelope::Header;
use self::index::{Index, identity};
use super::{
    AppendBatch, Appended, EventContext, EventStore, RecordedEvent, StoreError, StoreTail,
};
use crate::Seq;

pub(crate) use names::{escape as escape_name, unescape as unescape_name};

/// The directory format this build writes and reads.
pub const FORMAT_VERSION: u32 = 2;
const FORMAT_FILE: &str = "FORMAT";
const INDEX_FILE: &str = "streams.idx";

/// How a [`FileStore`] stores its log.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct FileStoreOptions {
    /// Called before every fsync (tests inject failures with it).
    #[doc(hidden)]
    pub fsync_hook: Option<foldkit_storage::FsyncHook>,
    /// When appends reach the disk (default: the storage crate's default).
    pub fsync: Option<FsyncPolicy>,
    /// The size at which the log starts a new segment file.
    pub segment_size: Option<u64>,
    /// Whether each envelope carries a BLAKE3 hash chain (verified at open).
    pub chain_hashes: bool,
}

impl std::fmt::Debug for FileStoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStoreOptions")
            .field("fsync", &self.fsync)
            .field("segment_size", &self.segment_size)
            .field("chain_hashes", &self.chain_hashes)
            .finish_non_exhaustive()
    }
}

/// What walking the hash chain found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChainReport {
    /// How many chained records were checked.
    pub checked: u64,
    /// The hash of the last chained record (`None`: nothing is chained).
    pub head: Option<[u8; HASH_LEN]>,
}

/// The embedded store: one ordered log in a directory. Cheap to clone.
#[derive(Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    log: Log,
    options: FileStoreOptions,
    writer: Mutex<Writer>,
    /// Set when the close is complete (log closed, lock released).
    closed: AtomicBool,
    lock: Mutex<Option<File>>,
    /// Notified after every append made through the seam ([`EventStore::append`]),
    /// not after the owning Db's own appends ([`FileStore::append_then`]), which
    /// tell its states themselves: see [`FileStore::seam_appends`].
    seam: Arc<tokio::sync::Notify>,
    /// Held (on the blocking pool only) while the stream index is persisted: one
    /// `streams.tmp` is written, fsynced and renamed at a time, so two snapshot
    /// tasks never interleave their writes into one file.
    persisting: Mutex<()>,
    /// Set when `snapshots/` was missing at open and cleared by the first snapshot
    /// write: until then no snapshot can exist (the store holds the directory's
    /// lock and writes every snapshot), so the snapshot reads answer "none"
    /// without a trip to the blocking pool (every open of a Db that keeps no
    /// snapshots asks each of its states for theirs).
    no_snapshots: AtomicBool,
}

/// What an append waits for after the writer lock.
pub(crate) enum Durable {
    Wait(foldkit_storage::Enqueued),
    SyncAll,
}

/// What one try of an append did.
pub(crate) enum Step {
    Appended(Appended, Durable),
    /// The log's active segment is full: wait for the roll, then try again.
    Rolling(RollWait),
}

struct Writer {
    index: Index,
    /// The `covered` of the stream index file as it is on disk, if it is known to
    /// hold this index: the index only grows with `covered`, so a persist with
    /// nothing new to cover is skipped (no rewrite and two fsyncs per close of a
    /// store that only read). The file is a cache (an open checks it against the
    /// log and scans the tail after it), so a stale value costs a rescan, never
    /// correctness.
    on_disk: Option<Seq>,
    /// Set by `close` first: refuses appends from then on.
    closing: bool,
    /// The buffers the envelopes of a batch are encoded into.
    scratch: Scratch,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.inner.dir)
            .field("last_position", &self.inner.log.last_seq())
            .finish_non_exhaustive()
    }
}

/// A log error as the store's: damage is [`StoreError::Corrupt`] at its segment
/// and offset (`what` is the place; the action, "read the log", is in `reason`).
fn storage(action: &str, error: StorageError) -> StoreError {
    match error {
        StorageError::Closed => StoreError::Closed,
        StorageError::Corrupt {
            segment,
            offset,
            reason,
        } => StoreError::Corrupt {
            what: format!("segment `{}` at byte offset {offset}", segment.display()),
            reason: format!("{reason} (found while trying to {action})"),
        },
        other => StoreError::backend(action.to_owned(), other),
    }
}

fn corrupt_record(position: Seq, error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: format!("the envelope of the record at position {position}"),
        reason: error.to_string(),
    }
}

/// Runs blocking file work off the async worker threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::backend("run file I/O on the blocking pool", e))?
}

/// A store directory, locked and checked, whose log is not opened yet: what
/// [`FileStore::open`] does first, so that a Db can read its snapshot files (which only
/// need the lock) while the log recovers (see `Db::open`).
pub(crate) struct LockedDir {
    dir: PathBuf,
    lock: File,
    /// Whether `snapshots/` exists.
    snapshots: bool,
}

impl LockedDir {
    /// Creates `dir` if needed, checks its format and takes its lock; removes what a
    /// crash left of a streamed snapshot. Blocking.
    pub(crate) fn take(dir: PathBuf) -> Result<LockedDir, StoreError> {
        let io = |action: &str, path: &Path| {
            let what = format!("{action} {}", path.display());
            move |e: std::io::Error| StoreError::backend(what, e)
        };
        std::fs::create_dir_all(&dir).map_err(io("create directory", &dir))?;
        check_format(&dir)?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))
            .map_err(io("open", &dir.join("LOCK")))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::AlreadyOpen {
                    what: dir.display().to_string(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io("lock", &dir.join("LOCK"))(e)),
        }
        let snapshots = files::remove_stale_streams(&dir.join("snapshots"))?;
        let format_path = dir.join(FORMAT_FILE);
        if !format_path.exists() {
            files::write_atomic(
                &format_path,
                format!("foldkit-format {FORMAT_VERSION}\n").as_bytes(),
            )?;
        }
        Ok(LockedDir {
            dir,
            lock,
            snapshots,
        })
    }

    /// [`take`](Self::take) on the blocking pool.
    ///
    /// # Cancel safety
    ///
    /// Dropping it before it completes releases the lock once the blocking part ends.
    pub(crate) async fn take_async(dir: PathBuf) -> Result<LockedDir, StoreError> {
        blocking(move || LockedDir::take(dir)).await
    }

    /// The newest snapshot file of `state` (its position and bytes), read as
    /// [`EventStore::list_snapshots`] and [`EventStore::read_snapshot`] of the opened
    /// store would read it; `None` when it has none. Blocking; a function of the
    /// directory only, so it runs while the log is being opened.
    pub(crate) fn newest_snapshot(
        &self,
        state: &str,
    ) -> impl FnOnce() -> Result<Option<(Seq, Vec<u8>)>, StoreError> + Send + 'static {
        let dir =
            escape_name("state name", state).map(|name| self.dir.join("snapshots").join(name));
        let none = !self.snapshots;
        move || {
            let dir = dir?;
            if none {
                return Ok(None);
            }
            let Some(&position) = files::list_snapshots(&dir)?.first() else {
                return Ok(None);
            };
            Ok(files::read_optional(&files::snapshot_path(&dir, position))?
                .map(|bytes| (position, bytes)))
        }
    }

    /// Opens the log and loads the stream index: the store. Blocking.
    pub(crate) fn open(self, options: FileStoreOptions) -> Result<FileStore, StoreError> {
        let LockedDir {
            dir,
            lock,
            snapshots,
        } = self;
        let mut log_options = LogOptions::default();
        if let Some(fsync) = options.fsync {
            log_options = log_options.fsync(fsync);
        }
        if let Some(bytes) = options.segment_size {
            log_options = log_options.segment_size(bytes);
        }
        if let Some(hook) = options.fsync_hook.clone() {
            log_options = log_options.fsync_hook(hook);
        }
        let log =
            Log::open(dir.join("log"), log_options).map_err(|e| storage("open the log", e))?;
        let (index, on_disk) = load_index(&dir, &log, options.chain_hashes)?;
        // A store is opened to be written: its first append should not start a thread.
        log.start_sync_thread()
            .map_err(|e| storage("start the log's sync thread", e))?;
        Ok(FileStore {
            inner: Arc::new(Inner {
                dir,
                log,
                options,
                writer: Mutex::new(Writer {
                    index,
                    on_disk,
                    closing: false,
                    scratch: Scratch::default(),
                }),
                closed: AtomicBool::new(false),
                lock: Mutex::new(Some(lock)),
                seam: Arc::default(),
                persisting: Mutex::new(()),
                no_snapshots: AtomicBool::new(!snapshots),
            }),
        })
    }

    /// [`open`](Self::open) on the blocking pool.
    ///
    /// # Cancel safety
    ///
    /// As [`FileStore::open_async`].
    pub(crate) async fn open_async(
        self,
        options: FileStoreOptions,
    ) -> Result<FileStore, StoreError> {
        blocking(move || self.open(options)).await
    }
}

impl FileStore {
    /// Opens (creating if needed) the store in `dir`. Blocking: it recovers the
    /// log and loads the index; call it from a blocking context
    /// ([`open_async`](Self::open_async) does that for you).
    pub fn open(dir: impl AsRef<Path>, options: FileStoreOptions) -> Result<FileStore, StoreError> {
        LockedDir::take(dir.as_ref().to_path_buf())?.open(options)
    }

    /// [`open`](Self::open) on the blocking pool.
    ///
    /// # Cancel safety
    ///
    /// Dropping it before it completes drops the store it was opening once the
    /// blocking open finishes (the directory lock is then released); nothing
    /// is written but what recovery repairs.
    pub async fn open_async(
        dir: impl AsRef<Path>,
        options: FileStoreOptions,
    ) -> Result<FileStore, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        blocking(move || FileStore::open(dir, options)).await
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The underlying log (read-only use: appends must go through the store).
    pub fn log(&self) -> &Log {
        &self.inner.log
    }

    /// What recovery found and repaired when the log was opened.
    pub fn recovery_report(&self) -> &foldkit_storage::RecoveryReport {
        self.inner.log.recovery_report()
    }

    /// Walks the whole log and checks the hash chain (blocking: call it from a
    /// blocking context). Any edit, deletion or reordering of a chained record
    /// is an error naming its position.
    pub fn verify_chain_blocking(&self) -> Result<ChainReport, StoreError> {
        walk_chain(&self.inner.log)
    }

    /// The hash of the last chained record (`None` when nothing is chained).
    pub fn head_hash(&self) -> Option<[u8; HASH_LEN]> {
        self.inner.writer.lock().index.head
    }

    /// How many streams the index holds.
    pub fn stream_count(&self) -> usize {
        self.inner.writer.lock().index.streams.len()
    }

    fn state_dir(&self, state: &str) -> Result<PathBuf, StoreError> {
        Ok(self
            .inner
            .dir
            .join("snapshots")
            .join(escape_name("state name", state)?))
    }

    /// Puts the batch in the log under the writer lock; returns what to wait on
    /// (or the segment roll to wait for before trying again).
    fn enqueue(&self, batch: BatchRef<'_>) -> Result<Step, StoreError> {
        let events = batch.len();
        if events == 0 {
            return Err(StoreError::InvalidBatch("an empty batch".into()));
        }
        let count = u32::try_from(events).map_err(|_| {
            StoreError::InvalidBatch("more than u32::MAX events in one batch".into())
        })?;
        let context_bytes = match batch.context.filter(|c| !c.is_empty()) {
            Some(context) => Some(postcard::to_allocvec(&**context).map_err(|e| {
                StoreError::InvalidBatch(format!("the context cannot be encoded: {e}"))
            })?),
            None => None,
        };
        let chain = self.inner.options.chain_hashes;
        let mut guard = self.inner.writer.lock();
        let writer = &mut *guard;
        if writer.closing {
            return Err(StoreError::Closed);
        }
        if let Some(key) = batch.idempotency_key
            && let Some(first) = writer.index.keys.get(key)
        {
            let mut appended = first.clone();
            appended.deduplicated = true;
            return Ok(Step::Appended(appended, Durable::SyncAll));
        }
        let version = match batch.stream {
            Some(s) => {
                if s.stream.is_empty() {
                    return Err(StoreError::InvalidBatch("an empty stream id".into()));
                }
                let actual = writer.index.version(&s.stream);
                if !s.expected.admits(actual) {
                    return Err(StoreError::Conflict {
                        stream: s.stream.clone(),
                        expected: s.expected,
                        actual,
                    });
                }
                actual
            }
            None => 0,
        };
        // Each envelope is encoded into a buffer the writer keeps (no allocation
        // once the buffers have grown to the size of the events appended).
        let scratch = writer.scratch.take(events);
        let mut hash_at = Vec::new();
        for (i, (event, buf)) in batch.events().zip(scratch.iter_mut()).enumerate() {
            let header = Header {
                version: event.schema_version,
                name: event.name,
                stream: batch
                    .stream
                    .map(|s| (s.stream.as_str(), version + 1 + i as u64)),
                context: context_bytes.as_deref(),
                idempotency_key: batch.idempotency_key.filter(|_| i == 0).map(|k| (k, count)),
                hash: chain,
            };
            let at = header
                .encode_into(event.payload, buf)
                .map_err(|e| StoreError::InvalidBatch(format!("event `{}`: {e}", event.name)))?;
            hash_at.extend(at);
        }
        let payloads = &*scratch;
        let log = &self.inner.log;
        let enqueued = if chain {
            let mut head = writer.index.head.unwrap_or([0; HASH_LEN]);
            let mut i = 0;
            let enqueued = log
                .try_enqueue_batch_with(payloads, |seq, timestamp, bytes| {
                    let at = hash_at[i];
                    head = chain::link(&head, seq, timestamp, bytes, at);
                    bytes[at..at + HASH_LEN].copy_from_slice(&head);
                    i += 1;
                })
                .map_err(|e| storage("append to the log", e))?;
            let enqueued = match enqueued {
                Enqueue::Done(enqueued) => enqueued,
                Enqueue::Rolling(roll) => return Ok(Step::Rolling(roll)),
            };
            writer.index.head = Some(head);
            enqueued
        } else {
            let enqueued = log
                .try_enqueue_batch(payloads)
                .map_err(|e| storage("append to the log", e))?;
            match enqueued {
                Enqueue::Done(enqueued) => enqueued,
                Enqueue::Rolling(roll) => return Ok(Step::Rolling(roll)),
            }
        };
        let positions = enqueued.seqs.clone();
        let appended = Appended {
            positions: positions.clone(),
            stream_version: batch.stream.map_or(0, |_| version + events as u64),
            deduplicated: false,
        };
        let index = &mut writer.index;
        for (i, position) in positions.enumerate() {
            let stream = batch
                .stream
                .map(|s| (s.stream.as_str(), version + 1 + i as u64));
            let key = batch
                .idempotency_key
                .filter(|_| i == 0)
                .map(|k| (k, appended.clone()));
            // The identity of the covered record is computed when the index is
            // persisted (`persist_index_blocking`), not on every append.
            index.record(position, 0, stream, key);
        }
        drop(guard);
        Ok(Step::Appended(appended, Durable::Wait(enqueued)))
    }

    /// Whether the stream index file on disk holds the whole index now (see
    /// `Writer::on_disk`): then persisting it writes nothing.
    fn index_on_disk(&self) -> bool {
        let writer = self.inner.writer.lock();
        writer.on_disk == Some(writer.index.covered)
    }

    /// Whether no snapshot can exist (see `Inner::no_snapshots`).
    fn no_snapshots(&self) -> bool {
        self.inner.no_snapshots.load(Ordering::SeqCst)
    }

    /// Called by every snapshot write before it touches the disk.
    fn writing_snapshot(&self) {
        self.inner.no_snapshots.store(false, Ordering::SeqCst);
    }

    /// Writes the stream index to `streams.idx` unless the copy there covers as much.
    /// Runs on the blocking pool. The writer lock (which appenders take on async
    /// workers) is never held across file I/O: the identity of the covered record
    /// is read from the log's memory under it when that record is there (the
    /// usual case: it is the newest), and otherwise from its file without the
    /// lock, after which the index is taken only if it still covers that record.
    fn persist_index_blocking(inner: &Inner) -> Result<(), StoreError> {
        let _one_at_a_time = inner.persisting.lock();
        let mut read_from_file: Option<(Seq, u64)> = None;
        let (covered, bytes) = loop {
            let mut writer = inner.writer.lock();
            let covered = writer.index.covered;
            if writer.on_disk == Some(covered) {
                return Ok(());
            }
            if covered > 0 {
                let known = read_from_file
                    .filter(|&(seq, _)| seq == covered)
                    .map(|(_, identity)| identity);
                let identity = match known {
                    Some(identity) => identity,
                    None => match inner.log.read_in_memory(covered, 1) {
                        Some(records) => {
                            let records = records.map_err(|e| storage(COVERED, e))?;
                            let record = records.first().ok_or_else(|| missing(covered))?;
                            identity(record.timestamp, &record.payload)
                        }
                        None => {
                            drop(writer);
                            let record =
                                inner.log.read(covered).map_err(|e| storage(COVERED, e))?;
                            read_from_file =
                                Some((covered, identity(record.timestamp, &record.payload)));
                            continue;
                        }
                    },
                };
                writer.index.covered_identity = identity;
            }
            break (covered, writer.index.encode());
        };
        files::write_atomic(&inner.dir.join(INDEX_FILE), &bytes)?;
        inner.writer.lock().on_disk = Some(covered);
        Ok(())
    }
}

/// What reading the record the stream index covers is for, in its errors.
const COVERED: &str = "read the record the stream index covers";

/// The record the stream index covers is not in the log (it was just appended).
fn missing(covered: Seq) -> StoreError {
    StoreError::Corrupt {
        what: format!("the log, at position {covered}"),
        reason: "the record the stream index covers is missing".into(),
    }
}

/// Refuses a directory of another layout or a newer format.
fn check_format(dir: &Path) -> Result<(), StoreError> {
    let format_path = dir.join(FORMAT_FILE);
    match files::read_optional(&format_path)? {
        Some(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let found = text
                .trim()
                .strip_prefix("foldkit-format ")
                .and_then(|v| v.parse::<u32>().ok())
                .ok_or_else(|| StoreError::Corrupt {
                    what: format_path.display().to_string(),
                    reason: format!("expected `foldkit-format N`, found {:?}", text.trim()),
                })?;
            if found != FORMAT_VERSION {
                return Err(StoreError::Format {
                    what: dir.display().to_string(),
                    found,
                    supported: FORMAT_VERSION,
                });
            }
            Ok(())
        }
        None if dir.join("logs").is_dir() => Err(StoreError::Format {
            what: format!(
                "{} (the previous layout, one log per event type under logs/; replay its events \
                 into a new directory with a build of that release)",
                dir.display()
            ),
            found: 1,
            supported: FORMAT_VERSION,
        }),
        None => Ok(()),
    }
}

/// Loads `streams.idx` if it matches the log, then folds in the log's tail;
/// rebuilds from the whole log otherwise. With a chain, walks the whole chain.
/// The store's stream index, and the `covered` of its file on disk when that file
/// holds it whole (nothing of the log after it).
fn load_index(dir: &Path, log: &Log, chain: bool) -> Result<(Index, Option<Seq>), StoreError> {
    let last = log.last_seq().unwrap_or(0);
    let persisted = match files::read_optional(&dir.join(INDEX_FILE))? {
        Some(bytes) => match Index::decode(&bytes) {
            Ok(index) if index_matches(&index, log, last) => Some(index),
            Ok(_) => {
                tracing::warn!(dir = %dir.display(), "foldkit: the stream index does not match the log (a lost tail?); rebuilding it");
                None
            }
            Err(reason) => {
                tracing::warn!(dir = %dir.display(), reason, "foldkit: the stream index is unusable; rebuilding it");
                None
            }
        },
        None => None,
    };
    let on_disk = persisted.as_ref().map(|index| index.covered);
    let mut index = persisted.unwrap_or_default();
    let first = log.first_seq().unwrap_or(1);
    let from = (index.covered + 1).max(first);
    if chain {
        let report = walk_chain(log)?;
        index.head = report.head;
    }
    if from > last {
        return Ok((index, on_disk));
    }
    let records = log
        .range(from..=last)
        .map_err(|e| storage("scan the log", e))?;
    let mut batch: Option<(String, Seq, u32, u64)> = None;
    for record in records {
        let record = record.map_err(|e| storage("scan the log", e))?;
        let envelope =
            Envelope::decode(&record.payload).map_err(|e| corrupt_record(record.seq, e))?;
        if let Some((key, count)) = envelope.idempotency_key {
            // A keyed batch of `count` events starts here: its last position and
            // stream version must exist (a record can pass its checksum and still
            // carry numbers no append wrote).
            let first_version = envelope.stream.map_or(0, |(_, v)| v);
            let span = u64::from(count).checked_sub(1);
            let fits = span.is_some_and(|span| {
                record.seq.checked_add(span).is_some()
                    && (first_version == 0 || first_version.checked_add(span).is_some())
            });
            if !fits {
                return Err(corrupt_record(
                    record.seq,
                    format!("an idempotency key over {count} events that cannot follow it"),
                ));
            }
            batch = Some((key.to_owned(), record.seq, count, first_version));
        }
        let keyed = match &batch {
            // The sums were checked when the batch started.
            Some((key, first, count, first_version))
                if record.seq == first + u64::from(*count) - 1 =>
            {
                let appended = Appended {
                    positions: *first..=record.seq,
                    stream_version: if *first_version == 0 {
                        0
                    } else {
                        first_version + u64::from(*count) - 1
                    },
                    deduplicated: true,
                };
                Some((key.clone(), appended))
            }
            _ => None,
        };
        index.record(
            record.seq,
            identity(record.timestamp, &record.payload),
            envelope.stream,
            keyed.as_ref().map(|(k, a)| (k.as_str(), a.clone())),
        );
        if keyed.is_some() {
            batch = None;
        }
    }
    Ok((index, on_disk))
}

/// Whether a persisted index was built from this log.
fn index_matches(index: &Index, log: &Log, last: Seq) -> bool {
    if index.covered == 0 {
        return true;
    }
    if index.covered > last {
        return false;
    }
    match log.read(index.covered) {
        Ok(record) => identity(record.timestamp, &record.payload) == index.covered_identity,
        Err(_) => false,
    }
}

fn walk_chain(log: &Log) -> Result<ChainReport, StoreError> {
    let mut walk = chain::Walk::default();
    let Some(last) = log.last_seq() else {
        return Ok(ChainReport {
            checked: 0,
            head: None,
        });
    };
    let first = log.first_seq().unwrap_or(1);
    for record in log
        .range(first..=last)
        .map_err(|e| storage("walk the hash chain", e))?
    {
        let record = record.map_err(|e| storage("walk the hash chain", e))?;
        let envelope =
            Envelope::decode(&record.payload).map_err(|e| corrupt_record(record.seq, e))?;
        walk.step(
            record.seq,
            record.timestamp,
            &record.payload,
            envelope.hash_offset,
            envelope.hash,
        )
        .map_err(|reason| StoreError::Corrupt {
            what: format!("the hash chain at position {}", record.seq),
            reason: reason.to_owned(),
        })?;
    }
    Ok(ChainReport {
        checked: walk.checked,
        head: walk.head,
    })
}

/// What decoding shares between records: one `Arc<str>` per event name, and
/// the stream id and context of the record before (the records of one batch
/// carry the same), so a batch decodes with no allocation per record.
#[derive(Default)]
pub(crate) struct DecodeCache {
    names: Vec<Arc<str>>,
    stream: Option<Arc<str>>,
    context: Option<(Bytes, Arc<EventContext>)>,
}

impl DecodeCache {
    fn name(&mut self, name: &str) -> Arc<str> {
        if let Some(found) = self.names.iter().find(|n| &***n == name) {
            return Arc::clone(found);
        }
        let name: Arc<str> = Arc::from(name);
        if self.names.len() < 64 {
            self.names.push(Arc::clone(&name));
        }
        name
    }

    fn stream(&mut self, id: &str) -> Arc<str> {
        match &self.stream {
            Some(last) if &**last == id => Arc::clone(last),
            _ => Arc::clone(self.stream.insert(Arc::from(id))),
        }
    }

    fn context(&mut self, seq: Seq, bytes: Bytes) -> Result<Arc<EventContext>, StoreError> {
        if let Some((last, context)) = &self.context
            && *last == bytes
        {
            return Ok(Arc::clone(context));
        }
        let context = Arc::new(
            postcard::from_bytes::<EventContext>(&bytes).map_err(|e| corrupt_record(seq, e))?,
        );
        self.context = Some((bytes, Arc::clone(&context)));
        Ok(context)
    }
}

/// Decodes one log record into the event it holds.
fn decode(record: Record, cache: &mut DecodeCache) -> Result<RecordedEvent, StoreError> {
    decode_record(record.seq, record.timestamp, record.payload, cache)
}

/// Decodes the record at `seq` (its payload: envelope and body) into its event.
pub(crate) fn decode_record(
    seq: Seq,
    timestamp: u64,
    payload: Bytes,
    cache: &mut DecodeCache,
) -> Result<RecordedEvent, StoreError> {
    let envelope = Envelope::decode(&payload).map_err(|e| corrupt_record(seq, e))?;
    let body_at = payload.len() - envelope.body.len();
    let name = cache.name(envelope.name);
    let context = match envelope.context {
        Some(bytes) => Some(cache.context(seq, payload.slice_ref(bytes))?),
        None => None,
    };
    let stream = envelope
        .stream
        .map(|(id, version)| (cache.stream(id), version));
    let hash = envelope.hash.copied();
    let version = envelope.version;
    let payload = payload.slice(body_at..);
    let mut event = RecordedEvent::new(seq, timestamp, name, version, payload)
        .with_context(context)
        .with_chain_hash(hash);
    if let Some((id, version)) = stream {
        event = event.in_stream(id, version);
    }
    Ok(event)
}

fn decode_all(
    records: Vec<Record>,
    names: &mut DecodeCache,
) -> Result<Vec<RecordedEvent>, StoreError> {
    records.into_iter().map(|r| decode(r, names)).collect()
}

/// Reads up to `max` records from `from` (blocking).
fn read_blocking(log: &Log, from: Seq, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
    let end = from.saturating_add(max as u64);
    let records = log.range(from..end).map_err(|e| match e {
        StorageError::NotFound { seq, first, last } => StoreError::NotFound {
            position: seq,
            first,
            last,
        },
        other => storage("read the log", other),
    })?;
    let mut names = DecodeCache::default();
    records
        .map(|r| {
            r.map_err(|e| storage("read the log", e))
                .and_then(|r| decode(r, &mut names))
        })
        .collect()
}

impl FileStore {
    /// [`EventStore::append`] without boxing its future: the Db's fast path for
    /// its default store.
    pub(crate) async fn append_direct(&self, batch: AppendBatch) -> Result<Appended, StoreError> {
        let seam = &self.inner.seam;
        self.append_then(BatchRef::from(&batch), |_| seam.notify_waiters())
            .await
    }

    /// [`append_direct`](Self::append_direct) for the Db that owns this store:
    /// see [`try_append_then`](Self::try_append_then).
    pub(crate) async fn append_then(
        &self,
        batch: BatchRef<'_>,
        mut then: impl FnMut(Fresh<'_>),
    ) -> Result<Appended, StoreError> {
        let (appended, durable) = loop {
            match self.try_append_then(batch, &mut then)? {
                Step::Appended(appended, durable) => break (appended, durable),
                Step::Rolling(roll) => roll.wait().await,
            }
        };
        self.wait_durable(&durable).await?;
        Ok(appended)
    }

    /// The synchronous half of an append: puts the batch in the log, or says
    /// that the log is rolling its segment (wait for it, then try again).
    ///
    /// Instead of notifying [`seam_appends`](Self::seam_appends), it calls
    /// `then` with the batch's positions as soon as the batch is readable, so
    /// the Db folds the batch there or wakes its fold tasks; `then` is not
    /// called for a deduplicated batch. The batch is appended even if the
    /// caller never waits with [`wait_durable`](Self::wait_durable) (it is
    /// then durable at the next sync).
    pub(crate) fn try_append_then(
        &self,
        batch: BatchRef<'_>,
        then: impl FnOnce(Fresh<'_>),
    ) -> Result<Step, StoreError> {
        let step = self.enqueue(batch)?;
        if let Step::Appended(appended, Durable::Wait(enqueued)) = &step
            && !appended.deduplicated
        {
            then(Fresh {
                appended,
                timestamp: enqueued.timestamp,
                chained: self.inner.options.chain_hashes,
                batch,
            });
        }
        Ok(step)
    }

    /// Waits until an append is as durable as the fsync policy promises.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: the batch stays appended, durable at a later sync.
    pub(crate) async fn wait_durable(&self, durable: &Durable) -> Result<(), StoreError> {
        let waited = match durable {
            // The log's group commit, as the fsync policy asks.
            Durable::Wait(enqueued) => self.inner.log.wait_durable(enqueued).await,
            // A retry of an append that may still be waiting for its fsync.
            Durable::SyncAll => self.inner.log.sync().await,
        };
        waited.map_err(|e| storage("make the append durable", e))
    }

    /// Notified after each append made through [`EventStore::append`] (once the
    /// batch is readable): the fold tasks of the Db that owns this store sleep
    /// on it, and on their own wake-up, instead of on the log, so that the Db's
    /// own appends, which fold inline, wake no task.
    pub(crate) fn seam_appends(&self) -> &Arc<tokio::sync::Notify> {
        &self.inner.seam
    }

    /// The last position in the log now (0 when empty), without a future.
    pub(crate) fn last_now(&self) -> Seq {
        self.inner.log.last_seq().unwrap_or(0)
    }
}

impl EventStore for FileStore {
    fn append(&self, batch: AppendBatch) -> BoxFuture<'_, Result<Appended, StoreError>> {
        Box::pin(self.append_direct(batch))
    }

    fn read(&self, from: Seq, max: usize) -> BoxFuture<'_, Result<Vec<RecordedEvent>, StoreError>> {
        Box::pin(async move {
            let from = from.max(1);
            if let Some(records) = self.inner.log.read_in_memory(from, max) {
                let records = records.map_err(|e| storage("read the log", e))?;
                return decode_all(records, &mut DecodeCache::default());
            }
            let log = self.inner.log.clone();
            blocking(move || read_blocking(&log, from, max)).await
        })
    }

    fn tail(&self, from: Seq) -> Box<dyn StoreTail> {
        Box::new(FileTail {
            tail: self.inner.log.tail(from.max(1)),
            names: DecodeCache::default(),
        })
    }

    fn read_stream(
        &self,
        stream: &str,
        versions: RangeInclusive<u64>,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>, StoreError>> {
        // The first version asked for is at `positions[0]`.
        let first_version = (*versions.start()).max(1);
        let positions: Vec<Seq> = {
            let writer = self.inner.writer.lock();
            match writer.index.streams.get(stream) {
                Some(all) => {
                    let start = usize::try_from(first_version - 1).unwrap_or(usize::MAX);
                    let end = usize::try_from(*versions.end())
                        .unwrap_or(usize::MAX)
                        .min(all.len());
                    all.get(start..end).map(<[Seq]>::to_vec).unwrap_or_default()
                }
                None => Vec::new(),
            }
        };
        let log = self.inner.log.clone();
        let stream = stream.to_owned();
        Box::pin(async move {
            if positions.is_empty() {
                return Ok(Vec::new());
            }
            // Recent streams are in the log's memory, older ones usually in the
            // page cache: then no trip to the blocking pool.
            if let Some(events) =
                stream_read::without_waiting(&log, &stream, first_version, &positions)
            {
                return events;
            }
            blocking(move || stream_read::blocking(&log, &stream, first_version, &positions)).await
        })
    }

    fn stream_version(&self, stream: &str) -> BoxFuture<'_, Result<u64, StoreError>> {
        let version = self.inner.writer.lock().index.version(stream);
        Box::pin(async move { Ok(version) })
    }

    fn last_position(&self) -> BoxFuture<'_, Result<Option<Seq>, StoreError>> {
        let last = self.inner.log.last_seq();
        Box::pin(async move { Ok(last) })
    }

    fn sync(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.inner
                .log
                .sync()
                .await
                .map_err(|e| storage("sync the log", e))
        })
    }

    fn close(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if self.inner.closed.load(Ordering::Acquire) {
                return Ok(());
            }
            self.inner.writer.lock().closing = true;
            // Every step below is idempotent: a close whose future was dropped
            // half-way is finished by the next call.
            let result = self
                .inner
                .log
                .close()
                .await
                .map_err(|e| storage("close the log", e));
            // A store that only read has nothing new to persist: no trip to the
            // blocking pool to find that out.
            let persisted = if self.index_on_disk() {
                Ok(())
            } else {
                let inner = Arc::clone(&self.inner);
                blocking(move || FileStore::persist_index_blocking(&inner)).await
            };
            drop(self.inner.lock.lock().take());
            self.inner.closed.store(true, Ordering::Release);
            result.and(persisted)
        })
    }

    fn write_snapshot(
        &self,
        state: &str,
        position: Seq,
        bytes: Vec<u8>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let dir = self.state_dir(state);
        let inner = Arc::clone(&self.inner);
        self.writing_snapshot();
        Box::pin(async move {
            let dir = dir?;
            blocking(move || {
                files::write_atomic(&files::snapshot_path(&dir, position), &bytes)?;
                // The stream index goes with each snapshot: a restart after a
                // crash then scans only the tail after it.
                FileStore::persist_index_blocking(&inner)
            })
            .await
        })
    }

    fn write_snapshot_streamed(
        &self,
        state: &str,
        source: super::SnapshotSource,
    ) -> BoxFuture<'_, Result<Seq, StoreError>> {
        static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let dir = self.state_dir(state);
        let inner = Arc::clone(&self.inner);
        self.writing_snapshot();
        Box::pin(async move {
            let dir = dir?;
            let nonce = NONCE.fetch_add(1, Ordering::Relaxed);
            let at = dir.clone();
            let (tmp, position) = blocking(move || files::write_tmp(&at, nonce, source)).await?;
            if let Err(error) = self.sync().await {
                // Not committed: drop the file (the sync's error is the one reported).
                let _ = blocking(move || Ok(std::fs::remove_file(&tmp))).await;
                return Err(error);
            }
            blocking(move || {
                files::commit(&tmp, &files::snapshot_path(&dir, position))?;
                FileStore::persist_index_blocking(&inner)
            })
            .await?;
            Ok(position)
        })
    }

    fn list_snapshots(&self, state: &str) -> BoxFuture<'_, Result<Vec<Seq>, StoreError>> {
        let dir = self.state_dir(state);
        let none = self.no_snapshots();
        Box::pin(async move {
            let dir = dir?;
            if none {
                return Ok(Vec::new());
            }
            blocking(move || files::list_snapshots(&dir)).await
        })
    }

    fn read_snapshot(
        &self,
        state: &str,
        position: Seq,
    ) -> BoxFuture<'_, Result<Option<Vec<u8>>, StoreError>> {
        let dir = self.state_dir(state);
        let none = self.no_snapshots();
        Box::pin(async move {
            let dir = dir?;
            if none {
                return Ok(None);
            }
            blocking(move || files::read_optional(&files::snapshot_path(&dir, position))).await
        })
    }

    fn remove_snapshot(&self, state: &str, position: Seq) -> BoxFuture<'_, Result<(), StoreError>> {
        let dir = self.state_dir(state);
        Box::pin(async move {
            let dir = dir?;
            blocking(move || files::remove_optional(&files::snapshot_path(&dir, position))).await
        })
    }

    fn snapshot_names(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        let dir = self.inner.dir.join("snapshots");
        if self.no_snapshots() {
            return Box::pin(async { Ok(Vec::new()) });
        }
        Box::pin(blocking(move || files::snapshot_names(&dir)))
    }

    fn checkpoint_names(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        let dir = self.inner.dir.join("checkpoints");
        Box::pin(blocking(move || files::checkpoint_names(&dir)))
    }

    fn write_checkpoint(&self, name: &str, position: Seq) -> BoxFuture<'_, Result<(), StoreError>> {
        let path = files::checkpoint_path(&self.inner.dir.join("checkpoints"), name);
        Box::pin(async move {
            let path = path?;
            blocking(move || files::write_atomic(&path, &files::encode_checkpoint(position))).await
        })
    }

    fn read_checkpoint(&self, name: &str) -> BoxFuture<'_, Result<Option<Seq>, StoreError>> {
        let path = files::checkpoint_path(&self.inner.dir.join("checkpoints"), name);
        Box::pin(async move {
            let path = path?;
            blocking(move || match files::read_optional(&path)? {
                Some(bytes) => files::decode_checkpoint(&path, &bytes).map(Some),
                None => Ok(None),
            })
            .await
        })
    }

    fn compact_before(&self, position: Seq) -> BoxFuture<'_, Result<usize, StoreError>> {
        // Stream events are replayed by aggregates: never drop one.
        let first_stream_event = {
            let writer = self.inner.writer.lock();
            writer
                .index
                .streams
                .values()
                .filter_map(|p| p.first().copied())
                .min()
        };
        let cap = first_stream_event.map_or(position, |first| position.min(first));
        let log = self.inner.log.clone();
        Box::pin(async move {
            blocking(move || {
                log.truncate_before(cap)
                    .map_err(|e| storage("compact the log", e))
            })
            .await
        })
    }

    fn verify_chain(&self) -> BoxFuture<'_, Result<ChainReport, StoreError>> {
        let store = self.clone();
        Box::pin(async move { blocking(move || store.verify_chain_blocking()).await })
    }

    fn head_hash(&self) -> Option<[u8; HASH_LEN]> {
        FileStore::head_hash(self)
    }

    fn read_cached(&self, from: Seq, max: usize) -> Option<Result<Vec<RecordedEvent>, StoreError>> {
        let records = self.inner.log.read_in_memory(from.max(1), max)?;
        Some(
            records
                .map_err(|e| storage("read the log", e))
                .and_then(|r| decode_all(r, &mut DecodeCache::default())),
        )
    }

    fn describe(&self) -> String {
        format!("file store {}", self.inner.dir.display())
    }
}

/// A tail of the file store: the log's tail, decoded.
struct FileTail {
    tail: foldkit_storage::Tail,
    names: DecodeCache,
}

impl StoreTail for FileTail {
    fn next_batch(&mut self, max: usize) -> BoxFuture<'_, Result<Vec<RecordedEvent>, StoreError>> {
        Box::pin(async move {
            let records = self
                .tail
                .next_batch(max)
                .await
                .map_err(|e| storage("tail the log", e))?;
            decode_all(records, &mut self.names)
        })
    }

    fn position(&self) -> Seq {
        self.tail.position()
    }
}
