//! The log: appends under one short lock, reads through a per-segment index.
//!
//! The log is split by responsibility, each file keeping its own invariants:
//! - `state`: the mutable state under `Inner::state` (seqs, the write buffer,
//!   the segment indexes, poison and roll flags). Its fields are private: every
//!   invariant of the log's data is kept by its methods, written down there.
//! - `memory`: the window of the newest frames kept in memory for tails and
//!   recent reads, and the recycling of its allocations.
//! - `write`: `append`, `append_batch` and the two-step enqueue.
//! - `read`: single reads, ranges and the lookups tails make.
//! - this file: the handle, the shared `Inner`, and the lifecycle (open,
//!   sync, close, truncation, drop).
//!
//! Durability (fsyncs, segment rolls) runs on the log's sync thread: see
//! `crate::sync`.

mod memory;
mod read;
mod state;
mod write;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::Seq;
use crate::error::StorageError;
use crate::frame;
use crate::lock::DirLock;
use crate::options::LogOptions;
use crate::recovery::{self, RecoveryReport, SegmentIndex};
use crate::segment;
use crate::sidecar;
use crate::sync::{SyncState, Syncer};
use crate::synced;

use state::reserve_index;

pub(crate) use read::Look;
pub use read::Record;
pub(crate) use state::State;
pub use write::{Enqueue, Enqueued, RollWait};

/// A segmented, append-only log in a directory. Cheap to clone: clones share it.
#[derive(Clone)]
pub struct Log {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) options: LogOptions,
    report: RecoveryReport,
    pub(crate) state: Mutex<State>,
    /// Woken after an append (when a tail waits) and on close: tails wait on it.
    pub(crate) appended: Arc<Notify>,
    /// Tails waiting on `appended`. Appends skip the wake-up when it is 0. A tail
    /// counts itself in *before* it takes the state lock to look for records, and
    /// an append reads the count *under* the lock, after its record is in: the
    /// lock orders the two critical sections, so either the tail's look sees the
    /// record or the append sees the count. No wake-up is lost.
    pub(crate) waiting: std::sync::atomic::AtomicUsize,
    pub(crate) sync: SyncState,
    pub(crate) closed: AtomicBool,
    /// The last seq appended (0: none), stored under the state lock after each
    /// append: `last_seq` reads it without taking the lock the writers hold.
    pub(crate) last: AtomicU64,
    lock: Mutex<Option<DirLock>>,
    /// The sync thread, started by the first append (see `ensure_syncer`).
    syncer: Mutex<SyncerSlot>,
    /// Set once `syncer` has left `Idle`: the appends' fast check.
    syncer_started: AtomicBool,
}

/// Where the log's sync thread is.
enum SyncerSlot {
    /// Not started: nothing was appended since the open. A log opened only to
    /// read needs no thread (nothing to flush or fsync) and never starts one.
    Idle,
    Running(Syncer),
    /// Stopped by `close`: never started again.
    Stopped,
}

impl Log {
    /// Opens (creating if needed) the log in `dir`, recovering it: a torn tail is
    /// cut and reported in [`Log::recovery_report`]; corruption is an error.
    ///
    /// Fails at once if another `Log` has the directory open. The log's sync
    /// thread starts with the first append: a log opened only to read never
    /// starts one.
    ///
    /// Does file I/O (it reads and validates the last segment, may cut a torn
    /// tail, and fsyncs the last segment unless the synced mark shows that the
    /// last close's fsync covered it: see `synced`): call it from a blocking context
    /// (`tokio::task::spawn_blocking`), not from an async task.
    pub fn open(dir: impl AsRef<Path>, options: LogOptions) -> Result<Log, StorageError> {
        let dir = dir.as_ref().to_path_buf();
        if dir.exists() && !dir.is_dir() {
            return Err(StorageError::NotADirectory { path: dir });
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| StorageError::io("create log directory", &dir, e))?;
        let lock = DirLock::acquire(&dir)?;
        let began = std::time::Instant::now();
        let recovered = recovery::recover(&dir, frame::MAX_PAYLOAD)?;
        crate::observe::opened(&dir, &recovered.report, began);
        let mut segments = recovered.segments;
        let marked;
        let active = match segments.last() {
            Some(last) => {
                let file = segment::open_append(&last.path)?;
                // What the open finds is durable from here on (the `FsyncPolicy`
                // table counts an open), unless the last fsync covered it all.
                let mark = synced::Mark::of(last.first_seq, &file);
                if mark.as_ref().is_some_and(|m| m.is_recorded(&dir)) {
                    marked = true;
                } else {
                    let began = std::time::Instant::now();
                    let fsynced = file.sync_all();
                    crate::observe::fsynced(&last.path, began);
                    fsynced.map_err(|e| StorageError::io("fsync segment", &last.path, e))?;
                    marked = mark.is_some_and(|m| m.record(&dir));
                }
                file
            }
            None => {
                // Created, fsynced, and nothing written to it since.
                let file = segment::create(&dir, 1)?;
                marked = synced::Mark::of(1, &file).is_some_and(|m| m.record(&dir));
                segments.push(SegmentIndex::created(segment::path(&dir, 1), 1));
                file
            }
        };
        if let Some(active) = segments.last_mut() {
            reserve_index(active, options.segment_size);
        }
        let mut state = State::new(
            segments,
            active,
            &recovered.active_tail,
            recovered.last_timestamp,
        );
        drop(recovered.active_tail);
        if marked {
            state.set_marked();
        }
        let next_seq = state.next_seq();
        let inner = Arc::new(Inner {
            dir,
            report: recovered.report,
            state: Mutex::new(state),
            appended: Arc::new(Notify::new()),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            sync: SyncState::new(next_seq - 1),
            closed: AtomicBool::new(false),
            last: AtomicU64::new(next_seq - 1),
            lock: Mutex::new(Some(lock)),
            syncer: Mutex::new(SyncerSlot::Idle),
            syncer_started: AtomicBool::new(false),
            options,
        });
        Ok(Log { inner })
    }

    /// Starts the sync thread now instead of at the first append, for a log that is
    /// about to be written: the first append then does not wait for a thread to start
    /// (tens of microseconds). Does nothing if it runs or the log was closed; fails
    /// if the thread cannot be started. Blocking (it starts a thread): call it where
    /// [`Log::open`] is called.
    pub fn start_sync_thread(&self) -> Result<(), StorageError> {
        self.inner.ensure_syncer()
    }

    /// What recovery found and repaired when the log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Makes every record appended so far durable (the fsync runs on the log's
    /// sync thread).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a drop leaves nothing behind (the sync thread still makes the
    /// records durable; a later `sync` waits for that same fsync).
    pub async fn sync(&self) -> Result<(), StorageError> {
        let last = self.inner.state.lock().last_seq();
        match last {
            Some(seq) => self.inner.sync_to(seq).await,
            None => Ok(()),
        }
    }

    /// Refuses further appends, makes everything appended durable, ends tails
    /// once they have read everything, stops the sync thread and releases the
    /// directory. Closing a closed log returns at once (`Ok`, or the error that
    /// poisoned it).
    ///
    /// # Cancel safety
    ///
    /// A drop leaves the log closed to appends (tails end once drained, reads
    /// still work) with its final fsync (and the synced mark after it) requested
    /// (the sync thread still runs them), but the directory lock still held. Call `close` again to finish:
    /// it waits for that fsync, stops the sync thread and releases the lock.
    pub async fn close(&self) -> Result<(), StorageError> {
        let last = {
            let mut st = self.inner.state.lock();
            st.close()
        };
        // After `st.close()`: a tail that sees `closed` has every record appended.
        self.inner.closed.store(true, Ordering::Release);
        self.inner.appended.notify_waiters();
        let result = match last {
            Some(seq) => self.inner.sync_to(seq).await,
            None => Ok(()),
        };
        // Every record is durable and none comes after: the sync thread writes
        // the synced mark, so that the next open need not fsync. Asked under the
        // syncer's lock, so never after the thread was told to stop (it serves
        // a mark asked before the stop).
        let marking = result.is_ok() && !self.inner.state.lock().is_marked();
        let asked = marking
            .then(|| {
                let syncer = self.inner.syncer.lock();
                matches!(*syncer, SyncerSlot::Running(_)).then(|| self.inner.sync.request_mark())
            })
            .flatten();
        if let Some((mut done, before)) = asked {
            let _ = done.wait_for(|s| s.marks() > before).await;
        }
        // Only once the records are durable (or the log is poisoned): a close
        // dropped before this point leaves these steps to the next `close`.
        let syncer = std::mem::replace(&mut *self.inner.syncer.lock(), SyncerSlot::Stopped);
        self.inner.syncer_started.store(true, Ordering::Release);
        if let SyncerSlot::Running(syncer) = syncer {
            syncer.stop();
        }
        drop(self.inner.lock.lock().take());
        result
    }

    /// Removes the segments whose records all come before `seq` (never the active
    /// one). Returns how many segments were removed.
    ///
    /// Does file I/O (removals, a directory fsync): call it from a blocking
    /// context (`tokio::task::spawn_blocking`), not from an async task.
    ///
    /// A segment whose removal fails stays in the log (its records still read)
    /// and the error names it; the segments removed before it stay removed.
    pub fn truncate_before(&self, seq: Seq) -> Result<usize, StorageError> {
        let mut removed = 0;
        let result = loop {
            let removal = self.inner.state.lock().remove_oldest_before(seq, |path| {
                std::fs::remove_file(path)
                    .and_then(|()| sidecar::remove(path))
                    .map_err(|e| StorageError::io("remove segment", path, e))
            });
            match removal {
                Ok(true) => removed += 1,
                Ok(false) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if removed > 0 {
            segment::sync_dir(&self.inner.dir)?;
        }
        result.map(|()| removed)
    }
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.inner.dir)
            .field("last_seq", &self.last_seq())
            .field("fsync", &self.inner.options.fsync)
            .finish()
    }
}

impl Inner {
    /// Starts the sync thread unless it runs (or the log was closed): called by
    /// every append before it puts a record in, so that the thread runs before
    /// any record needs flushing, an fsync or a roll.
    #[inline]
    pub(crate) fn ensure_syncer(self: &Arc<Self>) -> Result<(), StorageError> {
        if self.syncer_started.load(Ordering::Acquire) {
            return Ok(());
        }
        self.start_syncer()
    }

    #[cold]
    fn start_syncer(self: &Arc<Self>) -> Result<(), StorageError> {
        let mut slot = self.syncer.lock();
        if matches!(*slot, SyncerSlot::Idle) {
            *slot = SyncerSlot::Running(Syncer::start(self)?);
        }
        self.syncer_started.store(true, Ordering::Release);
        Ok(())
    }

    /// Installs the segment the sync thread created for a roll (its header and
    /// the directory entry are durable): it becomes the active one and appends
    /// resume. Every earlier record is durable.
    /// Then writes the sealed segment's index file (outside the lock; a
    /// failure is only reported: the file is a cache, see `sidecar`).
    pub(crate) fn install_segment(&self, file: File) {
        let sealed = self
            .state
            .lock()
            .install_segment(&self.dir, file, self.options.segment_size);
        if let Some(sealed) = sealed
            && let Err(error) =
                sidecar::write(&sealed.path, sealed.expect, sealed.stride, &sealed.offsets)
        {
            tracing::warn!(segment = %sealed.path.display(), %error, "cannot write the segment's index file");
        }
    }

    /// Whether a tail waits for records. Called under the state lock, after the
    /// record is in: see `waiting` for why that loses no wake-up.
    #[inline]
    fn tails_waiting(&self) -> bool {
        self.waiting.load(Ordering::Acquire) > 0
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.sync.stop();
        // Best effort: hand buffered records to the OS (no fsync) on drop. The
        // sync thread is not writing (it holds the log while it works), and
        // never will again (it cannot upgrade its handle): this is the only
        // write not on it, on the thread dropping the last handle.
        let hook = self.options.write_hook.clone();
        self.state.get_mut().write_here(hook.as_ref());
    }
}
