//! A snapshot is used only with the log it was folded from: after a lost
//! unsynced tail, a snapshot (file or bundle) covering the lost records is
//! ignored, reported, and the state replays (issue 14, item 2).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use foldkit::prelude::*;
use foldkit::snapshot::Bundle;
use foldkit::{Seq, SnapshotUse, StateOpened};

mod common;
use common::{Ev, Sum};

async fn open(dir: &Path, on_close: bool) -> Db {
    Db::builder(dir)
        .fsync(FsyncPolicy::Never)
        .snapshot_on_close(on_close)
        .state::<Sum>()
        .open()
        .await
        .expect("open")
}

/// Appends in batches of 50 (a cut at a multiple of 50 falls between batches:
/// recovery drops a torn batch whole).
async fn append(db: &Db, events: impl Iterator<Item = u64>) -> Seq {
    let events: Vec<Ev> = events.map(Ev::Add).collect();
    let mut last = 0;
    for chunk in events.chunks(50) {
        last = *db.append_batch(chunk.to_vec()).await.expect("append").end();
    }
    db.state::<Sum>().wait_for_seq(last).await.expect("fold");
    last
}

/// The only segment file of the Db's log.
fn segment(dir: &Path) -> PathBuf {
    let logs = dir.join("log");
    let mut segs: Vec<PathBuf> = std::fs::read_dir(&logs)
        .expect("log dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    assert_eq!(segs.len(), 1, "{segs:?}");
    segs.pop().expect("one segment")
}

/// Cuts the log to its first `keep` records, as a lost unsynced tail would:
/// the segment file ends right after record `keep` (frames: 32-byte header
/// with the payload length first; the segment header is 24 bytes).
fn cut_log(dir: &Path, keep: u64) {
    let path = segment(dir);
    let bytes = std::fs::read(&path).expect("read segment");
    let mut at = 24usize;
    for _ in 0..keep {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        at += 32 + len;
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open segment");
    file.set_len(at as u64).expect("truncate");
}

/// How `Sum` started at the last open.
fn report(db: &Db) -> StateOpened {
    db.open_report()
        .state("Sum")
        .expect("Sum is registered")
        .clone()
}

/// The state a full replay of the log gives (snapshots moved away).
async fn replayed(dir: &Path) -> Sum {
    let moved = dir.join("snapshots.off");
    let snapshots = dir.join("snapshots");
    if snapshots.exists() {
        std::fs::rename(&snapshots, &moved).expect("move snapshots away");
    }
    let db = open(dir, false).await;
    let sum = db.state::<Sum>();
    assert_eq!(report(&db).snapshot, SnapshotUse::Replay);
    if let Some(last) = db.last_seq().await.expect("last") {
        sum.wait_for_seq(last).await.expect("replay");
    }
    let value = sum.read().clone();
    db.close().await.expect("close");
    if moved.exists() {
        std::fs::rename(&moved, &snapshots).expect("move snapshots back");
    }
    value
}

#[tokio::test]
async fn a_snapshot_of_a_lost_tail_is_ignored_and_the_state_replays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path(), true).await;
    append(&db, 1..=400).await;
    db.close().await.expect("close"); // snapshot at 400
    cut_log(dir.path(), 300);

    // The log ends at 300: the snapshot at 400 is beyond it, not used.
    let db = open(dir.path(), false).await;
    let sum = db.state::<Sum>();
    assert_eq!(db.last_seq().await.expect("last"), Some(300));
    assert_eq!(report(&db).snapshot, SnapshotUse::Replay);
    let _ = &sum;
    append(&db, (1..=100).map(|n| n * 1000)).await; // seqs 301..=400 again, other events
    db.close().await.expect("close");

    // Now seq 400 exists, but it is another record than the snapshot's.
    let db = open(dir.path(), false).await;
    let sum = db.state::<Sum>();
    let report = report(&db);
    assert_eq!(report.snapshot, SnapshotUse::Replay, "{report:?}");
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert_eq!(report.rejected[0].seq, 400);
    assert!(!report.rejected[0].from_bundle);
    assert!(
        report.rejected[0].reason.contains("is another one"),
        "{report:?}"
    );
    sum.wait_for_seq(400).await.expect("fold");
    let state = sum.read().clone();
    db.close().await.expect("close");
    let expected = replayed(dir.path()).await;
    assert_eq!(state, expected, "the state must equal a full replay");
    assert_eq!(
        state.total,
        (1..=300).sum::<u64>() + (1..=100).map(|n| n * 1000).sum::<u64>()
    );
}

#[tokio::test]
async fn an_older_matching_snapshot_is_used_past_a_mismatching_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path(), true).await;
    append(&db, 1..=200).await;
    db.close().await.expect("close"); // snapshot at 200 (durable: close syncs first)
    let db = open(dir.path(), true).await;
    append(&db, 201..=400).await;
    db.close().await.expect("close"); // snapshot at 400
    cut_log(dir.path(), 300);
    let db = open(dir.path(), false).await;
    append(&db, (1..=100).map(|n| n * 7)).await;
    db.close().await.expect("close");

    let db = open(dir.path(), false).await;
    let sum = db.state::<Sum>();
    let report = report(&db);
    assert_eq!(report.snapshot, SnapshotUse::Used(200), "{report:?}");
    assert_eq!(
        report.rejected.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [400]
    );
    sum.wait_for_seq(400).await.expect("fold");
    let state = sum.read().clone();
    db.close().await.expect("close");
    assert_eq!(state, replayed(dir.path()).await);
}

#[tokio::test]
async fn a_bundle_of_a_lost_tail_is_ignored_and_the_state_replays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path(), false).await;
    append(&db, 1..=400).await;
    let bundle =
        Bundle::from_bytes(&db.snapshot().await.expect("bundle").to_bytes()).expect("bytes");
    db.close().await.expect("close");
    cut_log(dir.path(), 300);
    let db = open(dir.path(), false).await;
    append(&db, (1..=100).map(|n| n * 3)).await;
    db.close().await.expect("close");

    let db = Db::builder(dir.path())
        .fsync(FsyncPolicy::Never)
        .snapshot_on_close(false)
        .state::<Sum>()
        .restore(bundle)
        .open()
        .await
        .expect("open");
    let sum = db.state::<Sum>();
    let report = report(&db);
    assert_eq!(report.snapshot, SnapshotUse::Replay, "{report:?}");
    assert_eq!(report.rejected.len(), 1);
    assert!(report.rejected[0].from_bundle);
    sum.wait_for_seq(400).await.expect("fold");
    let state = sum.read().clone();
    db.close().await.expect("close");
    assert_eq!(state, replayed(dir.path()).await);
}

#[tokio::test]
async fn a_matching_bundle_and_snapshot_are_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path(), true).await;
    append(&db, 1..=50).await;
    let bundle = db.snapshot().await.expect("bundle");
    db.close().await.expect("close");
    let db = open(dir.path(), false).await;
    let started = report(&db);
    assert_eq!(started.snapshot, SnapshotUse::Used(50));
    assert!(started.rejected.is_empty());
    db.close().await.expect("close");
    let db = Db::builder(dir.path())
        .state::<Sum>()
        .restore(bundle)
        .open()
        .await
        .expect("open");
    assert_eq!(report(&db).snapshot, SnapshotUse::Restored(50));
    db.close().await.expect("close");
}

#[tokio::test]
async fn a_format_1_snapshot_file_is_never_misread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path(), true).await;
    append(&db, 1..=20).await;
    db.close().await.expect("close");
    let file = dir.path().join("snapshots/Sum/00000000000000000020.snap");
    let mut bytes = std::fs::read(&file).expect("snapshot file");
    // A format-1 file: the format byte set to 1, the checksum made valid again.
    bytes[8] = 1;
    let body = bytes.len() - 4;
    let crc = crc32c::crc32c(&bytes[..body]);
    bytes[body..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&file, bytes).expect("write");
    let db = open(dir.path(), false).await;
    let sum = db.state::<Sum>();
    assert_eq!(report(&db).snapshot, SnapshotUse::Replay);
    sum.wait_for_seq(20).await.expect("replay");
    assert_eq!(sum.read().total, (1..=20).sum::<u64>());
    db.close().await.expect("close");
}

#[tokio::test]
async fn a_background_snapshot_is_written_only_once_the_log_is_synced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fsyncs = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&fsyncs);
    let db = Db::builder(dir.path())
        .fsync(FsyncPolicy::Never) // no fsync on append
        .snapshot_every(100)
        .snapshot_on_close(false)
        .fsync_hook(Arc::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }))
        .state::<Sum>()
        .open()
        .await
        .expect("open");
    append(&db, 1..=150).await;
    let snapshots = dir.path().join("snapshots/Sum");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let written = |dir: &Path| {
        std::fs::read_dir(dir).is_ok_and(|mut entries| {
            entries.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "snap")))
        })
    };
    while !written(&snapshots) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no background snapshot"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        fsyncs.load(Ordering::SeqCst) >= 1,
        "the snapshot was written before the log was synced"
    );
    db.close().await.expect("close");
}
