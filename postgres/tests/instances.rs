//! Node loss at Db level: three app instances (this test binary re-run as child
//! processes) run commands over one database; one is killed with SIGKILL, the
//! others go on, a replacement starts (from the newest snapshot) and catches
//! up, and every instance's read model equals a full replay of the log.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use foldkit::SnapshotUse;
use foldkit::prelude::*;
use foldkit_postgres::PgStore;
use support::bank::{Balances, Wallet, WalletCommand, WalletError, execute};
use support::{DB, database, runtime};

const URL: &str = "FOLDKIT_PG_APP_URL";
const DIR: &str = "FOLDKIT_PG_APP_DIR";
const ID: &str = "FOLDKIT_PG_APP_ID";
const WALLETS: u64 = 8;

/// What an instance reports when told to dump.
#[derive(Serialize, Deserialize, Debug)]
struct Report {
    balances: BTreeMap<String, (u64, u64)>,
    started_from_snapshot: bool,
    commands: u64,
}

async fn open(url: &str) -> Db {
    let store = PgStore::connect(url).await.expect("connect");
    Db::builder_with(store)
        .aggregate::<Wallet>()
        .state::<Balances>()
        .snapshot_every(100)
        .open()
        .await
        .expect("open")
}

/// One app instance; does nothing in a normal test run.
#[test]
fn app_instance_child() {
    let (Ok(url), Ok(dir), Ok(id)) = (std::env::var(URL), std::env::var(DIR), std::env::var(ID))
    else {
        return;
    };
    let dir = PathBuf::from(dir);
    runtime().block_on(async {
        let db = open(&url).await;
        let started_from_snapshot = matches!(
            db.open_report().state("Balances").map(|s| &s.snapshot),
            Some(SnapshotUse::Used(_))
        );
        std::fs::write(dir.join(format!("ready-{id}")), b"").expect("ready");
        let mut rng = fastrand::Rng::with_seed(id.parse().expect("id"));
        let mut commands = 0u64;
        while !dir.join("stop").exists() {
            let wallet = format!("w{}", rng.u64(..WALLETS));
            let command = match rng.u8(..3) {
                0 => WalletCommand::Withdraw(rng.u64(1..5)),
                _ => WalletCommand::Deposit(rng.u64(1..10)),
            };
            match execute(&db, &wallet, command).await {
                Ok(_) | Err(foldkit::ExecuteError::Rejected(WalletError::Insufficient { .. })) => {
                    commands += 1;
                }
                Err(e) => panic!("instance {id}: {e:?}"),
            }
        }
        std::fs::write(dir.join(format!("stopped-{id}")), b"").expect("stopped");
        while !dir.join("dump").exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let last = db.store().last_position().await.expect("last").unwrap_or(0);
        db.state::<Balances>()
            .wait_for_seq(last)
            .await
            .expect("catch up");
        let report = Report {
            balances: db.state::<Balances>().read().summary(),
            started_from_snapshot,
            commands,
        };
        let json = serde_json::to_vec(&report).expect("json");
        std::fs::write(dir.join(format!("report-{id}.json")), json).expect("report");
        db.close().await.expect("close");
    });
}

fn spawn(url: &str, dir: &Path, id: u32) -> Child {
    Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "app_instance_child",
            "--test-threads=1",
            "--quiet",
        ])
        .env(URL, url)
        .env(DIR, dir)
        .env(ID, id.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start an app instance")
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_instance_killed_under_load_is_replaced_and_all_agree() {
    let Some((server, url)) = database(false) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let count = || -> u64 {
        server
            .psql(DB, "SELECT count(*) FROM foldkit_events")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    // Open the wallets first, so every instance only deposits and withdraws.
    runtime().block_on(async {
        let db = open(&url).await;
        for w in 0..WALLETS {
            execute(&db, &format!("w{w}"), WalletCommand::Open(100))
                .await
                .expect("open");
        }
        db.close().await.expect("close");
    });
    let mut instances: BTreeMap<u32, Child> = (0..3).map(|id| (id, spawn(&url, dir, id))).collect();
    wait_for("three instances ready", || {
        (0..3).all(|id| dir.join(format!("ready-{id}")).exists())
    });
    wait_for("load", || count() >= 300);

    let mut victim = instances.remove(&1).expect("instance 1");
    victim.kill().expect("SIGKILL instance 1");
    victim.wait().expect("reap instance 1");
    let at_kill = count();
    wait_for("the others go on", || count() >= at_kill + 200);

    instances.insert(3, spawn(&url, dir, 3));
    wait_for("the replacement is ready", || dir.join("ready-3").exists());
    let at_replacement = count();
    wait_for("load with the replacement", || {
        count() >= at_replacement + 200
    });

    std::fs::write(dir.join("stop"), b"").expect("stop");
    let ids: Vec<u32> = instances.keys().copied().collect();
    wait_for("every instance stopped appending", || {
        ids.iter()
            .all(|id| dir.join(format!("stopped-{id}")).exists())
    });
    std::fs::write(dir.join("dump"), b"").expect("dump");
    for (id, mut child) in instances {
        let status = child.wait().expect("wait");
        assert!(status.success(), "instance {id} failed: {status}");
    }

    // A full replay: no snapshot to start from.
    server
        .psql(DB, "DELETE FROM foldkit_snapshots")
        .expect("drop snapshots");
    let replayed = runtime().block_on(async {
        let db = open(&url).await;
        assert_eq!(
            db.open_report()
                .state("Balances")
                .map(|s| s.snapshot.clone()),
            Some(SnapshotUse::Replay)
        );
        let last = db.store().last_position().await.expect("last").unwrap_or(0);
        db.state::<Balances>()
            .wait_for_seq(last)
            .await
            .expect("replay");
        let summary = db.state::<Balances>().read().summary();
        db.close().await.expect("close");
        summary
    });
    assert_eq!(replayed.len() as u64, WALLETS);
    for id in ids {
        let report: Report = serde_json::from_slice(
            &std::fs::read(dir.join(format!("report-{id}.json"))).expect("report"),
        )
        .expect("json");
        assert!(report.commands > 0, "instance {id} ran commands");
        assert_eq!(
            report.balances, replayed,
            "instance {id} equals a full replay"
        );
        if id == 3 {
            assert!(
                report.started_from_snapshot,
                "the replacement started from a snapshot"
            );
        }
    }
}
