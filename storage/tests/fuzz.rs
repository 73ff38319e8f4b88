//! Hostile directories: seeded random segment files (valid logs then damaged,
//! random bytes, extreme, duplicate, overlapping, gapped and non-numeric names,
//! empty files, directories named like segments) are opened, read whole,
//! appended to, tailed, truncated, closed and reopened. Nothing may panic or
//! abort: every failure must be a typed `StorageError`.
//!
//! The cases run in a child process (this test binary re-run with
//! `FOLDKIT_FUZZ_CHILD` set), so that an abort (an allocation failure, a stack
//! overflow) is caught too; the child prints each case's seed before running
//! it, and the parent names the seed of the case that killed it.
//! `FOLDKIT_FUZZ_CASES` sets the number of cases (default 3000),
//! `FOLDKIT_FUZZ_SEED` the first seed.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use foldkit_storage::{FsyncPolicy, Log, LogOptions, StorageError};

const CHILD: &str = "FOLDKIT_FUZZ_CHILD";
const DEFAULT_CASES: u64 = 3000;
const DEFAULT_SEED: u64 = 0x5eed_f01d_0000_0000;

/// splitmix64: small, seeded, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// Fewer than `n` random bytes (possibly none).
    fn some_bytes(&mut self, n: u64) -> Vec<u8> {
        let len = self.below(n) as usize;
        self.bytes(len)
    }
}

/// A segment header as the log writes it.
fn segment_header(first_seq: u64) -> Vec<u8> {
    let mut h = vec![0u8; 24];
    h[..8].copy_from_slice(b"FOLDSEG\0");
    h[8..12].copy_from_slice(&1u32.to_le_bytes());
    h[16..24].copy_from_slice(&first_seq.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&h[..12]), &h[16..24]);
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h
}

/// A record frame as the log writes it.
fn frame(seq: u64, timestamp: u64, flags: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 32];
    f[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    f[8..16].copy_from_slice(&seq.to_le_bytes());
    f[16..24].copy_from_slice(&timestamp.to_le_bytes());
    f[24..28].copy_from_slice(&flags.to_le_bytes());
    f.extend_from_slice(payload);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&f[..4]), &f[8..]);
    f[4..8].copy_from_slice(&crc.to_le_bytes());
    f
}

fn name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

/// A name for a segment: usually the right one, sometimes extreme or malformed.
fn hostile_name(rng: &mut Rng, first_seq: u64) -> String {
    match rng.below(120) {
        0 => name(0),
        1 => name(u64::MAX),
        2 => name(i64::MAX as u64),
        3 => name(i64::MAX as u64 + 1),
        4 => name(u64::MAX - rng.below(3)),
        5 => format!("{first_seq}.seg"),
        6 => format!("+{:019}.seg", first_seq.min(999)),
        7 => "not-a-seq.seg".into(),
        8 => format!("{first_seq:021}.seg"),
        9 => format!("{first_seq:020}.seg.tmp"),
        10 => ".seg".into(),
        11 => name(rng.next()),
        12 => name(first_seq + rng.below(5)),
        13 => name(first_seq.saturating_sub(rng.below(5)).max(1)),
        _ => name(first_seq),
    }
}

/// Writes a random directory for one case.
fn write_case(rng: &mut Rng, dir: &Path) {
    let segments = rng.below(5) + usize::from(rng.chance(80)) as u64;
    let mut seq = if rng.chance(80) {
        1
    } else {
        rng.below(1 << 40) + 1
    };
    let mut timestamp = 1_700_000_000_000u64;
    for _ in 0..segments {
        let records = rng.below(20);
        let mut bytes = if rng.chance(90) {
            segment_header(if rng.chance(90) { seq } else { rng.next() })
        } else {
            rng.some_bytes(30)
        };
        let first = seq;
        let mut open_batch = false;
        for _ in 0..records {
            let len = match rng.below(10) {
                0 => 1,
                1 => rng.below(3000) as usize + 1,
                _ => rng.below(80) as usize + 1,
            };
            let continues = rng.chance(20);
            open_batch = continues;
            timestamp += rng.below(3);
            bytes.extend(frame(seq, timestamp, u32::from(continues), &rng.bytes(len)));
            seq += 1;
        }
        let _ = open_batch;
        // Damage.
        match rng.below(12) {
            0 if !bytes.is_empty() => {
                for _ in 0..=rng.below(4) {
                    let at = rng.below(bytes.len() as u64) as usize;
                    bytes[at] ^= 1 << rng.below(8);
                }
            }
            1 => bytes.truncate(rng.below(bytes.len() as u64 + 1) as usize),
            2 => bytes.extend(rng.some_bytes(100)),
            3 => bytes.extend(vec![0u8; rng.below(200) as usize]),
            4 => bytes.clear(),
            5 => {
                // A frame claiming a huge length.
                let mut f = frame(seq, timestamp, 0, b"x");
                f[..4].copy_from_slice(&(rng.next() as u32).to_le_bytes());
                bytes.extend(f);
            }
            6 => {
                // A frame with an extreme seq.
                bytes.extend(frame(u64::MAX - rng.below(2), timestamp, 0, b"extreme"));
            }
            _ => {}
        }
        let file = dir.join(hostile_name(rng, first));
        if rng.chance(4) {
            // A directory named like a segment, sometimes non-empty.
            let _ = std::fs::create_dir(&file);
            if rng.chance(50) {
                let _ = std::fs::write(file.join("inside"), &bytes);
            }
        } else {
            let _ = std::fs::write(&file, &bytes);
        }
        if rng.chance(10) {
            // Gap: skip some seqs before the next segment.
            seq += rng.below(5) + 1;
        } else if rng.chance(10) {
            // Overlap.
            seq = seq.saturating_sub(rng.below(5) + 1).max(1);
        }
    }
}

/// Uses a log every way there is; any error is fine, a panic is not.
async fn exercise(dir: &Path, rng: &mut Rng) -> Result<(), StorageError> {
    let options = LogOptions::default()
        .fsync(match rng.below(3) {
            0 => FsyncPolicy::Never,
            1 => FsyncPolicy::EveryN(2),
            _ => FsyncPolicy::Always,
        })
        .segment_size(4096)
        .max_record_size(if rng.chance(20) { 64 } else { 1 << 20 });
    let log = Log::open(dir, options.clone())?;
    let _ = log.recovery_report().repaired();
    let (first, last) = (log.first_seq(), log.last_seq());
    let mut read = 0u64;
    for record in log.range(..)? {
        match record {
            Ok(_) => read += 1,
            Err(_) => break,
        }
    }
    for seq in [
        0,
        1,
        u64::MAX,
        i64::MAX as u64,
        first.unwrap_or(1),
        last.unwrap_or(1),
    ]
    .into_iter()
    .chain((0..3).map(|_| rng.next() % 64))
    {
        let _ = log.read(seq);
    }
    let a = [0, 1, u64::MAX, rng.below(100)][rng.below(4) as usize];
    let b = [0, 1, u64::MAX, rng.below(100)][rng.below(4) as usize];
    if let Ok(range) = log.range(a..b) {
        let _ = range.take(100).count();
    }
    if let Ok(range) = log.range(a..=b) {
        let _ = range.take(100).count();
    }
    let appended = log
        .append(&{
            let mut p = rng.some_bytes(100);
            p.push(1);
            p
        })
        .await;
    let _ = log.append_batch(&[b"one".as_slice(), b"two"]).await;
    // A tail from the start yields what `range` could read, then ends at close.
    let from = [1, first.unwrap_or(1), rng.below(50) + 1][rng.below(3) as usize];
    let mut tail = log.tail(from);
    let end = log.last_seq().unwrap_or(0);
    let deadline = Duration::from_secs(5);
    while tail.position() <= end {
        match tokio::time::timeout(deadline, tail.next_batch(64)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => break,
            Err(_) => panic!("a tail hangs at seq {} of {end}", tail.position()),
        }
    }
    let _ = log.truncate_before(rng.below(60));
    let closed = log.close().await;
    drop(log);
    if appended.is_ok() && closed.is_ok() {
        let log = Log::open(dir, options)?;
        let _ = log.range(..)?.take(10_000).count();
        log.close().await?;
    }
    let _ = read;
    Ok(())
}

fn scratch_root() -> PathBuf {
    // tmpfs where there is one: fsyncs are free, so thousands of cases are quick.
    let shm = Path::new("/dev/shm");
    if shm.is_dir() && tempfile::tempdir_in(shm).is_ok() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// The child: runs the cases `FOLDKIT_FUZZ_CHILD=<first seed>:<count>` names,
/// printing each seed before its case.
#[test]
fn fuzz_child() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let (first, count) = spec.split_once(':').expect("seed:count");
    let (first, count): (u64, u64) = (first.parse().expect("seed"), count.parse().expect("count"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let root = scratch_root();
    let mut out = std::io::stdout().lock();
    let mut opened = 0u64;
    for seed in first..first + count {
        writeln!(out, "CASE {seed}").expect("stdout");
        out.flush().expect("flush");
        let dir = tempfile::tempdir_in(&root).expect("tempdir");
        let mut rng = Rng(seed);
        write_case(&mut rng, dir.path());
        if runtime.block_on(exercise(dir.path(), &mut rng)).is_ok() {
            opened += 1;
        }
    }
    writeln!(out, "DONE {count} {opened}").expect("stdout");
}

#[test]
fn hostile_directories_never_panic_or_abort() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let cases: u64 = std::env::var("FOLDKIT_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let first: u64 = std::env::var("FOLDKIT_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", "fuzz_child", "--nocapture", "--test-threads=1"])
        .env(CHILD, format!("{first}:{cases}"))
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the fuzz child");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let errors = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let mut last_case = None;
    let mut done = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        // The harness's "test fuzz_child ... " may precede the first line.
        if let Some((_, seed)) = line.split_once("CASE ") {
            last_case = Some(seed.to_owned());
        } else if let Some((_, summary)) = line.split_once("DONE ") {
            done = Some(summary.to_owned());
        }
    }
    let status = child.wait().expect("wait");
    let errors = errors.join().unwrap_or_default();
    assert!(
        status.success() && done.is_some(),
        "the fuzz child died ({status}) in the case of seed {} \
         (rerun it alone: FOLDKIT_FUZZ_SEED=<seed> FOLDKIT_FUZZ_CASES=1): {errors}",
        last_case.as_deref().unwrap_or("<none>")
    );
    let summary = done.unwrap_or_default();
    let opened = summary.split(' ').nth(1).unwrap_or("?");
    println!(
        "fuzz: {cases} cases (seeds {first}..{}) in {:.2?}, {opened} opened; no panic, no abort",
        first + cases,
        started.elapsed()
    );
}

/// The reported reproduction: a valid first segment beside one named
/// `09223372036854775807.seg` with a valid header. It used to open, then the
/// first read panicked ("capacity overflow") or aborted.
#[test]
fn a_huge_segment_name_is_corrupt_at_open_naming_the_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut first = segment_header(1);
    first.extend(frame(1, 1, 0, b"one"));
    std::fs::write(dir.path().join(name(1)), first).expect("write");
    let huge = i64::MAX as u64;
    std::fs::write(dir.path().join(name(huge)), segment_header(huge)).expect("write");
    match Log::open(dir.path(), LogOptions::default()) {
        Err(StorageError::Corrupt {
            segment, reason, ..
        }) => {
            assert_eq!(segment, dir.path().join(name(1)), "{reason}");
            assert!(reason.contains("records are missing"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Past the largest first seq a log accepts: named too.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(name(u64::MAX)), segment_header(u64::MAX)).expect("write");
    match Log::open(dir.path(), LogOptions::default()) {
        Err(StorageError::Corrupt { segment, .. }) => {
            assert_eq!(segment, dir.path().join(name(u64::MAX)));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // A directory named like a segment.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join(name(1))).expect("dir");
    match Log::open(dir.path(), LogOptions::default()) {
        Err(StorageError::Corrupt {
            segment, reason, ..
        }) => {
            assert_eq!(segment, dir.path().join(name(1)));
            assert!(reason.contains("not a regular file"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// Found by the fuzz: when the last segment's header was never written (it is
/// removed at open), the segment before it becomes the active one and must be
/// recovered as such (scanned whole), or records appended to it were lost to
/// reads (`read` said `NotFound`, a tail hung).
#[tokio::test]
async fn the_segment_before_a_removed_unwritten_one_becomes_the_active_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut first = segment_header(1);
    for seq in 1..=3 {
        first.extend(frame(seq, 1, 0, format!("record {seq}").as_bytes()));
    }
    std::fs::write(dir.path().join(name(1)), first).expect("write");
    std::fs::write(dir.path().join(name(4)), b"").expect("write");
    let log = Log::open(dir.path(), LogOptions::default()).expect("open");
    assert_eq!(log.recovery_report().removed_segments, 1);
    assert_eq!(log.last_seq(), Some(3));
    assert_eq!(log.append(b"record 4").await.expect("append"), 4);
    assert_eq!(
        &*log.read(4).expect("read the new record").payload,
        b"record 4"
    );
    let mut tail = log.tail(1);
    let mut seqs = Vec::new();
    while seqs.len() < 4 {
        let batch = tokio::time::timeout(Duration::from_secs(5), tail.next_batch(10))
            .await
            .expect("the tail does not hang")
            .expect("batch");
        seqs.extend(batch.iter().map(|r| r.seq));
    }
    assert_eq!(seqs, [1, 2, 3, 4]);
    log.close().await.expect("close");
    let log = Log::open(dir.path(), LogOptions::default()).expect("reopen");
    assert_eq!(log.range(..).expect("range").count(), 4);
}

/// The segment before a removed, never-written one was fsynced before that one
/// was created (a roll syncs first): damage at its end is corruption, reported
/// at open, not a torn tail to cut (which would drop acknowledged records).
#[test]
fn damage_at_the_end_of_the_segment_before_a_removed_unwritten_one_is_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut first = segment_header(1);
    for seq in 1..=3 {
        first.extend(frame(seq, 1, 0, format!("record {seq}").as_bytes()));
    }
    // The last record's final byte is lost.
    first.pop();
    std::fs::write(dir.path().join(name(1)), &first).expect("write");
    std::fs::write(dir.path().join(name(4)), b"").expect("write");
    // Every open says so: the failed one left the unwritten segment in place.
    for _ in 0..2 {
        match Log::open(dir.path(), LogOptions::default()) {
            Err(StorageError::Corrupt { segment, .. }) => {
                assert_eq!(segment, dir.path().join(name(1)));
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
    assert_eq!(
        std::fs::read(dir.path().join(name(1))).expect("read"),
        first,
        "nothing was cut"
    );
}
