//! Snapshots in the Db: where states start at open, automatic snapshots (every N
//! events and at close), whole-Db bundles, compaction, and time travel.
//!
//! Invariants:
//! - A state starts from an explicit bundle entry, else the newest valid snapshot
//!   file at or before the log's last seq, else `Default` at seq 0. A snapshot the
//!   log does not reach (seq beyond its end) is never used: its events are gone.
//! - A snapshot is encoded under the state's read lock, where the value and its
//!   applied seq agree (the fold publishes the seq under the write lock), and the
//!   file is written off the fold's path (blocking pool).
//! - `compact` drops only log segments below every folding state's newest valid
//!   snapshot, and never from a log that holds streams (aggregates replay them).

use std::path::Path;
use std::sync::atomic::Ordering;

use crate::Seq;
use crate::db::builder::DbBuilder;
use crate::db::db::{Db, EventLog, StartContext};
use crate::db::error::{DbError, FoldCause};
use crate::db::fold;
use crate::db::handle::{Handle, StateCell, StateSlot};
use crate::snapshot::{Bundle, SnapshotError, SnapshotIoError, SnapshotStore, codec};
use crate::state::State;

/// How the builder configured snapshots.
#[derive(Debug, Clone)]
pub(crate) struct SnapshotSettings {
    every: Option<u64>,
    keep: usize,
    on_close: bool,
    pub(crate) restore: Option<Bundle>,
}

impl Default for SnapshotSettings {
    fn default() -> Self {
        Self {
            every: None,
            keep: 3,
            on_close: true,
            restore: None,
        }
    }
}

/// The snapshot files of a Db and when to write them.
#[derive(Debug)]
pub(crate) struct Snapshots {
    pub(crate) store: SnapshotStore,
    every: Option<u64>,
    pub(crate) on_close: bool,
}

impl Snapshots {
    pub(crate) fn new(dir: &Path, settings: &SnapshotSettings) -> Self {
        Self {
            store: SnapshotStore::new(dir.join("snapshots"), settings.keep),
            every: settings.every,
            on_close: settings.on_close,
        }
    }

    /// Encodes `state` now and writes the file.
    pub(crate) fn write(&self, state: &dyn StateSlot) -> Result<(), DbError> {
        let (blob, seq) = state.encode_snapshot().map_err(DbError::Snapshot)?;
        self.store
            .write(state.name(), seq, &blob)
            .map_err(DbError::SnapshotIo)?;
        Ok(())
    }
}

impl DbBuilder {
    /// Snapshots each state after every `events` events it folds (0 turns it off,
    /// the default). Restart then costs the newest snapshot plus the events after it.
    pub fn snapshot_every(mut self, events: u64) -> Self {
        self.snapshots.every = (events > 0).then_some(events);
        self
    }

    /// How many snapshot files to keep per state (default 3, at least 1).
    /// `keep_snapshots(0)` is clamped to 1: the newest snapshot is always kept.
    pub fn keep_snapshots(mut self, count: usize) -> Self {
        self.snapshots.keep = count.max(1);
        self
    }

    /// Whether `close()` snapshots every state (default true).
    pub fn snapshot_on_close(mut self, enabled: bool) -> Self {
        self.snapshots.on_close = enabled;
        self
    }

    /// Starts each state that `bundle` holds (see [`Db::snapshot`]) from its
    /// snapshot there instead of from the snapshot files. The bundle must come from
    /// this directory's log: a state whose snapshot is beyond the log's end makes
    /// `open` fail. A stale entry (another definition of the state) is replayed.
    pub fn restore(mut self, bundle: Bundle) -> Self {
        self.snapshots.restore = Some(bundle);
        self
    }
}

/// Where state `S` starts: its value and the seq it reflects.
pub(crate) fn initial_state<S: State>(
    log: &EventLog,
    context: &StartContext,
) -> Result<(S, Seq), DbError> {
    let last = log.log.last_seq().unwrap_or(0);
    if let Some(blob) = context.restore.as_ref().and_then(|b| b.get(S::NAME)) {
        match codec::decode::<S>(blob) {
            Ok((state, seq)) if seq.unwrap_or(0) <= last => return Ok((state, seq.unwrap_or(0))),
            Ok((_, seq)) => {
                return Err(DbError::RestoreBeyondLog {
                    state: S::NAME,
                    seq: seq.unwrap_or(0),
                    last,
                });
            }
            Err(error) => {
                tracing::warn!(state = S::NAME, %error, "foldkit: the bundle's snapshot is unusable; replaying");
                return Ok((S::default(), 0));
            }
        }
    }
    match context.snapshots.store.load_newest::<S>(Some(last)) {
        Ok(Some((state, seq))) => Ok((state, seq.unwrap_or(0))),
        Ok(None) => Ok((S::default(), 0)),
        Err(error) => {
            tracing::warn!(state = S::NAME, %error, "foldkit: cannot list snapshots; replaying");
            Ok((S::default(), 0))
        }
    }
}

/// The state's value and applied seq, encoded under its read lock.
pub(crate) fn encode<S: State>(
    cell: &StateCell<S>,
) -> Result<(Vec<u8>, Option<Seq>), SnapshotError> {
    let state = cell.value.read();
    let seq = Some(cell.applied.load(Ordering::Acquire)).filter(|&seq| seq > 0);
    Ok((codec::encode(&*state, seq)?, seq))
}

/// The seq of the newest snapshot file of `S` that decodes, if any.
pub(crate) fn newest_valid<S: State>(snapshots: &Snapshots) -> Option<Seq> {
    match snapshots.store.load_newest::<S>(None) {
        Ok(found) => found.map(|(_, seq)| seq.unwrap_or(0)),
        Err(error) => {
            tracing::warn!(state = S::NAME, %error, "foldkit: cannot list snapshots");
            None
        }
    }
}

/// After a batch: snapshot if `every` events were folded since the last one.
pub(crate) fn after_batch<S: State>(cell: &StateCell<S>) {
    let Some(every) = cell.folder.snapshots.every else {
        return;
    };
    let applied = cell.applied.load(Ordering::Acquire);
    let last = cell.folder.last_snapshot.load(Ordering::Acquire);
    if applied < last.saturating_add(every) {
        return;
    }
    let mut pending = cell.folder.pending_write.lock();
    if pending.as_ref().is_some_and(|write| !write.is_finished()) {
        return; // one write at a time; a later batch tries again
    }
    cell.folder.last_snapshot.store(applied, Ordering::Release);
    let (blob, seq) = match encode(cell) {
        Ok(encoded) => encoded,
        Err(error) => {
            tracing::warn!(state = S::NAME, %error, "foldkit: cannot encode a snapshot");
            return;
        }
    };
    let store = cell.folder.snapshots.store.clone();
    *pending = Some(tokio::task::spawn_blocking(move || {
        if let Err(error) = store.write(S::NAME, seq, &blob) {
            tracing::warn!(state = S::NAME, %error, "foldkit: cannot write a snapshot");
        }
    }));
}

impl<S: State> Handle<S> {
    /// The state as a snapshot blob (identity header, checksum, postcard body)
    /// and the seq of the last event it reflects. Restoring it (a bundle with
    /// [`DbBuilder::restore`]) resumes the fold at seq + 1.
    pub fn snapshot(&self) -> Result<(Vec<u8>, Option<Seq>), DbError> {
        encode(&self.cell).map_err(DbError::Snapshot)
    }

    /// The state as it was after the event at `seq` (time travel): a fresh state
    /// folded from the newest snapshot at or before `seq` (or from the start).
    /// Fails if the log no longer holds the events needed (after `compact`).
    pub async fn state_at(&self, seq: Seq) -> Result<S, DbError> {
        let log = self.cell.folder.log().ok_or(DbError::Closed)?;
        let store = self.cell.folder.snapshots.store.clone();
        let name = self.cell.log.clone();
        let fold = move || -> Result<S, DbError> {
            let (mut state, from) = match store
                .load_newest::<S>(Some(seq))
                .map_err(DbError::SnapshotIo)?
            {
                Some((state, at)) => (state, at.unwrap_or(0)),
                None => (S::default(), 0),
            };
            if from >= seq {
                return Ok(state);
            }
            let read = |seq, cause| DbError::Read {
                log: name.clone(),
                seq,
                cause,
            };
            let records = log
                .range(from + 1..=seq)
                .map_err(|e| read(from + 1, FoldCause::Storage(e)))?;
            for record in records {
                let record = record.map_err(|e| read(from + 1, FoldCause::Storage(e)))?;
                let (event, meta) =
                    fold::decode::<S::Event>(&record).map_err(|cause| read(record.seq, cause))?;
                state
                    .apply_event(event, &meta)
                    .map_err(|e| read(record.seq, FoldCause::Apply(e)))?;
            }
            Ok(state)
        };
        tokio::task::spawn_blocking(fold)
            .await
            .map_err(|_| DbError::Closed)?
    }
}

impl Db {
    /// Snapshots every registered state into one [`Bundle`] (see
    /// [`DbBuilder::restore`]). Each state's snapshot is consistent on its own.
    pub fn snapshot(&self) -> Result<Bundle, DbError> {
        let mut bundle = Bundle::new();
        let mut states: Vec<_> = self.inner.states.values().collect();
        states.sort_by_key(|s| s.slot.name());
        for state in states {
            let (blob, _) = state.slot.encode_snapshot().map_err(DbError::Snapshot)?;
            bundle.push(blob).map_err(DbError::Snapshot)?;
        }
        Ok(bundle)
    }

    /// Writes a snapshot file of every state now.
    pub fn snapshot_to_disk(&self) -> Result<(), DbError> {
        for state in self.inner.states.values() {
            self.inner.snapshots.write(state.slot.as_ref())?;
        }
        Ok(())
    }

    /// Drops the log segments that no reader needs any more: those wholly before
    /// the newest valid snapshot of every state folding the log. A log that some
    /// state has no snapshot of, that no state folds, or that holds streams
    /// (aggregates replay them) is kept whole. Returns the segments removed.
    pub async fn compact(&self) -> Result<usize, DbError> {
        let mut removed = 0;
        for (id, log) in &self.inner.logs {
            let folding: Vec<_> = self
                .inner
                .states
                .values()
                .filter(|s| s.event == *id)
                .collect();
            if folding.is_empty() || self.has_streams(log).await? {
                continue;
            }
            let covered = folding
                .iter()
                .map(|s| s.slot.newest_snapshot_seq())
                .min()
                .flatten();
            if let Some(seq) = covered.filter(|&seq| seq > 0) {
                removed += log
                    .log
                    .truncate_before(seq + 1)
                    .map_err(|source| DbError::Storage {
                        log: log.name.clone(),
                        source,
                    })?;
            }
        }
        Ok(removed)
    }
}

impl From<SnapshotIoError> for DbError {
    fn from(error: SnapshotIoError) -> Self {
        DbError::SnapshotIo(error)
    }
}
