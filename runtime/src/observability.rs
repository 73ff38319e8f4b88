//! What foldkit tells an operator: `tracing` events and `metrics`.
//!
//! Both go through facades: nothing is printed or exported unless the
//! application installs a `tracing` subscriber and a `metrics` recorder (the
//! `bank_http` example installs `tracing-subscriber` with `RUST_LOG` and a
//! Prometheus exporter at `/metrics`).
//!
//! # Logs
//!
//! Levels are chosen so that `info` is quiet in steady state:
//!
//! | level | when |
//! |-------|------|
//! | `info`  | a Db opened (store, last position, states, time); each state started (snapshot used, position, events to replay) |
//! | `warn`  | a torn tail cut at open; a snapshot skipped (corrupt, stale: another definition of the state, or of another log history) and why; the stream index rebuilt; an fsync slower than [`SLOW_FSYNC`](crate::storage::SLOW_FSYNC); an event skipped under `FoldErrorPolicy::LogAndContinue` |
//! | `error` | a state stopped folding (state, seq, event name, cause); the log poisoned by a failed write or fsync |
//! | `debug` | a snapshot written (state, position, bytes, time) or not started because one is still being written; the log opened without repair |
//! | `trace` | a watcher registered or dropped, with the table's watcher count |
//!
//! # Metrics
//!
//! Every name foldkit records, in one table. Labels are bounded: state and
//! entity type names, never ids or positions.
//!
//! | name | kind | labels | what |
//! |------|------|--------|------|
//! | `foldkit_appends_total` | counter | | batches appended through a `Db` |
//! | `foldkit_events_appended_total` | counter | | events appended through a `Db` |
//! | `foldkit_event_bytes_appended_total` | counter | | encoded event bytes appended (bodies, before the envelope) |
//! | `foldkit_last_position` | gauge | | the position of the last event appended through a `Db` |
//! | `foldkit_log_records_written_total` | counter | | records the file log handed to the OS |
//! | `foldkit_log_bytes_written_total` | counter | | bytes the file log handed to the OS (frames included) |
//! | `foldkit_fsync_seconds` | histogram | | time of each fsync of the file log |
//! | `foldkit_log_poisoned_total` | counter | | logs poisoned by a failed write or fsync |
//! | `foldkit_fold_applied_position` | gauge | `state` | the last position the state folded |
//! | `foldkit_fold_lag` | gauge | `state` | last position in the store − the state's applied position (per fold batch) |
//! | `foldkit_snapshots_written_total` | counter | `state` | snapshots stored |
//! | `foldkit_snapshot_bytes` | histogram | `state` | size of each snapshot stored |
//! | `foldkit_snapshot_write_seconds` | histogram | `state` | time to store each snapshot (sync of the log included) |
//! | `foldkit_snapshots_rejected_total` | counter | `state` | snapshots found unusable at open (corrupt, stale, another history) |
//! | `foldkit_watchers` | gauge | `entity` | live watchers per watched entity type |
//! | `foldkit_subscription_lag` | gauge | `subscription` | last position − the position the named subscription acknowledged (at start, per batch read, per ack) |
//! | `foldkit_process_manager_lag` | gauge | `process_manager` | last position − the manager's checkpoint (per batch processed, per checkpoint) |
//!
//! The metrics recorded on every append and every fold batch (the first four
//! and the two `foldkit_fold_*`) are registered when a `Db` opens, so that
//! appending pays no key lookup: install the recorder before opening the Db.
//!
//! For both lags, "last position" is the store's, when the store answers it
//! without waiting (the file store); otherwise (a remote store, whose answer
//! would cost a round trip) the last position the consumer has read, a lower
//! bound: the lag then shows what was read but not yet acknowledged.

use std::time::Instant;

use futures::FutureExt;

use crate::Seq;
use crate::store::{AppendBatch, Appended, EventStore};

/// The size of a batch about to be appended: (events, body bytes).
pub(crate) fn batch_size(batch: &AppendBatch) -> (u64, u64) {
    let bytes = batch.events.iter().map(|e| e.payload.len() as u64).sum();
    (batch.events.len() as u64, bytes)
}

/// The metrics of appends through a Db, registered once (at open).
pub(crate) struct AppendMetrics {
    appends: metrics::Counter,
    events: metrics::Counter,
    bytes: metrics::Counter,
    last_position: metrics::Gauge,
}

impl AppendMetrics {
    /// Registers the handles with the recorder installed now.
    pub(crate) fn register() -> Self {
        Self {
            appends: metrics::counter!("foldkit_appends_total"),
            events: metrics::counter!("foldkit_events_appended_total"),
            bytes: metrics::counter!("foldkit_event_bytes_appended_total"),
            last_position: metrics::gauge!("foldkit_last_position"),
        }
    }

    /// A batch was appended (not counted when it was deduplicated).
    pub(crate) fn appended(&self, (events, bytes): (u64, u64), appended: &Appended) {
        if appended.deduplicated {
            return;
        }
        self.appends.increment(1);
        self.events.increment(events);
        self.bytes.increment(bytes);
        self.last_position.set(*appended.positions.end() as f64);
    }
}

/// The metrics of one state's fold, registered once (when the state starts).
pub(crate) struct FoldMetrics {
    applied: metrics::Gauge,
    lag: metrics::Gauge,
}

impl FoldMetrics {
    /// Registers the handles of `state` with the recorder installed now.
    pub(crate) fn register(state: &'static str) -> Self {
        Self {
            applied: metrics::gauge!("foldkit_fold_applied_position", "state" => state),
            lag: metrics::gauge!("foldkit_fold_lag", "state" => state),
        }
    }

    /// A fold batch ended at `applied`. The lag is recorded when the store
    /// answers its last position at once (the file store does; a remote
    /// store's answer is not waited for).
    pub(crate) fn folded(&self, store: Option<&dyn EventStore>, applied: Seq) {
        match store.and_then(|store| store.last_position().now_or_never()) {
            Some(Ok(last)) => self.folded_behind(applied, Some(last.unwrap_or(0))),
            _ => self.folded_behind(applied, None),
        }
    }

    /// [`folded`](Self::folded) with the store's last position known (`None`:
    /// unknown, no lag recorded).
    pub(crate) fn folded_behind(&self, applied: Seq, last: Option<Seq>) {
        self.applied.set(applied as f64);
        if let Some(last) = last {
            self.lag.set(last.saturating_sub(applied) as f64);
        }
    }
}

/// The store's last position if it answers at once (the file store does),
/// else `seen`: the last position the caller read (a lower bound).
fn last_known(store: &dyn EventStore, seen: Seq) -> Seq {
    match store.last_position().now_or_never() {
        Some(Ok(last)) => last.unwrap_or(0).max(seen),
        _ => seen,
    }
}

/// The lag of subscription `name`, which has read up to `seen` and
/// acknowledged `acked`: last position − acknowledged position.
pub(crate) fn subscription_lag(name: &str, store: &dyn EventStore, seen: Seq, acked: Option<Seq>) {
    let lag = last_known(store, seen).saturating_sub(acked.unwrap_or(0));
    metrics::gauge!("foldkit_subscription_lag", "subscription" => name.to_owned()).set(lag as f64);
}

/// The lag of process manager `name`, which has read up to `seen` and
/// checkpointed `checkpoint`: last position − checkpointed position.
pub(crate) fn process_manager_lag(
    name: &'static str,
    store: &dyn EventStore,
    seen: Seq,
    checkpoint: Seq,
) {
    let lag = last_known(store, seen).saturating_sub(checkpoint);
    metrics::gauge!("foldkit_process_manager_lag", "process_manager" => name).set(lag as f64);
}

/// Times one snapshot write; [`SnapshotWrite::done`] records it.
pub(crate) struct SnapshotWrite {
    state: &'static str,
    bytes: usize,
    began: Instant,
}

/// Starts timing the write of a snapshot of `bytes` bytes.
pub(crate) fn snapshot_write(state: &'static str, bytes: usize) -> SnapshotWrite {
    SnapshotWrite {
        state,
        bytes,
        began: Instant::now(),
    }
}

impl SnapshotWrite {
    /// The snapshot's size, once known (a streamed write learns it at the end).
    pub(crate) fn sized(self, bytes: u64) -> Self {
        Self {
            bytes: usize::try_from(bytes).unwrap_or(usize::MAX),
            ..self
        }
    }

    /// The snapshot at `seq` is stored.
    pub(crate) fn done(self, seq: Option<Seq>) {
        let elapsed = self.began.elapsed();
        let state = self.state;
        metrics::counter!("foldkit_snapshots_written_total", "state" => state).increment(1);
        metrics::histogram!("foldkit_snapshot_bytes", "state" => state).record(self.bytes as f64);
        metrics::histogram!("foldkit_snapshot_write_seconds", "state" => state)
            .record(elapsed.as_secs_f64());
        tracing::debug!(
            state,
            seq,
            bytes = self.bytes,
            elapsed_ms = elapsed.as_millis() as u64,
            "foldkit: snapshot written"
        );
    }
}

/// A stored snapshot of `state` was found unusable (the caller logs why).
pub(crate) fn snapshot_rejected(state: &'static str) {
    metrics::counter!("foldkit_snapshots_rejected_total", "state" => state).increment(1);
}

/// A watcher of `entity` rows registered (`+1`) or dropped (`-1`); `now`
/// watchers remain on that table.
pub(crate) fn watchers(entity: &'static str, delta: f64, now: usize) {
    metrics::gauge!("foldkit_watchers", "entity" => entity).increment(delta);
    tracing::trace!(
        entity,
        watchers = now,
        "foldkit: watcher {}",
        if delta > 0.0 { "registered" } else { "dropped" }
    );
}
