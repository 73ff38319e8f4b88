//! The fold: how records of one log become changes to one state.
//!
//! A fold task per state tails the log (`Tail::next_batch`). Per batch: decode +
//! upcast every record outside the lock, take the state's write lock once,
//! apply, release, then publish the last seq done (which wakes `wait_for_seq`).
//! Readers are blocked only while events are applied, never while bytes are
//! decoded or the log is read.
//!
//! A waiter may fold too ([`help`]): right after an append, the caller of
//! `wait_for_seq` reads the few missing records itself and folds them, instead
//! of paying for two task wake-ups (fold task, then waiter). Invariant: whoever
//! folds holds `Folder::lock`, and folds records `applied + 1, applied + 2, ..`
//! in order, skipping those another folder already did; so every record is
//! applied exactly once, in seq order, whoever applies it.
//!
//! The task ends when the Db asks it to stop at a seq (on close: after folding
//! everything appended before), when the Db is dropped, or when an event cannot
//! be folded under `FoldErrorPolicy::Stop`. However it ends, it publishes why,
//! so no waiter hangs.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use foldkit_storage::{Log, Record, Tail};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::Seq;
use crate::db::envelope::Envelope;
use crate::db::error::{FoldCause, FoldFailure};
use crate::db::handle::{FoldStatus, StateCell};
use crate::db::policy::FoldErrorPolicy;
use crate::db::snapshots::{self, Snapshots};
use crate::event::Event;
use crate::state::{Meta, State};

/// The most records folded under one write lock.
const MAX_BATCH: usize = 1024;

/// The most records a waiter folds itself; further behind, it waits for the task.
const MAX_HELP: Seq = 64;

/// Tells a fold task to stop: `Some(seq)` once it has folded up to `seq`.
/// Dropping the sender stops it at once.
pub(crate) type StopAt = watch::Sender<Option<Seq>>;

/// What folding a state needs besides the state: its log, the error policy, and
/// the lock that admits one folder at a time.
pub(crate) struct Folder {
    policy: FoldErrorPolicy,
    /// Where this state's snapshots go, and when.
    pub(crate) snapshots: Arc<Snapshots>,
    /// The seq of the last snapshot written for this state (or the restored one).
    pub(crate) last_snapshot: std::sync::atomic::AtomicU64,
    /// The snapshot file being written in the background, if any: at most one at
    /// a time, and `close` waits for it.
    pub(crate) pending_write: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The log's last seq when the Db opened: a waiter never folds records up
    /// to it (the replay's records are in segment files; see [`help`]).
    opened_at: Seq,
    /// The lock folders hold; it guards the log helpers read from, which is
    /// `None` once the Db is closed (so handles that outlive the Db do not keep
    /// the log open).
    lock: Mutex<Option<Log>>,
}

impl Folder {
    pub(crate) fn new(
        log: Log,
        policy: FoldErrorPolicy,
        snapshots: Arc<Snapshots>,
        applied: Seq,
    ) -> Self {
        Self {
            policy,
            snapshots,
            last_snapshot: std::sync::atomic::AtomicU64::new(applied),
            pending_write: Mutex::new(None),
            opened_at: log.last_seq().unwrap_or(0),
            lock: Mutex::new(Some(log)),
        }
    }

    /// The log, unless the Db was closed.
    pub(crate) fn log(&self) -> Option<Log> {
        self.lock.lock().clone()
    }

    /// Drops this folder's log handle: no waiter folds from now on.
    pub(crate) fn release_log(&self) {
        drop(self.lock.lock().take());
    }
}

/// Starts the fold task of `cell`, from the seq after the cell's applied seq.
pub(crate) fn spawn<S: State>(
    cell: Arc<StateCell<S>>,
    log: &Log,
) -> (StopAt, tokio::task::JoinHandle<()>) {
    let tail = log.tail(cell.applied.load(Ordering::Acquire) + 1);
    let (stop, stop_rx) = watch::channel(None);
    let task = tokio::spawn(run(cell, tail, stop_rx));
    (stop, task)
}

/// Folds up to `seq` in the caller when that is quick and free: `seq` is at most
/// [`MAX_HELP`] records ahead, no one else is folding, no reader holds the state.
/// Returns whether `seq` is now folded; `false` means "wait for the task".
///
/// The caller is an async task on a runtime worker, so it must not read files:
/// it folds only records appended since the Db opened, the newest of the log,
/// which the storage keeps in memory; the replay of older records (in segment
/// files) is left to the task, whose reads the storage does off the workers.
pub(crate) fn help<S: State>(cell: &StateCell<S>, seq: Seq) -> bool {
    let applied = cell.applied.load(Ordering::Acquire);
    if seq > applied.saturating_add(MAX_HELP) || applied < cell.folder.opened_at {
        return false;
    }
    let Some(folding) = cell.folder.lock.try_lock() else {
        return false;
    };
    let Some(log) = folding.as_ref() else {
        return false; // the Db is closed
    };
    if !matches!(cell.progress.borrow().status, FoldStatus::Running) {
        return false;
    }
    let applied = cell.applied.load(Ordering::Acquire);
    if applied >= seq {
        return true;
    }
    // A read error here is left to the task, which reports it.
    let Ok(records) = log.range(applied + 1..=seq) else {
        return false;
    };
    let Ok(records) = records.collect::<Result<Vec<Record>, _>>() else {
        return false;
    };
    match fold_batch(cell, &records, Lock::Try) {
        Ok(folded) => folded && cell.applied.load(Ordering::Acquire) >= seq,
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
            let failed = failure(cell, seq, FoldCause::Panicked);
            cell.publish_end(FoldStatus::Failed(Arc::new(failed)));
        } else {
            cell.publish_end(FoldStatus::Stopped);
        }
    }
}

async fn run<S: State>(
    cell: Arc<StateCell<S>>,
    mut tail: Tail,
    mut stop: watch::Receiver<Option<Seq>>,
) {
    let guard = EndGuard(cell);
    let cell = &guard.0;
    // Records folded since the task last yielded: a replay yields every
    // `MAX_BATCH` records, so it never holds a worker (or a `current_thread`
    // runtime) for long, however long the log.
    let mut since_yield = 0;
    loop {
        if let Some(target) = *stop.borrow_and_update()
            && cell.applied.load(Ordering::Acquire) >= target
        {
            return;
        }
        let batch = tokio::select! {
            biased;
            changed = stop.changed() => match changed {
                Ok(()) => continue,
                Err(_) => return, // the Db was dropped
            },
            batch = tail.next_batch(MAX_BATCH) => batch,
        };
        let _folding = cell.folder.lock.lock();
        if !matches!(cell.progress.borrow().status, FoldStatus::Running) {
            return; // a helper met a failure
        }
        let outcome = match batch {
            Ok(records) => {
                since_yield += records.len();
                fold_batch(cell, &records, Lock::Wait).map(drop)
            }
            Err(source) => Err(failure(cell, tail.position(), FoldCause::Storage(source))),
        };
        if let Err(failed) = outcome {
            end_with_failure(cell, failed);
            return;
        }
        drop(_folding);
        snapshots::after_batch(cell);
        if since_yield >= MAX_BATCH {
            since_yield = 0;
            tokio::task::yield_now().await;
        }
    }
}

fn end_with_failure<S: State>(cell: &StateCell<S>, failed: FoldFailure) {
    tracing::error!(state = S::NAME, log = %cell.log, seq = failed.seq, error = %crate::chain::Chain(&failed.cause), "state stopped folding");
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
    records: &[Record],
    lock: Lock,
) -> Result<bool, FoldFailure> {
    let policy = cell.folder.policy;
    let applied = cell.applied.load(Ordering::Acquire);
    let fresh = records.partition_point(|record| record.seq <= applied);
    let records = &records[fresh..];
    let Some(last) = records.last() else {
        return Ok(true);
    };
    // Decode outside the lock; stop decoding at the first error under `Stop`.
    let mut decoded = Vec::with_capacity(records.len());
    for record in records {
        let event = decode::<S::Event>(record).map_err(|cause| (record.seq, cause));
        let failed = event.is_err();
        decoded.push(event);
        if failed && policy == FoldErrorPolicy::Stop {
            break;
        }
    }
    let mut state = match lock {
        Lock::Wait => cell.value.write(),
        Lock::Try => match cell.value.try_write() {
            Some(state) => state,
            None => return Ok(false),
        },
    };
    let mut done = last.seq;
    let mut stopped = None;
    let mut unwinding = PanicGuard {
        cell,
        applied,
        applying: applied + 1,
    };
    for event in decoded {
        let (seq, cause) = match event {
            Ok((event, meta)) => {
                unwinding.applying = meta.seq;
                match state.apply_event(event, &meta) {
                    Ok(()) => continue,
                    Err(error) => (meta.seq, FoldCause::Apply(error)),
                }
            }
            Err(failed) => failed,
        };
        match policy {
            FoldErrorPolicy::LogAndContinue => skip(cell, seq, &cause),
            FoldErrorPolicy::Stop => {
                done = seq - 1;
                stopped = Some(failure(cell, seq, cause));
                break;
            }
        }
    }
    std::mem::forget(unwinding); // no panic: disarm
    // Published under the write lock: a reader holding the read lock sees a value
    // and an applied seq that agree (snapshots rely on it).
    if done > applied {
        cell.note_last(records, done);
        cell.publish_applied(done);
        cell.watch.after_batch(&state);
    }
    drop(state);
    stopped.map_or(Ok(true), Err)
}

/// Stops the state at the event whose `apply` panicked: the events before it in
/// the batch are applied, so the batch must not be folded again (by the task
/// or a waiter), and the state may be half-updated. The panic goes on unwinding
/// (into the fold task, or into the waiter that was folding).
struct PanicGuard<'a, S: State> {
    cell: &'a StateCell<S>,
    applied: Seq,
    applying: Seq,
}

impl<S: State> Drop for PanicGuard<'_, S> {
    fn drop(&mut self) {
        if self.applying - 1 > self.applied {
            // The record it ends at is not noted: no snapshot of a half-updated state.
            *self.cell.last_record.lock() = None;
            self.cell.publish_applied(self.applying - 1);
        }
        let failed = failure(self.cell, self.applying, FoldCause::Panicked);
        end_with_failure(self.cell, failed);
    }
}

pub(crate) fn decode<E: Event>(record: &Record) -> Result<(E, Meta), FoldCause> {
    let envelope = Envelope::decode(&record.payload)?;
    let event = E::decode(envelope.version, envelope.body)?;
    let meta = Meta::new(record.seq, record.timestamp, envelope.version);
    Ok((event, meta.with_optional_stream_id(envelope.stream_id)))
}

fn skip<S: State>(cell: &StateCell<S>, seq: Seq, cause: &FoldCause) {
    cell.skipped.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(state = S::NAME, log = %cell.log, seq, error = %crate::chain::Chain(cause), "skipping an event that cannot be folded");
}

fn failure<S: State>(cell: &StateCell<S>, seq: Seq, cause: FoldCause) -> FoldFailure {
    FoldFailure {
        state: S::NAME,
        log: cell.log.clone(),
        seq,
        cause,
    }
}
