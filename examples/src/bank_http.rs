//! The bank over HTTP: an [axum] service that runs [`AccountCommand`]s on the
//! [`Account`] aggregate and serves the [`Bank`] read model (issue #8).
//!
//! | method and path | what it does |
//! |---|---|
//! | `POST /accounts/{id}` | runs the JSON command in the body (`{"type":"Deposit","amount":5}`) on the account; answers its new version, the seqs of the events written, and its balance |
//! | `GET /accounts/{id}` | the account (owner, balance) with its version (also as the `ETag`) |
//! | `GET /accounts/{id}/events` | the account's history, with each event's version, seq and timestamp |
//! | `GET /accounts?owner=..&min_balance=..&max_balance=..&limit=..` | a typed query on the read model |
//! | `GET /accounts/watch?owner=..&min_balance=..&max_balance=..` | a server-sent-events stream of that query: the current result at once, then each change |
//!
//! A command's body is read as JSON whatever its `Content-Type` (so a bare
//! `curl -d '{..}'` works); axum's default limit of 2 MB applies.
//!
//! Read-your-writes: `POST` answers the seqs it wrote; `GET /accounts` (and the
//! watch) take `min_seq=N` and wait until the read model has folded seq `N` before
//! they query it ([`Handle::wait_for_seq`]).
//!
//! Optimistic concurrency: a `POST` with `If-Match: "N"` (or `?expected_version=N`)
//! runs only if the account is at version `N`, and answers 409 otherwise (version 0:
//! the account must not exist yet). Without it, commands on one account simply run
//! one after the other.
//!
//! Errors are JSON, `{"error": "<message>", "kind": "<kind>", ...details}`:
//!
//! | status | kind | when |
//! |---|---|---|
//! | 400 | `bad_request` | malformed JSON, an unknown command type, a missing field, bad query parameters or headers, an invalid account id |
//! | 404 | `not_found` | the account does not exist (reading it, or a command other than `OpenAccount`) |
//! | 409 | `conflict` | the account is not at the expected version (`expected`, `actual`) |
//! | 422 | `rejected` | the domain refused the command (`reason`: `AlreadyOpen`, `ZeroAmount`, `InsufficientFunds` with `balance` and `requested`, `Overflow`) |
//! | 503 | `unavailable` | the Db is closed |
//! | 500 | `internal` | storage, codec, fold or configuration errors |
//!
//! ```no_run
//! use foldkit_examples::bank_http::{AppState, open_db};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let db = open_db("./bank-data").await?;
//! let app = AppState::new(db.clone());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! let stop = app.clone();
//! axum::serve(listener, app.router())
//!     .with_graceful_shutdown(async move {
//!         let _ = tokio::signal::ctrl_c().await;
//!         stop.shutdown(); // ends the open watch streams, so the server can stop
//!     })
//!     .await?;
//! db.close().await?;
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use foldkit::prelude::*;
use foldkit::{Aggregates, DbError, ExecuteError, Seq};
use futures::{Stream, StreamExt};
use serde_json::{Value, json};

use crate::bank::{Account, AccountCommand, AccountError, AccountEvent, AccountRow, Bank};

/// Opens (or creates) the bank's Db in `dir`: the [`Account`] aggregate and the
/// [`Bank`] read model. Every acknowledged command is durable
/// ([`FsyncPolicy::Always`], with group commit across concurrent requests).
pub async fn open_db(dir: impl AsRef<Path>) -> Result<Db, DbError> {
    Db::builder(dir)
        .fsync(FsyncPolicy::Always)
        .aggregate::<Account>()
        .state::<Bank>()
        .open()
        .await
}

/// Builds the service over `db` (opened with [`open_db`], or with at least
/// `.aggregate::<Account>().state::<Bank>()`). Its watch streams end when the Db
/// closes; use [`AppState`] to end them earlier, for a graceful shutdown.
pub fn router(db: Db) -> Router {
    AppState::new(db).router()
}

/// The service's shared state: the Db, and a switch that ends the watch streams.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    db: Db,
    accounts: Aggregates<Account>,
    shutdown: Arc<tokio::sync::watch::Sender<bool>>,
}

impl AppState {
    /// The state of a service over `db`.
    pub fn new(db: Db) -> Self {
        let accounts = db.aggregate::<Account>();
        Self {
            db,
            accounts,
            shutdown: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }

    /// The Db the service runs on.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The routes (see the [module docs](self)) over this state.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/accounts", get(query_accounts))
            .route("/accounts/watch", get(watch_accounts))
            .route("/accounts/{id}", get(get_account).post(execute))
            .route("/accounts/{id}/events", get(account_events))
            .with_state(self.clone())
    }

    /// Ends every open watch stream (and makes new ones end at once). A server
    /// with a graceful shutdown waits for its open responses, and a watch never
    /// ends by itself: call this when the shutdown starts, then close the Db.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Resolves once [`shutdown`](Self::shutdown) was called.
    fn stopping(&self) -> impl Future<Output = ()> + Send + use<> {
        let mut stopped = self.shutdown.subscribe();
        async move {
            // An error means the sender is gone: nothing can stop the stream then
            // but the Db closing, which ends it anyway.
            if stopped.wait_for(|&stop| stop).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// The read model, or a 500 if the Db was opened without it.
    fn bank(&self) -> Result<Handle<Bank>, ApiError> {
        self.db.try_state::<Bank>().map_err(ApiError::from)
    }

    /// Waits until the read model has folded `min_seq`, if one was given.
    async fn catch_up(&self, bank: &Handle<Bank>, min_seq: Option<Seq>) -> Result<(), ApiError> {
        let Some(seq) = min_seq else { return Ok(()) };
        let last = self.db.last_seq::<AccountEvent>().unwrap_or(0);
        if seq > last {
            return Err(ApiError::bad_request(format!(
                "min_seq {seq} is beyond the log, which ends at seq {last}"
            ))
            .with("last_seq", last));
        }
        bank.wait_for_seq(seq).await.map_err(ApiError::from)
    }
}

/// An error answer: a status and a JSON body `{"error": .., "kind": .., ..}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The JSON body (an object with at least `error` and `kind`).
    pub body: Value,
}

impl ApiError {
    fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({ "error": message.into(), "kind": kind }),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("account `{id}` does not exist"),
        )
        .with("id", id)
    }

    fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// Adds a detail field to the body.
    fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        if let Value::Object(map) = &mut self.body {
            map.insert(key.to_owned(), value.into());
        }
        self
    }

    /// A refusal by the domain: 404 for an account that does not exist, 422 otherwise.
    fn rejected(id: &str, error: &AccountError) -> Self {
        let refused = |reason: &str| {
            Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "rejected",
                error.to_string(),
            )
            .with("reason", reason)
            .with("id", id)
        };
        match error {
            AccountError::NotOpen => Self::not_found(id),
            AccountError::AlreadyOpen => refused("AlreadyOpen"),
            AccountError::ZeroAmount => refused("ZeroAmount"),
            AccountError::InsufficientFunds { balance, requested } => refused("InsufficientFunds")
                .with("balance", *balance)
                .with("requested", *requested),
            AccountError::Overflow => refused("Overflow"),
        }
    }

    /// A rejection of one of axum's extractors (path, query, body), as JSON.
    fn extractor(status: StatusCode, what: &str, text: String) -> Self {
        let kind = if status.is_server_error() {
            "internal"
        } else {
            "bad_request"
        };
        Self::new(status, kind, format!("{what}: {text}"))
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        let message = error.to_string();
        match error {
            DbError::Conflict {
                stream,
                expected,
                actual,
            } => {
                let expected = match expected {
                    ExpectedVersion::Exact(version) => json!(version),
                    ExpectedVersion::NoStream => json!(0),
                    ExpectedVersion::Any => json!("any"),
                };
                Self::new(StatusCode::CONFLICT, "conflict", message)
                    .with("stream", stream)
                    .with("expected", expected)
                    .with("actual", actual)
            }
            // The id passed validation, so these mean it still cannot name a stream.
            DbError::EmptyStreamId | DbError::Envelope { .. } => Self::bad_request(message),
            DbError::Closed => Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message),
            // The Db was opened without the bank's logs or states.
            DbError::UnknownEvent { .. }
            | DbError::UnknownState { .. }
            | DbError::InvalidEventName { .. }
            | DbError::EventNameConflict { .. } => Self::internal(message),
            // The read model stopped folding, or the log cannot be read or written.
            DbError::Fold(_)
            | DbError::Read { .. }
            | DbError::Storage { .. }
            | DbError::Codec(_)
            | DbError::EmptyBatch { .. } => Self::internal(message),
            // Opening, snapshots and restores: not reachable from a request, but mapped.
            DbError::Dir { .. }
            | DbError::AlreadyOpen { .. }
            | DbError::Snapshot(_)
            | DbError::SnapshotIo(_)
            | DbError::RestoreBeyondLog { .. } => Self::internal(message),
            // `DbError` is non-exhaustive: a variant added later is a server error.
            _ => Self::internal(message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            eprintln!("bank_http: {} {}", self.status, self.body);
        }
        (self.status, axum::Json(self.body)).into_response()
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::extractor(rejection.status(), "bad path", rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::extractor(
            rejection.status(),
            "bad query parameters",
            rejection.body_text(),
        )
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        Self::extractor(rejection.status(), "bad body", rejection.body_text())
    }
}

/// The longest account id the service accepts.
pub const MAX_ID_LEN: usize = 64;

/// Checks an account id: 1 to [`MAX_ID_LEN`] ASCII letters, digits, `-`, `_` or `.`,
/// and not `watch` (that path is the watch stream).
fn check_id(id: &str) -> Result<(), ApiError> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.chars().all(valid_char) || id == "watch" {
        return Err(ApiError::bad_request(format!(
            "invalid account id {id:?}: use 1 to {MAX_ID_LEN} ASCII letters, digits, '-', '_' or '.' (and not \"watch\")"
        )));
    }
    Ok(())
}

/// The account id of the path, checked.
fn account_id(path: Result<UrlPath<String>, PathRejection>) -> Result<String, ApiError> {
    let UrlPath(id) = path?;
    check_id(&id)?;
    Ok(id)
}

/// `POST /accounts/{id}` query parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecuteParams {
    expected_version: Option<u64>,
}

/// The version an `If-Match` header asks for: `"3"` (an ETag as `GET` answers it)
/// or `3`.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(
            "If-Match must be an account version, as the ETag of GET /accounts/{id}: \"3\"",
        )
    };
    let text = value.to_str().map_err(|_| bad())?.trim();
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    text.parse().map(Some).map_err(|_| bad())
}

/// The seqs a command wrote.
#[derive(Debug, Serialize)]
struct Seqs {
    first: Seq,
    last: Seq,
}

/// What `POST /accounts/{id}` answers.
#[derive(Debug, Serialize)]
struct ExecuteResponse {
    id: String,
    version: u64,
    seqs: Option<Seqs>,
    balance: u64,
    events: Vec<AccountEvent>,
}

/// `POST /accounts/{id}`: runs the command in the body.
async fn execute(
    State(app): State<AppState>,
    path: Result<UrlPath<String>, PathRejection>,
    params: Result<Query<ExecuteParams>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let id = account_id(path)?;
    let Query(params) = params?;
    let expected = match (if_match(&headers)?, params.expected_version) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::bad_request(format!(
                "If-Match asks for version {a} but expected_version for {b}"
            )));
        }
        (header, param) => header.or(param),
    };
    let body = body?;
    let command: AccountCommand = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid command: {e}")))?;

    let (version, seqs, balance, events) = match expected {
        None => match app.accounts.execute(&id, command).await {
            Ok(done) => (done.version, done.seqs, done.state.balance, done.events),
            Err(ExecuteError::Rejected(refusal)) => return Err(ApiError::rejected(&id, &refusal)),
            Err(ExecuteError::Db(e)) => return Err(e.into()),
        },
        Some(expected) => execute_at(&app, &id, expected, command).await?,
    };
    let response = ExecuteResponse {
        id,
        version,
        seqs: seqs.map(|seqs| Seqs {
            first: *seqs.start(),
            last: *seqs.end(),
        }),
        balance,
        events,
    };
    Ok(([(header::ETAG, etag(version))], axum::Json(response)).into_response())
}

/// What a command did: the version, seqs, balance and events after it.
type Outcome = (
    u64,
    Option<std::ops::RangeInclusive<Seq>>,
    u64,
    Vec<AccountEvent>,
);

/// Runs `command` only if the account is at version `expected`.
///
/// The command is decided on the state at `expected`, and its events are appended
/// with [`ExpectedVersion::Exact`], so a write that lands in between makes the
/// append fail with foldkit's [`DbError::Conflict`] (409) and nothing is written.
async fn execute_at(
    app: &AppState,
    id: &str,
    expected: u64,
    command: AccountCommand,
) -> Result<Outcome, ApiError> {
    let stream = Aggregates::<Account>::stream_id(id);
    let loaded = app.accounts.load(id).await?;
    if loaded.version != expected {
        return Err(DbError::Conflict {
            stream,
            expected: ExpectedVersion::Exact(expected),
            actual: loaded.version,
        }
        .into());
    }
    let mut state = loaded.state;
    let events = state
        .handle(command)
        .map_err(|refusal| ApiError::rejected(id, &refusal))?;
    if events.is_empty() {
        return Ok((expected, None, state.balance, events));
    }
    let appended = app
        .db
        .append_to(
            &stream,
            ExpectedVersion::Exact(expected),
            events.iter().cloned(),
        )
        .await?;
    for event in &events {
        state.apply(event);
    }
    Ok((appended.version, Some(appended.seqs), state.balance, events))
}

/// A version as an ETag: `"3"`.
fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// What `GET /accounts/{id}` answers.
#[derive(Debug, Serialize)]
struct AccountResponse {
    id: String,
    owner: Option<String>,
    balance: u64,
    version: u64,
}

/// `GET /accounts/{id}`: the account at its current version.
async fn get_account(
    State(app): State<AppState>,
    path: Result<UrlPath<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = account_id(path)?;
    let loaded = app.accounts.load(&id).await?;
    if loaded.version == 0 {
        return Err(ApiError::not_found(&id));
    }
    let account = AccountResponse {
        id,
        owner: loaded.state.owner,
        balance: loaded.state.balance,
        version: loaded.version,
    };
    Ok(([(header::ETAG, etag(loaded.version))], axum::Json(account)).into_response())
}

/// One event of `GET /accounts/{id}/events`.
#[derive(Debug, Serialize)]
struct EventResponse {
    version: u64,
    seq: Seq,
    timestamp: u64,
    event: AccountEvent,
}

/// `GET /accounts/{id}/events`: the account's history.
async fn account_events(
    State(app): State<AppState>,
    path: Result<UrlPath<String>, PathRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    let id = account_id(path)?;
    let history = app.accounts.events(&id).await?;
    if history.is_empty() {
        return Err(ApiError::not_found(&id));
    }
    let events: Vec<EventResponse> = history
        .into_iter()
        .map(|stored| EventResponse {
            version: stored.stream_version,
            seq: stored.meta.seq,
            timestamp: stored.meta.timestamp,
            event: stored.event,
        })
        .collect();
    let version = events.last().map_or(0, |e| e.version);
    Ok(axum::Json(
        json!({ "id": id, "version": version, "events": events }),
    ))
}

/// The filter of `GET /accounts` and `GET /accounts/watch`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountFilter {
    /// Accounts of this owner (an indexed equality).
    owner: Option<String>,
    /// Accounts with at least this balance.
    min_balance: Option<u64>,
    /// Accounts with at most this balance.
    max_balance: Option<u64>,
    /// At most this many accounts (ordered by id).
    limit: Option<usize>,
    /// Wait until the read model has folded this seq first.
    min_seq: Option<Seq>,
}

/// `GET /accounts`: the accounts that match the filter, ordered by id.
async fn query_accounts(
    State(app): State<AppState>,
    filter: Result<Query<AccountFilter>, QueryRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    let Query(filter) = filter?;
    let bank = app.bank()?;
    app.catch_up(&bank, filter.min_seq).await?;
    let state = bank.read();
    let mut query = state.accounts.query();
    if let Some(owner) = filter.owner {
        query = query.where_owner(owner);
    }
    if let Some(min) = filter.min_balance {
        query = query.where_balance_gte(min);
    }
    if let Some(max) = filter.max_balance {
        query = query.where_balance_lte(max);
    }
    if let Some(limit) = filter.limit {
        query = query.limit(limit);
    }
    let accounts: Vec<AccountRow> = query.collect();
    let applied_seq = bank.applied_seq().unwrap_or(0);
    Ok(axum::Json(
        json!({ "accounts": accounts, "applied_seq": applied_seq }),
    ))
}

/// `GET /accounts/watch`: the filter's result as server-sent events named
/// `accounts`, each a JSON array of rows: the current one, then each change.
async fn watch_accounts(
    State(app): State<AppState>,
    filter: Result<Query<AccountFilter>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let Query(filter) = filter?;
    let bank = app.bank()?;
    app.catch_up(&bank, filter.min_seq).await?;
    let mut watch = bank.watch(|s| &s.accounts);
    if let Some(owner) = filter.owner {
        watch = watch.where_owner(owner);
    }
    if let Some(min) = filter.min_balance {
        watch = watch.where_balance_gte(min);
    }
    if let Some(max) = filter.max_balance {
        watch = watch.where_balance_lte(max);
    }
    if let Some(limit) = filter.limit {
        watch = watch.limit(limit);
    }
    let events = watch
        .stream()
        .take_until(app.stopping())
        .map(|rows: Vec<AccountRow>| {
            let event = SseEvent::default().event("accounts");
            Ok(match event.json_data(&rows) {
                Ok(event) => event,
                // Rows are strings and numbers: this cannot fail, but say so if it does.
                Err(e) => SseEvent::default()
                    .event("error")
                    .data(format!("cannot encode the result: {e}")),
            })
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// Where the service keeps its data and listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The Db directory (`--data-dir`, `FOLDKIT_DATA_DIR`; default `./bank-data`).
    pub data_dir: PathBuf,
    /// The address to listen on (`--addr`, `FOLDKIT_ADDR`; default `127.0.0.1:3000`).
    pub addr: SocketAddr,
}

/// The usage text of the `bank_http` example.
pub const USAGE: &str = "\
usage: bank_http [--data-dir DIR] [--addr HOST:PORT]

  --data-dir DIR     the Db directory (env FOLDKIT_DATA_DIR; default ./bank-data)
  --addr HOST:PORT   the address to listen on (env FOLDKIT_ADDR; default 127.0.0.1:3000)";

impl Config {
    /// Reads the flags in `args` (without the program name), falling back on the
    /// variables `env` gives, then on the defaults. `Ok(None)`: `--help` was asked.
    pub fn parse(
        args: impl IntoIterator<Item = OsString>,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Option<Self>, String> {
        let mut flags: HashMap<&str, OsString> = HashMap::new();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let text = arg
                .to_str()
                .ok_or_else(|| format!("argument {arg:?} is not UTF-8"))?;
            if text == "-h" || text == "--help" {
                return Ok(None);
            }
            let (name, inline) = match text.split_once('=') {
                Some((name, value)) => (name, Some(OsString::from(value))),
                None => (text, None),
            };
            let name = match name {
                "--data-dir" => "data-dir",
                "--addr" => "addr",
                _ => return Err(format!("unknown argument {text:?}")),
            };
            let value = match inline {
                Some(value) => value,
                None => args
                    .next()
                    .ok_or_else(|| format!("--{name} needs a value"))?,
            };
            flags.insert(name, value);
        }
        let data_dir = flags
            .remove("data-dir")
            .or_else(|| env("FOLDKIT_DATA_DIR"))
            .map_or_else(|| PathBuf::from("./bank-data"), PathBuf::from);
        let addr = match flags.remove("addr").or_else(|| env("FOLDKIT_ADDR")) {
            Some(addr) => {
                let text = addr
                    .to_str()
                    .ok_or_else(|| format!("address {addr:?} is not UTF-8"))?;
                text.parse()
                    .map_err(|e| format!("invalid address {text:?}: {e}"))?
            }
            None => SocketAddr::from(([127, 0, 0, 1], 3000)),
        };
        Ok(Some(Self { data_dir, addr }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Option<Config>, String> {
        let env: HashMap<String, OsString> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        Config::parse(args.iter().map(OsString::from), |key| env.get(key).cloned())
    }

    #[test]
    fn flags_override_env_which_overrides_defaults() {
        let defaults = parse(&[], &[]).unwrap().unwrap();
        assert_eq!(defaults.data_dir, PathBuf::from("./bank-data"));
        assert_eq!(defaults.addr.to_string(), "127.0.0.1:3000");

        let env = [("FOLDKIT_DATA_DIR", "/env"), ("FOLDKIT_ADDR", "0.0.0.0:80")];
        let from_env = parse(&[], &env).unwrap().unwrap();
        assert_eq!(from_env.data_dir, PathBuf::from("/env"));
        assert_eq!(from_env.addr.to_string(), "0.0.0.0:80");

        let flags = parse(&["--data-dir", "/flag", "--addr=127.0.0.1:9"], &env)
            .unwrap()
            .unwrap();
        assert_eq!(flags.data_dir, PathBuf::from("/flag"));
        assert_eq!(flags.addr.to_string(), "127.0.0.1:9");
    }

    #[test]
    fn bad_flags_are_errors() {
        assert_eq!(parse(&["--help"], &[]), Ok(None));
        assert!(parse(&["--port", "1"], &[]).is_err());
        assert!(parse(&["--addr"], &[]).is_err());
        assert!(parse(&["--addr", "nowhere"], &[]).is_err());
        assert!(parse(&[], &[("FOLDKIT_ADDR", "x")]).is_err());
    }

    #[test]
    fn ids_and_if_match() {
        assert!(check_id("alice-1_b.c").is_ok());
        for bad in ["", "watch", "a/b", "ä", "x".repeat(MAX_ID_LEN + 1).as_str()] {
            assert_eq!(
                check_id(bad).map_err(|e| e.status),
                Err(StatusCode::BAD_REQUEST)
            );
        }
        let mut headers = HeaderMap::new();
        assert_eq!(if_match(&headers), Ok(None));
        headers.insert(header::IF_MATCH, HeaderValue::from_static("\"3\""));
        assert_eq!(if_match(&headers), Ok(Some(3)));
        headers.insert(header::IF_MATCH, HeaderValue::from_static("7"));
        assert_eq!(if_match(&headers), Ok(Some(7)));
        headers.insert(header::IF_MATCH, HeaderValue::from_static("*"));
        assert!(if_match(&headers).is_err());
    }

    #[test]
    fn every_refusal_has_its_status() {
        let status = |e: AccountError| ApiError::rejected("a", &e).status;
        assert_eq!(status(AccountError::NotOpen), StatusCode::NOT_FOUND);
        assert_eq!(
            status(AccountError::AlreadyOpen),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            status(AccountError::ZeroAmount),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            status(AccountError::Overflow),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let e = ApiError::rejected(
            "a",
            &AccountError::InsufficientFunds {
                balance: 1,
                requested: 2,
            },
        );
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.body["balance"], 1);
        assert_eq!(e.body["requested"], 2);
        assert_eq!(
            ApiError::from(DbError::Closed).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
