//! Appending one batch: validation, the call of `foldkit_append_one` (or of
//! `foldkit_append_event`), and the retries that are safe.
//!
//! One append is one statement, `SELECT foldkit_append_one(..)`, in its own
//! (implicit) transaction: the function checks the idempotency key and the
//! stream version and inserts the events under the append lock, and the
//! statement returns only after the commit. A batch of one event to no stream
//! and without a key, which has nothing to check, calls
//! `foldkit_append_event(..)` instead, the same append with less work. When its turn comes
//! ([`crate::notify`]), the function also notifies other instances, so the
//! notification commits with the events. What is retried:
//!
//! - no connection could be had (nothing was sent): until `retry_for`;
//! - the connection was lost after sending, when the batch has an idempotency
//!   key (the retry returns the first append's result if it had committed);
//!   without a key the outcome is unknown and the error says so;
//! - a concurrent writer of the same stream or key committed while we looked
//!   (`FK002`, `FK003`): at once, since the function released the lock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use foldkit::store::{AppendBatch, Appended, ExpectedVersion, StoreError};
use tokio_postgres::types::ToSql;

use crate::error::sqlstate;
use crate::read::{self, Failure, signed};
use crate::schema::{APPEND_EVENT_FN, APPEND_ONE_FN, STATE_KEY_RACE, STATE_STREAM_MOVED};
use crate::store::Inner;

/// A validated batch, as the function's parameters.
pub(crate) struct Prepared {
    stream: Option<String>,
    expected: ExpectedVersion,
    expected_param: i64,
    key: Option<String>,
    names: Vec<Arc<str>>,
    schema_versions: Vec<i32>,
    payloads: Vec<Vec<u8>>,
    correlation_id: Option<String>,
    causation: Option<i64>,
    actor: Option<String>,
    metadata: Option<String>,
}

/// A prepared batch's parameters, borrowed (for the group call).
pub(crate) struct Parts<'a> {
    pub(crate) stream: Option<&'a str>,
    pub(crate) expected: i64,
    pub(crate) key: Option<&'a str>,
    pub(crate) names: &'a [Arc<str>],
    pub(crate) schema_versions: &'a [i32],
    pub(crate) payloads: &'a [Vec<u8>],
    pub(crate) correlation_id: Option<&'a str>,
    pub(crate) causation: Option<i64>,
    pub(crate) actor: Option<&'a str>,
    pub(crate) metadata: Option<&'a str>,
}

impl Prepared {
    /// The stream the batch goes to, if any.
    pub(crate) fn stream(&self) -> Option<&str> {
        self.stream.as_deref()
    }

    /// The batch's idempotency key, if any.
    pub(crate) fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The parameters, borrowed.
    pub(crate) fn parts(&self) -> Parts<'_> {
        Parts {
            stream: self.stream.as_deref(),
            expected: self.expected_param,
            key: self.key.as_deref(),
            names: &self.names,
            schema_versions: &self.schema_versions,
            payloads: &self.payloads,
            correlation_id: self.correlation_id.as_deref(),
            causation: self.causation,
            actor: self.actor.as_deref(),
            metadata: self.metadata.as_deref(),
        }
    }
}

/// One batch's answer from the append functions' result columns
/// (status, first position, last position, stream version).
pub(crate) fn outcome(
    p: &Prepared,
    status: &str,
    first: Option<i64>,
    last: Option<i64>,
    version: i64,
) -> Result<Appended, StoreError> {
    let bad = |reason: &str| {
        crate::error::corrupt("the result of the append function", reason.to_owned())
    };
    let version = u64::try_from(version).map_err(|_| bad("negative stream version"))?;
    match status {
        "conflict" => Err(conflict(p, version)),
        "appended" | "duplicate" => {
            let (Some(first), Some(last)) = (first, last) else {
                return Err(bad("no positions"));
            };
            let (Ok(first), Ok(last)) = (u64::try_from(first), u64::try_from(last)) else {
                return Err(bad("negative positions"));
            };
            Ok(Appended {
                positions: first..=last,
                stream_version: version,
                deduplicated: status == "duplicate",
            })
        }
        other => Err(bad(&format!("unknown status `{other}`"))),
    }
}

/// Checks `batch` and turns it into parameters.
pub(crate) fn prepare(batch: &AppendBatch) -> Result<Prepared, StoreError> {
    if batch.events.is_empty() {
        return Err(StoreError::InvalidBatch("the batch has no events".into()));
    }
    let (stream, expected) = match &batch.stream {
        None => (None, ExpectedVersion::Any),
        Some(s) => {
            if s.stream.is_empty() {
                return Err(StoreError::InvalidBatch("the stream id is empty".into()));
            }
            no_nul(&s.stream, "the stream id")?;
            (Some(s.stream.clone()), s.expected)
        }
    };
    let expected_param = match expected {
        ExpectedVersion::Any => -1,
        ExpectedVersion::NoStream => 0,
        ExpectedVersion::Exact(v) => signed(v, "the expected stream version")?,
    };
    if let Some(key) = &batch.idempotency_key {
        if key.is_empty() {
            return Err(StoreError::InvalidBatch(
                "the idempotency key is empty".into(),
            ));
        }
        no_nul(key, "the idempotency key")?;
    }
    let mut names = Vec::with_capacity(batch.events.len());
    let mut schema_versions = Vec::with_capacity(batch.events.len());
    let mut payloads = Vec::with_capacity(batch.events.len());
    for (i, event) in batch.events.iter().enumerate() {
        if event.name.is_empty() {
            return Err(StoreError::InvalidBatch(format!(
                "event {i} of the batch has an empty name"
            )));
        }
        no_nul(&event.name, &format!("the name of event {i}"))?;
        let version = i32::try_from(event.schema_version).map_err(|_| {
            StoreError::InvalidBatch(format!(
                "event {i} (`{}`) has schema version {}, beyond PostgreSQL's integer",
                event.name, event.schema_version
            ))
        })?;
        names.push(event.name.clone());
        schema_versions.push(version);
        payloads.push(event.payload.clone());
    }
    let (mut correlation_id, mut causation, mut actor, mut metadata) = (None, None, None, None);
    if let Some(context) = batch.context.as_deref().filter(|c| !c.is_empty()) {
        if let Some(c) = &context.correlation_id {
            no_nul(c, "the correlation id")?;
            correlation_id = Some(c.clone());
        }
        if let Some(c) = context.causation {
            causation = Some(signed(c, "the causation position")?);
        }
        if let Some(a) = &context.actor {
            no_nul(a, "the actor")?;
            actor = Some(a.clone());
        }
        if !context.metadata.is_empty() {
            for (k, v) in &context.metadata {
                no_nul(k, "a metadata key")?;
                no_nul(v, &format!("metadata value `{k}`"))?;
            }
            metadata = Some(serde_json::to_string(&context.metadata).map_err(|e| {
                StoreError::InvalidBatch(format!("the metadata cannot be encoded as JSON: {e}"))
            })?);
        }
    }
    Ok(Prepared {
        stream,
        expected,
        expected_param,
        key: batch.idempotency_key.clone(),
        names,
        schema_versions,
        payloads,
        correlation_id,
        causation,
        actor,
        metadata,
    })
}

/// PostgreSQL text cannot hold NUL bytes: refuse them up front, by name.
fn no_nul(s: &str, what: &str) -> Result<(), StoreError> {
    if s.contains('\0') {
        Err(StoreError::InvalidBatch(format!(
            "{what} contains a NUL byte, which PostgreSQL text cannot store"
        )))
    } else {
        Ok(())
    }
}

/// What one call of the function returned.
enum Outcome {
    Appended(Appended),
    Conflict(u64),
}

/// One call's failure, classified for the retry decision.
enum CallError {
    /// Nothing was sent (no connection).
    NotSent(Failure),
    /// The connection was lost after the call was sent: outcome unknown.
    Lost(StoreError),
    /// A writer of the same stream committed first.
    StreamMoved,
    /// An append with the same key committed first.
    KeyRace,
    /// Anything else: final.
    Fatal(StoreError),
}

/// The call of [`APPEND_ONE_FN`]; when `$11`, the function also notifies
/// other instances in the same transaction, if it appended ([`crate::notify`]).
static CALL_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("SELECT {APPEND_ONE_FN}($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::jsonb, $11)")
});

/// The call of [`APPEND_EVENT_FN`] (`$8` as `$11` above).
static CALL_EVENT_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("SELECT {APPEND_EVENT_FN}($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8)")
});

async fn call<C: deadpool_postgres::GenericClient>(
    client: &C,
    p: &Prepared,
    notify: bool,
) -> Result<Outcome, CallError> {
    if let (None, None, [name], [schema_version], [payload]) = (
        &p.stream,
        &p.key,
        &p.names[..],
        &p.schema_versions[..],
        &p.payloads[..],
    ) {
        return call_event(client, p, (name, *schema_version, payload), notify).await;
    }
    let names: Vec<&str> = p.names.iter().map(|n| &**n).collect();
    let payloads: Vec<&[u8]> = p.payloads.iter().map(Vec::as_slice).collect();
    let params: [&(dyn ToSql + Sync); 11] = [
        &p.stream,
        &p.expected_param,
        &p.key,
        &names,
        &p.schema_versions,
        &payloads,
        &p.correlation_id,
        &p.causation,
        &p.actor,
        &p.metadata,
        &notify,
    ];
    let what = "the result of foldkit_append_one";
    let answer: Vec<Option<i64>> = answer(client, &CALL_SQL, &params, p, what).await?;
    let &[Some(status), first, last, Some(version)] = answer.as_slice() else {
        return Err(CallError::Fatal(crate::error::corrupt(
            what,
            format!("malformed answer {answer:?}"),
        )));
    };
    let status = match status {
        0 => "appended",
        1 => "duplicate",
        2 => "conflict",
        _ => "unknown",
    };
    match outcome(p, status, first, last, version) {
        Ok(appended) => Ok(Outcome::Appended(appended)),
        Err(StoreError::Conflict { actual, .. }) => Ok(Outcome::Conflict(actual)),
        Err(e) => Err(CallError::Fatal(e)),
    }
}

/// [`call`] of a batch of one event to no stream, without a key.
async fn call_event<C: deadpool_postgres::GenericClient>(
    client: &C,
    p: &Prepared,
    (name, schema_version, payload): (&str, i32, &[u8]),
    notify: bool,
) -> Result<Outcome, CallError> {
    let params: [&(dyn ToSql + Sync); 8] = [
        &name,
        &schema_version,
        &payload,
        &p.correlation_id,
        &p.causation,
        &p.actor,
        &p.metadata,
        &notify,
    ];
    let what = "the result of foldkit_append_event";
    let position: Option<i64> = answer(client, &CALL_EVENT_SQL, &params, p, what).await?;
    match outcome(p, "appended", position, position, 0) {
        Ok(appended) => Ok(Outcome::Appended(appended)),
        Err(e) => Err(CallError::Fatal(e)),
    }
}

/// Runs one append function's call `sql` (prepared once per connection) for `p`;
/// returns the one column of its one row, `what` naming it in errors.
async fn answer<C, A>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    p: &Prepared,
    what: &str,
) -> Result<A, CallError>
where
    C: deadpool_postgres::GenericClient,
    A: for<'r> tokio_postgres::types::FromSql<'r>,
{
    let statement = client
        .prepare_cached(sql)
        .await
        .map_err(|e| classify(e, p))?;
    let rows = client
        .query(&statement, params)
        .await
        .map_err(|e| classify(e, p))?;
    let row = rows
        .first()
        .ok_or_else(|| CallError::Fatal(crate::error::corrupt(what, "no row returned")))?;
    crate::read::column(row, 0, || what.to_owned()).map_err(CallError::Fatal)
}

fn classify(e: tokio_postgres::Error, p: &Prepared) -> CallError {
    match sqlstate(&e) {
        Some(STATE_STREAM_MOVED) => return CallError::StreamMoved,
        Some(STATE_KEY_RACE) => return CallError::KeyRace,
        _ => {}
    }
    let what = match &p.stream {
        Some(s) => format!("append {} events to stream `{s}`", p.names.len()),
        None => format!("append {} events", p.names.len()),
    };
    if crate::error::is_connection_loss(&e) {
        CallError::Lost(StoreError::backend(
            format!(
                "{what}: the connection was lost, so the batch may or may not be stored \
                 (append with an idempotency key to retry safely)"
            ),
            e,
        ))
    } else {
        CallError::Fatal(StoreError::backend(what, e))
    }
}

/// Appends `p`, retrying what is safe to retry; carries the notification of
/// other instances when the [gate](crate::notify::Gate) allows, and tells
/// local tails (and the gate) once it committed.
///
/// # Cancel safety
///
/// Dropped after its first poll, the batch is appended or not (never half),
/// as [`EventStore::append`](foldkit::store::EventStore::append) says. The
/// statement sent goes on to its end on the server (dropping a
/// tokio-postgres query does not cancel it, so the function releases the
/// append lock itself) while the connection goes back to the pool, where the
/// next call queues behind it. A notification is owed to other instances,
/// since the batch may have committed without one.
pub(crate) async fn append(inner: &Inner, p: &Prepared) -> Result<Appended, StoreError> {
    let ticket = inner.gate.try_take();
    let notify = ticket.is_some();
    let unsettled = Unsettled(Some(inner));
    let result = run(inner, p, |inner, p| async move {
        let client = inner.client().await.map_err(CallError::NotSent)?;
        let result = call(&client, p, notify).await;
        if let Err(CallError::Lost(_) | CallError::Fatal(_)) = &result {
            // An error in the middle of the function could leave the session's
            // append lock held: never give this connection back to the pool.
            drop(deadpool_postgres::Object::take(client));
        }
        result
    })
    .await;
    unsettled.done();
    if let Ok(appended) = &result {
        inner.committed(appended);
        inner.settle(!appended.deduplicated, ticket);
    }
    result
}

/// An append between its first call and its answer: dropped before
/// [`done`](Self::done), the batch may have committed without telling other
/// instances, so a notification is owed.
struct Unsettled<'a>(Option<&'a Inner>);

impl Unsettled<'_> {
    fn done(mut self) {
        self.0 = None;
    }
}

impl Drop for Unsettled<'_> {
    fn drop(&mut self) {
        if let Some(inner) = self.0 {
            inner.gate.owe();
        }
    }
}

/// Test hook: the call inside an explicit transaction held open for `hold`.
#[cfg(feature = "testing")]
pub(crate) async fn append_holding(
    inner: &Inner,
    p: &Prepared,
    hold: Duration,
) -> Result<Appended, StoreError> {
    let result = run(inner, p, |inner, p| async move {
        let mut client = inner.client().await.map_err(CallError::NotSent)?;
        let tx = client.transaction().await.map_err(|e| classify(e, p))?;
        let outcome = match call(&tx, p, false).await {
            Ok(outcome) => {
                tokio::time::sleep(hold).await;
                tx.commit()
                    .await
                    .map(|()| outcome)
                    .map_err(|e| classify(e, p))
            }
            Err(e) => {
                drop(tx);
                Err(e)
            }
        };
        if let Err(CallError::Lost(_) | CallError::Fatal(_)) = &outcome {
            drop(deadpool_postgres::Object::take(client));
        }
        outcome
    })
    .await;
    if let Ok(appended) = &result {
        inner.committed(appended);
        inner.settle(!appended.deduplicated, None);
    }
    result
}

async fn run<'a, F, Fut>(
    inner: &'a Inner,
    p: &'a Prepared,
    mut attempt: F,
) -> Result<Appended, StoreError>
where
    F: FnMut(&'a Inner, &'a Prepared) -> Fut,
    Fut: std::future::Future<Output = Result<Outcome, CallError>>,
{
    let deadline = Instant::now() + inner.retry_for;
    let mut delay = Duration::from_millis(10);
    let mut races = 0u32;
    loop {
        let error = match attempt(inner, p).await {
            Ok(Outcome::Appended(appended)) => return Ok(appended),
            // The key and the version are read by separate statements: a retry
            // of a batch whose first try committed between them sees the new
            // version but not yet the key. Ask again: the key answers then.
            Ok(Outcome::Conflict(_)) if p.key.is_some() && races < 10 => {
                races += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
            Ok(Outcome::Conflict(actual)) => return Err(conflict(p, actual)),
            Err(CallError::StreamMoved) => {
                races += 1;
                // With a key, the writer that moved the stream may be this
                // batch's own earlier try or retry: try again, and the key
                // (committed with that writer's events) answers.
                if p.key.is_none() && !matches!(p.expected, ExpectedVersion::Any) {
                    let stream = p.stream.as_deref().unwrap_or_default();
                    let actual =
                        read::with_retry(inner, || read::stream_version(inner, stream)).await?;
                    if !admits(p.expected, actual) {
                        return Err(conflict(p, actual));
                    }
                }
                if races > 1000 {
                    return Err(StoreError::backend(
                        "append: the stream kept moving under 1000 attempts",
                        "too much contention on one stream",
                    ));
                }
                continue;
            }
            Err(CallError::KeyRace) => {
                races += 1;
                continue;
            }
            Err(CallError::NotSent(f)) if f.transient => f.error,
            Err(CallError::NotSent(f)) => return Err(f.error),
            Err(CallError::Lost(e)) if p.key.is_some() => e,
            Err(CallError::Lost(e)) | Err(CallError::Fatal(e)) => return Err(e),
        };
        if Instant::now() >= deadline {
            return Err(error);
        }
        tracing::warn!(server = %inner.describe, %error, "foldkit-postgres: retrying an append");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

fn admits(expected: ExpectedVersion, actual: u64) -> bool {
    match expected {
        ExpectedVersion::Any => true,
        ExpectedVersion::NoStream => actual == 0,
        ExpectedVersion::Exact(v) => actual == v,
    }
}

fn conflict(p: &Prepared, actual: u64) -> StoreError {
    StoreError::Conflict {
        stream: p.stream.clone().unwrap_or_default(),
        expected: p.expected,
        actual,
    }
}
