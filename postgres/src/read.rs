//! Reads (events, streams, snapshots, checkpoints) and decoding rows.
//!
//! Event reads return only rows whose transaction is older than the oldest
//! transaction still running (`tx_id < pg_snapshot_xmin(pg_current_snapshot())`):
//! with positions allocated in transaction-id order (see the crate docs) no
//! later commit can land below what a read returned.
//!
//! Every read is idempotent, so a read that loses its connection is retried on
//! a fresh one ([`with_retry`]) until the store's `retry_for` runs out.

use std::collections::BTreeMap;
use std::future::Future;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use foldkit::Seq;
use foldkit::store::{EventContext, RecordedEvent, StoreError};
use tokio_postgres::Row;

use crate::error::{backend, corrupt, is_connection_loss};
use crate::store::Inner;

/// An operation's error, and whether trying again may succeed.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: StoreError,
    pub(crate) transient: bool,
}

impl Failure {
    /// A failed statement: transient when the connection went away.
    pub(crate) fn statement(action: impl Into<String>, e: tokio_postgres::Error) -> Self {
        let transient = is_connection_loss(&e);
        Failure {
            error: backend(action, e),
            transient,
        }
    }

    /// A final error.
    pub(crate) fn fatal(error: StoreError) -> Self {
        Failure {
            error,
            transient: false,
        }
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Failure::fatal(error)
    }
}

/// Runs `op` until it succeeds, fails for good, or `retry_for` has passed.
pub(crate) async fn with_retry<T, F, Fut>(inner: &Inner, mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let deadline = Instant::now() + inner.retry_for;
    let mut delay = Duration::from_millis(10);
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(f) if f.transient && Instant::now() < deadline => {
                tracing::warn!(server = %inner.describe, error = %f.error, "foldkit-postgres: retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(500));
            }
            Err(f) => return Err(f.error),
        }
    }
}

const EVENT_COLUMNS: &str = "position, timestamp_ms, event_name, schema_version, stream_id, \
     stream_version, correlation_id, causation, actor, metadata::text, payload";

/// Up to `max` events from position `from`, gap-free.
pub(crate) async fn events(
    inner: &Inner,
    from: Seq,
    max: usize,
) -> Result<Vec<RecordedEvent>, Failure> {
    let Ok(from) = i64::try_from(from) else {
        return Ok(Vec::new());
    };
    let limit = i64::try_from(max).unwrap_or(i64::MAX);
    if limit == 0 {
        return Ok(Vec::new());
    }
    let client = inner.client().await?;
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM foldkit_events \
         WHERE position >= $1 AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
         ORDER BY position LIMIT $2"
    );
    let statement = client
        .prepare_cached(&sql)
        .await
        .map_err(|e| Failure::statement("prepare the event read", e))?;
    let rows = client
        .query(&statement, &[&from, &limit])
        .await
        .map_err(|e| Failure::statement(format!("read events from position {from}"), e))?;
    Ok(decode_rows(&rows)?)
}

/// The events of `stream` with versions in `versions`.
///
/// A stream's versions commit in order (an append reads the committed
/// version under the append lock), so no xmin filter is needed here, and an
/// aggregate sees its stream's newest committed event at once.
pub(crate) async fn stream(
    inner: &Inner,
    stream: &str,
    versions: RangeInclusive<u64>,
) -> Result<Vec<RecordedEvent>, Failure> {
    let lo = i64::try_from(*versions.start()).unwrap_or(i64::MAX);
    let hi = i64::try_from(*versions.end()).unwrap_or(i64::MAX);
    if lo > hi {
        return Ok(Vec::new());
    }
    let client = inner.client().await?;
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM foldkit_events \
         WHERE stream_id = $1 AND stream_version BETWEEN $2 AND $3 ORDER BY stream_version"
    );
    let statement = client
        .prepare_cached(&sql)
        .await
        .map_err(|e| Failure::statement("prepare the stream read", e))?;
    let rows = client
        .query(&statement, &[&stream, &lo, &hi])
        .await
        .map_err(|e| Failure::statement(format!("read stream `{stream}`"), e))?;
    Ok(decode_rows(&rows)?)
}

/// The committed version of `stream` (0 when it has no events).
pub(crate) async fn stream_version(inner: &Inner, stream: &str) -> Result<u64, Failure> {
    let client = inner.client().await?;
    let statement = client
        .prepare_cached(
            "SELECT coalesce(max(stream_version), 0) FROM foldkit_events WHERE stream_id = $1",
        )
        .await
        .map_err(|e| Failure::statement("prepare the stream version read", e))?;
    let row = client
        .query_one(&statement, &[&stream])
        .await
        .map_err(|e| Failure::statement(format!("read the version of stream `{stream}`"), e))?;
    let version: i64 = column(&row, 0, || "foldkit_events, column stream_version".into())?;
    Ok(unsigned(version, || {
        format!("foldkit_events, stream `{stream}`, column stream_version")
    })?)
}

/// The last position a gap-free read can return now.
pub(crate) async fn last_position(inner: &Inner) -> Result<Option<Seq>, Failure> {
    let client = inner.client().await?;
    let statement = client
        .prepare_cached(
            "SELECT position FROM foldkit_events \
             WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
             ORDER BY position DESC LIMIT 1",
        )
        .await
        .map_err(|e| Failure::statement("prepare the last position read", e))?;
    let row = client
        .query_opt(&statement, &[])
        .await
        .map_err(|e| Failure::statement("read the last position", e))?;
    match row {
        None => Ok(None),
        Some(row) => {
            let p: i64 = column(&row, 0, || "foldkit_events, column position".into())?;
            Ok(Some(unsigned(p, || {
                "foldkit_events, column position".into()
            })?))
        }
    }
}

/// Makes every commit so far durable, whatever the server's
/// `synchronous_commit`: a transaction with an id, committed with
/// `synchronous_commit = on`, flushes the WAL up to its commit record.
pub(crate) async fn flush_wal(inner: &Inner) -> Result<(), Failure> {
    let client = inner.client().await?;
    client
        .batch_execute(
            "BEGIN; SET LOCAL synchronous_commit = on; SELECT pg_current_xact_id(); COMMIT;",
        )
        .await
        .map_err(|e| Failure::statement("flush the write-ahead log", e))
}

pub(crate) async fn write_snapshot(
    inner: &Inner,
    state: &str,
    position: Seq,
    bytes: &[u8],
) -> Result<(), Failure> {
    let p = signed(position, "snapshot position")?;
    let client = inner.client().await?;
    client
        .execute(
            "INSERT INTO foldkit_snapshots (state, position, bytes) VALUES ($1, $2, $3) \
             ON CONFLICT (state, position) DO UPDATE SET bytes = EXCLUDED.bytes, written_at = now()",
            &[&state, &p, &bytes],
        )
        .await
        .map_err(|e| {
            Failure::statement(
                format!("write the snapshot of `{state}` at position {position}"),
                e,
            )
        })?;
    Ok(())
}

pub(crate) async fn list_snapshots(inner: &Inner, state: &str) -> Result<Vec<Seq>, Failure> {
    let client = inner.client().await?;
    let rows = client
        .query(
            "SELECT position FROM foldkit_snapshots WHERE state = $1 ORDER BY position DESC",
            &[&state],
        )
        .await
        .map_err(|e| Failure::statement(format!("list the snapshots of `{state}`"), e))?;
    rows.iter()
        .map(|row| {
            let place = || format!("foldkit_snapshots, state `{state}`, column position");
            column(row, 0, place)
                .and_then(|p: i64| unsigned(p, place))
                .map_err(Failure::fatal)
        })
        .collect()
}

pub(crate) async fn read_snapshot(
    inner: &Inner,
    state: &str,
    position: Seq,
) -> Result<Option<Vec<u8>>, Failure> {
    let Ok(p) = i64::try_from(position) else {
        return Ok(None);
    };
    let client = inner.client().await?;
    let row = client
        .query_opt(
            "SELECT bytes FROM foldkit_snapshots WHERE state = $1 AND position = $2",
            &[&state, &p],
        )
        .await
        .map_err(|e| {
            Failure::statement(
                format!("read the snapshot of `{state}` at position {position}"),
                e,
            )
        })?;
    match row {
        None => Ok(None),
        Some(row) => Ok(Some(column(&row, 0, || {
            format!("foldkit_snapshots, state `{state}` at position {position}, column bytes")
        })?)),
    }
}

pub(crate) async fn remove_snapshot(
    inner: &Inner,
    state: &str,
    position: Seq,
) -> Result<(), Failure> {
    let Ok(p) = i64::try_from(position) else {
        return Ok(());
    };
    let client = inner.client().await?;
    client
        .execute(
            "DELETE FROM foldkit_snapshots WHERE state = $1 AND position = $2",
            &[&state, &p],
        )
        .await
        .map_err(|e| {
            Failure::statement(
                format!("remove the snapshot of `{state}` at position {position}"),
                e,
            )
        })?;
    Ok(())
}

pub(crate) async fn write_checkpoint(
    inner: &Inner,
    name: &str,
    position: Seq,
) -> Result<(), Failure> {
    let p = signed(position, "checkpoint position")?;
    let client = inner.client().await?;
    client
        .execute(
            "INSERT INTO foldkit_checkpoints (name, position) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated_at = now()",
            &[&name, &p],
        )
        .await
        .map_err(|e| Failure::statement(format!("write the checkpoint of `{name}`"), e))?;
    Ok(())
}

pub(crate) async fn read_checkpoint(inner: &Inner, name: &str) -> Result<Option<Seq>, Failure> {
    let client = inner.client().await?;
    let row = client
        .query_opt(
            "SELECT position FROM foldkit_checkpoints WHERE name = $1",
            &[&name],
        )
        .await
        .map_err(|e| Failure::statement(format!("read the checkpoint of `{name}`"), e))?;
    match row {
        None => Ok(None),
        Some(row) => {
            let place = || format!("foldkit_checkpoints, name `{name}`, column position");
            let p: i64 = column(&row, 0, place)?;
            Ok(Some(unsigned(p, place)?))
        }
    }
}

/// The distinct values of `column` in `table`, in byte order (not the
/// database's collation: the same order as every other store).
async fn names(inner: &Inner, sql: &'static str, what: &str) -> Result<Vec<String>, Failure> {
    let client = inner.client().await?;
    let rows = client
        .query(sql, &[])
        .await
        .map_err(|e| Failure::statement(format!("list the {what}"), e))?;
    let mut names = rows
        .iter()
        .map(|row| column(row, 0, || format!("the {what}")))
        .collect::<Result<Vec<String>, StoreError>>()?;
    names.sort();
    Ok(names)
}

pub(crate) async fn snapshot_names(inner: &Inner) -> Result<Vec<String>, Failure> {
    names(
        inner,
        "SELECT DISTINCT state FROM foldkit_snapshots",
        "snapshot names",
    )
    .await
}

pub(crate) async fn checkpoint_names(inner: &Inner) -> Result<Vec<String>, Failure> {
    names(
        inner,
        "SELECT name FROM foldkit_checkpoints",
        "checkpoint names",
    )
    .await
}

/// A `u64` as a `bigint`, or [`StoreError::OutOfRange`] naming `what`.
pub(crate) fn signed(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange {
        what: what.to_owned(),
        value,
        max: i64::MAX.unsigned_abs(),
    })
}

/// A stored `bigint` that must not be negative.
fn unsigned(value: i64, place: impl FnOnce() -> String) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt(place(), format!("negative value {value}")))
}

/// Decodes event rows (columns as in [`EVENT_COLUMNS`]). Consecutive rows of
/// one batch share their name and context allocations.
fn decode_rows(rows: &[Row]) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    let mut last_name: Option<Arc<str>> = None;
    let mut last_stream: Option<Arc<str>> = None;
    let mut last_context: Option<Arc<EventContext>> = None;
    for row in rows {
        let position: i64 = get(row, 0)?;
        let place = || format!("foldkit_events, position {position}");
        let position = unsigned(position, place)?;
        let timestamp = unsigned(get(row, 1)?, || format!("{}, column timestamp_ms", place()))?;
        let name_str: &str = get(row, 2)?;
        let name = match &last_name {
            Some(n) if &**n == name_str => n.clone(),
            _ => {
                let n: Arc<str> = Arc::from(name_str);
                last_name = Some(n.clone());
                n
            }
        };
        let schema_version: i32 = get(row, 3)?;
        let schema_version = u32::try_from(schema_version).map_err(|_| {
            corrupt(
                format!("{}, column schema_version", place()),
                format!("negative value {schema_version}"),
            )
        })?;
        let payload: &[u8] = get(row, 10)?;
        let mut event = RecordedEvent::new(
            position,
            timestamp,
            name,
            schema_version,
            Bytes::copy_from_slice(payload),
        );
        let stream_id: Option<&str> = get(row, 4)?;
        if let Some(stream_id) = stream_id {
            let version: Option<i64> = get(row, 5)?;
            let version = version.ok_or_else(|| {
                corrupt(
                    format!("{}, column stream_version", place()),
                    "null for an event in a stream",
                )
            })?;
            let version = unsigned(version, || format!("{}, column stream_version", place()))?;
            let id = match &last_stream {
                Some(s) if &**s == stream_id => s.clone(),
                _ => {
                    let s: Arc<str> = Arc::from(stream_id);
                    last_stream = Some(s.clone());
                    s
                }
            };
            event = event.in_stream(id, version);
        }
        let context = decode_context(row, position, &last_context)?;
        last_context.clone_from(&context);
        out.push(event.with_context(context));
    }
    Ok(out)
}

fn decode_context(
    row: &Row,
    position: Seq,
    previous: &Option<Arc<EventContext>>,
) -> Result<Option<Arc<EventContext>>, StoreError> {
    let correlation: Option<&str> = get(row, 6)?;
    let causation: Option<i64> = get(row, 7)?;
    let actor: Option<&str> = get(row, 8)?;
    let metadata: Option<&str> = get(row, 9)?;
    if correlation.is_none() && causation.is_none() && actor.is_none() && metadata.is_none() {
        return Ok(None);
    }
    let mut context = EventContext::new();
    if let Some(c) = correlation {
        context = context.correlation_id(c);
    }
    if let Some(c) = causation {
        let c = unsigned(c, || {
            format!("foldkit_events, position {position}, column causation")
        })?;
        context = context.caused_by(c);
    }
    if let Some(a) = actor {
        context = context.actor(a);
    }
    if let Some(m) = metadata {
        let map: BTreeMap<String, String> = serde_json::from_str(m).map_err(|e| {
            corrupt(
                format!("foldkit_events, position {position}, column metadata"),
                format!("not a JSON object of strings: {e}"),
            )
        })?;
        context.metadata = map;
    }
    if let Some(prev) = previous
        && **prev == context
    {
        return Ok(Some(prev.clone()));
    }
    Ok(Some(Arc::new(context)))
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
) -> Result<T, StoreError> {
    column(row, index, || format!("foldkit_events, column {index}"))
}

/// Column `index` of `row`, of the type the query asked for; a NULL or a value of
/// another type (a table changed by hand) is [`StoreError::Corrupt`] at `place`,
/// never a panic.
pub(crate) fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
    place: impl FnOnce() -> String,
) -> Result<T, StoreError> {
    row.try_get(index)
        .map_err(|e| corrupt(place(), format!("unexpected value: {e}")))
}

#[cfg(test)]
mod tests {
    use super::{StoreError, signed};

    #[test]
    fn a_position_beyond_bigint_is_out_of_range_not_an_invalid_append() {
        assert_eq!(signed(7, "snapshot position").unwrap(), 7);
        let error = signed(u64::MAX, "checkpoint position").unwrap_err();
        assert!(
            matches!(
                &error,
                StoreError::OutOfRange { what, value: u64::MAX, max }
                    if what == "checkpoint position" && *max == i64::MAX as u64
            ),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!(
                "checkpoint position {} is out of range: this store keeps at most {}",
                u64::MAX,
                i64::MAX
            )
        );
    }
}
