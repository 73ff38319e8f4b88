//! Snapshots: encode/decode of a state holding a 1K-row table, beside postcard
//! of the same rows as a plain `Vec` (hand-written baseline), and the streamed encode
//! a snapshot write uses beside the one-blob encode; and opening a
//! 1M-event log with no snapshot vs with a snapshot 1,000 events from the tail.
//!
//! `cargo bench -p foldkit --bench snapshot`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use foldkit::prelude::*;
use foldkit::snapshot::codec;

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Row {
    #[entity(id)]
    id: u64,
    #[entity(index)]
    customer: String,
    total_cents: u64,
    tags: Vec<String>,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
enum Tick {
    Add(u64),
}

#[derive(State, Default, Serialize, Deserialize)]
#[state(event = Tick)]
struct Book {
    rows: Table<Row>,
    sum: u64,
}

impl Apply<Tick> for Book {
    fn apply(&mut self, Tick::Add(n): Tick, _: &Meta) -> Result<(), FoldError> {
        self.sum += n;
        Ok(())
    }
}

fn row(i: u64) -> Row {
    Row {
        id: i,
        customer: format!("customer-{}", i % 97),
        total_cents: i * 13,
        tags: vec![format!("tag{}", i % 5)],
    }
}

/// The identity of a (made-up) record at seq 1000.
const LAST: foldkit::snapshot::RecordIdentity = foldkit::snapshot::RecordIdentity {
    seq: 1000,
    timestamp: 1_700_000_000_000,
    payload_crc: 0x1234_5678,
};

fn encode_decode(c: &mut Criterion) {
    let rows: Vec<Row> = (0..1000).map(row).collect();
    let mut book = Book::default();
    for r in &rows {
        book.rows.insert(r.clone());
    }
    let blob = codec::encode(&book, Some(LAST)).expect("encode");
    let plain = postcard::to_allocvec(&rows).expect("encode");
    let mut group = c.benchmark_group("snapshot_1k_rows");
    group.bench_function("baseline_postcard_vec_encode", |b| {
        b.iter(|| postcard::to_allocvec(black_box(&rows)))
    });
    group.bench_function("encode", |b| {
        b.iter(|| codec::encode(black_box(&book), Some(LAST)))
    });
    // The streamed encode of a snapshot write (chunks, checksum on the way), into a sink
    // that keeps nothing: the cost of streaming beside `encode`'s one blob.
    group.bench_function("encode_streamed", |b| {
        b.iter(|| codec::encode_to(black_box(&book), Some(LAST), &mut std::io::sink()))
    });
    group.bench_function("baseline_postcard_vec_decode", |b| {
        b.iter(|| postcard::from_bytes::<Vec<Row>>(black_box(&plain)).expect("decode"))
    });
    group.bench_function("decode_with_index_rebuild", |b| {
        b.iter(|| codec::decode::<Book>(black_box(&blob)).expect("decode"))
    });
    group.finish();
}

const EVENTS: u64 = 1_000_000;

async fn build(dir: &std::path::Path, snapshot_at: Option<u64>) {
    let db = Db::builder(dir)
        .fsync(FsyncPolicy::Never)
        .segment_size(4 << 20)
        .state::<Book>()
        .snapshot_on_close(false)
        .open()
        .await
        .expect("open");
    let mut appended = 0;
    while appended < EVENTS {
        let batch: Vec<Tick> = (0..1000).map(|i| Tick::Add(appended + i)).collect();
        appended = *db.append_batch(batch).await.expect("batch").end();
        if Some(appended) == snapshot_at {
            db.state::<Book>()
                .wait_for_seq(appended)
                .await
                .expect("fold");
            db.snapshot_to_disk().await.expect("snapshot");
        }
    }
    db.close().await.expect("close");
}

async fn open_and_catch_up(dir: &std::path::Path) -> u64 {
    let db = Db::builder(dir)
        .fsync(FsyncPolicy::Never)
        .segment_size(4 << 20)
        .state::<Book>()
        .snapshot_on_close(false)
        .open()
        .await
        .expect("open");
    let book = db.state::<Book>();
    book.wait_for_seq(EVENTS).await.expect("caught up");
    let sum = book.read().sum;
    db.close().await.expect("close");
    sum
}

fn restart(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let full = tempfile::tempdir().expect("tempdir");
    let snapshotted = tempfile::tempdir().expect("tempdir");
    rt.block_on(build(full.path(), None));
    rt.block_on(build(snapshotted.path(), Some(EVENTS - 1000)));
    let expected = rt.block_on(open_and_catch_up(full.path()));
    assert_eq!(
        rt.block_on(open_and_catch_up(snapshotted.path())),
        expected,
        "same state either way"
    );
    let mut group = c.benchmark_group("open_1M_events");
    group.sample_size(10);
    group.bench_function("full_replay", |b| {
        b.iter(|| rt.block_on(open_and_catch_up(full.path())))
    });
    group.bench_function("snapshot_1000_from_tail", |b| {
        b.iter(|| rt.block_on(open_and_catch_up(snapshotted.path())))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = encode_decode, restart
}
criterion_main!(benches);
