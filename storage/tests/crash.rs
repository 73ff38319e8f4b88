//! Crash safety: a log cut at every byte offset, bytes flipped, zero-filled and
//! stale tails, damaged earlier segments. (Tests that spawn processes live in
//! `process.rs`: a child forked while this file reopens logs could briefly hold a
//! just-released directory lock.)

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use foldkit_storage::{FsyncPolicy, Log, LogOptions, StorageError};

fn payload(i: u64) -> Vec<u8> {
    format!("payload-{i}-{}", "y".repeat((i * 7 % 23) as usize)).into_bytes()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Writes records 1..=4 one by one, a batch 5..=7, then record 8; returns the
/// segment path.
fn write_reference_log(dir: &Path, options: LogOptions) -> PathBuf {
    runtime().block_on(async {
        let log = Log::open(dir, options).expect("open");
        for i in 1..=4 {
            log.append(&payload(i)).await.expect("append");
        }
        let batch: Vec<Vec<u8>> = (5..=7).map(payload).collect();
        assert_eq!(log.append_batch(&batch).await.expect("batch"), 5..=7);
        log.append(&payload(8)).await.expect("append");
        log.close().await.expect("close");
    });
    segments(dir).pop().expect("a segment")
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    found.sort();
    found
}

/// Copies the log directory (without its lock file) to a fresh temp dir.
fn copy_log(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().expect("tempdir");
    for path in segments(from) {
        fs::copy(&path, to.path().join(path.file_name().expect("name"))).expect("copy");
    }
    to
}

/// Opens the log and reads every record back: Ok(payloads in seq order).
fn reopen(dir: &Path) -> Result<(Vec<Vec<u8>>, foldkit_storage::RecoveryReport), StorageError> {
    let log = Log::open(dir, LogOptions::default().fsync(FsyncPolicy::Always))?;
    let records: Vec<_> = log.range(..)?.collect::<Result<_, _>>()?;
    for (i, record) in records.iter().enumerate() {
        assert_eq!(
            record.seq,
            i as u64 + 1,
            "recovered seqs are contiguous from 1"
        );
    }
    Ok((
        records.into_iter().map(|r| r.payload.to_vec()).collect(),
        log.recovery_report().clone(),
    ))
}

#[test]
fn a_log_cut_at_any_byte_recovers_exactly_an_acknowledged_prefix() {
    let reference = tempfile::tempdir().expect("tempdir");
    let segment = write_reference_log(reference.path(), LogOptions::default());
    let full = fs::read(&segment).expect("read");
    let expected: Vec<Vec<u8>> = (1..=8).map(payload).collect();
    let mut seen_lengths = std::collections::BTreeSet::new();
    for cut in 0..=full.len() {
        let dir = copy_log(reference.path());
        let path = dir.path().join(segment.file_name().expect("name"));
        OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open")
            .set_len(cut as u64)
            .expect("cut");
        let (records, report) = reopen(dir.path()).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(
            records[..],
            expected[..records.len()],
            "cut at {cut}: not a prefix"
        );
        assert!(
            !(5..=6).contains(&records.len()),
            "cut at {cut}: half a batch ({} records) survived",
            records.len()
        );
        // The report accounts for every byte cut: what remains plus what was cut
        // is what was there (a segment whose header was cut is removed whole).
        if cut < 24 {
            assert_eq!(report.removed_segments, 1, "cut at {cut}");
        } else {
            let left = fs::metadata(&path).expect("segment").len();
            assert_eq!(
                left + report.truncated_bytes,
                cut as u64,
                "cut at {cut}: {report:?}"
            );
        }
        seen_lengths.insert(records.len());
        // The repaired log keeps working.
        let log = Log::open(dir.path(), LogOptions::default()).expect("reopen after repair");
        let next = runtime().block_on(log.append(b"after")).expect("append");
        assert_eq!(next, records.len() as u64 + 1);
    }
    assert_eq!(
        seen_lengths.into_iter().collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 7, 8]
    );
}

#[test]
fn every_flipped_byte_is_detected() {
    let reference = tempfile::tempdir().expect("tempdir");
    let segment = write_reference_log(reference.path(), LogOptions::default());
    let full = fs::read(&segment).expect("read");
    let expected: Vec<Vec<u8>> = (1..=8).map(payload).collect();
    for at in 0..full.len() {
        let dir = copy_log(reference.path());
        let path = dir.path().join(segment.file_name().expect("name"));
        let mut bytes = full.clone();
        bytes[at] ^= 0x20;
        fs::write(&path, &bytes).expect("write");
        match reopen(dir.path()) {
            Err(StorageError::Corrupt {
                segment, offset, ..
            }) => {
                assert_eq!(segment, path, "flip at {at}: the error names the segment");
                assert!(
                    offset <= at as u64,
                    "flip at {at}: reported offset {offset} is after the damage"
                );
            }
            Err(other) => panic!("flip at {at}: unexpected error {other}"),
            Ok((records, report)) => {
                // Only damage to the last record can look like a torn tail: it
                // is cut and reported, never returned altered.
                assert!(records.len() < 8, "flip at {at} went unnoticed");
                assert!(report.repaired(), "flip at {at}: the cut is reported");
                assert_eq!(records[..], expected[..records.len()], "flip at {at}");
            }
        }
    }
}

#[test]
fn zero_filled_and_stale_tails_never_parse_as_records() {
    let reference = tempfile::tempdir().expect("tempdir");
    let segment = write_reference_log(reference.path(), LogOptions::default());
    let full = fs::read(&segment).expect("read");
    let name = segment.file_name().expect("name");

    let zeros = copy_log(reference.path());
    let mut file = OpenOptions::new()
        .append(true)
        .open(zeros.path().join(name))
        .expect("open");
    file.write_all(&[0; 4096]).expect("zeros");
    drop(file);
    let (records, report) = reopen(zeros.path()).expect("zero tail");
    assert_eq!(records.len(), 8);
    assert_eq!(report.truncated_bytes, 4096);

    // A copy of earlier records after the end: valid frames, but stale seqs.
    let stale = copy_log(reference.path());
    let mut bytes = full.clone();
    bytes.extend_from_slice(&full[24..full.len() / 2]);
    fs::write(stale.path().join(name), &bytes).expect("write");
    let (records, report) = reopen(stale.path()).expect("stale tail");
    assert_eq!(records.len(), 8, "stale records are not read as new ones");
    assert!(report.repaired());
}

#[test]
fn damage_before_the_last_segment_is_an_error_naming_segment_and_offset() {
    let reference = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let log =
            Log::open(reference.path(), LogOptions::default().segment_size(4096)).expect("open");
        for i in 1..=300 {
            log.append(&payload(i)).await.expect("append");
        }
        log.close().await.expect("close");
    });
    let all = segments(reference.path());
    assert!(all.len() >= 3, "needs several segments");

    let dir = copy_log(reference.path());
    let first = dir.path().join(all[0].file_name().expect("name"));
    let mut bytes = fs::read(&first).expect("read");
    let last_byte = bytes.len() - 1;
    bytes[last_byte] ^= 1;
    fs::write(&first, &bytes).expect("write");
    match reopen(dir.path()) {
        Err(StorageError::Corrupt {
            segment, offset, ..
        }) => {
            assert_eq!(segment, first);
            assert!(offset > 24 && offset < bytes.len() as u64);
        }
        other => panic!("expected corruption, got {:?}", other.map(|(r, _)| r.len())),
    }

    let dir = copy_log(reference.path());
    fs::remove_file(dir.path().join(all[1].file_name().expect("name"))).expect("remove");
    assert!(
        matches!(reopen(dir.path()), Err(StorageError::Corrupt { .. })),
        "a missing segment is a hole"
    );
}
