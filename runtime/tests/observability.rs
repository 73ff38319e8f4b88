//! The metrics a Db records (a debugging recorder installed for this test
//! binary): appends, fold position and lag, snapshots, watchers.

use std::collections::HashMap;

use foldkit::prelude::*;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
enum ItemEvent {
    Added { id: u64 },
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Item {
    #[entity(id)]
    id: u64,
}

#[derive(State, Default, Serialize, Deserialize)]
#[state(event = ItemEvent)]
struct Items {
    items: Table<Item>,
}

impl Apply<ItemEvent> for Items {
    fn apply(&mut self, event: ItemEvent, _meta: &Meta) -> Result<(), FoldError> {
        let ItemEvent::Added { id } = event;
        self.items.insert(Item { id });
        Ok(())
    }
}

/// Values by (name, labels "k=v" joined by ","): counters and gauges as
/// values, histograms as sample counts.
fn values(snapshotter: &Snapshotter) -> HashMap<(String, String), f64> {
    let mut found = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let labels: Vec<String> = key
            .key()
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let value = match value {
            DebugValue::Counter(n) => n as f64,
            DebugValue::Gauge(g) => g.into_inner(),
            DebugValue::Histogram(samples) => samples.len() as f64,
        };
        found.insert((key.key().name().to_owned(), labels.join(",")), value);
    }
    found
}

fn get(values: &HashMap<(String, String), f64>, name: &str, labels: &str) -> f64 {
    *values
        .get(&(name.to_owned(), labels.to_owned()))
        .unwrap_or_else(|| panic!("{name}{{{labels}}} not recorded: {values:?}"))
}

#[tokio::test]
async fn a_db_records_appends_fold_lag_snapshots_and_watchers() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("install the recorder");

    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::builder(dir.path())
        .state::<Items>()
        .snapshot_every(10)
        .open()
        .await
        .expect("open");
    let items = db.state::<Items>();
    let watch = items.watch(|s| &s.items).stream();
    let mut last = 0;
    for id in 1..=30 {
        last = db.append(ItemEvent::Added { id }).await.expect("append");
    }
    db.append_batch((31..=35).map(|id| ItemEvent::Added { id }))
        .await
        .expect("batch");
    items.wait_for_seq(last + 5).await.expect("folded");
    db.close().await.expect("close");
    // One snapshot: the debugging recorder resets what it reports.
    let seen = values(&snapshotter);
    assert_eq!(get(&seen, "foldkit_appends_total", ""), 31.0);
    assert_eq!(get(&seen, "foldkit_events_appended_total", ""), 35.0);
    assert!(get(&seen, "foldkit_event_bytes_appended_total", "") >= 35.0);
    assert_eq!(get(&seen, "foldkit_last_position", ""), 35.0);
    assert!(get(&seen, "foldkit_log_bytes_written_total", "") > 0.0);
    assert!(get(&seen, "foldkit_fsync_seconds", "") >= 1.0);
    assert_eq!(get(&seen, "foldkit_watchers", "entity=Item"), 1.0);
    // Once everything is folded the lag is 0.
    assert_eq!(
        get(&seen, "foldkit_fold_applied_position", "state=Items"),
        35.0
    );
    assert_eq!(get(&seen, "foldkit_fold_lag", "state=Items"), 0.0);
    assert!(get(&seen, "foldkit_snapshots_written_total", "state=Items") >= 1.0);
    assert!(get(&seen, "foldkit_snapshot_bytes", "state=Items") >= 1.0);
    assert!(get(&seen, "foldkit_snapshot_write_seconds", "state=Items") >= 1.0);
    drop(watch);
    // The change since the last snapshot: one watcher fewer.
    assert_eq!(
        get(&values(&snapshotter), "foldkit_watchers", "entity=Item"),
        -1.0
    );
}

/// Counts items; reacts with nothing (its lag is all there is to see).
struct Tally;

impl foldkit::ProcessManager for Tally {
    const NAME: &'static str = "tally";
    type State = u64;
    fn declare(d: &mut foldkit::process::Declare<Self>) {
        d.on::<ItemEvent>();
    }
}

impl foldkit::Reacts<ItemEvent> for Tally {
    fn apply(seen: &mut u64, _: &ItemEvent, _: &Meta) {
        *seen += 1;
    }
    fn react(_: &u64, _: &ItemEvent, _: &Meta) -> Vec<foldkit::Reaction> {
        Vec::new()
    }
}

#[test]
fn subscriptions_and_process_managers_record_their_lag() {
    use foldkit::process::ProcessOptions;
    use futures::StreamExt;

    // A recorder of this thread only (the other test installs the global one);
    // a current-thread runtime keeps every task of the Db on this thread.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let dir = tempfile::tempdir().expect("tempdir");
            // No checkpoint of the manager before close.
            let options =
                ProcessOptions::default().checkpoints(1_000, std::time::Duration::from_secs(3600));
            let db = Db::builder(dir.path())
                .event::<ItemEvent>()
                .process_manager_with::<Tally>(options)
                .open()
                .await
                .expect("open");
            for id in 1..=10 {
                db.append(ItemEvent::Added { id }).await.expect("append");
            }
            let tally = db.process_manager::<Tally>().expect("tally");
            tally.settle().await.expect("settle");

            let mut mailer = db.subscribe("mailer").start().await.expect("subscribe");
            let mut fourth = 0;
            for _ in 0..4 {
                let (_, meta) = mailer.next().await.expect("an event").expect("read");
                fourth = meta.seq;
            }
            mailer.ack(fourth).await.expect("ack");

            let seen = values(&snapshotter);
            // 10 events in the log, 4 acknowledged.
            assert_eq!(
                get(&seen, "foldkit_subscription_lag", "subscription=mailer"),
                6.0
            );
            // Every event processed, none checkpointed yet.
            assert_eq!(
                get(
                    &seen,
                    "foldkit_process_manager_lag",
                    "process_manager=tally"
                ),
                10.0
            );

            drop(mailer);
            db.close().await.expect("close");
            // The checkpoint at close covers everything.
            assert_eq!(
                get(
                    &values(&snapshotter),
                    "foldkit_process_manager_lag",
                    "process_manager=tally"
                ),
                0.0
            );
        });
    });
}
