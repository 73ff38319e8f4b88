//! A bank on foldkit: open accounts, deposit, withdraw (refused when the balance
//! does not cover it: no event is written), read each account's history, travel
//! back to an earlier version, query the read model, restart and find it all again.
//!
//! `cargo run --release --example bank`

use foldkit::prelude::*;
use foldkit_examples::bank::{Account, AccountCommand, AccountError, Bank};

type Error = Box<dyn std::error::Error + Send + Sync>;

async fn open(dir: &std::path::Path) -> Result<Db, Error> {
    Ok(Db::builder(dir)
        .fsync(FsyncPolicy::EveryN(100))
        .aggregate::<Account>()
        .state::<Bank>()
        .open()
        .await?)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    foldkit_examples::report(run().await)
}

async fn run() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path()).await?;
    let accounts = db.aggregate::<Account>();

    accounts
        .execute(
            "alice",
            AccountCommand::OpenAccount {
                owner: "Alice".into(),
                initial_balance: 1_000,
            },
        )
        .await?;
    accounts
        .execute(
            "bob",
            AccountCommand::OpenAccount {
                owner: "Bob".into(),
                initial_balance: 50,
            },
        )
        .await?;
    accounts
        .execute("alice", AccountCommand::Deposit { amount: 250 })
        .await?;
    accounts
        .execute("alice", AccountCommand::Withdraw { amount: 400 })
        .await?;
    let last = accounts
        .execute("bob", AccountCommand::Deposit { amount: 25 })
        .await?;

    // Refused by the domain: nothing is written.
    let before = accounts.load("bob").await?.version;
    match accounts
        .execute("bob", AccountCommand::Withdraw { amount: 500 })
        .await
    {
        Err(foldkit::ExecuteError::Rejected(AccountError::InsufficientFunds {
            balance,
            requested,
        })) => {
            println!("bob cannot withdraw {requested}: balance is {balance}");
        }
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    }
    assert_eq!(
        accounts.load("bob").await?.version,
        before,
        "a refused command writes nothing"
    );

    let alice = accounts.load("alice").await?;
    println!(
        "alice: balance {} at version {}",
        alice.state.balance, alice.version
    );
    for stored in accounts.events("alice").await? {
        println!(
            "  v{} seq {}: {:?}",
            stored.stream_version, stored.meta.seq, stored.event
        );
    }
    let earlier = accounts.load_at("alice", 2).await?;
    println!("alice at version 2: balance {}", earlier.state.balance);
    assert_eq!(earlier.state.balance, 1_250);

    // The read model folds the same log; wait for the last write, then query it.
    let bank = db.state::<Bank>();
    bank.wait_for_seq(*last.seqs.ok_or("no seqs")?.end())
        .await?;
    let rich: Vec<String> = bank.read().accounts.query().where_balance_gte(100u64).ids();
    println!("accounts with at least 100: {rich:?}");
    assert_eq!(rich, vec!["alice".to_owned()]);
    db.close().await?;

    // Restart from the same directory: state, history and versions are back.
    let db = open(dir.path()).await?;
    let accounts = db.aggregate::<Account>();
    let again = accounts.load("alice").await?;
    assert_eq!((&again.state, again.version), (&alice.state, alice.version));
    let bank = db.state::<Bank>();
    bank.wait_for_seq(db.last_seq().await?.unwrap_or(0)).await?;
    assert_eq!(bank.read().accounts.len(), 2);
    println!(
        "after restart: alice balance {} at version {}",
        again.state.balance, again.version
    );
    db.close().await?;
    Ok(())
}
