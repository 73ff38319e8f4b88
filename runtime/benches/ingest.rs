//! Ingest: events appended to the log and folded into a state, per second, beside
//! a hand-written baseline that folds the same events in a plain loop (no log, no
//! tasks); and the latency of one append + `wait_for_seq` (read-your-writes),
//! beside a bare log append.
//!
//! `cargo bench -p foldkit --bench ingest -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use foldkit::storage::{Log, LogOptions};
use foldkit::{CodecError, Db, Envelope, Event, FoldError, FsyncPolicy, Meta, State};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
enum Tick {
    Add { key: u32, amount: u64 },
}

impl Event for Tick {
    const NAME: &'static str = "tick";
    const VERSION: u32 = 1;
    fn variant_name(&self) -> &'static str {
        "Add"
    }
    fn decode(version: u32, bytes: &[u8]) -> Result<Self, CodecError> {
        foldkit::__private::decode_oldest(version, bytes)
    }
}

#[derive(Default, Serialize, Deserialize)]
struct Totals {
    buckets: Vec<u64>,
    events: u64,
}

impl State for Totals {
    const NAME: &'static str = "Totals";
    const VERSION: u32 = 1;
    const FINGERPRINT: u64 = 0;

    const EVENTS: &'static [foldkit::EventType] = &[foldkit::EventType::of::<Tick>()];

    fn apply_recorded(
        &mut self,
        recorded: &foldkit::__private::RecordedEvent,
        _meta: &Meta,
    ) -> Result<bool, FoldCause> {
        let Some(event) = foldkit::__private::decode_if::<Tick>(recorded)? else {
            return Ok(false);
        };
        let applied: Result<(), FoldError> = (|| {
            let Tick::Add { key, amount } = event;
            let key = key as usize % 64;
            if self.buckets.len() <= key {
                self.buckets.resize(key + 1, 0);
            }
            self.buckets[key] += amount;
            self.events += 1;
            Ok(())
        })();
        applied.map_err(FoldCause::Apply)?;
        Ok(true)
    }
}

fn tick(i: u64) -> Tick {
    Tick::Add {
        key: i as u32,
        amount: i,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn open(dir: &std::path::Path) -> Db {
    Db::builder(dir)
        .fsync(FsyncPolicy::Never)
        .state::<Totals>()
        .open()
        .await
        .expect("open db")
}

fn ingest(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(1));

    // Baseline: the same fold in a plain loop, no log, no decode.
    group.bench_function("baseline_fold_in_memory", |b| {
        let mut state = Totals::default();
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            state
                .apply_event(black_box(tick(i)), &Meta::new(i, 0, 1))
                .expect("apply");
        });
        black_box(state.events);
    });

    // Baseline: decode the stored bytes (envelope + postcard) and fold them in a
    // plain loop: the fold task's work without the log, the task and the lock.
    let payloads: Vec<Vec<u8>> = (0..1024u64)
        .map(|i| {
            let mut bytes = Vec::new();
            Envelope::write_header(&mut bytes, Tick::VERSION, None).expect("header");
            tick(i).encode_into(&mut bytes).expect("encode");
            bytes
        })
        .collect();
    group.bench_function("baseline_decode_and_fold_in_memory", |b| {
        let mut state = Totals::default();
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            let envelope =
                Envelope::decode(&payloads[i as usize % payloads.len()]).expect("envelope");
            let event = Tick::decode(envelope.version, black_box(envelope.body)).expect("decode");
            state
                .apply_event(event, &Meta::new(i, 0, envelope.version))
                .expect("apply");
        });
        black_box(state.events);
    });

    // Append one event at a time; wait once for the fold to catch up.
    let dir = tempfile::tempdir().expect("tempdir");
    let db = rt.block_on(open(dir.path()));
    let totals = db.state::<Totals>();
    group.bench_function("append_and_fold_fsync_never", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                let mut last = 0;
                for i in 0..iters {
                    last = db.append(tick(i)).await.expect("append");
                }
                totals.wait_for_seq(last).await.expect("folded");
                start.elapsed()
            })
        });
    });

    // The same events in batches of 100 (one `append_batch` each).
    group.bench_function("append_batch100_and_fold_fsync_never", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                let mut last = 0;
                let mut left = iters;
                let mut i = 0;
                while left > 0 {
                    let n = left.min(100);
                    let batch: Vec<Tick> = (i..i + n).map(tick).collect();
                    last = *db.append_batch(batch).await.expect("batch").end();
                    i += n;
                    left -= n;
                }
                totals.wait_for_seq(last).await.expect("folded");
                start.elapsed()
            })
        });
    });
    group.finish();
    rt.block_on(db.close()).expect("close");
}

fn append_wait_latency(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("append_wait_latency");

    // Baseline: a bare log append of the same encoded bytes, nothing folded.
    let raw_dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(
        raw_dir.path(),
        LogOptions::default().fsync(FsyncPolicy::Never),
    )
    .expect("log");
    let payload = postcard::to_allocvec(&tick(7)).expect("encode");
    group.bench_function("baseline_log_append", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(log.append(&payload).await.expect("append"));
                }
                start.elapsed()
            })
        });
    });
    rt.block_on(log.close()).expect("close");

    let dir = tempfile::tempdir().expect("tempdir");
    let db = rt.block_on(open(dir.path()));
    let totals = db.state::<Totals>();
    group.bench_function("append_then_wait_for_seq", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    let seq = db.append(tick(i)).await.expect("append");
                    totals.wait_for_seq(seq).await.expect("folded");
                }
                start.elapsed()
            })
        });
    });
    group.finish();
    rt.block_on(db.close()).expect("close");
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = ingest, append_wait_latency
}
criterion_main!(benches);
