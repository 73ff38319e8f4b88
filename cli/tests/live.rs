//! The read-only commands beside another process that writes the directory:
//! no lock taken, every run succeeds, and what each shows is a gap-free prefix.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Counter, foldkit, stderr, stdout};

const WRITER_ENV: &str = "FOLDKIT_CLI_TEST_WRITER_DIR";
const EVENTS: u64 = 3000;

/// The child: when started by `beside_a_writer`, appends `EVENTS` events (single
/// ones and batches, some to a stream) with short pauses, then closes.
#[test]
fn writer_process() {
    let Ok(dir) = std::env::var(WRITER_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let db = common::open(std::path::Path::new(&dir)).await;
        let mut n = 0;
        let mut stream_version = 0;
        while n < EVENTS {
            match n % 3 {
                0 => {
                    db.append(Counter::Added { n }).await.expect("append");
                    n += 1;
                }
                1 => {
                    let batch = (0..4).map(|i| Counter::Added { n: n + i });
                    db.append_batch(batch).await.expect("batch");
                    n += 4;
                }
                _ => {
                    db.append_to(
                        "live",
                        foldkit::ExpectedVersion::Exact(stream_version),
                        [Counter::Added { n }],
                    )
                    .await
                    .expect("stream");
                    stream_version += 1;
                    n += 1;
                }
            }
            if n % 10 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        db.close().await.expect("close");
    });
}

fn spawn_writer(dir: &std::path::Path) -> std::process::Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "writer_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WRITER_ENV, dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the writer")
}

fn positions(text: &str) -> Vec<u64> {
    text.lines()
        .map(|l| {
            l.split("  ")
                .next()
                .unwrap_or("")
                .parse()
                .expect("a position")
        })
        .collect()
}

#[test]
fn info_verify_and_events_beside_a_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_arg = dir.path().to_str().expect("utf-8");
    let mut writer = spawn_writer(dir.path());
    let started = Instant::now();
    while !dir.path().join("log").is_dir() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut runs = 0;
    let mut grew = false;
    let mut last_seen = 0;
    while writer.try_wait().expect("poll writer").is_none() || runs < 3 {
        let verify = foldkit(&["verify", dir_arg]);
        assert_eq!(
            verify.status.code(),
            Some(0),
            "{}{}",
            stdout(&verify),
            stderr(&verify)
        );
        let info = foldkit(&["info", dir_arg]);
        assert!(info.status.success(), "{}", stderr(&info));
        let events = foldkit(&["events", dir_arg]);
        assert!(events.status.success(), "{}", stderr(&events));
        let seen = positions(&stdout(&events));
        assert_eq!(
            seen,
            (1..=seen.len() as u64).collect::<Vec<_>>(),
            "gap-free"
        );
        grew |= seen.len() as u64 > last_seen && last_seen > 0;
        last_seen = seen.len() as u64;
        runs += 1;
        if runs > 500 {
            break;
        }
    }
    assert!(writer.wait().expect("writer").success());
    assert!(grew, "the runs saw the log grow ({runs} runs)");
    let events = foldkit(&["events", dir_arg]);
    assert_eq!(positions(&stdout(&events)).len() as u64, EVENTS);
    let repair_after = foldkit(&["repair", "--yes", dir_arg]);
    assert!(repair_after.status.success());
}

#[test]
fn repair_refuses_a_directory_in_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_arg = dir.path().to_str().expect("utf-8");
    let mut writer = spawn_writer(dir.path());
    let started = Instant::now();
    let mut refused = false;
    while writer.try_wait().expect("poll").is_none() && started.elapsed() < Duration::from_secs(60)
    {
        if !dir.path().join("log").is_dir() {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let repair = foldkit(&["repair", "--yes", dir_arg]);
        if repair.status.code() == Some(2) {
            assert!(
                stderr(&repair).contains("is open by a running process"),
                "{}",
                stderr(&repair)
            );
            refused = true;
            break;
        }
    }
    let _ = writer.kill();
    let _ = writer.wait();
    assert!(refused, "repair was refused while the writer ran");
}

#[test]
fn events_follow_shows_new_events_as_they_are_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_arg = dir.path().to_str().expect("utf-8");
    let mut writer = spawn_writer(dir.path());
    let started = Instant::now();
    while !dir.path().join("log").is_dir() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut follow = Command::new(env!("CARGO_BIN_EXE_foldkit"))
        .args(["events", "--follow", dir_arg])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("follow");
    let lines = BufReader::new(follow.stdout.take().expect("stdout")).lines();
    let mut expected = 1;
    for line in lines {
        let line = line.expect("line");
        let position: u64 = line
            .split("  ")
            .next()
            .unwrap_or("")
            .parse()
            .expect("position");
        assert_eq!(position, expected, "in order, none skipped or repeated");
        expected += 1;
        if expected > EVENTS {
            break;
        }
    }
    follow.kill().expect("stop following");
    let _ = follow.wait();
    assert!(writer.wait().expect("writer").success());
    assert_eq!(expected, EVENTS + 1);
}
