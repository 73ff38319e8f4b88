//! `foldkit dead-letters` on real directories: a process manager whose every
//! command fails, beside the running Db and after it closed; a directory
//! without managers; bytes of the unreleased format 1; a damaged one.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{Gate, assert_one_line_error, foldkit, healthy, parked_three, stderr, stdout};
use foldkit::cli::Cli;

fn path(dir: &Path) -> &str {
    dir.to_str().expect("utf-8 temp path")
}

/// The manager's snapshot files, oldest first.
fn manager_snapshots(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> =
        fs::read_dir(dir.join("snapshots").join("process-manager%2Eadmit"))
            .expect("the manager's snapshots")
            .map(|e| e.expect("entry").path())
            .collect();
    found.sort();
    found
}

fn check_listing(dir: &Path) {
    let listed = foldkit(&["dead-letters", path(dir)]);
    let text = stdout(&listed);
    assert_eq!(listed.status.code(), Some(0), "{text}{}", stderr(&listed));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for (i, line) in lines.iter().enumerate() {
        let position = i + 1;
        assert!(line.starts_with("admit  "), "{line}");
        assert!(line.contains(&format!("admit@{position}#0")), "{line}");
        assert!(
            line.contains(&format!("event {position} Counter")),
            "{line}"
        );
        assert!(line.contains("command gate/main"), "{line}");
        assert!(line.contains("attempts 2"), "{line}");
        assert!(
            line.contains("error: gate/main rejected the command: the gate is closed"),
            "{line}"
        );
        assert!(line.contains("parked 20"), "an RFC 3339 time: {line}");
    }
    assert!(
        lines[2].contains("event 3 Counter acct-1#1"),
        "{}",
        lines[2]
    );
    assert!(lines[0].contains("event 1 Counter -"), "{}", lines[0]);

    let json = foldkit(&["dead-letters", "--json", path(dir)]);
    assert_eq!(json.status.code(), Some(0), "{}", stderr(&json));
    let values: Vec<serde_json::Value> = stdout(&json)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(values.len(), 3);
    let third = &values[2];
    assert_eq!(third["process_manager"], "admit");
    assert_eq!(third["id"], "admit@3#0");
    assert_eq!(third["causation"], 3);
    assert_eq!(third["event"]["type"], "Counter");
    assert_eq!(third["event"]["stream"], "acct-1");
    assert_eq!(third["event"]["stream_version"], 1);
    assert_eq!(third["reaction"]["kind"], "command");
    assert_eq!(third["reaction"]["aggregate"], "gate");
    assert_eq!(third["reaction"]["id"], "main");
    assert!(third["reaction"]["payload"].is_string(), "hex: {third}");
    assert!(
        third["reaction"].get("command").is_none(),
        "not registered here"
    );
    assert_eq!(third["attempts"], 2);
    assert_eq!(third["correlation_id"], "acct-1");
    assert!(
        third["error"]
            .as_str()
            .is_some_and(|e| e.contains("the gate is closed")),
        "{third}"
    );
    assert!(third["parked_at_ms"].as_u64().is_some_and(|ms| ms > 0));
}

#[tokio::test]
async fn dead_letters_are_listed_beside_the_running_db_and_after_it_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = parked_three(dir.path()).await;
    // The Db holds the directory's lock: the tool neither needs nor waits for it.
    check_listing(dir.path());
    db.close().await.expect("close");
    check_listing(dir.path());

    let info = foldkit(&["info", path(dir.path())]);
    let text = stdout(&info);
    assert!(info.status.success(), "{}", stderr(&info));
    assert!(
        text.contains("dead letters   3 in 1 process manager(s)"),
        "{text}"
    );
    assert!(
        text.contains("admit") && text.contains("3 dead letter(s), checkpoint at"),
        "{text}"
    );

    // The manager's snapshot is a checked, known kind: verify and snapshots pass.
    let verify = foldkit(&["verify", path(dir.path())]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}{}",
        stdout(&verify),
        stderr(&verify)
    );
    let snapshots = foldkit(&["snapshots", path(dir.path())]);
    assert_eq!(snapshots.status.code(), Some(0), "{}", stdout(&snapshots));
    assert!(
        stdout(&snapshots).contains("process manager, 3 dead letter(s)"),
        "{}",
        stdout(&snapshots)
    );
}

#[tokio::test]
async fn a_users_binary_shows_the_commands_of_its_aggregates_as_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    parked_three(dir.path()).await.close().await.expect("close");
    let run = |cli: Cli, args: &[&str]| {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = cli.run_with_output(
            std::iter::once("my-tool").chain(args.iter().copied()),
            &mut out,
            &mut err,
        );
        (
            code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    };
    let (code, out, err) = run(
        Cli::new().aggregate::<Gate>(),
        &["dead-letters", path(dir.path())],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(r#"command gate/main {"Pass":1}"#), "{out}");
    let (code, out, err) = run(
        Cli::new().aggregate::<Gate>(),
        &["dead-letters", "--json", path(dir.path())],
    );
    assert_eq!(code, 0, "{err}");
    let first: serde_json::Value =
        serde_json::from_str(out.lines().next().expect("a line")).expect("JSON");
    assert_eq!(first["reaction"]["command"], serde_json::json!({"Pass": 1}));
}

#[tokio::test]
async fn a_directory_without_process_managers_has_no_dead_letters() {
    let dir = healthy().await;
    let listed = foldkit(&["dead-letters", path(dir.path())]);
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    assert!(
        stdout(&listed).starts_with("no dead letters"),
        "{}",
        stdout(&listed)
    );
    assert!(stderr(&listed).is_empty(), "{}", stderr(&listed));
    let json = foldkit(&["dead-letters", "--json", path(dir.path())]);
    assert_eq!(json.status.code(), Some(0));
    assert!(stdout(&json).is_empty(), "{}", stdout(&json));
    assert_one_line_error(
        &foldkit(&["dead-letters", "/nonexistent/foldkit"]),
        "is not a directory",
    );
}

#[tokio::test]
async fn a_damaged_manager_snapshot_fails_the_listing_and_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    parked_three(dir.path()).await.close().await.expect("close");
    for snapshot in manager_snapshots(dir.path()) {
        let mut bytes = fs::read(&snapshot).expect("read");
        let at = bytes.len() / 2;
        bytes[at] ^= 0x08;
        fs::write(&snapshot, &bytes).expect("flip");
    }
    let listed = foldkit(&["dead-letters", path(dir.path())]);
    assert_eq!(listed.status.code(), Some(1), "{}", stdout(&listed));
    let err = stderr(&listed);
    assert!(
        err.contains("the dead letters of process manager `admit` cannot be read")
            && err.contains("checksum mismatch"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let verify = foldkit(&["verify", path(dir.path())]);
    assert_eq!(verify.status.code(), Some(1), "{}", stdout(&verify));
    assert!(
        stdout(&verify).contains("process manager snapshot checksum mismatch"),
        "{}",
        stdout(&verify)
    );
}

#[tokio::test]
async fn bytes_in_the_unreleased_format_1_are_reported_unusable_never_misread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = parked_three(dir.path()).await;
    let letters = db.dead_letters().list();
    db.close().await.expect("close");
    // Format 1 of development builds (never released, not read): the bare
    // postcard of (1, state, dead letters), no checksum, no name.
    #[derive(serde::Serialize)]
    struct Old<'a> {
        format: u32,
        state: u64,
        dead: &'a [foldkit::process::DeadLetter],
    }
    let old = postcard::to_allocvec(&Old {
        format: 1,
        state: 3,
        dead: &letters,
    })
    .expect("encode");
    for snapshot in manager_snapshots(dir.path()) {
        fs::write(&snapshot, &old).expect("write");
    }
    let listed = foldkit(&["dead-letters", path(dir.path())]);
    assert_eq!(listed.status.code(), Some(1), "{}", stdout(&listed));
    let err = stderr(&listed);
    assert!(
        err.contains("the dead letters of process manager `admit` cannot be read")
            && err.contains("no FOLDPMGR magic"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // The service would refuse it too: verify fails, naming the file and why.
    let verify = foldkit(&["verify", path(dir.path())]);
    let text = stdout(&verify);
    assert_eq!(verify.status.code(), Some(1), "{text}");
    assert!(
        text.contains("error") && text.contains("no FOLDPMGR magic") && text.contains(".snap"),
        "{text}"
    );
}
