//! How a log is configured: durability policy, segment size, record size limit.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// When appended records are made durable (fsynced).
///
/// Whatever the policy, [`Log::sync`](crate::Log::sync) and
/// [`Log::close`](crate::Log::close) make everything appended so far durable.
///
/// Two failures differ in what they lose. A **process kill** (`kill -9`, a
/// panic that aborts, an OOM kill) loses only what is still in the log's
/// user-space write buffer: the OS keeps what it was handed. A **power loss or
/// OS crash** also loses what the OS held but had not written to the disk:
/// everything since the last fsync.
///
/// | policy        | after a process kill                       | after a power loss                              |
/// |---------------|--------------------------------------------|-------------------------------------------------|
/// | `Always`      | nothing acknowledged                       | nothing acknowledged                            |
/// | `EveryN(n)`   | the records appended in the last ~50 ms¹   | up to the last `n - 1` acknowledged records      |
/// | `Interval(d)` | the records appended in the last ~50 ms¹   | the records of the last interval `d` (and ~50 ms)|
/// | `Never`       | the records appended in the last ~50 ms¹   | everything since the last `sync`/`close`/roll²   |
///
/// ¹ The *buffer window*: appends under every policy but `Always` acknowledge
/// records while they are still in the log's 64 KiB write buffer; the sync
/// thread hands the buffer to the OS every 50 ms (also when it fills, and at
/// every fsync). Up to 50 ms of acknowledged records (at most one buffer's
/// worth, 64 KiB) are therefore lost if the process dies. Handing each record to
/// the OS before acknowledging it would cost a `write` system call per append
/// instead of one per 64 KiB; call [`Log::sync`](crate::Log::sync) (or use
/// `Always`) where a record must survive.
///
/// ² A segment roll fsyncs the full segment, so sealed segments are durable.
///
/// What survives is always a prefix of the log (seqs `1..=k`), each record
/// whole and unaltered, and a batch whole or not at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// Never fsync on append (only on `sync`, `close` and segment rolls).
    /// Records reach the OS within the buffer window (above).
    Never,
    /// fsync after every `n` records: the append that completes the n-th
    /// unsynced record waits for the fsync (and the others share it).
    EveryN(u64),
    /// fsync every interval, on the log's sync thread.
    Interval(Duration),
    /// Every append returns only once its record is durable. Concurrent appenders
    /// share one fsync (group commit). Nothing acknowledged is ever lost.
    #[default]
    Always,
}

impl FsyncPolicy {
    /// How many unsynced records make an append wait for an fsync: 1 under
    /// `Always`, `n` under `EveryN(n)`, never (`u64::MAX`) otherwise.
    pub(crate) fn sync_after(self) -> u64 {
        match self {
            FsyncPolicy::Always => 1,
            FsyncPolicy::EveryN(n) => n.max(1),
            FsyncPolicy::Never | FsyncPolicy::Interval(_) => u64::MAX,
        }
    }
}

/// A test hook called before every fsync; an error it returns is treated as a
/// failed fsync.
#[doc(hidden)]
pub type FsyncHook = Arc<dyn Fn() -> io::Result<()> + Send + Sync>;

/// Options for [`Log::open`](crate::Log::open).
#[derive(Clone)]
#[must_use = "options do nothing until passed to `Log::open`"]
pub struct LogOptions {
    pub(crate) fsync: FsyncPolicy,
    pub(crate) segment_size: u64,
    pub(crate) max_record_size: usize,
    pub(crate) fsync_hook: Option<FsyncHook>,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            fsync: FsyncPolicy::default(),
            segment_size: 16 << 20,
            max_record_size: 16 << 20,
            fsync_hook: None,
        }
    }
}

impl fmt::Debug for LogOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogOptions")
            .field("fsync", &self.fsync)
            .field("segment_size", &self.segment_size)
            .field("max_record_size", &self.max_record_size)
            .field("fsync_hook", &self.fsync_hook.is_some())
            .finish()
    }
}

impl LogOptions {
    /// The durability policy (default [`FsyncPolicy::Always`]).
    pub fn fsync(mut self, policy: FsyncPolicy) -> Self {
        self.fsync = policy;
        self
    }

    /// The size at which a new segment file is started (default 16 MiB).
    /// Restart validates the active segment whole, so smaller segments mean
    /// faster restarts. A batch is never split across segments, so a segment may
    /// exceed it by one batch.
    ///
    /// Values below 4 KiB are clamped to 4 KiB (a segment must hold its header
    /// and at least a few records).
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes.max(4096);
        self
    }

    /// The largest payload accepted (default 16 MiB). Clamped to `1..=1 GiB`: 0
    /// is read as 1, and more than 1 GiB as 1 GiB (the frame's length is a
    /// `u32`, and a reader must be able to hold one record in memory).
    pub fn max_record_size(mut self, bytes: usize) -> Self {
        self.max_record_size = bytes.clamp(1, 1 << 30);
        self
    }

    /// Test hook: called before every fsync; an error makes that fsync fail.
    #[doc(hidden)]
    pub fn fsync_hook(mut self, hook: FsyncHook) -> Self {
        self.fsync_hook = Some(hook);
        self
    }
}
