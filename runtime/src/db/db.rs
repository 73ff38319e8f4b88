//! `Db`: one ordered log (behind an [`EventStore`]) and the states folded from it.
//!
//! A Db owns one store and one fold task per registered state. Every appended
//! event, of any registered type, gets the store's next position; each state
//! tails the whole log and folds the types it lists. A Db is a cheap `Arc`
//! handle: clones share everything, and the fold tasks stop when the last clone
//! is dropped or on [`Db::close`].

use std::any::{Any, TypeId, type_name};
use std::collections::HashMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures::future::BoxFuture;
use tokio::task::JoinHandle;

use crate::Seq;
use crate::db::body;
use crate::db::builder::{DbBuilder, StoreChoice};
use crate::db::close::Closing;
use crate::db::error::DbError;
use crate::db::fold::{self, Folder, StopAt};
use crate::db::handle::{Handle, StateCell, StateSlot};
use crate::db::open_report::{OpenReport, StateOpened};
use crate::db::policy::FoldErrorPolicy;
use crate::db::prefetch::Prefetch;
use crate::db::registry::Registry;
use crate::db::snapshots::{self, Snapshots};
use crate::event::Event;
use crate::snapshot::Bundle;
use crate::state::State;
use crate::store::file::{BatchRef, Fresh, LockedDir, Step};
use crate::store::{
    AppendBatch, EventContext, EventStore, FileStore, FileStoreOptions, NewEvent, StoreError,
};

/// Starts the fold of one state type: monomorphized per state by the builder.
pub(crate) type StateStarter =
    for<'a> fn(&'a StartContext) -> BoxFuture<'a, Result<Started, DbError>>;

/// A started state: its running fold, its task, and how it started.
pub(crate) struct Started {
    pub(crate) running: RunningState,
    pub(crate) task: JoinHandle<()>,
    pub(crate) opened: StateOpened,
}

/// What starting a state needs.
pub(crate) struct StartContext {
    pub(crate) store: Arc<dyn EventStore>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) policy: FoldErrorPolicy,
    pub(crate) state_policies: HashMap<&'static str, FoldErrorPolicy>,
    pub(crate) snapshots: Arc<Snapshots>,
    pub(crate) restore: Option<Bundle>,
    /// The store's last position at open.
    pub(crate) last: Seq,
    /// The store when it is the Db's own file store (see `Folder::local`).
    pub(crate) file: Option<FileStore>,
    /// Per state type: its newest snapshot, decoding since before the log opened
    /// (file store only; see `prefetch`).
    pub(crate) prefetched: parking_lot::Mutex<HashMap<TypeId, Prefetch>>,
}

/// A state being folded: its cell (type-erased) and how to stop its task.
pub(crate) struct RunningState {
    pub(crate) slot: Arc<dyn StateSlot>,
    pub(crate) stop: StopAt,
}

/// Starts folding `S` from its newest valid snapshot (or the start).
pub(crate) fn start_state<S: State>(
    context: &StartContext,
) -> BoxFuture<'_, Result<Started, DbError>> {
    Box::pin(async move {
        let start = snapshots::initial_state::<S>(context).await?;
        let applied = start.applied;
        let policy = context
            .state_policies
            .get(S::NAME)
            .copied()
            .unwrap_or(context.policy);
        let folder = Folder::new(
            Arc::clone(&context.store),
            Arc::clone(&context.registry),
            policy,
            Arc::clone(&context.snapshots),
            applied,
            context.file.clone(),
        );
        let cell = Arc::new(StateCell::<S>::new(
            folder,
            start.value,
            applied,
            start.last,
        ));
        let (stop, task) = fold::spawn(Arc::clone(&cell));
        let opened = StateOpened {
            state: S::NAME,
            snapshot: start.snapshot,
            rejected: start.rejected,
            resumed_at: applied,
            replay_to: context.last,
        };
        Ok(Started {
            running: RunningState { slot: cell, stop },
            task,
            opened,
        })
    })
}

/// An embedded event-sourced database: appends events of every registered type
/// to one ordered log and folds them into in-memory states.
///
/// ```
/// # use foldkit::prelude::*;
/// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
/// enum Counter { Add(u64) }
///
/// #[derive(State, Default, Serialize, Deserialize)]
/// #[state(event = Counter)]
/// struct Total { sum: u64 }
///
/// impl Apply<Counter> for Total {
///     fn apply(&mut self, Counter::Add(n): Counter, _: &Meta) -> Result<(), FoldError> {
///         self.sum += n;
///         Ok(())
///     }
/// }
///
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
/// // Reopening resumes from the snapshot written at close.
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
    pub(crate) store: Arc<dyn EventStore>,
    /// The same store when it is the file store: appends skip the boxed future.
    file: Option<FileStore>,
    dir: Option<PathBuf>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) states: HashMap<TypeId, RunningState>,
    tasks: parking_lot::Mutex<Vec<JoinHandle<()>>>,
    /// Set once by `close`; appends check it after announcing themselves in
    /// `appending`, and `close` waits for `appending` to drain after setting it,
    /// so every append either fails with `Closed` or lands before the store closes.
    closed: AtomicBool,
    appending: AtomicUsize,
    closing: Closing,
    /// The snapshot settings (see `snapshots`).
    pub(crate) snapshots: Arc<Snapshots>,
    /// Per aggregate type: the cached states of its instances (see `aggregates`).
    aggregate_caches: parking_lot::Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
    pub(crate) aggregate_cache: usize,
    open_report: OpenReport,
    /// Running subscriptions and process managers (see `crate::process`).
    pub(crate) extensions: crate::process::Extensions,
    append_metrics: crate::observability::AppendMetrics,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut states: Vec<(&str, Seq)> = (self.inner.states.values())
            .map(|s| (s.slot.name(), s.slot.applied_seq()))
            .collect();
        states.sort_unstable();
        f.debug_struct("Db")
            .field("store", &self.inner.store.describe())
            .field("states", &states)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish()
    }
}

fn store_error_at_open(dir: Option<&Path>, error: StoreError) -> DbError {
    match (error, dir) {
        (StoreError::AlreadyOpen { .. }, Some(dir)) => DbError::AlreadyOpen {
            dir: dir.to_path_buf(),
        },
        (error, _) => DbError::from(error),
    }
}

impl Db {
    /// Starts configuring a Db stored in the directory `dir` (created if
    /// missing): the embedded file store.
    pub fn builder(dir: impl AsRef<Path>) -> DbBuilder {
        DbBuilder::new(StoreChoice::Dir(dir.as_ref().to_path_buf()))
    }

    /// Starts configuring a Db over any [`EventStore`] (e.g. `foldkit-postgres`'s
    /// `PgStore`): everything else is the same as with [`Db::builder`].
    pub fn builder_with(store: impl EventStore) -> DbBuilder {
        DbBuilder::new(StoreChoice::Given(Arc::new(store)))
    }

    pub(crate) async fn open(builder: DbBuilder) -> Result<Db, DbError> {
        let began = std::time::Instant::now();
        let registry = Arc::new(Registry::new(&builder.events)?);
        type Opened = (
            Arc<dyn EventStore>,
            Option<PathBuf>,
            Option<foldkit_storage::RecoveryReport>,
            Option<FileStore>,
        );
        let mut prefetched = HashMap::new();
        let (store, dir, recovery, file): Opened = match builder.store {
            StoreChoice::Dir(dir) => {
                let options = FileStoreOptions {
                    fsync: builder.fsync,
                    segment_size: builder.segment_size,
                    chain_hashes: builder.chain_hashes,
                    fsync_hook: builder.fsync_hook,
                };
                let at_open = |e| store_error_at_open(Some(&dir), e);
                let locked = LockedDir::take_async(dir.clone()).await.map_err(at_open)?;
                let restore = builder.snapshots.restore.as_ref();
                for state in &builder.states {
                    if restore.is_none_or(|bundle| bundle.get(state.name).is_none()) {
                        let read = Box::new(locked.newest_snapshot(state.name));
                        prefetched.insert(state.id, (state.prefetch)(read));
                    }
                }
                let store = locked.open_async(options).await.map_err(at_open)?;
                let recovery = Some(store.recovery_report().clone());
                (Arc::new(store.clone()), Some(dir), recovery, Some(store))
            }
            StoreChoice::Given(store) => (store, None, None, None),
        };
        let last = store.last_position().await?.unwrap_or(0);
        let snapshots = Arc::new(Snapshots::new(&builder.snapshots));
        let context = StartContext {
            store: Arc::clone(&store),
            registry: Arc::clone(&registry),
            policy: builder.policy,
            state_policies: builder.state_policies,
            snapshots: Arc::clone(&snapshots),
            restore: builder.snapshots.restore.clone(),
            last,
            file: file.clone(),
            prefetched: parking_lot::Mutex::new(prefetched),
        };
        let mut states = HashMap::new();
        let mut tasks = Vec::new();
        let mut opened = Vec::new();
        for state in builder.states {
            let started = (state.start)(&context).await?;
            states.insert(state.id, started.running);
            tasks.push(started.task);
            opened.push(started.opened);
        }
        let processes = builder.processes;
        let open_report = OpenReport::new(recovery, opened, began);
        tracing::info!(store = %store.describe(), last_position = last, states = states.len(), elapsed_ms = began.elapsed().as_millis() as u64, "foldkit: Db opened");
        let db = Db {
            inner: Arc::new(Inner {
                store,
                file,
                dir,
                registry,
                states,
                tasks: parking_lot::Mutex::new(tasks),
                closed: AtomicBool::new(false),
                appending: AtomicUsize::new(0),
                closing: Closing::default(),
                aggregate_caches: parking_lot::Mutex::default(),
                aggregate_cache: builder.aggregate_cache,
                snapshots,
                open_report,
                extensions: crate::process::Extensions::default(),
                append_metrics: crate::observability::AppendMetrics::register(),
            }),
        };
        processes.start(&db).await?;
        Ok(db)
    }

    /// The directory the Db lives in (`None` for a store given to [`Db::builder_with`]).
    pub fn dir(&self) -> Option<&Path> {
        self.inner.dir.as_deref()
    }

    /// The store the Db reads and writes.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.inner.store
    }

    /// What happened at open: per state, the snapshot used (or why none) and
    /// the events left to replay; the storage recovery report; the time taken.
    pub fn open_report(&self) -> &OpenReport {
        &self.inner.open_report
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
        let unknown = || DbError::UnknownState {
            state: type_name::<S>(),
        };
        let running = self
            .inner
            .states
            .get(&TypeId::of::<S>())
            .ok_or_else(unknown)?;
        let any: Arc<dyn Any + Send + Sync> = Arc::clone(&running.slot) as _;
        let cell = any.downcast::<StateCell<S>>().map_err(|_| unknown())?;
        Ok(Handle::new(cell))
    }

    /// Appends one event and returns its position. Every state that folds `E`
    /// applies it shortly after: `handle.wait_for_seq(seq)` waits for it.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped before it completes, the event may or may not
    /// have been appended (never half); it is then durable at the next sync.
    pub async fn append<E: Event>(&self, event: E) -> Result<Seq, DbError> {
        let seqs = self.append_batch_with(None, std::iter::once(event)).await?;
        Ok(*seqs.start())
    }

    /// [`append`](Self::append) with a context (correlation id, causation,
    /// actor, metadata) stored in the event's envelope and visible in [`Meta`](crate::Meta).
    ///
    /// # Cancel safety
    ///
    /// As [`append`](Self::append).
    pub async fn append_with<E: Event>(
        &self,
        event: E,
        context: EventContext,
    ) -> Result<Seq, DbError> {
        let seqs = self
            .append_batch_with(Some(Arc::new(context)), std::iter::once(event))
            .await?;
        Ok(*seqs.start())
    }

    /// The position of the last event in the log, if any. Waiting for it with
    /// `wait_for_seq` waits for everything appended so far.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads.
    pub async fn last_seq(&self) -> Result<Option<Seq>, DbError> {
        Ok(self.inner.store.last_position().await?)
    }

    /// Appends several events as one atomic batch (after a crash, all of them or
    /// none are in the log) at consecutive positions, and returns them. An empty
    /// batch is an error.
    ///
    /// # Cancel safety
    ///
    /// As [`append`](Self::append): all of the batch or none of it.
    pub async fn append_batch<E: Event>(
        &self,
        events: impl IntoIterator<Item = E>,
    ) -> Result<RangeInclusive<Seq>, DbError> {
        self.append_batch_with(None, events).await
    }

    async fn append_batch_with<E: Event>(
        &self,
        context: Option<Arc<EventContext>>,
        events: impl IntoIterator<Item = E>,
    ) -> Result<RangeInclusive<Seq>, DbError> {
        let Some(file) = &self.inner.file else {
            let mut batch = AppendBatch::new(self.encode_events(events)?);
            batch.context = context;
            return Ok(self.append_raw(batch).await?.positions);
        };
        // Over the Db's own file store, the events are encoded into a reused
        // buffer and put in the log from there: no `Vec` or allocation per event.
        let appending = Appending::enter(&self.inner)?;
        let name = &self.inner.registry.get::<E>()?.name;
        let tried = body::with_bodies(|bodies| {
            for event in events {
                bodies.push(&event)?;
            }
            if bodies.ends.is_empty() {
                return Err(DbError::EmptyBatch { event: E::NAME });
            }
            let batch = BatchRef::packed(name, E::VERSION, &bodies.bytes, &bodies.ends)
                .with_context(context.as_ref());
            Ok(
                match file.try_append_then(batch, |fresh| self.fold_fresh(fresh))? {
                    Step::Appended(appended, durable) => Ok((
                        appended,
                        durable,
                        (batch.len() as u64, bodies.bytes.len() as u64),
                    )),
                    // The bodies cannot wait in the shared buffer: they go the owned way.
                    Step::Rolling(_) => Err(batch.to_owned_batch()),
                },
            )
        })?;
        let (appended, durable, size) = match tried {
            Ok(done) => done,
            Err(owned) => {
                drop(appending);
                return Ok(self.append_raw(owned).await?.positions);
            }
        };
        file.wait_durable(&durable).await?;
        self.inner.append_metrics.appended(size, &appended);
        Ok(appended.positions)
    }

    /// The events as the store takes them.
    pub(crate) fn encode_events<E: Event>(
        &self,
        events: impl IntoIterator<Item = E>,
    ) -> Result<Vec<NewEvent>, DbError> {
        let name = &self.inner.registry.get::<E>()?.name;
        let events = events
            .into_iter()
            .map(|event| {
                Ok(NewEvent {
                    name: Arc::clone(name),
                    schema_version: E::VERSION,
                    payload: event.encode()?,
                })
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        if events.is_empty() {
            return Err(DbError::EmptyBatch { event: E::NAME });
        }
        Ok(events)
    }

    /// Appends a batch through the store, refused once the Db is closing.
    pub(crate) async fn append_raw(
        &self,
        batch: AppendBatch,
    ) -> Result<crate::store::Appended, DbError> {
        let _appending = Appending::enter(&self.inner)?;
        let size = crate::observability::batch_size(&batch);
        let appended = match &self.inner.file {
            // Each state folds the batch here, or its task is woken.
            Some(file) => {
                file.append_then(BatchRef::from(&batch), |fresh| self.fold_fresh(fresh))
                    .await?
            }
            None => self.inner.store.append(batch).await?,
        };
        self.inner.append_metrics.appended(size, &appended);
        Ok(appended)
    }

    /// Each state folds a batch just appended to the Db's file store in place,
    /// or its task is woken.
    fn fold_fresh(&self, fresh: Fresh<'_>) {
        // Larger batches go to the fold tasks: no records to build.
        let small = fresh.len() <= fold::MAX_IN_PLACE;
        let records = small.then(|| fresh.records()).flatten();
        for state in self.inner.states.values() {
            state.slot.after_append(fresh.appended, records.as_deref());
        }
    }

    /// Closes the Db: refuses new appends, makes every appended event durable,
    /// lets each state fold everything appended before the close, writes the
    /// close snapshots, stops the fold tasks and closes the store. Handles stay
    /// readable; `wait_for_seq` beyond what was folded returns [`DbError::Closed`].
    /// Reopening resumes where the Db stopped. Closing twice is a no-op.
    ///
    /// On an error the shutdown still completes; the first error is returned.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe. The shutdown runs in a task of its own: dropping this future
    /// does not stop it (appends are refused from the first poll on), and a later
    /// `close()` waits for that same shutdown to finish and returns its result.
    pub async fn close(&self) -> Result<(), DbError> {
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
        // Process managers write their last checkpoint while the store is open.
        self.inner.extensions.stop().await;
        let mut first_error: Option<DbError> = None;
        if let Err(error) = self.inner.store.sync().await {
            first_error.get_or_insert(DbError::Store(error));
        }
        let end = match self.inner.store.last_position().await {
            Ok(end) => end.unwrap_or(0),
            Err(error) => {
                first_error.get_or_insert(DbError::Store(error));
                0
            }
        };
        for state in self.inner.states.values() {
            state.stop.send_replace(Some(end));
        }
        let tasks = std::mem::take(&mut *self.inner.tasks.lock());
        for task in tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "foldkit: a fold task ended abnormally");
            }
        }
        for state in self.inner.states.values() {
            if let Some(write) = state.slot.take_pending_write()
                && let Err(error) = write.await
            {
                tracing::warn!(state = state.slot.name(), %error, "foldkit: a snapshot write failed");
            }
        }
        if self.inner.snapshots.on_close {
            for state in self.inner.states.values() {
                if let Err(error) = snapshots::write_now(&state.slot).await {
                    tracing::warn!(state = state.slot.name(), error = %crate::chain::Chain(&error), "foldkit: no snapshot at close; the next open replays");
                }
            }
        }
        for state in self.inner.states.values() {
            state.slot.release_store();
        }
        if let Err(error) = self.inner.store.close().await {
            first_error.get_or_insert(DbError::Store(error));
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The instance cache of aggregate type `T`, shared by every handle on it.
    pub(crate) fn aggregate_cache<T: Send + Sync + 'static>(
        &self,
        make: impl FnOnce() -> T,
    ) -> Arc<T> {
        let mut caches = self.inner.aggregate_caches.lock();
        let any = caches
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(make()) as Arc<dyn Any + Send + Sync>);
        Arc::clone(any)
            .downcast::<T>()
            .unwrap_or_else(|_| unreachable!("the cache map is keyed by TypeId::of::<T>"))
    }

    /// The registered states, in name order.
    pub(crate) fn slots(&self) -> Vec<&Arc<dyn StateSlot>> {
        let mut slots: Vec<_> = self.inner.states.values().map(|s| &s.slot).collect();
        slots.sort_by_key(|s| s.name());
        slots
    }

    /// Walks the whole log and checks the hash chain (see
    /// [`DbBuilder::chain_hashes`]): any edit, deletion or reordering of a chained
    /// event is an error naming its position.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads.
    pub async fn verify_chain(&self) -> Result<crate::store::ChainReport, DbError> {
        Ok(self.inner.store.verify_chain().await?)
    }

    /// The hash of the last chained event: the head to publish or sign.
    pub fn head_hash(&self) -> Option<[u8; 32]> {
        self.inner.store.head_hash()
    }

    /// Event type names met in the log that no registered type knows (each was
    /// skipped by every state and reported once).
    pub fn unknown_event_names(&self) -> Vec<Arc<str>> {
        self.inner.registry.unknown_names()
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
