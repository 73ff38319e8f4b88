//! What each `FsyncPolicy` keeps after a `kill -9` of the process, one test
//! per policy, checked against the table in `FsyncPolicy`'s docs.
//!
//! The child is this test binary, re-run with [`CHILD_DIR`] set. On one task
//! it appends singles and batches of 3 to three logs (each its own directory,
//! all under the policy tested), printing `ACK <log> <last seq>` once each
//! append returns and `SYNCED <log> <seq>` once a `sync()` returns. Each log
//! isolates one rule, as any later write of the buffer also saves the records
//! before it:
//! - `timer`: a marker record, a [`PAUSE`], then a trickle of small records
//!   that never fills the write buffer and is never synced: only the buffer
//!   window's timer hands it to the OS;
//! - `synced`: a few records, then a `sync()`, then nothing (under the
//!   buffered policies), just before the kill;
//! - `full`: last, a burst of 2 KiB records, never synced, during which the
//!   parent SIGKILLs the child: only full buffers are written in time.
//!
//! The parent times each line when it reads it (after the acknowledgement: a
//! line read long enough before the kill was acknowledged at least that long
//! before it), reopens the logs and checks, on each:
//! - every policy: what survives is a prefix (seqs `1..=k`), each record whole,
//!   the last batch whole; on `timer`, the marker survives;
//! - `Always`: every acknowledged record survives;
//! - the buffered policies: every record acknowledged before the last `sync()`
//!   returned; every record acknowledged more than the buffer window (50 ms,
//!   plus [`MARGIN`] for a loaded machine) before the kill; every record
//!   followed by the bound of unwritten bytes (1 MiB: the write buffer and
//!   the buffers queued for the sync thread) of acknowledged payload.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use foldkit_storage::{FsyncPolicy, Log, LogOptions, Seq};

/// Set in the child: the directory holding the three logs.
const CHILD_DIR: &str = "FOLDKIT_STORAGE_KILL_CHILD_DIR";
/// How long the child rests after the marker: far past the buffer window.
const PAUSE: Duration = Duration::from_millis(600);
/// The buffer window the docs name (`FsyncPolicy`, ¹).
const WINDOW: Duration = Duration::from_millis(50);
/// Slack for a loaded machine (the sync thread may wake late).
const MARGIN: Duration = Duration::from_millis(550);
/// The bound the docs name: no more than this is ever held unwritten (the
/// write buffer and the buffers queued for the sync thread).
const BUFFER: usize = 1 << 20;
/// `timer`: appends before the marker (the marker is the last of them).
const MARK_AT: u64 = 40;
/// `timer`: the trickle, single 50-byte records [`TRICKLE_EVERY`] apart
/// (7.5 KiB in ~1 s).
const TRICKLE: u64 = 150;
const TRICKLE_EVERY: Duration = Duration::from_millis(6);
/// `synced`: appends before its `sync()`.
const SYNCED: u64 = 6;

/// The three logs of the child.
const LOGS: [&str; 3] = ["timer", "synced", "full"];

/// The `i`-th append (from 1) to `log`: how many records, and how many filler
/// bytes each payload has.
fn plan(log: &str, i: u64) -> (u64, usize) {
    let batch = if i.is_multiple_of(5) { 3 } else { 1 };
    match log {
        "timer" if i <= MARK_AT => (batch, (i * 37 % 400) as usize),
        "timer" => (1, 30),
        "synced" => (batch, 100),
        _ => (batch, 2000 + (i % 50) as usize),
    }
}

/// The payload of `seq` in the batch `first..=last`: names its place.
fn payload(seq: Seq, first: Seq, last: Seq, fill: usize) -> Vec<u8> {
    format!("seq {seq} of {first}-{last} {}", "z".repeat(fill)).into_bytes()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The child's side of one log: appends and what it printed.
struct Writer {
    name: &'static str,
    log: Log,
    appends: u64,
    last: Seq,
}

impl Writer {
    /// The next append of the plan; prints its acknowledgement.
    async fn append(&mut self, out: &mut impl Write) {
        self.appends += 1;
        let (len, fill) = plan(self.name, self.appends);
        let (first, end) = (self.last + 1, self.last + len);
        let payloads: Vec<Vec<u8>> = (first..=end)
            .map(|seq| payload(seq, first, end, fill))
            .collect();
        let seqs = self
            .log
            .append_batch(&payloads)
            .await
            .expect("child append");
        assert_eq!(seqs, first..=end, "the child is the only writer");
        self.last = end;
        writeln!(out, "ACK {} {end}", self.name).expect("stdout");
        out.flush().expect("flush");
    }

    async fn sync(&mut self, out: &mut impl Write) {
        self.log.sync().await.expect("child sync");
        writeln!(out, "SYNCED {} {}", self.name, self.last).expect("stdout");
        out.flush().expect("flush");
    }
}

/// The child: writes the three logs under `policy` until killed (see the
/// module docs).
fn child(dir: &str, policy: FsyncPolicy) {
    runtime().block_on(async {
        let open = |name: &'static str| Writer {
            name,
            log: Log::open(
                Path::new(dir).join(name),
                LogOptions::default().fsync(policy),
            )
            .expect("child open"),
            appends: 0,
            last: 0,
        };
        let [mut timer, mut synced, mut full] = LOGS.map(open);
        let mut out = std::io::stdout().lock();
        for _ in 0..MARK_AT {
            timer.append(&mut out).await;
        }
        writeln!(out, "MARK {}", timer.last).expect("stdout");
        out.flush().expect("flush");
        tokio::time::sleep(PAUSE).await;
        for _ in 0..TRICKLE {
            timer.append(&mut out).await;
            tokio::time::sleep(TRICKLE_EVERY).await;
        }
        for _ in 0..SYNCED {
            synced.append(&mut out).await;
        }
        synced.sync(&mut out).await;
        loop {
            full.append(&mut out).await;
        }
    });
}

/// A log as the parent replays it from the plan: each seq's batch and
/// payload, and the payload bytes up to each seq.
struct Replay {
    name: &'static str,
    /// `records[seq - 1]`: the batch holding `seq`, and its payload.
    records: Vec<((Seq, Seq), Vec<u8>)>,
    /// `bytes[seq]`: payload bytes of seqs `1..=seq` (`bytes[0] == 0`).
    bytes: Vec<usize>,
    appends: u64,
}

impl Replay {
    fn new(name: &'static str) -> Replay {
        Replay {
            name,
            records: Vec::new(),
            bytes: vec![0],
            appends: 0,
        }
    }

    fn extend_to(&mut self, seq: Seq) {
        while (self.records.len() as Seq) < seq {
            self.appends += 1;
            let (len, fill) = plan(self.name, self.appends);
            let first = self.records.len() as Seq + 1;
            let end = first + len - 1;
            for s in first..=end {
                let bytes = payload(s, first, end, fill);
                self.bytes
                    .push(self.bytes[self.bytes.len() - 1] + bytes.len());
                self.records.push(((first, end), bytes));
            }
        }
    }

    /// The batch holding `seq`, and the payload of `seq`.
    fn record(&mut self, seq: Seq) -> &((Seq, Seq), Vec<u8>) {
        self.extend_to(seq);
        &self.records[seq as usize - 1]
    }

    /// The last seq followed by at least `bytes` of payload up to `to` (0: none).
    fn last_before(&mut self, bytes: usize, to: Seq) -> Seq {
        self.extend_to(to);
        let end = self.bytes[to as usize];
        // `self.bytes` increases: the last `s` with `end - bytes[s] >= bytes`.
        let count = self.bytes[..=to as usize].partition_point(|&b| b + bytes <= end);
        (count as Seq).saturating_sub(1)
    }
}

/// What the parent saw of one log of a child it killed.
#[derive(Default)]
struct Seen {
    /// Each acknowledged last seq, with when the parent read it.
    acked: Vec<(Seq, Instant)>,
    /// The last seq a returned `sync()` covered (0: none).
    synced: Seq,
    /// The seqs the reopened log holds, with their payloads.
    kept: Vec<(Seq, Vec<u8>)>,
}

impl Seen {
    fn last_acked(&self) -> Seq {
        self.acked.last().map_or(0, |&(seq, _)| seq)
    }

    fn kept_last(&self) -> Seq {
        self.kept.last().map_or(0, |(seq, _)| *seq)
    }
}

/// What the parent saw of a child it killed.
struct Killed {
    logs: HashMap<String, Seen>,
    marker: Seq,
    /// When the parent sent SIGKILL.
    killed_at: Instant,
}

impl Killed {
    fn log(&self, name: &str) -> &Seen {
        &self.logs[name]
    }
}

/// Runs the child of test `test`, SIGKILLs it once it has acknowledged two
/// buffers' worth of its burst, reopens its logs.
fn run(test: &str) -> Killed {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let mut logs: HashMap<String, Seen> = HashMap::new();
    let mut marker = None;
    let mut full = Replay::new("full");
    let mut lines = BufReader::new(stdout).lines();
    let killed_at = loop {
        let line = match lines.next() {
            Some(line) => line.expect("line"),
            None => panic!("the child ended before it was killed"),
        };
        let now = Instant::now();
        let words: Vec<&str> = line.split(' ').collect();
        match words[..] {
            ["ACK", log, seq] => {
                let seq = seq.parse::<Seq>().expect("seq");
                logs.entry(log.into()).or_default().acked.push((seq, now));
            }
            ["SYNCED", log, seq] => {
                logs.entry(log.into()).or_default().synced = seq.parse().expect("seq");
            }
            ["MARK", seq] => marker = Some(seq.parse::<Seq>().expect("seq")),
            _ => {}
        }
        let burst = logs.get("full").map_or(0, Seen::last_acked);
        if burst > 0 && full.last_before(2 * BUFFER, burst) > 0 {
            child.kill().expect("SIGKILL");
            break now;
        }
    };
    child.wait().expect("wait");
    for name in LOGS {
        let log =
            Log::open(dir.path().join(name), LogOptions::default()).expect("reopen after the kill");
        logs.entry(name.into()).or_default().kept = log
            .range(..)
            .expect("range")
            .map(|r| r.expect("record"))
            .map(|r| (r.seq, r.payload.to_vec()))
            .collect();
    }
    Killed {
        logs,
        marker: marker.expect("marker"),
        killed_at,
    }
}

/// The checks every policy passes, on every log.
fn check_prefix_whole(policy: &str, killed: &Killed) {
    for name in LOGS {
        let seen = killed.log(name);
        let mut replay = Replay::new(name);
        for (at, (seq, bytes)) in seen.kept.iter().enumerate() {
            assert_eq!(*seq, at as Seq + 1, "{policy}, {name}: a prefix survives");
            assert!(
                bytes == &replay.record(*seq).1,
                "{policy}, {name}: record {seq} is whole and unaltered"
            );
        }
        let kept_last = seen.kept_last();
        if kept_last > 0 {
            let (_, end) = replay.record(kept_last).0;
            assert_eq!(
                end, kept_last,
                "{policy}, {name}: the last batch kept is whole (it ends at {end})"
            );
        }
    }
    let kept = killed.log("timer").kept_last();
    assert!(
        kept >= killed.marker,
        "{policy}: the marker {} was acknowledged {PAUSE:?} and more before the kill, yet only {kept} survived",
        killed.marker
    );
}

/// The checks of the buffered policies (the buffer window of the docs), on
/// every log; each log shows that its rule was put to the test.
fn check_buffered(policy: &str, killed: &Killed) {
    check_prefix_whole(policy, killed);
    for name in LOGS {
        let seen = killed.log(name);
        let kept = seen.kept_last();
        assert!(
            kept >= seen.synced,
            "{policy}, {name}: every record before the last sync() ({}) survives; kept {kept}",
            seen.synced
        );
        let before_window = seen
            .acked
            .iter()
            .filter(|&&(_, at)| at + WINDOW + MARGIN <= killed.killed_at)
            .map(|&(seq, _)| seq)
            .max()
            .unwrap_or(0);
        assert!(
            kept >= before_window,
            "{policy}, {name}: seq {before_window} was acknowledged more than {:?} before the kill, yet only {kept} survived",
            WINDOW + MARGIN
        );
        let before_full = Replay::new(name).last_before(BUFFER, seen.last_acked());
        assert!(
            kept >= before_full,
            "{policy}, {name}: {BUFFER} B were acknowledged after seq {before_full}, yet only {kept} survived"
        );
        match name {
            "timer" => assert!(
                before_window > killed.marker,
                "{policy}: the trickle ran past the window before the kill"
            ),
            "synced" => assert_eq!(seen.synced, seen.last_acked(), "{policy}: synced"),
            _ => assert!(before_full > 0, "{policy}: the burst filled a buffer"),
        }
    }
}

/// `Always`: no acknowledged record is lost.
#[test]
fn always_keeps_every_acknowledged_record_after_a_kill() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        return child(&dir, FsyncPolicy::Always);
    }
    let killed = run("always_keeps_every_acknowledged_record_after_a_kill");
    check_prefix_whole("Always", &killed);
    for name in LOGS {
        let seen = killed.log(name);
        let (kept, acked) = (seen.kept_last(), seen.last_acked());
        assert!(
            kept >= acked,
            "Always, {name}: seq {acked} was acknowledged, yet only {kept} survived"
        );
    }
}

/// `EveryN(n)`: what the buffer window promises (n is larger than any of the
/// logs gets, so no fsync flushes the buffer for the timer or a full buffer).
#[test]
fn every_n_keeps_all_but_the_buffer_window_after_a_kill() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        return child(&dir, FsyncPolicy::EveryN(100_000));
    }
    let killed = run("every_n_keeps_all_but_the_buffer_window_after_a_kill");
    check_buffered("EveryN(100000)", &killed);
}

/// `Interval(d)`: what the buffer window promises (d is longer than the
/// test, so no interval fsync flushes the buffer for the timer).
#[test]
fn interval_keeps_all_but_the_buffer_window_after_a_kill() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        return child(&dir, FsyncPolicy::Interval(Duration::from_secs(60)));
    }
    let killed = run("interval_keeps_all_but_the_buffer_window_after_a_kill");
    check_buffered("Interval(60 s)", &killed);
}

/// `Never`: what the buffer window promises; `sync()` makes everything before
/// it survive.
#[test]
fn never_keeps_all_but_the_buffer_window_after_a_kill() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        return child(&dir, FsyncPolicy::Never);
    }
    let killed = run("never_keeps_all_but_the_buffer_window_after_a_kill");
    check_buffered("Never", &killed);
}
