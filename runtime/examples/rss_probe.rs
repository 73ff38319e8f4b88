//! Peak RSS of the orders domain (issue #18), each phase in a fresh process so that no
//! phase's freed-but-kept heap or page faults flatter another's figure.
//!
//! `cargo run --release -p foldkit --example rss_probe -- EVENTS [DIR]`
//!
//! The driver runs itself twice, in new processes:
//! 1. `fold DIR EVENTS`: appends EVENTS events to a new log in DIR (the orders of the
//!    `restart` bench: each order placed, then 3 in 4 confirmed, 1.75 events per row),
//!    waits until the state has folded them, reads the steady RSS (`VmRSS`), resets the
//!    peak (`/proc/self/clear_refs`), writes a snapshot, and reads the peak during it
//!    (`VmHWM`); it also prints the append + fold cost per event of each million
//!    events in turn (`append_fold_ns_per_event_by_million`);
//! 2. `reopen DIR EVENTS`: opens the Db from that snapshot, waits until it has caught up,
//!    reads its peak and its RSS then (the steady state of a restored Db, which holds no
//!    slack from growing), and measures the peak of a snapshot again from there.
//!
//! Each child prints one `key=value` line; the driver prints them and the ratio of the
//! snapshot's peak to the steady state. DIR (default: a temporary directory) is removed
//! afterwards unless it was given.

use std::path::Path;
use std::process::Command;

#[path = "../benches/support/orders.rs"]
mod orders;
use orders::{Orders, Shop, events, open};

/// The rows whose events number about `events` (1.75 per row).
fn rows_for(events: u64) -> u64 {
    events * 4 / 7
}

/// The events of `rows` orders: every `Placed`, then `Confirmed` for 3 in 4.
/// A field of `/proc/self/status`, in kB.
fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Phase 1: fold, steady RSS, snapshot peak.
async fn fold(dir: &Path, events_wanted: u64) {
    let rows = rows_for(events_wanted);
    let db = open(dir).await;
    let mut all = events(rows).peekable();
    let mut last = 0;
    let orders = db.state::<Orders>();
    // Append + fold cost per event of each million events in turn (folded before the
    // clock is read), to compare the cost at 5M with the cost at 1M in one run.
    let (mut mark, mut mark_seq, mut per_million) = (std::time::Instant::now(), 0, Vec::new());
    while all.peek().is_some() {
        let batch: Vec<Shop> = all.by_ref().take(10_000).collect();
        last = *db.append_batch(batch).await.expect("append").end();
        if last / 1_000_000 > mark_seq / 1_000_000 || all.peek().is_none() {
            orders.wait_for_seq(last).await.expect("fold");
            let now = std::time::Instant::now();
            per_million.push((now - mark).as_nanos() as u64 / (last - mark_seq));
            (mark, mark_seq) = (now, last);
        }
    }
    orders.wait_for_seq(last).await.expect("fold");
    assert_eq!(orders.read().orders.len(), rows as usize);
    let fold_peak = status_kb("VmHWM");
    let steady = status_kb("VmRSS");
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS");
    db.snapshot_to_disk().await.expect("snapshot");
    let snapshot_peak = status_kb("VmHWM");
    db.close().await.expect("close");
    println!(
        "events={last} rows={rows} fold_peak_kb={fold_peak} steady_kb={steady} snapshot_peak_kb={snapshot_peak} append_fold_ns_per_event_by_million={per_million:?}"
    );
}

/// Phase 2: reopen from the snapshot, peak and RSS once caught up.
async fn reopen(dir: &Path, events_wanted: u64) {
    let rows = rows_for(events_wanted);
    let started = std::time::Instant::now();
    let db = open(dir).await;
    let last = db.last_seq().await.expect("last seq").unwrap_or(0);
    let orders = db.state::<Orders>();
    orders.wait_for_seq(last).await.expect("catch up");
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(orders.read().orders.len(), rows as usize);
    let peak = status_kb("VmHWM");
    let rss = status_kb("VmRSS");
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS");
    db.snapshot_to_disk().await.expect("snapshot");
    let snapshot_peak = status_kb("VmHWM");
    db.close().await.expect("close");
    println!(
        "reopen_s={secs:.2} reopen_peak_kb={peak} reopen_rss_kb={rss} reopened_snapshot_peak_kb={snapshot_peak}"
    );
}

/// Runs this program as `phase`, returning its line.
fn child(phase: &str, dir: &Path, events: u64) -> String {
    let exe = std::env::current_exe().expect("this program's path");
    let out = Command::new(exe)
        .arg(phase)
        .arg(dir)
        .arg(events.to_string())
        .output()
        .expect("run a phase");
    assert!(
        out.status.success(),
        "phase {phase} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The value of `key` in a `key=value` line.
fn field(line: &str, key: &str) -> f64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    };
    match args.as_slice() {
        [phase, dir, n] if phase == "fold" || phase == "reopen" => {
            let n: u64 = n.parse().expect("EVENTS is a number");
            let dir = Path::new(dir);
            if phase == "fold" {
                runtime().block_on(fold(dir, n));
            } else {
                runtime().block_on(reopen(dir, n));
            }
        }
        [n, rest @ ..] if rest.len() <= 1 => {
            let n: u64 = n.parse().expect("usage: rss_probe EVENTS [DIR]");
            let temp = tempfile::tempdir().expect("a temporary directory");
            let dir = rest.first().map_or(temp.path(), Path::new);
            let folded = child("fold", dir, n);
            println!("{folded}");
            let reopened = child("reopen", dir, n);
            println!("{reopened}");
            let ratio = field(&folded, "snapshot_peak_kb") / field(&folded, "steady_kb");
            let again =
                field(&reopened, "reopened_snapshot_peak_kb") / field(&reopened, "reopen_rss_kb");
            println!(
                "snapshot peak / steady: {ratio:.2} after the fold, {again:.2} after the reopen"
            );
        }
        _ => eprintln!("usage: rss_probe EVENTS [DIR]"),
    }
}
