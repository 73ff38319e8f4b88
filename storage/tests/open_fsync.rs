//! An open makes what it finds durable (the `FsyncPolicy` table counts an open),
//! so it fsyncs the active segment, unless the synced mark shows that the last
//! close's fsync covered the segment and nothing wrote to it since: a log
//! reopened after a clean close opens without an fsync; after a process died
//! with records handed to the OS but not fsynced, the open fsyncs them.
//!
//! `Log::open` runs on the calling thread, so a recorder local to it counts the
//! fsyncs of the open alone (`foldkit_fsync_seconds`, one sample per fsync).

use foldkit_storage::{FsyncPolicy, Log, LogOptions};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

fn options() -> LogOptions {
    LogOptions::default().fsync(FsyncPolicy::Never)
}

/// Opens the log in `dir`; returns it and how many fsyncs the open ran.
fn open_counting(dir: &std::path::Path) -> (Log, usize) {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let log = metrics::with_local_recorder(&recorder, || Log::open(dir, options())).expect("open");
    let fsyncs = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "foldkit_fsync_seconds")
        .map(|(.., value)| match value {
            DebugValue::Histogram(samples) => samples.len(),
            _ => 0,
        })
        .sum();
    (log, fsyncs)
}

fn payloads(log: &Log) -> Vec<Vec<u8>> {
    log.range(..)
        .expect("range")
        .map(|r| r.expect("record").payload.to_vec())
        .collect()
}

#[tokio::test]
async fn a_reopen_after_a_clean_close_runs_no_fsync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open_counting(dir.path());
    for i in 0..10u8 {
        log.append(&[i; 20]).await.expect("append");
    }
    log.close().await.expect("close");

    for _ in 0..2 {
        let (log, fsyncs) = open_counting(dir.path());
        assert_eq!(fsyncs, 0, "the close's fsync covered the segment");
        assert_eq!(payloads(&log).len(), 10);
        log.close().await.expect("close");
    }
}

#[tokio::test]
async fn a_reopen_after_unsynced_writes_fsyncs_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open_counting(dir.path());
    log.append(b"synced at close").await.expect("append");
    log.close().await.expect("close");

    // Records handed to the OS (a dropped log flushes its buffer) but never
    // fsynced, as a killed process leaves them: the segment grew since the mark.
    let (log, fsyncs) = open_counting(dir.path());
    assert_eq!(fsyncs, 0);
    log.append(b"never fsynced").await.expect("append");
    drop(log);

    let (log, fsyncs) = open_counting(dir.path());
    assert_eq!(fsyncs, 1, "the open must make what it found durable");
    assert_eq!(payloads(&log).len(), 2);
    log.close().await.expect("close");

    // That open's fsync covered the segment: the next one needs none.
    let (log, fsyncs) = open_counting(dir.path());
    assert_eq!(fsyncs, 0);
    log.close().await.expect("close");
}

#[tokio::test]
async fn a_reopen_without_a_mark_fsyncs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open_counting(dir.path());
    log.append(b"record").await.expect("append");
    log.close().await.expect("close");
    std::fs::remove_file(dir.path().join("SYNCED")).expect("the close wrote the mark");

    let (log, fsyncs) = open_counting(dir.path());
    assert_eq!(fsyncs, 1);
    log.close().await.expect("close");
}

#[tokio::test]
async fn a_close_after_a_sync_marks_the_log_and_a_read_only_close_writes_nothing() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open_counting(dir.path());
    log.append(b"record").await.expect("append");
    // Everything durable before the close: the close has nothing to fsync.
    log.sync().await.expect("sync");
    log.close().await.expect("close");
    let mark = || {
        let meta = std::fs::metadata(dir.path().join("SYNCED")).expect("a mark");
        (meta.ino(), meta.mtime(), meta.mtime_nsec())
    };
    let written = mark();

    let (log, fsyncs) = open_counting(dir.path());
    assert_eq!(fsyncs, 0, "the close marked what the sync made durable");
    log.close().await.expect("close");
    assert_eq!(
        mark(),
        written,
        "a close with nothing appended rewrote the mark"
    );
}

#[tokio::test]
async fn a_close_whose_fsync_failed_leaves_no_mark_to_trust() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open_counting(dir.path());
    log.append(b"durable").await.expect("append");
    log.close().await.expect("close");

    let fail = Arc::new(AtomicBool::new(false));
    let failing = Arc::clone(&fail);
    let hook = Arc::new(move || {
        if failing.load(Ordering::SeqCst) {
            Err(std::io::Error::other("injected fsync failure"))
        } else {
            Ok(())
        }
    });
    let log = Log::open(dir.path(), options().fsync_hook(hook)).expect("open");
    log.append(b"never durable").await.expect("append");
    fail.store(true, Ordering::SeqCst);
    log.close().await.expect_err("the close's fsync fails");

    let (log, fsyncs) = open_counting(dir.path());
    assert_eq!(
        fsyncs, 1,
        "what the failed close wrote must be fsynced at open"
    );
    log.close().await.expect("close");
}
