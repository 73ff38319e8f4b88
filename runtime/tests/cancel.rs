//! Cancel safety of every public async method of `Db`, `Handle`, `Aggregates`
//! and `DbBuilder::open` (issue 14, item 1).
//!
//! Each method's future is polled once, then dropped; then polled twice and
//! dropped; ... until it completes within the polls allowed. After every drop
//! the Db must still work: appends complete, states fold, aggregate streams are
//! not left locked, versions agree, a state equals its replay (`state_at`), and
//! at the end `close()` completes and a reopen gives the same state and versions.
//! The matrix printed (`--nocapture`) gives, per method and policy, how many
//! drop points (pending polls) were exercised.

use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::time::Duration;

use foldkit::prelude::*;
use foldkit::{Aggregates, DbError, Seq};
use futures::FutureExt;
use futures::future::LocalBoxFuture;

mod common;
use common::{Ev, Sum};

/// The fsync policies every case runs under.
const POLICIES: [FsyncPolicy; 3] = [
    FsyncPolicy::Never,
    FsyncPolicy::EveryN(3),
    FsyncPolicy::Always,
];

/// A domain refusal of the test aggregate.
#[derive(Debug, thiserror::Error)]
#[error("zero is not an amount")]
struct Zero;

/// The most polls tried per method before it must have completed.
const MAX_POLLS: usize = 48;
/// Polls after this many are spaced by growing pauses (1 ms, 2 ms, .. 128 ms),
/// so that futures waiting for an fsync or a blocking task complete within `MAX_POLLS`.
const QUICK_POLLS: usize = 24;
/// Nothing a check does may take longer than this: longer is a hang.
const LIMIT: Duration = Duration::from_secs(10);

#[derive(Default, Clone, Debug, PartialEq)]
struct Counter {
    total: u64,
}

impl Aggregate for Counter {
    const NAME: &'static str = "counter";
    type Event = Ev;
    type Command = u64;
    type Error = Zero;
    fn handle(&self, add: u64) -> Result<Vec<Ev>, Zero> {
        match add {
            0 => Err(Zero),
            n => Ok(vec![Ev::Add(n), Ev::Add(1)]),
        }
    }
    fn apply(&mut self, Ev::Add(n): &Ev) {
        self.total += n;
    }
}

async fn within<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(LIMIT, future)
        .await
        .unwrap_or_else(|_| panic!("{what} hung after a dropped future"))
}

/// Polls `future` at most `polls` times, letting the runtime run between polls,
/// then drops it. Returns whether it completed.
async fn poll_then_drop<F: Future>(future: F, polls: usize) -> bool {
    let mut future = pin!(future);
    for poll in 1..=polls {
        if futures::poll!(future.as_mut()).is_ready() {
            return true;
        }
        if poll < polls {
            if poll < QUICK_POLLS {
                tokio::task::yield_now().await;
            } else {
                // Then ever longer pauses, so a method that waits for fsyncs or
                // the blocking pool is dropped at its later await points too.
                let shift = (poll - QUICK_POLLS).min(7) as u32;
                tokio::time::sleep(Duration::from_millis(1 << shift)).await;
            }
        }
    }
    false
}

async fn open(dir: &Path, policy: FsyncPolicy) -> Db {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let opened = Db::builder(dir)
            .fsync(policy)
            .snapshot_on_close(false)
            .state::<Sum>()
            .aggregate::<Counter>()
            .open()
            .await;
        match opened {
            Ok(db) => return db,
            // A dropped open may still hold the directory briefly: its Db is
            // dropped, and the logs are released once its fold tasks end.
            Err(DbError::AlreadyOpen { .. } | DbError::Store(_))
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err(error) => panic!("reopen failed: {error:?}"),
        }
    }
}

/// What must survive a close and a reopen.
#[derive(Debug, PartialEq)]
struct Observed {
    total: Sum,
    last: Option<Seq>,
    counter: (Counter, u64),
    raw_version: u64,
}

struct Fixture {
    dir: tempfile::TempDir,
    policy: FsyncPolicy,
    db: Db,
}

impl Fixture {
    async fn new(policy: FsyncPolicy) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(dir.path(), policy).await;
        let fixture = Fixture { dir, policy, db };
        fixture.check().await;
        fixture
    }

    fn total(&self) -> Handle<Sum> {
        self.db.state::<Sum>()
    }

    fn counters(&self) -> Aggregates<Counter> {
        self.db.aggregate::<Counter>()
    }

    /// Everything still works and agrees.
    async fn check(&self) {
        let db = &self.db;
        let seq = within("append", db.append(Ev::Add(1)))
            .await
            .expect("append");
        let total = self.total();
        within("wait_for_seq", total.wait_for_seq(seq))
            .await
            .expect("fold");
        let replayed = within("state_at", total.state_at(seq))
            .await
            .expect("state_at");
        assert_eq!(replayed, *total.read(), "state differs from its replay");
        let counters = self.counters();
        within("execute", counters.execute("a", 2))
            .await
            .expect("the stream must not be left locked");
        let loaded = within("load", counters.load("a")).await.expect("load");
        let events = within("events", counters.events("a"))
            .await
            .expect("events");
        assert_eq!(loaded.version, events.len() as u64, "versions disagree");
        let replay = within("load_at", counters.load_at("a", u64::MAX))
            .await
            .expect("load_at");
        assert_eq!(
            loaded, replay,
            "cached aggregate state differs from its replay"
        );
        within(
            "append_to",
            db.append_to("raw/x", ExpectedVersion::Any, [Ev::Add(3)]),
        )
        .await
        .expect("append_to");
    }

    async fn observe(&self) -> Observed {
        let last = within("last_seq", self.db.last_seq())
            .await
            .expect("last_seq");
        if let Some(seq) = last {
            within("wait_for_seq", self.total().wait_for_seq(seq))
                .await
                .expect("fold");
        }
        let loaded = within("load", self.counters().load("a"))
            .await
            .expect("load");
        Observed {
            total: self.total().read().clone(),
            last,
            counter: (loaded.state, loaded.version),
            raw_version: within("stream_version", self.db.stream_version("raw/x"))
                .await
                .expect("stream_version"),
        }
    }

    /// Close completes, and a reopen gives the same state and versions.
    async fn finish(self) {
        let before = self.observe().await;
        within("close", self.db.close()).await.expect("close");
        let db = open(self.dir.path(), self.policy).await;
        let reopened = Fixture {
            dir: self.dir,
            policy: self.policy,
            db,
        };
        assert_eq!(reopened.observe().await, before, "reopen differs");
        within("close", reopened.db.close()).await.expect("close");
    }

    /// The future of `method`, after any preparation it needs.
    async fn start(&self, method: Method) -> LocalBoxFuture<'_, ()> {
        let db = &self.db;
        let counters = self.counters();
        let total = self.total();
        match method {
            Method::Append => db.append(Ev::Add(10)).map(drop).boxed_local(),
            Method::AppendBatch => db
                .append_batch([Ev::Add(11), Ev::Add(12)])
                .map(drop)
                .boxed_local(),
            Method::AppendTo => db
                .append_to("raw/x", ExpectedVersion::Any, [Ev::Add(13), Ev::Add(14)])
                .map(drop)
                .boxed_local(),
            Method::StreamVersion => db.stream_version("raw/x").map(drop).boxed_local(),
            Method::ReadStream => db.read_stream::<Ev>("counter/a").map(drop).boxed_local(),
            Method::ReadStreamUntil => db
                .read_stream_until::<Ev>("counter/a", 1)
                .map(drop)
                .boxed_local(),
            Method::Compact => db.compact().map(drop).boxed_local(),
            Method::WaitForSeq => {
                // Far enough ahead that the waiter cannot fold it itself.
                let seqs = db
                    .append_batch((0..200).map(Ev::Add))
                    .await
                    .expect("append");
                async move { drop(total.wait_for_seq(*seqs.end()).await) }.boxed_local()
            }
            Method::StateAt => {
                let seq = db.last_seq().await.expect("last").unwrap_or(1);
                async move { drop(total.state_at(seq).await) }.boxed_local()
            }
            Method::StateAtTime => {
                async move { drop(total.state_at_time(u64::MAX).await) }.boxed_local()
            }
            Method::LastSeq => db.last_seq().map(drop).boxed_local(),
            Method::AppendWith => db
                .append_with(Ev::Add(15), foldkit::EventContext::new().actor("test"))
                .map(drop)
                .boxed_local(),
            Method::ExecuteWith => async move {
                drop(
                    counters
                        .execute_with("a", 7, foldkit::EventContext::new().correlation_id("c"))
                        .await,
                )
            }
            .boxed_local(),
            Method::Bundle => db.snapshot().map(drop).boxed_local(),
            Method::SnapshotToDisk => db.snapshot_to_disk().map(drop).boxed_local(),
            Method::VerifyChain => db.verify_chain().map(drop).boxed_local(),
            Method::WaitFor => {
                let executed = counters.execute("a", 2).await.expect("execute");
                async move { drop(total.wait_for(&executed).await) }.boxed_local()
            }
            Method::Execute => async move { drop(counters.execute("a", 5).await) }.boxed_local(),
            Method::ExecuteExpecting => {
                let version = counters.load("a").await.expect("load").version;
                async move {
                    drop(
                        counters
                            .execute_expecting("a", ExpectedVersion::Exact(version), 6)
                            .await,
                    )
                }
                .boxed_local()
            }
            Method::ExecuteRejected => {
                async move { drop(counters.execute("a", 0).await) }.boxed_local()
            }
            Method::Load => async move { drop(counters.load("a").await) }.boxed_local(),
            Method::LoadAt => async move { drop(counters.load_at("a", 2).await) }.boxed_local(),
            Method::Events => async move { drop(counters.events("a").await) }.boxed_local(),
            Method::Exists => async move { drop(counters.exists("b").await) }.boxed_local(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Method {
    Append,
    AppendBatch,
    AppendTo,
    StreamVersion,
    ReadStream,
    ReadStreamUntil,
    Compact,
    WaitForSeq,
    StateAt,
    Execute,
    ExecuteExpecting,
    ExecuteRejected,
    Load,
    LoadAt,
    Events,
    Exists,
    StateAtTime,
    LastSeq,
    AppendWith,
    ExecuteWith,
    Bundle,
    SnapshotToDisk,
    VerifyChain,
    WaitFor,
}

const METHODS: [Method; 24] = [
    Method::Append,
    Method::AppendBatch,
    Method::AppendTo,
    Method::StreamVersion,
    Method::ReadStream,
    Method::ReadStreamUntil,
    Method::Compact,
    Method::WaitForSeq,
    Method::StateAt,
    Method::Execute,
    Method::ExecuteExpecting,
    Method::ExecuteRejected,
    Method::Load,
    Method::LoadAt,
    Method::Events,
    Method::Exists,
    Method::StateAtTime,
    Method::LastSeq,
    Method::AppendWith,
    Method::ExecuteWith,
    Method::Bundle,
    Method::SnapshotToDisk,
    Method::VerifyChain,
    Method::WaitFor,
];

/// Drops `method` at each of its await points in turn; returns how many
/// pending polls (drop points) it had.
async fn drop_at_every_point(fixture: &Fixture, method: Method) -> usize {
    for polls in 1..=MAX_POLLS {
        let future = fixture.start(method).await;
        let completed = poll_then_drop(future, polls).await;
        fixture.check().await;
        if completed {
            return polls - 1;
        }
    }
    panic!("{method:?} did not complete within {MAX_POLLS} polls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_survives_a_drop_at_every_await_point() {
    let mut matrix = Vec::new();
    for policy in POLICIES {
        for method in METHODS {
            let fixture = Fixture::new(policy).await;
            let points = drop_at_every_point(&fixture, method).await;
            fixture.finish().await;
            matrix.push(format!("{policy:?} {method:?}: {points} drop point(s)"));
        }
    }
    eprintln!(
        "cancel matrix (methods x pending polls dropped):\n{}",
        matrix.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_close_is_finished_by_the_next_close() {
    let mut matrix = Vec::new();
    for policy in POLICIES {
        let mut points = None;
        for polls in 1..=MAX_POLLS {
            let fixture = Fixture::new(policy).await;
            let before = fixture.observe().await;
            let completed = poll_then_drop(fixture.db.close(), polls).await;
            // Whatever the drop point: appends are refused or land, never hang,
            // and the next close finishes the job (sync, folds, lock).
            let appended = within("append", fixture.db.append(Ev::Add(1))).await;
            assert!(
                matches!(appended, Err(DbError::Closed)),
                "an append after a started close: {appended:?}"
            );
            within("close", fixture.db.close()).await.expect("close");
            let db = open(fixture.dir.path(), policy).await;
            let reopened = Fixture {
                dir: fixture.dir,
                policy,
                db,
            };
            assert_eq!(reopened.observe().await, before, "reopen differs");
            within("close", reopened.db.close()).await.expect("close");
            if completed {
                points = Some(polls - 1);
                break;
            }
        }
        let points = points.expect("close completes within MAX_POLLS polls");
        matrix.push(format!("{policy:?} close: {points} drop point(s)"));
    }
    eprintln!("{}", matrix.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_open_leaves_the_directory_usable() {
    for policy in POLICIES {
        let fixture = Fixture::new(policy).await;
        let before = fixture.observe().await;
        within("close", fixture.db.close()).await.expect("close");
        let mut points = None;
        for polls in 1..=MAX_POLLS {
            let opening = Db::builder(fixture.dir.path())
                .fsync(policy)
                .snapshot_on_close(false)
                .state::<Sum>()
                .aggregate::<Counter>()
                .open();
            let completed = poll_then_drop(opening, polls).await;
            let db = open(fixture.dir.path(), policy).await;
            let reopened = Fixture {
                dir: tempfile::tempdir().expect("placeholder"),
                policy,
                db,
            };
            assert_eq!(reopened.observe().await, before, "reopen differs");
            within("close", reopened.db.close()).await.expect("close");
            if completed {
                points = Some(polls - 1);
                break;
            }
        }
        let points = points.expect("open completes within MAX_POLLS polls");
        eprintln!("{policy:?} open: {points} drop point(s)");
    }
}
