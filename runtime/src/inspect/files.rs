//! Snapshots and checkpoints of a directory, listed and checked read-only.

use std::fs;
use std::path::{Path, PathBuf};

use super::contents::{ExamineError, SnapshotContents, examine};
use super::{Directory, InspectError};
use crate::Seq;
use crate::store::file::files as store_files;
use crate::store::file::unescape_name as unescape;

/// One stored snapshot.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Snapshot {
    /// The name it is stored under: a state's name, or
    /// `process-manager.<NAME>` (see [`process_manager_of`](super::process_manager_of)).
    pub state: String,
    /// Its position in the store.
    pub position: Seq,
    /// The file, when the store is a directory.
    pub path: Option<PathBuf>,
    /// Its size in bytes.
    pub size: u64,
    /// What it holds (framing and checksum checked), or why it is unusable.
    pub contents: Result<SnapshotContents, ExamineError>,
}

impl Snapshot {
    /// Reads what `bytes`, stored as `state`'s snapshot at `position`, hold.
    pub(crate) fn of(state: String, position: Seq, path: Option<PathBuf>, bytes: &[u8]) -> Self {
        Snapshot {
            contents: examine(&state, position, bytes),
            state,
            position,
            path,
            size: bytes.len() as u64,
        }
    }

    /// Where it is, for messages: the file, or `snapshot <name>@<position>`.
    pub fn place(&self) -> PathBuf {
        self.path
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("snapshot {}@{}", self.state, self.position)))
    }
}

/// One subscription checkpoint.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Checkpoint {
    /// The subscription's name.
    pub name: String,
    /// The file, when the store is a directory.
    pub path: Option<PathBuf>,
    /// The position it records, or why it is unreadable.
    pub position: Result<Seq, ExamineError>,
}

impl Checkpoint {
    /// Where it is, for messages: the file, or `checkpoint <name>`.
    pub fn place(&self) -> PathBuf {
        self.path
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("checkpoint {}", self.name)))
    }
}

fn entries(dir: &Path) -> Result<Vec<PathBuf>, InspectError> {
    let read = match fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(InspectError::Io {
                op: "list",
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut paths = Vec::new();
    for entry in read {
        let entry = entry.map_err(|source| InspectError::Io {
            op: "list",
            path: dir.to_path_buf(),
            source,
        })?;
        paths.push(entry.path());
    }
    paths.sort();
    Ok(paths)
}

impl Directory {
    /// The file of `state`'s snapshot at `position` (whether or not it exists);
    /// `None` for a name the file store cannot store.
    pub fn snapshot_file(&self, state: &str, position: Seq) -> Option<PathBuf> {
        let escaped = crate::store::file::escape_name("state name", state).ok()?;
        Some(store_files::snapshot_path(
            &self.root.join("snapshots").join(escaped),
            position,
        ))
    }

    /// The checkpoint file of subscription `name` (whether or not it exists).
    pub fn checkpoint_file(&self, name: &str) -> Option<PathBuf> {
        store_files::checkpoint_path(&self.root.join("checkpoints"), name).ok()
    }

    /// Every snapshot, by state then position (oldest first), each checked
    /// (framing and CRC) but not decoded.
    pub fn snapshots(&self) -> Result<Vec<Snapshot>, InspectError> {
        let mut found = Vec::new();
        for state_dir in entries(&self.root.join("snapshots"))? {
            if !state_dir.is_dir() {
                continue;
            }
            let state = unescape(&state_dir.file_name().unwrap_or_default().to_string_lossy());
            let mut positions =
                store_files::list_snapshots(&state_dir).map_err(|source| InspectError::Store {
                    op: "list the snapshots in",
                    path: state_dir.clone(),
                    source,
                })?;
            positions.reverse();
            for position in positions {
                let path = store_files::snapshot_path(&state_dir, position);
                let bytes = match fs::read(&path) {
                    Ok(bytes) => bytes,
                    // Removed meanwhile by the running Db (a newer one replaced it).
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(source) => {
                        return Err(InspectError::Io {
                            op: "read",
                            path,
                            source,
                        });
                    }
                };
                found.push(Snapshot::of(state.clone(), position, Some(path), &bytes));
            }
        }
        Ok(found)
    }

    /// Every subscription checkpoint, by name.
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>, InspectError> {
        let mut found = Vec::new();
        for path in entries(&self.root.join("checkpoints"))? {
            if path.extension().is_none_or(|e| e != "ckpt") {
                continue;
            }
            let name = unescape(&path.file_stem().unwrap_or_default().to_string_lossy());
            let position = match fs::read(&path) {
                Ok(bytes) => store_files::decode_checkpoint(&path, &bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => Err(store_files::io_error("read", &path, e)),
            }
            .map_err(|source| ExamineError::Checkpoint {
                name: name.clone(),
                source: source.into(),
            });
            found.push(Checkpoint {
                name,
                path: Some(path),
                position,
            });
        }
        Ok(found)
    }
}
