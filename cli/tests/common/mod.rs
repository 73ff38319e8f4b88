//! Real directories made by the runtime, and the binary run on them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use foldkit::prelude::*;

/// The events of the fixture directories.
#[derive(Event, Serialize, Deserialize, Clone, Debug)]
pub enum Counter {
    /// Adds `n`.
    Added {
        /// How much.
        n: u64,
    },
}

/// The state of the fixture directories.
#[derive(State, Default, Serialize, Deserialize)]
#[state(event = Counter)]
pub struct Total {
    /// The sum.
    pub sum: u64,
}

impl Apply<Counter> for Total {
    fn apply(&mut self, event: Counter, _meta: &Meta) -> Result<(), FoldError> {
        let Counter::Added { n } = event;
        self.sum += n;
        Ok(())
    }
}

/// Opens the fixture Db in `dir` (small segments, hash chain).
pub async fn open(dir: &Path) -> Db {
    open_with(|| {
        Db::builder(dir)
            .state::<Total>()
            .segment_size(4096)
            .chain_hashes(true)
            .fsync(FsyncPolicy::Never)
    })
    .await
}

/// Opens the Db `builder` makes, retrying for a while: the tests spawn
/// processes, and a child forked while a Db of this process was open holds a
/// copy of its lock until it execs (see foldkit-storage's `lock` module).
pub async fn open_with(builder: impl Fn() -> foldkit::DbBuilder) -> Db {
    let mut tries = 0;
    loop {
        match builder().open().await {
            Ok(db) => return db,
            Err(error) if tries < 100 && error.to_string().contains("already open") => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(error) => panic!("open the Db: {error}"),
        }
    }
}

/// A closed Db directory of 200 events: 150 plain, 50 in stream `acct-1`,
/// several segments, a snapshot and a stream index.
pub async fn healthy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    for n in 1..=150 {
        db.append(Counter::Added { n }).await.expect("append");
    }
    for n in 0..50 {
        db.append_to("acct-1", ExpectedVersion::Exact(n), [Counter::Added { n }])
            .await
            .expect("append to stream");
    }
    db.close().await.expect("close");
    dir
}

/// The segment files of a Db directory, in order.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir.join("log"))
        .expect("list log")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    found.sort();
    found
}

/// Runs `foldkit ARGS` with `stdin` as its input.
pub fn foldkit_with_input(args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_foldkit"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run foldkit");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("wait foldkit")
}

/// Runs `foldkit ARGS`.
pub fn foldkit(args: &[&str]) -> Output {
    foldkit_with_input(args, b"")
}

/// Its stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Its stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts a bad-input failure: exit 2, one line on stderr, no panic.
pub fn assert_one_line_error(output: &Output, needle: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "{needle:?} in {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

/// What the gate is asked.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum GateCommand {
    /// Let `n` through.
    Pass(u64),
}

/// Why the gate refuses.
#[derive(Debug, thiserror::Error)]
#[error("the gate is closed")]
pub struct Closed;

/// A gate that refuses every command: every reaction of [`Admit`] is parked.
#[derive(Default, Clone)]
pub struct Gate;

impl foldkit::Aggregate for Gate {
    const NAME: &'static str = "gate";
    type Event = Counter;
    type Command = GateCommand;
    type Error = Closed;
    fn handle(&self, _command: GateCommand) -> Result<Vec<Counter>, Closed> {
        Err(Closed)
    }
    fn apply(&mut self, _event: &Counter) {}
}

/// On every `Counter` event: ask the gate to let its `n` through.
pub struct Admit;

impl foldkit::ProcessManager for Admit {
    const NAME: &'static str = "admit";
    type State = u64;
    fn declare(d: &mut foldkit::process::Declare<Self>) {
        d.on::<Counter>().commands::<Gate>();
    }
}

impl foldkit::Reacts<Counter> for Admit {
    fn apply(seen: &mut u64, _: &Counter, _: &Meta) {
        *seen += 1;
    }
    fn react(_: &u64, Counter::Added { n }: &Counter, _: &Meta) -> Vec<foldkit::Reaction> {
        vec![foldkit::Reaction::command::<Gate>(
            "main",
            &GateCommand::Pass(*n),
        )]
    }
}

/// Opens a Db in `dir` running [`Admit`] (two quick tries before parking).
pub async fn open_admit(dir: &Path) -> Db {
    use foldkit::process::{ProcessOptions, RetryPolicy};
    let options = ProcessOptions::default().retry(RetryPolicy::new(
        2,
        std::time::Duration::from_millis(1),
        std::time::Duration::from_millis(2),
    ));
    open_with(|| {
        Db::builder(dir)
            .state::<Total>()
            .aggregate::<Gate>()
            .process_manager_with::<Admit>(options)
            .fsync(FsyncPolicy::Never)
    })
    .await
}

/// Appends three events (the last one to stream `acct-1`) to a Db running
/// [`Admit`] and waits until their three reactions are parked (a parked
/// reaction is checkpointed at once). Returns the still open Db.
pub async fn parked_three(dir: &Path) -> Db {
    let db = open_admit(dir).await;
    db.append(Counter::Added { n: 1 }).await.expect("append");
    db.append(Counter::Added { n: 2 }).await.expect("append");
    db.append_to(
        "acct-1",
        ExpectedVersion::NoStream,
        [Counter::Added { n: 3 }],
    )
    .await
    .expect("append to stream");
    db.process_manager::<Admit>()
        .expect("admit runs")
        .settle()
        .await
        .expect("settle");
    assert_eq!(db.dead_letters().list().len(), 3);
    // Parked, then checkpointed: wait for the snapshot that holds all three.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let managers = foldkit::inspect::dead_letters(&**db.store())
            .await
            .expect("read the snapshots");
        if managers
            .first()
            .is_some_and(|m| m.letters.as_ref().is_ok_and(|l| l.len() == 3))
        {
            return db;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint with 3 dead letters: {managers:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
