//! Other processes: a child killed with SIGKILL while appending with
//! `FsyncPolicy::Always` loses no acknowledged record, and a second process cannot
//! open a log that is open. The child is this test binary, re-run with an
//! environment variable naming its role. What every policy keeps after a kill
//! is in `kill.rs`.

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
