//! Snapshots in the Db: where states start at open, automatic snapshots (every N
//! events and at close), whole-Db bundles, compaction, and time travel.
//!
//! Invariants:
//! - A state starts from an explicit bundle entry, else the newest valid snapshot
//!   file at or before the log's last seq, else `Default` at seq 0 (see `start`).
//!   A snapshot is used (to start, for time travel, to compact) only if the log
//!   holds the very record it ends at ([`RecordIdentity`]): one the log does not
//!   reach, or whose seq now holds another record (a lost tail), is ignored.
//! - Snapshots written by the Db in the background are written only once the log
//!   is durable up to their seq (`log.sync()` first), and close syncs the logs
//!   before its snapshots; so under any `FsyncPolicy` a snapshot file never
//!   covers a record a crash can lose. `Db::snapshot_to_disk` and bundles may
//!   cover unsynced records: the identity check makes that safe (a lost tail
//!   makes them not match, and they are ignored).
//! - `compact` keeps the record a snapshot ends at, so the snapshot stays checkable.
//! - A snapshot is encoded under the state's read lock, where the value and its
//!   applied seq agree (the fold publishes the seq under the write lock), and the
//!   file is written off the fold's path (blocking pool).
//! - `compact` drops only log segments below every folding state's newest valid
//!   snapshot, and never from a log that holds streams (aggregates replay them).

use std::path::Path;
use std::sync::atomic::Ordering;

use crate::Seq;
use crate::db::builder::DbBuilder;
use crate::db::db::Db;
use crate::db::error::{DbError, FoldCause};
use crate::db::fold;
use crate::db::handle::{Handle, StateCell, StateSlot};
use foldkit_storage::Log;

use crate::snapshot::{
    Bundle, IdentityMismatch, RecordIdentity, SnapshotError, SnapshotIoError, SnapshotStore, codec,
};
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

/// The state's value and applied seq, encoded under its read lock with the
/// identity of the last record folded (published under the write lock with it).
pub(crate) fn encode<S: State>(
    cell: &StateCell<S>,
) -> Result<(Vec<u8>, Option<Seq>), SnapshotError> {
    let state = cell.value.read();
    let applied = cell.applied.load(Ordering::Acquire);
    let last = *cell.last_record.lock();
    if last.map_or(0, |l| l.seq) != applied {
        return Err(SnapshotError::Unidentified {
            state: S::NAME,
            seq: applied,
        });
    }
    let seq = Some(applied).filter(|&seq| seq > 0);
    Ok((codec::encode(&*state, last)?, seq))
}

/// Accepts a snapshot ending at `last` only if `log` holds that very record.
fn matching(log: &Log) -> impl FnMut(Option<&RecordIdentity>) -> Result<(), IdentityMismatch> {
    move |last| last.map_or(Ok(()), |identity| identity.check(log))
}

/// The seq of the newest snapshot file of `S` that decodes and matches `log`.
/// Reads files: call it on the blocking pool.
pub(crate) fn newest_valid<S: State>(snapshots: &Snapshots, log: &Log) -> Option<Seq> {
    match snapshots.store.load_newest_where::<S>(None, matching(log)) {
        Ok(found) => found.map(|(_, last)| last.map_or(0, |l| l.seq)),
        Err(error) => {
            tracing::warn!(state = S::NAME, error = %crate::chain::Chain(&error), "foldkit: cannot list snapshots");
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
            tracing::warn!(state = S::NAME, error = %crate::chain::Chain(&error), "foldkit: cannot encode a snapshot");
            return;
        }
    };
    let store = cell.folder.snapshots.store.clone();
    let Some(log) = cell.folder.log() else {
        return; // closing: the close snapshot covers it
    };
    // The log is made durable up to `seq` first: a snapshot never covers records
    // a crash could still take back.
    *pending = Some(tokio::spawn(async move {
        if let Err(error) = log.sync().await {
            tracing::warn!(state = S::NAME, error = %crate::chain::Chain(&error), "foldkit: no snapshot: the log cannot be synced");
            return;
        }
        let write = tokio::task::spawn_blocking(move || store.write(S::NAME, seq, &blob));
        match write.await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(state = S::NAME, error = %crate::chain::Chain(&error), "foldkit: cannot write a snapshot");
            }
            Err(error) => {
                tracing::warn!(state = S::NAME, %error, "foldkit: the snapshot write did not finish")
            }
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
    /// Only a snapshot that matches the log (see [`Handle::start_report`]) is used.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: the fold runs on the blocking pool; a drop leaves it to
    /// finish there, unused, and changes nothing.
    pub async fn state_at(&self, seq: Seq) -> Result<S, DbError> {
        let log = self.cell.folder.log().ok_or(DbError::Closed)?;
        let store = self.cell.folder.snapshots.store.clone();
        let name = self.cell.log.clone();
        let fold = move || -> Result<S, DbError> {
            let (mut state, from) = match store
                .load_newest_where::<S>(Some(seq), matching(&log))
                .map_err(DbError::SnapshotIo)?
            {
                Some((state, last)) => (state, last.map_or(0, |l| l.seq)),
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
    /// [`DbBuilder::restore`]). Each state's snapshot is consistent on its own,
    /// and names the last record it covers: restoring it into a log that no
    /// longer holds that record (a lost unsynced tail) replays instead.
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

    /// Writes a snapshot file of every state now. This blocks on file I/O: in
    /// async code, call it from `tokio::task::spawn_blocking`. The log is not
    /// synced first: a snapshot covering records a crash then loses no longer
    /// matches the log, and the next open ignores it (see [`Handle::start_report`]).
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
    ///
    /// # Cancel safety
    ///
    /// A drop stops it between logs: segments of a log whose removal started (on
    /// the blocking pool) are still removed; nothing else changes. Removed
    /// segments are only ones no state needs, so any drop point is safe.
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
            // Reads snapshot files and the log: on the blocking pool.
            let slots: Vec<_> = folding
                .iter()
                .map(|s| std::sync::Arc::clone(&s.slot))
                .collect();
            let covered = tokio::task::spawn_blocking(move || {
                slots
                    .iter()
                    .map(|s| s.newest_snapshot_seq())
                    .min()
                    .flatten()
            })
            .await
            .map_err(|_| DbError::Closed)?;
            if let Some(seq) = covered.filter(|&seq| seq > 0) {
                // Removes files: on the blocking pool too.
                let storage = log.log.clone();
                let truncated = tokio::task::spawn_blocking(move || storage.truncate_before(seq))
                    .await
                    .map_err(|_| DbError::Closed)?;
                removed += truncated.map_err(|source| DbError::Storage {
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
