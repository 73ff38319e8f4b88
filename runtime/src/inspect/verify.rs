//! `verify`: every frame's checksum, every envelope, the hash chain, every
//! snapshot, the stream index and the checkpoints, checked against each other.
//!
//! A problem is an [`Severity::Error`] when bytes are damaged or two files
//! disagree in a way the runtime cannot repair by itself; it is a
//! [`Severity::Warning`] when the runtime copes at open (a torn tail is cut, a
//! stale index rebuilt, a snapshot of another history ignored) or when a
//! writer running beside the check explains it (a snapshot or index newer
//! than the part of the log the scan saw).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use foldkit_storage::StorageError;
use foldkit_storage::inspect::Damage;

use super::contents::SnapshotContents;
use super::files::{Checkpoint, Snapshot};
use super::{Directory, InspectError};
use crate::Seq;
use crate::snapshot::{RecordIdentity, SnapshotHeader};
use crate::store::file::HASH_LEN;
use crate::store::file::chain::Walk;
use crate::store::file::index::{Index, identity};

/// How bad a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The runtime copes with it at open, or a running writer explains it.
    Warning,
    /// Damage, or files that disagree: `verify` fails.
    Error,
}

/// One thing `verify` found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// How bad it is.
    pub severity: Severity,
    /// The file concerned; for a store that is not a directory, what is
    /// concerned (`snapshot Total@200`, `checkpoint mailer`, `event 17`).
    pub file: PathBuf,
    /// The byte offset in `file`, when the problem has one.
    pub offset: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

/// What [`Directory::verify`] found.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Valid records read.
    pub records: u64,
    /// Segment files.
    pub segments: usize,
    /// Bytes in the segment files.
    pub bytes: u64,
    /// The log's first position.
    pub first_position: Option<Seq>,
    /// The last valid position seen.
    pub last_position: Option<Seq>,
    /// Events per type name.
    pub event_types: BTreeMap<String, u64>,
    /// Streams seen in the log.
    pub streams: usize,
    /// Chained records checked and the head hash, when the log is hash-chained.
    pub chain: Option<(u64, [u8; HASH_LEN])>,
    /// Snapshot files checked.
    pub snapshots: usize,
    /// Whether a stream index file was checked.
    pub index_checked: bool,
    /// Checkpoint files checked.
    pub checkpoints: usize,
    /// The torn tail, if any (also listed as a warning).
    pub torn_tail: Option<Damage>,
    /// Everything found wrong, errors and warnings.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether no problem is an error.
    pub fn ok(&self) -> bool {
        self.problems.iter().all(|p| p.severity < Severity::Error)
    }

    pub(crate) fn problem(
        &mut self,
        severity: Severity,
        file: PathBuf,
        offset: Option<u64>,
        reason: String,
    ) {
        self.problems.push(Problem {
            severity,
            file,
            offset,
            reason,
        });
    }
}

/// The identities of the records that snapshots and the index name.
#[derive(Default)]
struct Wanted {
    snapshot: HashMap<Seq, Option<RecordIdentity>>,
    index: Option<(Seq, Option<u64>)>,
}

impl Directory {
    /// Checks every frame, envelope, the hash chain, every snapshot, the stream
    /// index and the checkpoints against each other. `progress` is called
    /// with the bytes of the log checked so far and the total.
    pub fn verify(&self, mut progress: impl FnMut(u64, u64)) -> Result<VerifyReport, InspectError> {
        let mut report = VerifyReport::default();
        // Read before the log: beside a writer, these then never cover less
        // than the scan sees.
        let index_bytes = match std::fs::read(self.index_path()) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(InspectError::Io {
                    op: "read",
                    path: self.index_path(),
                    source,
                });
            }
        };
        let index = index_bytes.as_deref().map(Index::decode);
        let snapshots = self.snapshots()?;
        let checkpoints = self.checkpoints()?;
        let mut wanted = Wanted::default();
        for snapshot in &snapshots {
            if let Ok(SnapshotContents::State(header)) = &snapshot.contents
                && let Some(seq) = header.seq
            {
                wanted.snapshot.insert(seq, None);
            }
        }
        if let Some(Ok(index)) = &index
            && index.covered > 0
        {
            wanted.index = Some((index.covered, None));
        }

        let total = segment_bytes(self);
        let mut done_before = 0u64;
        let mut current: Option<PathBuf> = None;
        let mut current_len = 0u64;
        let mut streams: HashMap<String, Vec<Seq>> = HashMap::new();
        let mut walk = Walk::default();
        let mut chain_broken = false;
        let mut bad_envelopes = Vec::new();
        let scan = self.scan_all(1, |event| {
            if current.as_deref() != Some(event.segment) {
                done_before += current_len;
                current = Some(event.segment.to_path_buf());
                current_len = std::fs::metadata(event.segment).map_or(0, |m| m.len());
            }
            progress(done_before + event.offset, total);
            let envelope = match &event.envelope {
                Ok(envelope) => envelope,
                Err(error) => {
                    bad_envelopes.push(Problem {
                        severity: Severity::Error,
                        file: event.segment.to_path_buf(),
                        offset: Some(event.offset),
                        reason: format!(
                            "the record at position {} is not an event: {error}",
                            event.position
                        ),
                    });
                    return;
                }
            };
            *report
                .event_types
                .entry(envelope.name.to_owned())
                .or_default() += 1;
            if let Some((id, version)) = envelope.stream {
                let positions = streams.entry(id.to_owned()).or_default();
                let expected = positions.len() as u64 + 1;
                if version != expected {
                    bad_envelopes.push(Problem {
                        severity: Severity::Error,
                        file: event.segment.to_path_buf(),
                        offset: Some(event.offset),
                        reason: format!(
                            "the event at position {} is version {version} of stream `{id}`, expected {expected}",
                            event.position
                        ),
                    });
                }
                positions.push(event.position);
            }
            if !chain_broken
                && let Err(reason) = walk.step(
                    event.position,
                    event.timestamp,
                    event.payload,
                    envelope.hash_offset,
                    envelope.hash,
                )
            {
                chain_broken = true;
                bad_envelopes.push(Problem {
                    severity: Severity::Error,
                    file: event.segment.to_path_buf(),
                    offset: Some(event.offset),
                    reason: format!("hash chain broken at position {}: {reason}", event.position),
                });
            }
            if let Some(slot) = wanted.snapshot.get_mut(&event.position) {
                let crc =
                    crc32c::crc32c_append(crc32c::crc32c(envelope.name.as_bytes()), envelope.body);
                *slot = Some(RecordIdentity {
                    seq: event.position,
                    timestamp: event.timestamp,
                    payload_crc: crc,
                });
            }
            if let Some((at, slot)) = &mut wanted.index
                && *at == event.position
            {
                *slot = Some(identity(event.timestamp, event.payload));
            }
        });
        // A log directory holding a file that is no segment's (a bad name, not
        // a regular file) is damage to report, like a bad frame.
        let scan = match scan {
            Err(InspectError::Storage(StorageError::Corrupt {
                segment,
                offset,
                reason,
            })) => {
                report.problem(
                    Severity::Error,
                    segment,
                    Some(offset),
                    format!("corrupt log directory: {reason}"),
                );
                return Ok(report);
            }
            other => other?,
        };
        progress(total, total);
        report.problems.append(&mut bad_envelopes);
        report.records = scan.records;
        report.segments = scan.segments.len();
        report.bytes = scan.segments.iter().map(|s| s.bytes).sum();
        report.first_position = scan.first_seq;
        report.last_position = scan.last_seq;
        report.streams = streams.len();
        if let (Some(head), false) = (walk.head, chain_broken) {
            report.chain = Some((walk.checked, head));
        }
        if let Some(damage) = &scan.corruption {
            report.problem(
                Severity::Error,
                damage.segment.clone(),
                Some(damage.offset),
                format!(
                    "corrupt log: {} (nothing after it was checked; `foldkit repair` cuts the log there)",
                    damage.reason
                ),
            );
        }
        if let Some(torn) = &scan.torn_tail {
            report.problem(
                Severity::Warning,
                torn.segment.clone(),
                Some(torn.offset),
                format!(
                    "torn tail of {} bytes ({}): an append in progress, or what the next open cuts",
                    torn.bytes, torn.reason
                ),
            );
        }
        report.torn_tail = scan.torn_tail.clone();
        let last = scan.last_seq.unwrap_or(0);
        let first = scan.first_seq.unwrap_or(1);
        let complete = scan.corruption.is_none();

        report.snapshots = snapshots.len();
        for snapshot in &snapshots {
            let Some(header) = check_snapshot(&mut report, snapshot, last, complete) else {
                continue;
            };
            let path = snapshot.place();
            let (Some(seq), Some(expected)) = (header.seq, header.last) else {
                continue;
            };
            let found = wanted.snapshot.get(&seq).copied().flatten();
            match found {
                Some(found) if found == expected => {}
                Some(_) => report.problem(
                    Severity::Warning,
                    path,
                    None,
                    format!(
                        "snapshot of `{}` at position {seq} belongs to another history of the log (the record there differs): the Db ignores it",
                        header.name
                    ),
                ),
                None if seq > last && complete => report.problem(
                    Severity::Warning,
                    path,
                    None,
                    format!(
                        "snapshot of `{}` covers position {seq}, past the log's end ({last}): a lost tail, or a writer ahead of this scan",
                        header.name
                    ),
                ),
                None if seq < first => report.problem(
                    Severity::Warning,
                    path,
                    None,
                    format!(
                        "snapshot of `{}` at position {seq}: that record was compacted away, so it cannot be checked",
                        header.name
                    ),
                ),
                None => {}
            }
        }

        if let Some(index) = index {
            report.index_checked = true;
            let path = self.index_path();
            match index {
                Err(reason) => report.problem(
                    Severity::Error,
                    path,
                    None,
                    format!("stream index unusable ({reason}): the Db rebuilds it at open"),
                ),
                Ok(index) => {
                    check_index(&mut report, path, &index, &wanted, &streams, last, complete)
                }
            }
        }

        check_checkpoints(&mut report, &checkpoints, last, complete);
        Ok(report)
    }
}

/// The checks of a snapshot that need no log: it is readable, it is what its
/// name says, and (a process manager's) its dead letters are consistent. Returns
/// a state snapshot's header for the caller to check against the log.
pub(crate) fn check_snapshot<'a>(
    report: &mut VerifyReport,
    snapshot: &'a Snapshot,
    last: Seq,
    complete: bool,
) -> Option<&'a SnapshotHeader> {
    let place = snapshot.place();
    let header = match &snapshot.contents {
        Ok(SnapshotContents::State(header)) => header,
        Ok(SnapshotContents::ProcessManager {
            name, dead_letters, ..
        }) => {
            if snapshot.position > last && complete {
                report.problem(
                    Severity::Warning,
                    place.clone(),
                    None,
                    format!(
                        "checkpoint of process manager `{name}` at position {}, past the log's end ({last})",
                        snapshot.position
                    ),
                );
            }
            for letter in dead_letters {
                if letter.id.causation > snapshot.position {
                    report.problem(
                        Severity::Error,
                        place.clone(),
                        None,
                        format!(
                            "dead letter {} is caused by position {}, after the checkpoint ({}) that parked it",
                            letter.id, letter.id.causation, snapshot.position
                        ),
                    );
                }
            }
            return None;
        }
        Err(error) => {
            let why = error.why();
            report.problem(Severity::Error, place, None, format!("snapshot: {why}"));
            return None;
        }
    };
    if header.name != snapshot.state {
        report.problem(
            Severity::Error,
            place.clone(),
            None,
            format!(
                "snapshot of state `{}` in the directory of state `{}`",
                header.name, snapshot.state
            ),
        );
    }
    if header.seq.unwrap_or(0) != snapshot.position {
        report.problem(
            Severity::Error,
            place,
            None,
            format!(
                "snapshot at position {} in a file named for position {}",
                header.seq.unwrap_or(0),
                snapshot.position
            ),
        );
        return None;
    }
    Some(header)
}

/// Checkpoints are readable and not past the end of a complete log.
pub(crate) fn check_checkpoints(
    report: &mut VerifyReport,
    checkpoints: &[Checkpoint],
    last: Seq,
    complete: bool,
) {
    report.checkpoints = checkpoints.len();
    for checkpoint in checkpoints {
        match &checkpoint.position {
            Err(error) => report.problem(Severity::Error, checkpoint.place(), None, error.why()),
            Ok(position) if *position > last && complete => report.problem(
                Severity::Warning,
                checkpoint.place(),
                None,
                format!(
                    "checkpoint of `{}` at position {position}, past the log's end ({last})",
                    checkpoint.name
                ),
            ),
            Ok(_) => {}
        }
    }
}

fn check_index(
    report: &mut VerifyReport,
    path: PathBuf,
    index: &Index,
    wanted: &Wanted,
    streams: &HashMap<String, Vec<Seq>>,
    last: Seq,
    complete: bool,
) {
    if index.covered == 0 {
        return;
    }
    let identity = wanted.index.and_then(|(_, found)| found);
    match identity {
        Some(found) if found == index.covered_identity => {}
        Some(_) => {
            report.problem(
                Severity::Warning,
                path,
                None,
                format!(
                    "stream index built from another history of the log (the record at position {} differs): the Db rebuilds it at open",
                    index.covered
                ),
            );
            return;
        }
        None => {
            if index.covered > last && complete {
                report.problem(
                    Severity::Warning,
                    path,
                    None,
                    format!(
                        "stream index covers position {}, past the log's end ({last}): the Db rebuilds it at open",
                        index.covered
                    ),
                );
            }
            return;
        }
    }
    let mut wrong = Vec::new();
    for (id, positions) in &index.streams {
        let logged: Vec<Seq> = streams
            .get(&**id)
            .map(|p| p.iter().copied().filter(|&p| p <= index.covered).collect())
            .unwrap_or_default();
        if &logged != positions {
            wrong.push(id.to_string());
        }
    }
    for (id, positions) in streams {
        if !index.streams.contains_key(id.as_str())
            && positions.first().is_some_and(|&p| p <= index.covered)
        {
            wrong.push(id.clone());
        }
    }
    if !wrong.is_empty() {
        wrong.sort();
        let shown: Vec<&str> = wrong.iter().take(5).map(String::as_str).collect();
        report.problem(
            Severity::Error,
            path,
            None,
            format!(
                "stream index disagrees with the log for {} stream(s): {}{}",
                wrong.len(),
                shown.join(", "),
                if wrong.len() > shown.len() {
                    ", ..."
                } else {
                    ""
                }
            ),
        );
    }
}

/// The total size of the segment files (for progress).
fn segment_bytes(dir: &Directory) -> u64 {
    std::fs::read_dir(dir.log_dir())
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
