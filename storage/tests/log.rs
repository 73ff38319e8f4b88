//! The log's behaviour: append, read, range, segments, tails, locking, typed
//! errors, poisoning, and group commit.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use foldkit_storage::{FsyncPolicy, Log, LogOptions, StorageError};
use futures::StreamExt;

fn payload(i: u64) -> Vec<u8> {
    format!("record {i} {}", "x".repeat((i % 50) as usize)).into_bytes()
}

fn opts(policy: FsyncPolicy) -> LogOptions {
    LogOptions::default().fsync(policy)
}

async fn filled(dir: &std::path::Path, n: u64, options: LogOptions) -> Log {
    let log = Log::open(dir, options).expect("open");
    for i in 1..=n {
        assert_eq!(log.append(&payload(i)).await.expect("append"), i);
    }
    log
}

#[tokio::test]
async fn append_read_range_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = filled(dir.path(), 100, opts(FsyncPolicy::Never)).await;
    assert_eq!((log.first_seq(), log.last_seq()), (Some(1), Some(100)));
    assert_eq!(&*log.read(42).expect("read").payload, &payload(42)[..]);
    let seqs: Vec<u64> = log
        .range(10..20)
        .expect("range")
        .map(|r| r.expect("record").seq)
        .collect();
    assert_eq!(seqs, (10..20).collect::<Vec<_>>());
    assert_eq!(log.range(95..).expect("range").count(), 6);
    assert_eq!(log.range(..=3).expect("range").count(), 3);
    assert!(matches!(
        log.read(101),
        Err(StorageError::NotFound {
            seq: 101,
            last: Some(100),
            ..
        })
    ));
    assert!(matches!(log.read(0), Err(StorageError::NotFound { .. })));
    let before = log.read(7).expect("read");
    log.close().await.expect("close");

    let log = Log::open(dir.path(), opts(FsyncPolicy::Never)).expect("reopen");
    assert!(!log.recovery_report().repaired());
    assert_eq!(log.recovery_report().records, 100);
    assert_eq!(
        log.read(7).expect("read"),
        before,
        "seq, timestamp and payload survive a reopen"
    );
    assert_eq!(log.append(b"next").await.expect("append"), 101);
    let all: Vec<_> = log
        .range(..)
        .expect("range")
        .collect::<Result<_, _>>()
        .expect("records");
    assert_eq!(all.len(), 101);
    assert!(all.iter().enumerate().all(|(i, r)| r.seq == i as u64 + 1));
}

#[tokio::test]
async fn an_empty_log_has_no_seqs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), LogOptions::default()).expect("open");
    assert_eq!((log.first_seq(), log.last_seq()), (None, None));
    assert_eq!(log.range(..).expect("range").count(), 0);
    log.sync().await.expect("sync of nothing");
}

#[tokio::test]
async fn segments_roll_and_truncate_before_drops_whole_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = opts(FsyncPolicy::Never).segment_size(4096);
    let log = filled(dir.path(), 500, options.clone()).await;
    let segments = std::fs::read_dir(dir.path()).expect("dir").filter(|e| {
        e.as_ref()
            .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "seg"))
    });
    assert!(
        segments.count() > 5,
        "500 records of ~60 bytes must span several 4 KiB segments"
    );
    assert_eq!(log.range(..).expect("range").count(), 500);

    let removed = log.truncate_before(250).expect("truncate");
    assert!(removed > 0);
    let first = log.first_seq().expect("records remain");
    assert!(first <= 250 && first > 1, "first seq {first}");
    assert!(matches!(log.read(1), Err(StorageError::NotFound { .. })));
    assert_eq!(&*log.read(250).expect("kept").payload, &payload(250)[..]);
    log.close().await.expect("close");

    let log = Log::open(dir.path(), options).expect("reopen");
    assert_eq!((log.first_seq(), log.last_seq()), (Some(first), Some(500)));
    assert_eq!(
        log.range(first..).expect("range").count() as u64,
        501 - first
    );
}

#[tokio::test]
async fn bad_input_gets_typed_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(
        dir.path().join("log"),
        LogOptions::default().max_record_size(100),
    )
    .expect("open");
    assert!(matches!(
        log.append(b"").await,
        Err(StorageError::EmptyPayload)
    ));
    assert!(matches!(
        log.append(&[1; 101]).await,
        Err(StorageError::PayloadTooLarge { len: 101, max: 100 })
    ));
    let message = log
        .append(&[1; 101])
        .await
        .expect_err("too large")
        .to_string();
    assert!(message.contains("limit of 100 bytes"), "{message}");
    let empty: [&[u8]; 0] = [];
    assert!(matches!(
        log.append_batch(&empty).await,
        Err(StorageError::EmptyBatch)
    ));
    assert!(matches!(
        log.append_batch(&[&b"ok"[..], b""]).await,
        Err(StorageError::EmptyPayload)
    ));
    assert_eq!(log.last_seq(), None, "a rejected batch writes nothing");

    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a dir").expect("write");
    assert!(matches!(
        Log::open(&file, LogOptions::default()),
        Err(StorageError::NotADirectory { .. })
    ));
}

#[tokio::test]
async fn a_second_writer_is_refused_at_once_until_the_first_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), LogOptions::default()).expect("open");
    let second = Log::open(dir.path(), LogOptions::default());
    assert!(
        matches!(second, Err(StorageError::Locked { .. })),
        "{second:?}"
    );
    log.close().await.expect("close");
    Log::open(dir.path(), LogOptions::default()).expect("open after close");
}

#[tokio::test]
async fn closed_logs_refuse_appends_but_stay_readable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = filled(dir.path(), 3, LogOptions::default()).await;
    log.close().await.expect("close");
    log.close().await.expect("closing twice is a no-op");
    assert!(matches!(
        log.append(b"late").await,
        Err(StorageError::Closed)
    ));
    assert_eq!(log.read(3).expect("read").seq, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_sees_existing_then_live_records_and_ends_on_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = filled(dir.path(), 10, opts(FsyncPolicy::Never)).await;
    let mut tail = log.tail(5);
    let first = tail.next_batch(100).await.expect("existing");
    assert_eq!(
        first.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (5..=10).collect::<Vec<_>>()
    );
    assert_eq!(tail.position(), 11);

    let writer = log.clone();
    let appender = tokio::spawn(async move {
        for i in 11..=2_000 {
            writer.append(&payload(i)).await.expect("append");
            if i % 500 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    let mut next = 11;
    while next <= 2_000 {
        for record in tail.next_batch(64).await.expect("live") {
            assert_eq!(record.seq, next);
            assert_eq!(&*record.payload, &payload(next)[..]);
            next += 1;
        }
    }
    appender.await.expect("appender");

    // As a Stream: from the start, ending once the log is closed and drained.
    let stream = log.tail(1990);
    log.close().await.expect("close");
    let seqs: Vec<u64> = stream.map(|r| r.expect("record").seq).collect().await;
    assert_eq!(seqs, (1990..=2_000).collect::<Vec<_>>());
    assert!(matches!(
        tail.next_batch(1).await,
        Err(StorageError::Closed)
    ));
}

#[tokio::test]
async fn a_tail_behind_the_memory_window_reads_from_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = filled(
        dir.path(),
        40_000,
        opts(FsyncPolicy::Never).segment_size(256 << 10),
    )
    .await;
    let mut tail = log.tail(1);
    let mut next = 1;
    while next <= 40_000 {
        for record in tail.next_batch(5_000).await.expect("batch") {
            assert_eq!(record.seq, next);
            next += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_durable_appends_share_fsyncs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fsyncs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&fsyncs);
    let hook = Arc::new(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(())
    });
    let log = Log::open(dir.path(), opts(FsyncPolicy::Always).fsync_hook(hook)).expect("open");
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                log.append(&payload(t * 1000 + i)).await.expect("append");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(log.last_seq(), Some(400));
    let n = fsyncs.load(Ordering::Relaxed);
    assert!(
        n <= 100,
        "400 Always appends by 8 concurrent appenders took {n} fsyncs: group commit \
         must share each among ~8 (at least 4)"
    );
}

#[tokio::test]
async fn every_n_fsyncs_every_n_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fsyncs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&fsyncs);
    let hook = Arc::new(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(())
    });
    let log = Log::open(dir.path(), opts(FsyncPolicy::EveryN(10)).fsync_hook(hook)).expect("open");
    for i in 1..=100 {
        log.append(&payload(i)).await.expect("append");
    }
    assert_eq!(fsyncs.load(Ordering::Relaxed), 10);
}

/// The error and its sources, as a report printing the whole chain shows them.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        out.push_str(": ");
        out.push_str(&next.to_string());
        cause = next.source();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_poisons_the_log_and_wakes_every_waiter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fail = Arc::new(AtomicBool::new(false));
    let failing = Arc::clone(&fail);
    let hook = Arc::new(move || {
        if failing.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
            Err(io::Error::other("injected fsync failure"))
        } else {
            Ok(())
        }
    });
    let log = Log::open(dir.path(), opts(FsyncPolicy::Always).fsync_hook(hook)).expect("open");
    log.append(b"durable")
        .await
        .expect("append before the failure");
    fail.store(true, Ordering::Relaxed);

    let mut waiters = Vec::new();
    for i in 0..8u64 {
        let log = log.clone();
        waiters.push(tokio::spawn(async move { log.append(&payload(i)).await }));
    }
    for waiter in waiters {
        let result = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("no waiter hangs");
        let error = result
            .expect("task")
            .expect_err("no append is acknowledged after the fsync failed");
        let chain = error_chain(&error);
        assert_eq!(
            chain.matches("injected fsync failure").count(),
            1,
            "each cause is shown once in the chain: {chain}"
        );
        assert!(chain.contains("fsync segment"), "{chain}");
    }
    fail.store(false, Ordering::Relaxed);
    assert!(
        matches!(log.append(b"later").await, Err(StorageError::Poisoned(_))),
        "the poison is permanent"
    );
    assert!(log.sync().await.is_err());
    assert!(log.close().await.is_err(), "close reports the poison");
    drop(log);

    // Reopening re-validates from disk: the acknowledged record is there.
    let log = Log::open(dir.path(), LogOptions::default()).expect("reopen");
    assert_eq!(&*log.read(1).expect("read").payload, b"durable");
    let n = log.last_seq().expect("records") + 1;
    assert_eq!(log.append(b"after").await.expect("append"), n);
}

#[tokio::test]
async fn interval_policy_fsyncs_in_the_background() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fsyncs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&fsyncs);
    let hook = Arc::new(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(())
    });
    let log = Log::open(
        dir.path(),
        opts(FsyncPolicy::Interval(Duration::from_millis(10))).fsync_hook(hook),
    )
    .expect("open");
    log.append(b"one").await.expect("append");
    for _ in 0..200 {
        if fsyncs.load(Ordering::Relaxed) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        fsyncs.load(Ordering::Relaxed) > 0,
        "the interval flusher never fsynced"
    );
}

#[tokio::test]
async fn timestamps_are_wall_clock_ms_and_never_decrease_across_a_reopen() {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let before = now();
    let log = filled(dir.path(), 3_000, opts(FsyncPolicy::Never)).await;
    let after = now();
    let records: Vec<_> = log
        .range(..)
        .expect("range")
        .collect::<Result<_, _>>()
        .expect("records");
    // A coarse clock lags by at most a tick; allow a generous second.
    for pair in records.windows(2) {
        assert!(pair[0].timestamp <= pair[1].timestamp, "{pair:?}");
    }
    for record in [&records[0], &records[records.len() - 1]] {
        assert!(record.timestamp + 1000 >= before && record.timestamp <= after + 1000);
    }
    let last = records[records.len() - 1].timestamp;
    log.close().await.expect("close");

    let log = Log::open(dir.path(), opts(FsyncPolicy::Never)).expect("reopen");
    let seq = log.append(b"after reopen").await.expect("append");
    assert!(log.read(seq).expect("read").timestamp >= last);
    log.close().await.expect("close");
}

#[tokio::test]
async fn every_record_reads_back_from_the_buffer_the_memory_window_or_the_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), opts(FsyncPolicy::Never).segment_size(64 << 10)).expect("open");
    for i in 1..=12_000u64 {
        log.append(&payload(i)).await.expect("append");
        // Now and then, read back everything recent: some of it is still in
        // the write buffer, some in flushed chunks, some only in files.
        if i % 997 == 0 {
            for seq in i.saturating_sub(3_000).max(1)..=i {
                assert_eq!(*log.read(seq).expect("read").payload, *payload(seq));
            }
            let got: Vec<_> = log
                .range(i.saturating_sub(5_000).max(1)..)
                .expect("range")
                .map(|r| r.expect("record").seq)
                .collect();
            assert_eq!(
                got,
                (i.saturating_sub(5_000).max(1)..=i).collect::<Vec<_>>()
            );
        }
    }
    let mut tail = log.tail(1);
    let mut next = 1;
    while next <= 12_000 {
        for record in tail.next_batch(700).await.expect("batch") {
            assert_eq!((record.seq, &*record.payload), (next, &*payload(next)));
            next += 1;
        }
    }
    log.close().await.expect("close");
}

/// The record size limit is checked on append only: records written under a higher
/// limit stay whole and readable after a reopen with a lower one. (Before, recovery
/// read the newest of them as a torn tail and cut it off: acknowledged data lost.)
#[tokio::test]
async fn a_lower_record_size_limit_at_reopen_keeps_the_larger_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log");
    let large = vec![7u8; 10_000];
    {
        let log = Log::open(&path, LogOptions::default().max_record_size(1 << 20)).expect("open");
        log.append(b"small").await.expect("append");
        log.append(&large).await.expect("append");
        log.close().await.expect("close");
    }
    for _ in 0..2 {
        let log = Log::open(&path, LogOptions::default().max_record_size(100)).expect("reopen");
        assert!(
            !log.recovery_report().repaired(),
            "nothing to repair: {:?}",
            log.recovery_report()
        );
        assert_eq!(log.last_seq(), Some(2));
        let payloads: Vec<Vec<u8>> = log
            .range(..)
            .expect("range")
            .map(|r| r.expect("record").payload.to_vec())
            .collect();
        assert_eq!(payloads, vec![b"small".to_vec(), large.clone()]);
        assert_eq!(&*log.read(2).expect("read").payload, &large[..]);
        // The lower limit holds for new appends.
        assert!(matches!(
            log.append(&[1; 101]).await,
            Err(StorageError::PayloadTooLarge { len: 101, max: 100 })
        ));
        log.close().await.expect("close");
    }
}
