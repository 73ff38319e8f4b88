//! Read-only inspection of a store: what the `foldkit` command line tool
//! shows, usable from code too.
//!
//! Two layers:
//!
//! - **Through the store seam** ([`snapshots`], [`checkpoints`],
//!   [`dead_letters`], [`summary`], [`verify_store`], and reading events with
//!   [`EventStore::read`](crate::EventStore::read) and `tail`): the same code
//!   for every store, knowing none of the service's types. A PostgreSQL
//!   database is inspected through a `PgStore` opened read-only; a directory
//!   through [`Directory::store`], a read-only [`DirectoryStore`].
//! - **The files of a directory** ([`Directory`]): what only a directory has
//!   — segments and their bytes, a torn tail, frame checksums, the stream
//!   index file — checked by [`Directory::verify`].
//!
//! A running service holds its directory's lock; inspecting it must neither
//! wait for that lock nor change a byte. [`Directory`] and [`DirectoryStore`]
//! therefore never open a [`FileStore`](crate::FileStore) or a
//! [`Log`](crate::storage::Log): they read the files as they are, through
//! [`foldkit_storage::inspect::scan`] (which reports a torn tail instead of
//! cutting it), and parse the envelopes, snapshots, stream index and
//! checkpoints with the same code the runtime uses. Beside a writer they see
//! a consistent prefix of the log.
//!
//! A process manager's snapshot keeps its dead letters ahead of its state (see
//! [`crate::process`]), so [`dead_letters`] reads them without the manager's
//! types.
//!
//! [`Directory`]'s methods do blocking file I/O; [`DirectoryStore`] runs its
//! file I/O on tokio's blocking pool.

mod contents;
mod dirstore;
mod events;
mod files;
mod stored;
mod verify;

use std::path::{Path, PathBuf};

pub use contents::{ExamineError, SnapshotContents, examine, process_manager_of};
pub use dirstore::{DirectoryStore, WINDOW_BYTES};
pub use events::{EventFilter, InspectedEvent};
pub use files::{Checkpoint, Snapshot};
pub use stored::{
    ManagerDeadLetters, Summary, checkpoints, dead_letters, dead_letters_in, event_at, snapshots,
    summary, verify_store,
};
pub use verify::{Problem, Severity, VerifyReport};

use crate::store::file::FORMAT_VERSION;

/// Why a directory cannot be inspected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InspectError {
    /// The path does not exist or is not a directory.
    #[error("`{}` is not a directory", path.display())]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The directory holds neither a `FORMAT` file nor a `log/` directory.
    #[error("`{}` is not a foldkit directory (no FORMAT file and no log/)", path.display())]
    NotFoldkit {
        /// The path given.
        path: PathBuf,
    },
    /// The `FORMAT` file names a format this build does not read.
    #[error(
        "`{}` has directory format {found}; this build reads format {FORMAT_VERSION}{}",
        path.display(),
        if *found > FORMAT_VERSION { " (written by a newer foldkit: use a newer `foldkit` tool)" } else { "" }
    )]
    Format {
        /// The directory.
        path: PathBuf,
        /// The format it declares.
        found: u32,
    },
    /// The `FORMAT` file is not `foldkit-format N`.
    #[error("`{}` is not a foldkit FORMAT file: found {found:?}", path.display())]
    BadFormatFile {
        /// The FORMAT file.
        path: PathBuf,
        /// Its first line.
        found: String,
    },
    /// A file could not be read, or the log directory holds a file that is not a segment's.
    #[error("cannot read the log")]
    Storage(#[from] foldkit_storage::StorageError),
    /// The file store's own reader failed on a file or directory (listing a
    /// state's snapshots, ..).
    #[error("cannot {op} `{}`", path.display())]
    Store {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The store's error.
        #[source]
        source: crate::store::StoreError,
    },
    /// A file could not be read.
    #[error("cannot {op} `{}`", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A file-store directory, opened read-only (no lock, nothing written).
#[derive(Debug, Clone)]
pub struct Directory {
    root: PathBuf,
    format: u32,
}

impl Directory {
    /// Checks that `dir` is a foldkit directory of this build's format.
    pub fn open(dir: impl AsRef<Path>) -> Result<Directory, InspectError> {
        let root = dir.as_ref().to_path_buf();
        if !root.is_dir() {
            return Err(InspectError::NotADirectory { path: root });
        }
        let format_path = root.join("FORMAT");
        let format = match std::fs::read(&format_path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let line = text.lines().next().unwrap_or("").trim().to_owned();
                line.strip_prefix("foldkit-format ")
                    .and_then(|v| v.parse::<u32>().ok())
                    .ok_or(InspectError::BadFormatFile {
                        path: format_path,
                        found: line.chars().take(80).collect(),
                    })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if root.join("logs").is_dir() {
                    1
                } else if root.join("log").is_dir() {
                    FORMAT_VERSION
                } else {
                    return Err(InspectError::NotFoldkit { path: root });
                }
            }
            Err(source) => {
                return Err(InspectError::Io {
                    op: "read",
                    path: format_path,
                    source,
                });
            }
        };
        if format != FORMAT_VERSION {
            return Err(InspectError::Format {
                path: root,
                found: format,
            });
        }
        Ok(Directory { root, format })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Its format version.
    pub fn format(&self) -> u32 {
        self.format
    }

    /// The log directory (`log/`).
    pub fn log_dir(&self) -> PathBuf {
        self.root.join("log")
    }

    /// The stream index file (`streams.idx`).
    pub fn index_path(&self) -> PathBuf {
        self.root.join("streams.idx")
    }

    /// Whether the log directory exists (a Db that never appended may lack it).
    fn has_log(&self) -> bool {
        self.log_dir().is_dir()
    }
}

/// Formats a chain hash as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
