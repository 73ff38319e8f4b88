//! One ordered log per Db (issue 15): states over several event types, one
//! position for the whole Db, unknown types skipped and reported, consistent
//! bundles, time travel by wall clock, the hash chain and the on-disk format.

use std::time::Duration;

use foldkit::prelude::*;
use foldkit::store::{AppendBatch, EventStore, FileStore, NewEvent, StoreError};
use foldkit::{DbError, SnapshotUse};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
enum OrderEvent {
    Placed { id: u64, customer: u64, cents: u64 },
    Cancelled { id: u64 },
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
enum CustomerEvent {
    Joined { id: u64, name: String },
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
enum AuditEvent {
    Noted(String),
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Order {
    #[entity(id)]
    id: u64,
    #[entity(index)]
    customer: u64,
    cents: u64,
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Customer {
    #[entity(id)]
    id: u64,
    name: String,
    orders: u64,
}

/// Folds two event types into one read model.
#[derive(State, Default, Serialize, Deserialize)]
#[state(events(OrderEvent, CustomerEvent))]
struct Dashboard {
    orders: Table<Order>,
    customers: Table<Customer>,
    /// Positions folded, in order: proves log order across types.
    seen: Vec<u64>,
}

impl Apply<OrderEvent> for Dashboard {
    fn apply(&mut self, event: OrderEvent, meta: &Meta) -> Result<(), FoldError> {
        self.seen.push(meta.seq);
        match event {
            OrderEvent::Placed {
                id,
                customer,
                cents,
            } => {
                self.orders.insert(Order {
                    id,
                    customer,
                    cents,
                });
                self.customers.update(&customer, |c| c.orders += 1);
            }
            OrderEvent::Cancelled { id } => {
                self.orders.remove(&id);
            }
        }
        Ok(())
    }
}

impl Apply<CustomerEvent> for Dashboard {
    fn apply(&mut self, event: CustomerEvent, meta: &Meta) -> Result<(), FoldError> {
        self.seen.push(meta.seq);
        let CustomerEvent::Joined { id, name } = event;
        self.customers.insert(Customer {
            id,
            name,
            orders: 0,
        });
        Ok(())
    }
}

/// Folds only orders: skips the customers' events.
#[derive(State, Default, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[state(event = OrderEvent)]
struct Revenue {
    cents: u64,
    events: u64,
}

impl Apply<OrderEvent> for Revenue {
    fn apply(&mut self, event: OrderEvent, _: &Meta) -> Result<(), FoldError> {
        self.events += 1;
        if let OrderEvent::Placed { cents, .. } = event {
            self.cents += cents;
        }
        Ok(())
    }
}

async fn open(dir: &std::path::Path) -> Db {
    Db::builder(dir)
        .fsync(FsyncPolicy::Never)
        .state::<Dashboard>()
        .state::<Revenue>()
        .event::<AuditEvent>()
        .open()
        .await
        .expect("open")
}

async fn shop(db: &Db) -> u64 {
    db.append(CustomerEvent::Joined {
        id: 1,
        name: "ann".into(),
    })
    .await
    .expect("append");
    db.append(AuditEvent::Noted("hello".into()))
        .await
        .expect("append");
    db.append(OrderEvent::Placed {
        id: 10,
        customer: 1,
        cents: 500,
    })
    .await
    .expect("append");
    db.append(CustomerEvent::Joined {
        id: 2,
        name: "bob".into(),
    })
    .await
    .expect("append");
    db.append(OrderEvent::Placed {
        id: 11,
        customer: 2,
        cents: 700,
    })
    .await
    .expect("append");
    db.append(OrderEvent::Cancelled { id: 10 })
        .await
        .expect("append")
}

#[tokio::test]
async fn a_state_folds_two_event_types_in_log_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let last = shop(&db).await;
    assert_eq!(
        last, 6,
        "every event of every type gets the Db's next position"
    );
    let dashboard = db.state::<Dashboard>();
    dashboard.wait_for_seq(last).await.expect("fold");
    {
        let d = dashboard.read();
        assert_eq!(
            d.seen,
            [1, 3, 4, 5, 6],
            "both types, in log order, the audit event skipped"
        );
        assert_eq!(d.orders.len(), 1);
        assert_eq!(d.customers.get(&1).map(|c| c.orders), Some(1));
        assert_eq!(d.customers.get(&2).map(|c| c.orders), Some(1));
    }
    // A state advances past the events it does not fold: any position can be waited for.
    let revenue = db.state::<Revenue>();
    revenue
        .wait_for_seq(4)
        .await
        .expect("position 4 is a customer event");
    revenue.wait_for_seq(last).await.expect("fold");
    assert_eq!(
        *revenue.read(),
        Revenue {
            cents: 1200,
            events: 3
        }
    );
    assert_eq!(revenue.applied_seq(), Some(last));
    db.close().await.expect("close");

    // Reopen from the close snapshots: the same states.
    let db = open(dir.path()).await;
    let started = db
        .open_report()
        .state("Dashboard")
        .expect("registered")
        .clone();
    assert_eq!(started.snapshot, SnapshotUse::Used(last));
    assert_eq!(db.state::<Dashboard>().read().seen, [1, 3, 4, 5, 6]);
    db.close().await.expect("close");
}

#[tokio::test]
async fn events_of_a_type_no_one_registers_are_skipped_and_reported_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A newer release wrote events of a type this build does not know.
    let store = FileStore::open_async(dir.path(), Default::default())
        .await
        .expect("store");
    for payload in [&b"a"[..], b"b"] {
        let event = NewEvent {
            name: "FutureEvent".into(),
            schema_version: 7,
            payload: payload.to_vec(),
        };
        store
            .append(AppendBatch::new(vec![event]))
            .await
            .expect("append");
    }
    store.close().await.expect("close");
    drop(store);

    let db = open(dir.path()).await;
    let last = db
        .append(OrderEvent::Placed {
            id: 1,
            customer: 1,
            cents: 5,
        })
        .await
        .expect("append");
    assert_eq!(last, 3);
    let revenue = db.state::<Revenue>();
    revenue
        .wait_for_seq(last)
        .await
        .expect("the unknown events do not stop the Db");
    db.state::<Dashboard>()
        .wait_for_seq(last)
        .await
        .expect("fold");
    assert_eq!(revenue.read().events, 1);
    assert!(revenue.failure().is_none());
    assert_eq!(
        db.unknown_event_names()
            .iter()
            .map(|n| &**n)
            .collect::<Vec<_>>(),
        ["FutureEvent"]
    );
    db.close().await.expect("close");
}

#[tokio::test]
async fn a_bundle_is_one_consistent_cut_across_states() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let writer = {
        let db = db.clone();
        tokio::spawn(async move {
            for i in 0..2_000u64 {
                db.append(OrderEvent::Placed {
                    id: i,
                    customer: 1,
                    cents: 1,
                })
                .await
                .expect("append");
                db.append(AuditEvent::Noted(String::new()))
                    .await
                    .expect("append");
            }
        })
    };
    let mut cuts = 0;
    while !writer.is_finished() {
        let bundle = db.snapshot().await.expect("bundle");
        let seqs: Vec<Option<u64>> = bundle.headers().map(|h| h.seq).collect();
        assert_eq!(seqs.len(), 2);
        assert_eq!(
            seqs[0], seqs[1],
            "every state of a bundle is at one position: {seqs:?}"
        );
        cuts += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    writer.await.expect("join");
    assert!(cuts > 0);
    db.close().await.expect("close");
}

#[tokio::test]
async fn time_travel_by_wall_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    db.append(OrderEvent::Placed {
        id: 1,
        customer: 1,
        cents: 100,
    })
    .await
    .expect("append");
    tokio::time::sleep(Duration::from_millis(30)).await;
    let between = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    tokio::time::sleep(Duration::from_millis(30)).await;
    db.append(OrderEvent::Placed {
        id: 2,
        customer: 1,
        cents: 200,
    })
    .await
    .expect("append");
    let revenue = db.state::<Revenue>();
    assert_eq!(
        revenue.state_at_time(between).await.expect("at time").cents,
        100
    );
    assert_eq!(revenue.state_at_time(0).await.expect("before all").cents, 0);
    assert_eq!(
        revenue.state_at_time(u64::MAX).await.expect("now").cents,
        300
    );
    db.close().await.expect("close");
}

#[tokio::test]
async fn the_hash_chain_detects_an_edited_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chained = |dir: &std::path::Path| {
        Db::builder(dir)
            .chain_hashes(true)
            .snapshot_on_close(false)
            .state::<Revenue>()
            .open()
    };
    let db = chained(dir.path()).await.expect("open");
    for i in 0..20 {
        db.append(OrderEvent::Placed {
            id: i,
            customer: 1,
            cents: 7,
        })
        .await
        .expect("append");
    }
    let report = db.verify_chain().await.expect("the chain holds");
    assert_eq!(report.checked, 20);
    let head = db.head_hash().expect("a chained Db has a head");
    assert_eq!(report.head, Some(head));
    db.close().await.expect("close");

    // Reopening walks the chain and finds the same head.
    let db = chained(dir.path()).await.expect("reopen");
    assert_eq!(db.head_hash(), Some(head));
    db.close().await.expect("close");
    drop(db);

    // Edit record 10's payload and fix its frame CRC, as a forger would: the
    // storage checksums pass, the chain does not.
    let segment = std::fs::read_dir(dir.path().join("log"))
        .expect("log dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .expect("a segment");
    let mut bytes = std::fs::read(&segment).expect("read");
    let mut at = 24; // the segment header
    for _ in 0..9 {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        at += 32 + len;
    }
    let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
    let last = at + 32 + len - 1;
    bytes[last] ^= 0x01; // the last byte of the event's body
    let crc = crc32c::crc32c_append(
        crc32c::crc32c(&(len as u32).to_le_bytes()),
        &bytes[at + 8..at + 32 + len],
    );
    bytes[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&segment, &bytes).expect("write");
    match chained(dir.path()).await {
        Err(DbError::Store(StoreError::Corrupt { what, .. })) => {
            assert!(what.contains("hash chain at position 10"), "{what}");
        }
        Ok(_) => panic!("an edited history must not open"),
        Err(other) => panic!("expected a broken chain, got {other:?}"),
    }
}

#[tokio::test]
async fn a_directory_of_the_previous_layout_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("logs").join("OrderEvent")).expect("old layout");
    let error = open_err(dir.path()).await;
    let DbError::Store(StoreError::Format {
        found,
        supported,
        what,
    }) = &error
    else {
        panic!("expected a format error, got {error:?}");
    };
    assert_eq!((*found, *supported), (1, 2));
    assert!(what.contains("previous layout"), "{what}");

    let newer = tempfile::tempdir().expect("tempdir");
    std::fs::write(newer.path().join("FORMAT"), "foldkit-format 9\n").expect("format file");
    let error = open_err(newer.path()).await;
    assert!(
        matches!(error, DbError::Store(StoreError::Format { found: 9, .. })),
        "{error:?}"
    );
}

async fn open_err(dir: &std::path::Path) -> DbError {
    Db::builder(dir)
        .state::<Revenue>()
        .open()
        .await
        .expect_err("refused")
}
