//! Inspection through the store seam: the same questions of any
//! [`EventStore`] — a directory (as a [`DirectoryStore`](super::DirectoryStore)),
//! a PostgreSQL database, any other store — with no knowledge of the service's
//! types.
//!
//! Everything here only reads. Beside a running writer each answer is a
//! consistent prefix: snapshots and checkpoints are listed before the events
//! are scanned, so they never claim less than the scan shows.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use super::contents::{ExamineError, SnapshotContents, process_manager_of};
use super::files::{Checkpoint, Snapshot};
use super::verify::{Severity, VerifyReport, check_checkpoints, check_snapshot};
use crate::Seq;
use crate::process::DeadLetter;
use crate::snapshot::IdentityMismatch;
use crate::store::{EventStore, RecordedEvent, StoreError};

/// Events read from the store at a time.
const PAGE: usize = 4096;

/// A snapshot's position and what it holds (or why it is unusable).
type Examined = (Seq, Result<SnapshotContents, ExamineError>);

/// Every stored snapshot, by name then position (oldest first), each checked
/// (framing and CRC) but not decoded. A snapshot removed while listing (a
/// newer one replaced it) is left out.
///
/// # Cancel safety
///
/// Cancel-safe: it only reads.
pub async fn snapshots(store: &dyn EventStore) -> Result<Vec<Snapshot>, StoreError> {
    let mut found = Vec::new();
    for name in store.snapshot_names().await? {
        let mut positions = store.list_snapshots(&name).await?;
        positions.reverse();
        for position in positions {
            if let Some(bytes) = store.read_snapshot(&name, position).await? {
                found.push(Snapshot::of(name.clone(), position, None, &bytes));
            }
        }
    }
    Ok(found)
}

/// Every subscription checkpoint, by name (an unreadable one with why).
///
/// # Cancel safety
///
/// Cancel-safe: it only reads.
pub async fn checkpoints(store: &dyn EventStore) -> Result<Vec<Checkpoint>, StoreError> {
    let mut found = Vec::new();
    for name in store.checkpoint_names().await? {
        let position = match store.read_checkpoint(&name).await {
            Ok(Some(position)) => Ok(position),
            Ok(None) => continue, // removed meanwhile
            Err(source @ StoreError::Corrupt { .. }) => Err(ExamineError::Checkpoint {
                name: name.clone(),
                source: source.into(),
            }),
            Err(other) => return Err(other),
        };
        found.push(Checkpoint {
            name,
            path: None,
            position,
        });
    }
    Ok(found)
}

/// The dead letters of one process manager, from its newest usable snapshot.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ManagerDeadLetters {
    /// The manager's name.
    pub process_manager: String,
    /// The position of the snapshot read: the manager's checkpoint.
    pub checkpoint: Seq,
    /// Its parked reactions, by causing position; or why they cannot be read.
    pub letters: Result<Vec<DeadLetter>, ExamineError>,
    /// Newer snapshots that were unusable (the service restores the one read,
    /// as this does): their position and why.
    pub skipped: Vec<(Seq, ExamineError)>,
}

/// The dead letters of every process manager with a snapshot in `store`, by
/// manager name. Read as the service restores them: from the newest snapshot
/// that is usable.
///
/// # Cancel safety
///
/// Cancel-safe: it only reads.
pub async fn dead_letters(store: &dyn EventStore) -> Result<Vec<ManagerDeadLetters>, StoreError> {
    let mut found = Vec::new();
    for name in store.snapshot_names().await? {
        let Some(manager) = process_manager_of(&name) else {
            continue;
        };
        let mut examined = Vec::new();
        for position in store.list_snapshots(&name).await? {
            let Some(bytes) = store.read_snapshot(&name, position).await? else {
                continue; // removed meanwhile
            };
            let contents = super::examine(&name, position, &bytes);
            let usable = contents.is_ok();
            examined.push((position, contents));
            if usable {
                break; // what the service restores: older ones do not matter
            }
        }
        found.extend(pick(manager, examined));
    }
    Ok(found)
}

/// [`dead_letters`] from snapshots already read (e.g. by [`snapshots`]).
pub fn dead_letters_in(snapshots: &[Snapshot]) -> Vec<ManagerDeadLetters> {
    let mut by_manager: BTreeMap<&str, Vec<Examined>> = BTreeMap::new();
    for snapshot in snapshots {
        if let Some(manager) = process_manager_of(&snapshot.state) {
            by_manager
                .entry(manager)
                .or_default()
                .push((snapshot.position, snapshot.contents.clone()));
        }
    }
    by_manager
        .into_iter()
        .filter_map(|(manager, mut examined)| {
            examined.sort_by_key(|(position, _)| std::cmp::Reverse(*position)); // newest first
            pick(manager, examined)
        })
        .collect()
}

/// The dead letters of the newest usable snapshot of `examined` (newest
/// first), as the service restores it; the unusable newer ones as skipped.
fn pick(manager: &str, examined: Vec<Examined>) -> Option<ManagerDeadLetters> {
    let mut skipped = Vec::new();
    for (position, contents) in examined {
        let letters = match contents {
            Ok(SnapshotContents::ProcessManager {
                mut dead_letters, ..
            }) => {
                dead_letters.sort_by_key(|l| (l.id.causation, l.id.index));
                dead_letters
            }
            Ok(SnapshotContents::State(_)) => {
                let name = format!("{}{manager}", crate::process::persist::SNAPSHOT_PREFIX);
                skipped.push((position, ExamineError::NotAManager { name, position }));
                continue;
            }
            Err(reason) => {
                skipped.push((position, reason));
                continue;
            }
        };
        return Some(ManagerDeadLetters {
            process_manager: manager.to_owned(),
            checkpoint: position,
            letters: Ok(letters),
            skipped,
        });
    }
    let (checkpoint, reason) = skipped.first().cloned()?;
    Some(ManagerDeadLetters {
        process_manager: manager.to_owned(),
        checkpoint,
        letters: Err(reason),
        skipped,
    })
}

/// The event at `position`, if the store holds it (a dead letter's cause).
///
/// # Cancel safety
///
/// Cancel-safe: it only reads.
pub async fn event_at(
    store: &dyn EventStore,
    position: Seq,
) -> Result<Option<RecordedEvent>, StoreError> {
    match store.read(position, 1).await {
        Ok(events) => Ok(events.into_iter().next().filter(|e| e.position == position)),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(error) => Err(error),
    }
}

/// What the events of a store add up to.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Summary {
    /// The first position read.
    pub first_position: Option<Seq>,
    /// The last position read.
    pub last_position: Option<Seq>,
    /// Events read.
    pub events: u64,
    /// Events per type name.
    pub event_types: BTreeMap<String, u64>,
    /// Streams seen.
    pub streams: usize,
}

/// Reads every event (in pages) and counts them by type and stream. Stops at
/// damage with the error ([`StoreError::Corrupt`]).
///
/// # Cancel safety
///
/// Cancel-safe: it only reads.
pub async fn summary(store: &dyn EventStore) -> Result<Summary, StoreError> {
    let mut summary = Summary::default();
    let mut streams: HashMap<std::sync::Arc<str>, ()> = HashMap::new();
    let mut from = 1;
    loop {
        let page = store.read(from, PAGE).await?;
        let Some(last) = page.last().map(|e| e.position) else {
            break;
        };
        for event in &page {
            summary.first_position.get_or_insert(event.position);
            summary.events += 1;
            *summary
                .event_types
                .entry(event.name.to_string())
                .or_default() += 1;
            if let Some(stream) = &event.stream {
                streams.entry(stream.id.clone()).or_default();
            }
        }
        summary.last_position = Some(last);
        from = last + 1;
    }
    summary.streams = streams.len();
    Ok(summary)
}

/// The checks of [`Directory::verify`](super::Directory::verify) that apply
/// to any store: every event readable, every stream's versions 1, 2, .. in
/// position order, the hash chain (where the store keeps one), every snapshot
/// (framing, checksum, name, position, and the record it covers), every
/// checkpoint, every process manager's dead letters. There are no segments and
/// no stream index file: `segments`, `bytes` and `index_checked` stay empty.
///
/// # Cancel safety
///
/// Cancel-safe: it only reads.
pub async fn verify_store(store: &dyn EventStore) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport::default();
    // Before the events: beside a writer these never cover less than the scan.
    let snapshots = snapshots(store).await?;
    let checkpoints = checkpoints(store).await?;
    let mut versions: HashMap<std::sync::Arc<str>, u64> = HashMap::new();
    let mut complete = true;
    let mut from = 1;
    loop {
        let page = match store.read(from, PAGE).await {
            Ok(page) => page,
            Err(StoreError::Corrupt { what, reason }) => {
                complete = false;
                report.problem(
                    Severity::Error,
                    PathBuf::from(what),
                    None,
                    format!("corrupt: {reason} (nothing after it was checked)"),
                );
                break;
            }
            Err(other) => return Err(other),
        };
        let Some(last) = page.last().map(|e| e.position) else {
            break;
        };
        for event in &page {
            report.first_position.get_or_insert(event.position);
            report.records += 1;
            *report
                .event_types
                .entry(event.name.to_string())
                .or_default() += 1;
            if let Some(stream) = &event.stream {
                let seen = versions.entry(stream.id.clone()).or_default();
                if stream.version != *seen + 1 {
                    report.problem(
                        Severity::Error,
                        PathBuf::from(format!("event {}", event.position)),
                        None,
                        format!(
                            "the event at position {} is version {} of stream `{}`, expected {}",
                            event.position,
                            stream.version,
                            stream.id,
                            *seen + 1
                        ),
                    );
                }
                *seen = stream.version;
            }
        }
        report.last_position = Some(last);
        from = last + 1;
    }
    report.streams = versions.len();
    let last = report.last_position.unwrap_or(0);
    let first = report.first_position.unwrap_or(1);

    match store.verify_chain().await {
        Ok(chain) => report.chain = chain.head.map(|head| (chain.checked, head)),
        Err(StoreError::Corrupt { what, reason }) => {
            report.problem(Severity::Error, PathBuf::from(what), None, reason);
        }
        Err(other) => return Err(other),
    }

    report.snapshots = snapshots.len();
    for snapshot in &snapshots {
        let Some(header) = check_snapshot(&mut report, snapshot, last, complete) else {
            continue;
        };
        let (Some(seq), Some(expected)) = (header.seq, header.last) else {
            continue;
        };
        let why = match expected.check(store).await {
            Ok(()) => continue,
            Err(IdentityMismatch::Missing { .. }) if seq > last && complete => format!(
                "covers position {seq}, past the log's end ({last}): a lost tail, or a writer ahead of this check"
            ),
            Err(IdentityMismatch::Missing { .. }) if seq < first => {
                format!("at position {seq}: that event was compacted away, so it cannot be checked")
            }
            Err(IdentityMismatch::Missing { .. }) if !complete => continue,
            Err(mismatch) => format!(
                "at position {seq} belongs to another history of the log ({mismatch}): the Db ignores it"
            ),
        };
        report.problem(
            Severity::Warning,
            snapshot.place(),
            None,
            format!("snapshot of `{}` {why}", header.name),
        );
    }
    check_checkpoints(&mut report, &checkpoints, last, complete);
    Ok(report)
}
