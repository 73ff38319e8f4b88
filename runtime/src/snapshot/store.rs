//! Snapshot files on disk: `<root>/<state>/<seq, 20 digits>.snap`, one directory per state.
//!
//! Invariants:
//! - A snapshot file is complete or absent: it is written to `*.tmp`, fsynced,
//!   renamed into place, and the directory is fsynced (so the rename is durable).
//! - Loading never trusts a file: each candidate, newest first, is decoded with the
//!   checks of [`codec::decode`]; a bad one is reported with
//!   `tracing::warn!` and the next older one is tried, then none (full replay).
//! - Only the newest `keep` snapshots of a state are kept.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::codec::{self, SnapshotError};
use super::identity::{IdentityMismatch, RecordIdentity};
use crate::{Seq, State};

const EXTENSION: &str = "snap";

/// An I/O failure while writing or listing snapshot files.
#[derive(Debug, thiserror::Error)]
#[error("snapshot store: cannot {action} `{path}`", path = path.display())]
pub struct SnapshotIoError {
    action: &'static str,
    path: PathBuf,
    #[source]
    source: io::Error,
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SnapshotIoError {
    let path = path.to_path_buf();
    move |source| SnapshotIoError {
        action,
        path,
        source,
    }
}

/// The snapshot files of one Db directory.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    root: PathBuf,
    keep: usize,
}

impl SnapshotStore {
    /// A store under `root` keeping the newest `keep` (at least 1) snapshots per state.
    pub fn new(root: impl Into<PathBuf>, keep: usize) -> Self {
        Self {
            root: root.into(),
            keep: keep.max(1),
        }
    }

    fn state_dir(&self, state: &str) -> PathBuf {
        self.root.join(dir_name(state))
    }

    /// Writes `blob` (from [`codec::encode`]) as the snapshot of `state` at `seq`,
    /// atomically, then drops snapshots beyond the newest `keep`.
    pub fn write(
        &self,
        state: &str,
        seq: Option<Seq>,
        blob: &[u8],
    ) -> Result<PathBuf, SnapshotIoError> {
        let dir = self.state_dir(state);
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let path = dir.join(format!("{:020}.{EXTENSION}", seq.unwrap_or(0)));
        let tmp = path.with_extension("tmp");
        let mut file = File::create(&tmp).map_err(io_err("create", &tmp))?;
        file.write_all(blob).map_err(io_err("write", &tmp))?;
        file.sync_all().map_err(io_err("fsync", &tmp))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
        sync_dir(&dir)?;
        self.prune(&dir)?;
        Ok(path)
    }

    /// The snapshot files of `state`, newest (highest seq) first.
    pub fn list(&self, state: &str) -> Result<Vec<(Seq, PathBuf)>, SnapshotIoError> {
        list_snapshots(&self.state_dir(state))
    }

    /// Loads the newest valid snapshot of `S` whose seq is at most `at_most`
    /// (any, when `None`). Invalid files are reported and skipped. The snapshot
    /// is not checked against a log: the runtime uses [`Self::load_newest_where`].
    pub fn load_newest<S: State>(
        &self,
        at_most: Option<Seq>,
    ) -> Result<Option<(S, Option<RecordIdentity>)>, SnapshotIoError> {
        self.load_newest_where(at_most, |_| Ok(()))
    }

    /// Like [`Self::load_newest`], but a snapshot is used only if `accept`
    /// admits the identity of its last record (`None`: it covers no record);
    /// one it refuses is reported with `tracing::warn!` and an older one is tried.
    pub fn load_newest_where<S: State>(
        &self,
        at_most: Option<Seq>,
        mut accept: impl FnMut(Option<&RecordIdentity>) -> Result<(), IdentityMismatch>,
    ) -> Result<Option<(S, Option<RecordIdentity>)>, SnapshotIoError> {
        for (seq, path) in self.list(S::NAME)? {
            if at_most.is_some_and(|max| seq > max) {
                continue;
            }
            let bytes = match fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "foldkit: cannot read snapshot; trying an older one");
                    continue;
                }
            };
            match codec::decode::<S>(&bytes) {
                Ok((state, last)) if last.map_or(0, |l| l.seq) == seq => {
                    match accept(last.as_ref()) {
                        Ok(()) => return Ok(Some((state, last))),
                        Err(mismatch) => {
                            tracing::warn!(state = S::NAME, seq, path = %path.display(), error = %crate::chain::Chain(&mismatch), "foldkit: ignoring a snapshot that does not match the log; trying an older one or a replay");
                        }
                    }
                }
                Ok(_) => warn_skip(
                    &path,
                    &SnapshotError::Malformed("file name and header disagree on the seq"),
                ),
                Err(e) => warn_skip(&path, &e),
            }
        }
        Ok(None)
    }

    fn prune(&self, dir: &Path) -> Result<(), SnapshotIoError> {
        let stale = list_snapshots(dir)?
            .into_iter()
            .skip(self.keep)
            .collect::<Vec<_>>();
        for (_, path) in &stale {
            match fs::remove_file(path) {
                // Another writer of the same state pruned it first.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                other => other.map_err(io_err("remove", path))?,
            }
        }
        if !stale.is_empty() {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

/// The `*.snap` files in `dir`, newest (highest seq) first; none if `dir` is missing.
fn list_snapshots(dir: &Path) -> Result<Vec<(Seq, PathBuf)>, SnapshotIoError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", dir)(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(io_err("list", dir))?.path();
        if path.extension().is_some_and(|e| e == EXTENSION)
            && let Some(seq) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<Seq>().ok())
        {
            found.push((seq, path));
        }
    }
    found.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    Ok(found)
}

fn warn_skip(path: &Path, error: &SnapshotError) {
    tracing::warn!(path = %path.display(), error = %crate::chain::Chain(error), "foldkit: skipping an unusable snapshot; trying an older one or a replay");
}

/// Makes a rename or removal in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), SnapshotIoError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

/// A directory name for a state name: safe characters kept, others hex-escaped.
fn dir_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}
