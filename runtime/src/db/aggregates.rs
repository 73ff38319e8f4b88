//! Running commands against aggregates: load, decide, append, with no lost update.
//!
//! `execute(id, cmd)` takes the instance's local lock (commands on one instance
//! in this process run one at a time), asks the store for the stream's version,
//! brings the cached state up to it (replaying only the events it misses, so a
//! cache made stale by another process is caught up, never used), asks
//! [`Aggregate::handle`] for events, and appends them at exactly the version it
//! saw. The store checks that version atomically with the write: if another
//! process wrote in between, nothing is appended, the cache entry is dropped and
//! the command fails with [`DbError::Conflict`] (run it again to retry).
//!
//! An instance's stream id is `"<A::NAME>/<id>"`: two aggregate types that share
//! an event type never share a stream.
//!
//! The cache holds at most `DbBuilder::aggregate_cache(n)` instances per
//! aggregate type (default 10 000); beyond that, instances no
//! command is running on are evicted, and reloaded from their stream when used.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::ops::RangeInclusive;
use std::sync::Arc;

use crate::Seq;
use crate::aggregate::Aggregate;
use crate::db::builder::DbBuilder;
use crate::db::db::Db;
use crate::db::error::DbError;
use crate::db::streams::{ExpectedVersion, StoredEvent};
use crate::state::EventType;
use crate::store::EventContext;

/// The default cap of cached instances per aggregate type.
pub(crate) const DEFAULT_CACHE: usize = 10_000;
use crate::db::handle::Handle;
use crate::state::State;

impl DbBuilder {
    /// Registers `A::Event` so `db.aggregate::<A>()` can run commands.
    pub fn aggregate<A: Aggregate>(mut self) -> Self {
        self.push_event(EventType::of::<A::Event>());
        self.processes.aggregate(A::NAME);
        self
    }

    /// How many aggregate instances to keep cached per aggregate type (default
    /// 10 000; `0` is read as 1).
    pub fn aggregate_cache(mut self, instances: usize) -> Self {
        self.aggregate_cache = instances.max(1);
        self
    }
}

impl Db {
    /// Runs commands against instances of the aggregate `A` (see [`Aggregates`]).
    /// `A::Event` must be registered (`.aggregate::<A>()`, `.event::<..>()`, or a
    /// state folding it), or the calls fail with [`DbError::UnknownEvent`].
    pub fn aggregate<A: Aggregate>(&self) -> Aggregates<A> {
        let cap = self.inner.aggregate_cache;
        let cache = self.aggregate_cache(|| Cache::<A>::new(cap));
        Aggregates {
            db: self.clone(),
            cache,
            _aggregate: PhantomData,
        }
    }
}

/// One cached instance: its state at a version, behind the lock commands on
/// it take (`None`: not loaded).
type Slot<A> = Arc<tokio::sync::Mutex<Option<(A, u64)>>>;

/// The instances of one aggregate type, shared by every handle on it.
struct Cache<A> {
    cap: usize,
    slots: parking_lot::Mutex<HashMap<String, Slot<A>>>,
}

impl<A> Cache<A> {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            slots: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// The slot of `stream`, made (empty) if missing; evicts idle slots past the cap.
    fn slot(&self, stream: &str) -> Slot<A> {
        let mut slots = self.slots.lock();
        if let Some(slot) = slots.get(stream) {
            return Arc::clone(slot);
        }
        if slots.len() >= self.cap {
            // Evict instances no command holds (nobody else has their Arc).
            let idle: Vec<String> = slots
                .iter()
                .filter(|(_, slot)| Arc::strong_count(slot) == 1)
                .map(|(id, _)| id.clone())
                .take(slots.len() + 1 - self.cap)
                .collect();
            for id in idle {
                slots.remove(&id);
            }
        }
        Arc::clone(slots.entry(stream.to_owned()).or_default())
    }
}

/// Commands and history of the instances of one aggregate type. Cheap to clone.
///
/// ```
/// use foldkit::prelude::*;
///
/// #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// enum CounterEvent { Added(u32) }
///
/// #[derive(Default, Clone, Debug, PartialEq)]
/// struct Counter { total: u32 }
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("{total} + {add} overflows")]
/// struct Overflow { total: u32, add: u32 }
///
/// impl Aggregate for Counter {
///     const NAME: &'static str = "counter";
///     type Event = CounterEvent;
///     type Command = u32;
///     type Error = Overflow;
///     fn handle(&self, add: u32) -> Result<Vec<CounterEvent>, Overflow> {
///         match self.total.checked_add(add) {
///             Some(_) => Ok(vec![CounterEvent::Added(add)]),
///             None => Err(Overflow { total: self.total, add }),
///         }
///     }
///     fn apply(&mut self, CounterEvent::Added(n): &CounterEvent) {
///         self.total += n;
///     }
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// # let dir = tempfile::tempdir()?;
/// let db = Db::builder(dir.path()).aggregate::<Counter>().open().await?;
/// let counters = db.aggregate::<Counter>();
/// counters.execute("a", 2).await?;
/// let done = counters.execute("a", 3).await?;
/// assert_eq!((done.state.total, done.version), (5, 2));
/// let refused = counters.execute("a", u32::MAX).await.unwrap_err();
/// assert!(refused.rejected().is_some()); // nothing was written
/// assert_eq!(counters.load_at("a", 1).await?.state.total, 2); // time travel
/// assert_eq!(counters.events("a").await?.len(), 2);
/// # db.close().await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct Aggregates<A: Aggregate> {
    db: Db,
    cache: Arc<Cache<A>>,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A: Aggregate> Clone for Aggregates<A> {
    fn clone(&self) -> Self {
        Self {
            db: self.db.clone(),
            cache: Arc::clone(&self.cache),
            _aggregate: PhantomData,
        }
    }
}

impl<A: Aggregate> fmt::Debug for Aggregates<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aggregates")
            .field("aggregate", &A::NAME)
            .finish_non_exhaustive()
    }
}

/// An instance's state at a version.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<A> {
    /// The state with every event up to `version` applied.
    pub state: A,
    /// The number of events applied (0: the instance does not exist).
    pub version: u64,
}

/// What a successful command did. `handle.wait_for(&executed)` waits until a read
/// model folded from the same events shows it ([`Handle::wait_for`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Executed<A: Aggregate> {
    /// The events it appended (none when `handle` decided nothing changes).
    pub events: Vec<A::Event>,
    /// Their seqs in the log (`None` when no event was appended).
    pub seqs: Option<RangeInclusive<Seq>>,
    /// The instance's version after the command.
    pub version: u64,
    /// The instance's state after the command.
    pub state: A,
}

/// Why a command did not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecuteError<E> {
    /// The domain refused the command (`handle` returned this error); nothing was written.
    #[error("command rejected: {0}")]
    Rejected(E),
    /// The runtime could not load or append.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl<E> ExecuteError<E> {
    /// The domain error, if the command was rejected.
    pub fn rejected(&self) -> Option<&E> {
        match self {
            ExecuteError::Rejected(e) => Some(e),
            ExecuteError::Db(_) => None,
        }
    }

    /// The domain error by value, if the command was rejected (else the error back).
    pub fn into_rejected(self) -> Result<E, Self> {
        match self {
            ExecuteError::Rejected(e) => Ok(e),
            other => Err(other),
        }
    }

    /// The runtime error, if the command failed in the Db (not in the domain).
    pub fn db_error(&self) -> Option<&DbError> {
        match self {
            ExecuteError::Rejected(_) => None,
            ExecuteError::Db(e) => Some(e),
        }
    }

    /// The domain refused the command ([`ExecuteError::Rejected`]): nothing was written.
    pub fn is_rejected(&self) -> bool {
        matches!(self, ExecuteError::Rejected(_))
    }

    /// The instance was not at the expected version ([`DbError::is_conflict`]).
    pub fn is_conflict(&self) -> bool {
        self.db_error().is_some_and(DbError::is_conflict)
    }

    /// The Db was closed before the command completed ([`DbError::is_closed`]).
    pub fn is_closed(&self) -> bool {
        self.db_error().is_some_and(DbError::is_closed)
    }
}

impl<S: State> Handle<S> {
    /// Waits until this state reflects a command's events (read-your-writes): the
    /// one-call form of waiting for the last seq in [`Executed::seqs`]. Returns at
    /// once when the command appended nothing. The aggregate's events must be the
    /// events this state folds (checked at compile time).
    ///
    /// ```
    /// # use foldkit::prelude::*;
    /// # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// # enum Ev { Add(u64) }
    /// # #[derive(State, Default, Serialize, Deserialize)]
    /// # #[state(event = Ev)]
    /// # struct Sum { total: u64 }
    /// # impl Apply<Ev> for Sum {
    /// #     fn apply(&mut self, Ev::Add(n): Ev, _: &Meta) -> Result<(), FoldError> {
    /// #         self.total += n;
    /// #         Ok(())
    /// #     }
    /// # }
    /// # #[derive(Default, Clone)]
    /// # struct Adder;
    /// # #[derive(Debug, thiserror::Error)]
    /// # #[error("never")]
    /// # struct Never;
    /// # impl Aggregate for Adder {
    /// #     const NAME: &'static str = "adder";
    /// #     type Event = Ev;
    /// #     type Command = u64;
    /// #     type Error = Never;
    /// #     fn handle(&self, n: u64) -> Result<Vec<Ev>, Never> { Ok(vec![Ev::Add(n)]) }
    /// #     fn apply(&mut self, _: &Ev) {}
    /// # }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let dir = tempfile::tempdir()?;
    /// let db = Db::builder(dir.path()).state::<Sum>().open().await?;
    /// let sum = db.state::<Sum>();
    /// let added = db.aggregate::<Adder>().execute("a", 5).await?;
    /// sum.wait_for(&added).await?; // the read model shows the command's events
    /// assert_eq!(sum.read().total, 5);
    /// # db.close().await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// As [`wait_for_seq`](Handle::wait_for_seq): [`DbError::Fold`] when the fold
    /// stopped before the command's events, [`DbError::Closed`] when the Db closed.
    ///
    /// # Cancel safety
    /// Cancel-safe: it only waits (as `wait_for_seq` does); dropping it leaves nothing behind.
    pub async fn wait_for<A: Aggregate>(&self, executed: &Executed<A>) -> Result<(), DbError> {
        match &executed.seqs {
            Some(seqs) => self.wait_for_seq(*seqs.end()).await,
            None => Ok(()),
        }
    }
}

impl<A: Aggregate> Aggregates<A> {
    /// The stream id of the instance `id`: `"<A::NAME>/<id>"`.
    pub fn stream_id(id: impl fmt::Display) -> String {
        format!("{}/{id}", A::NAME)
    }

    /// Handles `command` against the instance `id` and appends the events it
    /// produces as one atomic batch. Commands on one instance run one at a time;
    /// a rejected command writes nothing.
    ///
    /// # Cancel safety
    ///
    /// As [`execute_expecting`](Self::execute_expecting).
    pub async fn execute(
        &self,
        id: impl fmt::Display,
        command: A::Command,
    ) -> Result<Executed<A>, ExecuteError<A::Error>> {
        self.execute_expecting(id, ExpectedVersion::Any, command)
            .await
    }

    /// [`execute`](Self::execute), but only if the instance is at the `expected`
    /// version (a client's optimistic concurrency: "I decided this on version 3").
    /// Otherwise it fails with [`DbError::Conflict`] before `handle` runs, and writes
    /// nothing.
    ///
    /// # Cancel safety
    ///
    /// Dropped before its append, nothing is written; dropped during it, the
    /// events are appended whole or not at all, and the cached instance is
    /// reloaded from its stream by the next command.
    pub async fn execute_expecting(
        &self,
        id: impl fmt::Display,
        expected: ExpectedVersion,
        command: A::Command,
    ) -> Result<Executed<A>, ExecuteError<A::Error>> {
        self.run(Self::stream_id(id), expected, command, None, None)
            .await
    }

    /// [`execute`](Self::execute) with a context (correlation id, causation,
    /// actor, metadata) stored with each event it appends.
    ///
    /// # Cancel safety
    ///
    /// As [`execute_expecting`](Self::execute_expecting).
    pub async fn execute_with(
        &self,
        id: impl fmt::Display,
        command: A::Command,
        context: EventContext,
    ) -> Result<Executed<A>, ExecuteError<A::Error>> {
        self.run(
            Self::stream_id(id),
            ExpectedVersion::Any,
            command,
            Some(Arc::new(context)),
            None,
        )
        .await
    }

    /// [`execute_with`](Self::execute_with) under an idempotency key (a process
    /// manager's reaction): if an append with `key` is stored, nothing is appended
    /// again, and the cached instance is reloaded from its stream.
    pub(crate) async fn execute_keyed(
        &self,
        id: impl fmt::Display,
        command: A::Command,
        context: EventContext,
        key: String,
    ) -> Result<Executed<A>, ExecuteError<A::Error>> {
        self.run(
            Self::stream_id(id),
            ExpectedVersion::Any,
            command,
            Some(Arc::new(context)),
            Some(key),
        )
        .await
    }

    async fn run(
        &self,
        stream: String,
        expected: ExpectedVersion,
        command: A::Command,
        context: Option<Arc<EventContext>>,
        key: Option<String>,
    ) -> Result<Executed<A>, ExecuteError<A::Error>> {
        let slot = self.cache.slot(&stream);
        let mut cached = slot.lock().await;
        let (mut state, version) = self.current(&stream, cached.take()).await?;
        if !expected.admits(version) {
            *cached = Some((state, version));
            return Err(DbError::Conflict {
                stream,
                expected,
                actual: version,
            }
            .into());
        }
        let events = match state.handle(command) {
            Ok(events) => events,
            Err(rejection) => {
                *cached = Some((state, version));
                return Err(ExecuteError::Rejected(rejection));
            }
        };
        if events.is_empty() {
            *cached = Some((state.clone(), version));
            return Ok(Executed {
                events,
                seqs: None,
                version,
                state,
            });
        }
        // Left `None` until the append succeeded: a drop or an error here makes
        // the next command reload the instance from its stream.
        let (appended, deduplicated) = self
            .db
            .append_to_with(
                &stream,
                ExpectedVersion::Exact(version),
                events.iter().cloned(),
                context,
                key,
            )
            .await?;
        if deduplicated {
            // The stored events are the first append's, not these: reload.
            return Ok(Executed {
                events: Vec::new(),
                seqs: Some(appended.seqs),
                version: appended.version,
                state,
            });
        }
        for event in &events {
            state.apply(event);
        }
        *cached = Some((state.clone(), appended.version));
        Ok(Executed {
            events,
            seqs: Some(appended.seqs),
            version: appended.version,
            state,
        })
    }

    /// The instance's current state and version (version 0: it does not exist).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads (a dropped call leaves the instance to be
    /// reloaded by the next one).
    pub async fn load(&self, id: impl fmt::Display) -> Result<Loaded<A>, DbError> {
        let stream = Self::stream_id(id);
        let slot = self.cache.slot(&stream);
        let mut cached = slot.lock().await;
        let (state, version) = self.current(&stream, cached.take()).await?;
        *cached = Some((state.clone(), version));
        Ok(Loaded { state, version })
    }

    /// The instance's state as it was at `version` (time travel), replayed from its
    /// stream. A version past the end gives the current state.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads.
    pub async fn load_at(&self, id: impl fmt::Display, version: u64) -> Result<Loaded<A>, DbError> {
        let events = self
            .db
            .read_stream_until::<A::Event>(&Self::stream_id(id), version)
            .await?;
        Ok(replay(&events))
    }

    /// The instance's history, in order, with each event's metadata.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads.
    pub async fn events(
        &self,
        id: impl fmt::Display,
    ) -> Result<Vec<StoredEvent<A::Event>>, DbError> {
        self.db.read_stream::<A::Event>(&Self::stream_id(id)).await
    }

    /// Whether the instance has any event.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads.
    pub async fn exists(&self, id: impl fmt::Display) -> Result<bool, DbError> {
        Ok(self.db.stream_version(&Self::stream_id(id)).await? > 0)
    }

    /// The state at the stream's current version: the cached one if current,
    /// caught up with the events it misses if behind, replayed otherwise.
    ///
    /// An instance not in the cache (the first command after a restart) is
    /// replayed from one read of its whole stream, whose last event gives the
    /// version: no separate version lookup (a second probe of the store's
    /// index, cold then). A cached one asks the version first, so that a current
    /// cache reads nothing.
    async fn current(&self, stream: &str, cached: Option<(A, u64)>) -> Result<(A, u64), DbError> {
        let (mut state, mut version, until) = match cached {
            Some((state, version)) => {
                let actual = self.db.stream_version(stream).await?;
                match version <= actual {
                    true => (state, version, actual),
                    false => (A::default(), 0, actual),
                }
            }
            None => (A::default(), 0, u64::MAX),
        };
        if version < until {
            for stored in self
                .db
                .read_stream_versions::<A::Event>(stream, version + 1..=until)
                .await?
            {
                state.apply(&stored.event);
                version = stored.stream_version;
            }
        }
        Ok((state, version))
    }
}

fn replay<A: Aggregate>(events: &[StoredEvent<A::Event>]) -> Loaded<A> {
    let mut state = A::default();
    for stored in events {
        state.apply(&stored.event);
    }
    Loaded {
        state,
        version: events.len() as u64,
    }
}
