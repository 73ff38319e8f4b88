//! Watchers and ingest: events/s appended and folded with 0, 100 and 1,000 idle
//! watchers (filters the events never match) and with 100 watchers they match; and
//! the latency from `append` to a watcher's emission, beside `append` +
//! `wait_for_seq` (the fold alone, folded by the waiter) and beside two bare
//! cross-task wake-ups (the floor for appender → fold task → watcher).
//!
//! `cargo bench -p foldkit --bench watch`

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use foldkit::prelude::*;
use futures::StreamExt;

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
enum Ev {
    Set { id: u64, kind: u32, value: u64 },
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Item {
    #[entity(id)]
    id: u64,
    #[entity(index)]
    kind: u32,
    value: u64,
}

#[derive(State, Default, Serialize, Deserialize)]
#[state(event = Ev)]
struct Items {
    items: Table<Item>,
}

impl Apply<Ev> for Items {
    fn apply(&mut self, Ev::Set { id, kind, value }: Ev, _: &Meta) -> Result<(), FoldError> {
        self.items.insert(Item { id, kind, value });
        Ok(())
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn open(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> Db {
    let open = Db::builder(dir)
        .fsync(FsyncPolicy::Never)
        .state::<Items>()
        .snapshot_on_close(false)
        .open();
    rt.block_on(open).expect("open")
}

fn ingest_with_watchers(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("ingest_with_watchers");
    group.throughput(Throughput::Elements(1));
    for (label, watchers, matching) in [
        ("idle", 0u32, false),
        ("idle", 100, false),
        ("idle", 1000, false),
        ("matching", 100, true),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&rt, dir.path());
        let items = db.state::<Items>();
        // Each watcher runs as a task that drains its stream, like a UI would.
        let tasks: Vec<_> = (0..watchers)
            .map(|w| {
                let kind = if matching { w % 10 } else { 1_000_000 + w };
                let mut stream = items
                    .watch(|s| &s.items)
                    .where_kind(kind)
                    .limit(10)
                    .stream();
                rt.spawn(async move { while stream.next().await.is_some() {} })
            })
            .collect();
        group.bench_function(BenchmarkId::new(label, watchers), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    let mut last = 0;
                    for i in 0..iters {
                        last = db
                            .append(Ev::Set {
                                id: i % 1000,
                                kind: (i % 10) as u32,
                                value: i,
                            })
                            .await
                            .expect("append");
                    }
                    items.wait_for_seq(last).await.expect("fold");
                    start.elapsed()
                })
            })
        });
        rt.block_on(db.close()).expect("close");
        for task in tasks {
            task.abort();
        }
    }
    group.finish();
}

/// From `append` to the watcher's emission of the appended row, beside `append` +
/// `wait_for_seq` (the fold alone) in the same run.
fn append_to_emission(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(&rt, dir.path());
    let items = db.state::<Items>();
    let mut stream = items.watch(|s| &s.items).where_id(7u64).stream();
    rt.block_on(stream.next()).expect("first");
    let mut value = 0u64;
    let mut group = c.benchmark_group("append_to_emission");
    group.bench_function("baseline_append_wait_for_seq", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    value += 1;
                    let seq = db
                        .append(Ev::Set {
                            id: 8,
                            kind: 0,
                            value,
                        })
                        .await
                        .expect("append");
                    items.wait_for_seq(seq).await.expect("fold");
                }
                start.elapsed()
            })
        })
    });
    // The floor: the same two cross-task wake-ups (appender → fold task → watcher)
    // with no work between them: ping a task through one `Notify`, await its pong.
    let ping = std::sync::Arc::new(tokio::sync::Notify::new());
    let pong = std::sync::Arc::new(tokio::sync::Notify::new());
    let echo = rt.spawn({
        let (ping, pong) = (ping.clone(), pong.clone());
        async move {
            loop {
                ping.notified().await;
                pong.notify_one();
            }
        }
    });
    group.bench_function("baseline_two_task_wakeups", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    ping.notify_one();
                    pong.notified().await;
                }
                start.elapsed()
            })
        })
    });
    echo.abort();
    group.bench_function("watch", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    value += 1;
                    db.append(Ev::Set {
                        id: 7,
                        kind: 0,
                        value,
                    })
                    .await
                    .expect("append");
                    let emitted = tokio::time::timeout(Duration::from_secs(5), stream.next())
                        .await
                        .expect("watch emission stalled")
                        .expect("stream open");
                    assert_eq!(emitted[0].value, value);
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    rt.block_on(db.close()).expect("close");
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = ingest_with_watchers, append_to_emission
}
criterion_main!(benches);
