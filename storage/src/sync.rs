//! Durability: group commit for fsyncs, and the background flusher.
//!
//! Group commit: an appender that needs its record durable calls `sync_to(seq)`.
//! If no fsync is running it becomes the leader: it flushes the buffer, notes the
//! last seq written, fsyncs (on the blocking pool), and publishes the synced seq.
//! Appenders arriving meanwhile wait for that publication; those whose record was
//! not covered lead the next round. So N concurrent appenders share ~2 fsyncs.
//!
//! Ordering that prevents a lost wake-up: the leader clears its flag *before* it
//! publishes, so a follower that failed to become leader always sees a later
//! publication.
//!
//! A failed write or fsync poisons the log: the error is published, every waiter
//! wakes with it, and later appends return it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::Seq;
use crate::error::StorageError;
use crate::log::Inner;
use crate::options::{FsyncHook, FsyncPolicy};

#[derive(Debug, Clone, Default)]
struct Status {
    synced: Seq,
    failed: Option<StorageError>,
}

/// The shared state of group commit.
pub(crate) struct SyncState {
    status: watch::Sender<Status>,
    leader: AtomicBool,
}

impl SyncState {
    pub(crate) fn new(synced: Seq) -> Self {
        Self {
            status: watch::Sender::new(Status {
                synced,
                failed: None,
            }),
            leader: AtomicBool::new(false),
        }
    }

    /// Records that everything up to `seq` is durable.
    pub(crate) fn mark_synced(&self, seq: Seq) {
        self.status.send_modify(|s| s.synced = s.synced.max(seq));
    }

    fn fail(&self, error: StorageError) {
        self.status.send_modify(|s| {
            s.failed.get_or_insert(error);
        });
    }
}

/// fsyncs `file`, calling the test hook first.
pub(crate) fn fsync(
    file: &File,
    path: &Path,
    hook: Option<&FsyncHook>,
) -> Result<(), StorageError> {
    if let Some(hook) = hook {
        hook().map_err(|e| StorageError::io("fsync segment", path, e))?;
    }
    file.sync_data()
        .map_err(|e| StorageError::io("fsync segment", path, e))
}

impl Inner {
    /// Returns once every record up to `seq` is durable, or the log is poisoned.
    pub(crate) async fn sync_to(&self, seq: Seq) -> Result<(), StorageError> {
        let mut status = self.sync.status.subscribe();
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
            if self
                .sync
                .leader
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                // Let appenders woken by the previous round add their records first,
                // so this fsync covers as many of them as possible.
                tokio::task::yield_now().await;
                let result = self.lead_sync().await;
                self.sync.leader.store(false, Ordering::Release);
                match result {
                    Ok(synced) => self.sync.mark_synced(synced),
                    Err(error) => self.sync.fail(error),
                }
            } else if status.changed().await.is_err() {
                return Err(StorageError::Closed);
            }
        }
    }

    /// One round of group commit: flush, fsync, and say up to which seq.
    async fn lead_sync(&self) -> Result<Seq, StorageError> {
        let (file, path, target) = self.prepare_sync()?;
        let hook = self.options.fsync_hook.clone();
        let fsync_path = path.clone();
        let result = tokio::task::spawn_blocking(move || fsync(&file, &fsync_path, hook.as_ref()))
            .await
            .unwrap_or_else(|e| {
                Err(StorageError::io(
                    "fsync segment",
                    &path,
                    std::io::Error::other(e),
                ))
            });
        self.finish_sync(result, target)
    }

    /// Under the lock: flush the buffer; hand out the active file and the last seq.
    fn prepare_sync(&self) -> Result<(Arc<File>, PathBuf, Seq), StorageError> {
        let mut st = self.state.lock();
        st.flush()?;
        st.unsynced = 0;
        let path = st.active_segment_path().unwrap_or_default();
        Ok((Arc::clone(&st.active), path, st.next_seq - 1))
    }

    fn finish_sync(
        &self,
        result: Result<(), StorageError>,
        target: Seq,
    ) -> Result<Seq, StorageError> {
        match result {
            Ok(()) => Ok(target),
            Err(error) => {
                self.state
                    .lock()
                    .poison
                    .get_or_insert_with(|| error.clone());
                Err(error)
            }
        }
    }

    /// The flusher's work: buffered bytes to the OS, and an fsync when `fsync` is set.
    fn background_flush(&self, fsync_now: bool) {
        if !fsync_now {
            let mut st = self.state.lock();
            if st.poison.is_none() {
                // A failure poisons the log; appenders will report it.
                let _ = st.flush();
            }
            return;
        }
        let prepared = {
            let st = self.state.lock();
            st.unsynced > 0 && st.poison.is_none()
        };
        if !prepared {
            return;
        }
        let result = self.prepare_sync().and_then(|(file, path, target)| {
            let synced = fsync(&file, &path, self.options.fsync_hook.as_ref());
            self.finish_sync(synced, target)
        });
        match result {
            Ok(target) => self.sync.mark_synced(target),
            Err(error) => self.sync.fail(error),
        }
    }
}

/// A background thread that flushes the buffer (every policy but `Always`) and
/// fsyncs on a timer (`Interval`). It holds the log weakly and ends when the log is
/// closed or dropped.
pub(crate) struct Flusher {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// How often buffered records are handed to the OS.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

impl Flusher {
    pub(crate) fn start(inner: &Arc<Inner>) -> Result<Flusher, StorageError> {
        let weak: Weak<Inner> = Arc::downgrade(inner);
        let interval = match inner.options.fsync {
            FsyncPolicy::Interval(d) => Some(d.max(Duration::from_millis(1))),
            _ => None,
        };
        let tick = interval.map_or(FLUSH_EVERY, |d| d.min(FLUSH_EVERY));
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("foldkit-log-flusher".into())
            .spawn(move || {
                let mut last_fsync = Instant::now();
                loop {
                    std::thread::park_timeout(tick);
                    if stopped.load(Ordering::Acquire) {
                        return;
                    }
                    let Some(inner) = weak.upgrade() else { return };
                    let fsync_now = interval.is_some_and(|d| last_fsync.elapsed() >= d);
                    inner.background_flush(fsync_now);
                    if fsync_now {
                        last_fsync = Instant::now();
                    }
                }
            })
            .map_err(|e| StorageError::io("start the flusher thread for", &inner.dir, e))?;
        Ok(Flusher { stop, thread })
    }

    /// Asks the thread to end (it does within one tick); does not wait for it.
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::Release);
        self.thread.thread().unpark();
    }
}
