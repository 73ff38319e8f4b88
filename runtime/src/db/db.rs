//! `Db`: the logs of a directory and the states folded from them.
//!
//! Layout of a Db directory:
//!
//! ```text
//! <dir>/LOCK                  held (OS file lock) while a Db has the directory open
//! <dir>/logs/<log name>/      one log per event type, see `log_name`
//! ```
//!
//! A Db owns one [`Log`] per registered event type and one fold task per
//! registered state. It is a cheap `Arc` handle: clones share everything, and
//! the fold tasks stop when the last clone is dropped or on [`Db::close`].

use std::any::{Any, TypeId, type_name};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fs::{File, TryLockError};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use foldkit_storage::{Log, LogOptions, StorageError};
use tokio::task::JoinHandle;

use crate::Seq;
use crate::db::builder::{DbBuilder, EventType};
use crate::db::envelope::encode_event;
use crate::db::error::DbError;
use crate::db::fold::{self, Folder, StopAt};
use crate::db::handle::{Handle, StateCell, StateSlot};
use crate::db::log_name::log_name;
use crate::db::policy::FoldErrorPolicy;
use crate::db::snapshots::Snapshots;
use crate::event::Event;
use crate::snapshot::Bundle;
use crate::state::State;

/// Starts the fold of one state type: monomorphized per state by the builder.
pub(crate) type StateStarter =
    fn(&EventLog, &StartContext) -> Result<(RunningState, JoinHandle<()>), DbError>;

/// What starting a state needs besides its log.
pub(crate) struct StartContext {
    pub(crate) policy: FoldErrorPolicy,
    pub(crate) snapshots: Arc<Snapshots>,
    pub(crate) restore: Option<Bundle>,
}

/// The log of one event type.
pub(crate) struct EventLog {
    pub(crate) event: EventType,
    /// The log's directory name under `<dir>/logs/`.
    pub(crate) name: String,
    pub(crate) log: Log,
    /// The streams of this log, indexed on first use (see `streams`).
    pub(crate) streams: crate::db::streams::LazyStreamIndex,
}

/// A state being folded: its cell (type-erased) and how to stop its task.
pub(crate) struct RunningState {
    pub(crate) slot: Arc<dyn StateSlot>,
    pub(crate) event: TypeId,
    pub(crate) stop: StopAt,
}

/// Starts folding `S` from the beginning of its log.
///
/// The seam for snapshots: a restored state is a `StateCell::new(.., value, seq)`
/// handed to `fold::spawn`, which resumes at `seq + 1`.
pub(crate) fn start_state<S: State>(
    log: &EventLog,
    context: &StartContext,
) -> Result<(RunningState, JoinHandle<()>), DbError> {
    let start = crate::db::start::initial_state::<S>(log, context)?;
    let applied = start.report.seq;
    let folder = Folder::new(
        log.log.clone(),
        context.policy,
        Arc::clone(&context.snapshots),
        applied,
    );
    let cell = Arc::new(
        StateCell::<S>::new(log.name.clone(), folder, start.value, applied)
            .started(start.last, start.report),
    );
    let (stop, task) = fold::spawn(Arc::clone(&cell), &log.log);
    let running = RunningState {
        slot: cell,
        event: log.event.id,
        stop,
    };
    Ok((running, task))
}

/// An embedded event-sourced database: appends events to per-type logs on disk
/// and folds them into in-memory states.
///
/// ```
/// # use foldkit::prelude::*;
/// # #[derive(Serialize, Deserialize)]
/// # enum Counter { Add(u64) }
/// # impl Event for Counter {
/// #     const NAME: &'static str = "Counter";
/// #     const VERSION: u32 = 1;
/// #     fn variant_name(&self) -> &'static str { "Add" }
/// #     fn decode(version: u32, bytes: &[u8]) -> Result<Self, foldkit::CodecError> {
/// #         foldkit::__private::decode_oldest(version, bytes)
/// #     }
/// # }
/// # #[derive(Default, Serialize, Deserialize)]
/// # struct Total { sum: u64 }
/// # impl State for Total {
/// #     type Event = Counter;
/// #     const NAME: &'static str = "Total";
/// #     const VERSION: u32 = 1;
/// #     const FINGERPRINT: u64 = 0;
/// #     fn apply_event(&mut self, Counter::Add(n): Counter, _: &Meta) -> Result<(), FoldError> {
/// #         self.sum += n;
/// #         Ok(())
/// #     }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), foldkit::DbError> {
/// # let dir = tempfile::tempdir().expect("tempdir");
/// let db = Db::builder(dir.path())
///     .fsync(FsyncPolicy::Never)
///     .state::<Total>()
///     .open()
///     .await?;
/// let total = db.state::<Total>();
/// let seq = db.append(Counter::Add(5)).await?;
/// total.wait_for_seq(seq).await?; // read-your-writes
/// assert_eq!(total.read().sum, 5);
/// db.close().await?;
///
/// // Reopening replays the log.
/// let db = Db::builder(dir.path()).state::<Total>().open().await?;
/// db.state::<Total>().wait_for_seq(seq).await?;
/// assert_eq!(db.state::<Total>().read().sum, 5);
/// # db.close().await
/// # }
/// ```
#[derive(Clone)]
pub struct Db {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    dir: PathBuf,
    pub(crate) logs: HashMap<TypeId, EventLog>,
    pub(crate) states: HashMap<TypeId, RunningState>,
    tasks: parking_lot::Mutex<Vec<JoinHandle<()>>>,
    /// Set once by `close`; appends check it after announcing themselves in
    /// `appending`, and `close` waits for `appending` to drain after setting it,
    /// so every append either fails with `Closed` or lands before the logs close.
    closed: AtomicBool,
    appending: AtomicUsize,
    /// The shutdown, run once in its own task (see `close`).
    closing: crate::db::close::Closing,
    /// The OS lock on `<dir>/LOCK`: held from open until close (or drop).
    lock: parking_lot::Mutex<Option<File>>,
    /// The snapshot files and when to write them (see `snapshots`).
    pub(crate) snapshots: Arc<Snapshots>,
    /// Per aggregate type: the cached states of its instances (see `aggregates`).
    aggregate_caches: parking_lot::Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut logs: Vec<&str> = self.inner.logs.values().map(|l| l.name.as_str()).collect();
        let mut states: Vec<(&str, Seq)> = (self.inner.states.values())
            .map(|s| (s.slot.name(), s.slot.applied_seq()))
            .collect();
        logs.sort_unstable();
        states.sort_unstable();
        f.debug_struct("Db")
            .field("dir", &self.inner.dir)
            .field("logs", &logs)
            .field("states", &states)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl Db {
    /// Starts configuring a Db stored in the directory `dir` (created if missing).
    pub fn builder(dir: impl AsRef<Path>) -> DbBuilder {
        DbBuilder::new(dir.as_ref().to_path_buf())
    }

    /// Opens the Db on the blocking pool: recovering logs and loading snapshots
    /// reads files, which must not stall a runtime worker.
    pub(crate) async fn open(builder: DbBuilder) -> Result<Db, DbError> {
        let opening = tokio::task::spawn_blocking(move || Self::open_blocking(builder));
        match opening.await {
            Ok(opened) => opened,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(_) => Err(DbError::Closed),
        }
    }

    fn open_blocking(builder: DbBuilder) -> Result<Db, DbError> {
        let dir = builder.dir;
        let dir_error = |source| DbError::Dir {
            dir: dir.clone(),
            source,
        };
        std::fs::create_dir_all(dir.join("logs")).map_err(dir_error)?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))
            .map_err(dir_error)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(DbError::AlreadyOpen { dir }),
            Err(TryLockError::Error(source)) => return Err(dir_error(source)),
        }

        let mut by_name: HashMap<&'static str, EventType> = HashMap::new();
        let mut logs = HashMap::new();
        for event in builder.events {
            match by_name.entry(event.name) {
                Entry::Occupied(first) => {
                    return Err(DbError::EventNameConflict {
                        name: event.name,
                        first: first.get().rust_name,
                        second: event.rust_name,
                    });
                }
                Entry::Vacant(slot) => {
                    slot.insert(event);
                }
            }
            let name = log_name(event.name)?;
            let mut options = LogOptions::default();
            if let Some(fsync) = builder.fsync {
                options = options.fsync(fsync);
            }
            if let Some(bytes) = builder.segment_size {
                options = options.segment_size(bytes);
            }
            if let Some(hook) = &builder.fsync_hook {
                options = options.fsync_hook(hook.clone());
            }
            let log = Log::open(dir.join("logs").join(&name), options).map_err(|source| {
                DbError::Storage {
                    log: name.clone(),
                    source,
                }
            })?;
            logs.insert(
                event.id,
                EventLog {
                    event,
                    name,
                    log,
                    streams: Default::default(),
                },
            );
        }

        let snapshots = Arc::new(Snapshots::new(&dir, &builder.snapshots));
        let context = StartContext {
            policy: builder.policy,
            snapshots: Arc::clone(&snapshots),
            restore: builder.snapshots.restore.clone(),
        };
        let mut states = HashMap::new();
        let mut tasks = Vec::new();
        for state in builder.states {
            let log = logs.get(&state.event.id).ok_or(DbError::UnknownEvent {
                event: state.event.name,
            })?;
            let (running, task) = (state.start)(log, &context)?;
            states.insert(state.id, running);
            tasks.push(task);
        }

        Ok(Db {
            inner: Arc::new(Inner {
                dir,
                logs,
                states,
                tasks: parking_lot::Mutex::new(tasks),
                closed: AtomicBool::new(false),
                appending: AtomicUsize::new(0),
                closing: Default::default(),
                lock: parking_lot::Mutex::new(Some(lock)),
                aggregate_caches: parking_lot::Mutex::default(),
                snapshots,
            }),
        })
    }

    /// The directory the Db lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The handle on state `S`.
    ///
    /// # Panics
    ///
    /// Panics if `S` was not registered with `.state::<S>()` on the builder: that
    /// is a bug in the program, not a runtime condition. Use [`Db::try_state`] to
    /// get an error instead.
    #[track_caller]
    pub fn state<S: State>(&self) -> Handle<S> {
        match self.try_state::<S>() {
            Ok(handle) => handle,
            Err(error) => panic!("{error}"),
        }
    }

    /// The handle on state `S`, or [`DbError::UnknownState`] if it was not registered.
    pub fn try_state<S: State>(&self) -> Result<Handle<S>, DbError> {
        let running = self
            .inner
            .states
            .get(&TypeId::of::<S>())
            .ok_or(DbError::UnknownState {
                state: type_name::<S>(),
            })?;
        let any: Arc<dyn Any + Send + Sync> = Arc::clone(&running.slot) as _;
        let cell = any
            .downcast::<StateCell<S>>()
            .map_err(|_| DbError::UnknownState {
                state: type_name::<S>(),
            })?;
        Ok(Handle::new(cell))
    }

    /// Appends one event to its type's log and returns its seq. The states folded
    /// from that log apply it shortly after: `handle.wait_for_seq(seq)` waits for it.
    ///
    /// # Cancel safety
    ///
    /// Not atomic with respect to cancellation, and never harmful: the record is
    /// written at the first poll. Dropped before that poll completes, nothing is
    /// appended; dropped after it (e.g. while it waits for the fsync under
    /// `FsyncPolicy::Always` or `EveryN`), the event is in the log (durable at
    /// the next fsync) and folded like any other, but the caller never learns
    /// its seq. The Db stays fully usable either way.
    pub async fn append<E: Event>(&self, event: E) -> Result<Seq, DbError> {
        let _appending = Appending::enter(&self.inner)?;
        let log = self.log_of::<E>()?;
        let payload = encode_event(&event, None)?;
        let seq = log.log.append(&payload).await;
        seq.map_err(|source| self.storage_error(log, source))
    }

    /// The seq of the last event appended to `E`'s log (`None`: empty, or `E`'s
    /// log is not registered). Waiting for it with `wait_for_seq` waits for
    /// everything appended so far.
    pub fn last_seq<E: Event>(&self) -> Option<Seq> {
        self.inner.logs.get(&TypeId::of::<E>())?.log.last_seq()
    }

    /// Appends several events as one atomic batch (after a crash, all of them or
    /// none are in the log) and returns their seqs. An empty batch is an error.
    ///
    /// # Cancel safety
    ///
    /// Not atomic with respect to cancellation, and never harmful: the record is
    /// written at the first poll. Dropped before that poll completes, nothing is
    /// appended; dropped after it (e.g. while it waits for the fsync under
    /// `FsyncPolicy::Always` or `EveryN`), the whole batch is in the log (durable at
    /// the next fsync) and folded like any other, but the caller never learns
    /// its seqs. The Db stays fully usable either way.
    pub async fn append_batch<E: Event>(
        &self,
        events: impl IntoIterator<Item = E>,
    ) -> Result<RangeInclusive<Seq>, DbError> {
        self.append_batch_to(None, events).await
    }

    /// Appends a batch whose events all carry `stream_id` in their envelope (the
    /// seam for aggregates, which append one command's events to one stream).
    pub(crate) async fn append_batch_to<E: Event>(
        &self,
        stream_id: Option<&str>,
        events: impl IntoIterator<Item = E>,
    ) -> Result<RangeInclusive<Seq>, DbError> {
        let _appending = Appending::enter(&self.inner)?;
        let log = self.log_of::<E>()?;
        let payloads = events
            .into_iter()
            .map(|event| encode_event(&event, stream_id))
            .collect::<Result<Vec<_>, _>>()?;
        if payloads.is_empty() {
            return Err(DbError::EmptyBatch { event: E::NAME });
        }
        let seqs = log.log.append_batch(&payloads).await;
        seqs.map_err(|source| self.storage_error(log, source))
    }

    /// Closes the Db: refuses new appends, makes every appended event durable
    /// (flush + fsync), lets each state fold everything appended before the
    /// close, stops the fold tasks and closes the logs. Handles stay readable;
    /// `wait_for_seq` beyond what was folded returns [`DbError::Closed`].
    /// Reopening the directory resumes where the Db stopped. Closing twice is a no-op.
    ///
    /// On an error the shutdown still completes; the first error is returned
    /// (a storage error as [`DbError::Storage`], never as `Closed`).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe. The shutdown runs in a task of its own: dropping this future
    /// does not stop it (appends are refused from the first poll on), and a later
    /// `close()` waits for that same shutdown to finish and returns its result.
    pub async fn close(&self) -> Result<(), DbError> {
        // Refused from the first poll on, whoever runs the shutdown.
        self.inner.closed.store(true, Ordering::SeqCst);
        let db = self.clone();
        (self.inner.closing)
            .run(move || async move { db.shutdown().await })
            .await
    }

    /// The body of `close`, run once, in its own task.
    async fn shutdown(&self) -> Result<(), DbError> {
        self.inner.closed.store(true, Ordering::SeqCst);
        while self.inner.appending.load(Ordering::SeqCst) > 0 {
            tokio::task::yield_now().await;
        }
        let mut first_error = None;
        let mut ends = HashMap::new();
        for (id, log) in &self.inner.logs {
            if let Err(source) = log.log.sync().await {
                first_error.get_or_insert(self.storage_error(log, source));
            }
            ends.insert(*id, log.log.last_seq().unwrap_or(0));
        }
        for state in self.inner.states.values() {
            state
                .stop
                .send_replace(Some(ends.get(&state.event).copied().unwrap_or(0)));
        }
        let tasks = std::mem::take(&mut *self.inner.tasks.lock());
        for task in tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "a fold task ended abnormally");
            }
        }
        // Background snapshot writes finish before the close snapshot and before
        // the directory is released.
        for state in self.inner.states.values() {
            if let Some(write) = state.slot.take_pending_write()
                && let Err(error) = write.await
            {
                tracing::warn!(state = state.slot.name(), error = %crate::chain::Chain(&error), "foldkit: a snapshot write failed");
            }
        }
        if self.inner.snapshots.on_close {
            // Encoding and writing files: on the blocking pool.
            let snapshots = Arc::clone(&self.inner.snapshots);
            let slots: Vec<_> = self
                .inner
                .states
                .values()
                .map(|s| Arc::clone(&s.slot))
                .collect();
            let write = tokio::task::spawn_blocking(move || {
                for slot in slots {
                    if let Err(error) = snapshots.write(slot.as_ref()) {
                        tracing::warn!(state = slot.name(), error = %crate::chain::Chain(&error), "foldkit: no snapshot at close; the next open replays");
                    }
                }
            });
            if let Err(error) = write.await {
                tracing::warn!(%error, "foldkit: the close snapshots did not finish");
            }
        }
        for state in self.inner.states.values() {
            state.slot.release_log();
        }
        for log in self.inner.logs.values() {
            if let Err(source) = log.log.close().await {
                first_error.get_or_insert(self.storage_error(log, source));
            }
        }
        // Dropping the file releases the lock: the directory may be reopened.
        drop(self.inner.lock.lock().take());
        first_error.map_or(Ok(()), Err)
    }

    pub(crate) fn log_of<E: Event>(&self) -> Result<&EventLog, DbError> {
        self.inner
            .logs
            .get(&TypeId::of::<E>())
            .ok_or(DbError::UnknownEvent { event: E::NAME })
    }

    /// The instance cache of aggregate type `T`, shared by every handle on it.
    pub(crate) fn aggregate_cache<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        let mut caches = self.inner.aggregate_caches.lock();
        let any = caches
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(T::default()) as Arc<dyn Any + Send + Sync>);
        Arc::clone(any)
            .downcast::<T>()
            .unwrap_or_else(|_| unreachable!("the cache map is keyed by TypeId::of::<T>"))
    }

    /// A storage error of `log`; the log being closed is [`DbError::Closed`].
    /// (Any other error is returned as it is, even once the Db is closed: a
    /// failed sync at close must say what failed.)
    pub(crate) fn storage_error(&self, log: &EventLog, source: StorageError) -> DbError {
        if matches!(source, StorageError::Closed) {
            DbError::Closed
        } else {
            DbError::Storage {
                log: log.name.clone(),
                source,
            }
        }
    }
}

/// An append in progress: counted in `Inner::appending` while it lives.
struct Appending<'a>(&'a Inner);

impl<'a> Appending<'a> {
    fn enter(inner: &'a Inner) -> Result<Self, DbError> {
        inner.appending.fetch_add(1, Ordering::SeqCst);
        let appending = Appending(inner);
        if inner.closed.load(Ordering::SeqCst) {
            return Err(DbError::Closed);
        }
        Ok(appending)
    }
}

impl Drop for Appending<'_> {
    fn drop(&mut self) {
        self.0.appending.fetch_sub(1, Ordering::SeqCst);
    }
}
