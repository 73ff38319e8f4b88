//! The handles are `Send + Sync` and every public future is `Send`, so they can be moved
//! into `tokio::spawn` and shared across tasks (as tokio's own `tests/async_send_sync.rs`
//! pins for its types).
//!
//! These are compile-time checks: the functions below are type-checked, never run. A
//! handle that stopped being `Sync`, or a future that started holding a `!Send` guard
//! across an `.await`, fails to compile this file.

#![allow(dead_code)]

use foldkit::prelude::*;
use foldkit::watch::WatchStream;
use foldkit::{Aggregates, DbBuilder, ExecuteError, ReadGuard};

fn send<T: Send>(_: &T) {}
fn send_sync_static<T: Send + Sync + 'static>() {}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
enum Ev {
    Added { id: u64 },
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Row {
    #[entity(id)]
    id: u64,
}

#[derive(State, Default, Serialize, Deserialize)]
#[state(event = Ev)]
struct Rows {
    rows: Table<Row>,
}

impl Apply<Ev> for Rows {
    fn apply(&mut self, Ev::Added { id }: Ev, _: &Meta) -> Result<(), FoldError> {
        self.rows.insert(Row { id });
        Ok(())
    }
}

#[derive(Default, Clone)]
struct Counter;

#[derive(Debug, thiserror::Error)]
#[error("refused")]
struct Refused;

impl Aggregate for Counter {
    const NAME: &'static str = "counter";
    type Event = Ev;
    type Command = u64;
    type Error = Refused;
    fn handle(&self, id: u64) -> Result<Vec<Ev>, Refused> {
        Ok(vec![Ev::Added { id }])
    }
    fn apply(&mut self, _: &Ev) {}
}

#[test]
fn handles_are_send_and_sync() {
    send_sync_static::<Db>();
    send_sync_static::<DbBuilder>();
    send_sync_static::<Handle<Rows>>();
    send_sync_static::<Aggregates<Counter>>();
    send_sync_static::<Table<Row>>();
    // A stream is polled by one task at a time: `Send` is what it needs.
    fn stream_is_send(stream: &WatchStream<Row>) {
        send(stream);
    }
    send_sync_static::<<Row as Entity>::Query<foldkit::Detached>>();
    send_sync_static::<foldkit::QueryCore<Row>>();
    send_sync_static::<foldkit::DbError>();
    send_sync_static::<ExecuteError<Refused>>();
    send_sync_static::<foldkit::FoldError>();
    // A read guard is shared, not moved: `Sync` is what a scoped borrow needs.
    fn guard_is_sync(guard: &ReadGuard<'_, Rows>) {
        fn sync<T: Sync>(_: &T) {}
        sync(guard);
    }
}

/// Every public future, created (not awaited) from borrowed handles.
fn futures_are_send(
    builder: DbBuilder,
    db: &Db,
    handle: &Handle<Rows>,
    counters: &Aggregates<Counter>,
    dir: &std::path::Path,
) {
    send(&builder.open());
    send(&Db::builder(dir).state::<Rows>().open());
    send(&db.append(Ev::Added { id: 1 }));
    send(&db.append_batch(vec![Ev::Added { id: 2 }]));
    send(&db.append_to("s/1", ExpectedVersion::Any, [Ev::Added { id: 3 }]));
    send(&db.stream_version("s/1"));
    send(&db.append_with(Ev::Added { id: 4 }, foldkit::EventContext::new()));
    send(&db.last_seq());
    send(&db.snapshot());
    send(&db.snapshot_to_disk());
    send(&db.compact());
    send(&db.verify_chain());
    send(&handle.state_at(1));
    send(&handle.state_at_time(1));
    send(&counters.execute_with(1, 5, foldkit::EventContext::new()));
    let store: &dyn foldkit::EventStore = db.store().as_ref();
    send(&store.append(foldkit::store::AppendBatch::new(Vec::new())));
    send(&store.read(1, 1));
    let mut tail = store.tail(1);
    send(&tail.next_batch(1));
    send(&db.read_stream::<Ev>("s/1"));
    send(&db.read_stream_until::<Ev>("s/1", 1));
    send(&db.close());
    send(&handle.wait_for_seq(foldkit::Seq::default()));
    send(&counters.execute(1, 5));
    send(&counters.execute_expecting(1, ExpectedVersion::Any, 5));
    send(&counters.load(1));
    send(&counters.load_at(1, 1));
    send(&counters.events(1));
    send(&counters.exists(1));
    let stream = handle.watch(|s: &Rows| &s.rows).where_id(1).stream();
    send(&stream);
    send(&handle.watch_value(|s: &Rows| s.rows.len()));
}

#[test]
fn public_futures_are_send() {
    let _checked: fn(DbBuilder, &Db, &Handle<Rows>, &Aggregates<Counter>, &std::path::Path) =
        futures_are_send;
}
