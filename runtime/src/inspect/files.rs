//! Snapshots and checkpoints of a directory, listed and checked read-only.

use std::fs;
use std::path::{Path, PathBuf};

use super::{Directory, InspectError};
use crate::Seq;
use crate::snapshot::SnapshotHeader;
use crate::snapshot::codec;
use crate::store::file::files as store_files;

/// One snapshot file.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Snapshot {
    /// The state's name (from its directory name, unescaped).
    pub state: String,
    /// The position its file name gives.
    pub position: Seq,
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its header (framing and checksum checked), or why it is unusable.
    pub header: Result<SnapshotHeader, String>,
}

/// One subscription checkpoint.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Checkpoint {
    /// The subscription's name (from the file name, unescaped).
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// The position it records, or why it is unreadable.
    pub position: Result<Seq, String>,
}

/// Undoes the file store's name escaping (`%XX` for every byte but ASCII
/// letters, digits, `_` and `-`); a malformed escape is kept as it is.
pub(crate) fn unescape(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
                store_files::list_snapshots(&state_dir).map_err(|e| InspectError::Io {
                    op: "list",
                    path: state_dir.clone(),
                    source: std::io::Error::other(e.to_string()),
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
                let header = codec::read_header(&bytes)
                    .map(|(header, _)| header)
                    .map_err(|e| e.to_string());
                found.push(Snapshot {
                    state: state.clone(),
                    position,
                    path,
                    size: bytes.len() as u64,
                    header,
                });
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
                Ok(bytes) => {
                    store_files::decode_checkpoint(&path, &bytes).map_err(|e| e.to_string())
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => Err(e.to_string()),
            };
            found.push(Checkpoint {
                name,
                path,
                position,
            });
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::unescape;
    use crate::store::file::escape_name;

    #[test]
    fn unescape_undoes_the_store_escaping() {
        for name in ["Order_Book-2", "a:b", "../x", "ünï"] {
            assert_eq!(unescape(&escape_name("state", name).unwrap()), name);
        }
        assert_eq!(unescape("50%"), "50%");
    }
}
