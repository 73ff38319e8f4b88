//! An open keeps the newest frames of the active segment, which recovery has
//! just read and checked, as the log's memory window: the reads that follow an
//! open (a fold replaying a small log from the start, a tail catching up) come
//! from memory instead of reading the segment again from a blocking thread.

use foldkit_storage::{FsyncPolicy, Log, LogOptions, Seq};

fn payload(seq: Seq) -> Vec<u8> {
    format!("record {seq} {}", "p".repeat(100)).into_bytes()
}

async fn written(dir: &std::path::Path, count: Seq) {
    let log = Log::open(dir, LogOptions::default().fsync(FsyncPolicy::Never)).expect("open");
    for seq in 1..=count {
        log.append(&payload(seq)).await.expect("append");
    }
    log.close().await.expect("close");
}

fn in_memory(log: &Log, from: Seq, max: usize) -> Option<Vec<(Seq, Vec<u8>)>> {
    let records = log.read_in_memory(from, max)?.expect("read");
    Some(
        records
            .into_iter()
            .map(|r| (r.seq, r.payload.to_vec()))
            .collect(),
    )
}

#[tokio::test]
async fn a_small_log_reopened_is_read_from_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    written(dir.path(), 100).await;
    let log = Log::open(dir.path(), LogOptions::default()).expect("reopen");
    let expected: Vec<_> = (1..=100).map(|seq| (seq, payload(seq))).collect();
    assert_eq!(in_memory(&log, 1, 1000).as_ref(), Some(&expected));

    // Appends after the open join the window after the recovered frames.
    log.append(&payload(101)).await.expect("append");
    log.sync().await.expect("sync");
    assert_eq!(
        in_memory(&log, 100, 10),
        Some(vec![(100, payload(100)), (101, payload(101))])
    );
    log.close().await.expect("close");
}

#[tokio::test]
async fn a_large_log_reopened_keeps_only_its_newest_frames_in_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    written(dir.path(), 5_000).await;
    let log = Log::open(dir.path(), LogOptions::default()).expect("reopen");
    assert_eq!(in_memory(&log, 1, 1), None, "the window is bounded");
    assert_eq!(in_memory(&log, 3_000, 1), None, "the window is bounded");
    assert_eq!(
        in_memory(&log, 5_000, 1),
        Some(vec![(5_000, payload(5_000))])
    );

    // A tail from the start reads the file, then the window, seamlessly.
    let mut tail = log.tail(1);
    let mut next = 1;
    while next <= 5_000 {
        for record in tail.next_batch(1_000).await.expect("tail") {
            assert_eq!((record.seq, &*record.payload), (next, &payload(next)[..]));
            next += 1;
        }
    }
    log.close().await.expect("close");
}
