//! Testing an upcast: `foldkit::testing::write_legacy` writes events of an older
//! schema version into a Db directory, and the Db under test reads them upcast.
//! Appending an older version to a Db names the type that was passed.

use foldkit::prelude::*;
use foldkit::testing::{write_legacy, write_legacy_to};
use foldkit::{Aggregates, DbError};

mod v1 {
    use foldkit::prelude::*;

    /// What an older release wrote: no quantity, every line was one unit.
    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[event(name = "StockMove", version = 1)]
    pub enum StockMoveV1 {
        Received { sku: String },
    }
}
use v1::StockMoveV1;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "StockMove", version = 2, previous = StockMoveV1)]
enum StockMove {
    Received { sku: String, qty: u32 },
}

impl From<StockMoveV1> for StockMove {
    fn from(StockMoveV1::Received { sku }: StockMoveV1) -> Self {
        StockMove::Received { sku, qty: 1 }
    }
}

#[derive(State, Default, Serialize, Deserialize)]
#[state(event = StockMove)]
struct Stock {
    units: u32,
    skus: Vec<String>,
}

impl Apply<StockMove> for Stock {
    fn apply(&mut self, event: StockMove, _: &Meta) -> Result<(), FoldError> {
        let StockMove::Received { sku, qty } = event;
        self.units += qty;
        self.skus.push(sku);
        Ok(())
    }
}

#[derive(Default, Clone, Debug)]
struct Bin {
    units: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("never refused")]
struct Never;

impl Aggregate for Bin {
    const NAME: &'static str = "bin";
    type Event = StockMove;
    type Command = u32;
    type Error = Never;
    fn handle(&self, qty: u32) -> Result<Vec<StockMove>, Never> {
        Ok(vec![StockMove::Received {
            sku: "bolt".into(),
            qty,
        }])
    }
    fn apply(&mut self, StockMove::Received { qty, .. }: &StockMove) {
        self.units += qty;
    }
}

#[tokio::test]
async fn legacy_events_written_for_a_test_are_read_upcast() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = [
        StockMoveV1::Received { sku: "bolt".into() },
        StockMoveV1::Received { sku: "nut".into() },
    ];
    let seqs = write_legacy(dir.path(), old).await.expect("write v1");
    assert_eq!(seqs, [1, 2]);
    assert_eq!(
        write_legacy::<StockMoveV1>(dir.path(), [])
            .await
            .expect("nothing"),
        Vec::<u64>::new()
    );

    let db = Db::builder(dir.path())
        .state::<Stock>()
        .open()
        .await
        .expect("open v2");
    let seq = db
        .append(StockMove::Received {
            sku: "gear".into(),
            qty: 5,
        })
        .await
        .expect("append v2");
    assert_eq!(seq, 3);
    let stock = db.state::<Stock>();
    stock.wait_for_seq(seq).await.expect("folded");
    assert_eq!(stock.read().units, 7);
    assert_eq!(stock.read().skus, ["bolt", "nut", "gear"]);
    db.close().await.expect("close");
}

#[tokio::test]
async fn legacy_stream_events_rebuild_an_aggregate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stream = Aggregates::<Bin>::stream_id("b1");
    let old = [
        StockMoveV1::Received { sku: "bolt".into() },
        StockMoveV1::Received { sku: "bolt".into() },
    ];
    write_legacy_to(dir.path(), &stream, old)
        .await
        .expect("write v1");

    let db = Db::builder(dir.path())
        .aggregate::<Bin>()
        .open()
        .await
        .expect("open");
    let bins = db.aggregate::<Bin>();
    let loaded = bins.load("b1").await.expect("load");
    assert_eq!((loaded.state.units, loaded.version), (2, 2));
    let executed = bins.execute("b1", 3).await.expect("execute");
    assert_eq!((executed.state.units, executed.version), (5, 3));
    db.close().await.expect("close");
}

#[tokio::test]
async fn appending_an_older_version_names_the_type_passed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::builder(dir.path())
        .state::<Stock>()
        .open()
        .await
        .expect("open");
    let error = db
        .append(StockMoveV1::Received { sku: "bolt".into() })
        .await
        .expect_err("only the current version is appended");
    assert!(
        matches!(
            error,
            DbError::UnknownEvent {
                event: "StockMove",
                rust_type: "legacy::v1::StockMoveV1",
                registered: Some("legacy::StockMove"),
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with("event type `legacy::v1::StockMoveV1` is not the one"),
        "{message}"
    );
    assert!(
        message.contains("it holds `legacy::StockMove`"),
        "{message}"
    );
    assert!(message.contains("testing::write_legacy"), "{message}");

    // A held directory is reported, not waited on.
    let held = write_legacy(dir.path(), [StockMoveV1::Received { sku: "x".into() }])
        .await
        .expect_err("the Db under test holds the directory");
    assert!(held.is_already_open(), "{held}");
    db.close().await.expect("close");
}

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
enum Unregistered {
    Happened,
}

#[tokio::test]
async fn an_unregistered_event_names_its_type_and_how_to_register_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::builder(dir.path())
        .state::<Stock>()
        .open()
        .await
        .expect("open");
    let error = db.append(Unregistered::Happened).await.expect_err("no log");
    assert_eq!(
        error.to_string(),
        "event type `legacy::Unregistered` (stable name \"Unregistered\") is not registered with \
         this Db: register a state that folds it with `.state::<S>()`, an aggregate with \
         `.aggregate::<A>()`, or the event itself with `.event::<legacy::Unregistered>()` on the builder"
    );
    db.close().await.expect("close");
}
