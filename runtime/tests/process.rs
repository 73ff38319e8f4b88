//! Process managers end to end over the file store: reactions with their
//! context, once-only effect after a lost checkpoint, retries and dead letters
//! (durable, retried, discarded), and the checks made at open.

use std::time::Duration;

use foldkit::prelude::*;
use foldkit::process::{
    Declare, ProcessError, ProcessManager, ProcessOptions, Reacts, RetryPolicy,
};
use foldkit::{Reaction, StoredEvent};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
enum Signup {
    Registered { user: String },
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
enum GateEvent {
    Opened,
    Passed { user: String },
}

/// A gate that refuses passage until it is opened, and lets each user pass once.
#[derive(Default, Clone)]
struct Gate {
    open: bool,
    passed: std::collections::HashSet<String>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum GateCommand {
    Open,
    Pass(String),
}

#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("the gate is closed")]
    Closed,
    #[error("{0} passed already")]
    Again(String),
}

impl Aggregate for Gate {
    const NAME: &'static str = "gate";
    type Event = GateEvent;
    type Command = GateCommand;
    type Error = Refused;
    fn handle(&self, command: GateCommand) -> Result<Vec<GateEvent>, Refused> {
        match command {
            GateCommand::Open => Ok(vec![GateEvent::Opened]),
            GateCommand::Pass(user) if self.passed.contains(&user) => Err(Refused::Again(user)),
            GateCommand::Pass(user) if self.open => Ok(vec![GateEvent::Passed { user }]),
            GateCommand::Pass(_) => Err(Refused::Closed),
        }
    }
    fn apply(&mut self, event: &GateEvent) {
        match event {
            GateEvent::Opened => self.open = true,
            GateEvent::Passed { user } => {
                self.passed.insert(user.clone());
            }
        }
    }
}

/// On every signup: let the user through the gate.
struct Admit;

impl ProcessManager for Admit {
    const NAME: &'static str = "admit";
    type State = u64;
    fn declare(d: &mut Declare<Self>) {
        d.on::<Signup>().commands::<Gate>();
    }
}

impl Reacts<Signup> for Admit {
    fn apply(seen: &mut u64, _: &Signup, _: &Meta) {
        *seen += 1;
    }
    fn react(_: &u64, Signup::Registered { user }: &Signup, _: &Meta) -> Vec<Reaction> {
        vec![Reaction::command::<Gate>(
            "main",
            &GateCommand::Pass(user.clone()),
        )]
    }
}

fn options() -> ProcessOptions {
    ProcessOptions::default()
        .retry(RetryPolicy::new(
            3,
            Duration::from_millis(1),
            Duration::from_millis(4),
        ))
        // No checkpoint but at close: a crash loses every checkpoint after the start.
        .checkpoints(u64::MAX, Duration::from_secs(3600))
}

async fn open(dir: &std::path::Path) -> Db {
    open_with(dir, options()).await
}

async fn open_with(dir: &std::path::Path, options: ProcessOptions) -> Db {
    Db::builder(dir)
        .fsync(FsyncPolicy::Never)
        .aggregate::<Gate>()
        .process_manager_with::<Admit>(options)
        .open()
        .await
        .expect("open")
}

async fn passed(db: &Db) -> Vec<StoredEvent<GateEvent>> {
    let mut all = db.aggregate::<Gate>().events("main").await.unwrap();
    all.retain(|e| matches!(e.event, GateEvent::Passed { .. }));
    all
}

#[tokio::test]
async fn a_reaction_carries_its_causation_correlation_and_actor() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    db.aggregate::<Gate>()
        .execute("main", GateCommand::Open)
        .await
        .unwrap();
    let cause = db
        .append_to(
            "signup/ada",
            ExpectedVersion::Any,
            [Signup::Registered { user: "ada".into() }],
        )
        .await
        .unwrap();
    let admit = db.process_manager::<Admit>().unwrap();
    admit.settle().await.unwrap();
    let passed = passed(&db).await;
    assert_eq!(passed.len(), 1);
    let meta = &passed[0].meta;
    assert_eq!(meta.causation(), Some(*cause.seqs.start()));
    assert_eq!(meta.correlation_id(), Some("signup/ada")); // the causing event's stream
    assert_eq!(meta.actor(), Some("process-manager:admit"));
    assert_eq!(admit.read(|seen| *seen), 1);
    db.close().await.unwrap();
}

/// Rolls the manager's checkpoint back to nothing, as a crash right after its
/// reactions and before its checkpoint would.
async fn lose_checkpoints(dir: &std::path::Path) {
    let db = Db::builder(dir).open().await.unwrap();
    let store = db.store();
    for position in store.list_snapshots("process-manager.admit").await.unwrap() {
        store
            .remove_snapshot("process-manager.admit", position)
            .await
            .unwrap();
    }
    db.close().await.unwrap();
}

#[tokio::test]
async fn a_redelivery_after_a_lost_checkpoint_appends_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    db.aggregate::<Gate>()
        .execute("main", GateCommand::Open)
        .await
        .unwrap();
    for user in ["ada", "bob", "cy"] {
        db.append(Signup::Registered { user: user.into() })
            .await
            .unwrap();
    }
    db.process_manager::<Admit>()
        .unwrap()
        .settle()
        .await
        .unwrap();
    assert_eq!(passed(&db).await.len(), 3);
    db.close().await.unwrap();

    lose_checkpoints(dir.path()).await;
    // One try only: no retry (and its look in the log) to hide a second dispatch.
    let once = RetryPolicy::new(1, Duration::ZERO, Duration::ZERO);
    let db = open_with(dir.path(), options().retry(once)).await;
    let admit = db.process_manager::<Admit>().unwrap();
    admit.settle().await.unwrap();
    // Every signup is redelivered (the state counts them again) ...
    assert_eq!(admit.read(|seen| *seen), 3);
    // ... but each reaction took effect once, and was not even tried again (the
    // gate would refuse a second pass: the idempotency key alone would not do).
    assert_eq!(passed(&db).await.len(), 3);
    assert!(
        db.dead_letters().list().is_empty(),
        "{:?}",
        db.dead_letters().list()
    );
    db.close().await.unwrap();
}

#[tokio::test]
async fn a_failing_reaction_is_parked_durably_then_retried_or_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    // The gate is closed: every Pass is rejected, retried, then parked.
    db.append(Signup::Registered { user: "ada".into() })
        .await
        .unwrap();
    db.append(Signup::Registered { user: "bob".into() })
        .await
        .unwrap();
    let admit = db.process_manager::<Admit>().unwrap();
    admit.settle().await.unwrap();
    let dead = db.dead_letters().list();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(dead[0].id.to_string(), "admit@1#0");
    assert_eq!(dead[0].attempts, 3);
    assert!(
        dead[0].error.contains("the gate is closed"),
        "{}",
        dead[0].error
    );
    let (id, command) = dead[0].reaction.as_command::<Gate>().unwrap();
    assert_eq!((id, command), ("main", GateCommand::Pass("ada".into())));
    db.close().await.unwrap();

    // Parked letters survive a restart.
    let db = open(dir.path()).await;
    let dead = db.dead_letters().list();
    assert_eq!(dead.len(), 2);
    // Still closed: a retry fails and the letter stays.
    let again = db.dead_letters().retry(&dead[0].id).await.unwrap_err();
    assert!(matches!(again, ProcessError::RetryFailed { .. }), "{again}");
    assert_eq!(db.dead_letters().list()[0].attempts, 4);
    // Open the gate: the retry goes through, with the original causation.
    db.aggregate::<Gate>()
        .execute("main", GateCommand::Open)
        .await
        .unwrap();
    db.dead_letters().retry(&dead[0].id).await.unwrap();
    let passed = passed(&db).await;
    assert_eq!(passed.len(), 1);
    assert_eq!(passed[0].meta.causation(), Some(1));
    // Discard the other; an unknown id is a typed error.
    db.dead_letters().discard(&dead[1].id).await.unwrap();
    assert!(db.dead_letters().list().is_empty());
    let unknown = db.dead_letters().discard(&dead[1].id).await.unwrap_err();
    assert!(
        matches!(unknown, ProcessError::UnknownDeadLetter { .. }),
        "{unknown}"
    );
    db.close().await.unwrap();

    let db = open(dir.path()).await;
    assert!(
        db.dead_letters().list().is_empty(),
        "the resolution is durable"
    );
    db.close().await.unwrap();
}

#[tokio::test]
async fn a_manager_commanding_an_unregistered_aggregate_fails_at_open_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let error = Db::builder(dir.path())
        .process_manager::<Admit>()
        .open()
        .await
        .unwrap_err();
    match &error {
        DbError::Process(ProcessError::UnregisteredAggregate {
            process_manager,
            aggregate,
            ..
        }) => assert_eq!((*process_manager, *aggregate), ("admit", "gate")),
        other => panic!("{other:?}"),
    }
    assert!(error.to_string().contains(".aggregate::<"), "{error}");
}

struct Unstorable;

impl ProcessManager for Unstorable {
    const NAME: &'static str =
        "////////////////////////////////////////////////////////////////////";
    type State = ();
    fn declare(d: &mut Declare<Self>) {
        d.on::<Signup>();
    }
}

impl Reacts<Signup> for Unstorable {
    fn react(_: &(), _: &Signup, _: &Meta) -> Vec<Reaction> {
        Vec::new()
    }
}

#[tokio::test]
async fn a_manager_name_the_store_refuses_fails_at_open_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let error = Db::builder(dir.path())
        .process_manager::<Unstorable>()
        .open()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DbError::Process(ProcessError::InvalidName { name, .. }) if *name == Unstorable::NAME),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_db_dropped_without_close_stops_its_managers_and_frees_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    db.append(Signup::Registered { user: "ada".into() })
        .await
        .unwrap();
    db.process_manager::<Admit>()
        .unwrap()
        .settle()
        .await
        .unwrap();
    drop(db);
    // The manager's task ends with the Db, and with it its hold on the store.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match Db::builder(dir.path()).aggregate::<Gate>().open().await {
            Ok(db) => break db.close().await.unwrap(),
            Err(e) if e.is_already_open() && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("the directory stays locked: {e}"),
        }
    }
}

#[tokio::test]
async fn a_snapshot_in_the_unreleased_format_1_is_refused_naming_it_never_misread() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    for user in ["ada", "bob"] {
        db.append(Signup::Registered { user: user.into() })
            .await
            .unwrap();
    }
    db.process_manager::<Admit>()
        .unwrap()
        .settle()
        .await
        .unwrap();
    let letters = db.dead_letters().list();
    assert_eq!(letters.len(), 2);
    db.close().await.unwrap();

    // Replace the snapshots by the layout of development builds before format 2
    // (the bare postcard of (1, state, dead letters), no checksum, no name):
    // never released, so it is not read.
    #[derive(Serialize)]
    struct Old<'a> {
        format: u32,
        state: u64,
        dead: &'a [foldkit::process::DeadLetter],
    }
    let name = "process-manager.admit";
    let db = Db::builder(dir.path()).open().await.unwrap();
    let store = db.store();
    let positions = store.list_snapshots(name).await.unwrap();
    for position in &positions {
        store.remove_snapshot(name, *position).await.unwrap();
    }
    let old = postcard::to_allocvec(&Old {
        format: 1,
        state: 2,
        dead: &letters,
    })
    .unwrap();
    store.write_snapshot(name, positions[0], old).await.unwrap();
    db.close().await.unwrap();

    // Bytes that merely start like it are malformed: open names the manager,
    // the snapshot and why, and restores nothing.
    let error = Db::builder(dir.path())
        .aggregate::<Gate>()
        .process_manager::<Admit>()
        .open()
        .await
        .unwrap_err();
    match &error {
        DbError::Process(ProcessError::Snapshot {
            process_manager,
            position,
            reason,
        }) => {
            assert_eq!((*process_manager, *position), ("admit", positions[0]));
            assert!(reason.contains("no FOLDPMGR magic"), "{reason}");
        }
        other => panic!("expected a refused snapshot, got {other:?}"),
    }
    // A tool reports it unusable, naming why.
    let db = Db::builder(dir.path()).open().await.unwrap();
    let managers = foldkit::inspect::dead_letters(&**db.store()).await.unwrap();
    assert_eq!(managers.len(), 1);
    let error = managers[0].letters.as_ref().unwrap_err();
    assert!(
        matches!(
            error,
            foldkit::inspect::ExamineError::ProcessManager {
                manager,
                source: foldkit::process::PersistError::Malformed("no FOLDPMGR magic"),
                ..
            } if manager == "admit"
        ),
        "{error:?}"
    );
    db.close().await.unwrap();
}
