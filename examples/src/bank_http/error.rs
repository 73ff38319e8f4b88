//! Error answers: a status and a JSON body, and how each foldkit error maps to one.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use foldkit::DbError;
use foldkit::prelude::*;
use serde_json::{Value, json};

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
