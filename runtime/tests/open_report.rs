//! What a Db says at open, and the way out of a state stopped at a bad event
//! (issue 21, items 5 and 6).

use foldkit::prelude::*;
use foldkit::{DbError, SnapshotUse};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
enum Ev {
    Add(u64),
    Poison,
}

#[derive(State, Default, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[state(event = Ev)]
struct Strict {
    sum: u64,
}

impl Apply<Ev> for Strict {
    fn apply(&mut self, event: Ev, _: &Meta) -> Result<(), FoldError> {
        match event {
            Ev::Add(n) => self.sum += n,
            Ev::Poison => return Err(FoldError::new("poison is not an amount")),
        }
        Ok(())
    }
}

#[derive(State, Default, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[state(event = Ev)]
struct Lenient {
    sum: u64,
}

impl Apply<Ev> for Lenient {
    fn apply(&mut self, event: Ev, _: &Meta) -> Result<(), FoldError> {
        match event {
            Ev::Add(n) => self.sum += n,
            Ev::Poison => return Err(FoldError::new("poison is not an amount")),
        }
        Ok(())
    }
}

#[tokio::test]
async fn the_fold_error_policy_is_per_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::builder(dir.path())
        .state::<Strict>()
        .state::<Lenient>()
        .fold_error_policy_for::<Lenient>(FoldErrorPolicy::LogAndContinue)
        .open()
        .await
        .expect("open");
    db.append(Ev::Add(1)).await.expect("append");
    let poison = db.append(Ev::Poison).await.expect("append");
    let last = db.append(Ev::Add(2)).await.expect("append");
    let lenient = db.state::<Lenient>();
    lenient
        .wait_for_seq(last)
        .await
        .expect("skips the bad event");
    assert_eq!((lenient.read().sum, lenient.skipped_events()), (3, 1));
    let strict = db.state::<Strict>();
    let error = strict
        .wait_for_seq(last)
        .await
        .expect_err("stops at the bad event");
    let failure = error.fold_failure().expect("a fold failure");
    assert_eq!(
        (failure.state, failure.seq, failure.event.as_deref()),
        ("Strict", poison, Some("Ev"))
    );
    assert_eq!(strict.read().sum, 1);
    db.close().await.expect("close");

    // The documented way out without a code change: reopen with the policy for it.
    let db = Db::builder(dir.path())
        .state::<Strict>()
        .fold_error_policy_for::<Strict>(FoldErrorPolicy::LogAndContinue)
        .open()
        .await
        .expect("open");
    let strict = db.state::<Strict>();
    strict
        .wait_for_seq(last)
        .await
        .expect("goes on past it now");
    assert_eq!(strict.read().sum, 3);
    db.close().await.expect("close");
}

#[tokio::test]
async fn open_reports_the_snapshot_each_state_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || Db::builder(dir.path()).state::<Lenient>().open();
    let db = open().await.expect("open");
    let report = db.open_report().clone();
    assert_eq!(
        report.state("Lenient").map(|s| s.snapshot.clone()),
        Some(SnapshotUse::Replay)
    );
    assert!(
        report.recovery.is_some(),
        "the file store reports its recovery"
    );
    db.close().await.expect("close");
    assert!(
        !dir.path().join("snapshots").exists()
            || std::fs::read_dir(dir.path().join("snapshots/Lenient"))
                .map_or(true, |mut d| d.next().is_none()),
        "closing an empty Db writes no snapshot"
    );

    let db = open().await.expect("open");
    let last = db.append(Ev::Add(5)).await.expect("append");
    db.state::<Lenient>()
        .wait_for_seq(last)
        .await
        .expect("fold");
    db.close().await.expect("close");
    let db = open().await.expect("open");
    let started = db
        .open_report()
        .state("Lenient")
        .expect("registered")
        .clone();
    assert_eq!(started.snapshot, SnapshotUse::Used(last));
    assert_eq!(started.to_replay(), 0);
    assert!(started.rejected.is_empty());
    db.close().await.expect("close");

    // A damaged snapshot is named with why, and the state replays.
    let file = dir
        .path()
        .join(format!("snapshots/Lenient/{last:020}.snap"));
    let mut bytes = std::fs::read(&file).expect("snapshot file");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&file, bytes).expect("write");
    let db = open().await.expect("open");
    let started = db
        .open_report()
        .state("Lenient")
        .expect("registered")
        .clone();
    assert_eq!(started.snapshot, SnapshotUse::Replay);
    assert_eq!(started.rejected.len(), 1, "{started:?}");
    assert_eq!(started.rejected[0].seq, last);
    assert!(started.to_replay() >= 1);
    db.state::<Lenient>()
        .wait_for_seq(last)
        .await
        .expect("replay");
    assert_eq!(db.state::<Lenient>().read().sum, 5);
    let _: Option<DbError> = None;
    db.close().await.expect("close");
}

/// A sum whose `Deserialize` panics on 13: a user's decoder that trips over
/// bytes it did not expect.
#[derive(Serialize, Default, Debug, Clone, PartialEq)]
struct Fragile(u64);

impl<'de> Deserialize<'de> for Fragile {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = u64::deserialize(deserializer)?;
        assert_ne!(value, 13, "Fragile cannot hold 13");
        Ok(Fragile(value))
    }
}

#[derive(State, Default, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[state(event = Ev)]
struct Touchy {
    sum: Fragile,
}

impl Apply<Ev> for Touchy {
    fn apply(&mut self, event: Ev, _: &Meta) -> Result<(), FoldError> {
        if let Ev::Add(n) = event {
            self.sum.0 += n;
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_snapshot_whose_decode_panics_is_rejected_with_the_panic_and_the_state_replays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || Db::builder(dir.path()).state::<Touchy>().open();
    let db = open().await.expect("open");
    let last = db.append(Ev::Add(13)).await.expect("append");
    db.state::<Touchy>().wait_for_seq(last).await.expect("fold");
    db.close().await.expect("close (writes the snapshot)");
    assert!(
        dir.path()
            .join(format!("snapshots/Touchy/{last:020}.snap"))
            .is_file()
    );

    // Not `DbError::Closed`, not a panic: the snapshot is refused, and why.
    let db = open().await.expect("open despite the panicking decode");
    let started = db
        .open_report()
        .state("Touchy")
        .expect("registered")
        .clone();
    assert_eq!(started.snapshot, SnapshotUse::Replay);
    assert_eq!(started.rejected.len(), 1, "{started:?}");
    assert_eq!(started.rejected[0].seq, last);
    let reason = &started.rejected[0].reason;
    assert!(
        reason.contains("panicked") && reason.contains("Fragile cannot hold 13"),
        "{reason}"
    );
    db.state::<Touchy>()
        .wait_for_seq(last)
        .await
        .expect("replay");
    assert_eq!(db.state::<Touchy>().read().sum, Fragile(13));
    db.close().await.expect("close");
}
