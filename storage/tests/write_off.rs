//! Writes of the log's buffers run on the sync thread, never on an appender:
//! an appender hands a full buffer off and goes on; records queued for writing
//! stay readable from memory (never from a file region not yet written); the
//! unwritten bytes stay under their bound (1 MiB, the `FsyncPolicy` docs); a
//! failed write poisons the log; an fsync writes everything queued first.
//!
//! The writes are watched, held or failed through the hidden write hook, which
//! the writing thread calls before each write.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use foldkit_storage::{FsyncPolicy, Log, LogOptions, StorageError};
use futures::StreamExt;

/// A frame's header: a frame is this plus its payload.
const HEADER: u64 = 32;
/// A segment file's header.
const SEGMENT_HEADER: u64 = 24;
/// The bound of unwritten bytes the docs name.
const MAX_UNWRITTEN: u64 = 1 << 20;
/// The sync thread's name as the kernel keeps it (15 bytes).
const SYNC_THREAD: &str = "foldkit-log-sync";

/// Holds the log's writes while closed (for at most [`Gate::LONGEST`], so that
/// a broken build fails instead of hanging).
#[derive(Default)]
struct Gate {
    held: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    const LONGEST: Duration = Duration::from_secs(10);

    fn held() -> Arc<Gate> {
        let gate = Arc::new(Gate::default());
        *gate.held.lock().expect("gate") = true;
        gate
    }

    fn pass(&self) {
        let held = self.held.lock().expect("gate");
        let _ = self
            .opened
            .wait_timeout_while(held, Self::LONGEST, |held| *held)
            .expect("gate");
    }

    fn open(&self) {
        *self.held.lock().expect("gate") = false;
        self.opened.notify_all();
    }
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A `Never` log in `dir` whose every write waits at the returned gate, held.
fn held_log(dir: &Path) -> (Log, Arc<Gate>) {
    let gate = Gate::held();
    let hook_gate = Arc::clone(&gate);
    let options = LogOptions::default()
        .fsync(FsyncPolicy::Never)
        .write_hook(Arc::new(move || -> io::Result<()> {
            hook_gate.pass();
            Ok(())
        }));
    (Log::open(dir, options).expect("open"), gate)
}

fn first_segment(dir: &Path) -> PathBuf {
    dir.join(format!("{:020}.seg", 1))
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat segment").len()
}

/// The payload of the `i`-th record appended (from 1), `len` bytes.
fn payload(i: u64, len: usize) -> Vec<u8> {
    let mut p = format!("record {i} ").into_bytes();
    p.resize(len.max(p.len()), b'x');
    p
}

fn seq_of(payload: &[u8]) -> u64 {
    let text = std::str::from_utf8(payload).expect("utf-8");
    let number = text.split(' ').nth(1).expect("numbered");
    number.parse().expect("seq")
}

/// Every write of a buffer runs on the sync thread, under every policy, with
/// concurrent appenders and segment rolls (before, a full buffer was written
/// by the appender that filled it, on a tokio worker, under the lock).
#[test]
fn every_write_runs_on_the_sync_thread() {
    for (policy, records) in [
        (FsyncPolicy::Never, 3000),
        (FsyncPolicy::EveryN(50), 3000),
        (FsyncPolicy::Always, 300),
    ] {
        let writers = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = Arc::clone(&writers);
        let hook = Arc::new(move || -> io::Result<()> {
            let name = std::thread::current().name().unwrap_or("?").to_owned();
            seen.lock().expect("writers").push(name);
            Ok(())
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let options = LogOptions::default()
            .fsync(policy)
            .segment_size(1 << 20)
            .write_hook(hook);
        let log = Log::open(dir.path(), options).expect("open");
        multi_thread().block_on(async {
            let tasks: Vec<_> = (0..4)
                .map(|_| {
                    let log = log.clone();
                    tokio::spawn(async move {
                        for i in 0..records / 4 {
                            log.append(&payload(i, 1000)).await.expect("append");
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("appender");
            }
            log.close().await.expect("close");
        });
        let writers = writers.lock().expect("writers");
        assert!(
            writers.len() >= 3,
            "{policy:?}: several writes ({})",
            writers.len()
        );
        let elsewhere: Vec<_> = writers.iter().filter(|n| *n != SYNC_THREAD).collect();
        assert!(
            elsewhere.is_empty(),
            "{policy:?}: writes ran off the sync thread, on {elsewhere:?}"
        );
        let log = Log::open(dir.path(), LogOptions::default()).expect("reopen");
        assert_eq!(log.last_seq(), Some(records / 4 * 4), "{policy:?}");
    }
}

/// While the sync thread's writes are held, appends of many full buffers
/// (under the bound) return without anything written, and every record is read (by
/// `range`, `read_in_memory` and a live tail) in order and exactly once, from
/// memory; once the writes resume, all reach the file.
#[test]
fn records_queued_for_writing_are_read_from_memory_in_order() {
    const RECORDS: u64 = 3000;
    const LEN: usize = 300;
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, gate) = held_log(dir.path());
    let segment = first_segment(dir.path());
    multi_thread().block_on(async {
        let mut tail = log.tail(1);
        let tailed = tokio::spawn(async move {
            let mut seqs = Vec::new();
            while let Some(record) = tail.next().await {
                let record = record.expect("tail");
                assert_eq!(seq_of(&record.payload), record.seq, "tail payload");
                seqs.push(record.seq);
            }
            seqs
        });
        let began = Instant::now();
        for i in 1..=RECORDS {
            assert_eq!(log.append(&payload(i, LEN)).await.expect("append"), i);
        }
        assert!(
            began.elapsed() < Gate::LONGEST / 2,
            "the appends waited for the held writes"
        );
        let frames = RECORDS * (HEADER + LEN as u64);
        // More than the memory window's two written chunks (64 KiB each) and
        // the buffer: the queued ones are kept too.
        assert!(frames > 3 * (64 << 10) && frames < MAX_UNWRITTEN);
        assert_eq!(
            file_len(&segment),
            SEGMENT_HEADER,
            "nothing is written while the writes are held"
        );
        let read: Vec<_> = log
            .range(..)
            .expect("range")
            .map(|r| r.expect("record"))
            .collect();
        assert_eq!(read.len() as u64, RECORDS);
        for (at, record) in read.iter().enumerate() {
            assert_eq!(record.seq, at as u64 + 1);
            assert_eq!(&*record.payload, &payload(record.seq, LEN)[..]);
        }
        let recent = log
            .read_in_memory(1, RECORDS as usize)
            .expect("queued records are in memory")
            .expect("read");
        assert_eq!(recent.first().map(|r| r.seq), Some(1));
        let mut from = 1;
        while from <= RECORDS {
            let batch = log
                .read_in_memory(from, 10_000)
                .expect("in memory")
                .expect("read");
            assert_eq!(batch.first().map(|r| r.seq), Some(from));
            from += batch.len() as u64;
        }
        assert_eq!(log.read(RECORDS / 2).expect("read").seq, RECORDS / 2);
        gate.open();
        log.close().await.expect("close");
        let seqs = tailed.await.expect("tail task");
        assert_eq!(seqs, (1..=RECORDS).collect::<Vec<_>>(), "the tail");
    });
    assert_eq!(
        file_len(&segment),
        SEGMENT_HEADER + RECORDS * (HEADER + LEN as u64)
    );
    let log = Log::open(dir.path(), LogOptions::default()).expect("reopen");
    let seqs: Vec<_> = log
        .range(..)
        .expect("range")
        .map(|r| r.expect("record").seq)
        .collect();
    assert_eq!(seqs, (1..=RECORDS).collect::<Vec<_>>());
}

/// With a slow disk (each write held 20 ms) and small segments, buffers queue
/// up (more than the memory window's two chunks), appenders wait at the bound,
/// segments roll; a live tail and a reader of
/// the newest records see every record in order, exactly once, whole (a read
/// of a file region not yet written would fail or differ).
#[test]
fn queued_records_read_in_order_across_segment_rolls() {
    const RECORDS: u64 = 40_000;
    const LEN: usize = 250;
    let dir = tempfile::tempdir().expect("tempdir");
    let options = LogOptions::default()
        .fsync(FsyncPolicy::Never)
        .segment_size(2 << 20)
        .write_hook(Arc::new(|| -> io::Result<()> {
            std::thread::sleep(Duration::from_millis(20));
            Ok(())
        }));
    let log = Log::open(dir.path(), options).expect("open");
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (log, done) = (log.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !done.load(Ordering::Acquire) {
                let Some(last) = log.last_seq() else {
                    continue;
                };
                let from = last.saturating_sub(3000).max(1);
                let mut expect = from;
                for record in log.range(from..=last).expect("range") {
                    let record = record.expect("a record being written reads whole");
                    assert_eq!(record.seq, expect, "in order");
                    assert_eq!(&*record.payload, &payload(record.seq, LEN)[..]);
                    expect += 1;
                }
                assert_eq!(expect, last + 1, "every record of the range");
                reads += 1;
            }
            reads
        })
    };
    multi_thread().block_on(async {
        let mut tail = log.tail(1);
        let tailed = tokio::spawn(async move {
            let mut next = 1;
            while let Ok(batch) = tail.next_batch(500).await {
                for record in batch {
                    assert_eq!(record.seq, next, "the tail, in order, once");
                    assert_eq!(&*record.payload, &payload(record.seq, LEN)[..]);
                    next += 1;
                }
            }
            next - 1
        });
        for i in (1..=RECORDS).step_by(4) {
            let batch: Vec<_> = (i..i + 4).map(|s| payload(s, LEN)).collect();
            assert_eq!(log.append_batch(&batch).await.expect("append"), i..=i + 3);
        }
        done.store(true, Ordering::Release);
        log.close().await.expect("close");
        assert_eq!(tailed.await.expect("tail task"), RECORDS);
    });
    assert!(reader.join().expect("reader") > 0);
    let log = Log::open(dir.path(), LogOptions::default()).expect("reopen");
    let segments = std::fs::read_dir(dir.path())
        .expect("list")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "seg"))
        })
        .count();
    assert!(segments >= 5, "rolled into {segments} segments");
    let mut expect = 1;
    for record in log.range(..).expect("range") {
        let record = record.expect("record");
        assert_eq!(
            (record.seq, &*record.payload),
            (expect, &payload(expect, LEN)[..])
        );
        expect += 1;
    }
    assert_eq!(expect, RECORDS + 1);
}

/// While writes are held, an appender goes on until 1 MiB of frames is
/// unwritten, then waits (it is not done, and no more goes in); once the writes
/// resume it finishes.
#[test]
fn unwritten_bytes_stay_under_the_bound() {
    const LEN: usize = 4000;
    const RECORDS: u64 = 1000;
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, gate) = held_log(dir.path());
    let segment = first_segment(dir.path());
    multi_thread().block_on(async {
        let acked = Arc::new(AtomicU64::new(0));
        let appender = {
            let (log, acked) = (log.clone(), Arc::clone(&acked));
            tokio::spawn(async move {
                for i in 1..=RECORDS {
                    log.append(&payload(i, LEN)).await.expect("append");
                    acked.store(i, Ordering::Release);
                }
            })
        };
        // Until the count stops moving.
        let mut last = u64::MAX;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = acked.load(Ordering::Acquire);
            if now == last {
                break;
            }
            last = now;
        }
        let frame = HEADER + LEN as u64;
        let unwritten = last * frame;
        assert!(
            unwritten <= MAX_UNWRITTEN,
            "{unwritten} B unwritten, past the bound"
        );
        assert!(
            unwritten + frame > MAX_UNWRITTEN,
            "the appender waited at {unwritten} B, before the bound"
        );
        assert!(!appender.is_finished());
        assert_eq!(file_len(&segment), SEGMENT_HEADER, "writes are held");
        gate.open();
        appender.await.expect("appender");
        log.close().await.expect("close");
    });
    assert_eq!(
        file_len(&segment),
        SEGMENT_HEADER + RECORDS * (HEADER + LEN as u64)
    );
}

/// A failed write (on the sync thread) poisons the log: the appends that
/// filled the buffers were acknowledged, the records stay readable, and every
/// later append, `sync` and `close` fails with the write's error.
#[test]
fn a_failed_write_poisons_the_log() {
    let fail = Arc::new(AtomicBool::new(true));
    let hook_fail = Arc::clone(&fail);
    let dir = tempfile::tempdir().expect("tempdir");
    let options = LogOptions::default()
        .fsync(FsyncPolicy::Never)
        .write_hook(Arc::new(move || -> io::Result<()> {
            match hook_fail.load(Ordering::Acquire) {
                true => Err(io::Error::other("disk full (test)")),
                false => Ok(()),
            }
        }));
    let log = Log::open(dir.path(), options).expect("open");
    multi_thread().block_on(async {
        // 300 KiB in one batch (one lock hold, so no timer's write comes
        // first): the batch fills the buffer, hands it off and returns.
        let batch: Vec<_> = (1..=300).map(|i| payload(i, 1000)).collect();
        assert_eq!(
            log.append_batch(&batch)
                .await
                .expect("the append whose write fails"),
            1..=300
        );
        let began = Instant::now();
        let error = loop {
            match log.append(&payload(0, 1000)).await {
                Ok(_) => assert!(began.elapsed() < Duration::from_secs(10), "never poisoned"),
                Err(error) => break error,
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let text = format!("{error}: {:?}", std::error::Error::source(&error));
        assert!(
            matches!(error, StorageError::Poisoned(_)) && text.contains("write segment"),
            "{text}"
        );
        fail.store(false, Ordering::Release);
        assert!(matches!(
            log.append(b"later").await,
            Err(StorageError::Poisoned(_))
        ));
        assert!(log.sync().await.is_err());
        let kept: Vec<_> = log
            .range(1..=300)
            .expect("range")
            .map(|r| r.expect("queued records stay readable").seq)
            .collect();
        assert_eq!(kept, (1..=300).collect::<Vec<_>>());
        assert!(log.close().await.is_err());
    });
}

/// An fsync round writes everything queued before it fsyncs: with writes
/// slow, `sync` returns with every record in the file, and the fsync found them
/// there.
#[test]
fn an_fsync_writes_every_queued_buffer_first() {
    const LEN: usize = 500;
    let dir = tempfile::tempdir().expect("tempdir");
    let segment = first_segment(dir.path());
    let at_fsync = Arc::new(Mutex::new(Vec::<u64>::new()));
    let (fsyncs, path) = (Arc::clone(&at_fsync), segment.clone());
    let options = LogOptions::default()
        .fsync(FsyncPolicy::EveryN(100_000))
        .write_hook(Arc::new(|| -> io::Result<()> {
            std::thread::sleep(Duration::from_millis(20));
            Ok(())
        }))
        .fsync_hook(Arc::new(move || -> io::Result<()> {
            fsyncs.lock().expect("fsyncs").push(file_len(&path));
            Ok(())
        }));
    let log = Log::open(dir.path(), options).expect("open");
    let records = multi_thread().block_on(async {
        let mut records = 0;
        for round in 0..3 {
            for _ in 0..(1200 + round * 100) {
                records += 1;
                log.append(&payload(records, LEN)).await.expect("append");
            }
            log.sync().await.expect("sync");
            let expected = SEGMENT_HEADER + records * (HEADER + LEN as u64);
            assert_eq!(file_len(&segment), expected, "round {round}");
            let seen = at_fsync.lock().expect("fsyncs").last().copied();
            assert_eq!(seen, Some(expected), "round {round}: what the fsync found");
        }
        log.close().await.expect("close");
        records
    });
    let log = Log::open(dir.path(), LogOptions::default()).expect("reopen");
    assert_eq!(log.last_seq(), Some(records));
}
