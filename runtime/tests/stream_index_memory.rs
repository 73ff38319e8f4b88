//! Heap per stream of the file store's stream index once loaded from
//! `streams.idx` at open (issue #15, "Streams at scale").
//!
//! A counting global allocator measures the live bytes a reopened store holds
//! beyond what its log alone holds (the log's own memory depends on its
//! segments, not on streams), in a store whose records are spread over many
//! streams (10 events each, ids like `counter/12345`), minus the same in a
//! store of as many records in no stream. Each stream costs its hash table
//! slot (an `Arc<str>` and a `Vec<Seq>`, 40 bytes, at the table's load factor),
//! its id (16 bytes of counts + the id) and 8 bytes per event: measured 179 B
//! for 10 events and a 13-byte id (sizes as requested from the allocator,
//! without its own per-allocation overhead).

use std::path::Path;
use std::sync::Arc;

use foldkit::ExpectedVersion;
use foldkit::store::{AppendBatch, EventStore, FileStore, FileStoreOptions, NewEvent};
use foldkit_storage::{FsyncPolicy, Log, LogOptions};

#[path = "../benches/support/counting_alloc.rs"]
mod counting_alloc;

const STREAMS: u64 = 20_000;
const EVENTS_PER_STREAM: u64 = 10;

fn options() -> FileStoreOptions {
    let mut options = FileStoreOptions::default();
    options.fsync = Some(FsyncPolicy::Never);
    options
}

/// Writes `STREAMS * EVENTS_PER_STREAM` records, round-robin over the streams
/// (or in no stream), and closes the store (which persists the index).
fn fill(dir: &Path, in_streams: bool) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = FileStore::open_async(dir, options()).await.expect("open");
        for round in 0..EVENTS_PER_STREAM {
            for id in 0..STREAMS {
                let event = NewEvent {
                    name: Arc::from("counter_event"),
                    schema_version: 1,
                    payload: vec![1; 8],
                };
                let mut batch = AppendBatch::new(vec![event]);
                if in_streams {
                    batch = batch.to_stream(
                        format!("counter/{}", 10_000 + id),
                        ExpectedVersion::Exact(round),
                    );
                }
                store.append(batch).await.expect("append");
            }
        }
        store.close().await.expect("close");
    });
}

/// The live heap a store of `dir` holds once opened (index loaded, no scan),
/// the heap its log alone holds, and its number of streams.
fn held_after_open(dir: &Path) -> (usize, usize, usize) {
    let before = counting_alloc::live();
    let log = Log::open(dir.join("log"), LogOptions::default()).expect("open the log");
    let log_held = counting_alloc::live().saturating_sub(before);
    drop(log);
    let before = counting_alloc::live();
    let store = FileStore::open(dir, options()).expect("reopen");
    let held = counting_alloc::live().saturating_sub(before);
    let streams = store.stream_count();
    drop(store);
    (held, log_held, streams)
}

#[test]
fn a_reopened_stream_index_holds_at_most_200_bytes_per_stream_of_10_events() {
    let (with, without) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    fill(with.path(), true);
    fill(without.path(), false);
    let (base, base_log, none) = held_after_open(without.path());
    let (held, log, streams) = held_after_open(with.path());
    assert_eq!((none, streams as u64), (0, STREAMS));
    // What the store holds beyond its log, over what it holds with no stream.
    let index = held
        .saturating_sub(log)
        .saturating_sub(base.saturating_sub(base_log));
    let per_stream = index as f64 / STREAMS as f64;
    println!(
        "stream index: {per_stream:.0} B per stream of {EVENTS_PER_STREAM} events \
         (store {held} B, its log {log} B; without streams: store {base} B, log {base_log} B)"
    );
    assert!(
        per_stream <= 200.0,
        "{per_stream:.0} B per stream of {EVENTS_PER_STREAM} events"
    );
    assert!(
        per_stream >= 8.0 * EVENTS_PER_STREAM as f64,
        "the index is measured"
    );
}
