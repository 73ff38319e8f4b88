//! Store-level behaviour of `PgStore` against a throwaway server: schema
//! creation, appends and reads, conflicts, idempotency, snapshots, reconnects.

mod support;

use std::sync::Arc;
use std::time::Duration;

use foldkit::store::{AppendBatch, EventContext, EventStore, ExpectedVersion, StoreError};
use foldkit_postgres::{PgStore, SCHEMA_VERSION};
use support::{DB, database, event, runtime};

#[test]
fn eight_concurrent_connects_create_the_schema_once() {
    let Some((server, url)) = database(false) else {
        return;
    };
    runtime().block_on(async {
        let connects = (0..8).map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgStore::connect(&url).await })
        });
        for c in futures::future::join_all(connects).await {
            c.expect("join").expect("connect");
        }
    });
    let versions = server
        .psql(
            DB,
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM foldkit_schema_migrations",
        )
        .expect("psql");
    let expected: Vec<String> = (1..=SCHEMA_VERSION).map(|v| v.to_string()).collect();
    assert_eq!(versions, expected.join(","));
}

#[test]
fn a_newer_schema_is_refused() {
    let Some((server, url)) = database(false) else {
        return;
    };
    runtime().block_on(async { PgStore::connect(&url).await.expect("connect") });
    server
        .psql(
            DB,
            "INSERT INTO foldkit_schema_migrations (version) VALUES (999)",
        )
        .expect("psql");
    let err = runtime()
        .block_on(async { PgStore::connect(&url).await })
        .expect_err("a schema from the future");
    assert!(
        matches!(err, StoreError::Format { found: 999, .. }),
        "{err:?}"
    );
}

#[test]
fn a_version_2_database_is_migrated_and_keeps_its_events_keys_and_streams() {
    let Some((server, url)) = database(false) else {
        return;
    };
    runtime().block_on(async {
        // The tables as version 2 left them, with events appended the way
        // that build did (`foldkit_append`, which stays for such builds).
        let before = foldkit_postgres::testing::migrate_to(&url, 2)
            .await
            .expect("migrate to 2");
        assert_eq!(before, 0);
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        let old = "SELECT status, first_position, last_position, stream_version \
                   FROM foldkit_append($1, $2, $3, ARRAY['Old', 'Old'], ARRAY[1, 1], \
                                       ARRAY['\\x01'::bytea, '\\x02'::bytea], \
                                       NULL, NULL, NULL, NULL)";
        let row = client
            .query_one(old, &[&"acct", &0i64, &"key-old"])
            .await
            .expect("a version 2 append");
        let (status, first, last): (String, i64, i64) = (row.get(0), row.get(1), row.get(2));
        assert_eq!((status.as_str(), first, last), ("appended", 1, 2));

        let store = PgStore::connect(&url).await.expect("connect migrates");
        let version: i32 = client
            .query_one("SELECT max(version) FROM foldkit_schema_migrations", &[])
            .await
            .expect("versions")
            .get(0);
        assert_eq!(version as u32, SCHEMA_VERSION);
        let events = store.read(1, 10).await.expect("read");
        let got: Vec<(u64, &str, &[u8])> = events
            .iter()
            .map(|e| (e.position, &*e.name, &e.payload[..]))
            .collect();
        assert_eq!(got, vec![(1, "Old", &[1u8][..]), (2, "Old", &[2u8][..])]);
        assert_eq!(store.stream_version("acct").await.expect("version"), 2);

        // Appends continue where version 2 left off: the stream's version,
        // the positions, and the keys recorded before the migration.
        let next = store
            .append(
                AppendBatch::new(vec![event("New", b"3")])
                    .to_stream("acct", ExpectedVersion::Exact(2)),
            )
            .await
            .expect("append after the migration");
        assert_eq!((next.positions, next.stream_version), (3..=3, 3));
        let stale = store
            .append(
                AppendBatch::new(vec![event("New", b"x")])
                    .to_stream("acct", ExpectedVersion::Exact(2)),
            )
            .await
            .expect_err("a stale version");
        assert!(
            matches!(stale, StoreError::Conflict { actual: 3, .. }),
            "{stale:?}"
        );
        let retry = store
            .append(
                AppendBatch::new(vec![event("Old", b"1"), event("Old", b"2")])
                    .to_stream("acct", ExpectedVersion::NoStream)
                    .idempotency_key("key-old"),
            )
            .await
            .expect("a retry of the version 2 append");
        assert_eq!(
            (retry.positions, retry.stream_version, retry.deduplicated),
            (1..=2, 2, true)
        );
        let loose = store
            .append(AppendBatch::new(vec![event("Loose", b"4")]))
            .await
            .expect("an append to no stream");
        assert_eq!(loose.positions, 4..=4);

        // An instance of the older build, still running, keeps appending
        // with its function, in the same order.
        let row = client
            .query_one(old, &[&"other", &0i64, &"key-other"])
            .await
            .expect("a version 2 append after the migration");
        let (first, last): (i64, i64) = (row.get(1), row.get(2));
        assert_eq!((first, last), (5, 6));
        let all = store.read(1, 10).await.expect("read");
        assert_eq!(
            all.iter().map(|e| e.position).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5, 6]
        );
        assert!(all.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    });
    drop(server);
}

#[test]
fn a_read_only_store_reads_an_older_schema_and_refuses_a_newer_one() {
    let Some((server, url)) = database(false) else {
        return;
    };
    runtime().block_on(async {
        // Version 3's tables, written by an instance of that build.
        foldkit_postgres::testing::migrate_to(&url, 3)
            .await
            .expect("migrate to 3");
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client
            .query_one(
                "SELECT foldkit_append_one(NULL, -1, NULL, ARRAY['Old'], ARRAY[1], \
                 ARRAY['\\x01'::bytea], NULL, NULL, NULL, NULL, false)",
                &[],
            )
            .await
            .expect("a version 3 append");
        let reader = PgStore::builder(&url)
            .read_only()
            .connect()
            .await
            .expect("a read-only store reads version 3");
        let events = reader.read(1, 10).await.expect("read");
        assert_eq!(events.len(), 1);
        assert_eq!(
            (&*events[0].name, &events[0].payload[..]),
            ("Old", &[1u8][..])
        );
        reader.close().await.expect("close");
        let version = server
            .psql(DB, "SELECT max(version) FROM foldkit_schema_migrations")
            .expect("psql");
        assert_eq!(version, "3", "the read-only store migrated nothing");

        server
            .psql(
                DB,
                "INSERT INTO foldkit_schema_migrations (version) VALUES (999)",
            )
            .expect("psql");
        let err = PgStore::builder(&url)
            .read_only()
            .connect()
            .await
            .expect_err("a schema from the future");
        assert!(
            matches!(err, StoreError::Format { found: 999, .. }),
            "{err:?}"
        );
    });
}

#[test]
fn a_store_listens_from_its_first_tail_on() {
    let Some((_server, url)) = database(false) else {
        return;
    };
    runtime().block_on(async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        let listening = || async {
            client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE application_name = 'lone' AND query LIKE 'LISTEN%'",
                    &[],
                )
                .await
                .expect("pg_stat_activity")
                .get::<_, i64>(0)
        };
        let store = PgStore::connect(&format!("{url}?application_name=lone"))
            .await
            .expect("connect");
        let appended = store
            .append(AppendBatch::new(vec![event("E", b"1")]))
            .await
            .expect("append");
        // Appending needs no listener: nothing of this store is woken by
        // its own notifications.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(listening().await, 0);
        let mut tail = store.tail(1);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while listening().await != 1 {
            assert!(std::time::Instant::now() < deadline, "no listener");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let batch = tail.next_batch(10).await.expect("tail");
        assert_eq!(batch[0].position, *appended.positions.start());
    });
}

#[test]
fn a_server_clock_behind_the_last_timestamp_keeps_timestamps_flat() {
    let Some((server, url)) = database(false) else {
        return;
    };
    runtime().block_on(async {
        let store = PgStore::connect(&url).await.expect("connect");
        let first = store
            .append(AppendBatch::new(vec![event("E", b"1")]))
            .await
            .expect("append");
        // As if the server's clock had stepped back an hour since then.
        let ahead: i64 = 4_000_000_000_000;
        server
            .psql(DB, &format!("SELECT setval('foldkit_clock', {ahead})"))
            .expect("psql");
        for batch in [
            AppendBatch::new(vec![event("E", b"2")]),
            AppendBatch::new(vec![event("E", b"3"), event("E", b"4")])
                .to_stream("s", ExpectedVersion::Any),
        ] {
            store.append(batch).await.expect("append");
        }
        let events = store.read(1, 10).await.expect("read");
        let stamps: Vec<i64> = events.iter().map(|e| e.timestamp as i64).collect();
        assert!(stamps[0] < ahead, "{stamps:?}");
        assert_eq!(stamps[1..], [ahead, ahead, ahead], "first = {first:?}");
        let clock = server
            .psql(DB, "SELECT last_value FROM foldkit_clock")
            .expect("psql");
        assert_eq!(clock, ahead.to_string());
    });
}

#[test]
fn appended_events_read_back_with_their_envelope() {
    let Some((server, url)) = database(false) else {
        return;
    };
    runtime().block_on(async {
        let store = PgStore::connect(&url).await.expect("connect");
        let context = Arc::new(
            EventContext::new()
                .correlation_id("req-1")
                .caused_by(7)
                .actor("alice")
                .with("ip", "10.0.0.1"),
        );
        let a = store
            .append(
                AppendBatch::new(vec![event("Opened", b"a"), event("Deposited", b"bb")])
                    .to_stream("account/1", ExpectedVersion::NoStream)
                    .with_context(context.clone()),
            )
            .await
            .expect("append");
        assert_eq!(a.stream_version, 2);
        assert!(!a.deduplicated);
        assert_eq!(*a.positions.end(), *a.positions.start() + 1);
        let b = store
            .append(AppendBatch::new(vec![event("Tick", b"")]))
            .await
            .expect("append");
        assert_eq!(b.stream_version, 0);
        assert!(*b.positions.start() > *a.positions.end());
        // One event to no stream takes foldkit_append_event: the same envelope.
        let c = store
            .append(AppendBatch::new(vec![event("Tick", b"ccc")]).with_context(context.clone()))
            .await
            .expect("append");
        assert_eq!((c.stream_version, c.deduplicated), (0, false));
        assert_eq!(*c.positions.start(), *b.positions.end() + 1);
        assert_eq!(c.positions.start(), c.positions.end());

        let events = store.read(1, 100).await.expect("read");
        assert_eq!(events.len(), 4);
        assert_eq!(&*events[0].name, "Opened");
        assert_eq!(&events[1].payload[..], b"bb");
        let s = events[1].stream.as_ref().expect("in a stream");
        assert_eq!((&*s.id, s.version), ("account/1", 2));
        assert_eq!(events[1].context.as_deref(), Some(&*context));
        assert!(events[2].stream.is_none() && events[2].context.is_none());
        assert!(events[3].stream.is_none());
        assert_eq!(
            (&*events[3].name, &events[3].payload[..]),
            ("Tick", &b"ccc"[..])
        );
        assert_eq!(events[3].context.as_deref(), Some(&*context));
        assert!(events.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));

        let from_second = store.read(events[1].position, 1).await.expect("read");
        assert_eq!(from_second, vec![events[1].clone()]);
        let stream = store.read_stream("account/1", 2..=5).await.expect("stream");
        assert_eq!(stream, vec![events[1].clone()]);
        assert_eq!(store.stream_version("account/1").await.expect("version"), 2);
        assert_eq!(store.stream_version("account/2").await.expect("version"), 0);
        assert_eq!(
            store.last_position().await.expect("last"),
            Some(*c.positions.end())
        );
        store.sync().await.expect("sync");
    });
    // Readable from SQL, as the crate docs say.
    let sql = server
        .psql(
            DB,
            "SELECT event_name || ':' || stream_version || ':' || (metadata->>'ip') \
             FROM foldkit_events WHERE stream_id = 'account/1' ORDER BY stream_version",
        )
        .expect("psql");
    assert_eq!(sql, "Opened:1:10.0.0.1\nDeposited:2:10.0.0.1");
}

#[test]
fn one_event_to_no_stream_needs_only_foldkit_append_event() {
    let Some((server, url)) = database(false) else {
        return;
    };
    runtime().block_on(async {
        PgStore::connect(&url).await.expect("connect");
        server
            .psql(DB, "ALTER FUNCTION foldkit_append_one RENAME TO away")
            .expect("psql");
        let store = PgStore::connect(&url).await.expect("connect");
        let lone = store
            .append(AppendBatch::new(vec![event("E", b"1")]))
            .await
            .expect("one event to no stream, without foldkit_append_one");
        assert_eq!(lone.positions, 1..=1);
        // Everything else is foldkit_append_one's.
        for batch in [
            AppendBatch::new(vec![event("E", b"2"), event("E", b"3")]),
            AppendBatch::new(vec![event("E", b"2")]).to_stream("s", ExpectedVersion::Any),
            AppendBatch::new(vec![event("E", b"2")]).idempotency_key("k"),
        ] {
            let err = store
                .append(batch)
                .await
                .expect_err("no foldkit_append_one");
            let source = std::error::Error::source(&err).map(|e| format!("{e:?}"));
            assert!(
                source
                    .as_deref()
                    .unwrap_or_default()
                    .contains("foldkit_append_one"),
                "{err}: {source:?}"
            );
        }
        assert_eq!(store.read(1, 10).await.expect("read").len(), 1);
    });
}

#[test]
fn the_append_functions_refuse_to_follow_another_write_of_their_transaction() {
    let Some((_server, url)) = database(false) else {
        return;
    };
    runtime().block_on(async {
        let store = PgStore::connect(&url).await.expect("connect");
        let (mut client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        // A transaction id assigned before the append lock could commit out
        // of position order: both functions refuse (FK001), nothing is written.
        for call in [
            "SELECT foldkit_append_event('E', 1, '\\x01', NULL, NULL, NULL, NULL, false)",
            "SELECT foldkit_append_one(NULL, -1, NULL, ARRAY['E'], ARRAY[1], \
             ARRAY['\\x01'::bytea], NULL, NULL, NULL, NULL, false)",
        ] {
            let tx = client.transaction().await.expect("begin");
            tx.execute(
                "INSERT INTO foldkit_checkpoints (name, position) VALUES ('w', 1)",
                &[],
            )
            .await
            .expect("a first write");
            let err = tx.query_one(call, &[]).await.expect_err("refused");
            let code = err.code().map(|c| c.code().to_owned());
            assert_eq!(code.as_deref(), Some("FK001"), "{call}: {err:?}");
            drop(tx);
            // Without the earlier write, the same call appends.
            client.query_one(call, &[]).await.expect(call);
        }
        let positions: Vec<u64> = store
            .read(1, 10)
            .await
            .expect("read")
            .iter()
            .map(|e| e.position)
            .collect();
        assert_eq!(positions.len(), 2, "{positions:?}");
    });
}

#[test]
fn a_stale_expected_version_conflicts_with_the_actual_one() {
    let Some((_server, url)) = database(false) else {
        return;
    };
    runtime().block_on(async {
        let store = PgStore::connect(&url).await.expect("connect");
        let to = |v| AppendBatch::new(vec![event("E", b"x")]).to_stream("s", v);
        store
            .append(to(ExpectedVersion::NoStream))
            .await
            .expect("first");
        match store.append(to(ExpectedVersion::NoStream)).await {
            Err(StoreError::Conflict {
                stream,
                expected,
                actual,
            }) => {
                assert_eq!(
                    (stream.as_str(), expected, actual),
                    ("s", ExpectedVersion::NoStream, 1)
                );
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        // Behind and ahead of the stream: both conflict, nothing is written.
        for stale in [ExpectedVersion::Exact(0), ExpectedVersion::Exact(5)] {
            let err = store.append(to(stale)).await.expect_err("conflict");
            assert!(
                matches!(err, StoreError::Conflict { actual: 1, .. }),
                "{err:?}"
            );
        }
        assert_eq!(store.stream_version("s").await.expect("version"), 1);
        let any = store.append(to(ExpectedVersion::Any)).await.expect("any");
        assert_eq!(any.stream_version, 2);

        // Eight writers race on one stream, each expecting what it last saw:
        // every version is written exactly once, conflicts name the actual version.
        let store = Arc::new(store);
        let writers = (0..8).map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut wins = Vec::new();
                let mut seen = 2;
                while seen < 42 {
                    let batch = AppendBatch::new(vec![event("E", &[w])])
                        .to_stream("s", ExpectedVersion::Exact(seen));
                    match store.append(batch).await {
                        Ok(a) => {
                            assert_eq!(a.stream_version, seen + 1);
                            wins.push(a.stream_version);
                            seen = a.stream_version;
                        }
                        Err(StoreError::Conflict { actual, .. }) => {
                            assert!(actual > seen, "a conflict reports a newer version");
                            seen = actual;
                        }
                        Err(e) => panic!("append: {e}"),
                    }
                }
                wins
            })
        });
        let mut all: Vec<u64> = Vec::new();
        for w in futures::future::join_all(writers).await {
            all.extend(w.expect("join"));
        }
        all.sort_unstable();
        assert_eq!(all, (3..=42).collect::<Vec<_>>());
        let versions: Vec<u64> = store
            .read_stream("s", 1..=u64::MAX)
            .await
            .expect("stream")
            .iter()
            .map(|e| e.stream.as_ref().expect("stream").version)
            .collect();
        assert_eq!(versions, (1..=42).collect::<Vec<_>>());
    });
}

#[test]
fn a_retry_with_the_same_key_appends_nothing() {
    let Some((_server, url)) = database(false) else {
        return;
    };
    runtime().block_on(async {
        let store = Arc::new(PgStore::connect(&url).await.expect("connect"));
        let batch = || {
            AppendBatch::new(vec![event("E", b"1"), event("E", b"2")])
                .to_stream("k", ExpectedVersion::NoStream)
                .idempotency_key("cmd-1")
        };
        let first = store.append(batch()).await.expect("first");
        let again = store.append(batch()).await.expect("retry");
        assert!(!first.deduplicated && again.deduplicated);
        assert_eq!(
            (first.positions.clone(), first.stream_version),
            (again.positions.clone(), again.stream_version)
        );
        assert_eq!(store.read(1, 100).await.expect("read").len(), 2);

        // Sixteen concurrent retries of a new key: one append, one answer.
        let retries = (0..16).map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(
                        AppendBatch::new(vec![event("E", b"3")])
                            .to_stream("k", ExpectedVersion::Exact(2))
                            .idempotency_key("cmd-2"),
                    )
                    .await
                    .expect("append")
            })
        });
        let results: Vec<_> = futures::future::join_all(retries)
            .await
            .into_iter()
            .map(|r| r.expect("join"))
            .collect();
        assert_eq!(results.iter().filter(|r| !r.deduplicated).count(), 1);
        assert!(results.iter().all(|r| r.positions == results[0].positions));
        assert_eq!(results[0].stream_version, 3);
        assert_eq!(store.read(1, 100).await.expect("read").len(), 3);
    });
}

#[test]
fn malformed_batches_are_refused_by_name() {
    let Some((_server, url)) = database(false) else {
        return;
    };
    runtime().block_on(async {
        let store = PgStore::connect(&url).await.expect("connect");
        let cases = [
            (AppendBatch::new(vec![]), "no events"),
            (
                AppendBatch::new(vec![event("E", b"")]).to_stream("", ExpectedVersion::Any),
                "stream id is empty",
            ),
            (
                AppendBatch::new(vec![event("E", b""), event("b\0d", b"")]),
                "name of event 1",
            ),
            (
                AppendBatch::new(vec![event("E", b"")])
                    .with_context(Arc::new(EventContext::new().actor("a\0"))),
                "actor",
            ),
        ];
        for (batch, needle) in cases {
            match store.append(batch).await {
                Err(StoreError::InvalidBatch(why)) => assert!(why.contains(needle), "{why}"),
                other => panic!("expected InvalidBatch({needle}), got {other:?}"),
            }
        }
        assert!(store.read(1, 10).await.expect("read").is_empty());
    });
}

#[test]
fn snapshots_and_checkpoints_live_in_tables() {
    let Some((_server, url)) = database(false) else {
        return;
    };
    runtime().block_on(async {
        let store = PgStore::connect(&url).await.expect("connect");
        store
            .write_snapshot("Bank", 10, b"ten".to_vec())
            .await
            .expect("write");
        store
            .write_snapshot("Bank", 30, b"thirty".to_vec())
            .await
            .expect("write");
        store
            .write_snapshot("Bank", 10, b"TEN".to_vec())
            .await
            .expect("replace");
        store
            .write_snapshot("Other", 5, b"five".to_vec())
            .await
            .expect("write");
        assert_eq!(
            store.list_snapshots("Bank").await.expect("list"),
            vec![30, 10]
        );
        assert_eq!(
            store
                .read_snapshot("Bank", 10)
                .await
                .expect("read")
                .as_deref(),
            Some(&b"TEN"[..])
        );
        assert_eq!(store.read_snapshot("Bank", 11).await.expect("read"), None);
        store.remove_snapshot("Bank", 30).await.expect("remove");
        store
            .remove_snapshot("Bank", 31)
            .await
            .expect("remove absent");
        assert_eq!(store.list_snapshots("Bank").await.expect("list"), vec![10]);

        assert_eq!(store.read_checkpoint("mailer").await.expect("read"), None);
        store.write_checkpoint("mailer", 4).await.expect("write");
        store.write_checkpoint("mailer", 9).await.expect("write");
        assert_eq!(
            store.read_checkpoint("mailer").await.expect("read"),
            Some(9)
        );

        // Another instance sees them.
        let other = PgStore::connect(&url).await.expect("connect");
        assert_eq!(other.list_snapshots("Bank").await.expect("list"), vec![10]);
        assert_eq!(
            other.read_checkpoint("mailer").await.expect("read"),
            Some(9)
        );
    });
}

#[test]
fn close_refuses_appends_and_ends_tails_after_the_last_event() {
    let Some((_server, url)) = database(false) else {
        return;
    };
    runtime().block_on(async {
        let store = PgStore::connect(&url).await.expect("connect");
        let mut tail = store.tail(1);
        store
            .append(AppendBatch::new(vec![event("E", b"1")]))
            .await
            .expect("append");
        store.close().await.expect("close");
        store.close().await.expect("close twice");
        let err = store
            .append(AppendBatch::new(vec![event("E", b"2")]))
            .await
            .expect_err("closed");
        assert!(matches!(err, StoreError::Closed), "{err:?}");
        let first = tail.next_batch(10).await.expect("the stored event");
        assert_eq!(first.len(), 1);
        let end = tokio::time::timeout(Duration::from_secs(5), tail.next_batch(10))
            .await
            .expect("a closed tail ends");
        assert!(matches!(end, Err(StoreError::Closed)), "{end:?}");
    });
}

#[test]
fn a_tail_survives_its_connections_being_terminated() {
    let Some((server, url)) = database(false) else {
        return;
    };
    let rt = runtime();
    let writer = rt.block_on(async { PgStore::connect(&url).await.expect("connect") });
    // A poll interval far beyond the test: only notifications wake the tail,
    // so this also checks that the listener reconnected.
    let reader = rt.block_on(async {
        PgStore::builder(&format!("{url}?application_name=reader"))
            .poll_interval(Duration::from_secs(600))
            .connect()
            .await
            .expect("connect")
    });
    let mut tail = reader.tail(1);
    let mut acked = Vec::new();
    let mut got = Vec::new();
    rt.block_on(async {
        for i in 0..20u8 {
            let a = writer
                .append(AppendBatch::new(vec![event("E", &[i])]))
                .await
                .expect("append");
            acked.push(*a.positions.start());
        }
        while got.len() < 10 {
            got.extend(
                tail.next_batch(3)
                    .await
                    .expect("tail")
                    .iter()
                    .map(|e| e.position),
            );
        }
    });
    let terminate = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE application_name = 'reader'";
    let terminated: u32 = server
        .psql(DB, terminate)
        .expect("terminate")
        .parse()
        .expect("count");
    assert!(
        terminated >= 2,
        "the listener and a pooled connection: {terminated}"
    );
    // Wait for the listener to be back.
    let listening = "SELECT count(*) FROM pg_stat_activity \
                     WHERE application_name = 'reader' AND query LIKE 'LISTEN%'";
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while server.psql(DB, listening).expect("psql") != "1" {
        assert!(
            std::time::Instant::now() < deadline,
            "the listener reconnects"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    rt.block_on(async {
        for i in 20..40u8 {
            let a = writer
                .append(AppendBatch::new(vec![event("E", &[i])]))
                .await
                .expect("append");
            acked.push(*a.positions.start());
        }
        while got.len() < acked.len() {
            let batch = tokio::time::timeout(Duration::from_secs(20), tail.next_batch(7))
                .await
                .expect("the tail resumes (woken by a notification)")
                .expect("tail");
            got.extend(batch.iter().map(|e| e.position));
        }
    });
    assert_eq!(
        got, acked,
        "every event once, in order, across the reconnect"
    );
}

#[test]
fn concurrent_appends_grouped_into_one_transaction_keep_their_own_answers() {
    let Some((_server, url)) = database(false) else {
        return;
    };
    runtime().block_on(async {
        let store = Arc::new(PgStore::connect(&url).await.expect("connect"));
        store
            .append(
                AppendBatch::new(vec![event("E", b"first")])
                    .to_stream("taken", ExpectedVersion::NoStream)
                    .idempotency_key("known"),
            )
            .await
            .expect("setup");
        // 48 appends at once: new streams, conflicts and retries of a known key.
        let appends = (0..48u32).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let batch = match i % 3 {
                    0 => AppendBatch::new(vec![event("E", b"a"), event("E", b"b")])
                        .to_stream(format!("s{i}"), ExpectedVersion::NoStream),
                    1 => AppendBatch::new(vec![event("E", b"c")])
                        .to_stream(format!("t{i}"), ExpectedVersion::Exact(3)),
                    _ => AppendBatch::new(vec![event("E", b"first")])
                        .to_stream("taken", ExpectedVersion::NoStream)
                        .idempotency_key("known"),
                };
                (i, store.append(batch).await)
            })
        });
        let mut positions = Vec::new();
        for r in futures::future::join_all(appends).await {
            let (i, result) = r.expect("join");
            match (i % 3, result) {
                (0, Ok(a)) => {
                    assert_eq!((a.stream_version, a.deduplicated), (2, false));
                    assert_eq!(*a.positions.end(), *a.positions.start() + 1);
                    positions.extend(a.positions);
                }
                (1, Err(StoreError::Conflict { actual: 0, .. })) => {}
                (2, Ok(a)) => assert!(a.deduplicated && a.positions == (1..=1), "{a:?}"),
                (kind, other) => panic!("append {i} (kind {kind}): {other:?}"),
            }
        }
        positions.sort_unstable();
        positions.dedup();
        assert_eq!(
            positions.len(),
            32,
            "16 batches of 2, each at its own positions"
        );
        let stored = store.read(1, 1000).await.expect("read");
        assert_eq!(stored.len(), 33, "nothing else was written");
    });
}

#[test]
fn a_busy_writer_sends_one_notification_per_notify_interval() {
    let Some((_server, url)) = database(false) else {
        return;
    };
    runtime().block_on(async {
        let interval = Duration::from_millis(300);
        let store = PgStore::builder(&url)
            .notify_interval(interval)
            .connect()
            .await
            .expect("connect");
        // Another instance's view: a plain LISTEN on the channel.
        let (client, mut rx) = listener(&url).await;
        let started = std::time::Instant::now();
        // A busy store: eight writers, so appends commit while a NOTIFY is in flight.
        let store = Arc::new(store);
        let writers = (0..8u8).map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut last = 0;
                for i in 0..10u8 {
                    let appended = store
                        .append(AppendBatch::new(vec![event("E", &[w, i])]))
                        .await
                        .expect("append");
                    last = *appended.positions.end();
                }
                last
            })
        });
        let mut last = 0;
        for w in futures::future::join_all(writers).await {
            last = last.max(w.expect("writer"));
        }
        let elapsed = started.elapsed();
        tokio::time::sleep(interval * 2).await;
        let mut payloads = Vec::new();
        while let Ok((_, payload)) = rx.try_recv() {
            payloads.push(payload);
        }
        // One per interval once the writer is seen busy, plus those sent before
        // an append happened to commit during one: how many depends on
        // scheduling (up to 8 seen, 6 of them before the first overlap, under a
        // loaded CI run). Without the interval: ~35.
        let most = (elapsed.as_millis() / interval.as_millis()) as usize + 12;
        assert!(
            !payloads.is_empty() && payloads.len() <= most,
            "80 appends in {elapsed:?}: {} notifications (at most {most}): {payloads:?}",
            payloads.len()
        );
        assert_eq!(
            payloads.last().map(String::as_str),
            Some(last.to_string().as_str()),
            "the last append is announced"
        );
        drop(client);
    });
}

#[test]
fn a_lone_append_wakes_another_stores_tail_with_its_own_commit() {
    let Some((_server, url)) = database(false) else {
        return;
    };
    runtime().block_on(async {
        // One pooled connection: appends and any separate NOTIFY share it.
        let writer = PgStore::builder(&format!("{url}?application_name=writer"))
            .pool_size(1)
            .connect()
            .await
            .expect("connect");
        // A poll interval far beyond the test: only a notification wakes the tail.
        let reader = PgStore::builder(&format!("{url}?application_name=reader"))
            .poll_interval(Duration::from_secs(600))
            .connect()
            .await
            .expect("connect");
        let (client, mut rx) = listener(&url).await;
        // The tail starts the reader's listener.
        let mut tail = reader.tail(1);
        let listening = "SELECT count(*) FROM pg_stat_activity \
                         WHERE application_name = 'reader' AND query LIKE 'LISTEN%'";
        while client
            .query_one(listening, &[])
            .await
            .expect("listening")
            .get::<_, i64>(0)
            != 1
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for i in 0..3u8 {
            let appended = writer
                .append(AppendBatch::new(vec![event("E", &[i])]))
                .await
                .expect("append");
            let batch = tokio::time::timeout(Duration::from_secs(10), tail.next_batch(10))
                .await
                .expect("the tail is woken by the append's notification")
                .expect("tail");
            let got: Vec<u64> = batch.iter().map(|e| e.position).collect();
            assert_eq!(got, vec![*appended.positions.start()]);
            let (pid, payload) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("a notification")
                .expect("the listener runs");
            assert_eq!(payload, appended.positions.end().to_string());
            // Sent by the append's own transaction: the notifying session's
            // last statement is the append, not a separate NOTIFY.
            let last: String = client
                .query_one("SELECT query FROM pg_stat_activity WHERE pid = $1", &[&pid])
                .await
                .expect("the notifying session")
                .get(0);
            assert!(last.contains("foldkit_append"), "notified by: {last}");
            assert!(rx.try_recv().is_err(), "one notification per lone append");
        }
    });
}

#[test]
fn grouped_appends_keep_their_streams_keys_and_contexts() {
    let Some((_server, url)) = database(false) else {
        return;
    };
    runtime().block_on(async {
        let store = Arc::new(PgStore::connect(&url).await.expect("connect"));
        let batch = |i: u32| {
            let events = (0..=i % 3)
                .map(|k| event(&format!("E{k}"), &[i as u8, k as u8]))
                .collect();
            let context = EventContext::new()
                .correlation_id(format!("c{i}"))
                .caused_by(u64::from(i) + 1)
                .actor(format!("a{i}"))
                .with("i", i.to_string());
            AppendBatch::new(events)
                .to_stream(format!("g/{i}"), ExpectedVersion::NoStream)
                .idempotency_key(format!("k{i}"))
                .with_context(Arc::new(context))
        };
        let all = |store: Arc<PgStore>| {
            futures::future::join_all((0..24u32).map(move |i| {
                let store = store.clone();
                tokio::spawn(async move { store.append(batch(i)).await.expect("append") })
            }))
        };
        let first: Vec<_> = all(store.clone())
            .await
            .into_iter()
            .map(|r| r.expect("join"))
            .collect();
        // Every batch again, at once: the keys answer, nothing is written twice.
        let again: Vec<_> = all(store.clone())
            .await
            .into_iter()
            .map(|r| r.expect("join"))
            .collect();
        let stored = store.read(1, 1000).await.expect("read");
        assert_eq!(stored.len(), (0..24).map(|i| i % 3 + 1).sum::<usize>());
        assert!(stored.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
        for (i, (a, b)) in first.iter().zip(&again).enumerate() {
            let n = i as u64 % 3 + 1;
            assert!(
                !a.deduplicated && b.deduplicated,
                "batch {i}: {a:?} then {b:?}"
            );
            assert_eq!(
                (a.positions.clone(), a.stream_version),
                (b.positions.clone(), n)
            );
            assert_eq!(
                a.positions.clone().count() as u64,
                n,
                "batch {i}: consecutive"
            );
            let expected = batch(i as u32);
            for (k, position) in a.positions.clone().enumerate() {
                let e = &stored[(position - 1) as usize];
                assert_eq!(e.position, position);
                let s = e.stream.as_ref().expect("in a stream");
                assert_eq!(
                    (&*s.id, s.version),
                    (format!("g/{i}").as_str(), k as u64 + 1)
                );
                assert_eq!(
                    (&*e.name, &e.payload[..]),
                    (&*expected.events[k].name, &expected.events[k].payload[..])
                );
                assert_eq!(
                    e.context.as_deref(),
                    expected.context.as_deref(),
                    "batch {i}"
                );
            }
        }
    });
}

/// A plain `LISTEN foldkit_events` session (another instance's view): its client,
/// and the notifications it receives, as (sending backend's pid, payload).
async fn listener(
    url: &str,
) -> (
    tokio_postgres::Client,
    tokio::sync::mpsc::UnboundedReceiver<(i32, String)>,
) {
    use futures::StreamExt;
    let (client, mut connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("listener");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = message {
                let _ = tx.send((n.process_id(), n.payload().to_owned()));
            }
        }
    });
    client
        .batch_execute("LISTEN foldkit_events")
        .await
        .expect("listen");
    (client, rx)
}

/// A lone append runs in its caller's task (no worker in between): dropped at
/// any point, even after its statement was sent, it leaves its batch whole or
/// absent, later appends go ahead at once, and another store's tail sees every
/// batch that did commit, in order. (The waits are long because CI runs every
/// test of this file at once, each with its own server, on two cores.)
#[test]
fn lone_appends_dropped_in_flight_leave_whole_batches_and_a_working_store() {
    let Some((_server, url)) = database(false) else {
        return;
    };
    runtime().block_on(async {
        let store = PgStore::connect(&url).await.expect("connect");
        let reader = PgStore::connect(&url).await.expect("connect");
        let mut tail = reader.tail(1);
        let mut dropped = 0;
        for i in 0..60u32 {
            let batch = AppendBatch::new(
                (0..3)
                    .map(|j| event("E", format!("{i}:{j}").as_bytes()))
                    .collect(),
            );
            let wait = Duration::from_micros(u64::from(i % 20) * 40);
            if tokio::time::timeout(wait, store.append(batch))
                .await
                .is_err()
            {
                dropped += 1;
            }
        }
        assert!(
            dropped > 0,
            "no append was dropped in flight: the test proves nothing"
        );
        let last = tokio::time::timeout(
            Duration::from_secs(60),
            store.append(AppendBatch::new(vec![event("E", b"last")])),
        )
        .await
        .expect("an append after dropped ones is not held up")
        .expect("append");
        let last = *last.positions.end();

        let stored = store.read(1, 10_000).await.expect("read");
        assert_eq!(stored.last().map(|e| e.position), Some(last));
        let mut batches: std::collections::BTreeMap<u32, Vec<(u64, u32)>> = Default::default();
        for e in &stored[..stored.len() - 1] {
            let text = std::str::from_utf8(&e.payload).expect("utf-8");
            let (i, j) = text.split_once(':').expect("i:j");
            let (i, j): (u32, u32) = (i.parse().expect("i"), j.parse().expect("j"));
            batches.entry(i).or_default().push((e.position, j));
        }
        for (i, events) in &batches {
            let positions: Vec<u64> = events.iter().map(|(p, _)| *p).collect();
            let order: Vec<u32> = events.iter().map(|(_, j)| *j).collect();
            assert_eq!(order, [0, 1, 2], "batch {i} is whole and in order");
            assert_eq!(positions[2], positions[0] + 2, "batch {i} is contiguous");
        }
        assert!(
            batches.len() >= 60 - dropped,
            "every acknowledged batch is stored"
        );

        let mut seen = Vec::new();
        while seen.last() != Some(&last) {
            let got = tokio::time::timeout(Duration::from_secs(60), tail.next_batch(1000))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "the other store's tail saw {} events, up to {:?}, of {} up to {last}",
                        seen.len(),
                        seen.last(),
                        stored.len()
                    )
                })
                .expect("tail");
            seen.extend(got.iter().map(|e| e.position));
        }
        let expected: Vec<u64> = stored.iter().map(|e| e.position).collect();
        assert_eq!(seen, expected);
    });
}
