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
