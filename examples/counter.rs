//! Many counters, updated concurrently, and one read model over all of them.
//!
//! `cargo run --release --example counter`

use foldkit::prelude::*;
use foldkit_examples::counter::{Counter, CounterBoard, CounterCommand};

type Error = Box<dyn std::error::Error + Send + Sync>;

const COUNTERS: u64 = 100;
const WORKERS: u64 = 8;
const STEPS: u64 = 250;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    foldkit_examples::report(run().await)
}

async fn run() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let db = Db::builder(dir.path())
        .aggregate::<Counter>()
        .state::<CounterBoard>()
        .open()
        .await?;
    let counters = db.aggregate::<Counter>();

    // Eight workers increment counters concurrently; commands on one counter
    // serialize, commands on different counters run in parallel.
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let counters = counters.clone();
        workers.push(tokio::spawn(async move {
            for step in 0..STEPS {
                let id = (worker * 31 + step * 7) % COUNTERS;
                counters
                    .execute(id, CounterCommand::Increment(step % 5 + 1))
                    .await?;
            }
            Ok::<_, foldkit::ExecuteError<_>>(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    counters.execute(0, CounterCommand::Reset).await?;

    let board = db.state::<CounterBoard>();
    board
        .wait_for_seq(db.last_seq().await?.unwrap_or(0))
        .await?;
    let view = board.read();
    let top: Vec<(String, u64)> = view
        .counters
        .query()
        .order_by_value(Desc)
        .limit(5)
        .collect()
        .into_iter()
        .map(|r| (r.id, r.value))
        .collect();
    println!(
        "{} counters, {} increments in all",
        view.counters.len(),
        view.total_increments
    );
    println!("top 5: {top:?}");
    let expected_total: u64 = (0..WORKERS)
        .flat_map(|_| (0..STEPS).map(|s| s % 5 + 1))
        .sum();
    assert_eq!(view.total_increments, expected_total);
    let zero = view.counters.get(&"0".to_owned()).ok_or("counter 0")?;
    assert_eq!((zero.value, zero.resets), (0, 1));
    // The read model agrees with every aggregate.
    let rows = view
        .counters
        .iter()
        .map(|r| (r.id.clone(), r.value))
        .collect::<Vec<_>>();
    drop(view);
    for (id, value) in rows {
        assert_eq!(counters.load(&id).await?.state.value, value, "counter {id}");
    }
    db.close().await?;
    Ok(())
}
