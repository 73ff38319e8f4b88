//! Segments: rolls run on the log's sync thread (no fsync on the async thread
//! that appends), and `truncate_before` never forgets a segment it could not
//! remove.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use foldkit_storage::{FsyncPolicy, Log, LogOptions, StorageError};
use parking_lot::Mutex;

fn payload(i: u64) -> Vec<u8> {
    format!("record {i} {}", "x".repeat((i % 50) as usize)).into_bytes()
}

fn segment_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    found.sort();
    found
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

/// A roll's fsync is slow (the hook sleeps 300 ms): on a single-threaded
/// runtime a timer task keeps ticking while an append waits for the roll, and
/// every fsync runs on the sync thread, none on the runtime's thread.
#[test]
fn a_slow_roll_fsync_does_not_block_the_async_thread() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let threads = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&threads);
    let hook = Arc::new(move || {
        let name = std::thread::current().name().unwrap_or("?").to_owned();
        let first = {
            let mut seen = seen.lock();
            seen.push(name);
            seen.len() == 1
        };
        if first {
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok(())
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let options = LogOptions::default()
        .fsync(FsyncPolicy::Never)
        .segment_size(4096)
        .fsync_hook(hook);
    runtime.block_on(async {
        let log = Log::open(dir.path(), options.clone()).expect("open");
        let ticks = Arc::new(AtomicU64::new(0));
        let ticking = Arc::clone(&ticks);
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                ticking.fetch_add(1, Ordering::Relaxed);
            }
        });
        tokio::task::yield_now().await;
        let mut during_roll = 0;
        for i in 1..=200 {
            let before = ticks.load(Ordering::Relaxed);
            let started = std::time::Instant::now();
            log.append(&payload(i)).await.expect("append");
            if started.elapsed() >= Duration::from_millis(250) {
                during_roll = ticks.load(Ordering::Relaxed) - before;
            }
        }
        ticker.abort();
        assert!(
            during_roll >= 10,
            "the timer ticked {during_roll} times while an append waited 300 ms for a roll"
        );
        log.close().await.expect("close");
        let log = Log::open(dir.path(), options).expect("reopen");
        let all: Vec<_> = log
            .range(..)
            .expect("range")
            .map(|r| r.expect("record"))
            .collect();
        assert_eq!(all.len(), 200);
        for record in all {
            assert_eq!(&*record.payload, &payload(record.seq)[..]);
        }
        log.close().await.expect("close");
    });
    assert!(
        segment_files(dir.path()).len() > 2,
        "the records span segments"
    );
    let threads = threads.lock();
    assert!(!threads.is_empty());
    assert!(
        threads.iter().all(|name| name == "foldkit-log-sync"),
        "fsyncs ran on {threads:?}"
    );
}

/// The second-oldest segment is replaced by a non-empty directory of the same
/// name, so removing it fails: the oldest is removed, the failing one stays in
/// the log (the error names it), and once the file is back it reads and is
/// removed by the next call.
#[tokio::test]
async fn truncate_before_keeps_a_segment_it_cannot_remove() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = LogOptions::default()
        .fsync(FsyncPolicy::Never)
        .segment_size(4096);
    let log = Log::open(dir.path(), options).expect("open");
    for i in 1..=500 {
        log.append(&payload(i)).await.expect("append");
    }
    log.sync().await.expect("sync");
    let segments = segment_files(dir.path());
    assert!(segments.len() > 4, "{segments:?}");
    let stuck = segments[1].clone();
    let stuck_first: u64 = stuck
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("seq name");
    let saved = std::fs::read(&stuck).expect("read segment");
    std::fs::remove_file(&stuck).expect("remove");
    std::fs::create_dir(&stuck).expect("dir in its place");
    std::fs::write(stuck.join("keep"), b"x").expect("non-empty");

    let error = log.truncate_before(400).expect_err("the removal fails");
    match &error {
        StorageError::Io { path, .. } => assert_eq!(path, &stuck),
        other => panic!("expected an Io error naming the segment, got {other:?}"),
    }
    let chain = error_chain(&error);
    assert_eq!(
        chain.matches(&*stuck.display().to_string()).count(),
        1,
        "the segment is named once: {chain}"
    );
    assert_eq!(
        chain.matches("os error").count(),
        1,
        "the OS error is shown once: {chain}"
    );
    assert!(!segments[0].exists(), "the oldest segment was removed");
    assert_eq!(
        log.first_seq(),
        Some(stuck_first),
        "the stuck segment is kept"
    );

    std::fs::remove_dir_all(&stuck).expect("remove dir");
    std::fs::write(&stuck, saved).expect("restore");
    assert_eq!(
        &*log.read(stuck_first).expect("kept segment reads").payload,
        &payload(stuck_first)[..]
    );
    assert!(log.truncate_before(400).expect("truncate") >= 1);
    assert!(!stuck.exists());
    assert!(log.first_seq().expect("records") > stuck_first);
    assert_eq!(
        log.range(..).expect("range").count() as u64,
        500 - log.first_seq().unwrap() + 1
    );
    log.close().await.expect("close");
}

/// A tail behind the in-memory window reads the segment files on the blocking
/// pool: its first poll returns `Pending` (the read runs elsewhere) instead of
/// reading inline, and the records then come in order. The pool's one thread is
/// held busy across that poll, so the read cannot have finished already (on a
/// loaded machine a free pool thread could win that race).
#[test]
fn a_tail_reads_sealed_segments_off_the_async_thread() {
    tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(tail_reads_sealed_segments_off_the_async_thread());
}

async fn tail_reads_sealed_segments_off_the_async_thread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(
        dir.path(),
        LogOptions::default()
            .fsync(FsyncPolicy::Never)
            .segment_size(64 << 10),
    )
    .expect("open");
    for i in 1..=5000 {
        log.append(&payload(i)).await.expect("append");
    }
    let mut tail = log.tail(1);
    {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let busy = tokio::task::spawn_blocking(move || held.recv());
        let mut next = std::pin::pin!(tail.next_batch(100));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(
            next.as_mut().poll(&mut cx).is_pending(),
            "the file read runs on the blocking pool, not inline"
        );
        release.send(()).expect("release the pool thread");
        busy.await.expect("join").expect("released");
        let batch = next.await.expect("batch");
        assert_eq!(batch.first().map(|r| r.seq), Some(1));
    }
    let mut seen = tail.position() - 1;
    while seen < 5000 {
        for record in tail.next_batch(1000).await.expect("batch") {
            seen += 1;
            assert_eq!(record.seq, seen);
            assert_eq!(&*record.payload, &payload(seen)[..]);
        }
    }
    log.close().await.expect("close");
}
