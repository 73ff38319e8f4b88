//! Reading a directory read-only, as the `foldkit` tool does.
//!
//! - `inspect_events`: every event of a closed directory of 200 000 events
//!   (100-byte bodies, 1 MiB segments, so ~25 segments): the storage scan
//!   visiting each record with its envelope (`Directory::events`, the
//!   hand-written floor: one pass over the files), beside reading the same
//!   log through the store seam (`DirectoryStore::read` in pages of 1024, what
//!   `foldkit events` does for every store), and the file store itself (which
//!   locks the directory and keeps an index: what a service reads with).
//!
//! `cargo bench -p foldkit --bench inspect -- --warm-up-time 1 --measurement-time 3`

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use foldkit::inspect::{Directory, EventFilter};
use foldkit::store::{AppendBatch, EventStore, FileStore, FileStoreOptions, NewEvent};

const EVENTS: u64 = 200_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn options() -> FileStoreOptions {
    let mut options = FileStoreOptions::default();
    options.segment_size = Some(1 << 20);
    options.fsync = Some(foldkit::FsyncPolicy::Never);
    options
}

/// A closed directory of `EVENTS` events.
fn directory(rt: &tokio::runtime::Runtime) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    rt.block_on(async {
        let store = FileStore::open_async(dir.path(), options())
            .await
            .expect("open");
        for chunk in 0..EVENTS / 100 {
            let events = (0..100)
                .map(|i| NewEvent {
                    name: Arc::from("Ev"),
                    schema_version: 1,
                    payload: vec![(chunk + i) as u8; 100],
                })
                .collect();
            store
                .append(AppendBatch::new(events))
                .await
                .expect("append");
        }
        store.close().await.expect("close");
    });
    dir
}

async fn read_all(store: &dyn EventStore) -> u64 {
    let (mut from, mut n) = (1, 0);
    loop {
        let page = store.read(from, 1024).await.expect("read");
        let Some(last) = page.last() else { return n };
        n += page.len() as u64;
        from = last.position + 1;
    }
}

fn inspect_events(c: &mut Criterion) {
    let rt = runtime();
    let dir = directory(&rt);
    let directory = Directory::open(dir.path()).expect("a foldkit directory");
    let mut group = c.benchmark_group("inspect_events");
    group.sample_size(10);
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function("directory_scan", |b| {
        b.iter(|| {
            let mut n = 0u64;
            directory
                .events(&EventFilter::default(), |event| {
                    n += u64::from(event.envelope.is_ok());
                    true
                })
                .expect("scan");
            assert_eq!(n, EVENTS);
        })
    });
    group.bench_function("directory_store_read", |b| {
        b.iter(|| {
            let store = directory.store();
            assert_eq!(rt.block_on(read_all(&store)), EVENTS);
        })
    });
    group.bench_function("file_store_read", |b| {
        b.iter(|| {
            let n = rt.block_on(async {
                let store = FileStore::open_async(dir.path(), options())
                    .await
                    .expect("open");
                let n = read_all(&store).await;
                store.close().await.expect("close");
                n
            });
            assert_eq!(n, EVENTS);
        })
    });
    group.finish();
}

criterion_group!(benches, inspect_events);
criterion_main!(benches);
