//! Aggregates end to end: commands, optimistic concurrency, per-stream history,
//! time travel, restart, and read models that see stream ids.

use std::sync::Arc;

use foldkit::FoldCause;
use foldkit::{
    Aggregate, Apply, CodecError, Db, DbError, Event, ExecuteError, ExpectedVersion, FoldError,
    FsyncPolicy, Meta, State,
};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum AccountEvent {
    Opened { owner: String },
    Deposited { amount: u64 },
    Withdrawn { amount: u64 },
}

impl Event for AccountEvent {
    const NAME: &'static str = "account_event";
    const VERSION: u32 = 1;
    fn variant_name(&self) -> &'static str {
        match self {
            AccountEvent::Opened { .. } => "Opened",
            AccountEvent::Deposited { .. } => "Deposited",
            AccountEvent::Withdrawn { .. } => "Withdrawn",
        }
    }
    fn decode(version: u32, bytes: &[u8]) -> Result<Self, CodecError> {
        foldkit::__private::decode_oldest(version, bytes)
    }
}

#[derive(Default, Clone, Debug, PartialEq)]
struct Account {
    owner: Option<String>,
    balance: u64,
}

#[derive(Debug, PartialEq)]
enum Command {
    Open(String),
    Deposit(u64),
    Withdraw(u64),
}

#[derive(Debug, PartialEq, thiserror::Error)]
enum AccountError {
    #[error("already open")]
    AlreadyOpen,
    #[error("not open")]
    NotOpen,
    #[error("insufficient funds: balance {balance}, asked {asked}")]
    InsufficientFunds { balance: u64, asked: u64 },
}

impl Aggregate for Account {
    const NAME: &'static str = "account";
    type Event = AccountEvent;
    type Command = Command;
    type Error = AccountError;

    fn handle(&self, command: Command) -> Result<Vec<AccountEvent>, AccountError> {
        match (command, &self.owner) {
            (Command::Open(_), Some(_)) => Err(AccountError::AlreadyOpen),
            (Command::Open(owner), None) => Ok(vec![AccountEvent::Opened { owner }]),
            (_, None) => Err(AccountError::NotOpen),
            (Command::Deposit(amount), Some(_)) => Ok(vec![AccountEvent::Deposited { amount }]),
            (Command::Withdraw(asked), Some(_)) if asked > self.balance => {
                Err(AccountError::InsufficientFunds {
                    balance: self.balance,
                    asked,
                })
            }
            (Command::Withdraw(amount), Some(_)) => Ok(vec![AccountEvent::Withdrawn { amount }]),
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { owner } => self.owner = Some(owner.clone()),
            AccountEvent::Deposited { amount } => self.balance += amount,
            AccountEvent::Withdrawn { amount } => self.balance -= amount,
        }
    }
}

/// A read model over every account: balances by stream id, from `Meta`.
#[derive(Default, Serialize, Deserialize, Debug, PartialEq)]
struct Balances {
    by_stream: std::collections::BTreeMap<String, i64>,
    without_stream: u64,
}

impl Apply<AccountEvent> for Balances {
    fn apply(&mut self, event: AccountEvent, meta: &Meta) -> Result<(), FoldError> {
        let Some(stream) = meta.stream_id() else {
            self.without_stream += 1;
            return Ok(());
        };
        let entry = self.by_stream.entry(stream.to_owned()).or_default();
        match event {
            AccountEvent::Opened { .. } => {}
            AccountEvent::Deposited { amount } => *entry += amount as i64,
            AccountEvent::Withdrawn { amount } => *entry -= amount as i64,
        }
        Ok(())
    }
}

impl State for Balances {
    const NAME: &'static str = "balances";
    const VERSION: u32 = 1;
    const FINGERPRINT: u64 = 7;
    const EVENTS: &'static [foldkit::EventType] = &[foldkit::EventType::of::<AccountEvent>()];

    fn apply_recorded(
        &mut self,
        recorded: &foldkit::__private::RecordedEvent,
        meta: &Meta,
    ) -> Result<bool, FoldCause> {
        let Some(event) = foldkit::__private::decode_if::<AccountEvent>(recorded)? else {
            return Ok(false);
        };
        self.apply(event, meta).map_err(FoldCause::Apply)?;
        Ok(true)
    }
}

async fn open(dir: &std::path::Path) -> Db {
    Db::builder(dir)
        .fsync(FsyncPolicy::Never)
        .aggregate::<Account>()
        .state::<Balances>()
        .open()
        .await
        .expect("open")
}

#[tokio::test]
async fn commands_append_events_and_history_reads_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let accounts = db.aggregate::<Account>();
    assert!(!accounts.exists("alice").await.expect("exists"));

    let opened = accounts
        .execute("alice", Command::Open("Alice".into()))
        .await
        .expect("open");
    assert_eq!(opened.version, 1);
    assert_eq!(
        opened.events,
        vec![AccountEvent::Opened {
            owner: "Alice".into()
        }]
    );
    accounts
        .execute("alice", Command::Deposit(100))
        .await
        .expect("deposit");
    let done = accounts
        .execute("alice", Command::Withdraw(30))
        .await
        .expect("withdraw");
    assert_eq!((done.version, done.state.balance), (3, 70));

    let history = accounts.events("alice").await.expect("events");
    let events: Vec<_> = history.iter().map(|s| s.event.clone()).collect();
    assert_eq!(
        events,
        vec![
            AccountEvent::Opened {
                owner: "Alice".into()
            },
            AccountEvent::Deposited { amount: 100 },
            AccountEvent::Withdrawn { amount: 30 },
        ]
    );
    let versions: Vec<u64> = history.iter().map(|s| s.stream_version).collect();
    assert_eq!(versions, vec![1, 2, 3]);
    assert!(
        history
            .iter()
            .all(|s| s.meta.stream_id() == Some("account/alice"))
    );
    assert!(history.windows(2).all(|w| w[0].meta.seq < w[1].meta.seq));
    assert!(accounts.exists("alice").await.expect("exists"));
    assert!(accounts.events("bob").await.expect("events").is_empty());
    db.close().await.expect("close");
}

#[tokio::test]
async fn a_rejected_command_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let accounts = db.aggregate::<Account>();
    accounts
        .execute("a", Command::Open("A".into()))
        .await
        .expect("open");
    accounts
        .execute("a", Command::Deposit(10))
        .await
        .expect("deposit");
    let before = db.stream_version("account/a").await.expect("version");

    let error = accounts
        .execute("a", Command::Withdraw(11))
        .await
        .expect_err("must be rejected");
    assert_eq!(
        error.rejected(),
        Some(&AccountError::InsufficientFunds {
            balance: 10,
            asked: 11
        })
    );
    let error = accounts
        .execute("nobody", Command::Deposit(1))
        .await
        .expect_err("not open");
    assert!(matches!(
        error,
        ExecuteError::Rejected(AccountError::NotOpen)
    ));

    assert_eq!(
        db.stream_version("account/a").await.expect("version"),
        before
    );
    assert_eq!(accounts.events("a").await.expect("events").len(), 2);
    assert!(!accounts.exists("nobody").await.expect("exists"));
    // The cached state is still right after a rejection.
    let next = accounts
        .execute("a", Command::Withdraw(10))
        .await
        .expect("withdraw");
    assert_eq!((next.version, next.state.balance), (3, 0));
    db.close().await.expect("close");
}

#[tokio::test]
async fn append_to_detects_conflicts_and_writes_nothing_then() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let deposit = |amount| AccountEvent::Deposited { amount };
    let first = db
        .append_to("s", ExpectedVersion::NoStream, [deposit(1), deposit(2)])
        .await
        .expect("first");
    assert_eq!(first.version, 2);
    assert_eq!(first.seqs.clone().count(), 2);

    let conflict = db
        .append_to("s", ExpectedVersion::NoStream, [deposit(3)])
        .await;
    assert!(
        matches!(&conflict, Err(DbError::Conflict { stream, expected: ExpectedVersion::NoStream, actual: 2 }) if stream == "s"),
        "{conflict:?}"
    );
    let conflict = db
        .append_to("s", ExpectedVersion::Exact(1), [deposit(3)])
        .await;
    assert!(
        matches!(conflict, Err(DbError::Conflict { actual: 2, .. })),
        "{conflict:?}"
    );
    assert_eq!(db.stream_version("s").await.expect("version"), 2);

    let exact = db
        .append_to("s", ExpectedVersion::Exact(2), [deposit(3)])
        .await
        .expect("exact");
    let any = db
        .append_to("s", ExpectedVersion::Any, [deposit(4)])
        .await
        .expect("any");
    assert_eq!((exact.version, any.version), (3, 4));
    assert!(matches!(
        db.append_to("", ExpectedVersion::Any, [deposit(1)]).await,
        Err(DbError::EmptyStreamId)
    ));
    let empty: [AccountEvent; 0] = [];
    assert!(matches!(
        db.append_to("s", ExpectedVersion::Any, empty).await,
        Err(DbError::EmptyBatch { .. })
    ));
    assert_eq!(db.stream_version("s").await.expect("version"), 4);
    db.close().await.expect("close");
}

#[tokio::test]
async fn execute_expecting_runs_only_at_the_expected_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let accounts = db.aggregate::<Account>();
    let opened = accounts
        .execute_expecting("a", ExpectedVersion::NoStream, Command::Open("A".into()))
        .await
        .expect("open a new account");
    assert_eq!(opened.version, 1);

    let stale = accounts
        .execute_expecting("a", ExpectedVersion::NoStream, Command::Deposit(5))
        .await;
    assert!(
        matches!(&stale, Err(ExecuteError::Db(DbError::Conflict { stream, expected: ExpectedVersion::NoStream, actual: 1 })) if stream == "account/a"),
        "{stale:?}"
    );
    let stale = accounts
        .execute_expecting("a", ExpectedVersion::Exact(0), Command::Deposit(5))
        .await;
    assert!(
        matches!(
            stale,
            Err(ExecuteError::Db(DbError::Conflict { actual: 1, .. }))
        ),
        "{stale:?}"
    );
    assert_eq!(
        accounts.load("a").await.expect("load").version,
        1,
        "a conflict writes nothing"
    );

    let deposited = accounts
        .execute_expecting("a", ExpectedVersion::Exact(1), Command::Deposit(5))
        .await
        .expect("deposit at version 1");
    assert_eq!((deposited.version, deposited.state.balance), (2, 5));
    // At the right version, the domain still decides.
    let refused = accounts
        .execute_expecting("a", ExpectedVersion::Exact(2), Command::Withdraw(50))
        .await;
    assert!(refused.is_err_and(|e| e.rejected().is_some()));
    db.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_on_one_instance_lose_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let accounts = db.aggregate::<Account>();
    accounts
        .execute("hot", Command::Open("Hot".into()))
        .await
        .expect("open");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let accounts = accounts.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..1_000 {
                accounts
                    .execute("hot", Command::Deposit(1))
                    .await
                    .expect("deposit");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let loaded = accounts.load("hot").await.expect("load");
    assert_eq!((loaded.state.balance, loaded.version), (8_000, 8_001));
    let history = accounts.events("hot").await.expect("events");
    assert_eq!(history.len(), 8_001);
    assert!(
        history.windows(2).all(|w| w[0].meta.seq < w[1].meta.seq),
        "events never interleave out of order"
    );
    db.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_instances_proceed_independently() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let accounts = db.aggregate::<Account>();
    let mut tasks = Vec::new();
    for i in 0..50u64 {
        let accounts = accounts.clone();
        tasks.push(tokio::spawn(async move {
            accounts
                .execute(i, Command::Open(format!("owner {i}")))
                .await
                .expect("open");
            for _ in 0..i {
                accounts
                    .execute(i, Command::Deposit(2))
                    .await
                    .expect("deposit");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    for i in 0..50u64 {
        let loaded = accounts.load(i).await.expect("load");
        assert_eq!((loaded.state.balance, loaded.version), (2 * i, i + 1));
    }
    db.close().await.expect("close");
}

#[tokio::test]
async fn history_and_versions_survive_a_restart_and_time_travel_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = open(dir.path()).await;
        let accounts = db.aggregate::<Account>();
        accounts
            .execute("x", Command::Open("X".into()))
            .await
            .expect("open");
        for amount in [5, 7, 11] {
            accounts
                .execute("x", Command::Deposit(amount))
                .await
                .expect("deposit");
        }
        db.append(AccountEvent::Deposited { amount: 1000 })
            .await
            .expect("an event on no stream");
        db.close().await.expect("close");
    }
    let db = open(dir.path()).await;
    let accounts = db.aggregate::<Account>();
    let loaded = accounts.load("x").await.expect("load");
    assert_eq!((loaded.state.balance, loaded.version), (23, 4));
    let at_two = accounts.load_at("x", 2).await.expect("load_at");
    assert_eq!((at_two.state.balance, at_two.version), (5, 2));
    let at_zero = accounts.load_at("x", 0).await.expect("load_at");
    assert_eq!((at_zero.state, at_zero.version), (Account::default(), 0));
    let past_end = accounts.load_at("x", 99).await.expect("load_at");
    assert_eq!(past_end.version, 4);

    // Writes continue at the right version after the restart.
    let next = accounts
        .execute("x", Command::Withdraw(3))
        .await
        .expect("withdraw");
    assert_eq!((next.version, next.state.balance), (5, 20));
    let stale = db
        .append_to(
            "account/x",
            ExpectedVersion::Exact(4),
            [AccountEvent::Deposited { amount: 1 }],
        )
        .await;
    assert!(matches!(stale, Err(DbError::Conflict { actual: 5, .. })));
    db.close().await.expect("close");
}

#[tokio::test]
async fn read_models_see_stream_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let accounts = db.aggregate::<Account>();
    accounts
        .execute("a", Command::Open("A".into()))
        .await
        .expect("open");
    accounts
        .execute("a", Command::Deposit(40))
        .await
        .expect("deposit");
    accounts
        .execute("b", Command::Open("B".into()))
        .await
        .expect("open");
    let last = accounts
        .execute("b", Command::Deposit(2))
        .await
        .expect("deposit");
    let seq = db
        .append(AccountEvent::Deposited { amount: 9 })
        .await
        .expect("append");
    let balances = db.state::<Balances>();
    balances
        .wait_for_seq(seq.max(*last.seqs.expect("seqs").end()))
        .await
        .expect("wait");
    let view = balances.read();
    let expected: std::collections::BTreeMap<String, i64> =
        [("account/a".to_owned(), 40), ("account/b".to_owned(), 2)]
            .into_iter()
            .collect();
    assert_eq!(view.by_stream, expected);
    assert_eq!(view.without_stream, 1);
    drop(view);
    let shared = Arc::new(db);
    shared.close().await.expect("close");
}

#[tokio::test]
async fn the_first_command_after_a_reopen_replays_the_stream_and_appends_at_its_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = open(dir.path()).await;
        let accounts = db.aggregate::<Account>();
        accounts
            .execute("x", Command::Open("X".into()))
            .await
            .expect("open");
        // Events of `x` one by one and in batches, with 0 to 70 events of other
        // streams between them (nearer and farther than one read's range).
        for round in 0..12u64 {
            let deposits =
                (0..1 + round % 3).map(|k| AccountEvent::Deposited { amount: round + k });
            let version = accounts.load("x").await.expect("load").version;
            db.append_to("account/x", ExpectedVersion::Exact(version), deposits)
                .await
                .expect("append to x");
            for other in 0..(round * 37) % 71 {
                db.append_to(
                    &format!("account/other-{round}-{other}"),
                    ExpectedVersion::NoStream,
                    [AccountEvent::Opened { owner: "O".into() }],
                )
                .await
                .expect("append to another stream");
            }
        }
        db.close().await.expect("close");
    }
    // What the history holds: 1 + (1 + 2 + 3) * 4 events, the sum of every deposit.
    let (events, balance) = (
        25,
        (0..12u64)
            .map(|r| (0..1 + r % 3).map(|k| r + k).sum::<u64>())
            .sum::<u64>(),
    );

    let db = open(dir.path()).await;
    let accounts = db.aggregate::<Account>();
    // The first call on the instance is a command (nothing cached, no `load`).
    let done = accounts
        .execute("x", Command::Withdraw(1))
        .await
        .expect("withdraw");
    assert_eq!(
        (done.version, done.state.balance),
        (events + 1, balance - 1)
    );
    // A client that decided on the version before that command conflicts, and
    // writes nothing.
    let stale = accounts
        .execute_expecting("x", ExpectedVersion::Exact(events), Command::Withdraw(1))
        .await
        .expect_err("a stale version");
    assert!(stale.is_conflict(), "{stale:?}");
    let Some(DbError::Conflict { actual, .. }) = stale.db_error() else {
        panic!("expected a conflict, got {stale:?}");
    };
    assert_eq!(*actual, events + 1);
    assert_eq!(
        accounts.events("x").await.expect("events").len() as u64,
        events + 1
    );
    // An instance with no stream: version 0 after the reopen too.
    let refused = accounts
        .execute("nobody", Command::Deposit(1))
        .await
        .expect_err("not open");
    assert_eq!(refused.rejected(), Some(&AccountError::NotOpen));
    let opened = accounts
        .execute_expecting(
            "nobody",
            ExpectedVersion::NoStream,
            Command::Open("N".into()),
        )
        .await
        .expect("open");
    assert_eq!(opened.version, 1);
    db.close().await.expect("close");
}
