//! Watch streams: first emission, emit-on-change with dedupe, order and limit, rows
//! leaving the filter, slow consumers, cancellation, many watchers, restart.

use std::time::Duration;

use foldkit::prelude::*;
use futures::StreamExt;

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
enum Ev {
    Place {
        id: u64,
        status: Status,
        total: u64,
    },
    SetStatus {
        id: u64,
        status: Status,
    },
    SetNote {
        id: u64,
        note: String,
    },
    /// In one event: `pend` becomes pending, `remove` is removed (the last row moves
    /// into its slot) and `insert` is placed (shipped), so rows move after changing.
    Shuffle {
        pend: u64,
        remove: u64,
        insert: u64,
    },
    /// Replaces the whole table with one row.
    Reset {
        id: u64,
        status: Status,
    },
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Status {
    Pending,
    Shipped,
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Order {
    #[entity(id)]
    id: u64,
    #[entity(index)]
    status: Status,
    #[entity(index)]
    total: u64,
    #[entity(index)]
    note: String,
}

#[derive(State, Default, Serialize, Deserialize)]
#[state(event = Ev)]
struct Shop {
    orders: Table<Order>,
}

impl Apply<Ev> for Shop {
    fn apply(&mut self, event: Ev, _: &Meta) -> Result<(), FoldError> {
        match event {
            Ev::Place { id, status, total } => {
                self.orders.insert(Order {
                    id,
                    status,
                    total,
                    note: String::new(),
                });
            }
            Ev::SetStatus { id, status } => {
                self.orders.update(&id, |o| o.status = status);
            }
            Ev::SetNote { id, note } => {
                self.orders.update(&id, |o| o.note = note);
            }
            Ev::Shuffle {
                pend,
                remove,
                insert,
            } => {
                self.orders.update(&pend, |o| o.status = Status::Pending);
                self.orders.remove(&remove);
                self.orders.insert(Order {
                    id: insert,
                    status: Status::Shipped,
                    total: 0,
                    note: String::new(),
                });
            }
            Ev::Reset { id, status } => {
                self.orders = Table::new();
                self.orders.insert(Order {
                    id,
                    status,
                    total: 0,
                    note: String::new(),
                });
            }
        }
        Ok(())
    }
}

fn place(id: u64, status: Status, total: u64) -> Ev {
    Ev::Place { id, status, total }
}

async fn open(dir: &std::path::Path) -> Db {
    Db::builder(dir)
        .fsync(FsyncPolicy::Never)
        .state::<Shop>()
        .open()
        .await
        .expect("open")
}

async fn apply(db: &Db, event: Ev) {
    let seq = db.append(event).await.expect("append");
    db.state::<Shop>().wait_for_seq(seq).await.expect("fold");
}

const QUIET: Duration = Duration::from_millis(150);

async fn next<S: futures::Stream + Unpin>(stream: &mut S) -> S::Item {
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an emission")
        .expect("stream open")
}

async fn silent<S: futures::Stream + Unpin>(stream: &mut S) -> bool {
    tokio::time::timeout(QUIET, stream.next()).await.is_err()
}

fn ids(rows: &[Order]) -> Vec<u64> {
    rows.iter().map(|o| o.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emits_at_once_then_only_on_changes_that_matter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    apply(&db, place(1, Status::Pending, 10)).await;
    apply(&db, place(2, Status::Shipped, 20)).await;
    let shop = db.state::<Shop>();
    let mut pending = shop
        .watch(|s| &s.orders)
        .where_status(Status::Pending)
        .stream();
    assert_eq!(
        ids(&next(&mut pending).await),
        vec![1],
        "the current result at once"
    );

    // Changes to rows that are not and do not become pending: silence.
    apply(
        &db,
        Ev::SetNote {
            id: 2,
            note: "fragile".into(),
        },
    )
    .await;
    apply(&db, place(3, Status::Shipped, 5)).await;
    assert!(silent(&mut pending).await, "unrelated rows emit nothing");
    // A change to a watched row that leaves the result as it was: silence (dedupe
    // compares whole rows, so a field change in the result does emit).
    apply(
        &db,
        Ev::SetStatus {
            id: 1,
            status: Status::Pending,
        },
    )
    .await;
    assert!(
        silent(&mut pending).await,
        "an update that changes nothing emits nothing"
    );

    apply(&db, place(4, Status::Pending, 40)).await;
    assert_eq!(
        ids(&next(&mut pending).await),
        vec![1, 4],
        "a row entering emits"
    );
    apply(
        &db,
        Ev::SetStatus {
            id: 1,
            status: Status::Shipped,
        },
    )
    .await;
    assert_eq!(
        ids(&next(&mut pending).await),
        vec![4],
        "a row leaving emits"
    );
    apply(
        &db,
        Ev::SetNote {
            id: 4,
            note: "gift".into(),
        },
    )
    .await;
    let rows = next(&mut pending).await;
    assert_eq!(
        rows[0].note, "gift",
        "a changed field of a row in the result emits"
    );
    db.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_limit_and_snapshot_and_watch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    for (id, total) in [(1, 50), (2, 10), (3, 30)] {
        apply(&db, place(id, Status::Pending, total)).await;
    }
    let shop = db.state::<Shop>();
    let watcher = shop.watch(|s| &s.orders).order_by_total(Desc).limit(2);
    let (current, mut top) = shop.snapshot_and_watch(watcher);
    assert_eq!(ids(&current), vec![1, 3]);
    assert!(silent(&mut top).await, "no duplicate of the current result");
    apply(&db, place(4, Status::Pending, 5)).await;
    assert!(
        silent(&mut top).await,
        "a row below the top 2 changes nothing"
    );
    apply(&db, place(5, Status::Shipped, 40)).await;
    assert_eq!(
        ids(&next(&mut top).await),
        vec![1, 5],
        "ordering and limit respected"
    );
    db.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_sees_the_final_state_and_dropping_unregisters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let shop = db.state::<Shop>();
    let mut all = shop.watch(|s| &s.orders).stream();
    assert!(next(&mut all).await.is_empty());
    assert_eq!(foldkit::__private::watchers(&shop.read().orders), 1);
    for id in 0..500 {
        db.append(place(id, Status::Pending, id))
            .await
            .expect("append");
    }
    shop.wait_for_seq(500).await.expect("fold");
    // Not polled meanwhile: the next emission is the latest result, no backlog.
    let latest = next(&mut all).await;
    assert_eq!(latest.len(), 500);
    assert!(silent(&mut all).await, "no queued intermediate results");
    drop(all);
    assert_eq!(
        foldkit::__private::watchers(&shop.read().orders),
        0,
        "dropping the stream unregisters it"
    );

    let mut totals = Box::pin(shop.watch_value(|s: &Shop| s.orders.len()));
    assert_eq!(next(&mut totals).await, 500);
    apply(
        &db,
        Ev::SetNote {
            id: 1,
            note: "n".into(),
        },
    )
    .await;
    assert!(
        silent(&mut totals).await,
        "the same value is not emitted twice"
    );
    apply(&db, place(999, Status::Shipped, 1)).await;
    assert_eq!(next(&mut totals).await, 501);
    db.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_watchers_each_see_their_own_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let shop = db.state::<Shop>();
    let mut streams: Vec<_> = (0..50u64)
        .map(|i| shop.watch(|s| &s.orders).where_id(i).stream())
        .collect();
    for stream in &mut streams {
        assert!(next(stream).await.is_empty());
    }
    for id in 0..50u64 {
        db.append(place(id, Status::Pending, id))
            .await
            .expect("append");
    }
    shop.wait_for_seq(50).await.expect("fold");
    for (i, stream) in streams.iter_mut().enumerate() {
        assert_eq!(ids(&next(stream).await), vec![i as u64]);
    }
    assert_eq!(foldkit::__private::watchers(&shop.read().orders), 50);
    drop(streams);
    assert_eq!(foldkit::__private::watchers(&shop.read().orders), 0);
    db.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_work_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    apply(&db, place(7, Status::Pending, 70)).await;
    db.close().await.expect("close");

    let db = open(dir.path()).await;
    let shop = db.state::<Shop>();
    shop.wait_for_seq(1).await.expect("caught up");
    let mut pending = shop
        .watch(|s| &s.orders)
        .where_status(Status::Pending)
        .stream();
    assert_eq!(ids(&next(&mut pending).await), vec![7]);
    apply(
        &db,
        Ev::SetStatus {
            id: 7,
            status: Status::Shipped,
        },
    )
    .await;
    assert!(next(&mut pending).await.is_empty());
    db.close().await.expect("close");
}

/// The fold task folds by itself (no `wait_for_seq` helping it) and the watcher
/// hears of it: what a dashboard that only watches relies on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_sees_appends_nobody_waits_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let shop = db.state::<Shop>();
    let mut one = shop.watch(|s| &s.orders).where_id(7u64).stream();
    assert!(next(&mut one).await.is_empty());
    for total in 1..=20u64 {
        db.append(place(7, Status::Pending, total))
            .await
            .expect("append");
        let rows = next(&mut one).await;
        assert_eq!(rows[0].total, total, "each append is seen");
    }
    db.close().await.expect("close");
}

/// Many quick append → emission round trips: no wake-up is ever lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_round_trips_never_stall() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let shop = db.state::<Shop>();
    let mut one = shop.watch(|s| &s.orders).where_id(7u64).stream();
    assert!(next(&mut one).await.is_empty());
    let run = async {
        for total in 1..=5_000u64 {
            db.append(place(7, Status::Pending, total))
                .await
                .expect("append");
            let rows = one.next().await.expect("open");
            assert_eq!(rows[0].total, total);
        }
    };
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("no stall");
    db.close().await.expect("close");
}

/// Driven from outside the runtime with separate `block_on` calls, as a
/// benchmark or a synchronous caller would.
#[test]
fn a_stream_polled_across_block_on_calls_keeps_up() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = rt.block_on(open(dir.path()));
    let shop = db.state::<Shop>();
    let mut one = shop.watch(|s| &s.orders).where_id(7u64).stream();
    assert!(rt.block_on(one.next()).expect("first").is_empty());
    for total in 1..=200u64 {
        let rows = rt.block_on(async {
            db.append(place(7, Status::Pending, total))
                .await
                .expect("append");
            tokio::time::timeout(Duration::from_secs(5), one.next())
                .await
                .expect("no stall")
                .expect("open")
        });
        assert_eq!(rows[0].total, total);
    }
    rt.block_on(db.close()).expect("close");
}

/// The example: a watcher on `status = Pending` (an indexed field) is not
/// woken, let alone re-run, by updates that touch only shipped rows. Its `filter`
/// counts every time the watcher looks at a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_to_other_keys_never_re_run_an_indexed_watcher() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    for id in 0..10 {
        let status = if id < 5 {
            Status::Pending
        } else {
            Status::Shipped
        };
        apply(&db, place(id, status, id)).await;
    }
    let shop = db.state::<Shop>();
    let looks = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&looks);
    let mut pending = shop
        .watch(|s| &s.orders)
        .filter(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
            true
        })
        .where_status(Status::Pending)
        .stream();
    assert_eq!(ids(&next(&mut pending).await), vec![0, 1, 2, 3, 4]);
    let after_first = looks.load(Ordering::Relaxed);
    for round in 0..50 {
        apply(
            &db,
            Ev::SetNote {
                id: 5 + round % 5,
                note: format!("n{round}"),
            },
        )
        .await;
        apply(&db, place(100 + round, Status::Shipped, 1)).await;
    }
    assert!(silent(&mut pending).await, "nothing pending changed");
    assert_eq!(
        looks.load(Ordering::Relaxed),
        after_first,
        "the watcher never looked at a row: it was not woken"
    );

    // A shipped row becoming pending wakes it (its new key is routed) ...
    apply(
        &db,
        Ev::SetStatus {
            id: 7,
            status: Status::Pending,
        },
    )
    .await;
    assert_eq!(ids(&next(&mut pending).await), vec![0, 1, 2, 3, 4, 7]);
    // ... and a pending row leaving does too (it was in the last result).
    apply(
        &db,
        Ev::SetStatus {
            id: 0,
            status: Status::Shipped,
        },
    )
    .await;
    assert_eq!(ids(&next(&mut pending).await), vec![1, 2, 3, 4, 7]);
    db.close().await.expect("close");
}

/// A watcher on an indexed `String` field given a borrowed key (`&str`) is routed by that
/// key: notes changing to other values never wake it, a row taking its note does, short
/// key or long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_borrowed_string_key_routes_like_an_owned_one() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    for id in 0..4 {
        apply(&db, place(id, Status::Shipped, id)).await;
    }
    let shop = db.state::<Shop>();
    let long = "a note longer than any key held inline, to the heap".to_owned();
    for key in ["vip", long.as_str()] {
        let looks = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&looks);
        let mut noted = shop
            .watch(|s| &s.orders)
            .filter(move |_| {
                counter.fetch_add(1, Ordering::Relaxed);
                true
            })
            .where_note(key)
            .stream();
        assert!(next(&mut noted).await.is_empty());
        let after_first = looks.load(Ordering::Relaxed);
        for round in 0..10 {
            let note = format!("{key}-{round}");
            apply(
                &db,
                Ev::SetNote {
                    id: round % 4,
                    note,
                },
            )
            .await;
        }
        assert!(silent(&mut noted).await, "no row took the key");
        assert_eq!(looks.load(Ordering::Relaxed), after_first, "never woken");
        let note = key.to_owned();
        apply(&db, Ev::SetNote { id: 2, note }).await;
        assert_eq!(ids(&next(&mut noted).await), vec![2]);
        let note = String::new();
        apply(&db, Ev::SetNote { id: 2, note }).await;
        assert_eq!(ids(&next(&mut noted).await), Vec::<u64>::new());
    }
    db.close().await.expect("close");
}

/// A watcher on an indexed integer field is routed by its key (the lookup hashes it as the
/// index does): rows placed with other totals never wake it, a row placed with its total
/// does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integer_key_routes_only_its_own_rows() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    apply(&db, place(1, Status::Shipped, 5)).await;
    let shop = db.state::<Shop>();
    let looks = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&looks);
    let mut fives = shop
        .watch(|s| &s.orders)
        .filter(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
            true
        })
        .where_total(5u64)
        .stream();
    assert_eq!(ids(&next(&mut fives).await), vec![1]);
    let after_first = looks.load(Ordering::Relaxed);
    for id in 10..30 {
        apply(&db, place(id, Status::Pending, id)).await;
    }
    assert!(silent(&mut fives).await, "no other row has total 5");
    assert_eq!(looks.load(Ordering::Relaxed), after_first, "never woken");
    apply(&db, place(40, Status::Pending, 5)).await;
    assert_eq!(ids(&next(&mut fives).await), vec![1, 40]);
    db.close().await.expect("close");
}

/// Routing finds a changed row even when the same batch moved it (a removal swaps
/// the last row into the gap) and put another row where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_moved_after_their_change_are_still_routed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    for id in 0..6 {
        apply(&db, place(id, Status::Shipped, id)).await;
    }
    let shop = db.state::<Shop>();
    let mut pending = shop
        .watch(|s| &s.orders)
        .where_status(Status::Pending)
        .stream();
    assert_eq!(ids(&next(&mut pending).await), Vec::<u64>::new());
    // Row 5 (the last slot) turns pending, row 0's removal moves it to slot 0, and
    // row 9 takes slot 5: the change's slot now holds another row.
    let shuffle = Ev::Shuffle {
        pend: 5,
        remove: 0,
        insert: 9,
    };
    apply(&db, shuffle).await;
    assert_eq!(ids(&next(&mut pending).await), vec![5]);
    // Row 4 turns pending and row 5 (in the result) is removed, moving row 9.
    let shuffle = Ev::Shuffle {
        pend: 4,
        remove: 5,
        insert: 10,
    };
    apply(&db, shuffle).await;
    assert_eq!(ids(&next(&mut pending).await), vec![4]);
    db.close().await.expect("close");
}

/// Closing the Db ends every stream: `None` after the last result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_end_when_the_db_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let shop = db.state::<Shop>();
    let mut indexed = shop
        .watch(|s| &s.orders)
        .where_status(Status::Pending)
        .stream();
    let mut scanned = shop.watch(|s| &s.orders).where_total_gt(0u64).stream();
    let mut count = Box::pin(shop.watch_value(|s: &Shop| s.orders.len()));
    assert!(next(&mut indexed).await.is_empty());
    assert!(next(&mut scanned).await.is_empty());
    assert_eq!(next(&mut count).await, 0);
    apply(&db, place(1, Status::Pending, 3)).await;
    db.close().await.expect("close");
    let end = Duration::from_secs(5);
    // Each stream hands out the final result (not yet consumed), then ends.
    let rest = tokio::time::timeout(end, indexed.collect::<Vec<_>>())
        .await
        .expect("ends");
    assert_eq!(
        rest.iter().map(|r| ids(r)).collect::<Vec<_>>(),
        vec![vec![1]]
    );
    let rest = tokio::time::timeout(end, scanned.collect::<Vec<_>>())
        .await
        .expect("ends");
    assert_eq!(rest.len(), 1);
    let rest = tokio::time::timeout(end, count.collect::<Vec<_>>())
        .await
        .expect("ends");
    assert_eq!(rest, vec![1]);
    // A stream started after the close gives the current result and ends.
    let late = shop.watch(|s| &s.orders).stream();
    let all = tokio::time::timeout(end, late.collect::<Vec<_>>())
        .await
        .expect("ends");
    assert_eq!(
        all.iter().map(|r| ids(r)).collect::<Vec<_>>(),
        vec![vec![1]]
    );
}

/// `apply` may replace a watched table wholesale: its watchers notice, re-run and
/// follow the new table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_table_is_followed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    apply(&db, place(1, Status::Pending, 1)).await;
    let shop = db.state::<Shop>();
    let mut pending = shop
        .watch(|s| &s.orders)
        .where_status(Status::Pending)
        .stream();
    let mut all = shop.watch(|s| &s.orders).stream();
    assert_eq!(ids(&next(&mut pending).await), vec![1]);
    assert_eq!(ids(&next(&mut all).await), vec![1]);
    apply(
        &db,
        Ev::Reset {
            id: 9,
            status: Status::Pending,
        },
    )
    .await;
    assert_eq!(ids(&next(&mut pending).await), vec![9]);
    assert_eq!(ids(&next(&mut all).await), vec![9]);
    assert_eq!(
        foldkit::__private::watchers(&shop.read().orders),
        2,
        "re-registered on the new table"
    );
    // Later changes to the new table are routed as before.
    apply(&db, place(10, Status::Pending, 1)).await;
    assert_eq!(ids(&next(&mut pending).await), vec![9, 10]);
    assert_eq!(ids(&next(&mut all).await), vec![9, 10]);
    drop(pending);
    drop(all);
    assert_eq!(foldkit::__private::watchers(&shop.read().orders), 0);
    db.close().await.expect("close");
}
