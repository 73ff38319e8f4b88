//! Small files of the file store: snapshots and checkpoints, written atomically.
//!
//! Every file is complete or absent: written to `*.tmp`, fsynced, renamed into
//! place, and the directory fsynced. Checkpoints carry a CRC32C so a damaged one
//! is reported, never read as a wrong position. These run on the blocking pool.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::Seq;
use crate::store::StoreError;

const SNAPSHOT_EXT: &str = "snap";
const CHECKPOINT_EXT: &str = "ckpt";

pub(crate) fn io_error(action: &str, path: &Path, error: io::Error) -> StoreError {
    StoreError::backend(format!("{action} {}", path.display()), error)
}

/// Writes `bytes` to `path` atomically (tmp, fsync, rename, fsync dir).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| io_error("create directory", dir, e))?;
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(|e| io_error("create", &tmp, e))?;
    file.write_all(bytes)
        .map_err(|e| io_error("write", &tmp, e))?;
    file.sync_all().map_err(|e| io_error("fsync", &tmp, e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| io_error("rename", &tmp, e))?;
    sync_dir(dir)
}

/// Writes what `source` produces to a new temporary file in `dir` (named by `nonce`,
/// unique among concurrent writes), through `source`'s own bounded buffer, and fsyncs it;
/// returns the file and the position `source` returned. The caller commits it with
/// [`commit`] once that position is durable; on an error the file is removed.
pub(crate) fn write_tmp(
    dir: &Path,
    nonce: u64,
    source: crate::store::SnapshotSource,
) -> Result<(PathBuf, Seq), StoreError> {
    fs::create_dir_all(dir).map_err(|e| io_error("create directory", dir, e))?;
    let tmp = dir.join(format!("streaming-{nonce}.tmp"));
    let written = File::create(&tmp)
        .map_err(|e| io_error("create", &tmp, e))
        .and_then(|mut file| {
            let position = source(&mut file).map_err(|e| io_error("write", &tmp, e))?;
            file.sync_all().map_err(|e| io_error("fsync", &tmp, e))?;
            Ok(position)
        });
    match written {
        Ok(position) => Ok((tmp, position)),
        Err(error) => {
            let _ = fs::remove_file(&tmp); // nothing to keep; the error says what failed
            Err(error)
        }
    }
}

/// Removes the streamed snapshots' temporary files that a crash left in the state
/// directories under `snapshots` (called at open, under the store's lock, so no write is
/// running): they were never committed, and nothing else removes them. Returns whether
/// `snapshots` exists.
pub(crate) fn remove_stale_streams(snapshots: &Path) -> Result<bool, StoreError> {
    let states = match fs::read_dir(snapshots) {
        Ok(states) => states,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_error("list", snapshots, e)),
    };
    for state in states {
        let state = state.map_err(|e| io_error("list", snapshots, e))?.path();
        let Ok(files) = fs::read_dir(&state) else {
            continue; // not a directory
        };
        for file in files {
            let path = file.map_err(|e| io_error("list", &state, e))?.path();
            let stale = path
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("streaming-") && name.ends_with(".tmp"));
            if stale {
                fs::remove_file(&path).map_err(|e| io_error("remove", &path, e))?;
            }
        }
    }
    Ok(true)
}

/// Renames the fsynced `tmp` into `path` and makes the rename durable.
pub(crate) fn commit(tmp: &Path, path: &Path) -> Result<(), StoreError> {
    fs::rename(tmp, path).map_err(|e| io_error("rename", tmp, e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Makes a rename or removal in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("fsync directory", dir, e))
}

/// The snapshot file of a state directory at `position`.
pub(crate) fn snapshot_path(state_dir: &Path, position: Seq) -> PathBuf {
    state_dir.join(format!("{position:020}.{SNAPSHOT_EXT}"))
}

/// The snapshot positions in `state_dir`, newest first; none if it is missing.
pub(crate) fn list_snapshots(state_dir: &Path) -> Result<Vec<Seq>, StoreError> {
    let entries = match fs::read_dir(state_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("list", state_dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| io_error("list", state_dir, e))?.path();
        if path.extension().is_some_and(|e| e == SNAPSHOT_EXT)
            && let Some(seq) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .filter(|s| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<Seq>().ok())
        {
            found.push(seq);
        }
    }
    found.sort_unstable_by(|a, b| b.cmp(a));
    Ok(found)
}

/// The names (unescaped) of the state directories under `snapshots` that
/// hold at least one snapshot, sorted.
pub(crate) fn snapshot_names(snapshots: &Path) -> Result<Vec<String>, StoreError> {
    let mut names = Vec::new();
    for path in list_dir(snapshots)? {
        if path.is_dir() && !list_snapshots(&path)?.is_empty() {
            names.push(file_name(&path, None));
        }
    }
    names.sort();
    Ok(names)
}

/// The names (unescaped) of the checkpoint files in `checkpoints`, sorted.
pub(crate) fn checkpoint_names(checkpoints: &Path) -> Result<Vec<String>, StoreError> {
    let mut names: Vec<String> = list_dir(checkpoints)?
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == CHECKPOINT_EXT))
        .map(|p| file_name(p, Some(CHECKPOINT_EXT)))
        .collect();
    names.sort();
    Ok(names)
}

/// The checkpoint file of `name` in `checkpoints` (the name escaped).
pub(crate) fn checkpoint_path(checkpoints: &Path, name: &str) -> Result<PathBuf, StoreError> {
    let escaped = super::escape_name("subscription name", name)?;
    Ok(checkpoints.join(format!("{escaped}.{CHECKPOINT_EXT}")))
}

/// The entries of `dir`, sorted; none if it is missing.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("list", dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        found.push(entry.map_err(|e| io_error("list", dir, e))?.path());
    }
    found.sort();
    Ok(found)
}

/// The unescaped name a file or directory stands for (without `ext`).
fn file_name(path: &Path, ext: Option<&str>) -> String {
    let name = match ext {
        Some(_) => path.file_stem(),
        None => path.file_name(),
    };
    super::names::unescape(&name.unwrap_or_default().to_string_lossy())
}

/// Reads a whole file, `None` if it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("read", path, e)),
    }
}

/// Removes a file; no error if it is already gone.
pub(crate) fn remove_optional(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(path.parent().unwrap_or(Path::new("."))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("remove", path, e)),
    }
}

/// A checkpoint file: the position (u64 LE) and a CRC32C of it.
pub(crate) fn encode_checkpoint(position: Seq) -> [u8; 12] {
    let mut out = [0; 12];
    out[..8].copy_from_slice(&position.to_le_bytes());
    let crc = crc32c::crc32c(&out[..8]);
    out[8..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a checkpoint file; a damaged one is `Corrupt`, naming the file.
pub(crate) fn decode_checkpoint(path: &Path, bytes: &[u8]) -> Result<Seq, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        what: format!("checkpoint {}", path.display()),
        reason: reason.to_owned(),
    };
    let bytes: &[u8; 12] = bytes.try_into().map_err(|_| corrupt("not 12 bytes long"))?;
    let (position, crc) = bytes.split_at(8);
    if crc32c::crc32c(position).to_le_bytes() != crc {
        return Err(corrupt("checksum mismatch"));
    }
    let mut le = [0; 8];
    le.copy_from_slice(position);
    Ok(Seq::from_le_bytes(le))
}
