//! `Handle<S>`: a cheap, cloneable view of one folded state.
//!
//! The state lives in a [`StateCell`] shared by the fold task (the only writer)
//! and every handle (readers). The fold publishes how far it got through a
//! `watch` channel; `wait_for_seq` waits on it, and later watch streams will
//! subscribe to the same channel.

use std::any::Any;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{RwLock, RwLockReadGuard};
use tokio::sync::watch;

use crate::Seq;
use crate::db::error::{DbError, FoldFailure};
use crate::db::fold::{self, Folder};
use crate::snapshot::{LastRecord, RecordIdentity};
use crate::state::State;
use crate::watch::Routes;

/// No hold: the fold may go on as far as the log goes.
pub(crate) const NO_HOLD: Seq = Seq::MAX;

/// Where a fold is: the last seq it is done with, and whether it still runs.
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    /// The last seq applied (or skipped); 0 before the first event.
    pub(crate) applied: Seq,
    pub(crate) status: FoldStatus,
}

/// Whether a fold still advances.
#[derive(Debug, Clone)]
pub(crate) enum FoldStatus {
    Running,
    /// Stopped at a failed event (`FoldErrorPolicy::Stop`, a storage error, a panic).
    Failed(Arc<FoldFailure>),
    /// Stopped because the Db was closed or dropped.
    Stopped,
}

/// The shared home of one state: the value, and the fold's progress.
///
/// Invariant: only a folder (holding `Folder::lock`) writes `value`, `applied`,
/// `last`, `skipped` and `progress`; `applied` and `last` change together under
/// the write lock of `value`, so a reader holding the read lock sees a value,
/// an applied position and the identity of the record there that agree
/// (snapshots rely on it); `applied` equals `progress.borrow().applied` once a
/// batch is published (it is the lock-free fast path of `wait_for_seq`).
pub(crate) struct StateCell<S> {
    /// What folding needs: the store, the policy, the lock that makes one folder at a time.
    pub(crate) folder: Folder,
    pub(crate) value: RwLock<S>,
    pub(crate) applied: AtomicU64,
    /// The record at `applied` (`None` before the first), whose identity a
    /// snapshot computes when it needs it.
    pub(crate) last: parking_lot::Mutex<Option<LastRecord>>,
    /// The fold goes no further than this position ([`NO_HOLD`]: no limit): how
    /// a bundle takes one consistent cut across states.
    pub(crate) hold: watch::Sender<Seq>,
    pub(crate) skipped: AtomicU64,
    pub(crate) progress: watch::Sender<Progress>,
    /// The watched tables: the fold wakes their watchers after each batch.
    pub(crate) watch: Routes<S>,
    /// Wakes the fold task when an appender could not fold its batch inline
    /// (see `fold::after_append`).
    pub(crate) kick: tokio::sync::Notify,
    /// The fold's gauges.
    pub(crate) metrics: crate::observability::FoldMetrics,
}

impl<S: State> StateCell<S> {
    /// A cell holding `value`, which already reflects every event up to `applied`
    /// (0 for a fresh state; a snapshot's seq when restored).
    pub(crate) fn new(
        folder: Folder,
        value: S,
        applied: Seq,
        last: Option<RecordIdentity>,
    ) -> Self {
        Self {
            folder,
            value: RwLock::new(value),
            applied: AtomicU64::new(applied),
            last: parking_lot::Mutex::new(last.map(LastRecord::Known)),
            metrics: crate::observability::FoldMetrics::register(S::NAME),
            hold: watch::Sender::new(NO_HOLD),
            skipped: AtomicU64::new(0),
            progress: watch::Sender::new(Progress {
                applied,
                status: FoldStatus::Running,
            }),
            watch: Routes::default(),
            kick: tokio::sync::Notify::new(),
        }
    }

    /// Publishes that every event up to `seq` has been folded, waking waiters.
    pub(crate) fn publish_applied(&self, seq: Seq) {
        self.applied.store(seq, Ordering::Release);
        // Without receivers no one waits (the value is still updated): a
        // receiver subscribes before it reads the value, under the channel's
        // lock, so it either sees this seq or is counted here and woken.
        self.progress.send_if_modified(|p| {
            p.applied = seq;
            self.progress.receiver_count() > 0
        });
    }

    /// Publishes that the fold ended, waking waiters. A failure is kept over a
    /// later plain stop.
    pub(crate) fn publish_end(&self, status: FoldStatus) {
        self.progress.send_modify(|p| {
            if matches!(p.status, FoldStatus::Running) {
                p.status = status;
            }
        });
        self.watch.end();
    }
}

/// The type-erased face of a registered state, so the Db can hold every state in
/// one map (`TypeId` → slot) and shut them down, snapshot them, ... uniformly.
pub(crate) trait StateSlot: Any + Send + Sync {
    /// The state's stable name.
    fn name(&self) -> &'static str;
    /// The last seq folded, 0 before the first.
    fn applied_seq(&self) -> Seq;
    /// Drops the state's handle on the store (the Db is closing).
    fn release_store(&self);
    /// The state as a snapshot blob, with the seq it reflects.
    fn encode_snapshot(&self) -> Result<(Vec<u8>, Option<Seq>), crate::snapshot::SnapshotError>;
    /// The state as a snapshot, streamed to `out`, with the seq it reflects and its size.
    fn encode_snapshot_to(
        &self,
        out: &mut dyn std::io::Write,
    ) -> Result<(Option<Seq>, u64), crate::snapshot::codec::EncodeToError>;
    /// The background snapshot write still running, if any (for `close` to await).
    fn take_pending_write(&self) -> Option<tokio::task::JoinHandle<()>>;
    /// Limits the fold to positions up to `seq` ([`NO_HOLD`]: no limit).
    fn hold_at(&self, seq: Seq);
    /// Waits until the fold has no batch in flight (takes and drops its lock).
    fn barrier(&self);
    /// Waits until the state has folded up to `seq`.
    fn wait_for(&self, seq: Seq) -> futures::future::BoxFuture<'_, Result<(), DbError>>;
    /// The store the state folds from (`None` once the Db is closed).
    fn store(&self) -> Option<Arc<dyn crate::store::EventStore>>;
    /// How many snapshots of this state to keep.
    fn keep_snapshots(&self) -> usize;
    /// The Db appended `appended` to its own file store: fold it now or wake the task.
    fn after_append(
        &self,
        appended: &crate::store::Appended,
        records: Option<&[crate::store::RecordedEvent]>,
    );
}

impl<S: State> StateSlot for StateCell<S> {
    fn name(&self) -> &'static str {
        S::NAME
    }

    fn applied_seq(&self) -> Seq {
        self.applied.load(Ordering::Acquire)
    }

    fn release_store(&self) {
        self.folder.release_store();
    }

    fn encode_snapshot(&self) -> Result<(Vec<u8>, Option<Seq>), crate::snapshot::SnapshotError> {
        crate::db::snapshots::encode(self)
    }

    fn encode_snapshot_to(
        &self,
        out: &mut dyn std::io::Write,
    ) -> Result<(Option<Seq>, u64), crate::snapshot::codec::EncodeToError> {
        crate::db::snapshots::encode_to(self, out)
    }

    fn take_pending_write(&self) -> Option<tokio::task::JoinHandle<()>> {
        self.folder.pending_write.lock().take()
    }

    fn hold_at(&self, seq: Seq) {
        self.hold.send_replace(seq);
    }

    fn barrier(&self) {
        drop(self.folder.lock.lock());
    }

    fn wait_for(&self, seq: Seq) -> futures::future::BoxFuture<'_, Result<(), DbError>> {
        Box::pin(wait_for_seq(self, seq))
    }

    fn store(&self) -> Option<Arc<dyn crate::store::EventStore>> {
        self.folder.store()
    }

    fn keep_snapshots(&self) -> usize {
        self.folder.snapshots.keep()
    }

    fn after_append(
        &self,
        appended: &crate::store::Appended,
        records: Option<&[crate::store::RecordedEvent]>,
    ) {
        fold::after_append(self, appended, records);
    }
}

/// A handle on the state `S` of a [`Db`](super::Db): read it, wait for it to catch up.
///
/// Cloning is cheap (an `Arc`). A handle stays readable after the Db is closed;
/// it then holds the state as it was at close.
///
/// ```
/// use foldkit::prelude::*;
///
/// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
/// enum Ev { Add(u64) }
///
/// #[derive(State, Default, Serialize, Deserialize)]
/// #[state(event = Ev)]
/// struct Sum { total: u64 }
///
/// impl Apply<Ev> for Sum {
///     fn apply(&mut self, Ev::Add(n): Ev, _: &Meta) -> Result<(), FoldError> {
///         self.total += n;
///         Ok(())
///     }
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// # let dir = tempfile::tempdir()?;
/// let db = Db::builder(dir.path()).state::<Sum>().open().await?;
/// let first = db.append(Ev::Add(2)).await?;
/// let last = db.append(Ev::Add(3)).await?;
/// let sum = db.state::<Sum>();
/// sum.wait_for_seq(last).await?; // read your writes
/// assert_eq!(sum.read().total, 5); // a short read guard: never hold it across `.await`
/// assert_eq!(sum.applied_seq(), Some(last));
/// assert_eq!(sum.state_at(first).await?.total, 2); // time travel
/// # db.close().await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct Handle<S> {
    pub(crate) cell: Arc<StateCell<S>>,
}

impl<S> Clone for Handle<S> {
    fn clone(&self) -> Self {
        Self {
            cell: Arc::clone(&self.cell),
        }
    }
}

impl<S: State> fmt::Debug for Handle<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("state", &S::NAME)
            .field("applied_seq", &self.applied_seq())
            .finish()
    }
}

impl<S: State> Handle<S> {
    pub(crate) fn new(cell: Arc<StateCell<S>>) -> Self {
        Self { cell }
    }

    /// A read guard over the state. The fold waits while guards are held (it
    /// takes the write lock once per batch), so keep them short and never hold
    /// one across an `.await`.
    pub fn read(&self) -> ReadGuard<'_, S> {
        ReadGuard(self.cell.value.read())
    }

    /// The seq of the last event folded into the state (applied or skipped),
    /// `None` before the first.
    pub fn applied_seq(&self) -> Option<Seq> {
        Some(self.cell.applied.load(Ordering::Acquire)).filter(|&seq| seq > 0)
    }

    /// How many events were skipped under [`FoldErrorPolicy::LogAndContinue`](super::FoldErrorPolicy).
    pub fn skipped_events(&self) -> u64 {
        self.cell.skipped.load(Ordering::Relaxed)
    }

    /// Why the state stopped advancing, if it did.
    pub fn failure(&self) -> Option<Arc<FoldFailure>> {
        match &self.cell.progress.borrow().status {
            FoldStatus::Failed(failure) => Some(Arc::clone(failure)),
            FoldStatus::Running | FoldStatus::Stopped => None,
        }
    }

    /// Waits until the state has folded every event up to position `seq`: after
    /// `let seq = db.append(e).await?`, `wait_for_seq(seq)` makes the state reflect `e`
    /// (read-your-writes).
    ///
    /// Returns at once when `seq` is already folded. When `seq` is only a few
    /// events ahead and no one else is folding, the caller folds them itself
    /// (saving two task wake-ups); otherwise it waits for the fold task. Returns
    /// [`DbError::Fold`] when the fold stopped at a failed event at or before `seq`,
    /// and [`DbError::Closed`] when the Db closes before reaching `seq`: it never
    /// hangs on a stopped fold. `seq` is any position of the Db's log: a state
    /// advances past the events of types it does not fold.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future only stops the wait. (A waiter that was
    /// folding finishes the batch it had started before it returns.)
    pub async fn wait_for_seq(&self, seq: Seq) -> Result<(), DbError> {
        wait_for_seq(&self.cell, seq).await
    }
}

/// `Handle::wait_for_seq`, for a cell.
async fn wait_for_seq<S: State>(cell: &StateCell<S>, seq: Seq) -> Result<(), DbError> {
    if cell.applied.load(Ordering::Acquire) >= seq || fold::help(cell, seq) {
        return Ok(());
    }
    let mut progress = cell.progress.subscribe();
    loop {
        {
            let now = progress.borrow_and_update();
            if now.applied >= seq {
                return Ok(());
            }
            match &now.status {
                FoldStatus::Running => {}
                FoldStatus::Failed(failure) => return Err(DbError::Fold(Arc::clone(failure))),
                FoldStatus::Stopped => return Err(DbError::Closed),
            }
        }
        // The sender lives in the cell, which the caller keeps alive.
        if progress.changed().await.is_err() {
            return Err(DbError::Closed);
        }
    }
}

/// A read guard over a state: derefs to `S`. Returned by [`Handle::read`].
pub struct ReadGuard<'a, S>(RwLockReadGuard<'a, S>);

impl<S> Deref for ReadGuard<'_, S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.0
    }
}

impl<S: fmt::Debug> fmt::Debug for ReadGuard<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}
