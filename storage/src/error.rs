//! Storage errors: every failure names what was wrong and where.
//!
//! Each cause is shown once: a variant that wraps a cause (an OS error, the
//! failure that poisoned the log) returns it from `source()` and does not print
//! it in its `Display`, so a printed chain (`anyhow`'s `{:#}`, a report walking
//! `source()`) names every cause exactly once.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::Seq;

/// Why a log operation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// An I/O operation failed. The OS error is the [`source`](std::error::Error::source).
    #[error("{op} `{}` failed", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: Arc<io::Error>,
    },
    /// The disk (or quota) is full.
    #[error("disk full while {op} `{}`", path.display())]
    DiskFull {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
    },
    /// The log path exists and is not a directory.
    #[error("`{}` is not a directory", path.display())]
    NotADirectory {
        /// The path given to `Log::open`.
        path: PathBuf,
    },
    /// Another `Log` (in this process or another) has the directory open.
    #[error("log directory `{}` is already open by another writer", path.display())]
    Locked {
        /// The log directory.
        path: PathBuf,
    },
    /// A record before the tail is damaged: the log cannot be trusted past it.
    #[error("corrupt log: segment `{}` at byte offset {offset}: {reason}", segment.display())]
    Corrupt {
        /// The segment file.
        segment: PathBuf,
        /// The byte offset of the damaged record or header.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An earlier write or fsync failed: the log refuses further writes until
    /// reopened. That failure is the [`source`](std::error::Error::source).
    #[error("the log is poisoned by an earlier failure")]
    Poisoned(#[source] Box<StorageError>),
    /// A payload of zero bytes.
    #[error("empty payload: a record needs at least one byte")]
    EmptyPayload,
    /// A payload larger than the configured limit.
    #[error(
        "payload of {len} bytes exceeds the limit of {max} bytes (LogOptions::max_record_size)"
    )]
    PayloadTooLarge {
        /// The payload's size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A batch with no records.
    #[error("empty batch: append_batch needs at least one payload")]
    EmptyBatch,
    /// The seq is not in the log.
    #[error("seq {seq} is not in the log (first {first:?}, last {last:?})")]
    NotFound {
        /// The seq asked for.
        seq: Seq,
        /// The first seq in the log.
        first: Option<Seq>,
        /// The last seq in the log.
        last: Option<Seq>,
    },
    /// The log was closed.
    #[error("the log is closed")]
    Closed,
    /// A file read on tokio's blocking pool was cancelled before it ran: the
    /// runtime is shutting down.
    #[error("{op} `{}` was cancelled: the runtime is shutting down", path.display())]
    Cancelled {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
    },
}

impl StorageError {
    /// Wraps an I/O error, naming the operation and the path.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        if source.kind() == io::ErrorKind::StorageFull
            || source.kind() == io::ErrorKind::QuotaExceeded
        {
            return StorageError::DiskFull { op, path };
        }
        StorageError::Io {
            op,
            path,
            source: Arc::new(source),
        }
    }
}
