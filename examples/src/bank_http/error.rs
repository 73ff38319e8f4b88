//! Error answers: a status and a JSON body, and how each foldkit error maps to one.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use foldkit::DbError;
use foldkit::prelude::*;
use serde_json::{Value, json};

use super::money::Decimal;
use crate::bank::AccountError;

/// An error answer: a status and a JSON body `{"error": .., "kind": .., ..}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The JSON body (an object with at least `error` and `kind`).
    pub body: Value,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({ "error": message.into(), "kind": kind }),
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(super) fn not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("account `{id}` does not exist"),
        )
        .with("id", id)
    }

    /// `If-Match` does not hold: the account is at `actual` (0: it does not exist).
    pub(super) fn precondition_failed(id: &str, actual: u64) -> Self {
        let message = if actual == 0 {
            format!("If-Match does not hold: account `{id}` does not exist")
        } else {
            format!(
                "If-Match does not hold: account `{id}` is at version {actual} (its ETag), \
                 which no strong entity tag of the header names"
            )
        };
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            message,
        )
        .with("id", id)
        .with("actual", actual)
    }

    fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// Adds a detail field to the body.
    pub(super) fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        if let Value::Object(map) = &mut self.body {
            map.insert(key.to_owned(), value.into());
        }
        self
    }

    /// A refusal by the domain: 404 for an account that does not exist, 422 otherwise.
    pub(super) fn rejected(id: &str, error: &AccountError) -> Self {
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
                .with("balance", decimal(*balance))
                .with("requested", decimal(*requested)),
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
            DbError::EmptyStreamId => Self::bad_request(message),
            DbError::Closed => Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message),
            // The Db was opened without the bank's logs or states.
            DbError::UnknownEvent { .. }
            | DbError::UnknownState { .. }
            | DbError::InvalidEventName { .. }
            | DbError::EventNameConflict { .. } => Self::internal(message),
            // The read model stopped folding, or the log cannot be read or written.
            DbError::Fold(_)
            | DbError::Read { .. }
            | DbError::Store(_)
            | DbError::Codec(_)
            | DbError::EmptyBatch { .. } => Self::internal(message),
            // Opening, snapshots and restores: not reachable from a request, but mapped.
            DbError::Dir { .. }
            | DbError::AlreadyOpen { .. }
            | DbError::Snapshot(_)
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
        let actual = (self.status == StatusCode::PRECONDITION_FAILED)
            .then(|| self.body["actual"].as_u64())
            .flatten()
            .filter(|&version| version > 0);
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if let Some(version) = actual {
            // The current ETag, so the client can retry from it.
            response
                .headers_mut()
                .insert(header::ETAG, super::routes::etag(version));
        }
        response
    }
}

/// Cents as the decimal JSON number the API writes.
fn decimal(cents: u64) -> Value {
    json!(Decimal(cents))
}

/// The answer for a path no route serves: JSON, like every other error.
pub(super) async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {method} {}", uri.path()),
    )
}

/// The answer for a known path with a method it does not serve.
pub(super) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not answer {method}", uri.path()),
    )
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
