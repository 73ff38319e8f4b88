//! Tests of the file store's own files (the stream index beside the log).

use std::sync::Arc;

use super::*;
use crate::store::{AppendBatch, EventStore, ExpectedVersion, NewEvent};

/// `count` events of `stream` from version `from` on, each payload `"<stream> <version>"`,
/// expecting the stream at `from - 1`.
pub(super) fn events(stream: &str, from: u64, count: u64) -> AppendBatch {
    let events = (from..from + count)
        .map(|v| NewEvent {
            name: Arc::from("e"),
            schema_version: 1,
            payload: format!("{stream} {v}").into_bytes(),
        })
        .collect();
    AppendBatch::new(events).to_stream(stream, ExpectedVersion::Exact(from - 1))
}

/// Several states snapshot at once, each persisting the stream index from its own
/// blocking thread while appends go on: every persist succeeds (they used to share
/// one `streams.tmp`: one thread's rename took the file another was writing), and
/// the index on disk is whole and current.
#[test]
fn concurrent_index_persists_neither_fail_nor_tear_the_file() {
    const THREADS: u64 = 8;
    const ROUNDS: u64 = 40;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = rt
        .block_on(FileStore::open_async(dir.path(), Default::default()))
        .expect("open");
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (store, rt) = (&store, &rt);
            scope.spawn(move || {
                let stream = format!("s{thread}");
                for version in 1..=ROUNDS {
                    rt.block_on(store.append(events(&stream, version, 1)))
                        .expect("append");
                    FileStore::persist_index_blocking(&store.inner).expect("persist");
                }
            });
        }
    });
    let on_disk = std::fs::read(dir.path().join(INDEX_FILE)).expect("streams.idx");
    let index = Index::decode(&on_disk).expect("a whole index");
    assert_eq!(index.covered, THREADS * ROUNDS);
    for thread in 0..THREADS {
        assert_eq!(index.version(&format!("s{thread}")), ROUNDS);
    }
    rt.block_on(store.close()).expect("close");
}

/// A record that passes its checksum but starts a keyed batch whose stream
/// versions cannot exist (no append writes one) is reported when the index is
/// rebuilt from the log, never turned into an overflowing version.
#[test]
fn a_keyed_batch_whose_versions_overflow_is_corrupt() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for (version, count) in [(u64::MAX, 2), (1, 0)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = rt
            .block_on(FileStore::open_async(dir.path(), Default::default()))
            .expect("open");
        let header = envelope::Header {
            version: 1,
            name: "e",
            stream: Some(("s", version)),
            context: None,
            idempotency_key: Some(("k", count)),
            hash: false,
        };
        let (bytes, _) = header.encode(b"body").expect("encode");
        let seq = rt.block_on(store.inner.log.append(&bytes)).expect("append");
        let error = load_index(dir.path(), &store.inner.log, false).expect_err("corrupt");
        assert!(
            matches!(&error, StoreError::Corrupt { what, .. } if what.contains(&format!("position {seq}"))),
            "{error}"
        );
        rt.block_on(store.close()).expect("close");
    }
}

/// What a Db's open reads before the log is opened (see `db::prefetch`): the newest
/// snapshot of the state, as the opened store lists and reads it; nothing for a state
/// without snapshots or a directory without any.
#[test]
fn a_locked_directory_reads_the_newest_snapshot_as_the_store_does() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let newest = |state: &str| {
        let locked = LockedDir::take(dir.path().to_path_buf()).expect("lock");
        let read = locked.newest_snapshot(state)();
        drop(locked);
        read.expect("read")
    };
    assert_eq!(newest("Orders"), None, "no snapshots directory");
    let store = FileStore::open(dir.path(), Default::default()).expect("open");
    assert!(
        LockedDir::take(dir.path().to_path_buf()).is_err(),
        "the store holds the lock"
    );
    rt.block_on(async {
        store.append(events("a", 1, 3)).await.expect("append");
        for (position, bytes) in [
            (1, b"one".to_vec()),
            (3, b"three".to_vec()),
            (2, b"two".to_vec()),
        ] {
            store
                .write_snapshot("Orders", position, bytes)
                .await
                .expect("snapshot");
        }
        assert_eq!(
            store.list_snapshots("Orders").await.expect("list"),
            [3, 2, 1]
        );
        store.close().await.expect("close");
    });
    drop(store);
    assert_eq!(newest("Orders"), Some((3, b"three".to_vec())));
    assert_eq!(newest("Customers"), None, "a state without snapshots");
}
