//! The handlers behind each route, and the checks on what a request carries.

use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use foldkit::prelude::*;
use foldkit::{ExecuteError, Seq};
use futures::{Stream, StreamExt};
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::bank::{AccountCommand, AccountEvent, AccountRow, AccountRowQuery};
/// The longest account id the service accepts.
pub const MAX_ID_LEN: usize = 64;

/// Checks an account id: 1 to [`MAX_ID_LEN`] ASCII letters, digits, `-`, `_` or `.`,
/// and not `watch` (that path is the watch stream).
pub(super) fn check_id(id: &str) -> Result<(), ApiError> {
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
pub(super) struct ExecuteParams {
    expected_version: Option<u64>,
}

/// The version an `If-Match` header asks for: `"3"` (an ETag as `GET` answers it)
/// or `3`.
pub(super) fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
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
pub(super) async fn execute(
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

    let expected = expected.map_or(ExpectedVersion::Any, ExpectedVersion::Exact);
    let done = match app.accounts.execute_expecting(&id, expected, command).await {
        Ok(done) => done,
        Err(ExecuteError::Rejected(refusal)) => return Err(ApiError::rejected(&id, &refusal)),
        Err(ExecuteError::Db(e)) => return Err(e.into()),
        Err(other) => return Err(ApiError::bad_request(other.to_string())),
    };
    let response = ExecuteResponse {
        id,
        version: done.version,
        seqs: done.seqs.map(|seqs| Seqs {
            first: *seqs.start(),
            last: *seqs.end(),
        }),
        balance: done.state.balance,
        events: done.events,
    };
    Ok(([(header::ETAG, etag(done.version))], axum::Json(response)).into_response())
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
pub(super) async fn get_account(
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
pub(super) async fn account_events(
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
pub(super) struct AccountFilter {
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

impl AccountFilter {
    /// Adds the filter's clauses to a query or a watch: the generated builder is the
    /// same type over either source.
    fn narrow<S>(&self, mut rows: AccountRowQuery<S>) -> AccountRowQuery<S> {
        if let Some(owner) = &self.owner {
            rows = rows.where_owner(owner.clone());
        }
        if let Some(min) = self.min_balance {
            rows = rows.where_balance_gte(min);
        }
        if let Some(max) = self.max_balance {
            rows = rows.where_balance_lte(max);
        }
        if let Some(limit) = self.limit {
            rows = rows.limit(limit);
        }
        rows
    }
}

/// `GET /accounts`: the accounts that match the filter, ordered by id.
pub(super) async fn query_accounts(
    State(app): State<AppState>,
    filter: Result<Query<AccountFilter>, QueryRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    let Query(filter) = filter?;
    let bank = app.bank()?;
    app.catch_up(&bank, filter.min_seq).await?;
    let state = bank.read();
    let accounts: Vec<AccountRow> = filter.narrow(state.accounts.query()).collect();
    let applied_seq = bank.applied_seq().unwrap_or(0);
    Ok(axum::Json(
        json!({ "accounts": accounts, "applied_seq": applied_seq }),
    ))
}

/// `GET /accounts/watch`: the filter's result as server-sent events named
/// `accounts`, each a JSON array of rows: the current one, then each change.
pub(super) async fn watch_accounts(
    State(app): State<AppState>,
    filter: Result<Query<AccountFilter>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let Query(filter) = filter?;
    let bank = app.bank()?;
    app.catch_up(&bank, filter.min_seq).await?;
    let events = filter
        .narrow(bank.watch(|s| &s.accounts))
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
