//! Running commands against aggregates: load, decide, append, with no lost update.
//!
//! `execute(id, cmd)` locks the instance's stream (see `streams`), brings the
//! instance's state up to the stream's version (from the cache, or by replaying
//! only that stream's events), asks [`Aggregate::handle`] for events, appends them
//! as one atomic batch at the version it saw, then applies them to the cached
//! state. Holding the stream lock across all of it is what makes concurrent
//! commands on one instance serialize without conflicts or retries, while
//! commands on other instances run in parallel.
//!
//! An instance's stream id is `"<A::NAME>/<id>"`: two aggregate types that share
//! an event type never share a stream.

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
use crate::db::streams::{ExpectedVersion, StoredEvent, StreamGuard};

impl DbBuilder {
    /// Keeps the log of `A::Event` so `db.aggregate::<A>()` can run commands.
    pub fn aggregate<A: Aggregate>(self) -> Self {
        self.event::<A::Event>()
    }
}

impl Db {
    /// Runs commands against instances of the aggregate `A` (see [`Aggregates`]).
    /// `A::Event`'s log must be registered (`.aggregate::<A>()`, `.event::<..>()`,
    /// or a state folding it), or the calls fail with [`DbError::UnknownEvent`].
    pub fn aggregate<A: Aggregate>(&self) -> Aggregates<A> {
        let cache = self.aggregate_cache::<Cache<A>>();
        Aggregates {
            db: self.clone(),
            cache,
            _aggregate: PhantomData,
        }
    }
}

/// The states of `A`'s instances at their versions, shared by every handle on `A`.
type Cache<A> = parking_lot::Mutex<HashMap<String, (A, u64)>>;

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
/// impl Aggregate for Counter {
///     const NAME: &'static str = "counter";
///     type Event = CounterEvent;
///     type Command = u32;
///     type Error = String;
///     fn handle(&self, add: u32) -> Result<Vec<CounterEvent>, String> {
///         match self.total.checked_add(add) {
///             Some(_) => Ok(vec![CounterEvent::Added(add)]),
///             None => Err(format!("{} + {add} overflows", self.total)),
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

/// What a successful command did.
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
}

impl<A: Aggregate> Aggregates<A> {
    /// The stream id of the instance `id`: `"<A::NAME>/<id>"`.
    pub fn stream_id(id: impl fmt::Display) -> String {
        format!("{}/{id}", A::NAME)
    }

    /// Handles `command` against the instance `id` and appends the events it
    /// produces as one atomic batch. Commands on one instance run one at a time;
    /// a rejected command writes nothing.
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
    /// nothing. The check and the append happen under the instance's lock.
    pub async fn execute_expecting(
        &self,
        id: impl fmt::Display,
        expected: ExpectedVersion,
        command: A::Command,
    ) -> Result<Executed<A>, ExecuteError<A::Error>> {
        let stream = Self::stream_id(id);
        let mut guard = self.db.lock_stream::<A::Event>(&stream).await?;
        let Loaded { mut state, version } = self.current(&stream, &guard)?;
        if !expected.admits(version) {
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
                self.cache.lock().insert(stream, (state, version));
                return Err(ExecuteError::Rejected(rejection));
            }
        };
        if events.is_empty() {
            self.cache.lock().insert(stream, (state.clone(), version));
            return Ok(Executed {
                events,
                seqs: None,
                version,
                state,
            });
        }
        let appended = match guard
            .append(ExpectedVersion::Exact(version), events.iter().cloned())
            .await
        {
            Ok(appended) => appended,
            Err(e) => {
                // The state in hand no longer matches anything durable: forget it.
                self.cache.lock().remove(&stream);
                return Err(e.into());
            }
        };
        for event in &events {
            state.apply(event);
        }
        self.cache
            .lock()
            .insert(stream, (state.clone(), appended.version));
        Ok(Executed {
            events,
            seqs: Some(appended.seqs),
            version: appended.version,
            state,
        })
    }

    /// The instance's current state and version (version 0: it does not exist).
    pub async fn load(&self, id: impl fmt::Display) -> Result<Loaded<A>, DbError> {
        let stream = Self::stream_id(id);
        let guard = self.db.lock_stream::<A::Event>(&stream).await?;
        let loaded = self.current(&stream, &guard)?;
        self.cache
            .lock()
            .insert(stream, (loaded.state.clone(), loaded.version));
        Ok(loaded)
    }

    /// The instance's state as it was at `version` (time travel), replayed from its
    /// stream. A version past the end gives the current state.
    pub async fn load_at(&self, id: impl fmt::Display, version: u64) -> Result<Loaded<A>, DbError> {
        let events = self
            .db
            .read_stream_until::<A::Event>(&Self::stream_id(id), version)
            .await?;
        Ok(replay(&events))
    }

    /// The instance's history, in order, with each event's metadata.
    pub async fn events(
        &self,
        id: impl fmt::Display,
    ) -> Result<Vec<StoredEvent<A::Event>>, DbError> {
        self.db.read_stream::<A::Event>(&Self::stream_id(id)).await
    }

    /// Whether the instance has any event.
    pub async fn exists(&self, id: impl fmt::Display) -> Result<bool, DbError> {
        Ok(self
            .db
            .stream_version::<A::Event>(&Self::stream_id(id))
            .await?
            > 0)
    }

    /// The state at the locked stream's version: cached if the cache is current,
    /// replayed from the stream otherwise.
    fn current(&self, stream: &str, guard: &StreamGuard<'_>) -> Result<Loaded<A>, DbError> {
        let version = guard.version();
        if let Some((state, cached)) = self.cache.lock().remove(stream)
            && cached == version
        {
            return Ok(Loaded { state, version });
        }
        Ok(replay(&guard.events::<A::Event>()?))
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
