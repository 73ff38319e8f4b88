//! `DbBuilder`: what a Db folds (states, event types) and where it stores (the store).

use std::any::TypeId;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use foldkit_storage::FsyncPolicy;

use crate::db::db::{Db, StateStarter};
use crate::db::error::DbError;
use crate::db::policy::FoldErrorPolicy;
use crate::event::Event;
use crate::state::{EventType, State};
use crate::store::EventStore;

/// Where a Db's events live.
pub(crate) enum StoreChoice {
    /// The embedded file store in a directory (the default).
    Dir(PathBuf),
    /// A store given by the caller.
    Given(Arc<dyn EventStore>),
}

/// A state the Db folds, with the (monomorphized) function that starts its fold.
pub(crate) struct StateType {
    pub(crate) id: TypeId,
    pub(crate) name: &'static str,
    pub(crate) start: StateStarter,
    pub(crate) prefetch: crate::db::prefetch::Prefetcher,
}

/// Configures and opens a [`Db`]. Made by [`Db::builder`] (the file store in a
/// directory) or [`Db::builder_with`] (any [`EventStore`]).
///
/// ```no_run
/// # use foldkit::prelude::*;
/// # async fn demo<S: State>() -> Result<(), foldkit::DbError> {
/// let db = Db::builder("./data")
///     .fsync(FsyncPolicy::EveryN(100))
///     .state::<S>()
///     .open()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until `.open().await`"]
pub struct DbBuilder {
    pub(crate) store: StoreChoice,
    pub(crate) fsync: Option<FsyncPolicy>,
    pub(crate) segment_size: Option<u64>,
    pub(crate) chain_hashes: bool,
    pub(crate) fsync_hook: Option<foldkit_storage::FsyncHook>,
    pub(crate) policy: FoldErrorPolicy,
    pub(crate) state_policies: HashMap<&'static str, FoldErrorPolicy>,
    pub(crate) events: Vec<EventType>,
    pub(crate) states: Vec<StateType>,
    pub(crate) snapshots: crate::db::snapshots::SnapshotSettings,
    pub(crate) aggregate_cache: usize,
    /// Registered aggregates and process managers (see `crate::process`).
    pub(crate) processes: crate::process::Setup,
}

impl DbBuilder {
    pub(crate) fn new(store: StoreChoice) -> Self {
        Self {
            store,
            fsync: None,
            segment_size: None,
            chain_hashes: false,
            fsync_hook: None,
            policy: FoldErrorPolicy::default(),
            state_policies: HashMap::new(),
            events: Vec::new(),
            states: Vec::new(),
            snapshots: Default::default(),
            aggregate_cache: crate::db::aggregates::DEFAULT_CACHE,
            processes: crate::process::Setup::default(),
        }
    }

    /// When appends reach the disk (file store only; default: the storage
    /// crate's default). Ignored by a store given to [`Db::builder_with`], which
    /// has its own durability settings.
    pub fn fsync(mut self, policy: FsyncPolicy) -> Self {
        self.fsync = Some(policy);
        self
    }

    /// The size at which the log starts a new segment file (file store only;
    /// default 16 MiB, values below 4 KiB are clamped to 4 KiB).
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = Some(bytes);
        self
    }

    /// Opt-in auditable history (file store): each event's envelope carries a
    /// BLAKE3 hash of the previous event's hash and this event, so any edit,
    /// deletion or reordering is detected at open (which walks the whole log)
    /// and by [`Db::verify_chain`]; [`Db::head_hash`] is the head to publish.
    pub fn chain_hashes(mut self, enabled: bool) -> Self {
        self.chain_hashes = enabled;
        self
    }

    /// Calls `hook` before every fsync of the file store (tests inject failures).
    #[doc(hidden)]
    pub fn fsync_hook(mut self, hook: foldkit_storage::FsyncHook) -> Self {
        self.fsync_hook = Some(hook);
        self
    }

    /// What every state does with an event it cannot decode or apply (default
    /// [`FoldErrorPolicy::Stop`]); [`fold_error_policy_for`](Self::fold_error_policy_for)
    /// overrides it per state.
    pub fn fold_error_policy(mut self, policy: FoldErrorPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The fold error policy of state `S` only.
    ///
    /// The way out of a state stopped at a bad event under `Stop`: read the
    /// failure ([`Handle::failure`](crate::Handle::failure): seq, event type and
    /// error; also logged at `error`), fix `apply` (or the data) and restart, and
    /// the state replays; or, to go on without that event, reopen with
    /// `.fold_error_policy_for::<S>(FoldErrorPolicy::LogAndContinue)`.
    pub fn fold_error_policy_for<S: State>(mut self, policy: FoldErrorPolicy) -> Self {
        self.state_policies.insert(S::NAME, policy);
        self
    }

    /// Folds the state `S` from the Db's log (every event type `S` lists).
    /// Registering a state twice registers it once.
    pub fn state<S: State>(mut self) -> Self {
        if !self.states.iter().any(|s| s.id == TypeId::of::<S>()) {
            self.states.push(StateType {
                id: TypeId::of::<S>(),
                name: S::NAME,
                start: crate::db::db::start_state::<S>,
                prefetch: crate::db::prefetch::start::<S>,
            });
        }
        for event in S::EVENTS {
            self.push_event(*event);
        }
        self
    }

    /// Registers event type `E` even if no state folds it, so `db.append`
    /// accepts it. `.state::<S>()` does this for every type `S` folds.
    pub fn event<E: Event>(mut self) -> Self {
        self.push_event(EventType::of::<E>());
        self
    }

    pub(crate) fn push_event(&mut self, event: EventType) {
        if !self.events.iter().any(|e| e.type_id() == event.type_id()) {
            self.events.push(event);
        }
    }

    /// Opens the store (creating the directory if needed) and starts one fold
    /// task per state, each from its newest valid snapshot (or the start). With the
    /// file store, each state's newest snapshot is read and decoded on the blocking
    /// pool while the log recovers, then checked against the log like any other.
    ///
    /// Must be called within a tokio runtime. Fails if the directory is already
    /// open by another Db, if two event types share a name, or if the store
    /// cannot be opened or recovered.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future releases everything it opened (the store is closed
    /// when its last handle goes); nothing is written but what recovery repairs.
    /// A snapshot decode already running on the blocking pool finishes there and
    /// its value is dropped.
    pub async fn open(self) -> Result<Db, DbError> {
        Db::open(self).await
    }
}
