//! The file store's stream index (`streams.idx`) is a cache of what the log says
//! (stream versions, idempotency keys) so an open scans only the tail after it. A
//! close rewrites it (a new file, two fsyncs) only when it has something new to
//! cover: a store opened only to read closes without touching the disk, and the
//! index still comes back whole after every kind of close.

#![cfg(unix)]

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

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
