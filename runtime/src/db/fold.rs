//! The fold: how the events of the Db's one log become changes to one state.
//!
//! A fold task per state tails the whole log through the store. Per batch: take
//! the state's write lock once, fold every record (the state decodes and
//! applies the types it lists; a record of another type is skipped from its
//! header, its payload not decoded, and still advances the applied position),
//! release, then publish the last position done (which wakes `wait_for_seq`).
//!
//! A waiter may fold too ([`help`]): right after an append, the caller of
//! `wait_for_seq` takes the few missing records from the store's memory (never
//! from disk) and folds them itself, instead of paying for two task wake-ups.
//! Invariant: whoever folds holds `Folder::lock`, and folds records after
//! `applied` in position order, skipping those another folder already did; so
//! every record is folded exactly once, in order, whoever folds it.
//!
//! Over the Db's own file store, the appender folds too ([`after_append`]):
//! right after its batch is in the log, it folds the batch into every state it
//! can (same rules as a waiter), and wakes a state's task (`StateCell::kick`)
//! only when it could not. The task of such a state, once caught up, sleeps on
//! that wake-up and on the store's notice of appends made through the seam
//! ([`FileStore::seam_appends`]), not on the log: an append that folded inline
//! then costs no cross-thread wake-up, which is most of what a single append
//! would otherwise cost. (Over other stores, appends may come from other
//! processes: the task sleeps on the store's tail.)
//!
//! A hold (`StateCell::hold`) stops the fold at a position until it is lifted:
//! records beyond it are kept by the task and folded later (bundles use it for
//! one consistent cut across states).
//!
//! The task ends when the Db asks it to stop at a position (on close: after
//! folding everything appended before), when the Db is dropped, or when an event
//! cannot be folded under `FoldErrorPolicy::Stop`. However it ends, it publishes
//! why, so no waiter hangs.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::Seq;
use crate::db::error::{FoldCause, FoldFailure};
use crate::db::handle::{FoldStatus, StateCell};
use crate::db::policy::FoldErrorPolicy;
use crate::db::registry::Registry;
use crate::db::snapshots::{self, Snapshots};
use crate::snapshot::LastRecord;
use crate::state::{Meta, State};
use crate::store::{Appended, EventStore, FileStore, RecordedEvent, StoreTail};

/// The most records folded under one write lock.
const MAX_BATCH: usize = 1024;

/// The most records a waiter folds itself; further behind, it waits for the task.
const MAX_HELP: Seq = 64;

/// The largest batch an appender folds itself ([`after_append`]); a larger one
/// is folded by the task, in parallel with the appender's next batch.
pub(crate) const MAX_IN_PLACE: usize = 8;

/// Tells a fold task to stop: `Some(seq)` once it has folded up to `seq`.
/// Dropping the sender stops it at once.
pub(crate) type StopAt = watch::Sender<Option<Seq>>;

/// What folding a state needs besides the state: the store, the error policy,
/// and the lock that admits one folder at a time.
pub(crate) struct Folder {
    pub(crate) policy: FoldErrorPolicy,
    pub(crate) registry: Arc<Registry>,
    /// When to snapshot.
    pub(crate) snapshots: Arc<Snapshots>,
    /// The position of the last snapshot written for this state (or the restored one).
    pub(crate) last_snapshot: std::sync::atomic::AtomicU64,
    /// The snapshot being written in the background, if any: at most one at a
    /// time, and `close` waits for it.
    pub(crate) pending_write: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The lock folders hold; it guards the store helpers read from, which is
    /// `None` once the Db is closed (so handles that outlive the Db do not keep
    /// the store open).
    pub(crate) lock: Mutex<Option<Arc<dyn EventStore>>>,
    /// The same store when it is the Db's own file store, whose every append
    /// either goes through the Db (which calls [`after_append`]) or notifies
    /// [`FileStore::seam_appends`]: the task then sleeps on those, not on the log.
    pub(crate) local: Option<FileStore>,
}

impl Folder {
    pub(crate) fn new(
        store: Arc<dyn EventStore>,
        registry: Arc<Registry>,
        policy: FoldErrorPolicy,
        snapshots: Arc<Snapshots>,
        applied: Seq,
        local: Option<FileStore>,
    ) -> Self {
        Self {
            local,
            policy,
            registry,
            snapshots,
            last_snapshot: std::sync::atomic::AtomicU64::new(applied),
            pending_write: Mutex::new(None),
            lock: Mutex::new(Some(store)),
        }
    }

    /// The store, unless the Db was closed.
    pub(crate) fn store(&self) -> Option<Arc<dyn EventStore>> {
        self.lock.lock().clone()
    }

    /// Drops this folder's store handle: no waiter folds from now on.
    pub(crate) fn release_store(&self) {
        drop(self.lock.lock().take());
    }
}

/// Starts the fold task of `cell`, from the position after the cell's applied one.
pub(crate) fn spawn<S: State>(cell: Arc<StateCell<S>>) -> (StopAt, tokio::task::JoinHandle<()>) {
    let from = cell.applied.load(Ordering::Acquire) + 1;
    let tail = cell.folder.store().map(|store| store.tail(from));
    let (stop, stop_rx) = watch::channel(None);
    let task = tokio::spawn(run(cell, tail, stop_rx));
    (stop, task)
}

/// Folds up to `seq` in the caller when that is quick and free: `seq` is at most
/// [`MAX_HELP`] records ahead and in the store's memory, no one else is folding,
/// no reader holds the state, no hold is below `seq`. Returns whether `seq` is
/// now folded; `false` means "wait for the task".
pub(crate) fn help<S: State>(cell: &StateCell<S>, seq: Seq) -> bool {
    let applied = cell.applied.load(Ordering::Acquire);
    if seq > applied.saturating_add(MAX_HELP) || seq > *cell.hold.borrow() {
        return false;
    }
    let Some(folding) = cell.folder.lock.try_lock() else {
        return false;
    };
    let Some(store) = folding.as_ref() else {
        return false; // the Db is closed
    };
    if !matches!(cell.progress.borrow().status, FoldStatus::Running) {
        return false;
    }
    let applied = cell.applied.load(Ordering::Acquire);
    if applied >= seq {
        return true;
    }
    // Only what is in memory, and only up to `seq`; a read error is left to the task.
    let Some(Ok(mut records)) = store.read_cached(applied + 1, (seq - applied) as usize) else {
        return false;
    };
    records.retain(|r| r.position <= seq);
    if records.last().is_none_or(|r| r.position < seq) {
        return false;
    }
    match fold_batch(cell, &records, Lock::Try) {
        Ok(folded) => folded && cell.applied.load(Ordering::Acquire) >= seq,
        Err(failed) => {
            end_with_failure(cell, failed);
            false
        }
    }
}

/// After the Db appended `appended` (over its own file store; `records` are
/// its records when the store could build them, and the batch is at most
/// [`MAX_IN_PLACE`] events, the only ones folded here): folds it here when that is
/// quick and free (as [`help`] decides), else wakes the fold task. A panic in
/// `apply` stops the state (as it would in the task) but does not reach the
/// appender, whose append has succeeded.
pub(crate) fn after_append<S: State>(
    cell: &StateCell<S>,
    appended: &Appended,
    records: Option<&[RecordedEvent]>,
) {
    let last = *appended.positions.end();
    if cell.applied.load(Ordering::Acquire) >= last {
        return;
    }
    let len = last - appended.positions.start() + 1;
    if len > MAX_IN_PLACE as Seq {
        // A large batch: the task folds it while the appender goes on (one
        // wake-up per batch is cheap; folding it here would serialize).
        cell.kick.notify_waiters();
        return;
    }
    let folded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match records {
        Some(records) => fold_fresh(cell, records),
        None => help(cell, last),
    }));
    if let (Ok(true), Some(local)) = (&folded, &cell.folder.local) {
        let applied = cell.applied.load(Ordering::Acquire);
        cell.metrics.folded_behind(applied, Some(local.last_now()));
    }
    match folded {
        Ok(true) if !snapshots::due(cell) => {}
        // Not folded (busy, behind, failed), or a snapshot is due: the task's work.
        Ok(_) => cell.kick.notify_waiters(),
        Err(_) => {} // the panic guard has stopped the state and said why
    }
}

/// Folds `records`, a batch just appended, when everything before it is
/// folded and no one else is folding (else as [`help`], which reads what is
/// missing from the store's memory). Returns whether the batch is folded.
fn fold_fresh<S: State>(cell: &StateCell<S>, records: &[RecordedEvent]) -> bool {
    let (Some(first), Some(last)) = (records.first(), records.last()) else {
        return true;
    };
    if cell.applied.load(Ordering::Acquire) + 1 != first.position {
        return help(cell, last.position);
    }
    if last.position > *cell.hold.borrow() {
        return false;
    }
    let Some(folding) = cell.folder.lock.try_lock() else {
        return false;
    };
    if folding.is_none() || !matches!(cell.progress.borrow().status, FoldStatus::Running) {
        return false; // the Db is closed, or the fold has stopped
    }
    if cell.applied.load(Ordering::Acquire) + 1 != first.position {
        drop(folding);
        return help(cell, last.position);
    }
    match fold_batch(cell, records, Lock::Try) {
        Ok(folded) => folded,
        Err(failed) => {
            end_with_failure(cell, failed);
            false
        }
    }
}

/// Marks the fold ended however the task exits (including a panic in `apply`).
struct EndGuard<S: State>(Arc<StateCell<S>>);

impl<S: State> Drop for EndGuard<S> {
    fn drop(&mut self) {
        let cell = &self.0;
        if std::thread::panicking() {
            let seq = cell.applied.load(Ordering::Acquire) + 1;
            let failed = failure::<S>(seq, None, FoldCause::Panicked);
            cell.publish_end(FoldStatus::Failed(Arc::new(failed)));
        } else {
            cell.publish_end(FoldStatus::Stopped);
        }
    }
}

async fn run<S: State>(
    cell: Arc<StateCell<S>>,
    tail: Option<Box<dyn StoreTail>>,
    mut stop: watch::Receiver<Option<Seq>>,
) {
    let guard = EndGuard(cell);
    let cell = &guard.0;
    let Some(mut tail) = tail else { return };
    let mut hold = cell.hold.subscribe();
    // Records fetched but beyond the hold: folded once it is lifted.
    let mut held: Vec<RecordedEvent> = Vec::new();
    // For the gauges: held here rather than taken from the folder per batch
    // (a lock and a reference count on the path of every live append).
    let store = cell.folder.store();
    loop {
        if let Some(target) = *stop.borrow_and_update()
            && cell.applied.load(Ordering::Acquire) >= target
        {
            return;
        }
        let limit = *hold.borrow_and_update();
        let batch = if !held.is_empty() {
            if held.first().is_some_and(|r| r.position <= limit) {
                Ok(std::mem::take(&mut held))
            } else {
                tokio::select! {
                    biased;
                    changed = stop.changed() => match changed {
                        Ok(()) => continue,
                        Err(_) => return,
                    },
                    _ = hold.changed() => continue,
                }
            }
        } else if let Some(local) = &cell.folder.local {
            let applied = cell.applied.load(Ordering::Acquire);
            if local.last_now() <= applied {
                // Caught up: sleep until an append this task must fold. Both
                // wake-ups are armed before looking again, so none is missed.
                let kicked = cell.kick.notified();
                let seam = local.seam_appends().notified();
                tokio::pin!(kicked, seam);
                kicked.as_mut().enable();
                seam.as_mut().enable();
                snapshots::after_batch(cell); // an appender may have asked for one
                if local.last_now() <= cell.applied.load(Ordering::Acquire) {
                    tokio::select! {
                        biased;
                        changed = stop.changed() => match changed {
                            Ok(()) => continue,
                            Err(_) => return, // the Db was dropped
                        },
                        _ = kicked => {}
                        _ = seam => {}
                        _ = hold.changed() => {}
                    }
                }
                continue;
            }
            // Appenders folded what the tail would return next: skip it.
            if tail.position() <= applied {
                tail = local.tail(applied + 1);
            }
            tail.next_batch(MAX_BATCH).await
        } else {
            tokio::select! {
                biased;
                changed = stop.changed() => match changed {
                    Ok(()) => continue,
                    Err(_) => return, // the Db was dropped
                },
                batch = tail.next_batch(MAX_BATCH) => batch,
            }
        };
        let mut records = match batch {
            Ok(records) => records,
            Err(crate::store::StoreError::Closed) => return,
            Err(source) => {
                let position = tail.position();
                end_with_failure(cell, failure::<S>(position, None, FoldCause::Store(source)));
                return;
            }
        };
        let full = records.len() >= MAX_BATCH / 2;
        let outcome = {
            let _folding = cell.folder.lock.lock();
            if !matches!(cell.progress.borrow().status, FoldStatus::Running) {
                return; // a helper met a failure
            }
            // The hold is read under the lock: a bundle's barrier (taking this
            // lock) guarantees every later batch sees the hold it set.
            let limit = *cell.hold.borrow();
            let cut = records.partition_point(|r| r.position <= limit);
            held = records.split_off(cut);
            fold_batch(cell, &records, Lock::Wait).map(drop)
        };
        if let Err(failed) = outcome {
            end_with_failure(cell, failed);
            return;
        }
        snapshots::after_batch(cell);
        cell.metrics
            .folded(store.as_deref(), cell.applied.load(Ordering::Acquire));
        // A long replay (full batches) must not starve the other tasks of this
        // worker; a live fold of a few records per wake-up yields only when
        // its coop budget runs out (a yield per batch would reschedule, and so
        // wake a parked worker, after every append).
        if full {
            tokio::task::yield_now().await;
        } else {
            tokio::task::coop::consume_budget().await;
        }
    }
}

fn end_with_failure<S: State>(cell: &StateCell<S>, failed: FoldFailure) {
    tracing::error!(state = S::NAME, seq = failed.seq, event = failed.event.as_deref().unwrap_or("?"), error = %crate::chain::Chain(&failed.cause), "foldkit: state stopped folding; fix `apply` and restart (the state replays), or set FoldErrorPolicy::LogAndContinue for it");
    cell.publish_end(FoldStatus::Failed(Arc::new(failed)));
}

/// How `fold_batch` takes the state's write lock.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lock {
    /// Block until readers are gone (the fold task).
    Wait,
    /// Give up if a reader holds the state (a helping waiter, who may be one).
    Try,
}

/// Folds the records of one batch that are not folded yet; the caller holds
/// `Folder::lock`. On a failure under `Stop`, the events before it stay applied
/// and published, and the failure is returned. `Ok(false)`: `Lock::Try` failed.
fn fold_batch<S: State>(
    cell: &StateCell<S>,
    records: &[RecordedEvent],
    lock: Lock,
) -> Result<bool, FoldFailure> {
    let policy = cell.folder.policy;
    let applied = cell.applied.load(Ordering::Acquire);
    let fresh = records.partition_point(|record| record.position <= applied);
    let records = &records[fresh..];
    let Some(last) = records.last() else {
        return Ok(true);
    };
    let mut state = match lock {
        Lock::Wait => cell.value.write(),
        Lock::Try => match cell.value.try_write() {
            Some(state) => state,
            None => return Ok(false),
        },
    };
    let mut done = last;
    let mut stopped = None;
    let mut unwinding = PanicGuard {
        cell,
        records,
        applying: 0,
    };
    for (i, record) in records.iter().enumerate() {
        let meta = Meta::of(record);
        unwinding.applying = i;
        let cause = match state.apply_recorded(record, &meta) {
            Ok(true) => continue,
            Ok(false) => {
                if !cell.folder.registry.knows(&record.name) {
                    cell.folder
                        .registry
                        .report_unknown(&record.name, record.position);
                }
                continue;
            }
            Err(cause) => cause,
        };
        match policy {
            FoldErrorPolicy::LogAndContinue => skip::<S>(cell, record, &cause),
            FoldErrorPolicy::Stop => {
                stopped = Some(failure::<S>(record.position, Some(&record.name), cause));
                match i.checked_sub(1) {
                    Some(before) => done = &records[before],
                    None => {
                        std::mem::forget(unwinding);
                        return Err(stopped.expect("set above"));
                    }
                }
                break;
            }
        }
    }
    std::mem::forget(unwinding); // no panic: disarm
    // Published under the write lock: a reader holding the read lock sees a value,
    // an applied position and a last identity that agree (snapshots rely on it).
    *cell.last.lock() = Some(LastRecord::of(done));
    cell.publish_applied(done.position);
    cell.watch.after_batch(&state);
    drop(state);
    stopped.map_or(Ok(true), Err)
}

/// Stops the state at the event whose `apply` panicked: the events before it in
/// the batch are applied, so the batch must not be folded again (by the task
/// or a waiter), and the state may be half-updated. The panic goes on unwinding
/// (into the fold task, or into the waiter that was folding).
struct PanicGuard<'a, S: State> {
    cell: &'a StateCell<S>,
    records: &'a [RecordedEvent],
    /// The index in `records` of the event being applied.
    applying: usize,
}

impl<S: State> Drop for PanicGuard<'_, S> {
    fn drop(&mut self) {
        if let Some(done) = self
            .applying
            .checked_sub(1)
            .and_then(|i| self.records.get(i))
        {
            *self.cell.last.lock() = Some(LastRecord::of(done));
            self.cell.publish_applied(done.position);
        }
        let record = self.records.get(self.applying);
        let seq = record.map_or(self.cell.applied.load(Ordering::Acquire) + 1, |r| {
            r.position
        });
        let failed = failure::<S>(seq, record.map(|r| &r.name), FoldCause::Panicked);
        end_with_failure(self.cell, failed);
    }
}

fn skip<S: State>(cell: &StateCell<S>, record: &RecordedEvent, cause: &FoldCause) {
    cell.skipped.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(state = S::NAME, seq = record.position, event = %record.name, error = %crate::chain::Chain(cause), "foldkit: skipping an event that cannot be folded");
}

fn failure<S: State>(seq: Seq, event: Option<&Arc<str>>, cause: FoldCause) -> FoldFailure {
    FoldFailure {
        state: S::NAME,
        seq,
        event: event.cloned(),
        cause,
    }
}
