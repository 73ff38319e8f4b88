//! Gap-free tailing under concurrent writers in two OS processes.
//!
//! Sixteen writers (eight here, eight in a child process: this test binary
//! re-run with an environment variable) append while some of them hold their
//! transaction open for a random delay after their events got positions, so
//! later positions commit first. A tail running meanwhile must see every
//! acknowledged event exactly once, in position order.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use foldkit::store::{AppendBatch, EventStore, ExpectedVersion, RecordedEvent};
use foldkit_postgres::PgStore;
use support::{database, event, runtime};

/// Set (to the database URL) in the child process.
const CHILD_URL: &str = "FOLDKIT_PG_GAPFREE_URL";
/// The file the child writes its acknowledged positions to.
const CHILD_ACKS: &str = "FOLDKIT_PG_GAPFREE_ACKS";

const WRITERS_PER_PROCESS: u64 = 8;
const APPENDS_PER_WRITER: u64 = 25;

/// The child's half of the writers; does nothing in a normal test run.
#[test]
fn gapfree_child_writers() {
    let (Ok(url), Ok(acks)) = (std::env::var(CHILD_URL), std::env::var(CHILD_ACKS)) else {
        return;
    };
    let positions = runtime().block_on(write(&url, 100));
    let text: Vec<String> = positions.iter().map(u64::to_string).collect();
    std::fs::write(acks, text.join("\n")).expect("write the acknowledged positions");
}

/// Runs the writers `first_writer..first_writer + 8`; returns every
/// acknowledged position.
async fn write(url: &str, first_writer: u64) -> Vec<u64> {
    let store = PgStore::connect(url).await.expect("connect");
    let writers = (first_writer..first_writer + WRITERS_PER_PROCESS).map(|w| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(w);
            let mut acked = Vec::new();
            for i in 0..APPENDS_PER_WRITER {
                let n = rng.usize(1..=3);
                let events = (0..n)
                    .map(|j| event("E", format!("{w}/{i}/{j}").as_bytes()))
                    .collect();
                let mut batch = AppendBatch::new(events);
                if rng.bool() {
                    batch = batch.to_stream(format!("writer/{w}"), ExpectedVersion::Any);
                }
                let appended = if rng.u8(..4) == 0 {
                    let hold = Duration::from_millis(rng.u64(5..60));
                    store.append_holding(batch, hold).await
                } else {
                    store.append(batch).await
                }
                .expect("append");
                acked.extend(appended.positions);
            }
            acked
        })
    });
    let mut all = Vec::new();
    for w in futures::future::join_all(writers).await {
        all.extend(w.expect("join"));
    }
    all
}

#[test]
fn sixteen_writers_in_two_processes_are_tailed_gap_free() {
    let Some((_server, url)) = database(false) else {
        return;
    };
    let acks_dir = tempfile::tempdir().expect("tempdir");
    let acks_file: PathBuf = acks_dir.path().join("acks");
    let rt = runtime();
    let (seen, acked) = rt.block_on(async {
        let reader = PgStore::builder(&url)
            .poll_interval(Duration::from_millis(100))
            .connect()
            .await
            .expect("connect");
        let mut tail = reader.tail(1);
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(None::<usize>);
        let collector = tokio::spawn(async move {
            let mut seen: Vec<RecordedEvent> = Vec::new();
            loop {
                let target = *stop_rx.borrow_and_update();
                if let Some(total) = target
                    && seen.len() >= total
                {
                    // Everything acknowledged arrived; anything more is a duplicate.
                    if let Ok(extra) =
                        tokio::time::timeout(Duration::from_millis(300), tail.next_batch(64)).await
                    {
                        seen.extend(extra.expect("tail"));
                    }
                    return seen;
                }
                tokio::select! {
                    batch = tail.next_batch(5) => seen.extend(batch.expect("tail")),
                    _ = stop_rx.changed() => {}
                }
            }
        });

        let exe = std::env::current_exe().expect("current exe");
        let mut child = tokio::process::Command::from({
            let mut c = Command::new(exe);
            c.args([
                "--exact",
                "gapfree_child_writers",
                "--test-threads=1",
                "--quiet",
            ])
            .env(CHILD_URL, &url)
            .env(CHILD_ACKS, &acks_file)
            .stdout(std::process::Stdio::null());
            c
        })
        .spawn()
        .expect("start the child writers");
        let mine = write(&url, 0).await;
        let status = child.wait().await.expect("wait for the child");
        assert!(status.success(), "the child writers failed: {status}");
        let theirs: Vec<u64> = std::fs::read_to_string(&acks_file)
            .expect("the child's acknowledgements")
            .lines()
            .map(|l| l.parse().expect("a position"))
            .collect();
        assert!(!theirs.is_empty());

        let acked: BTreeSet<u64> = mine.into_iter().chain(theirs).collect();
        stop_tx.send(Some(acked.len())).expect("collector alive");
        let seen = tokio::time::timeout(Duration::from_secs(30), collector)
            .await
            .expect("the tail delivers every acknowledged event")
            .expect("join");
        (seen, acked)
    });
    let positions: Vec<u64> = seen.iter().map(|e| e.position).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "in position order, each once"
    );
    let total = (2 * WRITERS_PER_PROCESS * APPENDS_PER_WRITER) as usize;
    assert!(acked.len() >= total, "every append acknowledged");
    assert_eq!(
        positions.iter().copied().collect::<BTreeSet<_>>(),
        acked,
        "the tail saw exactly the acknowledged events"
    );
    assert!(
        seen.windows(2).all(|w| w[0].timestamp <= w[1].timestamp),
        "timestamps never decrease in position order"
    );
}
