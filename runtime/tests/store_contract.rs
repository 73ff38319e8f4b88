//! The store contract (foldkit::store::contract) on the file store.

use foldkit::FileStore;
use foldkit::store::StoreError;
use foldkit::store::contract::StoreFactory;
use futures::future::BoxFuture;

/// File stores in subdirectories of one temporary directory.
struct Files(tempfile::TempDir);

impl StoreFactory for Files {
    type Store = FileStore;

    fn open(&self, name: &str) -> BoxFuture<'_, Result<FileStore, StoreError>> {
        let dir = self.0.path().join(name);
        Box::pin(FileStore::open_async(dir, Default::default()))
    }
}

foldkit::store_contract_tests!(Files(tempfile::tempdir().expect("tempdir")));

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("list").flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// A streamed snapshot whose encode fails leaves no temporary file behind, and one that
/// succeeds leaves only the snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_snapshot_leaves_no_temporary_file() {
    use foldkit::store::EventStore;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FileStore::open_async(dir.path().join("db"), Default::default())
        .await
        .expect("open");
    let failed = store
        .write_snapshot_streamed(
            "S",
            Box::new(|out: &mut dyn std::io::Write| {
                out.write_all(b"half")?;
                Err(std::io::Error::other("the encode failed"))
            }),
        )
        .await;
    assert!(failed.is_err());
    let tmp = |files: &[std::path::PathBuf]| {
        files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "tmp"))
            .count()
    };
    assert_eq!(tmp(&files_under(dir.path())), 0);
    store
        .write_snapshot_streamed(
            "S",
            Box::new(|out: &mut dyn std::io::Write| out.write_all(b"whole").map(|()| 3)),
        )
        .await
        .expect("write");
    let files = files_under(dir.path());
    assert_eq!(tmp(&files), 0, "{files:?}");
    assert_eq!(
        store.read_snapshot("S", 3).await.expect("read").as_deref(),
        Some(&b"whole"[..])
    );
    store.close().await.expect("close");
}

/// A streamed snapshot's temporary file that a crash left behind is removed at the next
/// open; the snapshots beside it stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_removes_a_crashed_stream() {
    use foldkit::store::EventStore;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FileStore::open_async(dir.path(), Default::default())
        .await
        .expect("open");
    store
        .write_snapshot("S", 4, b"kept".to_vec())
        .await
        .expect("write");
    store.close().await.expect("close");
    drop(store);
    let left = dir.path().join("snapshots/S/streaming-3.tmp");
    std::fs::write(&left, b"half a snapshot").expect("write");
    let store = FileStore::open_async(dir.path(), Default::default())
        .await
        .expect("reopen");
    assert!(!left.exists(), "the crashed stream is removed");
    assert_eq!(store.list_snapshots("S").await.expect("list"), [4]);
    store.close().await.expect("close");
}
