//! The calls a newcomer writes first: `?` on a command into `Box<dyn Error>`, the
//! error checks (`is_conflict`, `is_closed`, `rejected`), and read-your-writes
//! after a command in one call (`handle.wait_for(&executed)`).

use foldkit::prelude::*;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
enum StockEvent {
    Received { sku: String, qty: u32 },
    Shipped { sku: String, qty: u32 },
}

/// The write side of one bin.
#[derive(Default, Clone, Debug)]
struct Bin {
    qty: u32,
}

#[derive(Debug, PartialEq, thiserror::Error)]
enum BinError {
    #[error("only {on_hand} on hand, {asked} asked")]
    Short { on_hand: u32, asked: u32 },
}

enum Move {
    In(u32),
    Out(u32),
    Nothing,
}

impl Aggregate for Bin {
    const NAME: &'static str = "bin";
    type Event = StockEvent;
    type Command = Move;
    type Error = BinError;

    fn handle(&self, command: Move) -> Result<Vec<StockEvent>, BinError> {
        let sku = "bolt".to_owned();
        match command {
            Move::In(qty) => Ok(vec![StockEvent::Received { sku, qty }]),
            Move::Out(qty) if qty > self.qty => Err(BinError::Short {
                on_hand: self.qty,
                asked: qty,
            }),
            Move::Out(qty) => Ok(vec![StockEvent::Shipped { sku, qty }]),
            Move::Nothing => Ok(vec![]),
        }
    }

    fn apply(&mut self, event: &StockEvent) {
        match event {
            StockEvent::Received { qty, .. } => self.qty += qty,
            StockEvent::Shipped { qty, .. } => self.qty -= qty,
        }
    }
}

#[derive(State, Default, Serialize, Deserialize)]
#[state(event = StockEvent)]
struct Totals {
    moves: u64,
}

impl Apply<StockEvent> for Totals {
    fn apply(&mut self, _: StockEvent, _: &Meta) -> Result<(), FoldError> {
        self.moves += 1;
        Ok(())
    }
}

async fn open(dir: &std::path::Path) -> Db {
    Db::builder(dir)
        .state::<Totals>()
        .aggregate::<Bin>()
        .open()
        .await
        .expect("open")
}

/// `?` converts a refused command into `Box<dyn Error>` and keeps its message.
async fn ship(db: &Db, qty: u32) -> Result<u32, Box<dyn std::error::Error>> {
    Ok(db
        .aggregate::<Bin>()
        .execute("a1", Move::Out(qty))
        .await?
        .state
        .qty)
}

#[tokio::test]
async fn question_mark_turns_a_refusal_into_a_boxed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    db.aggregate::<Bin>()
        .execute("a1", Move::In(3))
        .await
        .expect("receive");
    assert_eq!(ship(&db, 2).await.expect("ship 2"), 1);
    let refused = ship(&db, 5).await.expect_err("only 1 left");
    assert_eq!(
        refused.to_string(),
        "command rejected: only 1 on hand, 5 asked"
    );
    db.close().await.expect("close");
}

#[tokio::test]
async fn the_error_checks_tell_conflict_rejection_and_closed_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let bins = db.aggregate::<Bin>();
    bins.execute("a1", Move::In(1)).await.expect("receive");

    let stale = bins
        .execute_expecting("a1", ExpectedVersion::Exact(0), Move::In(1))
        .await
        .expect_err("the bin is at version 1");
    assert!(stale.is_conflict() && !stale.is_rejected() && !stale.is_closed());
    let db_error = stale.db_error().expect("a Db error");
    assert!(db_error.is_conflict());
    assert_eq!(db_error.conflict_version(), Some(1));

    let refused = bins
        .execute("a1", Move::Out(9))
        .await
        .expect_err("too many");
    assert!(refused.is_rejected() && !refused.is_conflict());
    assert_eq!(
        refused.into_rejected().ok(),
        Some(BinError::Short {
            on_hand: 1,
            asked: 9
        })
    );

    db.close().await.expect("close");
    let closed = bins
        .execute("a1", Move::In(1))
        .await
        .expect_err("the Db is closed");
    assert!(closed.is_closed() && !closed.is_conflict(), "{closed}");

    let again = open(dir.path()).await;
    let twice = Db::builder(dir.path())
        .aggregate::<Bin>()
        .open()
        .await
        .expect_err("the directory is held");
    assert!(twice.is_already_open() && !twice.is_closed());
    again.close().await.expect("close");
}

#[tokio::test]
async fn wait_for_an_executed_command_makes_the_read_model_show_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let totals = db.state::<Totals>();
    let bins = db.aggregate::<Bin>();
    for i in 1..=50u64 {
        let executed = bins.execute("a1", Move::In(1)).await.expect("receive");
        totals.wait_for(&executed).await.expect("folded");
        assert_eq!(totals.read().moves, i);
    }
    // A command that appended nothing returns at once.
    let nothing = bins.execute("a1", Move::Nothing).await.expect("no-op");
    assert_eq!(nothing.seqs, None);
    totals
        .wait_for(&nothing)
        .await
        .expect("nothing to wait for");
    db.close().await.expect("close");
}
