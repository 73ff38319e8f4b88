//! Storage throughput, each beside a hand-written baseline in the same run:
//! - append of 64 B and 1 KiB records per fsync policy, beside a plain
//!   `BufWriter<File>` (64 KiB buffer, like the log's) that writes the same
//!   framed bytes as a hand-written writer would: the 32-byte header (length,
//!   seq, a constant timestamp, and the CRC32C computed with the `crc32c` crate)
//!   and the payload per record (`baseline_bufwriter`). A second baseline writes
//!   the header without computing a checksum (`baseline_bufwriter_no_crc`): the
//!   bare cost of copying the bytes out, a lower bound. Throughput counts the
//!   framed bytes for all, so the bytes/s ratio is the log's overhead. To make
//!   every measured record cost the same, records go into a fresh file (a fresh
//!   log) every [`FILE_BYTES`]; opening, the final flush and removing the file
//!   are not timed, and the files are removed unsynced, so the page cache never
//!   fills and writeback never lands in one sample and not in another;
//! - `Always` with 1 appender vs 8 concurrent appenders (group commit), beside
//!   okaywal (a write-ahead log with its own group commit) with as many threads,
//!   each writing one 64-byte entry and committing it (durable on return);
//! - sequential replay of 1M 64 B records, beside reading the raw segment bytes.
//!
//! `cargo bench -p foldkit-storage --bench append`

use std::fs::File;
use std::hint::black_box;
use std::io::{BufWriter, Read, Write};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use foldkit_storage::{FsyncPolicy, Log, LogOptions};
use okaywal::{LogVoid, WriteAheadLog};

/// The log's frame header: what it writes per record besides the payload.
const FRAME_HEADER: usize = 32;
/// Framed bytes written to one file before the next measured record starts a fresh one.
const FILE_BYTES: usize = 4 << 20;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Splits `iters` records into runs of at most one file's worth.
fn runs(iters: u64, size: usize) -> impl Iterator<Item = u64> {
    let per_file = (FILE_BYTES / (FRAME_HEADER + size)) as u64;
    let mut left = iters;
    std::iter::from_fn(move || {
        let n = left.min(per_file);
        left -= n;
        (n > 0).then_some(n)
    })
}

/// The baseline: `iters` framed records through a `BufWriter<File>`, with their
/// CRC32C when `crc` (the same bytes as the log's frames, but for the timestamp,
/// which is a constant here), else with a zero checksum field.
fn baseline(iters: u64, size: usize, crc: bool) -> Duration {
    let payload = vec![0xabu8; size];
    let mut header = [0u8; FRAME_HEADER];
    header[..4].copy_from_slice(&(size as u32).to_le_bytes());
    header[16..24].copy_from_slice(&1_700_000_000_000u64.to_le_bytes());
    let mut total = Duration::ZERO;
    let mut seq = 0u64;
    for n in runs(iters, size) {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = File::create(dir.path().join("raw")).expect("file");
        let mut out = BufWriter::with_capacity(64 << 10, file);
        let start = Instant::now();
        for _ in 0..n {
            seq += 1;
            header[8..16].copy_from_slice(&seq.to_le_bytes());
            if crc {
                // The log's frame checksum: CRC32C of the length, the header
                // fields after the checksum, then the payload.
                let sum = crc32c::crc32c(&header[..4]);
                let sum = crc32c::crc32c_append(sum, &header[8..]);
                let sum = crc32c::crc32c_append(sum, black_box(&payload));
                header[4..8].copy_from_slice(&sum.to_le_bytes());
            }
            out.write_all(black_box(&header)).expect("write");
            out.write_all(black_box(&payload)).expect("write");
        }
        total += start.elapsed();
        out.flush().expect("flush");
    }
    total
}

/// `iters` appends of `size`-byte records under `policy`.
fn log_appends(
    rt: &tokio::runtime::Runtime,
    policy: FsyncPolicy,
    iters: u64,
    size: usize,
) -> Duration {
    let payload = vec![0xabu8; size];
    let mut total = Duration::ZERO;
    for n in runs(iters, size) {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::open(dir.path(), LogOptions::default().fsync(policy)).expect("open");
        total += rt.block_on(async {
            let start = Instant::now();
            for _ in 0..n {
                black_box(log.append(black_box(&payload)).await.expect("append"));
            }
            start.elapsed()
        });
        // Untimed, like the baseline's final flush: dropping hands the buffer to
        // the OS without an fsync (the file is removed right after).
        drop(log);
    }
    total
}

fn append_per_policy(c: &mut Criterion) {
    let rt = runtime();
    for size in [64usize, 1024] {
        let mut group = c.benchmark_group(format!("append_{size}B"));
        group.throughput(Throughput::Bytes((FRAME_HEADER + size) as u64));
        group.bench_function("baseline_bufwriter", |b| {
            b.iter_custom(|iters| baseline(iters, size, true))
        });
        group.bench_function("baseline_bufwriter_no_crc", |b| {
            b.iter_custom(|iters| baseline(iters, size, false))
        });
        let policies = [
            ("never", FsyncPolicy::Never),
            ("every_1000", FsyncPolicy::EveryN(1000)),
            (
                "interval_10ms",
                FsyncPolicy::Interval(Duration::from_millis(10)),
            ),
            ("always", FsyncPolicy::Always),
        ];
        for (name, policy) in policies {
            group.bench_function(BenchmarkId::new("log", name), |b| {
                b.iter_custom(|iters| log_appends(&rt, policy, iters, size))
            });
        }
        group.finish();
    }
}

fn always_group_commit(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("always_appends");
    group.throughput(Throughput::Elements(1));
    for appenders in [1u64, 8] {
        let dir = tempfile::tempdir().expect("tempdir");
        let log =
            Log::open(dir.path(), LogOptions::default().fsync(FsyncPolicy::Always)).expect("open");
        group.bench_function(BenchmarkId::new("appenders", appenders), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let per_task = iters.div_ceil(appenders);
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..appenders)
                        .map(|_| {
                            let log = log.clone();
                            tokio::spawn(async move {
                                for _ in 0..per_task {
                                    log.append(&[7u8; 64]).await.expect("append");
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.expect("task");
                    }
                    start.elapsed()
                })
            })
        });
        rt.block_on(log.close()).expect("close");
    }
    for threads in [1u64, 8] {
        group.bench_function(BenchmarkId::new("okaywal_threads", threads), |b| {
            b.iter_custom(|iters| okaywal_commits(iters, threads))
        });
    }
    group.finish();
}

/// The peer: `iters` okaywal entries of 64 bytes, each committed (durable when
/// `commit` returns), written by `threads` threads at once; okaywal lets one
/// thread fsync for every entry written meanwhile (its group commit). A fresh
/// log per sample; `LogVoid` checkpoints nothing (it drops what a checkpoint
/// hands it), so segment recycling costs no more than okaywal's own work.
fn okaywal_commits(iters: u64, threads: u64) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = WriteAheadLog::recover(dir.path(), LogVoid).expect("okaywal open");
    let per_thread = iters.div_ceil(threads);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                for _ in 0..per_thread {
                    let mut entry = wal.begin_entry().expect("begin_entry");
                    entry
                        .write_chunk(black_box(&[7u8; 64]))
                        .expect("write_chunk");
                    black_box(entry.commit().expect("commit"));
                }
            });
        }
    });
    let elapsed = start.elapsed();
    wal.shutdown().expect("okaywal shutdown");
    elapsed
}

const REPLAY: u64 = 1_000_000;

fn replay(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    rt.block_on(async {
        let log =
            Log::open(dir.path(), LogOptions::default().fsync(FsyncPolicy::Never)).expect("open");
        let batch = vec![[3u8; 64]; 1000];
        for _ in 0..REPLAY / 1000 {
            log.append_batch(&batch).await.expect("batch");
        }
        log.close().await.expect("close");
    });
    let mut group = c.benchmark_group("replay_1M_64B");
    group.throughput(Throughput::Elements(REPLAY));
    group.sample_size(10);
    group.bench_function("baseline_read_segment_bytes", |b| {
        b.iter(|| {
            let mut total = 0usize;
            for entry in std::fs::read_dir(dir.path()).expect("dir") {
                let path = entry.expect("entry").path();
                if path.extension().is_some_and(|e| e == "seg") {
                    let mut bytes = Vec::new();
                    File::open(&path)
                        .expect("open")
                        .read_to_end(&mut bytes)
                        .expect("read");
                    total += bytes.len();
                }
            }
            black_box(total)
        })
    });
    group.bench_function("log_open_and_range", |b| {
        b.iter(|| {
            let log = Log::open(dir.path(), LogOptions::default().fsync(FsyncPolicy::Never))
                .expect("open");
            let mut total = 0usize;
            for record in log.range(..).expect("range") {
                total += record.expect("record").payload.len();
            }
            assert_eq!(total as u64, REPLAY * 64);
            drop(log);
            black_box(total)
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = append_per_policy, always_group_commit, replay
}
criterion_main!(benches);
