//! Index files (`<first seq>.idx`): a sealed segment's sparse index, written when
//! it is sealed and loaded at open, so that the first read of an old record
//! after a restart reads a few frames instead of the whole segment. They are a
//! cache: a missing, damaged or stale one never yields a wrong record.

use std::fs;
use std::path::{Path, PathBuf};

use foldkit_storage::{FsyncPolicy, Log, LogOptions, StorageError};

const RECORDS: u64 = 2_000;

fn payload(i: u64) -> Vec<u8> {
    format!("record {i} {}", "y".repeat((i % 40) as usize)).into_bytes()
}

fn options() -> LogOptions {
    LogOptions::default()
        .fsync(FsyncPolicy::Never)
        .segment_size(16 << 10)
}

async fn written(dir: &Path) {
    let log = Log::open(dir, options()).expect("open");
    for i in 1..=RECORDS {
        log.append(&payload(i)).await.expect("append");
    }
    log.close().await.expect("close");
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    found.sort();
    found
}

fn check_all(log: &Log) {
    for i in (1..=RECORDS).rev() {
        assert_eq!(&*log.read(i).expect("read").payload, &payload(i)[..], "{i}");
    }
    let all: Vec<_> = log
        .range(..)
        .expect("range")
        .collect::<Result<_, _>>()
        .expect("records");
    assert_eq!(all.len() as u64, RECORDS);
    assert!(all.iter().enumerate().all(|(i, r)| r.seq == i as u64 + 1));
}

#[tokio::test]
async fn every_sealed_segment_gets_an_index_file_and_reads_use_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    written(dir.path()).await;
    let segments = files(dir.path(), "seg");
    let indexes = files(dir.path(), "idx");
    assert!(segments.len() > 3, "{} segments", segments.len());
    assert_eq!(
        indexes,
        segments[..segments.len() - 1]
            .iter()
            .map(|s| s.with_extension("idx"))
            .collect::<Vec<_>>(),
        "one index file per sealed segment, none for the active one"
    );
    let log = Log::open(dir.path(), options()).expect("reopen");
    check_all(&log);
}

/// With its index loaded, reading one record reads only its own frames: a
/// corrupt record elsewhere in the same segment does not fail it, and reading
/// the corrupt record fails with the segment and the offset (nothing skipped).
/// Without index files, the first read indexes the segment whole and fails on
/// any corrupt record in it.
#[tokio::test]
async fn a_read_reads_its_own_frames_and_still_reports_corruption() {
    let dir = tempfile::tempdir().expect("tempdir");
    written(dir.path()).await;
    let first = files(dir.path(), "seg").remove(0);
    let mut bytes = fs::read(&first).expect("read segment");
    // Flip a byte of the last record's payload in the first segment.
    let at = bytes.len() - 3;
    bytes[at] ^= 0x20;
    fs::write(&first, &bytes).expect("write segment");

    let log = Log::open(dir.path(), options()).expect("reopen");
    assert_eq!(&*log.read(1).expect("read 1").payload, &payload(1)[..]);
    let corrupt = (1..=RECORDS)
        .find(|&i| log.read(i).is_err())
        .expect("one fails");
    match log.read(corrupt) {
        Err(StorageError::Corrupt { segment, .. }) => assert_eq!(segment, first),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(log.read(corrupt + 1).is_ok(), "the next segment reads");
    drop(log);

    for index in files(dir.path(), "idx") {
        fs::remove_file(index).expect("remove index");
    }
    let log = Log::open(dir.path(), options()).expect("reopen");
    assert!(
        matches!(log.read(1), Err(StorageError::Corrupt { .. })),
        "without an index file the segment is checked whole on its first read"
    );
}

#[tokio::test]
async fn missing_or_damaged_index_files_are_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    written(dir.path()).await;
    let indexes = files(dir.path(), "idx");
    let good = fs::read(&indexes[1]).expect("read index");
    fs::remove_file(&indexes[0]).expect("remove");
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 1;
    fs::write(&indexes[1], flipped).expect("write");
    fs::write(&indexes[2], &good[..good.len() - 1]).expect("cut");

    let log = Log::open(dir.path(), options()).expect("reopen");
    check_all(&log);
    drop(log);
    assert_eq!(fs::read(&indexes[1]).expect("rebuilt"), good);
    assert_eq!(files(dir.path(), "idx"), indexes, "every one rebuilt");
}

/// An index file that passes its own checks but describes other bytes (here:
/// the first segment's index put in place of the second's, patched to match the
/// second's first seq, count and length) never yields a wrong record: the read
/// through it fails its frame checks, the segment is indexed whole, and the
/// read is answered right.
#[tokio::test]
async fn a_stale_index_file_never_yields_a_wrong_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    written(dir.path()).await;
    let indexes = files(dir.path(), "idx");
    let second = fs::read(&indexes[1]).expect("read");
    let mut stale = fs::read(&indexes[0]).expect("read");
    if stale.len() != second.len() {
        // Same entry count needed for the patch: shift the entries instead.
        stale = second.clone();
        let entries = (stale.len() - 44) / 8;
        for e in 1..entries {
            let at = 40 + e * 8;
            let v = u64::from_le_bytes(stale[at..at + 8].try_into().unwrap()) + 1;
            stale[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
    }
    stale[16..40].copy_from_slice(&second[16..40]);
    let body = stale.len() - 4;
    let crc = crc32c::crc32c(&stale[..body]);
    stale[body..].copy_from_slice(&crc.to_le_bytes());
    assert_ne!(stale, second);
    fs::write(&indexes[1], &stale).expect("write stale");

    let log = Log::open(dir.path(), options()).expect("reopen");
    check_all(&log);
}

#[tokio::test]
async fn compaction_removes_index_files_with_their_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    written(dir.path()).await;
    let log = Log::open(dir.path(), options()).expect("reopen");
    let removed = log.truncate_before(RECORDS).expect("truncate");
    assert!(removed > 0);
    let segments = files(dir.path(), "seg");
    let indexes = files(dir.path(), "idx");
    assert!(
        indexes
            .iter()
            .all(|i| segments.contains(&i.with_extension("seg"))),
        "{indexes:?} vs {segments:?}"
    );
}

/// `read_nowait` answers from memory, and after a reopen from the sealed
/// segments whose handles open kept (bytes in the page cache, as right after
/// writing them); it never answers wrong, and says `None` rather than block.
#[tokio::test]
async fn read_nowait_answers_old_records_without_blocking() {
    let dir = tempfile::tempdir().expect("tempdir");
    written(dir.path()).await;
    let log = Log::open(dir.path(), options()).expect("reopen");
    let mut answered = 0;
    for i in (1..=RECORDS).step_by(7) {
        match log.read_nowait(i, 3) {
            Some(records) => {
                let records = records.expect("records");
                assert_eq!(records.len(), 3.min((RECORDS - i + 1) as usize));
                for (k, record) in records.iter().enumerate() {
                    let seq = i + k as u64;
                    assert_eq!((record.seq, &*record.payload), (seq, &payload(seq)[..]));
                }
                answered += 1;
            }
            // The segments were just written: their bytes are in the page cache.
            None if cfg!(target_os = "linux") => panic!("seq {i} not answered"),
            None => {}
        }
    }
    assert!(answered > 0 || cfg!(not(target_os = "linux")));
    assert_eq!(
        log.read_nowait(RECORDS + 1, 1)
            .expect("past the end")
            .expect("ok"),
        vec![]
    );
}
