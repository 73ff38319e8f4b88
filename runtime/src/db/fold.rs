//! The fold task: tails one log and folds its records into one state.
//!
//! Per batch of records: decode + upcast every record outside the lock, take the
//! state's write lock once, apply, release, then publish the last seq done
//! (which wakes `wait_for_seq`). Readers are blocked only while events are
//! applied, never while bytes are decoded or the log is read.
//!
//! The task ends when the Db asks it to stop at a seq (on close: after folding
//! everything appended before), when the Db is dropped, or when an event cannot
//! be folded under `FoldErrorPolicy::Stop`. However it ends, it publishes why,
//! so no waiter hangs.

use std::sync::Arc;

use foldkit_storage::{Log, Record, Tail};
use tokio::sync::watch;

use crate::Seq;
use crate::db::envelope::Envelope;
use crate::db::error::{FoldCause, FoldFailure};
use crate::db::handle::{FoldStatus, StateCell};
use crate::db::policy::FoldErrorPolicy;
use crate::event::Event;
use crate::state::{Meta, State};

/// The most records folded under one write lock.
const MAX_BATCH: usize = 1024;

/// Tells a fold task to stop: `Some(seq)` once it has folded up to `seq`.
/// Dropping the sender stops it at once.
pub(crate) type StopAt = watch::Sender<Option<Seq>>;

/// Starts folding `log` into `cell` from the seq after the cell's applied seq.
pub(crate) fn spawn<S: State>(
    cell: Arc<StateCell<S>>,
    log: &Log,
    policy: FoldErrorPolicy,
) -> (StopAt, tokio::task::JoinHandle<()>) {
    let from = cell.applied.load(std::sync::atomic::Ordering::Acquire) + 1;
    let tail = log.tail(from);
    let (stop, stop_rx) = watch::channel(None);
    let task = tokio::spawn(run(cell, tail, stop_rx, policy));
    (stop, task)
}

/// Marks the fold ended however the task exits (including a panic in `apply`).
struct EndGuard<S: State>(Arc<StateCell<S>>);

impl<S: State> Drop for EndGuard<S> {
    fn drop(&mut self) {
        let cell = &self.0;
        if std::thread::panicking() {
            let seq = cell.applied.load(std::sync::atomic::Ordering::Acquire) + 1;
            cell.publish_end(FoldStatus::Failed(Arc::new(failure(
                cell,
                seq,
                FoldCause::Panicked,
            ))));
        } else {
            cell.publish_end(FoldStatus::Stopped);
        }
    }
}

async fn run<S: State>(
    cell: Arc<StateCell<S>>,
    mut tail: Tail,
    mut stop: watch::Receiver<Option<Seq>>,
    policy: FoldErrorPolicy,
) {
    let guard = EndGuard(cell);
    let cell = &guard.0;
    loop {
        if let Some(target) = *stop.borrow_and_update()
            && cell.applied.load(std::sync::atomic::Ordering::Acquire) >= target
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
        let outcome = match batch {
            Ok(records) => fold_batch(cell, &records, policy),
            Err(source) => Err(failure(cell, tail.position(), FoldCause::Storage(source))),
        };
        if let Err(failed) = outcome {
            tracing::error!(state = S::NAME, log = %cell.log, seq = failed.seq, error = %failed.cause, "state stopped folding");
            cell.publish_end(FoldStatus::Failed(Arc::new(failed)));
            return;
        }
    }
}

/// Folds one batch. On a failure under `Stop`, the events before it stay applied
/// and published, and the failure is returned.
fn fold_batch<S: State>(
    cell: &StateCell<S>,
    records: &[Record],
    policy: FoldErrorPolicy,
) -> Result<(), FoldFailure> {
    let Some(last) = records.last() else {
        return Ok(());
    };
    let mut stopped = None;
    let mut decoded = Vec::with_capacity(records.len());
    for record in records {
        match decode::<S::Event>(record) {
            Ok(event) => decoded.push(event),
            Err(cause) => match policy {
                FoldErrorPolicy::LogAndContinue => skip(cell, record.seq, &cause),
                FoldErrorPolicy::Stop => {
                    stopped = Some(failure(cell, record.seq, cause));
                    break;
                }
            },
        }
    }
    let mut done = match &stopped {
        Some(failed) => failed.seq - 1,
        None => last.seq,
    };
    {
        let mut state = cell.value.write();
        for (event, meta) in decoded {
            if let Err(error) = state.apply_event(event, &meta) {
                let cause = FoldCause::Apply(error);
                match policy {
                    FoldErrorPolicy::LogAndContinue => skip(cell, meta.seq, &cause),
                    FoldErrorPolicy::Stop => {
                        done = meta.seq - 1;
                        stopped = Some(failure(cell, meta.seq, cause));
                        break;
                    }
                }
            }
        }
    }
    if done > cell.applied.load(std::sync::atomic::Ordering::Relaxed) {
        cell.publish_applied(done);
    }
    stopped.map_or(Ok(()), Err)
}

fn decode<E: Event>(record: &Record) -> Result<(E, Meta), FoldCause> {
    let envelope = Envelope::decode(&record.payload)?;
    let event = E::decode(envelope.version, envelope.body)?;
    let meta = Meta::new(record.seq, record.timestamp, envelope.version);
    Ok((event, meta.with_optional_stream_id(envelope.stream_id)))
}

fn skip<S: State>(cell: &StateCell<S>, seq: Seq, cause: &FoldCause) {
    cell.skipped
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!(state = S::NAME, log = %cell.log, seq, error = %cause, "skipping an event that cannot be folded");
}

fn failure<S: State>(cell: &StateCell<S>, seq: Seq, cause: FoldCause) -> FoldFailure {
    FoldFailure {
        state: S::NAME,
        log: cell.log.clone(),
        seq,
        cause,
    }
}
