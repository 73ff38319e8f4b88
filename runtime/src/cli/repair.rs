//! `repair`: the one writing command. Cuts a damaged log at its first bad
//! record, after copying every segment it changes aside and asking.
//!
//! Opening the log normally would not do: `Log::open` cuts a torn tail
//! silently and refuses damage before it. Here the operator sees what is
//! dropped (records and bytes) before anything changes, the damaged files are
//! kept as `<segment>.damaged-<unix time>` beside the log (ignored by it), and
//! the result is verified.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use foldkit_storage::StorageError;
use foldkit_storage::inspect::{self, RepairLock, ScanOptions};

use super::{CliError, Io, Outcome, out, verify};
use crate::inspect::Directory;

pub(crate) fn run(dir: &Path, yes: bool, json: bool, io: &mut Io<'_>) -> Result<Outcome, CliError> {
    let directory = Directory::open(dir)?;
    let _db_lock = lock_db(dir)?;
    let log_dir = directory.log_dir();
    let log_lock = RepairLock::acquire(&log_dir).map_err(|e| match e {
        StorageError::Locked { .. } => CliError::Locked {
            dir: dir.to_path_buf(),
        },
        other => CliError::Storage(other),
    })?;
    let scan = inspect::scan(&log_dir, &ScanOptions::default(), |_| true)?;
    let Some(damage) = scan.corruption.clone().or_else(|| scan.torn_tail.clone()) else {
        if !json {
            out!(io, "nothing to repair: every frame of the log is intact")?;
        }
        let report = directory.verify(|_, _| {})?;
        verify::print(&report, json, true, io)?;
        return Ok(if report.ok() {
            Outcome::Ok
        } else {
            Outcome::Failed
        });
    };

    // What the cut drops: the damaged segment's records after the damage
    // (known from the next segment's name), and every later segment.
    let all = inspect::segments(&log_dir)?;
    let at = all
        .iter()
        .position(|(_, p)| *p == damage.segment)
        .unwrap_or(all.len());
    let later: Vec<(u64, PathBuf)> = all.iter().skip(at + 1).cloned().collect();
    let kept_last = scan.last_seq.unwrap_or(0);
    let mut dropped = damage.dropped_records;
    if let Some((next_first, _)) = later.first() {
        dropped += next_first.saturating_sub(kept_last + 1);
    }
    for (i, (first, path)) in later.iter().enumerate() {
        dropped += match later.get(i + 1) {
            Some((next, _)) => next - first,
            None => inspect::count_records(path, *first)?,
        };
    }
    let later_bytes: u64 = later
        .iter()
        .filter_map(|(_, p)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let which = if scan.corruption.is_some() {
        "corrupt record"
    } else {
        "torn tail"
    };
    let _ = writeln!(
        io.err,
        "{which} in `{}` at byte offset {}: {}",
        damage.segment.display(),
        damage.offset,
        damage.reason
    );
    let _ = writeln!(
        io.err,
        "cutting the log there keeps positions up to {kept_last} and drops {dropped} record(s): {} byte(s) of that segment{}",
        damage.bytes,
        if later.is_empty() {
            String::new()
        } else {
            format!(
                " and {} later segment(s) of {later_bytes} bytes",
                later.len()
            )
        }
    );
    if !yes {
        let _ = write!(
            io.err,
            "copy the damaged segment(s) aside and cut the log? [y/N] "
        );
        let _ = io.err.flush();
        let mut answer = String::new();
        let _ = io.input.read_line(&mut answer);
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            let _ = writeln!(io.err, "not repaired: nothing was changed");
            return Ok(Outcome::Failed);
        }
    }

    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut kept = Vec::new();
    for path in std::iter::once(&damage.segment).chain(later.iter().map(|(_, p)| p)) {
        let mut copy = path.clone().into_os_string();
        copy.push(format!(".damaged-{stamp}"));
        let copy = PathBuf::from(copy);
        std::fs::copy(path, &copy).map_err(|source| CliError::Io {
            op: "copy aside",
            path: path.clone(),
            source,
        })?;
        File::open(&copy)
            .and_then(|f| f.sync_all())
            .map_err(|source| CliError::Io {
                op: "fsync",
                path: copy.clone(),
                source,
            })?;
        kept.push(copy);
    }
    log_lock.truncate(&damage.segment, damage.offset)?;
    // With `--json`, stdout holds only the verify report.
    let notes: &mut dyn std::io::Write = if json { &mut *io.err } else { &mut *io.out };
    for copy in &kept {
        writeln!(notes, "kept a copy: {}", copy.display()).map_err(CliError::Output)?;
    }
    writeln!(
        notes,
        "cut the log at `{}` offset {}: {dropped} record(s) dropped; the Db rebuilds its stream index and ignores snapshots past position {kept_last}",
        damage.segment.display(),
        damage.offset
    )
    .map_err(CliError::Output)?;
    let report = directory.verify(|_, _| {})?;
    verify::print(&report, json, true, io)?;
    Ok(if report.ok() {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}

/// The Db directory's own lock (the one a `FileStore` holds).
fn lock_db(dir: &Path) -> Result<File, CliError> {
    let path = dir.join("LOCK");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| CliError::Io {
            op: "open",
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(CliError::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(TryLockError::Error(source)) => Err(CliError::Io {
            op: "lock",
            path,
            source,
        }),
    }
}
