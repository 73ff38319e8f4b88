//! What each `FsyncPolicy` keeps after a power loss, one test per policy,
//! checked against the table in `FsyncPolicy`'s docs.
//!
//! A power loss keeps what an fsync covered and nothing else, and cannot be
//! staged by killing a process. So these tests watch the fsyncs instead: the
//! test hook, called on the sync thread just before each fsync, scans the
//! directory (read-only, `inspect::scan`) and records the last seq in the
//! segment files then, which that fsync makes durable. The tests assert that
//! the fsyncs come when the docs say: under `Always` before each
//! acknowledgement, under `EveryN(n)` at the n-th unsynced record, under
//! `Interval(d)` within the interval, under `Never` only at `sync`, `close`
//! and segment rolls.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use foldkit_storage::inspect::{self, ScanOptions};
use foldkit_storage::{FsyncPolicy, Log, LogOptions, Seq};

fn payload(seq: Seq) -> Vec<u8> {
    format!("record {seq} {}", "p".repeat((seq % 90) as usize)).into_bytes()
}

/// The fsyncs a log ran: when each began and the last seq it covered.
#[derive(Clone, Default)]
struct Fsyncs(Arc<Mutex<Vec<(Instant, Seq)>>>);

impl Fsyncs {
    fn all(&self) -> Vec<(Instant, Seq)> {
        self.0.lock().expect("fsyncs").clone()
    }

    fn covered(&self) -> Vec<Seq> {
        self.all().into_iter().map(|(_, seq)| seq).collect()
    }

    fn count(&self) -> usize {
        self.0.lock().expect("fsyncs").len()
    }

    /// The highest seq an fsync began for (0: none).
    fn highest(&self) -> Seq {
        self.covered().into_iter().max().unwrap_or(0)
    }
}

/// Opens a log in `dir` under `options` whose fsyncs are recorded; `gate`,
/// when closed, holds each fsync (after recording it) until opened.
fn open(dir: &std::path::Path, options: LogOptions, gate: Option<Gate>) -> (Log, Fsyncs) {
    let fsyncs = Fsyncs::default();
    let record = fsyncs.clone();
    let scanned = dir.to_path_buf();
    let hook = Arc::new(move || {
        let report = inspect::scan(&scanned, &ScanOptions::default(), |_| true)
            .map_err(std::io::Error::other)?;
        let covered = report.last_seq.unwrap_or(0);
        record
            .0
            .lock()
            .expect("fsyncs")
            .push((Instant::now(), covered));
        if let Some(gate) = &gate {
            gate.pass();
        }
        Ok(())
    });
    let log = Log::open(dir, options.fsync_hook(hook)).expect("open");
    (log, fsyncs)
}

/// Holds fsyncs while closed.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn set_closed(&self, closed: bool) {
        *self.0.0.lock().expect("gate") = closed;
        self.0.1.notify_all();
    }

    fn pass(&self) {
        let mut closed = self.0.0.lock().expect("gate");
        while *closed {
            closed = self.0.1.wait(closed).expect("gate");
        }
    }
}

/// Waits (up to 10 s) until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// `Always`: every append returns only after an fsync that covers it began
/// (and ended: the thread runs one at a time); one appender at a time gets
/// one fsync per append, covering exactly that append.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_fsyncs_before_each_acknowledgement() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, fsyncs) = open(
        dir.path(),
        LogOptions::default().fsync(FsyncPolicy::Always),
        None,
    );
    let mut acked = Vec::new();
    for i in 1..=30u64 {
        let last = if i % 4 == 0 {
            let first = log.last_seq().unwrap_or(0) + 1;
            *log.append_batch(&[payload(first), payload(first + 1)])
                .await
                .expect("batch")
                .end()
        } else {
            log.append(&payload(i)).await.expect("append")
        };
        assert!(
            fsyncs.highest() >= last,
            "seq {last} acknowledged before any fsync covered it ({:?})",
            fsyncs.covered()
        );
        acked.push(last);
    }
    assert_eq!(fsyncs.covered(), acked, "one fsync per append, covering it");

    // Concurrent appenders: each acknowledgement still follows an fsync covering it.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (log, fsyncs) = (log.clone(), fsyncs.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                let seq = log.append(&payload(i)).await.expect("append");
                assert!(fsyncs.highest() >= seq, "seq {seq} acknowledged unsynced");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    log.close().await.expect("close");
}

/// `EveryN(n)`: the append that completes the n-th unsynced record waits
/// for an fsync covering it; the n - 1 before it are acknowledged with none.
/// With concurrent appenders, `2 (n - 1)` acknowledged records can be
/// unsynced at once: the n - 1 of the fsync in flight, and n - 1 appended
/// during it (the n-th of those waits).
#[tokio::test]
async fn every_n_fsyncs_at_the_nth_unsynced_record() {
    const N: u64 = 5;
    let dir = tempfile::tempdir().expect("tempdir");
    let gate = Gate::default();
    let (log, fsyncs) = open(
        dir.path(),
        LogOptions::default().fsync(FsyncPolicy::EveryN(N)),
        Some(gate.clone()),
    );
    // One appender: an fsync exactly at every n-th record.
    for seq in 1..=23 {
        assert_eq!(log.append(&payload(seq)).await.expect("append"), seq);
        let expected: Vec<Seq> = (1..=seq / N).map(|k| k * N).collect();
        assert_eq!(fsyncs.covered(), expected, "fsyncs after seq {seq}");
    }
    // `sync` covers the unsynced rest; a batch reaching n waits for its own.
    log.sync().await.expect("sync");
    assert_eq!(fsyncs.covered().last(), Some(&23));
    let batch: Vec<Vec<u8>> = (24..=30).map(payload).collect();
    assert_eq!(log.append_batch(&batch).await.expect("batch"), 24..=30);
    assert_eq!(fsyncs.covered().last(), Some(&30));
    let before = fsyncs.count();

    // The fsync of 31..=35 held in flight: 36..=39 are acknowledged at once,
    // 40 waits for the next fsync.
    for seq in 31..=34 {
        log.append(&payload(seq)).await.expect("append");
    }
    gate.set_closed(true);
    let fifth = tokio::spawn({
        let log = log.clone();
        async move { log.append(&payload(35)).await }
    });
    eventually("the fsync of 35 begins", || fsyncs.count() == before + 1).await;
    for seq in 36..=39 {
        let acked = tokio::time::timeout(Duration::from_secs(10), log.append(&payload(seq)))
            .await
            .expect("acknowledged without an fsync")
            .expect("append");
        assert_eq!(acked, seq);
    }
    let tenth = tokio::spawn({
        let log = log.clone();
        async move { log.append(&payload(40)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !fifth.is_finished() && !tenth.is_finished(),
        "the n-th records wait for their fsync"
    );
    assert_eq!(
        fsyncs.covered()[before..],
        [35],
        "8 acknowledged records (31..=34, 36..=39) unsynced at once, 2 (n - 1)"
    );
    gate.set_closed(false);
    assert_eq!(fifth.await.expect("task").expect("append"), 35);
    assert_eq!(tenth.await.expect("task").expect("append"), 40);
    assert_eq!(fsyncs.covered()[before..], [35, 40]);
    log.close().await.expect("close");
}

/// `Interval(d)`: an idle log never fsyncs; fsyncs begin at least `d` apart;
/// every record is covered by an fsync that begins within `d + min(d, 50 ms)`
/// of its append (plus slack for a loaded machine).
#[tokio::test]
async fn interval_fsyncs_within_its_interval() {
    const D: Duration = Duration::from_millis(100);
    const TICK: Duration = Duration::from_millis(50);
    const SLACK: Duration = Duration::from_millis(500);
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, fsyncs) = open(
        dir.path(),
        LogOptions::default().fsync(FsyncPolicy::Interval(D)),
        None,
    );
    tokio::time::sleep(2 * D + TICK).await;
    assert_eq!(fsyncs.count(), 0, "nothing unsynced: no fsync");

    let mut acked = Vec::new();
    let started = Instant::now();
    let mut seq = 0;
    while started.elapsed() < Duration::from_millis(800) {
        seq += 1;
        assert_eq!(log.append(&payload(seq)).await.expect("append"), seq);
        acked.push((seq, Instant::now()));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eventually("an fsync covers the last record", || {
        fsyncs.highest() >= seq
    })
    .await;
    let all = fsyncs.all();
    assert!(all.len() >= 2, "{} fsyncs in 800 ms", all.len());
    for pair in all.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(gap >= D, "two fsyncs {gap:?} apart, under Interval({D:?})");
    }
    for (seq, at) in acked {
        let (began, _) = all
            .iter()
            .find(|&&(_, covered)| covered >= seq)
            .expect("an fsync covers every record");
        assert!(
            *began <= at + D + TICK + SLACK,
            "seq {seq}: the fsync covering it began {:?} after its append",
            began.saturating_duration_since(at)
        );
    }
    log.close().await.expect("close");
}

/// `Never`: no fsync on append nor on the background flush; one at each
/// segment roll (covering the sealed segment), at `sync` and at `close`.
#[tokio::test]
async fn never_fsyncs_only_at_sync_close_and_roll() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, fsyncs) = open(
        dir.path(),
        LogOptions::default()
            .fsync(FsyncPolicy::Never)
            .segment_size(4096),
        None,
    );
    for seq in 1..=200 {
        assert_eq!(log.append(&payload(seq)).await.expect("append"), seq);
    }
    // Two background flushes (every 50 ms) pass: they write, never fsync.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let segments = inspect::segments(dir.path()).expect("segments");
    assert!(segments.len() >= 3, "{} segments", segments.len());
    let sealed_ends: Vec<Seq> = segments[1..].iter().map(|(first, _)| first - 1).collect();
    assert_eq!(
        fsyncs.covered(),
        sealed_ends,
        "one fsync per roll, covering the sealed segment"
    );
    log.sync().await.expect("sync");
    assert_eq!(fsyncs.covered()[sealed_ends.len()..], [200], "sync");
    for seq in 201..=203 {
        log.append(&payload(seq)).await.expect("append");
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(fsyncs.count(), sealed_ends.len() + 1, "no fsync since sync");
    log.close().await.expect("close");
    assert_eq!(
        fsyncs.covered()[sealed_ends.len()..],
        [200, 203],
        "close fsyncs"
    );
}
