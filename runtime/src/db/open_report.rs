//! What happened at open: the snapshot each state started from (or why none),
//! what it replays, and what storage recovery repaired.

use std::time::{Duration, Instant};

use crate::Seq;

/// Where one state started.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotUse {
    /// From the stored snapshot at this position.
    Used(Seq),
    /// From a restored bundle's snapshot at this position.
    Restored(Seq),
    /// From the start (a full replay).
    Replay,
}

/// A snapshot that was not used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RejectedSnapshot {
    /// The position it claims to cover.
    pub seq: Seq,
    /// Whether it came from a restored bundle (else: the store).
    pub from_bundle: bool,
    /// Why it was refused (it does not decode, is stale, or is not of this log).
    pub reason: String,
}

/// How one state started at open.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StateOpened {
    /// The state's stable name.
    pub state: &'static str,
    /// The snapshot it started from, if any.
    pub snapshot: SnapshotUse,
    /// The snapshots refused on the way, newest first.
    pub rejected: Vec<RejectedSnapshot>,
    /// The position it resumed after (0: the start).
    pub resumed_at: Seq,
    /// The store's last position at open: the state replays up to it.
    pub replay_to: Seq,
}

impl StateOpened {
    /// How many positions the state replays after its snapshot (an upper bound
    /// on the events: positions of other stores may have gaps).
    pub fn to_replay(&self) -> u64 {
        self.replay_to.saturating_sub(self.resumed_at)
    }
}

/// What [`Db::open`](crate::DbBuilder::open) did. See [`Db::open_report`](crate::Db::open_report).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OpenReport {
    /// Per state, in registration order.
    pub states: Vec<StateOpened>,
    /// What the file store's recovery found (a torn tail cut, bytes); `None` for other stores.
    pub recovery: Option<foldkit_storage::RecoveryReport>,
    /// How long the open took (until every fold task was started).
    pub elapsed: Duration,
}

impl OpenReport {
    pub(crate) fn new(
        recovery: Option<foldkit_storage::RecoveryReport>,
        states: Vec<StateOpened>,
        began: Instant,
    ) -> Self {
        for state in &states {
            tracing::info!(state = state.state, snapshot = ?state.snapshot, resumed_at = state.resumed_at, to_replay = state.to_replay(), "foldkit: state started");
        }
        Self {
            states,
            recovery,
            elapsed: began.elapsed(),
        }
    }

    /// How state `name` started, if it is registered.
    pub fn state(&self, name: &str) -> Option<&StateOpened> {
        self.states.iter().find(|s| s.state == name)
    }
}
