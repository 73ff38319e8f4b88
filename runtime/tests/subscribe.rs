//! Subscriptions end to end over the file store: catch-up then live, filters,
//! durable acks and resume, bad names and filters, cancel safety, `db.events`.

use std::time::Duration;

use foldkit::prelude::*;
use foldkit::subscribe::{SubscribeError, decode};
use futures::StreamExt;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
enum OrderEvent {
    Placed { id: u64 },
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
enum StockEvent {
    Moved { sku: u64 },
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
enum Unregistered {
    Nope,
}

async fn open(dir: &std::path::Path) -> Db {
    Db::builder(dir)
        .fsync(FsyncPolicy::Never)
        .event::<OrderEvent>()
        .event::<StockEvent>()
        .open()
        .await
        .expect("open")
}

async fn next<S: Stream + Unpin>(stream: &mut S) -> S::Item {
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an item within 5 s")
        .expect("the stream goes on")
}

use futures::Stream;

#[tokio::test]
async fn catch_up_then_live_typed_and_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    db.append(OrderEvent::Placed { id: 1 }).await.unwrap();
    db.append(StockEvent::Moved { sku: 9 }).await.unwrap();
    db.append_to(
        "order/2",
        ExpectedVersion::Any,
        [OrderEvent::Placed { id: 2 }],
    )
    .await
    .unwrap();
    let mut orders = db
        .subscribe("orders")
        .events::<OrderEvent>()
        .start()
        .await
        .unwrap();
    let (event, meta) = next(&mut orders).await.unwrap();
    assert_eq!((event, meta.seq), (OrderEvent::Placed { id: 1 }, 1));
    let (event, meta) = next(&mut orders).await.unwrap();
    assert_eq!((event, meta.seq), (OrderEvent::Placed { id: 2 }, 3));
    assert_eq!(orders.scanned(), 3);
    // Live: appended after the subscription caught up.
    let live = db.append(OrderEvent::Placed { id: 4 }).await.unwrap();
    let (event, meta) = next(&mut orders).await.unwrap();
    assert_eq!((event, meta.seq), (OrderEvent::Placed { id: 4 }, live));

    // A stream prefix: only the order streams' events.
    let mut streams = db
        .subscribe("streams")
        .stream_prefix("order/")
        .start()
        .await
        .unwrap();
    let (record, meta) = next(&mut streams).await.unwrap();
    assert_eq!(meta.seq, 3);
    assert_eq!(meta.stream_id(), Some("order/2"));
    assert_eq!(
        decode::<OrderEvent>(&record).unwrap(),
        Some(OrderEvent::Placed { id: 2 })
    );

    // Several types: raw records of both, in log order.
    let mut both = (db
        .subscribe("both")
        .events::<OrderEvent>()
        .events::<StockEvent>())
    .start()
    .await
    .unwrap();
    let mut names = Vec::new();
    for _ in 0..4 {
        let (record, _) = next(&mut both).await.unwrap();
        names.push(record.name.to_string());
    }
    assert_eq!(
        names,
        ["OrderEvent", "StockEvent", "OrderEvent", "OrderEvent"]
    );
    db.close().await.unwrap();
}

#[tokio::test]
async fn acks_are_durable_and_a_restart_resumes_after_the_last_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    for id in 1..=5 {
        db.append(OrderEvent::Placed { id }).await.unwrap();
    }
    let mut sub = db
        .subscribe("mailer")
        .events::<OrderEvent>()
        .start()
        .await
        .unwrap();
    for _ in 0..3 {
        let (_, meta) = next(&mut sub).await.unwrap();
        if meta.seq == 2 {
            sub.ack(meta.seq).await.unwrap();
        }
    }
    assert_eq!(sub.acked(), Some(2));
    // Checkpoints only move forward; acking ahead of what was read is refused.
    sub.ack(1).await.unwrap();
    assert_eq!(sub.acked(), Some(2));
    let ahead = sub.ack(9).await.unwrap_err();
    assert!(
        matches!(
            ahead,
            SubscribeError::AckAhead {
                position: 9,
                scanned: 3,
                ..
            }
        ),
        "{ahead:?}"
    );
    drop(sub);
    db.close().await.unwrap();

    let db = open(dir.path()).await;
    let mut sub = db
        .subscribe("mailer")
        .events::<OrderEvent>()
        .start()
        .await
        .unwrap();
    assert_eq!(sub.acked(), Some(2));
    // At-least-once: 3 was delivered but not acked, so it comes again.
    let (event, meta) = next(&mut sub).await.unwrap();
    assert_eq!((event, meta.seq), (OrderEvent::Placed { id: 3 }, 3));
    db.close().await.unwrap();
}

#[tokio::test]
async fn bad_names_and_unregistered_filters_are_typed_errors_naming_the_culprit() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    let empty = db.subscribe("").start().await.unwrap_err();
    assert!(
        matches!(&empty, SubscribeError::InvalidName { name, .. } if name.is_empty()),
        "{empty}"
    );
    // Fine for the runtime (100 bytes), too long for the file store once escaped.
    let slashes = "/".repeat(100);
    let long = db.subscribe(slashes.clone()).start().await.unwrap_err();
    match &long {
        SubscribeError::InvalidName { name, reason } => {
            assert_eq!(name, &slashes);
            assert!(reason.contains("200 bytes"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let unknown = db
        .subscribe("x")
        .events::<Unregistered>()
        .start()
        .await
        .unwrap_err();
    assert!(unknown.to_string().contains("Unregistered"), "{unknown}");
    assert!(matches!(
        unknown,
        SubscribeError::UnknownEvent {
            event: "Unregistered",
            ..
        }
    ));

    // One running subscription per name; the name is free once it is dropped.
    let first = db.subscribe("once").start().await.unwrap();
    let again = db.subscribe("once").start().await.unwrap_err();
    assert!(
        matches!(again, SubscribeError::AlreadyActive { .. }),
        "{again}"
    );
    drop(first);
    db.subscribe("once").start().await.unwrap();
    db.close().await.unwrap();
}

#[tokio::test]
async fn a_dropped_next_loses_nothing_and_the_stream_ends_at_close() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    let mut sub = db.subscribe("cancel").start().await.unwrap();
    // Nothing yet: the wait is cancelled, then events arrive.
    let waited = tokio::time::timeout(Duration::from_millis(20), sub.next()).await;
    assert!(waited.is_err());
    for id in 1..=3 {
        db.append(OrderEvent::Placed { id }).await.unwrap();
    }
    for seq in 1..=3 {
        let (_, meta) = next(&mut sub).await.unwrap();
        assert_eq!(meta.seq, seq);
    }
    db.close().await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap();
    assert!(end.is_none(), "the stream ends when the Db closes");
}

#[tokio::test]
async fn events_is_an_unnamed_catch_up_and_live_stream() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    for id in 1..=3 {
        db.append(OrderEvent::Placed { id }).await.unwrap();
    }
    let mut events = db.events(2);
    assert_eq!(next(&mut events).await.unwrap().1.seq, 2);
    assert_eq!(next(&mut events).await.unwrap().1.seq, 3);
    db.append(StockEvent::Moved { sku: 1 }).await.unwrap();
    let (record, meta) = next(&mut events).await.unwrap();
    assert_eq!((meta.seq, &*record.name), (4, "StockEvent"));
    db.close().await.unwrap();
}

#[tokio::test]
async fn a_consumer_that_stops_polling_does_not_hold_up_appends() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    let mut slow = db.subscribe("slow").batch_size(8).start().await.unwrap();
    db.append(OrderEvent::Placed { id: 0 }).await.unwrap();
    let _ = next(&mut slow).await.unwrap();
    // The slow consumer is parked; 20 000 appends still go through.
    let appends = async {
        for id in 1..=20_000 {
            db.append(OrderEvent::Placed { id }).await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(20), appends)
        .await
        .expect("appends are not held up");
    // It then reads on, from where it was.
    assert_eq!(next(&mut slow).await.unwrap().1.seq, 2);
    db.close().await.unwrap();
}

/// Counts orders (a state whose snapshot lets compaction drop events).
#[derive(State, Default, Serialize, Deserialize)]
#[state(event = OrderEvent)]
struct Orders {
    placed: u64,
}

impl Apply<OrderEvent> for Orders {
    fn apply(&mut self, _: OrderEvent, _: &Meta) -> Result<(), FoldError> {
        self.placed += 1;
        Ok(())
    }
}

/// Compaction keeps what a subscription has not acknowledged (though a
/// state's snapshot covers everything): while one runs
/// without a stored checkpoint nothing is removed, and afterwards only what
/// lies before its checkpoint; after a restart it resumes with every event it
/// did not acknowledge.
#[tokio::test]
async fn compaction_keeps_what_a_subscription_has_not_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let open_small = || {
        Db::builder(dir.path())
            .fsync(FsyncPolicy::Never)
            .segment_size(4096)
            .state::<Orders>()
            .event::<StockEvent>()
            .open()
    };
    let db = open_small().await.unwrap();
    for id in 1..=2000 {
        db.append(OrderEvent::Placed { id }).await.unwrap();
    }
    db.state::<Orders>().wait_for_seq(2000).await.unwrap();
    db.snapshot_to_disk().await.unwrap();
    let mut sub = db.subscribe("mailer").start().await.unwrap();
    assert_eq!(
        db.compact().await.unwrap(),
        0,
        "a running subscription without a checkpoint"
    );
    for _ in 0..1500 {
        let (_, meta) = next(&mut sub).await.unwrap();
        if meta.seq == 1000 {
            sub.ack(meta.seq).await.unwrap();
        }
    }
    let removed = db.compact().await.unwrap();
    assert!(removed > 0, "segments before the checkpoint can go");
    drop(sub);
    db.close().await.unwrap();

    let db = open_small().await.unwrap();
    let mut sub = db.subscribe("mailer").start().await.unwrap();
    for seq in 1001..=2000 {
        let (_, meta) = next(&mut sub).await.unwrap();
        assert_eq!(meta.seq, seq, "resumes after its checkpoint, nothing lost");
    }
    db.close().await.unwrap();
}
