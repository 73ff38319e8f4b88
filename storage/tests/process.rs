//! Other processes: a child killed with SIGKILL while appending with
//! `FsyncPolicy::Always` loses no acknowledged record, and a second process cannot
//! open a log that is open. The child is this test binary, re-run with an
//! environment variable naming its role.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use foldkit_storage::{FsyncPolicy, Log, LogOptions, StorageError};

fn payload(i: u64) -> Vec<u8> {
    format!("payload-{i}-{}", "y".repeat((i * 7 % 23) as usize)).into_bytes()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

const CHILD_DIR: &str = "FOLDKIT_STORAGE_CRASH_CHILD_DIR";
const LOCK_CHILD_DIR: &str = "FOLDKIT_STORAGE_LOCK_CHILD_DIR";

/// In the child: append with `Always` forever, printing each acknowledged seq.
/// In the parent: kill the child with SIGKILL mid-stream, then check every
/// acknowledged seq survived with its payload.
#[test]
fn a_killed_writer_loses_no_acknowledged_record() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        runtime().block_on(async {
            let log = Log::open(&dir, LogOptions::default().fsync(FsyncPolicy::Always))
                .expect("child open");
            let mut out = std::io::stdout().lock();
            for i in 1.. {
                let seq = log.append(&payload(i)).await.expect("child append");
                writeln!(out, "ACK {seq}").expect("stdout");
                out.flush().expect("flush");
            }
        });
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "a_killed_writer_loses_no_acknowledged_record",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let mut acked = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if let Some(seq) = line.strip_prefix("ACK ") {
            acked.push(seq.parse::<u64>().expect("seq"));
            if acked.len() == 300 {
                child.kill().expect("SIGKILL");
                break;
            }
        }
    }
    child.wait().expect("wait");
    assert_eq!(acked.len(), 300, "the child acknowledged appends");
    let log = Log::open(dir.path(), LogOptions::default()).expect("reopen after kill");
    for seq in acked {
        assert_eq!(
            &*log.read(seq).expect("acknowledged record").payload,
            &payload(seq)[..]
        );
    }
}

#[test]
fn a_second_process_cannot_open_the_log() {
    if let Ok(dir) = std::env::var(LOCK_CHILD_DIR) {
        match Log::open(&dir, LogOptions::default()) {
            Err(StorageError::Locked { .. }) => println!("RESULT locked"),
            Err(other) => println!("RESULT error {other}"),
            Ok(_) => println!("RESULT opened"),
        }
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), LogOptions::default()).expect("open");
    let output = Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "a_second_process_cannot_open_the_log",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(LOCK_CHILD_DIR, dir.path())
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("RESULT locked"), "child said: {stdout}");
    drop(log);
}

const POLICY_CHILD: &str = "FOLDKIT_STORAGE_POLICY_CHILD";

fn policy(name: &str) -> FsyncPolicy {
    match name {
        "never" => FsyncPolicy::Never,
        "every_5" => FsyncPolicy::EveryN(5),
        "interval_20ms" => FsyncPolicy::Interval(std::time::Duration::from_millis(20)),
        _ => FsyncPolicy::Always,
    }
}

/// Runs a child appending under `policy_name` (printing each acknowledged
/// seq, then `IDLE` after `total` appends, then sleeping); kills it with
/// SIGKILL after `kill_after` acknowledgements, or `idle_for` after `IDLE`.
/// Returns the acknowledged seqs and the payloads the reopened log holds.
fn kill_child(
    policy_name: &str,
    total: u64,
    kill_after: Option<usize>,
    idle_for: std::time::Duration,
) -> (Vec<u64>, Vec<Vec<u8>>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "every_policy_keeps_what_it_documents_after_a_kill",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(POLICY_CHILD, format!("{policy_name}:{total}"))
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let mut acked = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if let Some((_, seq)) = line.split_once("ACK ") {
            acked.push(seq.parse::<u64>().expect("seq"));
            if Some(acked.len()) == kill_after {
                break;
            }
        } else if line.contains("IDLE") {
            std::thread::sleep(idle_for);
            break;
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    let log = Log::open(dir.path(), LogOptions::default()).expect("reopen after kill");
    let kept = log
        .range(..)
        .expect("range")
        .map(|r| r.expect("record").payload.to_vec())
        .collect();
    (acked, kept)
}

/// Per policy, what a SIGKILL leaves (see `FsyncPolicy`): what survives is a
/// prefix of the log, every record whole; under `Always` every acknowledged
/// record survives; under the others every record acknowledged more than the
/// buffer window (50 ms) before the kill survives.
#[test]
fn every_policy_keeps_what_it_documents_after_a_kill() {
    if let (Ok(spec), Ok(dir)) = (std::env::var(POLICY_CHILD), std::env::var(CHILD_DIR)) {
        let (name, total) = spec.split_once(':').expect("policy:total");
        let total: u64 = total.parse().expect("total");
        runtime().block_on(async {
            let log =
                Log::open(&dir, LogOptions::default().fsync(policy(name))).expect("child open");
            let mut out = std::io::stdout().lock();
            writeln!(out).expect("stdout");
            for i in 1..=total {
                let seq = log.append(&payload(i)).await.expect("child append");
                writeln!(out, "ACK {seq}").expect("stdout");
                out.flush().expect("flush");
            }
            writeln!(out, "IDLE").expect("stdout");
            out.flush().expect("flush");
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        });
        return;
    }
    for name in ["always", "every_5", "interval_20ms", "never"] {
        // Killed mid-stream: a whole prefix survives; under `Always`, every
        // acknowledged record.
        let (acked, kept) = kill_child(name, 100_000, Some(300), std::time::Duration::ZERO);
        for (i, record) in kept.iter().enumerate() {
            assert_eq!(
                record,
                &payload(i as u64 + 1),
                "{name}: record {} whole",
                i + 1
            );
        }
        if name == "always" {
            assert!(
                kept.len() >= acked.len(),
                "{name}: {} of {} acknowledged kept",
                kept.len(),
                acked.len()
            );
        }
        // Killed 300 ms after the last append (past the 50 ms buffer window):
        // every acknowledged record was handed to the OS and survives.
        let (acked, kept) = kill_child(name, 200, None, std::time::Duration::from_millis(300));
        assert_eq!(acked.len(), 200, "{name}");
        assert_eq!(
            kept.len(),
            200,
            "{name}: every record acknowledged before the window survives"
        );
        for (i, record) in kept.iter().enumerate() {
            assert_eq!(record, &payload(i as u64 + 1), "{name}: record {}", i + 1);
        }
    }
}
