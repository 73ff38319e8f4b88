//! foldkit beside Net (crates.io `net-mesh` 0.46, features `cortex`, `redex-disk`,
//! `netdb`) on Net's own benchmark workloads, in one run (issue #18).
//!
//! `cargo bench --manifest-path net-bench/Cargo.toml -- --warm-up-time 1 --measurement-time 3`
//!
//! The workloads are those of net-mesh's `benches/cortex.rs` and `benches/redex.rs`, with
//! the same data: tasks `1..=n` titled `task-{i}`, every third completed; memories
//! `1..=n`, tagged `alpha` (even `i`) or `beta` (odd). Each group holds a `net` and a
//! `foldkit` function (sometimes a second foldkit variant), so a ratio is read inside
//! one group of one run:
//!
//! - `find_unique/{n}`: the task with id 1 (`TasksState::find_unique` / `Table::get`).
//! - `tasks_find_many/{n}`: completed tasks (a third), cloned out (Net clones `Task`s).
//! - `tasks_count_where/{n}`: how many are completed.
//! - `memories_find_many_tag/{n}`: memories tagged `alpha` (half). Net hands out
//!   `Arc<Memory>` shares (a refcount bump per row); foldkit's `find_many_ref` borrows
//!   the rows (`Vec<&Memory>`, no copy): both hand back the rows without a deep copy.
//!   `foldkit_cloned` deep-copies them (`find_many`), for reference.
//! - `memories_count_where/{n}`: how many are tagged `alpha`.
//! - `ingest`: one event enqueued (Net: `create` / `store` onto its in-memory log, the
//!   fold running behind; foldkit: `db.append` onto its log file, `FsyncPolicy::Never`,
//!   the fold running behind). Net's own bench uses an in-memory (heap) log; foldkit has
//!   no in-memory log, so it writes a file and still has to be faster.
//! - `ingest_folded/1000`: 1,000 events enqueued one call each, then `wait_for_seq` of
//!   the last: `ingest` with the fold timed on both sides (foldkit's `append` folds a
//!   small batch in place before returning; Net's fold runs on another worker).
//! - `create_and_wait`: one event, then the read-your-writes barrier (`wait_for_seq`).
//! - `append_256b`: one 256-byte record appended to a log on disk, no fsync (Net's
//!   `redex_append_disk`, foldkit's `Log::append`); `net_heap` is Net's in-memory log.
//! - `snapshot/{n}`: encode each state (`adapter.snapshot()` / `handle.snapshot()`),
//!   decode the tasks state (Net: unwrap the adapter's payload, then postcard of
//!   `TasksState`; foldkit: `codec::decode`, which rebuilds the index), and encode /
//!   decode the two-state bundle (`NetDbSnapshot` / `Bundle`) from blobs made once.
//! - `replay/{n}`: open the tasks log from disk and fold it all (Net: persistent
//!   `TasksAdapter::open_with_config`; foldkit: `Db::open` + `wait_for_seq`), then close;
//!   both logs under `FsyncPolicy::Never` (Net's default).

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use foldkit::snapshot::{Bundle, codec};
use foldkit::storage::{Log, LogOptions};
use foldkit::{Db, FsyncPolicy};
use foldkit_net_bench::{
    Memories, Memory, MemoryEvent, Task, TaskEvent, TaskStatus, Tasks, folded, memory_events,
    task_events,
};
use net::adapter::net::channel::ChannelName;
use net::adapter::net::cortex::memories::{MemoriesAdapter, MemoriesFilter};
use net::adapter::net::cortex::tasks::{self as nt, TasksAdapter, TasksFilter};
use net::adapter::net::netdb::NetDbSnapshot;
use net::adapter::net::redex::{Redex, RedexFileConfig};
use tokio::runtime::Runtime;

const ORIGIN: u64 = 0xABCD_EF01;
const SIZES: [usize; 2] = [1_000, 10_000];

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Net's populate loop (`benches/cortex.rs`), through its adapter.
fn net_tasks(rt: &Runtime, redex: &Redex, config: RedexFileConfig, n: usize) -> TasksAdapter {
    let _enter = rt.enter();
    let config = RedexFileConfig {
        tail_buffer_size: (n * 2).max(1024),
        ..config
    };
    let tasks = rt
        .block_on(TasksAdapter::open_with_config(redex, ORIGIN, config))
        .expect("open net tasks");
    let mut last = 0;
    for i in 0..n {
        let id = (i + 1) as u64;
        last = tasks
            .create(id, format!("task-{i}"), i as u64)
            .expect("create");
        if i % 3 == 0 {
            last = tasks.complete(id, i as u64).expect("complete");
        }
    }
    rt.block_on(tasks.wait_for_seq(last)).expect("folded");
    tasks
}

fn net_memories(rt: &Runtime, n: usize) -> MemoriesAdapter {
    let _enter = rt.enter();
    let memories = rt
        .block_on(MemoriesAdapter::open_with_config(
            &Redex::new(),
            ORIGIN,
            RedexFileConfig {
                tail_buffer_size: (n * 2).max(1024),
                ..RedexFileConfig::default()
            },
        ))
        .expect("open net memories");
    let mut last = 0;
    for i in 0..n {
        let tags = vec![if i % 2 == 0 { "alpha" } else { "beta" }.to_string()];
        last = memories
            .store(
                (i + 1) as u64,
                format!("content-{i}"),
                tags,
                "src",
                i as u64,
            )
            .expect("store");
    }
    rt.block_on(memories.wait_for_seq(last)).expect("folded");
    memories
}

async fn foldkit_db(dir: &Path) -> Db {
    Db::builder(dir)
        .fsync(FsyncPolicy::Never)
        .snapshot_on_close(false)
        .state::<Tasks>()
        .state::<Memories>()
        .open()
        .await
        .expect("open foldkit db")
}

/// A foldkit Db holding Net's populated tasks and memories, folded through its log.
fn foldkit_populated(rt: &Runtime, dir: &Path, n: usize) -> Db {
    rt.block_on(async {
        let db = foldkit_db(dir).await;
        let last = *db.append_batch(task_events(n)).await.expect("tasks").end();
        db.state::<Tasks>().wait_for_seq(last).await.expect("tasks");
        let last = *db
            .append_batch(memory_events(n))
            .await
            .expect("memories")
            .end();
        db.state::<Memories>()
            .wait_for_seq(last)
            .await
            .expect("memories");
        db
    })
}

fn queries(c: &mut Criterion) {
    let rt = runtime();
    for n in SIZES {
        let net_t = net_tasks(&rt, &Redex::new(), RedexFileConfig::default(), n);
        let net_m = net_memories(&rt, n);
        let tasks: Tasks = folded(task_events(n));
        let memories: Memories = folded(memory_events(n));
        let net_state = net_t.state();
        let net_guard = net_state.read();
        let net_mstate = net_m.state();
        let net_mguard = net_mstate.read();

        let completed = TasksFilter {
            status: Some(nt::TaskStatus::Completed),
            ..Default::default()
        };
        let done = Task::filter().where_status(TaskStatus::Completed);
        let alpha = MemoriesFilter {
            tag: Some("alpha".to_string()),
            ..Default::default()
        };
        let tagged = Memory::filter().where_tags_contains("alpha");

        // Both sides answer the same.
        assert_eq!(
            net_guard.find_unique(1).map(|t| t.title.clone()),
            tasks.tasks.get(&1).map(|t| t.title.clone())
        );
        let mut net_done: Vec<u64> = net_guard
            .find_many(&completed)
            .iter()
            .map(|t| t.id)
            .collect();
        net_done.sort_unstable();
        let ours: Vec<u64> = tasks.tasks.find_many(&done).iter().map(|t| t.id).collect();
        assert_eq!(net_done, ours);
        assert_eq!(
            net_guard.count_where(&completed),
            tasks.tasks.count_where(&done)
        );
        let mut net_alpha: Vec<u64> = net_mguard.find_many(&alpha).iter().map(|m| m.id).collect();
        net_alpha.sort_unstable();
        let ours: Vec<u64> = memories
            .memories
            .find_many_ref(&tagged)
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(net_alpha, ours);
        assert_eq!(
            net_mguard.count_where(&alpha),
            memories.memories.count_where(&tagged)
        );

        let mut g = c.benchmark_group("find_unique");
        g.bench_function(BenchmarkId::new("net", n), |b| {
            b.iter(|| net_guard.find_unique(black_box(1)).map(|t| t.created_ns))
        });
        g.bench_function(BenchmarkId::new("foldkit", n), |b| {
            b.iter(|| tasks.tasks.get(black_box(&1)).map(|t| t.created_ns))
        });
        g.finish();

        let mut g = c.benchmark_group("tasks_find_many");
        g.bench_function(BenchmarkId::new("net", n), |b| {
            b.iter(|| net_guard.find_many(black_box(&completed)))
        });
        g.bench_function(BenchmarkId::new("foldkit", n), |b| {
            b.iter(|| tasks.tasks.find_many(black_box(&done)))
        });
        g.finish();

        let mut g = c.benchmark_group("tasks_count_where");
        g.bench_function(BenchmarkId::new("net", n), |b| {
            b.iter(|| net_guard.count_where(black_box(&completed)))
        });
        g.bench_function(BenchmarkId::new("foldkit", n), |b| {
            b.iter(|| tasks.tasks.count_where(black_box(&done)))
        });
        g.finish();

        let mut g = c.benchmark_group("memories_find_many_tag");
        g.bench_function(BenchmarkId::new("net", n), |b| {
            b.iter(|| net_mguard.find_many(black_box(&alpha)))
        });
        g.bench_function(BenchmarkId::new("foldkit", n), |b| {
            b.iter(|| memories.memories.find_many_ref(black_box(&tagged)))
        });
        g.bench_function(BenchmarkId::new("foldkit_cloned", n), |b| {
            b.iter(|| memories.memories.find_many(black_box(&tagged)))
        });
        g.finish();

        let mut g = c.benchmark_group("memories_count_where");
        g.bench_function(BenchmarkId::new("net", n), |b| {
            b.iter(|| net_mguard.count_where(black_box(&alpha)))
        });
        g.bench_function(BenchmarkId::new("foldkit", n), |b| {
            b.iter(|| memories.memories.count_where(black_box(&tagged)))
        });
        g.finish();
    }
}

fn ingest(c: &mut Criterion) {
    let rt = runtime();
    let _enter = rt.enter();
    let net_t = rt
        .block_on(TasksAdapter::open(&Redex::new(), ORIGIN))
        .expect("open");
    let net_m = rt
        .block_on(MemoriesAdapter::open(&Redex::new(), ORIGIN))
        .expect("open");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = rt.block_on(foldkit_db(dir.path()));
    let tags = vec!["bench".to_string()];

    let mut g = c.benchmark_group("ingest");
    let mut id = 0u64;
    g.bench_function("net_tasks_create", |b| {
        b.iter(|| {
            id += 1;
            net_t.create(id, "t", 0).expect("create")
        })
    });
    let mut id = 0u64;
    g.bench_function("foldkit_tasks_create", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    id += 1;
                    let event = TaskEvent::Created {
                        id,
                        title: "t".into(),
                        now_ns: 0,
                    };
                    black_box(db.append(event).await.expect("append"));
                }
                start.elapsed()
            })
        })
    });
    let mut id = 0u64;
    g.bench_function("net_memories_store", |b| {
        b.iter_batched(
            || tags.clone(),
            |tags| {
                id += 1;
                net_m
                    .store(id, "content", tags, "source", 0)
                    .expect("store")
            },
            criterion::BatchSize::SmallInput,
        )
    });
    let mut id = 0u64;
    g.bench_function("foldkit_memories_store", |b| {
        b.iter_custom(|iters| {
            let batch: Vec<Vec<String>> = (0..iters).map(|_| tags.clone()).collect();
            rt.block_on(async {
                let start = Instant::now();
                for tags in batch {
                    id += 1;
                    let event = MemoryEvent::Stored {
                        id,
                        content: "content".into(),
                        tags,
                        source: "source".into(),
                        now_ns: 0,
                    };
                    black_box(db.append(event).await.expect("append"));
                }
                start.elapsed()
            })
        })
    });
    g.finish();
    rt.block_on(db.close()).expect("close");
}

/// Events enqueued one by one and then waited for, per `ingest_folded` iteration.
const FOLDED_BURST: u64 = 1_000;

/// `ingest`'s enqueue timed until the fold has caught up: [`FOLDED_BURST`] events, one
/// call each, then `wait_for_seq` of the last. Net's `create` only enqueues (its fold
/// runs on another worker, untimed in `ingest`), while foldkit's `append` folds a
/// small batch in place before it returns; this pair times the same work on both sides:
/// every event encoded, logged and folded.
fn ingest_folded(c: &mut Criterion) {
    let rt = runtime();
    let _enter = rt.enter();
    // Net's fold lags (and stalls) once a burst outruns its tail buffer: size it.
    let config = || RedexFileConfig {
        tail_buffer_size: 4 * FOLDED_BURST as usize,
        ..RedexFileConfig::default()
    };
    let net_t = rt
        .block_on(TasksAdapter::open_with_config(
            &Redex::new(),
            ORIGIN,
            config(),
        ))
        .expect("open");
    let net_m = rt
        .block_on(MemoriesAdapter::open_with_config(
            &Redex::new(),
            ORIGIN,
            config(),
        ))
        .expect("open");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = rt.block_on(foldkit_db(dir.path()));
    let (tasks, memories) = (db.state::<Tasks>(), db.state::<Memories>());
    let tags = vec!["bench".to_string()];

    let mut g = c.benchmark_group("ingest_folded");
    g.throughput(criterion::Throughput::Elements(FOLDED_BURST));
    let (mut net_task_ids, mut net_memory_ids) = (0u64, 0u64);
    g.bench_function(BenchmarkId::new("net_tasks", FOLDED_BURST), |b| {
        b.iter(|| {
            let mut last = 0;
            for _ in 0..FOLDED_BURST {
                net_task_ids += 1;
                last = net_t.create(net_task_ids, "t", 0).expect("create");
            }
            rt.block_on(net_t.wait_for_seq(last)).expect("folded");
        })
    });
    let (mut foldkit_task_ids, mut foldkit_memory_ids) = (0u64, 0u64);
    g.bench_function(BenchmarkId::new("foldkit_tasks", FOLDED_BURST), |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut last = 0;
                for _ in 0..FOLDED_BURST {
                    foldkit_task_ids += 1;
                    let event = TaskEvent::Created {
                        id: foldkit_task_ids,
                        title: "t".into(),
                        now_ns: 0,
                    };
                    last = db.append(event).await.expect("append");
                }
                tasks.wait_for_seq(last).await.expect("folded");
            })
        })
    });
    g.bench_function(BenchmarkId::new("net_memories", FOLDED_BURST), |b| {
        b.iter(|| {
            let mut last = 0;
            for _ in 0..FOLDED_BURST {
                net_memory_ids += 1;
                last = net_m
                    .store(net_memory_ids, "content", tags.clone(), "source", 0)
                    .expect("store");
            }
            rt.block_on(net_m.wait_for_seq(last)).expect("folded");
        })
    });
    g.bench_function(BenchmarkId::new("foldkit_memories", FOLDED_BURST), |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut last = 0;
                for _ in 0..FOLDED_BURST {
                    foldkit_memory_ids += 1;
                    let event = MemoryEvent::Stored {
                        id: foldkit_memory_ids,
                        content: "content".into(),
                        tags: tags.clone(),
                        source: "source".into(),
                        now_ns: 0,
                    };
                    last = db.append(event).await.expect("append");
                }
                memories.wait_for_seq(last).await.expect("folded");
            })
        })
    });
    g.finish();
    // Every event was folded, on both sides (ids are distinct per side and model).
    assert_eq!(net_t.count() as u64, net_task_ids);
    assert_eq!(net_m.count() as u64, net_memory_ids);
    assert_eq!(tasks.read().tasks.len() as u64, foldkit_task_ids);
    assert_eq!(memories.read().memories.len() as u64, foldkit_memory_ids);
    rt.block_on(db.close()).expect("close");
}

fn create_and_wait(c: &mut Criterion) {
    let rt = runtime();
    let _enter = rt.enter();
    let net_t = rt
        .block_on(TasksAdapter::open(&Redex::new(), ORIGIN))
        .expect("open");
    let net_m = rt
        .block_on(MemoriesAdapter::open(&Redex::new(), ORIGIN))
        .expect("open");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = rt.block_on(foldkit_db(dir.path()));
    let (tasks, memories) = (db.state::<Tasks>(), db.state::<Memories>());
    let tags = vec!["bench".to_string()];

    let mut g = c.benchmark_group("create_and_wait");
    let mut id = 0u64;
    g.bench_function("net_tasks", |b| {
        b.iter(|| {
            id += 1;
            let seq = net_t.create(id, "t", 0).expect("create");
            rt.block_on(net_t.wait_for_seq(seq)).expect("folded");
        })
    });
    let mut id = 0u64;
    g.bench_function("foldkit_tasks", |b| {
        b.iter(|| {
            id += 1;
            rt.block_on(async {
                let event = TaskEvent::Created {
                    id,
                    title: "t".into(),
                    now_ns: 0,
                };
                let seq = db.append(event).await.expect("append");
                tasks.wait_for_seq(seq).await.expect("folded");
            })
        })
    });
    let mut id = 0u64;
    g.bench_function("net_memories", |b| {
        b.iter(|| {
            id += 1;
            let seq = net_m
                .store(id, "content", tags.clone(), "source", 0)
                .expect("store");
            rt.block_on(net_m.wait_for_seq(seq)).expect("folded");
        })
    });
    let mut id = 0u64;
    g.bench_function("foldkit_memories", |b| {
        b.iter(|| {
            id += 1;
            rt.block_on(async {
                let event = MemoryEvent::Stored {
                    id,
                    content: "content".into(),
                    tags: tags.clone(),
                    source: "source".into(),
                    now_ns: 0,
                };
                let seq = db.append(event).await.expect("append");
                memories.wait_for_seq(seq).await.expect("folded");
            })
        })
    });
    g.finish();
    rt.block_on(db.close()).expect("close");
}

/// Payload bytes a Net log file takes before the bench opens a fresh one (its segments
/// stop at 3 GB; net-mesh's own bench does the same).
const NET_FILE_BYTES: u64 = 256 * 1024 * 1024;

fn append(c: &mut Criterion) {
    let rt = runtime();
    let _enter = rt.enter();
    let payload = vec![0xABu8; 256];
    let payload = &payload;
    let mut g = c.benchmark_group("append_256b");
    let mut file_no = 0u64;
    // Net's `redex_append_disk` / `redex_append_heap` loop: only the appends are timed.
    let net = |persistent: bool| {
        move |b: &mut criterion::Bencher| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let redex = if persistent {
                        Redex::new().with_persistent_dir(dir.path())
                    } else {
                        Redex::new()
                    };
                    file_no += 1;
                    let name = ChannelName::new(&format!("bench/append/{file_no}")).expect("name");
                    let config = RedexFileConfig::default().with_persistent(persistent);
                    let file = redex.open_file(&name, config).expect("open file");
                    let count = left.min(NET_FILE_BYTES / 256);
                    let start = Instant::now();
                    for _ in 0..count {
                        black_box(file.append(payload).expect("append"));
                    }
                    total += start.elapsed();
                    left -= count;
                    file.close().expect("close");
                }
                total
            })
        }
    };
    g.bench_function("net_disk", net(true));
    g.bench_function("net_heap", net(false));
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), LogOptions::default().fsync(FsyncPolicy::Never)).expect("log");
    g.bench_function("foldkit_disk", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(log.append(payload).await.expect("append"));
                }
                start.elapsed()
            })
        })
    });
    g.finish();
    rt.block_on(log.close()).expect("close");
}

/// The payload Net's `TasksAdapter::snapshot` wraps its state in (its fields, in order).
#[derive(serde::Deserialize)]
struct NetTasksPayload {
    _app_seq: u64,
    inner: Vec<u8>,
}

fn snapshots(c: &mut Criterion) {
    let rt = runtime();
    for n in SIZES {
        let net_t = net_tasks(&rt, &Redex::new(), RedexFileConfig::default(), n);
        let net_m = net_memories(&rt, n);
        let dir = tempfile::tempdir().expect("tempdir");
        let db = foldkit_populated(&rt, dir.path(), n);
        let (tasks, memories) = (db.state::<Tasks>(), db.state::<Memories>());

        let mut g = c.benchmark_group("snapshot");
        g.bench_function(BenchmarkId::new("net_tasks_encode", n), |b| {
            b.iter(|| net_t.snapshot().expect("snapshot"))
        });
        g.bench_function(BenchmarkId::new("foldkit_tasks_encode", n), |b| {
            b.iter(|| tasks.snapshot().expect("snapshot"))
        });
        g.bench_function(BenchmarkId::new("net_memories_encode", n), |b| {
            b.iter(|| net_m.snapshot().expect("snapshot"))
        });
        g.bench_function(BenchmarkId::new("foldkit_memories_encode", n), |b| {
            b.iter(|| memories.snapshot().expect("snapshot"))
        });

        let (net_tasks_blob, net_tasks_seq) = net_t.snapshot().expect("snapshot");
        let (net_mem_blob, net_mem_seq) = net_m.snapshot().expect("snapshot");
        let (tasks_blob, _) = tasks.snapshot().expect("snapshot");
        let (mem_blob, _) = memories.snapshot().expect("snapshot");
        let net_decode = |blob: &[u8]| {
            let payload: NetTasksPayload = postcard::from_bytes(blob).expect("payload");
            postcard::from_bytes::<nt::TasksState>(&payload.inner).expect("state")
        };
        assert_eq!(net_decode(&net_tasks_blob).len(), n);
        let (decoded, _) = codec::decode::<Tasks>(&tasks_blob).expect("decode");
        assert_eq!(decoded.tasks.len(), n);
        g.bench_function(BenchmarkId::new("net_tasks_decode", n), |b| {
            b.iter(|| net_decode(black_box(&net_tasks_blob)))
        });
        g.bench_function(BenchmarkId::new("foldkit_tasks_decode", n), |b| {
            b.iter(|| codec::decode::<Tasks>(black_box(&tasks_blob)).expect("decode"))
        });

        let net_bundle = NetDbSnapshot {
            tasks: Some((net_tasks_blob.clone(), net_tasks_seq)),
            memories: Some((net_mem_blob.clone(), net_mem_seq)),
        };
        let mut bundle = Bundle::new();
        bundle.push(tasks_blob.clone()).expect("push");
        bundle.push(mem_blob.clone()).expect("push");
        g.bench_function(BenchmarkId::new("net_bundle_encode", n), |b| {
            b.iter(|| net_bundle.encode().expect("encode"))
        });
        g.bench_function(BenchmarkId::new("foldkit_bundle_encode", n), |b| {
            b.iter(|| bundle.to_bytes())
        });
        let net_bytes = net_bundle.encode().expect("encode");
        let bytes = bundle.to_bytes();
        g.bench_function(BenchmarkId::new("net_bundle_decode", n), |b| {
            b.iter(|| NetDbSnapshot::decode(black_box(&net_bytes)).expect("decode"))
        });
        g.bench_function(BenchmarkId::new("foldkit_bundle_decode", n), |b| {
            b.iter(|| Bundle::from_bytes(black_box(&bytes)).expect("decode"))
        });
        g.finish();
        rt.block_on(db.close()).expect("close");
    }
}

fn replay(c: &mut Criterion) {
    let rt = runtime();
    for n in SIZES {
        // Net: a persistent tasks log, closed, then opened (and replayed) per iteration.
        let net_dir = tempfile::tempdir().expect("tempdir");
        let persistent = || RedexFileConfig::default().with_persistent(true);
        {
            let redex = Redex::new().with_persistent_dir(net_dir.path());
            let tasks = net_tasks(&rt, &redex, persistent(), n);
            tasks.close().expect("close");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let last = rt.block_on(async {
            let db = foldkit_db(dir.path()).await;
            let last = *db.append_batch(task_events(n)).await.expect("tasks").end();
            db.close().await.expect("close");
            last
        });

        let mut g = c.benchmark_group("replay");
        g.sample_size(20);
        g.bench_function(BenchmarkId::new("net_tasks", n), |b| {
            b.iter(|| {
                let _enter = rt.enter();
                let redex = Redex::new().with_persistent_dir(net_dir.path());
                let tasks = rt
                    .block_on(TasksAdapter::open_with_config(&redex, ORIGIN, persistent()))
                    .expect("open");
                assert_eq!(tasks.count(), n);
                tasks.close().expect("close");
            })
        });
        g.bench_function(BenchmarkId::new("foldkit_tasks", n), |b| {
            b.iter(|| {
                rt.block_on(async {
                    // Net's log files default to `FsyncPolicy::Never` too.
                    let db = Db::builder(dir.path())
                        .fsync(FsyncPolicy::Never)
                        .snapshot_on_close(false)
                        .state::<Tasks>()
                        .open()
                        .await
                        .expect("open");
                    let tasks = db.state::<Tasks>();
                    tasks.wait_for_seq(last).await.expect("replayed");
                    assert_eq!(tasks.read().tasks.len(), n);
                    db.close().await.expect("close");
                })
            })
        });
        g.finish();
    }
}

fn config() -> Criterion {
    // No HTML plots: they took as long as the measurements on this machine.
    Criterion::default().without_plots()
}

criterion_group!(
    name = benches;
    config = config();
    targets = queries,
    ingest,
    ingest_folded,
    create_and_wait,
    append,
    snapshots,
    replay
);
criterion_main!(benches);
