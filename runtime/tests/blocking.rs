//! No blocking on the async workers (issue 14, item 4 of the issue, item 3 of
//! the runtime task): on a `current_thread` runtime, a timer and a watcher keep
//! making progress while a Db opens (log recovery, snapshot loading) and its
//! state replays a long log.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use foldkit::prelude::*;
use futures::StreamExt;

mod common;
use common::{Ev, Sum};

/// Events in the log: long enough that recovery plus replay take far longer
/// than the gap allowed, in a debug build.
const EVENTS: u64 = 250_000;
/// The longest the timer may go without a tick while the open and the
/// replay run (it ticks every millisecond when the thread is free; measured
/// ~20 ms at most). Loose, so that a busy machine does not fail it; blocking
/// code stalls it for the whole open plus replay (~230 ms measured before the
/// fix, with no tick at all).
const MAX_GAP: Duration = Duration::from_millis(150);
/// The fewest ticks the timer must make during the open and the replay.
const MIN_TICKS: usize = 20;

fn builder(dir: &std::path::Path) -> foldkit::DbBuilder {
    Db::builder(dir)
        .fsync(FsyncPolicy::Never)
        .snapshot_on_close(false)
        .state::<Sum>()
}

#[test]
fn a_timer_and_a_watcher_progress_while_a_long_log_opens_and_replays() {
    let dir = tempfile::tempdir().expect("tempdir");
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            let db = builder(dir.path()).open().await.expect("open");
            let events: Vec<Ev> = (0..EVENTS).map(Ev::Add).collect();
            for chunk in events.chunks(4096) {
                db.append_batch(chunk.to_vec()).await.expect("append");
            }
            db.close().await.expect("close");
        });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("current_thread runtime");
    runtime.block_on(async {
        let ticks = Arc::new(Mutex::new(Vec::new()));
        let timer = tokio::spawn({
            let ticks = Arc::clone(&ticks);
            async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    ticks.lock().expect("ticks").push(Instant::now());
                }
            }
        });
        tokio::task::yield_now().await; // the timer is armed
        let started = Instant::now();
        let db = builder(dir.path()).open().await.expect("open");
        let opened = Instant::now();
        let sum = db.state::<Sum>();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let watcher = tokio::spawn({
            let seen = Arc::clone(&seen);
            let mut counts = Box::pin(sum.watch_value(|s| s.count));
            async move {
                while let Some(count) = counts.next().await {
                    seen.lock().expect("seen").push((Instant::now(), count));
                    if count == EVENTS {
                        break;
                    }
                }
            }
        });
        sum.wait_for_seq(EVENTS).await.expect("replay");
        let replayed = Instant::now();
        tokio::time::timeout(Duration::from_secs(10), watcher)
            .await
            .expect("the watcher sees the end")
            .expect("watcher task");
        timer.abort();
        db.close().await.expect("close");

        let ticks = ticks.lock().expect("ticks").clone();
        let mut points = vec![started];
        points.extend(ticks.iter().copied().filter(|t| *t > started && *t < replayed));
        points.push(replayed);
        let gap = points
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default();
        let seen = seen.lock().expect("seen").clone();
        let during = seen.iter().filter(|(at, count)| *at < replayed && *count < EVENTS).count();
        eprintln!(
            "open {:?}, replay {:?}, {} ticks, longest gap {gap:?}, {} watcher values during the replay",
            opened - started,
            replayed - opened,
            points.len() - 2,
            during,
        );
        assert!(
            gap <= MAX_GAP,
            "the timer stalled for {gap:?} during open ({:?}) + replay ({:?})",
            opened - started,
            replayed - opened
        );
        let open_ticks = ticks.iter().filter(|t| **t > started && **t < opened).count();
        assert!(
            open_ticks >= 3,
            "the timer ticked {open_ticks} times during the open ({:?}): it runs on a worker",
            opened - started
        );
        assert!(
            points.len() - 2 >= MIN_TICKS,
            "the timer ticked {} times during open + replay",
            points.len() - 2
        );
        assert!(
            during >= 2,
            "the watcher saw {during} values during the replay: {seen:?}"
        );
    });
}
