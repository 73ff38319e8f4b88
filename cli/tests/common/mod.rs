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
