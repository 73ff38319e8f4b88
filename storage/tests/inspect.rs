//! Read-only scans (`inspect::scan`): beside an open writer, over a torn tail
//! (reported, not cut) and over damage (segment and offset), and the repair cut.

use std::fs;
use std::path::{Path, PathBuf};

use foldkit_storage::inspect::{self, RepairLock, ScanOptions};
use foldkit_storage::{FsyncPolicy, Log, LogOptions, StorageError};

fn options() -> LogOptions {
    LogOptions::default()
        .fsync(FsyncPolicy::Always)
        .segment_size(4096)
}

async fn write(dir: &Path, n: u64) -> Log {
    let log = Log::open(dir, options()).expect("open");
    for i in 1..=n {
        log.append(format!("record {i} {}", "x".repeat(40)).as_bytes())
            .await
            .expect("append");
    }
    log
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    found.sort();
    found
}

fn seqs(dir: &Path, from: u64) -> (Vec<u64>, inspect::ScanReport) {
    let mut seen = Vec::new();
    let report = inspect::scan(dir, &ScanOptions::default().from(from), |r| {
        seen.push(r.seq);
        true
    })
    .expect("scan");
    (seen, report)
}

#[tokio::test]
async fn scans_an_open_log_without_its_lock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write(dir.path(), 200).await;
    let (seen, report) = seqs(dir.path(), 1);
    assert_eq!(seen, (1..=200).collect::<Vec<_>>());
    assert!(report.segments.len() > 2, "{report:?}");
    assert_eq!((report.torn_tail, report.corruption), (None, None));
    let (seen, report) = seqs(dir.path(), 150);
    assert_eq!(seen, (150..=200).collect::<Vec<_>>());
    assert_eq!(report.next_seq(), 201);
    log.append(b"more").await.expect("append while scanned");
    log.close().await.expect("close");
}

#[tokio::test]
async fn reports_a_torn_tail_without_cutting_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), 10).await.close().await.expect("close");
    let last = segments(dir.path()).pop().expect("a segment");
    let len = fs::metadata(&last).expect("stat").len();
    fs::OpenOptions::new()
        .append(true)
        .open(&last)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &[7; 20]))
        .expect("tear");
    let (seen, report) = seqs(dir.path(), 1);
    assert_eq!(seen.len(), 10);
    let torn = report.torn_tail.expect("a torn tail");
    assert_eq!(
        (torn.segment, torn.offset, torn.bytes),
        (last.clone(), len, 20)
    );
    assert_eq!(report.corruption, None);
    assert_eq!(
        fs::metadata(&last).expect("stat").len(),
        len + 20,
        "nothing cut"
    );
}

#[tokio::test]
async fn reports_damage_in_a_sealed_segment_and_repairs_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), 200).await.close().await.expect("close");
    let first = segments(dir.path())[0].clone();
    let mut bytes = fs::read(&first).expect("read");
    bytes[24 + 40] ^= 0xff; // inside the first record's payload
    fs::write(&first, &bytes).expect("flip");
    let (seen, report) = seqs(dir.path(), 1);
    assert!(seen.is_empty());
    let damage = report.corruption.expect("corruption");
    assert_eq!((damage.segment.clone(), damage.offset), (first.clone(), 24));
    assert!(damage.reason.contains("checksum"), "{}", damage.reason);

    // The log agrees (a sealed segment is checked on first read).
    let log = Log::open(dir.path(), options()).expect("open");
    assert!(matches!(
        log.read(1),
        Err(StorageError::Corrupt { offset: 24, .. })
    ));
    log.close().await.expect("close");
    let lock = RepairLock::acquire(dir.path()).expect("lock");
    let before = segments(dir.path()).len();
    let removed = lock.truncate(&damage.segment, damage.offset).expect("cut");
    assert_eq!(removed.len(), before - 1, "every later segment goes");
    drop(lock);
    let (seen, report) = seqs(dir.path(), 1);
    assert!(seen.is_empty());
    assert_eq!((report.torn_tail, report.corruption), (None, None));
    let log = Log::open(dir.path(), options()).expect("opens after the cut");
    assert_eq!(log.append(b"again").await.expect("append"), 1);
}

#[tokio::test]
async fn the_repair_lock_is_refused_beside_a_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write(dir.path(), 1).await;
    assert!(matches!(
        RepairLock::acquire(dir.path()),
        Err(StorageError::Locked { .. })
    ));
    log.close().await.expect("close");
    RepairLock::acquire(dir.path()).expect("free after close");
}

/// A segment skipped because it lies wholly before `from` still has its header
/// checked: a damaged one is reported, not passed over.
#[tokio::test]
async fn a_skipped_segment_with_a_damaged_header_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write(dir.path(), 200).await;
    log.close().await.expect("close");
    let first = segments(dir.path())[0].clone();
    let mut bytes = fs::read(&first).expect("read");
    bytes[0] ^= 0xff;
    fs::write(&first, &bytes).expect("damage the header");
    let (seen, report) = seqs(dir.path(), 150);
    assert!(seen.is_empty(), "{seen:?}");
    let damage = report.corruption.expect("the damaged header is reported");
    assert_eq!((damage.segment, damage.offset), (first, 0));
}
