//! The file store's read paths share what consecutive records have in common
//! (event names, the stream id and context of a batch) and the buffer they
//! were read from: each record must still come back with its own name,
//! stream, context and payload, whichever path reads it (memory, files after a
//! reopen, a tail, a stream read).

use std::sync::Arc;

use foldkit::ExpectedVersion;
use foldkit::store::{AppendBatch, EventContext, EventStore, FileStore, NewEvent, RecordedEvent};

fn event(name: &str, i: u64) -> NewEvent {
    NewEvent {
        name: Arc::from(name),
        schema_version: 1,
        payload: format!("{name} payload {i}").into_bytes(),
    }
}

/// What each appended record must read back as.
#[derive(Debug, PartialEq)]
struct Expected {
    name: String,
    stream: Option<(String, u64)>,
    actor: Option<String>,
    payload: Vec<u8>,
}

fn seen(record: &RecordedEvent) -> Expected {
    Expected {
        name: record.name.to_string(),
        stream: record
            .stream
            .as_ref()
            .map(|s| (s.id.to_string(), s.version)),
        actor: record.context.as_ref().and_then(|c| c.actor.clone()),
        payload: record.payload.to_vec(),
    }
}

/// Batches alternating streams, contexts (equal, different, none) and names.
async fn fill(store: &FileStore) -> Vec<Expected> {
    let mut expected = Vec::new();
    let mut versions = std::collections::HashMap::<&str, u64>::new();
    let plan: [(Option<&str>, Option<&str>, &str); 6] = [
        (Some("a"), Some("ada"), "Placed"),
        (Some("b"), Some("ada"), "Placed"),
        (Some("a"), Some("bob"), "Shipped"),
        (None, None, "Noted"),
        (Some("a"), None, "Shipped"),
        (Some("b"), Some("bob"), "Noted"),
    ];
    for round in 0..50u64 {
        for (i, &(stream, actor, name)) in plan.iter().enumerate() {
            let count = 1 + (round + i as u64) % 3;
            let events: Vec<NewEvent> = (0..count).map(|k| event(name, round * 100 + k)).collect();
            let mut batch = AppendBatch::new(events.clone());
            if let Some(stream) = stream {
                let version = versions.entry(stream).or_default();
                batch = batch.to_stream(stream, ExpectedVersion::Exact(*version));
                *version += count;
            }
            if let Some(actor) = actor {
                batch = batch.with_context(Arc::new(EventContext::new().actor(actor)));
            }
            store.append(batch).await.expect("append");
            let first_version = stream.map(|s| versions[s] - count + 1);
            for (k, e) in events.into_iter().enumerate() {
                expected.push(Expected {
                    name: name.to_owned(),
                    stream: stream.map(|s| (s.to_owned(), first_version.unwrap() + k as u64)),
                    actor: actor.map(str::to_owned),
                    payload: e.payload,
                });
            }
        }
    }
    expected
}

async fn read_all(store: &FileStore) -> Vec<Expected> {
    let mut out = Vec::new();
    let mut from = 1;
    loop {
        let batch = store.read(from, 37).await.expect("read");
        let Some(last) = batch.last() else { break };
        from = last.position + 1;
        out.extend(batch.iter().map(seen));
    }
    out
}

async fn tail_all(store: &FileStore, count: usize) -> Vec<Expected> {
    let mut tail = store.tail(1);
    let mut out = Vec::new();
    while out.len() < count {
        out.extend(tail.next_batch(100).await.expect("tail").iter().map(seen));
    }
    out
}

#[tokio::test]
async fn every_read_path_gives_each_record_its_own_stream_context_and_payload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FileStore::open_async(dir.path(), Default::default())
        .await
        .expect("open");
    let expected = fill(&store).await;
    assert_eq!(read_all(&store).await, expected, "read, from memory");
    assert_eq!(tail_all(&store, expected.len()).await, expected, "tail");
    store.close().await.expect("close");

    let store = FileStore::open_async(dir.path(), Default::default())
        .await
        .expect("reopen");
    assert_eq!(read_all(&store).await, expected, "read, after a reopen");
    assert_eq!(
        tail_all(&store, expected.len()).await,
        expected,
        "tail, after a reopen"
    );
    let a: Vec<Expected> = store
        .read_stream("a", 1..=u64::MAX)
        .await
        .expect("read stream")
        .iter()
        .map(seen)
        .collect();
    let want: Vec<&Expected> = expected
        .iter()
        .filter(|e| e.stream.as_ref().is_some_and(|(s, _)| s == "a"))
        .collect();
    assert_eq!(a.iter().collect::<Vec<_>>(), want, "stream a");
    store.close().await.expect("close");
}
