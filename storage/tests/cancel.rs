//! Cancellation: every public async method of `Log` and `Tail` is dropped after
//! being polled 1, 2, ... `POLLS` times (with a no-op waker, time passing between
//! polls), under each fsync policy where it matters; after each drop the log
//! must still work: later calls complete, the records read back are the
//! acknowledged ones (a dropped append's record(s) wholly there or absent),
//! `close` completes and a reopen gives the same records.

use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use foldkit_storage::{FsyncPolicy, Log, LogOptions, StorageError};
use futures::StreamExt;

/// The most polls before a drop.
const POLLS: usize = 6;
/// Records per segment with `payload`s of 96 bytes (128-byte frames) in 4 KiB
/// segments: the next append after this many starts a roll.
const PER_SEGMENT: usize = 31;

fn payload(i: u64) -> Vec<u8> {
    format!("{i:096}").into_bytes()
}

fn policies() -> [FsyncPolicy; 4] {
    [
        FsyncPolicy::Never,
        FsyncPolicy::EveryN(3),
        FsyncPolicy::Interval(Duration::from_millis(2)),
        FsyncPolicy::Always,
    ]
}

fn options(policy: FsyncPolicy) -> LogOptions {
    LogOptions::default().fsync(policy).segment_size(4096)
}

/// Polls `future` up to `polls` times with a waker that does nothing, letting
/// time pass between polls, and drops it unless it finished.
async fn poll_then_drop<F: Future>(future: F, polls: usize) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for i in 0..polls {
        if i > 0 {
            if i.is_multiple_of(2) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            } else {
                tokio::task::yield_now().await;
            }
        }
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Some(output);
        }
    }
    None
}

/// Awaits `future`, failing the test if it takes more than 10 s (a hang).
async fn within<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .unwrap_or_else(|_| panic!("{what} hangs"))
}

fn contents(log: &Log) -> Vec<Vec<u8>> {
    log.range(..)
        .expect("range")
        .map(|r| r.expect("record").payload.to_vec())
        .collect()
}

/// Appends `n` records numbered from `from`, returning their payloads.
async fn append_n(log: &Log, from: u64, n: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for i in from..from + n as u64 {
        within("a later append", log.append(&payload(i)))
            .await
            .expect("append");
        out.push(payload(i));
    }
    out
}

/// After the drop: later appends, sync and close complete; the log holds
/// `before`, then the dropped records or nothing, then the later ones; a reopen
/// gives the same.
async fn check_after_dropped_write(
    dir: &Path,
    policy: FsyncPolicy,
    log: Log,
    before: Vec<Vec<u8>>,
    dropped: Vec<Vec<u8>>,
    acknowledged: bool,
    case: &str,
) {
    let after = append_n(&log, 9000, 5).await;
    within("sync", log.sync()).await.expect("sync");
    let got = contents(&log);
    let with: Vec<_> = [&before[..], &dropped, &after].concat();
    let without: Vec<_> = [&before[..], &after].concat();
    if acknowledged {
        assert_eq!(got, with, "{case}: an acknowledged write is in the log");
    } else {
        assert!(
            got == with || got == without,
            "{case}: the dropped write is wholly there or absent ({} records)",
            got.len()
        );
    }
    within("close", log.close()).await.expect("close");
    let log = Log::open(dir, options(policy)).expect("reopen");
    assert_eq!(
        contents(&log),
        got,
        "{case}: the reopened log holds the same"
    );
    within("close after reopen", log.close())
        .await
        .expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_append_or_append_batch_leaves_the_log_working() {
    for policy in policies() {
        for polls in 1..=POLLS {
            // Prefilled so the dropped write goes in mid-segment or starts a roll.
            for prefill in [3, PER_SEGMENT] {
                for batch in [false, true] {
                    let case = format!(
                        "{} under {policy:?}, {prefill} records before, dropped after {polls} polls",
                        if batch { "append_batch" } else { "append" }
                    );
                    let dir = tempfile::tempdir().expect("tempdir");
                    let log = Log::open(dir.path(), options(policy)).expect("open");
                    let before = append_n(&log, 1, prefill).await;
                    let dropped: Vec<_> = (5000..if batch { 5003 } else { 5001 })
                        .map(payload)
                        .collect();
                    let acknowledged = if batch {
                        poll_then_drop(log.append_batch(&dropped), polls)
                            .await
                            .map(|r| r.map(|seqs| *seqs.start()))
                    } else {
                        poll_then_drop(log.append(&dropped[0]), polls).await
                    };
                    if let Some(result) = &acknowledged {
                        assert_eq!(result.as_ref().ok(), Some(&(prefill as u64 + 1)), "{case}");
                    }
                    check_after_dropped_write(
                        dir.path(),
                        policy,
                        log,
                        before,
                        dropped,
                        acknowledged.is_some(),
                        &case,
                    )
                    .await;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_sync_leaves_the_log_working() {
    for policy in policies() {
        for polls in 1..=POLLS {
            let case = format!("sync under {policy:?}, dropped after {polls} polls");
            let dir = tempfile::tempdir().expect("tempdir");
            let log = Log::open(dir.path(), options(policy)).expect("open");
            let before = append_n(&log, 1, PER_SEGMENT + 5).await;
            if let Some(result) = poll_then_drop(log.sync(), polls).await {
                result.expect("sync");
            }
            check_after_dropped_write(dir.path(), policy, log, before, Vec::new(), true, &case)
                .await;
        }
    }
}

/// A close dropped half-way: appends are refused (not hung), a second close
/// finishes the job (the records are durable and the directory is released,
/// so another `Log` opens it while the first still exists), and a third close
/// is a no-op.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_close_is_finished_by_the_next_close() {
    for policy in policies() {
        for polls in 1..=POLLS {
            let case = format!("close under {policy:?}, dropped after {polls} polls");
            let dir = tempfile::tempdir().expect("tempdir");
            let log = Log::open(dir.path(), options(policy)).expect("open");
            let before = append_n(&log, 1, PER_SEGMENT + 5).await;
            if let Some(result) = poll_then_drop(log.close(), polls).await {
                result.expect("close");
            }
            assert!(
                matches!(
                    within("append after close", log.append(b"late")).await,
                    Err(StorageError::Closed)
                ),
                "{case}"
            );
            assert_eq!(contents(&log), before, "{case}: reads still work");
            within("second close", log.close())
                .await
                .expect("second close");
            let reopened = Log::open(dir.path(), options(policy))
                .unwrap_or_else(|e| panic!("{case}: the second close released the directory: {e}"));
            assert_eq!(contents(&reopened), before, "{case}");
            within("third close", log.close())
                .await
                .expect("third close");
            within("close reopened", reopened.close())
                .await
                .expect("close");
        }
    }
}

/// How a tail is driven in [`a_cancelled_tail_yields_every_record_once`].
#[derive(Debug, Clone, Copy)]
enum Drive {
    NextBatch,
    Stream,
    /// Alternately `next()` and `next_batch()`, each dropped half-way.
    Both,
}

/// A tail from seq 1 (behind the memory window: its first batches come from the
/// segment files) while a writer appends: every call is dropped after `polls`
/// polls unless it finished, and the tail still yields every seq exactly once,
/// in order, then ends when the log is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_tail_yields_every_record_once() {
    const BEFORE: u64 = 2000;
    const TOTAL: u64 = 3000;
    for drive in [Drive::NextBatch, Drive::Stream, Drive::Both] {
        for polls in 1..=POLLS {
            let case = format!("{drive:?}, dropped after {polls} polls");
            let dir = tempfile::tempdir().expect("tempdir");
            let log = Log::open(dir.path(), options(FsyncPolicy::Never)).expect("open");
            for i in 1..=BEFORE {
                log.append(&payload(i)).await.expect("append");
            }
            let mut tail = log.tail(1);
            let writer = {
                let log = log.clone();
                tokio::spawn(async move {
                    for i in BEFORE + 1..=TOTAL {
                        log.append(&payload(i)).await.expect("append");
                        if i.is_multiple_of(50) {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                })
            };
            let mut got = Vec::new();
            let mut cancelled = 0u64;
            let mut call = 0u64;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while (got.len() as u64) < TOTAL {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{case}: the tail stalls at {}",
                    got.len()
                );
                call += 1;
                let use_stream = match drive {
                    Drive::NextBatch => false,
                    Drive::Stream => true,
                    Drive::Both => call.is_multiple_of(2),
                };
                let records = if use_stream {
                    poll_then_drop(tail.next(), polls)
                        .await
                        .map(|r| vec![r.expect("the tail goes on").expect("record")])
                } else {
                    poll_then_drop(tail.next_batch(7), polls)
                        .await
                        .map(|r| r.expect("batch"))
                };
                match records {
                    Some(records) => got.extend(records),
                    None => cancelled += 1,
                }
                if call.is_multiple_of(64) {
                    tokio::task::yield_now().await;
                }
            }
            within("writer", writer).await.expect("writer");
            let seqs: Vec<u64> = got.iter().map(|r| r.seq).collect();
            assert_eq!(seqs, (1..=TOTAL).collect::<Vec<_>>(), "{case}");
            for record in &got {
                assert_eq!(&*record.payload, &payload(record.seq)[..], "{case}");
            }
            assert_eq!(tail.position(), TOTAL + 1, "{case}");
            assert!(
                polls > 1 || cancelled > 0,
                "{case}: some calls were dropped"
            );
            println!("{case}: {cancelled} of {call} calls dropped");
            within("close", log.close()).await.expect("close");
            match drive {
                Drive::Stream => assert!(within("end", tail.next()).await.is_none(), "{case}"),
                _ => assert!(
                    matches!(
                        within("end", tail.next_batch(7)).await,
                        Err(StorageError::Closed)
                    ),
                    "{case}"
                ),
            }
        }
    }
}

/// The reported reproduction: under `Always`, `log.append(..)` polled once with
/// `now_or_never()` and dropped used to leave the group-commit leader flag set,
/// so every later append and `close()` hung.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_polled_once_and_dropped_does_not_stop_the_log() {
    use futures::FutureExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), options(FsyncPolicy::Always)).expect("open");
    for i in 1..=20 {
        let _ = log.append(&payload(i)).now_or_never();
    }
    let seq = within("a later append", log.append(b"later"))
        .await
        .expect("append");
    assert_eq!(seq, 21, "each dropped append's record is in the log");
    within("close", log.close()).await.expect("close");
    let log = Log::open(dir.path(), options(FsyncPolicy::Always)).expect("reopen");
    assert_eq!(contents(&log).len(), 21);
}

/// A tail whose file read is cancelled by the runtime's shutdown (the blocking
/// pool refuses it) gets `StorageError::Cancelled` naming the directory, not an
/// I/O error the disk never reported.
#[test]
fn a_tail_read_cancelled_by_a_runtime_shutdown_is_named_as_such() {
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    writer.block_on(async {
        let log = Log::open(dir.path(), options(FsyncPolicy::Always)).expect("open");
        // Several 4 KiB segments: an open keeps only the newest records in memory.
        append_n(&log, 0, 100).await;
        log.close().await.expect("close");
    });
    // Reopened, the first records are on file only: a tail reads them on the pool,
    // which a runtime shut down refuses (the read is cancelled, never run).
    let log = Log::open(dir.path(), options(FsyncPolicy::Always)).expect("reopen");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let handle = runtime.handle().clone();
    runtime.shutdown_background();
    let _entered = handle.enter();
    let mut tail = log.tail(1);
    let mut next = pin!(tail.next_batch(10));
    let mut cx = Context::from_waker(Waker::noop());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let result = loop {
        if let Poll::Ready(result) = next.as_mut().poll(&mut cx) {
            break result;
        }
        assert!(std::time::Instant::now() < deadline, "the tail hangs");
        std::thread::sleep(Duration::from_millis(1));
    };
    match result {
        Err(StorageError::Cancelled { path, .. }) => assert_eq!(path, dir.path()),
        other => panic!("expected Cancelled, got {other:?}"),
    }
}
