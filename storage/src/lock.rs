//! One writer per directory: an OS file lock on `<dir>/LOCK`, held while the log
//! is open. It fails at once (no waiting) whether the other writer is in this
//! process or another, and the OS releases it if the process dies.
//!
//! It is a `flock`-style lock: a child forked while the log is open holds a copy
//! of the descriptor until it execs (std opens files close-on-exec), so a reopen
//! racing with a fork elsewhere in the process can see `Locked` for that instant.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use crate::error::StorageError;

/// The held lock; dropping it releases the directory.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, StorageError> {
        let path = dir.join("LOCK");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StorageError::io("open lock file", &path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(StorageError::Locked {
                path: dir.to_path_buf(),
            }),
            Err(TryLockError::Error(e)) => Err(StorageError::io("lock", &path, e)),
        }
    }
}
