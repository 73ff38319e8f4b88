//! `foldkit --postgres URL`: the read-only commands on a PostgreSQL database
//! that a running Db writes, through a throwaway server (skipped with one
//! line when the machine has no PostgreSQL binaries, unless
//! `FOLDKIT_REQUIRE_POSTGRES=1`); and the bad inputs: a URL that does not
//! connect, a database without foldkit's tables, a malformed URL.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Admit, Counter, Gate, Total, assert_one_line_error, foldkit, stderr, stdout};
use foldkit::prelude::*;
use foldkit::process::{ProcessOptions, RetryPolicy};
use foldkit::store::EventStore;
use foldkit_postgres::PgStore;
use foldkit_postgres::testing::{ServerOptions, server_or_skip};
use futures::StreamExt;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn open(url: &str) -> Db {
    let store = PgStore::connect(url).await.expect("connect");
    let options = ProcessOptions::default().retry(RetryPolicy::new(
        2,
        Duration::from_millis(1),
        Duration::from_millis(2),
    ));
    Db::builder_with(store)
        .state::<Total>()
        .aggregate::<Gate>()
        .process_manager_with::<Admit>(options)
        .snapshot_every(2)
        .open()
        .await
        .expect("open the Db")
}

/// The database's foldkit rows, to show the tool wrote nothing.
fn rows(server: &foldkit_postgres::testing::PgServer, db: &str) -> String {
    server
        .psql(
            db,
            "SELECT (SELECT count(*) FROM foldkit_events) || '/' || \
                    (SELECT count(*) FROM foldkit_snapshots) || '/' || \
                    (SELECT string_agg(name || '=' || position, ',' ORDER BY name) FROM foldkit_checkpoints)",
        )
        .expect("psql")
}

#[test]
fn the_read_only_commands_on_a_database_a_running_db_writes() {
    let Some(server) = server_or_skip(ServerOptions::default().fsync(false)) else {
        return;
    };
    let url = server.create_database("shop").expect("create database");
    let rt = runtime();
    let db = rt.block_on(async {
        let db = open(&url).await;
        db.append(Counter::Added { n: 1 }).await.expect("append");
        db.append(Counter::Added { n: 2 }).await.expect("append");
        db.append_to(
            "acct-1",
            ExpectedVersion::NoStream,
            [Counter::Added { n: 3 }],
        )
        .await
        .expect("append to stream");
        let mut mailer = db.subscribe("mailer").start().await.expect("subscribe");
        let (_, meta) = mailer.next().await.expect("an event").expect("read");
        mailer.ack(meta.seq).await.expect("ack");
        db.process_manager::<Admit>()
            .expect("admit")
            .settle()
            .await
            .expect("settle");
        // Snapshots are written in the background: wait for the state's, and
        // for the manager's checkpoint that holds all three letters.
        for _ in 0..500 {
            if !db
                .store()
                .list_snapshots("Total")
                .await
                .expect("list")
                .is_empty()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for _ in 0..500 {
            let managers = foldkit::inspect::dead_letters(&**db.store())
                .await
                .expect("dead letters");
            if managers
                .first()
                .is_some_and(|m| m.letters.as_ref().is_ok_and(|l| l.len() == 3))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        db
    });
    let before = rows(&server, "shop");

    let info = foldkit(&["info", "--postgres", &url]);
    let text = stdout(&info);
    assert_eq!(info.status.code(), Some(0), "{text}{}", stderr(&info));
    assert!(
        text.contains("store          PostgreSQL store at postgres://127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("positions      1 ..= 3 (3 events)"), "{text}");
    assert!(text.contains("streams        1"), "{text}");
    assert!(text.contains("Counter                        3"), "{text}");
    assert!(
        text.contains("mailer") && text.contains("at 1 (lag 2)"),
        "{text}"
    );
    assert!(
        text.contains("dead letters   3 in 1 process manager(s)"),
        "{text}"
    );
    assert!(
        !text.contains("segments"),
        "no segments in a database: {text}"
    );
    let json = foldkit(&["info", "--json", "--postgres", &url]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(value["events"], 3);
    assert_eq!(value["dead_letters"], 3);
    assert!(value.get("format").is_none(), "{value}");

    let events = foldkit(&["events", "--postgres", &url]);
    let text = stdout(&events);
    assert_eq!(events.status.code(), Some(0), "{}", stderr(&events));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].starts_with("1  ") && lines[0].ends_with("0001"),
        "{}",
        lines[0]
    );
    assert!(lines[2].contains("Counter  v1  acct-1#1"), "{}", lines[2]);
    let stream = foldkit(&["events", "--json", "--stream", "acct-1", "--postgres", &url]);
    let one: serde_json::Value = serde_json::from_str(stdout(&stream).trim()).expect("JSON");
    assert_eq!(one["position"], 3);
    assert_eq!(one["stream_version"], 1);
    assert_one_line_error(
        &foldkit(&["events", "--type", "Nope", "--postgres", &url]),
        "no event type named `Nope` in PostgreSQL store at postgres://127.0.0.1:",
    );

    let snapshots = foldkit(&["snapshots", "--postgres", &url]);
    let text = stdout(&snapshots);
    assert_eq!(snapshots.status.code(), Some(0), "{text}");
    assert!(
        text.contains("Total") && text.contains("version 1"),
        "{text}"
    );
    assert!(
        text.contains("process-manager.admit") && text.contains("3 dead letter(s)"),
        "{text}"
    );

    let dead = foldkit(&["dead-letters", "--postgres", &url]);
    let text = stdout(&dead);
    assert_eq!(dead.status.code(), Some(0), "{text}{}", stderr(&dead));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[2].contains("admit@3#0  event 3 Counter acct-1#1  command gate/main"),
        "{}",
        lines[2]
    );
    assert!(lines[0].contains("the gate is closed"), "{}", lines[0]);

    let verify = foldkit(&["verify", "--postgres", &url]);
    let text = stdout(&verify);
    assert_eq!(verify.status.code(), Some(0), "{text}{}", stderr(&verify));
    assert!(
        text.contains("checked 3 events") && text.contains("1 checkpoint(s)"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("OK"), "{text}");

    // Nothing the tool ran wrote a row.
    assert_eq!(rows(&server, "shop"), before);

    // --follow: what is there, then what the running Db appends, until --to.
    let mut follow = Command::new(env!("CARGO_BIN_EXE_foldkit"))
        .args([
            "events",
            "--follow",
            "--from",
            "2",
            "--to",
            "5",
            "--postgres",
            &url,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run foldkit");
    let mut lines = BufReader::new(follow.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("read");
    assert!(first.starts_with("2  "), "{first}");
    rt.block_on(async {
        db.append(Counter::Added { n: 4 }).await.expect("append");
        db.append(Counter::Added { n: 5 }).await.expect("append");
        db.append(Counter::Added { n: 6 }).await.expect("append");
    });
    let rest: Vec<String> = lines.map(|l| l.expect("read")).collect();
    let positions: Vec<&str> = rest
        .iter()
        .map(|l| l.split("  ").next().unwrap_or(""))
        .collect();
    assert_eq!(positions, ["3", "4", "5"], "{rest:?}");
    let status = follow.wait().expect("wait");
    assert!(status.success(), "stops after --to");
    rt.block_on(async { db.close().await.expect("close") });

    // verify checks what applies to a database: a flipped byte of a stored
    // snapshot fails it, naming the snapshot.
    server
        .psql(
            "shop",
            "UPDATE foldkit_snapshots SET bytes = set_byte(bytes, 20, get_byte(bytes, 20) # 8) \
             WHERE state = 'process-manager.admit'",
        )
        .expect("flip a byte");
    let verify = foldkit(&["verify", "--postgres", &url]);
    let text = stdout(&verify);
    assert_eq!(verify.status.code(), Some(1), "{text}{}", stderr(&verify));
    assert!(
        text.contains("snapshot process-manager.admit@")
            && text.contains("process manager snapshot checksum mismatch"),
        "{text}"
    );
    let dead = foldkit(&["dead-letters", "--postgres", &url]);
    assert_eq!(dead.status.code(), Some(1), "{}", stdout(&dead));
    assert!(
        stderr(&dead).contains("cannot be read"),
        "{}",
        stderr(&dead)
    );
}

#[test]
fn a_read_only_store_refuses_writes_and_never_creates_tables() {
    let Some(server) = server_or_skip(ServerOptions::default().fsync(false)) else {
        return;
    };
    let empty = server.create_database("empty").expect("create database");
    let rt = runtime();

    // A database without foldkit's tables: one line, and it stays without them.
    assert_one_line_error(
        &foldkit(&["info", "--postgres", &empty]),
        "not a foldkit database",
    );
    assert_one_line_error(
        &foldkit(&["dead-letters", "--postgres", &empty]),
        "not a foldkit database",
    );
    assert_eq!(
        server
            .psql(
                "empty",
                "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'foldkit%'"
            )
            .expect("psql"),
        "0",
        "the read-only store created nothing"
    );

    let url = server.create_database("ro").expect("create database");
    rt.block_on(async {
        // A writer creates the tables; a read-only store then reads, never writes.
        let writer = PgStore::connect(&url).await.expect("connect");
        writer.close().await.expect("close");
        let store = PgStore::builder(&url)
            .read_only()
            .connect()
            .await
            .expect("read-only");
        let refused = store
            .append(foldkit::store::AppendBatch::new(vec![
                foldkit::store::NewEvent {
                    name: "e".into(),
                    schema_version: 1,
                    payload: vec![1],
                },
            ]))
            .await
            .expect_err("a read-only store refuses appends");
        assert!(
            matches!(
                refused,
                foldkit::store::StoreError::ReadOnly {
                    operation: "append",
                    ..
                }
            ),
            "{refused}"
        );
        for refused in [
            store.write_snapshot("S", 1, vec![1]).await,
            store.write_checkpoint("c", 1).await,
            store.remove_snapshot("S", 1).await,
        ] {
            assert!(
                matches!(refused, Err(foldkit::store::StoreError::ReadOnly { .. })),
                "{refused:?}"
            );
        }
        assert_eq!(store.last_position().await.expect("read"), None);
        store.close().await.expect("close");
    });

    // A URL nothing listens on, and one that does not parse: one line, exit 2.
    let unused = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let nowhere = format!("postgres://postgres@127.0.0.1:{unused}/shop");
    let refused = foldkit(&["events", "--postgres", &nowhere]);
    assert_one_line_error(&refused, "connect to postgres://127.0.0.1:");
    assert!(
        !stderr(&refused).contains("postgres@"),
        "no user in messages: {}",
        stderr(&refused)
    );
    assert_one_line_error(
        &foldkit(&["info", "--postgres", "postgres://[bad"]),
        "parse the PostgreSQL connection string",
    );
    // DIR and --postgres together: a usage error.
    let both = foldkit(&["info", "/tmp", "--postgres", &url]);
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
    assert!(
        stderr(&both).contains("cannot be used with"),
        "{}",
        stderr(&both)
    );
}
