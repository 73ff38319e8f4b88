//! `Db::close` reports the storage error that made it fail, never "the Db is
//! closed" (issue 14: `storage_error` mapped every error to `Closed` once the
//! closed flag was set).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use foldkit::DbError;
use foldkit::prelude::*;

mod common;
use common::{Ev, Sum};

/// A Db whose fsyncs fail once `fail` is set.
async fn failing_db(dir: &std::path::Path, policy: FsyncPolicy, fail: &Arc<AtomicBool>) -> Db {
    let fail = Arc::clone(fail);
    Db::builder(dir)
        .fsync(policy)
        .snapshot_on_close(false)
        .fsync_hook(Arc::new(move || {
            if fail.load(Ordering::SeqCst) {
                Err(std::io::Error::other("injected fsync failure"))
            } else {
                Ok(())
            }
        }))
        .state::<Sum>()
        .open()
        .await
        .expect("open")
}

#[tokio::test]
async fn close_after_a_poisoned_log_returns_the_storage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fail = Arc::new(AtomicBool::new(false));
    let db = failing_db(dir.path(), FsyncPolicy::Always, &fail).await;
    db.append(Ev::Add(1)).await.expect("append");
    fail.store(true, Ordering::SeqCst);
    let error = db.append(Ev::Add(2)).await.expect_err("the fsync fails");
    assert!(matches!(error, DbError::Store(_)), "{error:?}");
    let error = db.close().await.expect_err("close must report the failure");
    assert!(
        matches!(&error, DbError::Store(_)),
        "close returned {error:?}"
    );
    // The failure was reported once; the Db is closed all the same.
    db.close().await.expect("a second close is a no-op");
    assert!(matches!(db.append(Ev::Add(3)).await, Err(DbError::Closed)));
}

#[tokio::test]
async fn a_failed_sync_at_close_is_returned_as_a_storage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fail = Arc::new(AtomicBool::new(false));
    let db = failing_db(dir.path(), FsyncPolicy::Never, &fail).await;
    db.append(Ev::Add(1)).await.expect("append");
    fail.store(true, Ordering::SeqCst);
    let error = db.close().await.expect_err("close must report the failure");
    assert!(
        matches!(error, DbError::Store(_)),
        "close returned {error:?}"
    );
    // The directory is released even so.
    let reopened = Db::builder(dir.path()).state::<Sum>().open().await;
    reopened.expect("reopen").close().await.expect("close");
}
