//! The store contract as tests: every [`EventStore`] runs this suite.
//!
//! A store crate implements [`StoreFactory`] (a fresh store per case name, the
//! same store again when a case reopens it) and expands
//! [`store_contract_tests!`](crate::store_contract_tests) in a test file, which
//! makes one `#[tokio::test]` per case:
//!
//! ```no_run
//! use foldkit::store::{StoreError, contract::StoreFactory};
//! use futures::future::BoxFuture;
//!
//! struct Files(tempfile::TempDir);
//!
//! impl StoreFactory for Files {
//!     type Store = foldkit::FileStore;
//!     fn open(&self, name: &str) -> BoxFuture<'_, Result<Self::Store, StoreError>> {
//!         let dir = self.0.path().join(name);
//!         Box::pin(foldkit::FileStore::open_async(dir, Default::default()))
//!     }
//! }
//!
//! foldkit::store_contract_tests!(Files(tempfile::tempdir().expect("tempdir")));
//! ```
//!
//! Each case panics with a message naming the broken promise. The cases are
//! test bodies, run to completion by a test: none is meant to be dropped
//! half-way (cancel safety does not apply).

use std::collections::HashSet;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::{AppendBatch, EventContext, EventStore, NewEvent, RecordedEvent, StoreError};
use crate::db::ExpectedVersion;

/// Opens the stores the suite tests.
pub trait StoreFactory: Send + Sync {
    /// The store under test.
    type Store: EventStore;

    /// A store named `name`: empty the first time a name is used; the same
    /// store's data on later calls (after the previous handle was closed).
    fn open(&self, name: &str) -> BoxFuture<'_, Result<Self::Store, StoreError>>;
}

fn event(name: &str, version: u32, payload: &[u8]) -> NewEvent {
    NewEvent {
        name: Arc::from(name),
        schema_version: version,
        payload: payload.to_vec(),
    }
}

fn one(name: &str, payload: &[u8]) -> AppendBatch {
    AppendBatch::new(vec![event(name, 1, payload)])
}

async fn open<F: StoreFactory>(factory: &F, name: &str) -> F::Store {
    factory
        .open(name)
        .await
        .unwrap_or_else(|e| panic!("open store {name}: {e}"))
}

/// Every event from position 1 on, read in pages.
pub async fn read_all(store: &dyn EventStore) -> Vec<RecordedEvent> {
    let mut out: Vec<RecordedEvent> = Vec::new();
    let mut from = 1;
    loop {
        let page = store.read(from, 100).await.expect("read");
        let Some(last) = page.last().map(|e| e.position) else {
            return out;
        };
        out.extend(page);
        from = last + 1;
    }
}

fn assert_increasing(events: &[RecordedEvent]) {
    for pair in events.windows(2) {
        assert!(
            pair[0].position < pair[1].position,
            "positions must strictly increase: {} then {}",
            pair[0].position,
            pair[1].position
        );
    }
}

/// Appended events come back in order, with every field as written.
pub async fn appends_round_trip_in_order<F: StoreFactory>(factory: &F) {
    let store = open(factory, "round-trip").await;
    let context = Arc::new(
        EventContext::new()
            .correlation_id("c-1")
            .caused_by(7)
            .actor("ann")
            .with("k", "v"),
    );
    let a = store.append(one("alpha", b"one")).await.expect("append");
    let b = store
        .append(
            AppendBatch::new(vec![event("beta", 3, b"two")])
                .to_stream("acct/1", ExpectedVersion::NoStream)
                .with_context(Arc::clone(&context)),
        )
        .await
        .expect("append");
    let c = store.append(one("alpha", b"three")).await.expect("append");
    assert!(a.positions.start() < b.positions.start() && b.positions.start() < c.positions.start());
    assert_eq!((a.stream_version, b.stream_version), (0, 1));
    let events = read_all(&store).await;
    assert_eq!(events.len(), 3, "{events:?}");
    assert_increasing(&events);
    assert_eq!(events[0].position, *a.positions.start());
    assert_eq!(
        (
            &*events[0].name,
            events[0].schema_version,
            &events[0].payload[..]
        ),
        ("alpha", 1, &b"one"[..])
    );
    assert_eq!(
        (
            &*events[1].name,
            events[1].schema_version,
            &events[1].payload[..]
        ),
        ("beta", 3, &b"two"[..])
    );
    let stream = events[1]
        .stream
        .as_ref()
        .expect("a stream event carries its stream");
    assert_eq!((&*stream.id, stream.version), ("acct/1", 1));
    assert_eq!(events[1].context.as_deref(), Some(&*context));
    assert!(events[0].stream.is_none() && events[0].context.is_none());
    assert!(
        events[0].timestamp <= events[1].timestamp && events[1].timestamp <= events[2].timestamp,
        "timestamps are monotonic"
    );
    assert_eq!(
        store.last_position().await.expect("last"),
        Some(*c.positions.end())
    );
    let from_second = store.read(events[1].position, 10).await.expect("read");
    assert_eq!(from_second.len(), 2);
    assert!(
        store
            .read(events[2].position + 1, 10)
            .await
            .expect("read")
            .is_empty()
    );
    store.close().await.expect("close");
}

/// A batch is written whole, at consecutive places of the order, with no other
/// event in between, even with concurrent appenders.
pub async fn batches_are_atomic_and_contiguous<F: StoreFactory>(factory: &F) {
    let store = Arc::new(open(factory, "batches").await);
    let mut tasks = Vec::new();
    for task in 0..8u8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut appended = Vec::new();
            for batch in 0..15u8 {
                let events = (0..3u8).map(|i| event("e", 1, &[task, batch, i])).collect();
                appended.push(
                    store
                        .append(AppendBatch::new(events))
                        .await
                        .expect("append"),
                );
            }
            appended
        }));
    }
    let mut batches = Vec::new();
    for task in tasks {
        batches.extend(task.await.expect("join"));
    }
    let events = read_all(&*store).await;
    assert_eq!(events.len(), 8 * 15 * 3);
    assert_increasing(&events);
    for appended in &batches {
        let at = events
            .iter()
            .position(|e| e.position == *appended.positions.start())
            .expect("the batch's first event is stored");
        let run = &events[at..at + 3];
        assert_eq!(
            run.last().map(|e| e.position),
            Some(*appended.positions.end()),
            "a batch's events are consecutive in the order"
        );
        let (task, batch) = (run[0].payload[0], run[0].payload[1]);
        for (i, e) in run.iter().enumerate() {
            assert_eq!(
                &e.payload[..],
                &[task, batch, i as u8],
                "no other event inside a batch"
            );
        }
    }
    store.close().await.expect("close");
}

/// A missed expectation is a `Conflict` with the actual version, and writes nothing.
pub async fn expectations_conflict_and_write_nothing<F: StoreFactory>(factory: &F) {
    let store = open(factory, "conflicts").await;
    let to = |expected| AppendBatch::new(vec![event("e", 1, b"x")]).to_stream("s/1", expected);
    assert_eq!(
        store
            .append(to(ExpectedVersion::NoStream))
            .await
            .expect("first")
            .stream_version,
        1
    );
    match store.append(to(ExpectedVersion::NoStream)).await {
        Err(StoreError::Conflict { stream, actual, .. }) => {
            assert_eq!((stream.as_str(), actual), ("s/1", 1))
        }
        other => panic!("NoStream on an existing stream must conflict, got {other:?}"),
    }
    assert_eq!(
        store
            .append(to(ExpectedVersion::Exact(1)))
            .await
            .expect("exact")
            .stream_version,
        2
    );
    match store.append(to(ExpectedVersion::Exact(1))).await {
        Err(StoreError::Conflict {
            expected, actual, ..
        }) => assert_eq!((expected, actual), (ExpectedVersion::Exact(1), 2)),
        other => panic!("a stale Exact must conflict, got {other:?}"),
    }
    assert_eq!(
        store
            .append(to(ExpectedVersion::Any))
            .await
            .expect("any")
            .stream_version,
        3
    );
    assert_eq!(read_all(&store).await.len(), 3, "a conflict writes nothing");
    assert_eq!(store.stream_version("s/1").await.expect("version"), 3);
    let empty = AppendBatch::new(vec![event("e", 1, b"x")]).to_stream("", ExpectedVersion::Any);
    assert!(
        store.append(empty).await.is_err(),
        "an empty stream id is refused"
    );
    assert!(
        store.append(AppendBatch::new(Vec::new())).await.is_err(),
        "an empty batch is refused"
    );
    assert_eq!(read_all(&store).await.len(), 3);
    store.close().await.expect("close");
}

/// Concurrent writers of one stream never both succeed at one version.
pub async fn one_stream_one_writer_per_version<F: StoreFactory>(factory: &F) {
    let store = Arc::new(open(factory, "stream-race").await);
    let mut tasks = Vec::new();
    for task in 0..8u8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            while done < 10 {
                let version = store.stream_version("race/1").await.expect("version");
                let batch = AppendBatch::new(vec![event("e", 1, &[task, done])])
                    .to_stream("race/1", ExpectedVersion::Exact(version));
                match store.append(batch).await {
                    Ok(appended) => {
                        assert_eq!(appended.stream_version, version + 1);
                        done += 1;
                    }
                    Err(StoreError::Conflict { .. }) => tokio::task::yield_now().await,
                    Err(other) => panic!("append: {other}"),
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("join");
    }
    assert_eq!(store.stream_version("race/1").await.expect("version"), 80);
    let events = store
        .read_stream("race/1", 1..=u64::MAX)
        .await
        .expect("read stream");
    let versions: Vec<u64> = events
        .iter()
        .map(|e| e.stream.as_ref().expect("stream").version)
        .collect();
    assert_eq!(versions, (1..=80).collect::<Vec<_>>());
    assert_increasing(&events);
    let distinct: HashSet<Vec<u8>> = events.iter().map(|e| e.payload.to_vec()).collect();
    assert_eq!(distinct.len(), 80, "every success is stored once");
    store.close().await.expect("close");
}

/// `read_stream` returns the versions asked for, in order, and nothing of other streams.
pub async fn read_stream_by_version<F: StoreFactory>(factory: &F) {
    let store = open(factory, "read-stream").await;
    for i in 0..5u8 {
        store
            .append(
                AppendBatch::new(vec![event("e", 1, &[i])]).to_stream("mine", ExpectedVersion::Any),
            )
            .await
            .expect("append");
        store
            .append(
                AppendBatch::new(vec![event("e", 1, &[100 + i])])
                    .to_stream("other", ExpectedVersion::Any),
            )
            .await
            .expect("append");
        store
            .append(one("loose", &[200 + i]))
            .await
            .expect("append");
    }
    let some = store.read_stream("mine", 2..=4).await.expect("read");
    assert_eq!(
        some.iter().map(|e| e.payload[0]).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        some.iter()
            .map(|e| e.stream.as_ref().expect("stream").version)
            .collect::<Vec<_>>(),
        [2, 3, 4]
    );
    assert_eq!(
        store
            .read_stream("mine", 1..=u64::MAX)
            .await
            .expect("read")
            .len(),
        5
    );
    assert!(
        store
            .read_stream("nobody", 1..=u64::MAX)
            .await
            .expect("read")
            .is_empty()
    );
    assert_eq!(store.stream_version("nobody").await.expect("version"), 0);
    store.close().await.expect("close");
}

/// A retry with the same idempotency key appends nothing and returns the first result.
pub async fn idempotent_appends<F: StoreFactory>(factory: &F) {
    let store = Arc::new(open(factory, "idempotent").await);
    let keyed = || {
        AppendBatch::new(vec![event("e", 1, b"a"), event("e", 1, b"b")])
            .to_stream("pay/1", ExpectedVersion::Any)
            .idempotency_key("pay-1")
    };
    let first = store.append(keyed()).await.expect("append");
    assert!(!first.deduplicated);
    let again = store.append(keyed()).await.expect("retry");
    assert!(again.deduplicated, "a retry says it was deduplicated");
    assert_eq!(
        (again.positions.clone(), again.stream_version),
        (first.positions.clone(), first.stream_version)
    );
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let batch = AppendBatch::new(vec![event("e", 1, b"c")]).idempotency_key("pay-2");
            store.append(batch).await.expect("append")
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("join"));
    }
    assert_eq!(
        results.iter().filter(|r| !r.deduplicated).count(),
        1,
        "exactly one concurrent retry appends"
    );
    assert!(results.windows(2).all(|w| w[0].positions == w[1].positions));
    assert_eq!(read_all(&*store).await.len(), 3);
    assert_eq!(store.stream_version("pay/1").await.expect("version"), 2);
    store.close().await.expect("close");
}

/// A tail returns the stored events, then live ones, each once and in order,
/// and a dropped `next_batch` loses nothing.
pub async fn tails_are_gap_free_and_cancel_safe<F: StoreFactory>(factory: &F) {
    let store = Arc::new(open(factory, "tail").await);
    for i in 0..10u32 {
        store
            .append(one("e", &i.to_le_bytes()))
            .await
            .expect("append");
    }
    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for i in 10..60u32 {
                store
                    .append(one("e", &i.to_le_bytes()))
                    .await
                    .expect("append");
                if i % 7 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let mut tail = store.tail(1);
    let mut seen = Vec::new();
    let mut drops = 0;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while seen.len() < 60 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the tail stalled at {} events",
            seen.len()
        );
        // Every other call is polled once and dropped.
        if drops % 2 == 0 {
            drops += 1;
            if let Some(batch) = tail.next_batch(7).now_or_never() {
                seen.extend(batch.expect("tail"));
            }
            continue;
        }
        drops += 1;
        let batch = tokio::time::timeout(std::time::Duration::from_secs(10), tail.next_batch(7))
            .await
            .expect("the tail delivers live events")
            .expect("tail");
        seen.extend(batch);
    }
    writer.await.expect("join");
    assert_increasing(&seen);
    let values: Vec<u32> = seen
        .iter()
        .map(|e| u32::from_le_bytes(e.payload[..4].try_into().expect("4 bytes")))
        .collect();
    assert_eq!(
        values,
        (0..60).collect::<Vec<_>>(),
        "every event once, in order"
    );
    assert!(tail.position() > seen.last().expect("seen").position);
    store.close().await.expect("close");
}

/// Everything survives a close and a reopen: events, streams, keys, snapshots,
/// checkpoints; new positions come after the old ones.
pub async fn restart_keeps_everything<F: StoreFactory>(factory: &F) {
    let store = open(factory, "restart").await;
    store.append(one("e", b"1")).await.expect("append");
    let keyed = || {
        AppendBatch::new(vec![event("e", 1, b"2")])
            .to_stream("s/9", ExpectedVersion::NoStream)
            .idempotency_key("k-9")
    };
    let first = store.append(keyed()).await.expect("append");
    store
        .write_snapshot("State", 2, b"snap".to_vec())
        .await
        .expect("snapshot");
    store
        .write_checkpoint("mailer", 2)
        .await
        .expect("checkpoint");
    let before = read_all(&store).await;
    store.close().await.expect("close");
    drop(store);

    let store = open(factory, "restart").await;
    assert_eq!(
        read_all(&store).await,
        before,
        "the events come back as they were"
    );
    assert_eq!(store.stream_version("s/9").await.expect("version"), 1);
    let retry = store.append(keyed()).await.expect("retry after a restart");
    assert!(
        retry.deduplicated && retry.positions == first.positions,
        "keys survive a restart"
    );
    assert_eq!(store.list_snapshots("State").await.expect("list"), [2]);
    assert_eq!(
        store
            .read_snapshot("State", 2)
            .await
            .expect("read")
            .as_deref(),
        Some(&b"snap"[..])
    );
    assert_eq!(
        store.read_checkpoint("mailer").await.expect("checkpoint"),
        Some(2)
    );
    let next = store.append(one("e", b"3")).await.expect("append");
    assert!(*next.positions.start() > before.last().expect("events").position);
    store.close().await.expect("close");
}

/// Snapshots and checkpoints are stored, listed newest first, replaced and
/// removed; their names are listed.
pub async fn snapshots_and_checkpoints<F: StoreFactory>(factory: &F) {
    let store = open(factory, "snapshots").await;
    assert!(store.list_snapshots("S").await.expect("list").is_empty());
    store
        .write_snapshot("S", 10, b"ten".to_vec())
        .await
        .expect("write");
    store
        .write_snapshot("S", 20, b"twenty".to_vec())
        .await
        .expect("write");
    store
        .write_snapshot("T", 5, b"other state".to_vec())
        .await
        .expect("write");
    assert_eq!(store.list_snapshots("S").await.expect("list"), [20, 10]);
    assert_eq!(
        store.read_snapshot("S", 10).await.expect("read").as_deref(),
        Some(&b"ten"[..])
    );
    store
        .write_snapshot("S", 20, b"twenty again".to_vec())
        .await
        .expect("replace");
    assert_eq!(
        store.read_snapshot("S", 20).await.expect("read").as_deref(),
        Some(&b"twenty again"[..])
    );
    store.remove_snapshot("S", 10).await.expect("remove");
    store
        .remove_snapshot("S", 10)
        .await
        .expect("removing twice is fine");
    assert_eq!(store.list_snapshots("S").await.expect("list"), [20]);
    assert_eq!(store.read_snapshot("S", 10).await.expect("read"), None);
    assert_eq!(store.list_snapshots("T").await.expect("list"), [5]);
    assert_eq!(store.read_checkpoint("sub").await.expect("read"), None);
    store.write_checkpoint("sub", 4).await.expect("write");
    store.write_checkpoint("sub", 9).await.expect("replace");
    assert_eq!(store.read_checkpoint("sub").await.expect("read"), Some(9));
    // Names are listed (sorted, as given) for tools that know no types.
    store
        .write_snapshot("process-manager.a:b", 3, b"pm".to_vec())
        .await
        .expect("write");
    store.write_checkpoint("mailer/eu", 1).await.expect("write");
    assert_eq!(
        store.snapshot_names().await.expect("snapshot names"),
        ["S", "T", "process-manager.a:b"]
    );
    store.remove_snapshot("T", 5).await.expect("remove");
    assert_eq!(
        store.snapshot_names().await.expect("snapshot names"),
        ["S", "process-manager.a:b"],
        "a name whose last snapshot was removed is not listed"
    );
    assert_eq!(
        store.checkpoint_names().await.expect("checkpoint names"),
        ["mailer/eu", "sub"]
    );
    store.close().await.expect("close");
}

/// A streamed snapshot is stored at the position its source returns, whole; one whose
/// source fails is not stored at all (nor does it replace the one at its position).
pub async fn streamed_snapshots_are_whole_or_absent<F: StoreFactory>(factory: &F) {
    let store = open(factory, "streamed").await;
    store.append(one("e", b"1")).await.expect("append");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| i as u8).collect();
    let bytes = big.clone();
    let position = store
        .write_snapshot_streamed(
            "S",
            Box::new(move |out: &mut dyn std::io::Write| {
                for part in bytes.chunks(100_000) {
                    out.write_all(part)?;
                }
                Ok(1)
            }),
        )
        .await
        .expect("streamed write");
    assert_eq!(position, 1);
    assert_eq!(store.list_snapshots("S").await.expect("list"), [1]);
    assert!(
        store.read_snapshot("S", 1).await.expect("read").as_deref() == Some(&big[..]),
        "the streamed bytes are stored whole"
    );
    let failed = store
        .write_snapshot_streamed(
            "S",
            Box::new(|out: &mut dyn std::io::Write| {
                out.write_all(b"half a snapshot")?;
                Err(std::io::Error::other("the encode failed"))
            }),
        )
        .await;
    assert!(failed.is_err(), "a failing source fails the write");
    assert_eq!(store.list_snapshots("S").await.expect("list"), [1]);
    assert!(
        store.read_snapshot("S", 1).await.expect("read").as_deref() == Some(&big[..]),
        "a failed write leaves the stored snapshot as it was"
    );
    store.close().await.expect("close");
}

/// After `close`, appends are refused and tails end once they have read everything.
pub async fn close_refuses_appends_and_ends_tails<F: StoreFactory>(factory: &F) {
    let store = open(factory, "close").await;
    store.append(one("e", b"1")).await.expect("append");
    let mut tail = store.tail(1);
    let first = tail.next_batch(10).await.expect("tail");
    assert_eq!(first.len(), 1);
    store.close().await.expect("close");
    match tokio::time::timeout(std::time::Duration::from_secs(10), tail.next_batch(10))
        .await
        .expect("a tail ends at close")
    {
        Err(StoreError::Closed) => {}
        other => panic!("a tail of a closed store ends with Closed, got {other:?}"),
    }
    assert!(
        matches!(store.append(one("e", b"2")).await, Err(StoreError::Closed)),
        "appends after close are refused"
    );
    store.close().await.expect("closing twice is a no-op");
}

/// Expands to one `#[tokio::test]` per case of the store contract, each with
/// a store from `$factory` (an expression of a type implementing
/// [`StoreFactory`](crate::store::contract::StoreFactory), made once per test).
///
/// `store_contract_tests!(optional $factory)` takes an `Option` of a factory
/// instead: each case returns at once (skips) on `None`, for stores that need a
/// server the machine may not have. The list of cases lives here only.
#[macro_export]
macro_rules! store_contract_tests {
    (optional $factory:expr) => {
        $crate::store_contract_tests!(@cases $factory;
            appends_round_trip_in_order,
            batches_are_atomic_and_contiguous,
            expectations_conflict_and_write_nothing,
            one_stream_one_writer_per_version,
            read_stream_by_version,
            idempotent_appends,
            tails_are_gap_free_and_cancel_safe,
            restart_keeps_everything,
            snapshots_and_checkpoints,
            streamed_snapshots_are_whole_or_absent,
            close_refuses_appends_and_ends_tails,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let ::core::option::Option::Some(factory) = $factory else {
                    return;
                };
                $crate::store::contract::$case(&factory).await;
            }
        )*
    };
    ($factory:expr) => {
        $crate::store_contract_tests!(optional ::core::option::Option::Some($factory));
    };
}
