//! Subscriptions and process managers over the file store.
//!
//! - `catch_up`: read a stored log of 1M events, the consumer doing nothing:
//!   the raw store tail (`next_batch`, the floor), `db.events(1)` (the
//!   hand-written loop), a named subscription with no filter, and one with a
//!   type filter that decodes every event.
//! - `live`: events appended while the consumer follows (one appender task
//!   appending batches of 100): `db.events` beside a subscription.
//! - `reactions`: a process manager answering each of 5 000 events with one
//!   appended event (causation, correlation, idempotency key), with default
//!   checkpoints and with one every 1 000 events, beside a hand-written loop
//!   over `db.events(..)` that appends the same event with `append_with` (no
//!   dedupe, no checkpoint).
//!
//! `cargo bench -p foldkit --bench subscribe -- --warm-up-time 1 --measurement-time 3`

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use foldkit::prelude::*;
use foldkit::process::{Declare, ProcessManager, ProcessOptions, Reacts};
use foldkit::{EventContext, Reaction};
use futures::StreamExt;

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
enum Ev {
    Set { id: u64, value: u64 },
}

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
enum Echo {
    Seen { id: u64 },
}

struct Echoer;

impl ProcessManager for Echoer {
    const NAME: &'static str = "echo";
    type State = u64;
    fn declare(d: &mut Declare<Self>) {
        d.on::<Ev>().appends::<Echo>();
    }
}

impl Reacts<Ev> for Echoer {
    fn apply(seen: &mut u64, _: &Ev, _: &Meta) {
        *seen += 1;
    }
    fn react(_: &u64, Ev::Set { id, .. }: &Ev, _: &Meta) -> Vec<Reaction> {
        vec![Reaction::append(&Echo::Seen { id: *id })]
    }
}

const CATCH_UP: u64 = 1_000_000;
const LIVE: u64 = 100_000;
const REACTIONS: u64 = 5_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn open(dir: &std::path::Path) -> Db {
    Db::builder(dir)
        .fsync(FsyncPolicy::Never)
        .event::<Ev>()
        .event::<Echo>()
        .open()
        .await
        .expect("open")
}

async fn fill(db: &Db, count: u64) {
    let mut id = 0;
    while id < count {
        let batch: Vec<Ev> = (id..(id + 1000).min(count))
            .map(|id| Ev::Set { id, value: id * 3 })
            .collect();
        id += batch.len() as u64;
        db.append_batch(batch).await.expect("append");
    }
}

fn catch_up(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = rt.block_on(async {
        let db = open(dir.path()).await;
        fill(&db, CATCH_UP).await;
        db.close().await.expect("close");
        // Reopened: the log is on disk, as after a restart.
        open(dir.path()).await
    });
    let mut group = c.benchmark_group("catch_up");
    group.sample_size(10);
    group.throughput(Throughput::Elements(CATCH_UP));
    group.bench_function("store_tail", |b| {
        b.to_async(&rt).iter(|| async {
            let mut tail = db.store().tail(1);
            let mut seen = 0;
            while seen < CATCH_UP {
                seen += tail.next_batch(1024).await.expect("tail").len() as u64;
            }
        })
    });
    group.bench_function("db_events_loop", |b| {
        b.to_async(&rt).iter(|| async {
            let mut events = db.events(1);
            for _ in 0..CATCH_UP {
                events.next().await.expect("event").expect("ok");
            }
        })
    });
    group.bench_function("subscription", |b| {
        b.to_async(&rt).iter(|| async {
            let mut sub = db
                .subscribe("bench")
                .batch_size(1024)
                .start()
                .await
                .expect("start");
            for _ in 0..CATCH_UP {
                sub.next().await.expect("event").expect("ok");
            }
        })
    });
    group.bench_function("subscription_typed", |b| {
        b.to_async(&rt).iter(|| async {
            let mut sub = (db.subscribe("typed").events::<Ev>().batch_size(1024))
                .start()
                .await
                .expect("start");
            for _ in 0..CATCH_UP {
                sub.next().await.expect("event").expect("ok");
            }
        })
    });
    group.finish();
    rt.block_on(db.close()).expect("close");
}

fn live(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("live");
    group.sample_size(10);
    group.throughput(Throughput::Elements(LIVE));
    for named in [false, true] {
        let label = if named {
            "subscription"
        } else {
            "db_events_loop"
        };
        group.bench_function(label, |b| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let db = open(dir.path()).await;
                    let began = Instant::now();
                    let writer = {
                        let db = db.clone();
                        tokio::spawn(async move { fill(&db, LIVE).await })
                    };
                    if named {
                        let mut sub = db.subscribe("live").start().await.expect("start");
                        for _ in 0..LIVE {
                            sub.next().await.expect("event").expect("ok");
                        }
                    } else {
                        let mut events = db.events(1);
                        for _ in 0..LIVE {
                            events.next().await.expect("event").expect("ok");
                        }
                    }
                    total += began.elapsed();
                    writer.await.expect("writer");
                    db.close().await.expect("close");
                }
                total
            })
        });
    }
    group.finish();
}

fn reactions(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("reactions");
    group.sample_size(10);
    group.throughput(Throughput::Elements(REACTIONS));
    // Default options (a checkpoint every second or 100 000 events: none
    // falls in the run, the dispatch path alone), and a checkpoint every 1 000
    // events (what a checkpoint costs: store sync + snapshot write).
    for (label, options) in [
        ("process_manager", ProcessOptions::default()),
        (
            "process_manager_checkpoint_every_1000",
            ProcessOptions::default().checkpoints(1000, Duration::from_secs(3600)),
        ),
    ] {
        group.bench_function(label, |b| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let db = Db::builder(dir.path())
                        .fsync(FsyncPolicy::Never)
                        .process_manager_with::<Echoer>(options)
                        .open()
                        .await
                        .expect("open");
                    let echo = db.process_manager::<Echoer>().expect("registered");
                    let began = Instant::now();
                    fill(&db, REACTIONS).await;
                    echo.settle().await.expect("settle");
                    total += began.elapsed();
                    db.close().await.expect("close");
                }
                total
            })
        });
    }
    group.bench_function("db_events_loop", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let db = open(dir.path()).await;
                let began = Instant::now();
                let reactor = {
                    let db = db.clone();
                    tokio::spawn(async move {
                        let mut events = db.events(1);
                        let mut done = 0;
                        while done < REACTIONS {
                            let (record, meta) = events.next().await.expect("event").expect("ok");
                            let Some(Ev::Set { id, .. }) =
                                foldkit::subscribe::decode::<Ev>(&record).expect("decode")
                            else {
                                continue;
                            };
                            let context = EventContext::new()
                                .caused_by(meta.seq)
                                .correlation_id(format!("seq-{}", meta.seq));
                            db.append_with(Echo::Seen { id }, context)
                                .await
                                .expect("append");
                            done += 1;
                        }
                    })
                };
                fill(&db, REACTIONS).await;
                reactor.await.expect("reactor");
                total += began.elapsed();
                db.close().await.expect("close");
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, catch_up, live, reactions);
criterion_main!(benches);
