//! Group commit: concurrent appends of one store share one transaction.
//!
//! An append that finds another of its store in flight goes through a queue
//! served by a few worker tasks; one that finds none has nothing to share a
//! transaction with and runs the single-batch path ([`append::append`]) in
//! its caller's task, sparing the hand-offs to and from a worker (on two
//! cores, taking them out moved a lone durable append from 1.2–2.1x a
//! hand-written `INSERT` to 0.8–1.6x, median 1.24x; see `benches/pg.rs`).
//! A worker
//! takes what is queued (up to [`MAX_GROUP`] batches, no two for the same
//! stream or idempotency key) and appends it with one call of
//! `foldkit_append_batches`: one round trip, one hold of the append lock, one
//! `INSERT` of all the group's events, one commit (one WAL flush) for the
//! whole group, while each batch keeps its own
//! answer (appended, duplicate, conflict). A group of one takes the
//! single-batch path with its retries.
//!
//! When a group fails as a whole (a concurrent writer moved one of its streams,
//! a key race, a server error: the transaction rolled back), each batch is
//! appended again on its own, so one batch's trouble is never another's. When
//! the connection is lost mid-call, the outcome is unknown: keyed batches are
//! retried (the key makes that safe), the others get the error saying so.
//!
//! Workers run as tasks, so dropping an append's future never stops a group:
//! the batch is appended or not, as the trait's cancel-safety note says.

use std::collections::HashSet;
use std::sync::{Arc, Weak};

use foldkit::store::{Appended, StoreError};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_postgres::types::ToSql;

use crate::append::{self, Prepared};
use crate::error::{is_connection_loss, sqlstate};
use crate::schema::{APPEND_BATCHES_FN, CHANNEL, STATE_KEY_RACE, STATE_STREAM_MOVED};
use crate::store::Inner;

/// The most batches one transaction carries.
pub(crate) const MAX_GROUP: usize = 64;
/// How many groups may be in flight at once (each on its own connection).
pub(crate) const WORKERS: usize = 4;

/// One queued append and where its answer goes.
pub(crate) struct Pending {
    pub(crate) prepared: Prepared,
    pub(crate) reply: oneshot::Sender<Result<Appended, StoreError>>,
}

pub(crate) type Queue = Arc<Mutex<mpsc::UnboundedReceiver<Pending>>>;

/// A worker: serves the queue until the store is gone.
pub(crate) async fn worker(store: Weak<Inner>, queue: Queue) {
    let mut carry: Vec<Pending> = Vec::new();
    loop {
        let mut group = std::mem::take(&mut carry);
        // With work carried over, never wait for the queue (another worker
        // may hold it while waiting for new appends); without, wait.
        let rx = if group.is_empty() {
            let mut rx = queue.lock().await;
            match rx.recv().await {
                Some(p) => group.push(p),
                None => return,
            }
            Some(rx)
        } else {
            queue.try_lock().ok()
        };
        if let Some(mut rx) = rx {
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(p) => group.push(p),
                    Err(_) => break,
                }
            }
        }
        let (now, later) = split(group);
        carry = later;
        let Some(inner) = store.upgrade() else {
            for p in now.into_iter().chain(carry.drain(..)) {
                let _ = p.reply.send(Err(StoreError::Closed));
            }
            return;
        };
        run(&inner, now).await;
    }
}

/// The batches that can share a transaction (distinct streams and keys), and
/// the rest, for the next group.
fn split(group: Vec<Pending>) -> (Vec<Pending>, Vec<Pending>) {
    let mut streams = HashSet::new();
    let mut keys = HashSet::new();
    let (mut now, mut later) = (Vec::new(), Vec::new());
    for p in group {
        let stream_free = p.prepared.stream().is_none_or(|s| !streams.contains(s));
        let key_free = p.prepared.key().is_none_or(|k| !keys.contains(k));
        if stream_free && key_free {
            if let Some(s) = p.prepared.stream() {
                streams.insert(s.to_owned());
            }
            if let Some(k) = p.prepared.key() {
                keys.insert(k.to_owned());
            }
            now.push(p);
        } else {
            later.push(p);
        }
    }
    (now, later)
}

/// Appends one group and answers every batch in it.
async fn run(inner: &Inner, group: Vec<Pending>) {
    if group.len() == 1 {
        for p in group {
            single(inner, p).await;
        }
        return;
    }
    let ticket = inner.gate.try_take();
    match call(inner, &group, ticket.is_some()).await {
        Ok(results) => {
            let mut new = false;
            for result in results.iter().flatten() {
                inner.committed(result);
                new |= !result.deduplicated;
            }
            inner.settle(new, ticket);
            for (p, result) in group.into_iter().zip(results) {
                let _ = p.reply.send(result);
            }
        }
        Err(GroupError::Lost(error)) => {
            drop(ticket);
            for p in group {
                if p.prepared.key().is_some() {
                    single(inner, p).await;
                } else {
                    let e = StoreError::backend(
                        "append: the connection was lost, so the batch may or may not be stored \
                         (append with an idempotency key to retry safely)",
                        error.to_string(),
                    );
                    let _ = p.reply.send(Err(e));
                }
            }
        }
        Err(GroupError::RolledBack) => {
            drop(ticket);
            for p in group {
                single(inner, p).await;
            }
        }
    }
}

async fn single(inner: &Inner, p: Pending) {
    let result = append::append(inner, &p.prepared).await;
    let _ = p.reply.send(result);
}

enum GroupError {
    /// The connection was lost after the call was sent: the outcome is unknown.
    Lost(tokio_postgres::Error),
    /// Nothing of the group was written (or nothing was sent).
    RolledBack,
}

/// The group call: per-batch arrays, then per-event arrays (see
/// [`APPEND_BATCHES_FN`]); prepared once per connection. When `$13`, the
/// same transaction notifies other instances of the highest position the
/// group appended, if it appended any ([`crate::notify`]).
const CALL_SQL: &str = "SELECT r.statuses, r.first_positions, r.last_positions, r.stream_versions, \
            CASE WHEN $13 THEN (SELECT pg_notify('foldkit_events', max(u.l)::text) \
                                  FROM unnest(r.statuses, r.last_positions) AS u(s, l) \
                                 WHERE u.s = 'appended' HAVING count(*) > 0) END \
     FROM foldkit_append_batches($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) r";

async fn call(
    inner: &Inner,
    group: &[Pending],
    notify: bool,
) -> Result<Vec<Result<Appended, StoreError>>, GroupError> {
    debug_assert!(CALL_SQL.contains(APPEND_BATCHES_FN));
    debug_assert!(CALL_SQL.contains(&format!("pg_notify('{CHANNEL}'")));
    let client = inner.client().await.map_err(|_| GroupError::RolledBack)?;
    let n = group.len();
    let events: usize = group.iter().map(|p| p.prepared.parts().names.len()).sum();
    let mut counts: Vec<i32> = Vec::with_capacity(n);
    let mut streams: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut expected: Vec<i64> = Vec::with_capacity(n);
    let mut keys: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut correlation: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut causation: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut actors: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut metadata: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut batch_of: Vec<i32> = Vec::with_capacity(events);
    let mut names: Vec<&str> = Vec::with_capacity(events);
    let mut versions: Vec<i32> = Vec::with_capacity(events);
    let mut payloads: Vec<&[u8]> = Vec::with_capacity(events);
    for (i, p) in group.iter().enumerate() {
        let parts = p.prepared.parts();
        // At most MAX_GROUP batches, and a batch's length came from a Vec.
        counts.push(i32::try_from(parts.names.len()).unwrap_or(i32::MAX));
        streams.push(parts.stream);
        expected.push(parts.expected);
        keys.push(parts.key);
        correlation.push(parts.correlation_id);
        causation.push(parts.causation);
        actors.push(parts.actor);
        metadata.push(parts.metadata);
        let batch = i as i32 + 1;
        batch_of.extend(std::iter::repeat_n(batch, parts.names.len()));
        names.extend(parts.names.iter().map(|n| &**n));
        versions.extend_from_slice(parts.schema_versions);
        payloads.extend(parts.payloads.iter().map(Vec::as_slice));
    }
    let params: [&(dyn ToSql + Sync); 13] = [
        &counts,
        &streams,
        &expected,
        &keys,
        &batch_of,
        &names,
        &versions,
        &payloads,
        &correlation,
        &causation,
        &actors,
        &metadata,
        &notify,
    ];
    let statement = match client.prepare_cached(CALL_SQL).await {
        Ok(s) => s,
        Err(e) => return Err(failed(client, e)),
    };
    let row = match client.query_one(&statement, &params).await {
        Ok(row) => row,
        Err(e) => return Err(failed(client, e)),
    };
    Ok(answers(group, &row))
}

/// Each batch's answer from the function's one row of per-batch arrays.
fn answers(group: &[Pending], row: &tokio_postgres::Row) -> Vec<Result<Appended, StoreError>> {
    let what = "the result of foldkit_append_batches";
    type Columns = (Vec<String>, Vec<Option<i64>>, Vec<Option<i64>>, Vec<i64>);
    let columns: Result<Columns, String> = (|| {
        let columns: Columns = (
            row.try_get(0).map_err(|e| e.to_string())?,
            row.try_get(1).map_err(|e| e.to_string())?,
            row.try_get(2).map_err(|e| e.to_string())?,
            row.try_get(3).map_err(|e| e.to_string())?,
        );
        let lengths = [
            columns.0.len(),
            columns.1.len(),
            columns.2.len(),
            columns.3.len(),
        ];
        if lengths.iter().any(|&l| l != group.len()) {
            return Err(format!("{lengths:?} answers for {} batches", group.len()));
        }
        Ok(columns)
    })();
    match columns {
        Ok((statuses, firsts, lasts, versions)) => group
            .iter()
            .enumerate()
            .map(|(i, p)| {
                append::outcome(&p.prepared, &statuses[i], firsts[i], lasts[i], versions[i])
            })
            .collect(),
        Err(reason) => {
            tracing::error!(%reason, "foldkit-postgres: {what} is malformed");
            group
                .iter()
                .map(|_| Err(crate::error::corrupt(what, reason.clone())))
                .collect()
        }
    }
}

/// Classifies a failed group call; drops a connection that may hold the lock.
fn failed(client: deadpool_postgres::Object, e: tokio_postgres::Error) -> GroupError {
    let code = sqlstate(&e).map(str::to_owned);
    let ours = matches!(code.as_deref(), Some(STATE_STREAM_MOVED | STATE_KEY_RACE));
    if !ours {
        // An error in the middle of the function could leave the session's
        // append lock held: never give this connection back to the pool.
        drop(deadpool_postgres::Object::take(client));
    }
    if is_connection_loss(&e) {
        GroupError::Lost(e)
    } else {
        GroupError::RolledBack
    }
}
