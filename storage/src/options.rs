//! How a log is configured: durability policy, segment size, record size limit.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// When appended records are made durable (fsynced).
///
/// Whatever the policy, [`Log::sync`](crate::Log::sync) and
/// [`Log::close`](crate::Log::close) make everything appended so far durable.
/// An append is *acknowledged* when it returns (for the two-step
/// [`Log::try_enqueue_batch`](crate::Log::try_enqueue_batch), when
/// [`Log::wait_durable`](crate::Log::wait_durable) returns).
///
/// Two failures differ in what they lose. A **process kill** (`kill -9`, a
/// panic that aborts, an OOM kill) loses only what is still in the log's
/// user-space write buffer: the OS keeps what it was handed. A **power loss or
/// OS crash** also loses what the OS held but had not written to the disk:
/// everything the last completed fsync did not cover.
///
/// | policy        | lost after a process kill, at most                                                   | lost after a power loss, at most                                               |
/// |---------------|--------------------------------------------------------------------------------------|--------------------------------------------------------------------------------|
/// | `Always`      | nothing acknowledged                                                                 | nothing acknowledged                                                           |
/// | `EveryN(n)`   | the buffer window¹ (≤ 1 MiB of frames, ~50 ms), at most `n - 1` records              | the last `n - 1` acknowledged records (`2 (n - 1)` with concurrent appenders)² |
/// | `Interval(d)` | the buffer window¹ (≤ 1 MiB of frames, ~`min(d, 50 ms)`)                             | the records of the last `d + min(d, 50 ms)`, plus the fsyncs' own time³        |
/// | `Never`       | the buffer window¹ (≤ 1 MiB of frames, ~50 ms)                                       | everything since the last `sync`, `close`, segment roll⁴ or `open`             |
///
/// ¹ The *buffer window*: under every policy but `Always`, an append is
/// acknowledged while its record may still be in the process's memory, not yet
/// handed to the OS: in the log's write buffer, or in a full buffer handed to
/// the log's sync thread and not yet written. Only the sync thread writes to the
/// segment files (never the appending task: a `write` the OS holds up, under
/// dirty-page throttling, stalls neither a tokio worker nor the other
/// appenders). An append that fills the buffer (to 64 KiB of frames; a frame
/// is a 32-byte header and the payload) hands it over; the thread writes the
/// buffers handed over as soon as 256 KiB are, all of them and the partly
/// filled buffer every 50 ms (every `d` under `Interval(d)` if
/// `d` is shorter), and everything before every fsync. The bytes not yet
/// written are bounded: an append that would bring them past **1 MiB of
/// frames** waits (asynchronously) for the sync thread's writes, and a batch
/// larger than that alone waits until nothing is unwritten. So a process kill
/// loses only records that are both
/// - among the newest 1 MiB of frames acknowledged (or the one larger batch),
///   and
/// - acknowledged in the last ~50 ms, or later than the last write the sync
///   thread could finish: its writes lag when the OS is slow to take them
///   (dirty-page throttling), while it runs an fsync (`EveryN`, `Interval`) or
///   a segment roll, or when a loaded machine keeps it from running.
///
/// Handing each record to the OS before acknowledging it would cost a `write`
/// system call per append instead of one per 64 KiB; call
/// [`Log::sync`](crate::Log::sync) (or use `Always`) where a record must
/// survive. An append that waits for an fsync (every one under `Always`, the
/// n-th under `EveryN(n)`) returns only once the sync thread has written
/// everything queued before it and fsynced it: what it acknowledges survives
/// both failures. Under `Always` no timer runs: a batch enqueued with
/// `try_enqueue_batch` and never awaited with `wait_durable` stays in the
/// buffer until the next fsync (any appender's) or 256 KiB are handed over.
///
/// ² The append that completes the n-th record since the last fsync waits for
/// an fsync covering it; the `n - 1` before it do not. While that fsync runs,
/// other appenders can have `n - 1` more acknowledged before the next n-th
/// record waits. `EveryN(0)` is read as `EveryN(1)`.
///
/// ³ An `Interval(d)` fsync begins on a tick of the timer (every
/// `min(d, 50 ms)`) once `d` has passed since the previous one ended, and only
/// if a record is unsynced; a power loss loses what was appended since the
/// last completed fsync began.
///
/// ⁴ A segment roll fsyncs the full segment, so sealed segments are durable.
///
/// What survives either failure is always a prefix of the log (seqs `1..=k`),
/// each record whole and unaltered, and a batch whole or not at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// Never fsync on append (only on `sync`, `close` and segment rolls).
    /// Records reach the OS within the buffer window (above).
    Never,
    /// fsync after every `n` records: the append that completes the n-th
    /// unsynced record waits for the fsync (and the others share it).
    /// Records reach the OS within the buffer window (above).
    EveryN(u64),
    /// fsync at least the interval apart (see ³ above), on the log's sync
    /// thread, while records are unsynced; appends never wait for it.
    /// Records reach the OS within the buffer window (above).
    Interval(Duration),
    /// Every append returns only once its record is durable. Concurrent appenders
    /// share one fsync (group commit). Nothing acknowledged is ever lost.
    #[default]
    Always,
}

impl FsyncPolicy {
    /// How many unsynced records make an append wait for an fsync: 1 under
    /// `Always`, `n` under `EveryN(n)`, never (`u64::MAX`) otherwise.
    #[inline]
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
    pub(crate) write_hook: Option<FsyncHook>,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            fsync: FsyncPolicy::default(),
            segment_size: 16 << 20,
            max_record_size: 16 << 20,
            fsync_hook: None,
            write_hook: None,
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
            .field("write_hook", &self.write_hook.is_some())
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

    /// The largest payload an append accepts (default 16 MiB). Clamped to
    /// `1..=1 GiB`: 0 is read as 1, and more than 1 GiB as 1 GiB (the frame's
    /// length is a `u32`, and a reader must be able to hold one record in memory).
    ///
    /// The limit applies to new appends only: records already in the log, written
    /// under a higher limit, stay readable after a reopen with a lower one.
    pub fn max_record_size(mut self, bytes: usize) -> Self {
        self.max_record_size = bytes.clamp(1, crate::frame::MAX_PAYLOAD);
        self
    }

    /// Test hook: called before every fsync; an error makes that fsync fail.
    #[doc(hidden)]
    pub fn fsync_hook(mut self, hook: FsyncHook) -> Self {
        self.fsync_hook = Some(hook);
        self
    }

    /// Test hook: called on the writing thread before every write of the log's
    /// buffers to a segment file; an error makes that write fail (and poisons
    /// the log).
    #[doc(hidden)]
    pub fn write_hook(mut self, hook: FsyncHook) -> Self {
        self.write_hook = Some(hook);
        self
    }
}
