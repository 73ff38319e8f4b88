//! `DbBuilder`: what a Db folds (states, event types) and how it stores (fsync).

use std::any::{TypeId, type_name};
use std::path::PathBuf;

use foldkit_storage::FsyncPolicy;

use crate::db::db::{Db, StateStarter, start_state};
use crate::db::error::DbError;
use crate::db::policy::FoldErrorPolicy;
use crate::event::Event;
use crate::state::State;

/// An event type the Db keeps a log for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventType {
    pub(crate) id: TypeId,
    pub(crate) name: &'static str,
    pub(crate) rust_name: &'static str,
}

impl EventType {
    pub(crate) fn of<E: Event>() -> Self {
        Self {
            id: TypeId::of::<E>(),
            name: E::NAME,
            rust_name: type_name::<E>(),
        }
    }
}

/// A state the Db folds, with the (monomorphized) function that starts its fold.
pub(crate) struct StateType {
    pub(crate) id: TypeId,
    pub(crate) event: EventType,
    pub(crate) start: StateStarter,
}

/// Configures and opens a [`Db`]. Made by [`Db::builder`].
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
    pub(crate) dir: PathBuf,
    pub(crate) fsync: Option<FsyncPolicy>,
    pub(crate) segment_size: Option<u64>,
    pub(crate) fsync_hook: Option<foldkit_storage::FsyncHook>,
    pub(crate) policy: FoldErrorPolicy,
    pub(crate) events: Vec<EventType>,
    pub(crate) states: Vec<StateType>,
    pub(crate) snapshots: crate::db::snapshots::SnapshotSettings,
}

impl DbBuilder {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            fsync: None,
            segment_size: None,
            fsync_hook: None,
            policy: FoldErrorPolicy::default(),
            events: Vec::new(),
            states: Vec::new(),
            snapshots: Default::default(),
        }
    }

    /// When appends reach the disk (default: the storage crate's default).
    pub fn fsync(mut self, policy: FsyncPolicy) -> Self {
        self.fsync = Some(policy);
        self
    }

    /// The size at which a log starts a new segment file.
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = Some(bytes);
        self
    }

    /// Test hook, passed to every log: called before each fsync; an error it
    /// returns makes that fsync fail (see `foldkit_storage::LogOptions::fsync_hook`).
    #[doc(hidden)]
    pub fn fsync_hook(mut self, hook: foldkit_storage::FsyncHook) -> Self {
        self.fsync_hook = Some(hook);
        self
    }

    /// What a state does with an event it cannot decode or apply (default
    /// [`FoldErrorPolicy::Stop`]).
    pub fn fold_error_policy(mut self, policy: FoldErrorPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Folds the state `S` from the log of `S::Event`. Several states may fold
    /// one log. Registering a state twice registers it once.
    pub fn state<S: State>(mut self) -> Self {
        if !self.states.iter().any(|s| s.id == TypeId::of::<S>()) {
            self.states.push(StateType {
                id: TypeId::of::<S>(),
                event: EventType::of::<S::Event>(),
                start: start_state::<S>,
            });
        }
        self.event::<S::Event>()
    }

    /// Keeps a log for events of type `E` even if no state folds them, so
    /// `db.append` accepts them. `.state::<S>()` does this for `S::Event`.
    pub fn event<E: Event>(mut self) -> Self {
        if !self.events.iter().any(|e| e.id == TypeId::of::<E>()) {
            self.events.push(EventType::of::<E>());
        }
        self
    }

    /// Opens (creating if needed) the directory, its logs, and starts one fold
    /// task per state, each replaying its log from the start.
    ///
    /// Recovery and snapshot loading run on tokio's blocking pool, never on a
    /// runtime worker.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not stop the open, which runs on the blocking
    /// pool; the Db it opens is then dropped, which stops its folds and releases
    /// the directory (as dropping any Db does: the logs once its fold tasks
    /// have ended). Until then, opening the directory again fails with
    /// [`DbError::AlreadyOpen`] or a storage `Locked` error.
    ///
    /// Must be called within a tokio runtime. Fails if the directory is already
    /// open by another Db, if an event name cannot name a log, if two event
    /// types share a name, or if a log cannot be opened or recovered.
    pub async fn open(self) -> Result<Db, DbError> {
        Db::open(self).await
    }
}
