//! A Db opened only to read, its log folded and the Db closed (the replay of the
//! Net side-by-side benches, issue #18), touches nothing on disk: no fsync (the
//! log's synced mark shows the last close's fsync covered it), no file written
//! (the stream index and the mark are current), so a read-only reopen costs the
//! reads and the fold alone.
//!
//! The metrics recorder is global to this binary: it holds this one test.

#![cfg(unix)]

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use foldkit::prelude::*;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

mod common;
use common::{Ev, Sum};

/// Fsyncs recorded since the last call (a snapshot drains histograms).
fn fsyncs(snapshotter: &Snapshotter) -> usize {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "foldkit_fsync_seconds")
        .map(|(.., value)| match value {
            DebugValue::Histogram(samples) => samples.len(),
            _ => 0,
        })
        .sum()
}

/// Every file under `dir` with its inode, length and modification time.
fn files(dir: &Path) -> BTreeMap<PathBuf, (u64, u64, i64, i64)> {
    let mut found = BTreeMap::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("list") {
            let path = entry.expect("entry").path();
            let meta = std::fs::metadata(&path).expect("stat");
            if meta.is_dir() {
                dirs.push(path);
            } else {
                let stamp = (meta.ino(), meta.len(), meta.mtime(), meta.mtime_nsec());
                found.insert(path, stamp);
            }
        }
    }
    found
}

async fn open(dir: &Path) -> Db {
    Db::builder(dir)
        .fsync(FsyncPolicy::Never)
        .snapshot_on_close(false)
        .state::<Sum>()
        .open()
        .await
        .expect("open")
}

#[tokio::test]
async fn a_read_only_open_and_close_fsyncs_nothing_and_writes_nothing() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("install the recorder");

    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let last = *db
        .append_batch((1..=100).map(Ev::Add))
        .await
        .expect("append")
        .end();
    db.close().await.expect("close");
    assert!(
        fsyncs(&snapshotter) >= 1,
        "the close makes the appends durable"
    );
    let before = files(dir.path());

    for _ in 0..2 {
        let db = open(dir.path()).await;
        let sum = db.state::<Sum>();
        sum.wait_for_seq(last).await.expect("replayed");
        assert_eq!(sum.read().count, 100);
        db.close().await.expect("close");
        assert_eq!(
            fsyncs(&snapshotter),
            0,
            "a read-only open and close fsynced"
        );
        assert_eq!(
            files(dir.path()),
            before,
            "a read-only open and close wrote"
        );
    }
}
