//! Where a state starts at open, and the report of it.
//!
//! A state starts from an explicit bundle entry, else the newest snapshot file
//! at or before the log's last seq, else `Default` at seq 0. Either snapshot is
//! used only if the log still holds the very record it ends at
//! ([`RecordIdentity::check`]): after a lost unsynced tail, a snapshot can cover
//! records the log no longer has, or that it has since replaced with others,
//! and trusting it would make the state differ from a replay. Such a snapshot is
//! ignored, reported with `tracing::warn!` and in the [`StartReport`], and the
//! state starts from an older snapshot that matches, or replays.
//!
//! Runs in `Db::open`, on the blocking pool: the check reads the log.

use crate::Seq;
use crate::db::db::{EventLog, StartContext};
use crate::db::error::DbError;
use crate::snapshot::{IdentityMismatch, RecordIdentity, codec};
use crate::state::State;

/// What a state started from at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartSource {
    /// `Default`, folding the whole log.
    Replay,
    /// A snapshot file in `<dir>/snapshots/`.
    SnapshotFile,
    /// The bundle given to `DbBuilder::restore`.
    Bundle,
}

/// A snapshot that was not used because it does not match the log.
#[derive(Debug, Clone)]
pub struct RejectedSnapshot {
    /// The last seq the snapshot covers.
    pub seq: Seq,
    /// Where it came from (a file or the bundle).
    pub source: StartSource,
    /// How it differs from the log.
    pub reason: IdentityMismatch,
}

/// How a state started at open: see [`Handle::start_report`](crate::Handle::start_report).
#[derive(Debug, Clone)]
pub struct StartReport {
    /// What the state started from.
    pub source: StartSource,
    /// The seq it started at (0: replayed from the first record).
    pub seq: Seq,
    /// The snapshots ignored because they do not match the log, newest first.
    pub rejected: Vec<RejectedSnapshot>,
}

/// A state's starting point: its value, the record it ends at, and the report.
pub(crate) struct Start<S> {
    pub(crate) value: S,
    pub(crate) last: Option<RecordIdentity>,
    pub(crate) report: StartReport,
}

impl<S: State> Start<S> {
    fn replay(rejected: Vec<RejectedSnapshot>) -> Self {
        Start {
            value: S::default(),
            last: None,
            report: StartReport {
                source: StartSource::Replay,
                seq: 0,
                rejected,
            },
        }
    }
}

/// Whether the snapshot ending at `last` belongs to `log`.
fn check(log: &EventLog, last: Option<&RecordIdentity>) -> Result<(), IdentityMismatch> {
    match last {
        Some(identity) => identity.check(&log.log),
        None => Ok(()),
    }
}

/// Where state `S` starts (see the module docs).
pub(crate) fn initial_state<S: State>(
    log: &EventLog,
    context: &StartContext,
) -> Result<Start<S>, DbError> {
    let end = log.log.last_seq().unwrap_or(0);
    let mut rejected = Vec::new();
    if let Some(blob) = context.restore.as_ref().and_then(|b| b.get(S::NAME)) {
        let (value, last) = match codec::decode::<S>(blob) {
            Ok(decoded) => decoded,
            Err(error) => {
                tracing::warn!(state = S::NAME, error = %crate::chain::Chain(&error), "foldkit: the bundle's snapshot is unusable; replaying");
                return Ok(Start::replay(rejected));
            }
        };
        let seq = last.map_or(0, |l| l.seq);
        if seq > end {
            return Err(DbError::RestoreBeyondLog {
                state: S::NAME,
                seq,
                last: end,
            });
        }
        return match check(log, last.as_ref()) {
            Ok(()) => Ok(Start {
                value,
                last,
                report: StartReport {
                    source: StartSource::Bundle,
                    seq,
                    rejected,
                },
            }),
            Err(reason) => {
                tracing::warn!(state = S::NAME, seq, error = %crate::chain::Chain(&reason), "foldkit: the bundle's snapshot does not match the log; replaying");
                rejected.push(RejectedSnapshot {
                    seq,
                    source: StartSource::Bundle,
                    reason,
                });
                Ok(Start::replay(rejected))
            }
        };
    }
    let loaded = context
        .snapshots
        .store
        .load_newest_where::<S>(Some(end), |last| {
            check(log, last).inspect_err(|reason| {
                rejected.push(RejectedSnapshot {
                    seq: last.map_or(0, |l| l.seq),
                    source: StartSource::SnapshotFile,
                    reason: reason.clone(),
                });
            })
        });
    match loaded {
        Ok(Some((value, last))) => Ok(Start {
            value,
            last,
            report: StartReport {
                source: StartSource::SnapshotFile,
                seq: last.map_or(0, |l| l.seq),
                rejected,
            },
        }),
        Ok(None) => Ok(Start::replay(rejected)),
        Err(error) => {
            tracing::warn!(state = S::NAME, error = %crate::chain::Chain(&error), "foldkit: cannot list snapshots; replaying");
            Ok(Start::replay(rejected))
        }
    }
}
