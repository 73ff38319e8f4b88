//! Ingest: events appended to the log and folded into a state, per second, beside
//! a hand-written baseline that folds the same events in a plain loop (no log, no
//! tasks); the latency of one append + `wait_for_seq` (read-your-writes), beside
//! a bare log append; and, on the one log of many event types, how fast a state
//! that folds one of four interleaved types skips the other three (the fold's
//! own cost over records in memory, beside a loop that only compares names, and
//! a whole replay from disk).
//!
//! `cargo bench -p foldkit --bench ingest -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use foldkit::storage::{Log, LogOptions};
use foldkit::store::RecordedEvent;
use foldkit::{Apply, CodecError, Db, Event, FoldCause, FoldError, FsyncPolicy, Meta, State};
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
        self.apply(event, _meta).map_err(FoldCause::Apply)?;
        Ok(true)
    }
}

impl Apply<Tick> for Totals {
    fn apply(&mut self, event: Tick, _: &Meta) -> Result<(), FoldError> {
        let Tick::Add { key, amount } = event;
        let key = key as usize % 64;
        if self.buckets.len() <= key {
            self.buckets.resize(key + 1, 0);
        }
        self.buckets[key] += amount;
        self.events += 1;
        Ok(())
    }
}

/// Three more event types, interleaved with `Tick` in the one log.
macro_rules! other_event {
    ($name:ident, $stable:literal) => {
        #[derive(Serialize, Deserialize, Clone, Debug)]
        struct $name(u64);

        impl Event for $name {
            const NAME: &'static str = $stable;
            const VERSION: u32 = 1;
            fn variant_name(&self) -> &'static str {
                stringify!($name)
            }
            fn decode(version: u32, bytes: &[u8]) -> Result<Self, CodecError> {
                foldkit::__private::decode_oldest(version, bytes)
            }
        }
    };
}
other_event!(Other1, "other1");
other_event!(Other2, "other2");
other_event!(Other3, "other3");

/// One in four records is a `Tick`.
fn interleaved(i: u64) -> RecordedEvent {
    match i % 4 {
        0 => RecordedEvent::encode(i + 1, 0, &tick(i)),
        1 => RecordedEvent::encode(i + 1, 0, &Other1(i)),
        2 => RecordedEvent::encode(i + 1, 0, &Other2(i)),
        _ => RecordedEvent::encode(i + 1, 0, &Other3(i)),
    }
    .expect("encode")
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
                .apply(black_box(tick(i)), &Meta::new(i, 0, 1))
                .expect("apply");
        });
        black_box(state.events);
    });

    // Baseline: decode the stored payloads (postcard) and fold them in a plain
    // loop: the fold task's work without the store, the task and the lock.
    let payloads: Vec<Vec<u8>> = (0..1024u64)
        .map(|i| tick(i).encode().expect("encode"))
        .collect();
    group.bench_function("baseline_decode_and_fold_in_memory", |b| {
        let mut state = Totals::default();
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            let bytes = &payloads[i as usize % payloads.len()];
            let event = Tick::decode(Tick::VERSION, black_box(bytes)).expect("decode");
            state.apply(event, &Meta::new(i, 0, 1)).expect("apply");
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

fn skip_other_types(c: &mut Criterion) {
    let mut group = c.benchmark_group("one_log_skip");
    const RECORDS: u64 = 4096;
    group.throughput(Throughput::Elements(RECORDS));
    let records: Vec<RecordedEvent> = (0..RECORDS).map(interleaved).collect();
    let metas: Vec<Meta> = records.iter().map(Meta::of).collect();

    // The fold's work per record: the state's `apply_recorded` (decode and
    // apply a Tick, skip the other three from the name alone).
    group.bench_function("fold_1_of_4_types", |b| {
        b.iter(|| {
            let mut state = Totals::default();
            for (record, meta) in records.iter().zip(&metas) {
                black_box(state.apply_recorded(record, meta).expect("fold"));
            }
            black_box(state.events)
        });
    });

    // Baseline: a hand-written loop that compares names and folds the Ticks.
    group.bench_function("baseline_match_names_1_of_4", |b| {
        b.iter(|| {
            let mut state = Totals::default();
            for (record, meta) in records.iter().zip(&metas) {
                if &*record.name == Tick::NAME {
                    let event =
                        Tick::decode(record.schema_version, &record.payload).expect("decode");
                    state.apply(event, meta).expect("apply");
                }
            }
            black_box(state.events)
        });
    });
    group.finish();

    // A whole replay from disk: open a Db whose state folds Ticks only, over a
    // log of 200K records of four interleaved types.
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    const LOG: u64 = 200_000;
    rt.block_on(async {
        let db = Db::builder(dir.path())
            .fsync(FsyncPolicy::Never)
            .snapshot_on_close(false)
            .event::<Tick>()
            .event::<Other1>()
            .event::<Other2>()
            .event::<Other3>()
            .open()
            .await
            .expect("open");
        for chunk in 0..LOG / 1000 {
            let first = chunk * 1000;
            for kind in 0..4u64 {
                let ids = (first..first + 1000).filter(|i| i % 4 == kind);
                match kind {
                    0 => drop(db.append_batch(ids.map(tick)).await.expect("append")),
                    1 => drop(db.append_batch(ids.map(Other1)).await.expect("append")),
                    2 => drop(db.append_batch(ids.map(Other2)).await.expect("append")),
                    _ => drop(db.append_batch(ids.map(Other3)).await.expect("append")),
                }
            }
        }
        db.close().await.expect("close");
    });
    let mut group = c.benchmark_group("one_log_replay");
    group.sample_size(10);
    group.throughput(Throughput::Elements(LOG));
    group.bench_function("replay_200k_fold_1_of_4_types", |b| {
        b.iter(|| {
            rt.block_on(async {
                let db = Db::builder(dir.path())
                    .snapshot_on_close(false)
                    .state::<Totals>()
                    .event::<Other1>()
                    .event::<Other2>()
                    .event::<Other3>()
                    .open()
                    .await
                    .expect("open");
                db.state::<Totals>()
                    .wait_for_seq(LOG)
                    .await
                    .expect("replay");
                db.close().await.expect("close");
            })
        });
    });
    group.finish();
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
    targets = ingest, append_wait_latency, skip_other_types
}
criterion_main!(benches);
