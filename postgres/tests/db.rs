//! Db-level behaviour over `PgStore`: several instances over one database.

mod support;

use std::time::Duration;

use foldkit::prelude::*;
use foldkit::store::EventStore;
use foldkit::{ExecuteError, SnapshotUse};
use foldkit_postgres::PgStore;
use support::bank::{Balances, Wallet, WalletCommand, WalletError, WalletEvent, execute};
use support::{DB, database, runtime};

async fn open(url: &str) -> Db {
    let store = PgStore::connect(url).await.expect("connect");
    Db::builder_with(store)
        .aggregate::<Wallet>()
        .state::<Balances>()
        .open()
        .await
        .expect("open")
}

/// Waits until `db`'s read model has folded everything the store holds now.
async fn caught_up(db: &Db) {
    let last = db.store().last_position().await.expect("last").unwrap_or(0);
    db.state::<Balances>()
        .wait_for_seq(last)
        .await
        .expect("fold");
}

#[test]
fn every_instance_folds_the_whole_log() {
    let Some((_server, url)) = database(false) else {
        return;
    };
    runtime().block_on(async {
        let dbs = vec![open(&url).await, open(&url).await, open(&url).await];
        for (i, db) in dbs.iter().enumerate() {
            execute(db, &format!("own-{i}"), WalletCommand::Open(10))
                .await
                .expect("open");
        }
        execute(&dbs[0], "shared", WalletCommand::Open(0))
            .await
            .expect("open");
        let work = dbs.iter().enumerate().map(|(i, db)| async move {
            for n in 0..20u64 {
                execute(db, &format!("own-{i}"), WalletCommand::Deposit(n))
                    .await
                    .expect("own");
                execute(db, "shared", WalletCommand::Deposit(1))
                    .await
                    .expect("shared");
            }
        });
        futures::future::join_all(work).await;
        for db in &dbs {
            caught_up(db).await;
        }
        let summaries: Vec<_> = dbs
            .iter()
            .map(|db| db.state::<Balances>().read().summary())
            .collect();
        assert_eq!(summaries[0].get("shared"), Some(&(60, 61)));
        assert_eq!(summaries[0].get("own-2"), Some(&(10 + 190, 21)));
        assert_eq!(summaries[0], summaries[1]);
        assert_eq!(summaries[0], summaries[2]);
        for db in &dbs {
            db.close().await.expect("close");
        }
    });
}

#[test]
fn a_stale_aggregate_cache_reloads_and_never_appends_on_a_stale_version() {
    let Some((_server, url)) = database(false) else {
        return;
    };
    runtime().block_on(async {
        let a = open(&url).await;
        let b = open(&url).await;
        let wa = a.aggregate::<Wallet>();
        let wb = b.aggregate::<Wallet>();
        wa.execute("w", WalletCommand::Open(10))
            .await
            .expect("open");
        wb.execute("w", WalletCommand::Deposit(100))
            .await
            .expect("deposit on b");
        // A's cache says balance 10 at version 1; the stream is at version 2.
        let done = wa
            .execute("w", WalletCommand::Withdraw(50))
            .await
            .expect("a reloads, so the withdrawal is covered");
        assert_eq!((done.version, done.state.balance), (3, 60));
        match wb.execute("w", WalletCommand::Withdraw(61)).await {
            Err(ExecuteError::Rejected(WalletError::Insufficient { balance: 60 })) => {}
            other => panic!("b must see a's withdrawal: {other:?}"),
        }

        // Both race on the wallet; a conflict writes nothing and is run again.
        let race = |db: Db| async move {
            for _ in 0..25 {
                execute(&db, "w", WalletCommand::Deposit(1))
                    .await
                    .expect("deposit");
            }
        };
        futures::future::join(race(a.clone()), race(b.clone())).await;
        let history = wa.events("w").await.expect("history");
        let versions: Vec<u64> = history.iter().map(|e| e.stream_version).collect();
        assert_eq!(
            versions,
            (1..=53).collect::<Vec<_>>(),
            "no version twice, none skipped"
        );
        let deposits = history
            .iter()
            .filter(|e| e.event == WalletEvent::Deposited { amount: 1 })
            .count();
        assert_eq!(deposits, 50);
        assert_eq!(wb.load("w").await.expect("load").state.balance, 110);
        a.close().await.expect("close");
        b.close().await.expect("close");
    });
}

#[test]
fn a_new_instance_starts_from_the_newest_snapshot() {
    let Some((server, url)) = database(false) else {
        return;
    };
    runtime().block_on(async {
        let store = PgStore::connect(&url).await.expect("connect");
        let first = Db::builder_with(store)
            .aggregate::<Wallet>()
            .state::<Balances>()
            .snapshot_every(50)
            .open()
            .await
            .expect("open");
        execute(&first, "w", WalletCommand::Open(0))
            .await
            .expect("open");
        for _ in 0..120 {
            execute(&first, "w", WalletCommand::Deposit(2))
                .await
                .expect("deposit");
        }
        caught_up(&first).await;
        let expected = first.state::<Balances>().read().summary();
        first.close().await.expect("close (writes a snapshot)");

        let newest = {
            let store = PgStore::connect(&url).await.expect("connect");
            store.list_snapshots("Balances").await.expect("list")
        };
        let last = newest.first().copied().expect("a snapshot in the table");
        let second = open(&url).await;
        let opened = second
            .open_report()
            .state("Balances")
            .expect("report")
            .clone();
        assert_eq!(opened.snapshot, SnapshotUse::Used(last), "{opened:?}");
        caught_up(&second).await;
        assert_eq!(second.state::<Balances>().read().summary(), expected);
        second.close().await.expect("close");
    });
    let rows = server
        .psql(
            DB,
            "SELECT count(*) > 0 FROM foldkit_snapshots WHERE state = 'Balances'",
        )
        .expect("psql");
    assert_eq!(rows, "t");
    let _ = Duration::ZERO;
}
