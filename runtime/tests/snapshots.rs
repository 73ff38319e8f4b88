//! Snapshots end to end: byte-identical restore, open from the newest valid
//! snapshot, fallbacks past corrupt/stale/foreign/too-new snapshots, bundles,
//! compaction, and time travel.

use std::sync::atomic::{AtomicU64, Ordering};

use foldkit::prelude::*;
use foldkit::{DbError, Seq, snapshot::Bundle};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
enum Ev {
    Put { id: u64, tag: String, amount: u64 },
    Drop { id: u64 },
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Row {
    #[entity(id)]
    id: u64,
    #[entity(index)]
    tag: String,
    amount: u64,
}

/// How many events `Book` applied in this process: tells replay from restore.
static APPLIED: AtomicU64 = AtomicU64::new(0);

#[derive(State, Default, Serialize, Deserialize, Debug, PartialEq)]
#[state(event = Ev)]
struct Book {
    rows: Table<Row>,
    total: u64,
}

impl Apply<Ev> for Book {
    fn apply(&mut self, event: Ev, _: &Meta) -> Result<(), FoldError> {
        APPLIED.fetch_add(1, Ordering::Relaxed);
        match event {
            Ev::Put { id, tag, amount } => {
                self.total += amount;
                self.rows.insert(Row { id, tag, amount });
            }
            Ev::Drop { id } => {
                self.rows.remove(&id);
            }
        }
        Ok(())
    }
}

/// The same state name with another definition (what an upgrade looks like).
mod upgraded {
    use foldkit::prelude::*;

    #[derive(State, Default, Serialize, Deserialize, Debug)]
    #[state(event = super::Ev, name = "Book", version = 2)]
    pub(crate) struct Book {
        pub(crate) total: u64,
        pub(crate) puts: u64,
    }

    impl Apply<super::Ev> for Book {
        fn apply(&mut self, event: super::Ev, _: &Meta) -> Result<(), FoldError> {
            if let super::Ev::Put { amount, .. } = event {
                self.total += amount;
                self.puts += 1;
            }
            Ok(())
        }
    }
}

fn put(i: u64) -> Ev {
    Ev::Put {
        id: i % 50,
        tag: format!("t{}", i % 7),
        amount: i,
    }
}

async fn append_all(db: &Db, range: std::ops::RangeInclusive<u64>) -> Seq {
    let mut last = 0;
    for i in range {
        last = db
            .append(if i % 10 == 0 {
                Ev::Drop { id: i % 50 }
            } else {
                put(i)
            })
            .await
            .expect("append");
    }
    last
}

/// The state folded in memory, for comparison (leaves `APPLIED` as it was).
fn expected(upto: u64) -> Book {
    let before = APPLIED.load(Ordering::Relaxed);
    let book = fold_in_memory(upto);
    APPLIED.store(before, Ordering::Relaxed);
    book
}

fn fold_in_memory(upto: u64) -> Book {
    let mut book = Book::default();
    for i in 1..=upto {
        let event = if i % 10 == 0 {
            Ev::Drop { id: i % 50 }
        } else {
            put(i)
        };
        book.apply(event, &Meta::new(i, 0, 1)).expect("apply");
    }
    book
}

/// Reopens without a close snapshot, counting the events applied until `seq`.
async fn reopen_counting(dir: &std::path::Path, seq: Seq) -> Db {
    APPLIED.store(0, Ordering::Relaxed);
    let db = Db::builder(dir)
        .state::<Book>()
        .snapshot_on_close(false)
        .open()
        .await
        .expect("open");
    db.state::<Book>()
        .wait_for_seq(seq)
        .await
        .expect("caught up");
    db
}

// APPLIED is process-wide: the tests that read it run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn restore_is_byte_identical_and_resumes_at_the_next_seq() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::builder(dir.path())
        .state::<Book>()
        .snapshot_on_close(false)
        .open()
        .await
        .expect("open");
    let book = db.state::<Book>();
    book.wait_for_seq(append_all(&db, 1..=300).await)
        .await
        .expect("fold");
    let (bytes, seq) = book.snapshot().expect("snapshot");
    assert_eq!(seq, Some(300));
    let bundle = db.snapshot().await.expect("bundle");
    assert_eq!(bundle.len(), 1);
    let bundle = Bundle::from_bytes(&bundle.to_bytes()).expect("bundle bytes round trip");
    db.close().await.expect("close");

    APPLIED.store(0, Ordering::Relaxed);
    let db = Db::builder(dir.path())
        .state::<Book>()
        .restore(bundle)
        .open()
        .await
        .expect("open");
    let book = db.state::<Book>();
    assert_eq!(
        book.applied_seq(),
        Some(300),
        "restored at the bundle's seq"
    );
    assert_eq!(
        book.snapshot().expect("snapshot").0,
        bytes,
        "restored state is byte-identical"
    );
    assert_eq!(APPLIED.load(Ordering::Relaxed), 0, "nothing replayed");
    // Indexes were rebuilt: an indexed query answers.
    let tagged = book.read().rows.query().where_tag("t3".to_owned()).count();
    assert_eq!(
        tagged,
        expected(300)
            .rows
            .query()
            .where_tag("t3".to_owned())
            .count()
    );
    book.wait_for_seq(append_all(&db, 301..=320).await)
        .await
        .expect("fold");
    assert_eq!(
        APPLIED.load(Ordering::Relaxed),
        20,
        "the fold resumed at seq 301"
    );
    assert_eq!(*book.read(), expected(320));
    db.close().await.expect("close");
}

#[tokio::test]
async fn open_loads_the_newest_snapshot_and_replays_the_rest() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || {
        Db::builder(dir.path())
            .state::<Book>()
            .snapshot_every(100)
            .keep_snapshots(2)
            .open()
    };
    let db = open().await.expect("open");
    db.state::<Book>()
        .wait_for_seq(append_all(&db, 1..=1000).await)
        .await
        .expect("fold");
    db.close().await.expect("close");
    let snapshot_dir = dir.path().join("snapshots").join("Book");
    let files = std::fs::read_dir(&snapshot_dir)
        .expect("snapshot dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "snap"))
        })
        .count();
    assert!(
        (1..=2).contains(&files),
        "keeps at most 2 snapshots, found {files}"
    );

    APPLIED.store(0, Ordering::Relaxed);
    let db = open().await.expect("reopen");
    let book = db.state::<Book>();
    book.wait_for_seq(1000).await.expect("caught up");
    assert_eq!(
        APPLIED.load(Ordering::Relaxed),
        0,
        "the close snapshot covers everything"
    );
    assert_eq!(*book.read(), expected(1000));
    book.wait_for_seq(append_all(&db, 1001..=1050).await)
        .await
        .expect("fold");
    assert_eq!(*book.read(), expected(1050));
    db.close().await.expect("close");
}

#[tokio::test]
async fn corrupt_stale_and_too_new_snapshots_fall_back_safely() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::builder(dir.path())
        .state::<Book>()
        .snapshot_on_close(false)
        .open()
        .await
        .expect("open");
    let book = db.state::<Book>();
    book.wait_for_seq(append_all(&db, 1..=200).await)
        .await
        .expect("fold");
    db.snapshot_to_disk().await.expect("snapshot at 200");
    book.wait_for_seq(append_all(&db, 201..=400).await)
        .await
        .expect("fold");
    db.snapshot_to_disk().await.expect("snapshot at 400");
    db.close().await.expect("close");
    let snapshot_dir = dir.path().join("snapshots").join("Book");
    let newest = snapshot_dir.join(format!("{:020}.snap", 400));

    // A flipped byte in the newest: the older one is used, the rest replayed.
    let mut bytes = std::fs::read(&newest).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&newest, &bytes).expect("write");
    let db = reopen_counting(dir.path(), 400).await;
    assert_eq!(
        APPLIED.load(Ordering::Relaxed),
        200,
        "replayed from the snapshot at 200"
    );
    assert_eq!(*db.state::<Book>().read(), expected(400));
    db.close().await.expect("close");

    // Truncated and foreign files are skipped too: a full replay.
    std::fs::write(&newest, &bytes[..10]).expect("truncate");
    std::fs::write(
        snapshot_dir.join(format!("{:020}.snap", 200)),
        b"not a snapshot",
    )
    .expect("write");
    let db = reopen_counting(dir.path(), 400).await;
    assert_eq!(APPLIED.load(Ordering::Relaxed), 400, "full replay");
    assert_eq!(*db.state::<Book>().read(), expected(400));
    db.snapshot_to_disk().await.expect("a good snapshot at 400");
    db.close().await.expect("close");

    // Another definition of the state: the snapshot is stale, the state replays.
    let db = Db::builder(dir.path())
        .state::<upgraded::Book>()
        .snapshot_on_close(false)
        .open()
        .await
        .expect("open");
    let upgraded = db.state::<upgraded::Book>();
    upgraded.wait_for_seq(400).await.expect("caught up");
    let puts = (1..=400u64).filter(|i| i % 10 != 0).count() as u64;
    assert_eq!(
        upgraded.read().puts,
        puts,
        "rebuilt by replay, not decoded from the old snapshot"
    );
    db.close().await.expect("close");

    // A snapshot beyond the log's end (the log lost events) is never used.
    let other = tempfile::tempdir().expect("tempdir");
    let db = Db::builder(other.path())
        .state::<Book>()
        .snapshot_on_close(false)
        .open()
        .await
        .expect("open");
    db.state::<Book>()
        .wait_for_seq(append_all(&db, 1..=10).await)
        .await
        .expect("fold");
    db.close().await.expect("close");
    let target = other.path().join("snapshots").join("Book");
    std::fs::create_dir_all(&target).expect("dir");
    std::fs::copy(
        snapshot_dir.join(format!("{:020}.snap", 400)),
        target.join(format!("{:020}.snap", 400)),
    )
    .expect("copy");
    let db = reopen_counting(other.path(), 10).await;
    assert_eq!(*db.state::<Book>().read(), expected(10));
    // And a bundle beyond the log is an error, not a silent wrong state.
    let far = {
        let mut bundle = Bundle::new();
        bundle
            .push(std::fs::read(target.join(format!("{:020}.snap", 400))).expect("read"))
            .expect("push");
        bundle
    };
    db.close().await.expect("close");
    let refused = Db::builder(other.path())
        .state::<Book>()
        .restore(far)
        .open()
        .await;
    assert!(
        matches!(
            refused,
            Err(DbError::RestoreBeyondLog {
                seq: 400,
                last: 10,
                ..
            })
        ),
        "{refused:?}"
    );
}

#[tokio::test]
async fn compact_drops_only_what_every_state_has_snapshotted_and_time_travel_works() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || {
        Db::builder(dir.path())
            .segment_size(4096)
            .state::<Book>()
            .snapshot_on_close(false)
            .open()
    };
    let db = open().await.expect("open");
    let book = db.state::<Book>();
    book.wait_for_seq(append_all(&db, 1..=600).await)
        .await
        .expect("fold");
    assert_eq!(
        db.compact().await.expect("compact"),
        0,
        "no snapshot yet: nothing may go"
    );

    // Time travel, from the start and from a snapshot.
    assert_eq!(book.state_at(123).await.expect("state_at"), expected(123));
    db.snapshot_to_disk().await.expect("snapshot at 600");
    book.wait_for_seq(append_all(&db, 601..=700).await)
        .await
        .expect("fold");
    assert_eq!(book.state_at(650).await.expect("state_at"), expected(650));
    assert_eq!(book.state_at(600).await.expect("state_at"), expected(600));

    let removed = db.compact().await.expect("compact");
    assert!(removed > 0, "segments before seq 600 can go");
    db.close().await.expect("close");

    APPLIED.store(0, Ordering::Relaxed);
    let db = open().await.expect("reopen after compaction");
    let book = db.state::<Book>();
    book.wait_for_seq(700).await.expect("caught up");
    assert_eq!(*book.read(), expected(700));
    assert_eq!(
        APPLIED.load(Ordering::Relaxed),
        100,
        "started from the snapshot at 600"
    );
    assert!(
        book.state_at(10).await.is_err(),
        "history before the compaction point is gone"
    );
    db.close().await.expect("close");
}

/// A value whose `Serialize` panics once it is armed (a bug in a user's impl).
#[derive(Default, Deserialize, Debug)]
struct Fuse(bool);

impl Serialize for Fuse {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        assert!(!self.0, "the state's Serialize panicked");
        serializer.serialize_bool(false)
    }
}

#[derive(State, Default, Serialize, Deserialize, Debug)]
#[state(event = Ev)]
struct Fragile {
    fuse: Fuse,
}

impl Apply<Ev> for Fragile {
    fn apply(&mut self, _: Ev, _: &Meta) -> Result<(), FoldError> {
        self.fuse.0 = true;
        Ok(())
    }
}

/// The encode runs inside the store's streamed write, on the blocking pool: a panic
/// there still reaches the caller of `snapshot_to_disk` as a panic, not as a store error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "the state's Serialize panicked")]
async fn a_panic_in_a_snapshot_encode_reaches_the_caller() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::builder(dir.path())
        .state::<Fragile>()
        .snapshot_on_close(false)
        .open()
        .await
        .expect("open");
    let seq = db.append(put(1)).await.expect("append");
    db.state::<Fragile>()
        .wait_for_seq(seq)
        .await
        .expect("folded");
    let outcome = db.snapshot_to_disk().await;
    // Not the error itself: its text may quote the panic's message.
    unreachable!(
        "the snapshot returned (ok: {}) instead of panicking",
        outcome.is_ok()
    );
}
