//! Commands per second through `Aggregates::execute` (load from cache, handle,
//! append one event with its version check, apply), on one hot instance and spread
//! over 10,000 instances, beside a hand-written baseline that runs the same
//! handle + apply on an in-memory struct with no log.
//!
//! Also: the first command after reopening a Db of 1M events in 100K streams
//! (the stream index is loaded from `streams.idx`, not rebuilt by a scan), on
//! a stream of 10 events that no earlier iteration touched, beside the same
//! first command on a new stream (nothing to read: the cold-cache floor), on a
//! stream whose 10 events one command appended together (one range read), a
//! second command after a first one (the history read alone), and a warm
//! command on the same Db.
//!
//! `cargo bench -p foldkit --bench aggregate`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use foldkit::{Aggregate, CodecError, Db, Event, FsyncPolicy};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
enum CounterEvent {
    Added(u64),
}

impl Event for CounterEvent {
    const NAME: &'static str = "bench_counter";
    const VERSION: u32 = 1;
    fn variant_name(&self) -> &'static str {
        "Added"
    }
    fn decode(version: u32, bytes: &[u8]) -> Result<Self, CodecError> {
        foldkit::__private::decode_oldest(version, bytes)
    }
}

#[derive(Default, Clone)]
struct Counter {
    value: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("the counter would overflow")]
struct Overflow;

impl Aggregate for Counter {
    const NAME: &'static str = "counter";
    type Event = CounterEvent;
    type Command = u64;
    type Error = Overflow;
    fn handle(&self, by: u64) -> Result<Vec<CounterEvent>, Overflow> {
        self.value.checked_add(by).ok_or(Overflow)?;
        Ok(vec![CounterEvent::Added(by)])
    }
    fn apply(&mut self, CounterEvent::Added(by): &CounterEvent) {
        self.value += by;
    }
}

const SPREAD: u64 = 10_000;

fn commands(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("aggregate_commands");
    group.throughput(Throughput::Elements(1));

    // Baseline: the same decide + evolve on in-memory structs, no log.
    group.bench_function("baseline_in_memory_one", |b| {
        let mut counter = Counter::default();
        b.iter(|| {
            for e in counter.handle(black_box(1)).expect("handle") {
                counter.apply(&e);
            }
        });
        black_box(counter.value);
    });
    group.bench_function("baseline_in_memory_10k", |b| {
        let mut counters = vec![Counter::default(); SPREAD as usize];
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) % counters.len();
            let counter = &mut counters[i];
            for e in counter.handle(black_box(1)).expect("handle") {
                counter.apply(&e);
            }
        });
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let db = rt
        .block_on(
            Db::builder(dir.path())
                .fsync(FsyncPolicy::Never)
                .aggregate::<Counter>()
                .open(),
        )
        .expect("open");
    let counters = db.aggregate::<Counter>();
    group.bench_function("execute_one_hot_aggregate", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    counters.execute(0, 1).await.expect("execute");
                }
                start.elapsed()
            })
        });
    });
    // Warm every instance once so the measurement is of cached instances.
    rt.block_on(async {
        for id in 0..SPREAD {
            counters.execute(id, 1).await.expect("execute");
        }
    });
    group.bench_function("execute_spread_over_10k_aggregates", |b| {
        let mut id = 0u64;
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    id = (id + 1) % SPREAD;
                    counters.execute(id, 1).await.expect("execute");
                }
                start.elapsed()
            })
        });
    });
    group.finish();
    rt.block_on(db.close()).expect("close");
}

/// The first `execute` after a reopen, beside a warm one.
fn first_command_after_reopen(c: &mut Criterion) {
    const EVENTS: u64 = 1_000_000;
    const STREAMS: u64 = 100_000;
    const BATCHED: u64 = 1_000;
    const BATCHED_IDS: u64 = 10_000_000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let open = |dir: std::path::PathBuf| async move {
        Db::builder(dir)
            .fsync(FsyncPolicy::Never)
            .aggregate::<Counter>()
            .open()
            .await
            .expect("open")
    };
    rt.block_on(async {
        let db = open(dir.path().to_path_buf()).await;
        // Events go straight to their streams in batches: the log holds 1M
        // stream events, 10 per instance.
        for round in 0..EVENTS / STREAMS {
            for id in 0..STREAMS {
                let stream = format!("counter/{id}");
                db.append_to(
                    &stream,
                    foldkit::ExpectedVersion::Exact(round),
                    [CounterEvent::Added(1)],
                )
                .await
                .expect("append");
            }
        }
        // And a few streams whose 10 events came from one command (one batch,
        // consecutive positions): read back in one range, not one read per event.
        for k in 0..BATCHED {
            db.append_to(
                &format!("counter/{}", BATCHED_IDS + k),
                foldkit::ExpectedVersion::NoStream,
                (0..EVENTS / STREAMS).map(|_| CounterEvent::Added(1)),
            )
            .await
            .expect("append");
        }
        db.close().await.expect("close");
    });
    let mut group = c.benchmark_group("aggregate_after_reopen");
    group.sample_size(10);
    // Every measured command runs on a stream no earlier iteration touched
    // (criterion calls each routine several times, restarting its `iters`):
    // a stream of exactly `EVENTS / STREAMS` events, read from the log, never
    // one that an earlier command grew or left in the page cache's hot spots.
    let mut next = 0u64;
    let mut fresh = move || {
        next += 1;
        assert!(next < STREAMS / 2, "the bench ran out of untouched streams");
        next
    };
    let history = EVENTS / STREAMS;
    // Per iteration: open the Db, run the command `pick` names (after a first one
    // on its `warm` stream, if any), time it, check the version it left, close.
    let time_after_reopen = |iters: u64, pick: &mut dyn FnMut() -> (Option<u64>, u64, u64)| {
        rt.block_on(async {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let (warm, id, version) = pick();
                let db = open(dir.path().to_path_buf()).await;
                let counters = db.aggregate::<Counter>();
                if let Some(warm) = warm {
                    counters.execute(warm, 1).await.expect("execute");
                }
                let start = Instant::now();
                let done = counters.execute(id, 1).await.expect("execute");
                spent += start.elapsed();
                assert_eq!(done.version, version, "stream {id}");
                db.close().await.expect("close");
            }
            spent
        })
    };
    group.bench_function("open_then_first_execute_1m_events", |b| {
        b.iter_custom(|iters| time_after_reopen(iters, &mut || (None, fresh(), history + 1)))
    });
    // The first command on a stream whose 10 events were appended together.
    let mut next_batched = 0u64;
    group.bench_function("open_then_first_execute_batched_history", |b| {
        b.iter_custom(|iters| {
            time_after_reopen(iters, &mut || {
                next_batched += 1;
                assert!(
                    next_batched < BATCHED,
                    "the bench ran out of batched streams"
                );
                (None, BATCHED_IDS + next_batched, history + 1)
            })
        })
    });
    // The same first command, on a stream with no events: nothing to read, so
    // what is left is the cost of running cold code on cold caches right after
    // the open (which streams tens of MB through them).
    group.bench_function("open_then_first_execute_new_stream", |b| {
        b.iter_custom(|iters| time_after_reopen(iters, &mut || (None, STREAMS + fresh(), 1)))
    });
    // A command on a stream of `history` events from the log, but after a
    // first command warmed the code: the cost of reading the history alone.
    group.bench_function("open_then_second_execute_1m_events", |b| {
        b.iter_custom(|iters| {
            time_after_reopen(iters, &mut || {
                let (warm, id) = (STREAMS + fresh(), fresh());
                (Some(warm), id, history + 1)
            })
        })
    });
    let db = rt.block_on(open(dir.path().to_path_buf()));
    let counters = db.aggregate::<Counter>();
    rt.block_on(counters.execute(7, 1)).expect("warm up");
    group.bench_function("warm_execute_1m_events", |b| {
        b.iter(|| rt.block_on(counters.execute(7, 1)).expect("execute"));
    });
    group.finish();
    rt.block_on(db.close()).expect("close");
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = commands, first_command_after_reopen
}
criterion_main!(benches);
