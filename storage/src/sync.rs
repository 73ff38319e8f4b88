//! Durability: the log's sync thread (writes, group commit, segment rolls, the
//! background flush and the `Interval` fsync).
//!
//! Every write and fsync of a log's segment files runs on one dedicated thread,
//! never on a tokio worker. An appender that fills the write buffer hands it
//! off (`State::hand_off`: it joins a queue, and stays readable in the memory
//! window) and asks the thread to write it (`SyncState::request_write`); the
//! thread writes the queue outside the state lock, so a `write` held up by the
//! OS (dirty-page throttling) stalls neither a worker nor the other appenders.
//! Only when 1 MiB is unwritten (`memory::MAX_UNWRITTEN`) does an appender wait,
//! asynchronously, for the thread's next write (`SyncState::write_watch`).
//! An appender that needs its record durable publishes "I need seq N durable"
//! (`SyncState::request`) and awaits the `status` watch; the thread wakes,
//! flushes the write buffer, fsyncs the active segment and publishes the synced
//! seq (or the error that poisons the log). Appenders arriving during an fsync
//! raise the requested seq; the next round covers all of them, so N concurrent
//! appenders share ~2 fsyncs.
//!
//! Why a thread and not a leader elected among the appenders: an appender's
//! future may be dropped at any await point (a client disconnects). Here an
//! appender owns nothing but its watch receiver: dropping it leaves at most a
//! request the thread serves anyway. Nothing has to be cleaned up.
//!
//! Segment rolls run here too: the appender that finds the active segment full
//! marks the log `rolling` and waits (asynchronously) like any appender arriving
//! meanwhile; the thread writes the buffer to the full segment, fsyncs it,
//! creates the next segment (its header and the directory fsynced), installs it
//! and publishes the roll. So a record is reported synced only once its own
//! segment file is fsynced, and a new segment's directory entry is durable
//! before any record is written to it: only the last segment can have a torn
//! tail.
//!
//! A failed write or fsync poisons the log: the error is published, every waiter
//! wakes with it, and later appends return it.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use crate::Seq;
use crate::error::StorageError;
use crate::log::Inner;
use crate::options::{FsyncHook, FsyncPolicy};

/// What the sync thread has published.
#[derive(Debug, Clone, Default)]
pub(crate) struct Status {
    /// Every record up to this seq is durable.
    synced: Seq,
    /// The failure that poisoned the log, if any.
    failed: Option<StorageError>,
    /// Segment rolls finished: appenders waiting for a roll wait for a change.
    rolls: u64,
    /// Mark requests served: a closing log waits for a change.
    marks: u64,
}

/// Work asked of the sync thread.
#[derive(Debug, Default)]
struct Requests {
    /// The highest seq some caller needs durable.
    sync_to: Seq,
    /// An appender found the active segment full.
    roll: bool,
    /// An appender handed buffers off: write the queue.
    write: bool,
    /// A closing log asks for the synced mark (see `crate::synced`).
    mark: bool,
    /// The log is closed or dropped: the thread ends.
    stop: bool,
}

#[derive(Default)]
struct Wake {
    requests: Mutex<Requests>,
    signal: Condvar,
    /// Appends that wait for an fsync, counted under the state lock when the
    /// record goes in (see `gather`).
    arrived: AtomicU64,
}

impl Wake {
    /// Asks the thread for work: `change` edits the requests under their lock
    /// and says whether the thread must wake for it; it is then woken with the
    /// lock released. Every request goes through here, so none can change the
    /// requests without the wake-up the thread's loop relies on.
    fn ask(&self, change: impl FnOnce(&mut Requests) -> bool) {
        let wake = change(&mut self.requests.lock());
        if wake {
            self.signal.notify_one();
        }
    }
}

/// The longest a round waits for the callers the previous round served to
/// come back with their next record (see `gather`).
const GATHER: Duration = Duration::from_micros(100);

/// The shared state between the log, its callers and its sync thread.
pub(crate) struct SyncState {
    status: watch::Sender<Status>,
    /// Writes of the queue finished (or failed): appenders waiting for room
    /// under the bound of unwritten bytes wait for a change. Apart from
    /// `status`, so that writes do not wake the appenders waiting for an fsync.
    written: watch::Sender<u64>,
    wake: Arc<Wake>,
}

impl Status {
    /// Mark requests served so far.
    pub(crate) fn marks(&self) -> u64 {
        self.marks
    }
}

impl SyncState {
    pub(crate) fn new(synced: Seq) -> Self {
        Self {
            status: watch::Sender::new(Status {
                synced,
                ..Status::default()
            }),
            written: watch::Sender::new(0),
            wake: Arc::default(),
        }
    }

    /// Records that everything up to `seq` is durable.
    fn mark_synced(&self, seq: Seq) {
        self.status.send_if_modified(|s| {
            let changed = seq > s.synced;
            s.synced = s.synced.max(seq);
            changed
        });
    }

    fn fail(&self, error: StorageError) {
        self.status.send_modify(|s| {
            s.failed.get_or_insert(error);
        });
    }

    fn rolled(&self) {
        self.status.send_modify(|s| s.rolls += 1);
    }

    /// Counts an append that will wait for an fsync. Called under the state
    /// lock, with its record in.
    #[inline]
    pub(crate) fn arrive(&self) {
        self.wake.arrived.fetch_add(1, Ordering::Relaxed);
    }

    /// Asks the thread to make everything up to `seq` durable.
    fn request(&self, seq: Seq) {
        self.wake.ask(|requests| {
            let raised = seq > requests.sync_to;
            requests.sync_to = requests.sync_to.max(seq);
            raised
        });
    }

    /// Asks the thread to roll the active segment; returns a receiver that sees
    /// the roll's end (subscribed before the request, so it cannot miss it).
    /// Called under the state lock, with `State::rolling` set.
    pub(crate) fn request_roll(&self) -> watch::Receiver<Status> {
        let receiver = self.status.subscribe();
        self.wake.ask(|requests| {
            requests.roll = true;
            true
        });
        receiver
    }

    /// Asks the thread to write the queued buffers. Called under the state
    /// lock, after a hand-off.
    #[inline]
    pub(crate) fn request_write(&self) {
        self.wake
            .ask(|requests| !std::mem::replace(&mut requests.write, true));
    }

    /// Asks the thread to write the queued buffers; returns a receiver that sees
    /// the write's end (subscribed before the request, under the state lock,
    /// which the thread takes to record the write before publishing it).
    pub(crate) fn write_watch(&self) -> watch::Receiver<u64> {
        let receiver = self.written.subscribe();
        self.request_write();
        receiver
    }

    fn wrote(&self) {
        self.written.send_modify(|n| *n += 1);
    }

    /// A receiver that sees the end of the roll under way (called under the
    /// state lock, which the thread takes to end the roll before publishing it).
    pub(crate) fn roll_watch(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    /// Asks the thread to write the synced mark of the closed log (see
    /// `Inner::mark_now`); returns a receiver and the count of marks served
    /// before the request: the receiver sees the count pass it once it is done.
    pub(crate) fn request_mark(&self) -> (watch::Receiver<Status>, u64) {
        let receiver = self.status.subscribe();
        let before = receiver.borrow().marks;
        self.wake.ask(|requests| {
            requests.mark = true;
            true
        });
        (receiver, before)
    }

    /// Tells the thread to end (the log is closed or dropped); does not wait.
    pub(crate) fn stop(&self) {
        self.wake.ask(|requests| {
            requests.stop = true;
            true
        });
    }
}

/// fsyncs `file`, calling the test hook first.
pub(crate) fn fsync(
    file: &File,
    path: &Path,
    hook: Option<&FsyncHook>,
) -> Result<(), StorageError> {
    // Timed with the hook: a test hook that sleeps stands for a slow disk.
    let began = Instant::now();
    if let Some(hook) = hook {
        hook().map_err(|e| StorageError::io("fsync segment", path, e))?;
    }
    let synced = file.sync_data();
    crate::observe::fsynced(path, began);
    synced.map_err(|e| StorageError::io("fsync segment", path, e))
}

impl Inner {
    /// Returns once every record up to `seq` is durable, or the log is poisoned.
    ///
    /// Cancel safe: the request stays with the sync thread, which serves it
    /// whether or not anyone still waits.
    pub(crate) async fn sync_to(&self, seq: Seq) -> Result<(), StorageError> {
        let mut status = self.sync.status.subscribe();
        let mut requested = false;
        loop {
            {
                let now = status.borrow_and_update();
                if let Some(error) = &now.failed {
                    return Err(StorageError::Poisoned(Box::new(error.clone())));
                }
                if now.synced >= seq {
                    return Ok(());
                }
            }
            if !requested {
                self.sync.request(seq);
                requested = true;
            }
            if status.changed().await.is_err() {
                return Err(StorageError::Closed);
            }
        }
    }

    /// Writes the buffers queued now to the active segment, outside the state
    /// lock (on the sync thread, the only writer); records the write and wakes
    /// the appenders waiting for room. A failure poisons the log.
    fn write_queued(&self) -> Result<(), StorageError> {
        let Some(to) = self.state.lock().to_write() else {
            return Ok(());
        };
        let result = to.write(self.options.write_hook.as_ref());
        let recorded = self.state.lock().written(to, result);
        if let Err(error) = &recorded {
            self.sync.fail(error.clone());
        }
        self.sync.wrote();
        recorded
    }

    /// One round of group commit (on the sync thread): hand the buffer off,
    /// write the queue, fsync the active segment, publish up to which seq.
    /// Also returns how many waiting appends had arrived when the buffer was
    /// flushed (all of them are served by this round).
    fn sync_round(&self) -> (Seq, u64) {
        let (prepared, arrived) = {
            let mut st = self.state.lock();
            let arrived = self.sync.wake.arrived.load(Ordering::Relaxed);
            let prepared = st.prepare_sync();
            (prepared, arrived)
        };
        let result = prepared.and_then(|to| {
            self.write_queued()?;
            fsync(&to.file, &to.path, self.options.fsync_hook.as_ref()).map(|()| to.last)
        });
        (self.publish(result), arrived)
    }

    /// Publishes a round's outcome; a failure poisons the log. Returns the seq
    /// now known durable (0 after a failure: nothing more will be).
    fn publish(&self, result: Result<Seq, StorageError>) -> Seq {
        match result {
            Ok(target) => {
                self.sync.mark_synced(target);
                target
            }
            Err(error) => {
                self.poison(error);
                0
            }
        }
    }

    fn poison(&self, error: StorageError) {
        self.state.lock().poison(&error);
        self.sync.fail(error);
        self.sync.wrote();
    }

    /// Rolls the full active segment (on the sync thread): see the module docs.
    fn roll_now(&self) {
        let Some(prepared) = self.state.lock().take_roll() else {
            return;
        };
        if let Some(prepared) = prepared {
            let result = prepared.and_then(|to| {
                self.write_queued()?;
                fsync(&to.file, &to.path, self.options.fsync_hook.as_ref())?;
                let next = crate::segment::create(&self.dir, to.last + 1)?;
                Ok((to.last, next))
            });
            match result {
                Ok((last, file)) => {
                    self.install_segment(file);
                    self.sync.mark_synced(last);
                }
                Err(error) => {
                    self.state.lock().roll_failed(&error);
                    self.sync.fail(error);
                    self.sync.wrote();
                }
            }
        }
        self.sync.rolled();
    }

    /// Writes the synced mark of a closed log whose every record is durable (on
    /// the sync thread, after every round it ran: see `State::to_mark`), so that
    /// the next open need not fsync; then publishes that it is done.
    fn mark_now(&self) {
        let to_mark = self.state.lock().to_mark();
        if let Some((first_seq, file)) = to_mark
            && let Some(mark) = crate::synced::Mark::of(first_seq, &file)
            && mark.record(&self.dir)
        {
            self.state.lock().set_marked();
        }
        self.sync.status.send_modify(|s| s.marks += 1);
    }

    /// The background work when no caller waits: buffered records to the OS,
    /// and an fsync when `fsync_now` (the `Interval` policy) and any is unsynced.
    fn background_flush(&self, fsync_now: bool) {
        let unsynced = {
            let mut st = self.state.lock();
            if st.is_poisoned() {
                return;
            }
            st.hand_off();
            st.has_unsynced()
        };
        // A failure poisons the log; appenders will report it.
        let _ = self.write_queued();
        if fsync_now && unsynced {
            let _ = self.sync_round();
        }
    }
}

/// The log's sync thread. It holds the log weakly and ends when the log is
/// closed or dropped.
pub(crate) struct Syncer {
    wake: Arc<Wake>,
    thread: JoinHandle<()>,
}

/// How often buffered records are handed to the OS (every policy but `Always`,
/// whose fsync rounds hand them over).
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(50);

impl Syncer {
    pub(crate) fn start(inner: &Arc<Inner>) -> Result<Syncer, StorageError> {
        let weak: Weak<Inner> = Arc::downgrade(inner);
        let wake = Arc::clone(&inner.sync.wake);
        let policy = inner.options.fsync;
        let interval = match policy {
            FsyncPolicy::Interval(d) => Some(d.max(Duration::from_millis(1))),
            _ => None,
        };
        let tick = match policy {
            FsyncPolicy::Always => None,
            _ => Some(interval.map_or(FLUSH_EVERY, |d| d.min(FLUSH_EVERY))),
        };
        let synced = inner.sync.status.borrow().synced;
        let thread_wake = Arc::clone(&wake);
        let thread = std::thread::Builder::new()
            .name("foldkit-log-sync".into())
            .spawn(move || run(&weak, &thread_wake, tick, interval, synced))
            .map_err(|e| StorageError::io("start the sync thread for", &inner.dir, e))?;
        Ok(Syncer { wake, thread })
    }

    /// Asks the thread to end; does not wait for it.
    pub(crate) fn stop(self) {
        self.wake.ask(|requests| {
            requests.stop = true;
            true
        });
        drop(self.thread);
    }
}

/// Before a round: waits (at most [`GATHER`]) until the waiting appends
/// counted reach `until` (the last round's mark plus as many as it served), so
/// that the appenders the last round woke, which append their next record
/// right away, share this round's fsync instead of each waiting one round more
/// (the leader of the old group commit yielded once for the same reason). A
/// lone appender never waits (it is the one expected); when fewer come back,
/// the next round expects only those.
fn gather(wake: &Wake, requests: &mut parking_lot::MutexGuard<'_, Requests>, until: u64) {
    let deadline = Instant::now() + GATHER;
    while wake.arrived.load(Ordering::Relaxed) < until && !requests.stop {
        if wake.signal.wait_until(requests, deadline).timed_out() {
            return;
        }
    }
}

/// The sync thread's loop: serve rolls and sync requests as they come, flush
/// (and fsync under `Interval`) on the tick.
fn run(
    weak: &Weak<Inner>,
    wake: &Wake,
    tick: Option<Duration>,
    interval: Option<Duration>,
    mut synced: Seq,
) {
    let mut last_fsync = Instant::now();
    let mut next_tick = tick.map(|t| Instant::now() + t);
    let mut failed = false;
    // Waiting appends arrived by the last round's flush, and how many that
    // round served: as many are expected back for the next one.
    let (mut mark, mut expected) = (0u64, 0u64);
    loop {
        let (sync_to, roll, write, write_mark) = {
            let mut requests = wake.requests.lock();
            loop {
                // A mark asked before the stop is served first (its close waits).
                if requests.stop && !requests.mark {
                    return;
                }
                if requests.roll
                    || requests.mark
                    || requests.write
                    || (!failed && requests.sync_to > synced)
                {
                    break;
                }
                match next_tick {
                    Some(at) => {
                        if Instant::now() >= at
                            || wake.signal.wait_until(&mut requests, at).timed_out()
                        {
                            break;
                        }
                    }
                    None => wake.signal.wait(&mut requests),
                }
            }
            if !failed && requests.sync_to > synced {
                gather(wake, &mut requests, mark.saturating_add(expected));
            }
            let roll = std::mem::take(&mut requests.roll);
            let write = std::mem::take(&mut requests.write);
            (
                requests.sync_to,
                roll,
                write,
                std::mem::take(&mut requests.mark),
            )
        };
        let Some(inner) = weak.upgrade() else { return };
        if write {
            // A failure poisons the log; appenders will report it.
            let _ = inner.write_queued();
        }
        if roll {
            inner.roll_now();
        }
        if !failed && sync_to > synced {
            let (now_synced, arrived) = inner.sync_round();
            synced = synced.max(now_synced);
            expected = arrived.saturating_sub(mark);
            mark = arrived;
        }
        if write_mark {
            inner.mark_now();
        }
        if let (Some(t), Some(at)) = (tick, next_tick)
            && Instant::now() >= at
        {
            let fsync_now = interval.is_some_and(|d| last_fsync.elapsed() >= d);
            inner.background_flush(fsync_now);
            if fsync_now {
                last_fsync = Instant::now();
            }
            next_tick = Some(Instant::now() + t);
        }
        let status = inner.sync.status.borrow();
        failed = status.failed.is_some();
        synced = synced.max(status.synced);
    }
}
