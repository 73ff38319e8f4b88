//! The sync thread starts with the first append, or when asked
//! (`start_sync_thread`): a log opened only to read (a replay) spawns no thread. Counted by name in `/proc/self/task`, so this binary
//! holds this one test (no other log runs beside it).

#![cfg(target_os = "linux")]

use foldkit_storage::{FsyncPolicy, Log, LogOptions};

/// The threads of this process named like a log's sync thread (the kernel keeps
/// 15 bytes of a name).
fn sync_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("list threads")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "foldkit-log-syn")
        .count()
}

/// The count once it is `expected` (a new thread names itself once it runs, an
/// ended one leaves the list a moment after), or after a bounded wait.
fn settled(expected: usize) -> usize {
    for _ in 0..400 {
        if sync_threads() == expected {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    sync_threads()
}

#[tokio::test]
async fn a_log_opened_only_to_read_starts_no_sync_thread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = LogOptions::default().fsync(FsyncPolicy::Never);
    let log = Log::open(dir.path(), options.clone()).expect("open");
    // Long enough for a thread started by the open to have named itself.
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(sync_threads(), 0, "an open started the sync thread");
    log.append(b"one").await.expect("append");
    assert_eq!(settled(1), 1, "the first append starts it");
    log.append(b"two").await.expect("append");
    assert_eq!(settled(1), 1);
    log.close().await.expect("close");
    assert_eq!(settled(0), 0, "the close stops it");

    let log = Log::open(dir.path(), options).expect("reopen");
    let read: Vec<_> = log
        .range(..)
        .expect("range")
        .map(|r| r.expect("record").seq)
        .collect();
    assert_eq!(read, vec![1, 2]);
    log.sync().await.expect("sync");
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(sync_threads(), 0, "a read-only open or a sync started it");
    log.close().await.expect("close");
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(sync_threads(), 0, "a close started it");

    // A log about to be written starts it at once (as the file store does at open),
    // and the first append finds it running.
    let log = Log::open(dir.path(), LogOptions::default()).expect("reopen");
    log.start_sync_thread().expect("start");
    assert_eq!(settled(1), 1, "start_sync_thread starts it");
    log.start_sync_thread().expect("start again");
    log.append(b"three").await.expect("append");
    assert_eq!(settled(1), 1, "one thread, not a second");
    log.close().await.expect("close");
    assert_eq!(settled(0), 0, "the close stops it");
    log.start_sync_thread().expect("a closed log");
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(sync_threads(), 0, "a closed log starts none");
}
