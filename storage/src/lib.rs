//! Segmented, crash-safe, append-only log: the bytes every foldkit event lives in.
//!
//! This crate knows nothing of events: it stores opaque payloads under
//! increasing sequence numbers ([`Seq`], from 1), in segment files of one
//! directory, each record framed with its length, a CRC32C, its seq and a
//! timestamp. Its promises:
//!
//! - An acknowledged append is never lost or altered under the chosen
//!   [`FsyncPolicy`] (see each policy for what "acknowledged" covers);
//!   [`Log::sync`] and [`Log::close`] make everything durable.
//! - On reopen, a torn tail is cut and reported ([`RecoveryReport`]); damage
//!   before the tail is an error naming segment and offset
//!   ([`StorageError::Corrupt`]), never skipped: at open for the active segment,
//!   when read for a sealed one (every frame read is checked; a sealed segment
//!   without a valid index file, `<first seq>.idx`, is validated whole on its
//!   first read). A batch is recovered whole or not at all.
//! - One writer per directory (an OS file lock); a second open fails at once.
//! - A failed write or fsync poisons the log: later appends return the error.
//! - No write or fsync of a segment file runs on an appender: each log has a
//!   sync thread that writes the buffers appenders fill (64 KiB each, at most
//!   1 MiB unwritten: see the buffer window of [`FsyncPolicy`]) and does every
//!   fsync (group commit) and segment roll; the async methods await it. It
//!   starts with the first append (or [`Log::start_sync_thread`]): a log opened
//!   only to read runs none. (A log dropped without [`Log::close`] writes what it
//!   still holds on the thread that drops it, best effort: close it in async code.)
//!   The sync methods [`Log::open`], [`Log::read`], [`Log::range`] and
//!   [`Log::truncate_before`] do file I/O: call them from a blocking context.
//! - What an open finds is durable once it returns: it fsyncs the active
//!   segment, unless the synced mark (`SYNCED`, written after the close's
//!   fsync) shows that the segment is unchanged since an fsync covered it.
//! - Every async method of [`Log`] and [`Tail`] is cancel safe or says in its
//!   `# Cancel safety` section exactly what a drop leaves behind.
//! - A directory that was not written by this crate (names, headers, lengths)
//!   is an error naming the segment, never a panic or an allocation sized by
//!   what the disk claims.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use foldkit_storage::{FsyncPolicy, Log, LogOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let log = Log::open(dir.path(), LogOptions::default().fsync(FsyncPolicy::Always))?;
//! let seq = log.append(b"hello").await?;
//! let batch = log.append_batch(&[b"a", b"b"]).await?;
//! assert_eq!((seq, batch), (1, 2..=3));
//! assert_eq!(&*log.read(2)?.payload, b"a");
//! log.close().await?;
//!
//! let log = Log::open(dir.path(), LogOptions::default())?;
//! let all: Vec<_> = log.range(..)?.collect::<Result<_, _>>()?;
//! assert_eq!(all.len(), 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod active_scan;
mod clock;
mod error;
mod frame;
pub mod inspect;
mod lock;
mod log;
mod observe;
mod options;
mod recovery;
mod segment;
mod sidecar;
mod sync;
mod synced;
mod tail;

pub use error::StorageError;
pub use frame::crc32c_append;
pub use log::{Enqueue, Enqueued, Log, Record, RollWait};
pub use observe::SLOW_FSYNC;
pub use options::{FsyncHook, FsyncPolicy, LogOptions};
pub use recovery::RecoveryReport;
pub use tail::Tail;

/// A record's sequence number: assigned by the log, starting at 1, strictly increasing.
pub type Seq = u64;
