//! Restart (issue #18): reopening an orders log from a snapshot at its tail, beside a full
//! replay of the same log, in the same run; and what loading the rows leaves on the heap.
//!
//! `cargo bench -p foldkit --bench restart -- --warm-up-time 1 --measurement-time 3`
//! (`FOLDKIT_RESTART_5M=1` adds the 5M-row case; building its log takes a minute.)
//!
//! Data: `N` orders placed (`Placed`, one event each), then 3 in 4 of them confirmed
//! (`Confirmed`): 1.75 events per row. Order `i` has customer `i % 100_000` (10 orders
//! each, hash-indexed) and `placed_at = T0 + i` (ordered index). One log is opened with no
//! snapshot (a full replay); a copy of it with a snapshot 1,000 events from the tail.
//!
//! Groups:
//! - `restart_1M` (and `restart_5M`): `full_replay` against `snapshot_at_tail`, each
//!   timing what a restarted service waits for: opening the Db until the state has folded
//!   the whole log. Each restart runs in a process of its own (this bench's executable,
//!   started again with `FOLDKIT_RESTART_CHILD` set), which times itself and exits
//!   without freeing its heap, as a restarted service starts: in one process, the heap
//!   that earlier iterations freed row by row (millions of small blocks) made the next
//!   open's first large allocations slow (the allocator consolidates them), 30–45 ms
//!   that no restart pays. The restart process does not count its allocations (see
//!   `counting_alloc::stop_counting`).
//! - `restore_1M`: the in-memory part of a restore: decoding the snapshot blob (rows, the
//!   id → slot map and both indexes) against postcard decoding the same rows as a plain
//!   `Vec<Order>` (the floor: no map, no index).
//!
//! Before `restore_1M` runs, the heap left by the rows (a counting global allocator: live
//! bytes after building the state, minus before, over `N`) is printed for a table
//! decoded from a snapshot and for one folded row by row. Peak RSS (steady, during a
//! snapshot, on reopen) is measured by the `rss_probe` example instead, each phase in a
//! fresh process: in this process the logs built before would blur it.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use foldkit::prelude::*;
use foldkit::snapshot::codec;

/// Counts live heap bytes (requested sizes).
#[path = "support/counting_alloc.rs"]
mod counting_alloc;

#[path = "support/orders.rs"]
mod orders;
use orders::{Order, Orders, Shop, T0, events, open};

/// Writes the log of `rows` orders into `dir`, with a snapshot `from_tail` events before
/// its end when asked; returns the log's last position.
async fn build(dir: &Path, rows: u64, from_tail: Option<u64>) -> u64 {
    let db = open(dir).await;
    let total = rows + rows - rows / 4;
    let snapshot_at = from_tail.map(|back| total - back);
    let mut all = events(rows).peekable();
    let mut last = 0;
    while all.peek().is_some() {
        let room = snapshot_at
            .filter(|&at| at > last)
            .map_or(10_000, |at| (at - last).min(10_000));
        let batch: Vec<Shop> = all.by_ref().take(room as usize).collect();
        last = *db.append_batch(batch).await.expect("batch").end();
        if Some(last) == snapshot_at {
            db.state::<Orders>().wait_for_seq(last).await.expect("fold");
            db.snapshot_to_disk().await.expect("snapshot");
        }
    }
    assert_eq!(last, total);
    db.close().await.expect("close");
    last
}

/// Opens the Db in `dir`, waits until it has folded up to `last`, closes it; returns the
/// rows and the time from the open to the state caught up. The state is not dropped: a
/// restart's process exits instead.
async fn restart(dir: &Path, last: u64) -> (usize, Duration) {
    let began = std::time::Instant::now();
    let db = open(dir).await;
    let orders = db.state::<Orders>();
    orders.wait_for_seq(last).await.expect("caught up");
    let took = began.elapsed();
    let rows = orders.read().orders.len();
    drop(orders);
    db.close().await.expect("close");
    std::mem::forget(db);
    (rows, took)
}

/// Set (to `<dir>:<last>`) in the process one restart runs in.
const CHILD: &str = "FOLDKIT_RESTART_CHILD";

/// The restart of `dir` in a process of its own: its rows and its time.
fn restart_in_child(dir: &Path, last: u64) -> (usize, Duration) {
    let out = std::process::Command::new(std::env::current_exe().expect("bench executable"))
        .env(CHILD, format!("{}:{last}", dir.display()))
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("start a restart process");
    assert!(
        out.status.success(),
        "the restart process failed: {}",
        out.status
    );
    let said = String::from_utf8(out.stdout).expect("UTF-8");
    let (rows, nanos) = said.trim().split_once(' ').expect("rows and nanoseconds");
    (
        rows.parse().expect("rows"),
        Duration::from_nanos(nanos.parse().expect("nanoseconds")),
    )
}

/// In a restart process: the restart `CHILD` names, its rows and nanoseconds printed.
fn child(spec: &str) {
    counting_alloc::stop_counting();
    let (dir, last) = spec.rsplit_once(':').expect("<dir>:<last>");
    let last = last.parse().expect("last position");
    let (rows, took) = runtime().block_on(restart(Path::new(dir), last));
    println!("{rows} {}", took.as_nanos());
    std::process::exit(0); // without freeing the state, as a restarting service exits
}

/// The time of `iters` restarts of `dir`, each in a process of its own.
fn restarts(dir: &Path, last: u64, iters: u64) -> Duration {
    (0..iters).map(|_| restart_in_child(dir, last).1).sum()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Whether the command line's filter (if any) can select a benchmark of group `name`, so
/// a filtered run does not build logs it will not use.
fn wanted(name: &str) -> bool {
    let mut args = std::env::args().skip(1);
    let mut filter = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--warm-up-time" | "--measurement-time" | "--sample-size" | "--save-baseline"
            | "--baseline" | "--profile-time" => {
                args.next();
            }
            flag if flag.starts_with('-') => {}
            positional => filter = Some(positional.to_owned()),
        }
    }
    filter.is_none_or(|f| name.contains(&f) || f.contains(name))
}

fn restart_group(c: &mut Criterion, rows: u64, name: &str) {
    if !wanted(name) {
        return;
    }
    let rt = runtime();
    let full = tempfile::tempdir().expect("tempdir");
    let snapshotted = tempfile::tempdir().expect("tempdir");
    let last = rt.block_on(build(full.path(), rows, None));
    rt.block_on(build(snapshotted.path(), rows, Some(1000)));
    assert_eq!(restart_in_child(full.path(), last).0, rows as usize);
    assert_eq!(restart_in_child(snapshotted.path(), last).0, rows as usize);
    let mut group = c.benchmark_group(name);
    group.sample_size(10);
    group.bench_function("full_replay", |b| {
        b.iter_custom(|iters| restarts(full.path(), last, iters))
    });
    group.bench_function("snapshot_at_tail", |b| {
        b.iter_custom(|iters| restarts(snapshotted.path(), last, iters))
    });
    group.finish();
}

fn restart_1m(c: &mut Criterion) {
    restart_group(c, 1_000_000, "restart_1M");
}

fn restart_5m(c: &mut Criterion) {
    if std::env::var_os("FOLDKIT_RESTART_5M").is_some() {
        restart_group(c, 5_000_000, "restart_5M");
    }
}

/// The state after folding `rows` orders, row by row as the fold does.
fn folded(rows: u64) -> Orders {
    let mut state = Orders::default();
    let meta = Meta::new(1, T0, 1);
    for event in events(rows) {
        state.apply(event, &meta).expect("apply");
    }
    state
}

/// Live heap bytes per row of the state `make` builds (what it leaves, not its peak).
fn heap_per_row(rows: u64, make: impl FnOnce() -> Orders) -> (f64, Orders) {
    let before = counting_alloc::live();
    let state = make();
    let after = counting_alloc::live();
    (after.saturating_sub(before) as f64 / rows as f64, state)
}

fn restore(c: &mut Criterion) {
    const ROWS: u64 = 1_000_000;
    if !wanted("restore_1M") {
        return;
    }
    let (fold_bytes, state) = heap_per_row(ROWS, || folded(ROWS));
    let blob = codec::encode(&state, None).expect("encode");
    let rows: Vec<Order> = state.orders.iter().cloned().collect();
    drop(state);
    let plain = postcard::to_allocvec(&rows).expect("encode");
    let (load_bytes, decoded) =
        heap_per_row(ROWS, || codec::decode::<Orders>(&blob).expect("decode").0);
    drop(decoded);
    println!(
        "heap per row at {ROWS} rows: decoded from a snapshot {load_bytes:.1} B, folded row by row {fold_bytes:.1} B; \
         snapshot blob {:.1} B per row; size_of::<Order>() = {} B",
        blob.len() as f64 / ROWS as f64,
        std::mem::size_of::<Order>()
    );
    let mut group = c.benchmark_group("restore_1M");
    group.sample_size(10);
    group.bench_function("baseline_postcard_vec_decode", |b| {
        b.iter(|| postcard::from_bytes::<Vec<Order>>(black_box(&plain)).expect("decode"))
    });
    group.bench_function("decode_snapshot", |b| {
        b.iter(|| codec::decode::<Orders>(black_box(&blob)).expect("decode"))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = restore, restart_1m, restart_5m
}
fn main() {
    if let Ok(spec) = std::env::var(CHILD) {
        return child(&spec);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
