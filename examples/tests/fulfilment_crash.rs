//! kill -9 in the middle of the fulfilment workflow, many times.
//!
//! The test re-runs its own binary as a child (`child_places_orders`, which does
//! nothing unless `FULFIL_CRASH_DIR` is set). Each child opens the Db (the
//! process manager resumes from its last checkpoint), places a range of orders
//! and lets the workflow run; the parent kills it with SIGKILL at a random
//! moment. After the last round the parent opens the Db, lets the workflow
//! finish, and checks: every placed order is confirmed or cancelled exactly
//! once, each order was answered by the stock at most once (never reserved
//! twice), and the stock adds up (restocked = available + reserved = available
//! plus the confirmed quantities). The log is the Db's own, so "exactly once"
//! is checked on what is stored, not on what the children saw.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use foldkit::prelude::*;
use foldkit::process::ProcessOptions;
use foldkit::subscribe::decode;
use foldkit_examples::fulfilment::{
    Fulfilment, Inventory, Order, OrderCommand, OrderEvent, StockCommand, StockEvent,
};

const DIR: &str = "FULFIL_CRASH_DIR";
const FIRST: &str = "FULFIL_CRASH_FIRST";
const ORDERS_PER_CHILD: u64 = 40;
const ROUNDS: u64 = 16;
const SKUS: [&str; 3] = ["bolt", "nut", "gear"];
const RESTOCK: u32 = 1_000;
/// About how long a child's work takes (debug build), in microseconds.
const WORK_US: u64 = 10_000;

fn sku(order: u64) -> &'static str {
    SKUS[(order % 3) as usize]
}

fn quantity(order: u64) -> u32 {
    1 + (order % 7) as u32
}

fn builder(dir: &Path) -> foldkit::DbBuilder {
    // Frequent checkpoints and no fsync: kills land between and during both.
    Db::builder(dir)
        .fsync(FsyncPolicy::Never)
        .aggregate::<Order>()
        .aggregate::<Inventory>()
        .process_manager_with::<Fulfilment>(
            ProcessOptions::default().checkpoints(64, Duration::from_millis(50)),
        )
}

/// The child's work: runs only when re-executed by the parent.
#[tokio::test]
async fn child_places_orders() {
    let (Ok(dir), Ok(first)) = (std::env::var(DIR), std::env::var(FIRST)) else {
        return;
    };
    let first: u64 = first.parse().expect("FIRST is a number");
    let db = builder(Path::new(&dir)).open().await.expect("child open");
    println!("ready");
    let began = std::time::Instant::now();
    let orders = db.aggregate::<Order>();
    for order in first..first + ORDERS_PER_CHILD {
        let place = OrderCommand::Place {
            sku: sku(order).into(),
            quantity: quantity(order),
        };
        orders.execute(order, (order, place)).await.expect("place");
    }
    let fulfilment = db.process_manager::<Fulfilment>().unwrap();
    fulfilment.settle().await.expect("settle");
    println!("settled after {} us", began.elapsed().as_micros());
    // Wait to be killed.
    tokio::time::sleep(Duration::from_secs(30)).await;
}

/// A small xorshift: the kill delays, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What the log says about the orders and the stock.
#[derive(Default, Debug)]
struct Tally {
    /// Reactions appended after the manager's last checkpoint: a restart
    /// redelivers their causes, and must not dispatch them again.
    after_checkpoint: u64,
    placed: BTreeMap<u64, u32>,
    decided: BTreeMap<u64, Vec<&'static str>>,
    answered: BTreeMap<u64, Vec<&'static str>>,
    restocked: BTreeMap<String, u32>,
    reserved: BTreeMap<String, u32>,
}

async fn tally(db: &Db) -> Tally {
    let mut tally = Tally::default();
    let checkpoint = (db
        .store()
        .list_snapshots("process-manager.fulfilment")
        .await
        .unwrap())
    .first()
    .copied()
    .unwrap_or(0);
    let last = db.last_seq().await.unwrap().unwrap_or(0);
    let mut next = 1;
    while next <= last {
        let records = db.store().read(next, 4096).await.unwrap();
        let Some(end) = records.last() else { break };
        next = end.position + 1;
        for record in &records {
            if record
                .context
                .as_ref()
                .and_then(|c| c.causation)
                .is_some_and(|c| c > checkpoint)
            {
                tally.after_checkpoint += 1;
            }
            let stream = record
                .stream
                .as_ref()
                .map(|s| s.id.to_string())
                .unwrap_or_default();
            if let Some(event) = decode::<OrderEvent>(record).unwrap() {
                match event {
                    OrderEvent::Placed {
                        order, quantity, ..
                    } => {
                        assert!(
                            tally.placed.insert(order, quantity).is_none(),
                            "order {order} placed twice"
                        );
                    }
                    OrderEvent::Confirmed { order } => {
                        tally.decided.entry(order).or_default().push("confirmed")
                    }
                    OrderEvent::Cancelled { order, .. } => {
                        tally.decided.entry(order).or_default().push("cancelled")
                    }
                }
            } else if let Some(event) = decode::<StockEvent>(record).unwrap() {
                let sku = stream.trim_start_matches("stock/").to_owned();
                match event {
                    StockEvent::Restocked { quantity } => {
                        *tally.restocked.entry(sku).or_default() += quantity
                    }
                    StockEvent::Reserved { order, quantity } => {
                        *tally.reserved.entry(sku).or_default() += quantity;
                        tally.answered.entry(order).or_default().push("reserved");
                    }
                    StockEvent::Refused { order, .. } => {
                        tally.answered.entry(order).or_default().push("refused")
                    }
                }
            }
        }
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_workflow_many_times_and_every_order_ends_decided_once() {
    let dir = tempfile::tempdir().unwrap();
    let setup = builder(dir.path()).open().await.unwrap();
    for sku in SKUS {
        setup
            .aggregate::<Inventory>()
            .execute(sku, StockCommand::Restock(RESTOCK))
            .await
            .unwrap();
    }
    setup.close().await.unwrap();

    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("kill delays seeded with {seed}");
    let mut rng = Rng(seed);
    let exe = std::env::current_exe().unwrap();
    let mut interrupted = 0;
    let mut at_risk = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "child_places_orders",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(DIR, dir.path())
            .env(FIRST, (1 + round * ORDERS_PER_CHILD).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait until it has opened the Db (the manager resumes), then kill it
        // at a random point of its work.
        let stdout = child.stdout.take().unwrap();
        let ready = tokio::task::spawn_blocking(move || {
            let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
            lines.any(|line| line.is_ok_and(|l| l.contains("ready")))
        });
        assert!(ready.await.unwrap(), "the child did not start");
        tokio::time::sleep(Duration::from_micros(rng.below(WORK_US))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Look at the log without the manager: was the workflow cut mid-way?
        let db = Db::builder(dir.path())
            .aggregate::<Order>()
            .aggregate::<Inventory>()
            .open()
            .await
            .unwrap();
        let now = tally(&db).await;
        if now.placed.len() > now.decided.len() {
            interrupted += 1;
        }
        at_risk += now.after_checkpoint;
        db.close().await.unwrap();
    }
    assert!(
        interrupted >= ROUNDS / 4,
        "only {interrupted} of {ROUNDS} kills cut a workflow mid-way"
    );
    assert!(
        at_risk > 0,
        "no kill left a reaction after the checkpoint: nothing was redelivered"
    );

    let db = builder(dir.path()).open().await.unwrap();
    db.process_manager::<Fulfilment>()
        .unwrap()
        .settle()
        .await
        .unwrap();
    let tally = tally(&db).await;
    assert!(!tally.placed.is_empty());
    for order in tally.placed.keys() {
        let decided = tally.decided.get(order).cloned().unwrap_or_default();
        assert_eq!(decided.len(), 1, "order {order} decided {decided:?}");
        let answered = tally.answered.get(order).cloned().unwrap_or_default();
        assert_eq!(
            answered.len(),
            1,
            "order {order}: the stock answered {answered:?}"
        );
        let expected = if answered[0] == "reserved" {
            "confirmed"
        } else {
            "cancelled"
        };
        assert_eq!(decided[0], expected, "order {order}");
    }
    assert_eq!(
        tally.decided.len(),
        tally.placed.len(),
        "a decision without an order"
    );
    for item in SKUS {
        let stock = db.aggregate::<Inventory>().load(item).await.unwrap().state;
        assert_eq!(tally.restocked[item], RESTOCK);
        assert_eq!(stock.available + stock.reserved, RESTOCK, "{item}");
        let confirmed: u32 = (tally.placed.iter())
            .filter(|(order, _)| sku(**order) == item && tally.decided[*order] == ["confirmed"])
            .map(|(_, quantity)| quantity)
            .sum();
        assert_eq!(
            stock.reserved, confirmed,
            "{item}: reserved = the confirmed quantities"
        );
        assert_eq!(tally.reserved.get(item).copied().unwrap_or(0), confirmed);
    }
    assert!(
        db.dead_letters().list().is_empty(),
        "{:?}",
        db.dead_letters().list()
    );
    println!(
        "{} orders over {ROUNDS} kills ({interrupted} mid-workflow, {at_risk} reactions redelivered after a kill): each decided once",
        tally.placed.len()
    );
    db.close().await.unwrap();
}
