//! The Db runtime end to end: append, fold, wait, restart, fold errors, close.
//!
//! The event and states are implemented by hand so these tests exercise the
//! runtime alone, without the derives.

use std::path::Path;
use std::time::Duration;

use foldkit::storage::{Log, LogOptions};
use foldkit::store::{AppendBatch, FileStore, FileStoreOptions, NewEvent, StoreError};
use foldkit::{
    Apply, CodecError, Db, DbError, Event, EventStore, FoldCause, FoldError, FoldErrorPolicy,
    FsyncPolicy, Meta, Seq, State,
};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Counter {
    Add(u64),
    /// Applying it fails: a rule the state enforces.
    Reject,
}

impl Event for Counter {
    const NAME: &'static str = "counter";
    const VERSION: u32 = 1;

    fn variant_name(&self) -> &'static str {
        match self {
            Counter::Add(_) => "Add",
            Counter::Reject => "Reject",
        }
    }

    fn decode(version: u32, bytes: &[u8]) -> Result<Self, CodecError> {
        foldkit::__private::decode_oldest(version, bytes)
    }
}

/// Sums the added amounts and remembers every seq it saw.
#[derive(Default, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Total {
    sum: u64,
    seqs: Vec<Seq>,
}

impl Apply<Counter> for Total {
    fn apply(&mut self, event: Counter, meta: &Meta) -> Result<(), FoldError> {
        match event {
            Counter::Add(n) => {
                self.sum += n;
                self.seqs.push(meta.seq);
                Ok(())
            }
            Counter::Reject => Err(FoldError::new("rejected")),
        }
    }
}

impl State for Total {
    const NAME: &'static str = "Total";
    const VERSION: u32 = 1;
    const FINGERPRINT: u64 = 1;

    const EVENTS: &'static [foldkit::EventType] = &[foldkit::EventType::of::<Counter>()];

    fn apply_recorded(
        &mut self,
        recorded: &foldkit::__private::RecordedEvent,
        meta: &Meta,
    ) -> Result<bool, FoldCause> {
        let Some(event) = foldkit::__private::decode_if::<Counter>(recorded)? else {
            return Ok(false);
        };
        self.apply(event, meta).map_err(FoldCause::Apply)?;
        Ok(true)
    }
}

/// A second state on the same log: counts every event, rejected or not.
#[derive(Default, Serialize, Deserialize, Debug)]
struct Tally {
    events: u64,
}

impl State for Tally {
    const NAME: &'static str = "Tally";
    const VERSION: u32 = 1;
    const FINGERPRINT: u64 = 2;

    const EVENTS: &'static [foldkit::EventType] = &[foldkit::EventType::of::<Counter>()];

    fn apply_recorded(
        &mut self,
        recorded: &foldkit::__private::RecordedEvent,
        _meta: &Meta,
    ) -> Result<bool, FoldCause> {
        let Some(_event) = foldkit::__private::decode_if::<Counter>(recorded)? else {
            return Ok(false);
        };
        self.events += 1;
        Ok(true)
    }
}

async fn open(dir: &Path) -> Db {
    Db::builder(dir)
        .fsync(FsyncPolicy::Never)
        .state::<Total>()
        .open()
        .await
        .expect("open db")
}

#[tokio::test]
async fn append_then_wait_then_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let total = db.state::<Total>();
    assert_eq!(total.applied_seq(), None);

    let first = db.append(Counter::Add(5)).await.expect("append");
    let second = db.append(Counter::Add(7)).await.expect("append");
    assert_eq!((first, second), (1, 2));
    total.wait_for_seq(second).await.expect("folded");

    assert_eq!(total.read().sum, 12);
    assert_eq!(total.read().seqs, [1, 2]);
    assert_eq!(total.applied_seq(), Some(2));
    db.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_append_is_visible_after_its_wait() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let total = db.state::<Total>();
    for i in 1..=500u64 {
        let seq = db.append(Counter::Add(i)).await.expect("append");
        total.wait_for_seq(seq).await.expect("folded");
        let state = total.read();
        assert_eq!(state.sum, i * (i + 1) / 2, "after seq {seq}");
        assert_eq!(state.seqs.last(), Some(&seq));
    }
    db.close().await.expect("close");
}

/// Single appends and small batches take the encode-in-place path; while the log rolls a full
/// segment they wait and go the owned way. Either way each is appended and
/// folded exactly once, in order, and replays the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_small_appends_across_segment_rolls_fold_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open_small = || {
        Db::builder(dir.path())
            .fsync(FsyncPolicy::Never)
            .segment_size(4096)
            .state::<Total>()
            .open()
    };
    let db = open_small().await.expect("open db");
    let writers: Vec<_> = (0..8u64)
        .map(|w| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                let mut i = 0;
                while i < 300u64 {
                    let value = w * 1000 + i;
                    if i % 3 == 0 {
                        // A small batch: packed like a single event, folded in place.
                        let batch = [Counter::Add(value), Counter::Add(value + 1)];
                        seqs.extend(db.append_batch(batch).await.expect("append batch"));
                        i += 2;
                    } else {
                        seqs.push(db.append(Counter::Add(value)).await.expect("append"));
                        i += 1;
                    }
                }
                seqs
            })
        })
        .collect();
    let mut appended = Vec::new();
    for writer in writers {
        appended.extend(writer.await.expect("writer"));
    }
    appended.sort_unstable();
    let expected: Vec<Seq> = (1..=2400).collect();
    assert_eq!(appended, expected, "every append got its own position");
    let total = db.state::<Total>();
    total.wait_for_seq(2400).await.expect("folded");
    let sum: u64 = (0..8u64)
        .map(|w| (0..300).map(|i| w * 1000 + i).sum::<u64>())
        .sum();
    let folded = total.read().clone();
    assert_eq!(folded.sum, sum);
    assert_eq!(folded.seqs, expected, "folded once each, in position order");
    db.close().await.expect("close");
    let reopened = open_small().await.expect("reopen");
    let replayed = reopened.state::<Total>();
    replayed.wait_for_seq(2400).await.expect("replayed");
    assert_eq!(*replayed.read(), folded);
    reopened.close().await.expect("close");
}

#[tokio::test]
async fn a_batch_gets_consecutive_seqs_and_folds_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let total = db.state::<Total>();
    db.append(Counter::Add(1)).await.expect("append");
    let seqs = db
        .append_batch([Counter::Add(10), Counter::Add(20), Counter::Add(30)])
        .await
        .expect("batch");
    assert_eq!(seqs, 2..=4);
    total.wait_for_seq(*seqs.end()).await.expect("folded");
    assert_eq!(total.read().sum, 61);
    assert_eq!(total.read().seqs, [1, 2, 3, 4]);

    let empty = db.append_batch(Vec::<Counter>::new()).await;
    assert!(
        matches!(empty, Err(DbError::EmptyBatch { event: "counter" })),
        "{empty:?}"
    );
    db.close().await.expect("close");
}

#[tokio::test]
async fn reopening_replays_the_log_into_the_same_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let mut last = 0;
    for i in 0..300 {
        last = db.append(Counter::Add(i % 7)).await.expect("append");
    }
    db.state::<Total>()
        .wait_for_seq(last)
        .await
        .expect("folded");
    let old = db.state::<Total>();
    let before = old.read().clone();
    db.close().await.expect("close");

    // The closed Db and its handle are still alive: they must not hold the directory.
    let db = open(dir.path()).await;
    let total = db.state::<Total>();
    total.wait_for_seq(last).await.expect("replayed");
    assert_eq!(*total.read(), before);
    assert_eq!(*old.read(), before, "a handle stays readable after close");
    // The log resumes after the replayed events.
    let next = db.append(Counter::Add(1)).await.expect("append");
    assert_eq!(next, last + 1);
    db.close().await.expect("close");
}

#[tokio::test]
async fn two_states_fold_one_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::builder(dir.path())
        .state::<Total>()
        .state::<Tally>()
        .fold_error_policy(FoldErrorPolicy::LogAndContinue)
        .open()
        .await
        .expect("open");
    let seqs = db
        .append_batch([Counter::Add(2), Counter::Reject, Counter::Add(3)])
        .await
        .expect("batch");
    let (total, tally) = (db.state::<Total>(), db.state::<Tally>());
    total.wait_for_seq(*seqs.end()).await.expect("total");
    tally.wait_for_seq(*seqs.end()).await.expect("tally");
    assert_eq!(total.read().sum, 5);
    assert_eq!(tally.read().events, 3);
    assert_eq!((total.skipped_events(), tally.skipped_events()), (1, 0));
    db.close().await.expect("close");
}

#[tokio::test]
async fn stop_policy_stops_at_the_failed_event_and_waiters_get_the_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let total = db.state::<Total>();
    db.append(Counter::Add(1)).await.expect("append");
    let rejected = db.append(Counter::Reject).await.expect("append");
    let after = db.append(Counter::Add(2)).await.expect("append");

    let error = tokio::time::timeout(Duration::from_secs(5), total.wait_for_seq(after))
        .await
        .expect("wait_for_seq must not hang on a stopped state")
        .expect_err("the fold stopped");
    let DbError::Fold(failure) = &error else {
        panic!("expected a fold error, got {error:?}");
    };
    assert_eq!((failure.state, failure.seq), ("Total", rejected));
    assert!(matches!(failure.cause, FoldCause::Apply(_)), "{failure:?}");
    assert!(error.to_string().contains("Total"), "{error}");

    // Events before the failure stay applied; the state does not advance past it.
    total
        .wait_for_seq(rejected - 1)
        .await
        .expect("before the failure");
    assert_eq!(total.read().sum, 1);
    assert_eq!(total.applied_seq(), Some(rejected - 1));
    assert_eq!(total.failure().map(|f| f.seq), Some(rejected));
    db.close().await.expect("close");
}

#[tokio::test]
async fn log_and_continue_skips_and_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::builder(dir.path())
        .fold_error_policy(FoldErrorPolicy::LogAndContinue)
        .state::<Total>()
        .open()
        .await
        .expect("open");
    let total = db.state::<Total>();
    db.append(Counter::Add(1)).await.expect("append");
    db.append(Counter::Reject).await.expect("append");
    let last = db.append(Counter::Add(2)).await.expect("append");
    total
        .wait_for_seq(last)
        .await
        .expect("skips the failed event");
    assert_eq!(total.read().sum, 3);
    assert_eq!(total.read().seqs, [1, 3]);
    assert_eq!(total.skipped_events(), 1);
    assert!(total.failure().is_none());
    db.close().await.expect("close");
}

/// Writes raw events (schema version, body) of type `counter`, as another (or
/// a buggy) binary would.
async fn write_raw(dir: &Path, events: &[(u32, Vec<u8>)]) {
    let store = FileStore::open_async(dir, FileStoreOptions::default())
        .await
        .expect("store");
    for (version, body) in events {
        let event = NewEvent {
            name: "counter".into(),
            schema_version: *version,
            payload: body.clone(),
        };
        store
            .append(AppendBatch::new(vec![event]))
            .await
            .expect("raw append");
    }
    store.close().await.expect("close store");
}

fn envelope(version: u32, body: &[u8]) -> (u32, Vec<u8>) {
    (version, body.to_vec())
}

#[tokio::test]
async fn a_record_with_an_unknown_version_is_reported_with_its_seq() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = postcard::to_allocvec(&Counter::Add(4)).expect("encode");
    write_raw(dir.path(), &[envelope(1, &good), envelope(99, &good)]).await;

    let db = open(dir.path()).await;
    let total = db.state::<Total>();
    let error = total
        .wait_for_seq(2)
        .await
        .expect_err("version 99 is unknown");
    let DbError::Fold(failure) = error else {
        panic!("expected a fold error, got {error:?}");
    };
    assert_eq!(failure.seq, 2);
    assert!(
        matches!(
            failure.cause,
            FoldCause::Decode(CodecError::NewerVersion {
                found: 99,
                current: 1,
                ..
            })
        ),
        "{failure:?}"
    );
    assert_eq!(total.read().sum, 4);
    db.close().await.expect("close");
}

#[tokio::test]
async fn malformed_bodies_are_typed_errors_with_their_seq() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = envelope(1, &postcard::to_allocvec(&Counter::Add(1)).expect("encode"));
    let bad_body = envelope(1, &[9, 9, 9]);
    let truncated = envelope(1, &[]);
    write_raw(dir.path(), &[good, bad_body, truncated]).await;

    // No snapshot at close: the second open must meet the bad records again.
    let db = Db::builder(dir.path())
        .fold_error_policy(FoldErrorPolicy::LogAndContinue)
        .snapshot_on_close(false)
        .state::<Total>()
        .open()
        .await
        .expect("open");
    let total = db.state::<Total>();
    total.wait_for_seq(3).await.expect("skipped");
    assert_eq!(total.skipped_events(), 2);
    db.close().await.expect("close");

    let db = open(dir.path()).await;
    let error = db
        .state::<Total>()
        .wait_for_seq(3)
        .await
        .expect_err("stops");
    let DbError::Fold(failure) = error else {
        panic!("expected a fold error, got {error:?}");
    };
    assert_eq!(failure.seq, 2);
    assert_eq!(failure.event.as_deref(), Some("counter"));
    assert!(matches!(failure.cause, FoldCause::Decode(_)), "{failure:?}");
    db.close().await.expect("close");
}

#[tokio::test]
async fn a_malformed_envelope_fails_open_naming_its_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_raw(
        dir.path(),
        &[envelope(
            1,
            &postcard::to_allocvec(&Counter::Add(1)).expect("encode"),
        )],
    )
    .await;
    // A record whose CRC is right but whose envelope is not (a buggy writer).
    let log = Log::open(dir.path().join("log"), LogOptions::default()).expect("log");
    log.append(&[7, 0, 1, 0, 0, 0]).await.expect("raw append");
    log.close().await.expect("close log");
    drop(log);
    std::fs::remove_file(dir.path().join("streams.idx")).expect("drop the index");
    let error = Db::builder(dir.path())
        .state::<Total>()
        .open()
        .await
        .expect_err("a corrupt envelope is never skipped");
    let DbError::Store(StoreError::Corrupt { what, .. }) = &error else {
        panic!("expected a corrupt-store error, got {error:?}");
    };
    assert!(what.contains("position 2"), "{what}");
}

#[tokio::test]
async fn close_ends_appends_and_pending_waits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let total = db.state::<Total>();
    let last = db.append(Counter::Add(3)).await.expect("append");
    let beyond = tokio::spawn({
        let total = total.clone();
        async move { total.wait_for_seq(last + 10).await }
    });
    db.close().await.expect("close");

    let appended = db.append(Counter::Add(1)).await;
    assert!(matches!(appended, Err(DbError::Closed)), "{appended:?}");
    let batch = db.append_batch([Counter::Add(1)]).await;
    assert!(matches!(batch, Err(DbError::Closed)), "{batch:?}");
    let pending = tokio::time::timeout(Duration::from_secs(5), beyond)
        .await
        .expect("a pending wait ends when the Db closes")
        .expect("join");
    assert!(matches!(pending, Err(DbError::Closed)), "{pending:?}");
    // Close folded everything appended before it; the state stays readable.
    total.wait_for_seq(last).await.expect("folded before close");
    assert_eq!(total.read().sum, 3);
    db.close().await.expect("closing twice is a no-op");
}

#[tokio::test]
async fn a_second_db_on_one_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let second = Db::builder(dir.path()).state::<Total>().open().await;
    assert!(
        matches!(second, Err(DbError::AlreadyOpen { .. })),
        "{second:?}"
    );
    db.close().await.expect("close");
    drop(db);
    open(dir.path())
        .await
        .close()
        .await
        .expect("reopen after close");
}

#[tokio::test]
async fn unregistered_states_and_events_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::builder(dir.path())
        .event::<Counter>()
        .open()
        .await
        .expect("open");
    let state = db.try_state::<Total>();
    assert!(
        matches!(state, Err(DbError::UnknownState { .. })),
        "{state:?}"
    );
    assert_eq!(
        db.append(Counter::Add(1)).await.expect("event log exists"),
        1
    );
    db.close().await.expect("close");

    let db = open(dir.path()).await;
    let unknown = db.append(Other).await;
    assert!(
        matches!(
            unknown,
            Err(DbError::UnknownEvent {
                event: "other",
                registered: None,
                ..
            })
        ),
        "{unknown:?}"
    );
    db.close().await.expect("close");
}

#[tokio::test]
#[should_panic(expected = "add `.state::<")]
async fn state_panics_on_an_unregistered_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::builder(dir.path())
        .event::<Counter>()
        .open()
        .await
        .expect("open");
    let _ = db.state::<Total>();
}

#[derive(Serialize, Deserialize, Debug)]
struct Other;

impl Event for Other {
    const NAME: &'static str = "other";
    const VERSION: u32 = 1;
    fn variant_name(&self) -> &'static str {
        "Other"
    }
    fn decode(version: u32, bytes: &[u8]) -> Result<Self, CodecError> {
        foldkit::__private::decode_oldest(version, bytes)
    }
}

/// Same stable name as `Counter`, different type.
#[derive(Serialize, Deserialize, Debug)]
struct Impostor;

impl Event for Impostor {
    const NAME: &'static str = "counter";
    const VERSION: u32 = 1;
    fn variant_name(&self) -> &'static str {
        "Impostor"
    }
    fn decode(version: u32, bytes: &[u8]) -> Result<Self, CodecError> {
        foldkit::__private::decode_oldest(version, bytes)
    }
}

/// A stable name no directory can carry.
#[derive(Serialize, Deserialize, Debug)]
struct Unnamed;

impl Event for Unnamed {
    const NAME: &'static str = "";
    const VERSION: u32 = 1;
    fn variant_name(&self) -> &'static str {
        "Unnamed"
    }
    fn decode(version: u32, bytes: &[u8]) -> Result<Self, CodecError> {
        foldkit::__private::decode_oldest(version, bytes)
    }
}

#[tokio::test]
async fn event_names_must_be_unique_and_usable_as_directories() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conflict = Db::builder(dir.path())
        .state::<Total>()
        .event::<Impostor>()
        .open()
        .await;
    assert!(
        matches!(
            conflict,
            Err(DbError::EventNameConflict {
                name: "counter",
                ..
            })
        ),
        "{conflict:?}"
    );
    let invalid = Db::builder(dir.path()).event::<Unnamed>().open().await;
    assert!(
        matches!(invalid, Err(DbError::InvalidEventName { name: "", .. })),
        "{invalid:?}"
    );
}

/// Panics on `Reject`: a bug in user code.
#[derive(Default, Serialize, Deserialize, Debug)]
struct Panicky {
    sum: u64,
}

impl State for Panicky {
    const NAME: &'static str = "Panicky";
    const VERSION: u32 = 1;
    const FINGERPRINT: u64 = 3;

    const EVENTS: &'static [foldkit::EventType] = &[foldkit::EventType::of::<Counter>()];

    fn apply_recorded(
        &mut self,
        recorded: &foldkit::__private::RecordedEvent,
        _meta: &Meta,
    ) -> Result<bool, FoldCause> {
        let Some(event) = foldkit::__private::decode_if::<Counter>(recorded)? else {
            return Ok(false);
        };
        match event {
            Counter::Add(n) => self.sum += n,
            Counter::Reject => panic!("a bug in apply"),
        }
        Ok(true)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_apply_stops_the_state_without_folding_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::builder(dir.path())
        .state::<Panicky>()
        .open()
        .await
        .expect("open");
    let state = db.state::<Panicky>();
    let seqs = db
        .append_batch([
            Counter::Add(1),
            Counter::Add(2),
            Counter::Reject,
            Counter::Add(4),
        ])
        .await
        .expect("batch");
    let last = *seqs.end();
    // The waiter may fold the batch itself and then carry the panic; either way
    // it does not hang.
    let first = tokio::spawn({
        let state = state.clone();
        async move { state.wait_for_seq(last).await }
    });
    let first = tokio::time::timeout(Duration::from_secs(5), first)
        .await
        .expect("no hang");
    assert!(!matches!(first, Ok(Ok(()))), "{first:?}");

    let error = state.wait_for_seq(last).await.expect_err("stopped");
    let DbError::Fold(failure) = error else {
        panic!("expected a fold error, got {error:?}");
    };
    assert_eq!(failure.seq, 3);
    assert!(matches!(failure.cause, FoldCause::Panicked), "{failure:?}");
    assert_eq!(
        state.read().sum,
        3,
        "the events before the panic are folded once"
    );
    assert_eq!(state.applied_seq(), Some(2));
    db.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_waiters_fold_every_event_once_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                let total = db.state::<Total>();
                for _ in 0..200 {
                    let seq = db.append(Counter::Add(1)).await.expect("append");
                    total.wait_for_seq(seq).await.expect("folded");
                    assert!(total.read().seqs.contains(&seq));
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    let total = db.state::<Total>();
    assert_eq!(total.read().sum, 800);
    assert_eq!(total.read().seqs, (1..=800).collect::<Vec<Seq>>());
    db.close().await.expect("close");
}

#[tokio::test]
async fn db_handles_and_their_futures_can_move_between_threads() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let total = db.state::<Total>();
    send_sync(&db);
    send_sync(&total);
    let append = db.append(Counter::Add(1));
    send(&append);
    let seq = append.await.expect("append");
    let wait = total.wait_for_seq(seq);
    send(&wait);
    wait.await.expect("folded");
    let batch = db.append_batch([Counter::Add(1)]);
    send(&batch);
    batch.await.expect("batch");
    let close = db.close();
    send(&close);
    close.await.expect("close");
}

/// Waits (without `wait_for_seq`, which folds itself) until the fold task has
/// folded `seq`.
async fn folded_by_the_task(total: &foldkit::Handle<Total>, seq: Seq) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while total.applied_seq() < Some(seq) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the fold task never folded {seq}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_made_through_the_store_seam_are_folded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let total = db.state::<Total>();
    let first = db.append(Counter::Add(1)).await.expect("append");
    assert_eq!(total.applied_seq(), Some(first), "the appender folded it");
    // Past the Db: the fold task must learn of it from the store.
    let batch = AppendBatch::new(vec![NewEvent {
        name: "counter".into(),
        schema_version: 1,
        payload: Counter::Add(2).encode().expect("encode"),
    }]);
    let appended = db.store().append(batch).await.expect("seam append");
    folded_by_the_task(&total, *appended.positions.end()).await;
    assert_eq!(total.read().sum, 3);
    db.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_that_cannot_fold_in_place_wakes_the_fold_task() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path()).await;
    let total = db.state::<Total>();
    let first = db.append(Counter::Add(0)).await.expect("append");
    total.wait_for_seq(first).await.expect("folded");
    // Let the fold task reach its sleep (else it may find the next append itself).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let seq = {
        // A reader holds the state: the appender cannot fold, and must not wait.
        let reading = total.read();
        let seq = db.append(Counter::Add(5)).await.expect("append");
        assert_eq!(reading.sum, 0);
        seq
    };
    folded_by_the_task(&total, seq).await;
    assert_eq!(total.read().sum, 5);
    assert_eq!(total.read().seqs, vec![first, seq]);
    db.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_while_the_appender_folds_does_not_fail_the_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::builder(dir.path())
        .state::<Panicky>()
        .open()
        .await
        .expect("open");
    let state = db.state::<Panicky>();
    db.append(Counter::Add(1)).await.expect("append");
    let seq = db
        .append(Counter::Reject)
        .await
        .expect("the append itself succeeded");
    let error = state.wait_for_seq(seq).await.expect_err("stopped");
    let DbError::Fold(failure) = error else {
        panic!("expected a fold error, got {error:?}");
    };
    assert_eq!(failure.seq, seq);
    assert!(matches!(failure.cause, FoldCause::Panicked), "{failure:?}");
    assert_eq!(state.read().sum, 1);
    db.close().await.expect("close");
}

/// An event whose `encode_into` replaces the buffer it is given rather than
/// appending to it (its documentation allows any body format).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Replacing(u64);

impl Event for Replacing {
    const NAME: &'static str = "replacing";
    const VERSION: u32 = 1;

    fn variant_name(&self) -> &'static str {
        "Replacing"
    }

    fn encode_into(&self, buf: &mut Vec<u8>) -> Result<(), CodecError> {
        *buf = postcard::to_allocvec(self).expect("encode");
        Ok(())
    }

    fn decode(version: u32, bytes: &[u8]) -> Result<Self, CodecError> {
        foldkit::__private::decode_oldest(version, bytes)
    }
}

/// Every `Replacing` value, in order.
#[derive(Default, Serialize, Deserialize, Debug)]
struct Seen {
    values: Vec<u64>,
}

impl State for Seen {
    const NAME: &'static str = "Seen";
    const VERSION: u32 = 1;
    const FINGERPRINT: u64 = 3;

    const EVENTS: &'static [foldkit::EventType] = &[foldkit::EventType::of::<Replacing>()];

    fn apply_recorded(
        &mut self,
        recorded: &foldkit::__private::RecordedEvent,
        _meta: &Meta,
    ) -> Result<bool, FoldCause> {
        let Some(Replacing(value)) = foldkit::__private::decode_if::<Replacing>(recorded)? else {
            return Ok(false);
        };
        self.values.push(value);
        Ok(true)
    }
}

#[tokio::test]
async fn a_batch_of_events_whose_encoder_replaces_its_buffer_is_stored_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::builder(dir.path())
        .fsync(FsyncPolicy::Never)
        .state::<Seen>()
        .open()
        .await
        .expect("open db");
    let seqs = db
        .append_batch([Replacing(1), Replacing(2), Replacing(3)])
        .await
        .expect("append batch");
    let seen = db.state::<Seen>();
    seen.wait_for_seq(*seqs.end()).await.expect("folded");
    assert_eq!(seen.read().values, [1, 2, 3]);
    db.close().await.expect("close");
}
