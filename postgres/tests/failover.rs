//! Node loss at store level: a primary with a synchronous streaming standby is
//! killed with SIGKILL under load, the standby is promoted, and the store
//! finds it through a multi-host connection string
//! (`target_session_attrs=read-write`). No acknowledged append may be lost,
//! and no keyed retry may append twice.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use foldkit::store::{AppendBatch, EventStore, ExpectedVersion};
use foldkit_postgres::PgStore;
use foldkit_postgres::testing::{PgServer, ServerOptions, server_or_skip};
use support::{DB, event, runtime};

const WRITERS: usize = 8;

#[test]
fn no_acknowledged_append_is_lost_when_the_primary_dies() {
    let Some(mut primary) =
        server_or_skip(ServerOptions::default().setting("synchronous_standby_names", "'*'"))
    else {
        return;
    };
    // Once promoted, the standby serves alone: it must not wait for a
    // synchronous standby of its own (the setting came with the base backup).
    let standby = PgServer::standby_of(
        &primary,
        ServerOptions::default().setting("synchronous_standby_names", "''"),
    )
    .expect("standby");
    let sync = "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'";
    wait_until("the standby is synchronous", || {
        primary.psql(DB, sync).is_ok_and(|n| n == "1")
    });
    let url = format!(
        "postgres://postgres@{},{}/{DB}?target_session_attrs=read-write",
        primary.host_port(),
        standby.host_port()
    );

    let rt = runtime();
    let store = rt.block_on(async {
        PgStore::builder(&url)
            .retry_for(Duration::from_secs(60))
            .connect()
            .await
            .expect("connect")
    });
    let acks = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let promoted = Arc::new(AtomicBool::new(false));
    let after_promotion = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (store, acks, stop) = (store.clone(), acks.clone(), stop.clone());
            let (promoted, after_promotion) = (promoted.clone(), after_promotion.clone());
            rt.spawn(async move {
                let mut acked = BTreeMap::new();
                let mut version = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("w{w}-{version}");
                    let batch = AppendBatch::new(vec![event("E", key.as_bytes())])
                        .to_stream(format!("writer/{w}"), ExpectedVersion::Exact(version))
                        .idempotency_key(key.clone());
                    let appended = store
                        .append(batch)
                        .await
                        .expect("append (retried across the failover)");
                    version = appended.stream_version;
                    acked.insert(key, *appended.positions.start());
                    acks.fetch_add(1, Ordering::Relaxed);
                    if promoted.load(Ordering::Relaxed) {
                        after_promotion.fetch_add(1, Ordering::Relaxed);
                    }
                }
                acked
            })
        })
        .collect();

    wait_until("appends before the crash", || {
        acks.load(Ordering::Relaxed) >= 200
    });
    primary.kill9().expect("kill -9 the primary");
    let at_crash = acks.load(Ordering::Relaxed);
    standby.promote().expect("promote the standby");
    promoted.store(true, Ordering::Relaxed);
    wait_until("appends after the promotion", || {
        after_promotion.load(Ordering::Relaxed) >= 100
    });
    stop.store(true, Ordering::Relaxed);

    let acked: BTreeMap<String, u64> = rt.block_on(async {
        let mut all = BTreeMap::new();
        for w in writers {
            all.extend(w.await.expect("writer"));
        }
        all
    });
    assert!(at_crash >= 200);
    let stored = rt.block_on(async {
        let mut out = Vec::new();
        let mut from = 1;
        loop {
            let batch = store.read(from, 1000).await.expect("read the new primary");
            let Some(last) = batch.last() else { break };
            from = last.position + 1;
            out.extend(batch);
        }
        out
    });
    let mut by_key: BTreeMap<String, u64> = BTreeMap::new();
    for e in &stored {
        let key = String::from_utf8(e.payload.to_vec()).expect("utf-8 payload");
        assert!(
            by_key.insert(key.clone(), e.position).is_none(),
            "`{key}` was appended twice"
        );
    }
    for (key, position) in &acked {
        assert_eq!(
            by_key.get(key),
            Some(position),
            "acknowledged append `{key}` at position {position} survived the failover"
        );
    }
    // Each writer's stream is dense: no version lost in the middle.
    for w in 0..WRITERS {
        let n = acked
            .keys()
            .filter(|k| k.starts_with(&format!("w{w}-")))
            .count() as u64;
        let versions: Vec<u64> = stored
            .iter()
            .filter_map(|e| e.stream.as_ref())
            .filter(|s| *s.id == format!("writer/{w}"))
            .map(|s| s.version)
            .collect();
        assert_eq!(versions, (1..=n).collect::<Vec<_>>(), "writer/{w}");
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
