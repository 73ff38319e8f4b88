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

use super::if_match::IfMatch;
use super::money::{Amount, Decimal};
use super::wire::{
    AccountJson, CommandJson, EventJson, EventMeta, ExecutedJson, HistoryItem, Seqs,
};
use super::{ApiError, AppState};
use crate::bank::{AccountCommand, AccountRow, AccountRowQuery};
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

/// Reads a command body, with a message that says what is wrong with it.
pub(super) fn parse_command(body: &[u8]) -> Result<AccountCommand, ApiError> {
    match serde_json::from_slice::<CommandJson>(body) {
        Ok(command) => Ok(command.into()),
        Err(e) if e.is_syntax() && contains_non_finite(body) => {
            Err(ApiError::bad_request(format!(
                "invalid command: NaN and Infinity are not JSON numbers; an amount is a decimal \
                 number with at most two places, such as 1000.0 ({e})"
            )))
        }
        Err(e) => Err(ApiError::bad_request(format!("invalid command: {e}"))),
    }
}

fn contains_non_finite(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    text.contains("NaN") || text.contains("Infinity")
}

/// How many times a list `If-Match` is re-checked when the account moves between
/// reading its version and running the command under its lock.
const IF_MATCH_ATTEMPTS: usize = 8;

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
    let if_match = IfMatch::from_headers(&headers).map_err(ApiError::bad_request)?;
    if if_match.is_some() && params.expected_version.is_some() {
        return Err(ApiError::bad_request(
            "give either If-Match or expected_version, not both",
        ));
    }
    let command = parse_command(&body?)?;
    let done = match if_match {
        None => {
            let expected = params
                .expected_version
                .map_or(ExpectedVersion::Any, ExpectedVersion::Exact);
            app.accounts.execute_expecting(&id, expected, command).await
        }
        Some(condition) => {
            // Strong comparison against the version, checked again under the
            // account's lock (`execute_expecting`): a write in between is a conflict.
            let mut attempts = 0;
            loop {
                let version = app.version_of(&id).await?;
                if !condition.matches(version) {
                    return Err(ApiError::precondition_failed(&id, version));
                }
                let expected = ExpectedVersion::Exact(version);
                match app
                    .accounts
                    .execute_expecting(&id, expected, command.clone())
                    .await
                {
                    Err(e) if e.is_conflict() && attempts + 1 < IF_MATCH_ATTEMPTS => attempts += 1,
                    Err(e) if e.is_conflict() => {
                        return Err(ApiError::precondition_failed(
                            &id,
                            app.version_of(&id).await?,
                        ));
                    }
                    other => break other,
                }
            }
        }
    };
    let done = match done {
        Ok(done) => done,
        Err(ExecuteError::Rejected(refusal)) => return Err(ApiError::rejected(&id, &refusal)),
        Err(ExecuteError::Db(e)) => return Err(e.into()),
        Err(other) => return Err(ApiError::bad_request(other.to_string())),
    };
    let response = ExecutedJson {
        account: AccountJson {
            id,
            owner: done.state.owner.unwrap_or_default(),
            balance: Decimal(done.state.balance),
            version: done.version,
        },
        seqs: done.seqs.map(|seqs| Seqs {
            first: *seqs.start(),
            last: *seqs.end(),
        }),
        events: done.events.into_iter().map(EventJson::from).collect(),
    };
    Ok(([(header::ETAG, etag(done.version))], axum::Json(response)).into_response())
}

/// A version as a strong ETag: the version in quotes.
pub(super) fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// `GET /accounts/{id}`: the account at its current version (also its `ETag`).
pub(super) async fn get_account(
    State(app): State<AppState>,
    path: Result<UrlPath<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = account_id(path)?;
    let loaded = app.accounts.load(&id).await?;
    if loaded.version == 0 {
        return Err(ApiError::not_found(&id));
    }
    let account = AccountJson {
        id,
        owner: loaded.state.owner.unwrap_or_default(),
        balance: Decimal(loaded.state.balance),
        version: loaded.version,
    };
    Ok(([(header::ETAG, etag(loaded.version))], axum::Json(account)).into_response())
}

/// `GET /accounts/{id}/events`: the account's history, a JSON array of events
/// tagged by `"type"`, each with foldkit's `meta` (version, seq, timestamp).
pub(super) async fn account_events(
    State(app): State<AppState>,
    path: Result<UrlPath<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = account_id(path)?;
    let history = app.accounts.events(&id).await?;
    let Some(last) = history.last() else {
        return Err(ApiError::not_found(&id));
    };
    let version = last.stream_version;
    let events: Vec<HistoryItem> = history
        .into_iter()
        .map(|stored| HistoryItem {
            meta: EventMeta {
                version: stored.stream_version,
                seq: stored.meta.seq,
                timestamp: stored.meta.timestamp,
            },
            event: stored.event.into(),
        })
        .collect();
    Ok(([(header::ETAG, etag(version))], axum::Json(events)).into_response())
}

/// The filter of `GET /accounts` and `GET /accounts/watch`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AccountFilter {
    /// Accounts of this owner (an indexed equality).
    owner: Option<String>,
    /// Accounts with at least this balance (a decimal, like amounts).
    min_balance: Option<Amount>,
    /// Accounts with at most this balance.
    max_balance: Option<Amount>,
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
        if let Some(Amount(min)) = self.min_balance {
            rows = rows.where_balance_gte(min);
        }
        if let Some(Amount(max)) = self.max_balance {
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
    let accounts: Vec<AccountJson> = filter
        .narrow(state.accounts.query())
        .collect()
        .into_iter()
        .map(AccountJson::from)
        .collect();
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
            let rows: Vec<AccountJson> = rows.into_iter().map(AccountJson::from).collect();
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
