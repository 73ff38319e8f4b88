//! The file store's stream index (`streams.idx`) is a cache of what the log says
//! (stream versions, idempotency keys) so an open scans only the tail after it. A
//! close rewrites it (a new file, two fsyncs) only when it has something new to
//! cover: a store opened only to read closes without touching the disk, and the
//! index still comes back whole after every kind of close. Neither that close nor
//! the snapshot reads of a store that has none go to the blocking pool.

#![cfg(unix)]

use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use foldkit::ExpectedVersion;
use foldkit::store::{AppendBatch, EventStore, FileStore, NewEvent};

fn event(i: u64) -> NewEvent {
    NewEvent {
        name: Arc::from("Noted"),
        schema_version: 1,
        payload: format!("note {i}").into_bytes(),
    }
}

async fn open(dir: &Path) -> FileStore {
    FileStore::open_async(dir, Default::default())
        .await
        .expect("open")
}

/// The index file's inode: a rewrite (a new file renamed over it) changes it.
fn index_inode(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("streams.idx"))
        .expect("the stream index is on disk")
        .ino()
}

async fn append_to(store: &FileStore, stream: &str, version: u64, count: u64) {
    let events = (0..count).map(|i| event(version + i)).collect();
    let batch = AppendBatch::new(events).to_stream(stream, ExpectedVersion::Exact(version));
    store.append(batch).await.expect("append");
}

#[tokio::test]
async fn a_close_rewrites_the_stream_index_only_when_it_covers_more() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path()).await;
    append_to(&store, "a", 0, 3).await;
    append_to(&store, "b", 0, 2).await;
    store.close().await.expect("close");
    let written = index_inode(dir.path());

    // Opened, read, closed: the index on disk already says all of it.
    let store = open(dir.path()).await;
    assert_eq!(store.stream_version("a").await.expect("version"), 3);
    store.close().await.expect("close");
    assert_eq!(
        index_inode(dir.path()),
        written,
        "a close with nothing new rewrote the index"
    );

    // Something new: the close writes it, and the next open has it.
    let store = open(dir.path()).await;
    append_to(&store, "a", 3, 1).await;
    store.close().await.expect("close");
    let rewritten = index_inode(dir.path());
    assert_ne!(
        rewritten, written,
        "a close after an append kept the old index"
    );
    let store = open(dir.path()).await;
    assert_eq!(store.stream_version("a").await.expect("version"), 4);
    assert_eq!(store.stream_version("b").await.expect("version"), 2);
    store.close().await.expect("close");
    assert_eq!(index_inode(dir.path()), rewritten);
}

#[tokio::test]
async fn an_index_rebuilt_from_the_log_at_open_is_written_at_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path()).await;
    append_to(&store, "a", 0, 5).await;
    store.close().await.expect("close");
    std::fs::remove_file(dir.path().join("streams.idx")).expect("drop the index");

    // No appends, but the open rebuilt the index by scanning: keep that work.
    let store = open(dir.path()).await;
    assert_eq!(store.stream_version("a").await.expect("version"), 5);
    store.close().await.expect("close");
    index_inode(dir.path());
    let store = open(dir.path()).await;
    assert_eq!(store.stream_version("a").await.expect("version"), 5);
    append_to(&store, "a", 5, 1).await;
    store.close().await.expect("close");
}

/// Runs `work` on a runtime whose only blocking thread is held busy meanwhile:
/// `None` if it did not finish within a second (it waited for the blocking pool).
fn with_the_blocking_pool_busy<T>(work: impl Future<Output = T>) -> Option<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel();
        let busy = tokio::task::spawn_blocking(move || {
            let _ = started.send(());
            let _ = held.recv();
        });
        running.await.expect("the blocking thread runs");
        let done = tokio::time::timeout(Duration::from_secs(1), work)
            .await
            .ok();
        release.send(()).expect("release the blocking thread");
        busy.await.expect("the blocking thread ends");
        done
    })
}

/// A store with streams, closed (its index on disk), and the store reopened.
fn reopened_with_streams(dir: &Path) -> FileStore {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = open(dir).await;
        append_to(&store, "a", 0, 3).await;
        store.close().await.expect("close");
    });
    FileStore::open(dir, Default::default()).expect("reopen")
}

#[test]
fn a_close_with_nothing_new_to_persist_needs_no_blocking_thread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = reopened_with_streams(dir.path());
    let written = index_inode(dir.path());
    let closed = with_the_blocking_pool_busy(store.close());
    assert!(
        matches!(closed, Some(Ok(()))),
        "the close waited for the blocking pool: {closed:?}"
    );
    assert_eq!(index_inode(dir.path()), written);
    // Released: the directory opens again.
    FileStore::open(dir.path(), Default::default()).expect("reopen");
}

#[test]
fn a_store_without_snapshots_answers_snapshot_reads_without_a_blocking_thread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = reopened_with_streams(dir.path());
    let read = with_the_blocking_pool_busy(async {
        let listed = store.list_snapshots("S").await.expect("list");
        let read = store.read_snapshot("S", 3).await.expect("read");
        let names = store.snapshot_names().await.expect("names");
        (listed, read, names)
    });
    assert_eq!(
        read,
        Some((vec![], None, vec![])),
        "the reads waited for the blocking pool"
    );

    // Once one is written, they read the disk and find it; so does a reopen.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        store
            .write_snapshot("S", 3, b"state".to_vec())
            .await
            .expect("write");
        assert_eq!(store.list_snapshots("S").await.expect("list"), vec![3]);
        assert_eq!(
            store.snapshot_names().await.expect("names"),
            vec!["S".to_owned()]
        );
        store.close().await.expect("close");
        let store = open(dir.path()).await;
        assert_eq!(store.list_snapshots("S").await.expect("list"), vec![3]);
        let read = store.read_snapshot("S", 3).await.expect("read");
        assert_eq!(read.as_deref(), Some(&b"state"[..]));
        store.close().await.expect("close");
    });
}
