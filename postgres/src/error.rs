//! Mapping PostgreSQL and pool errors onto [`StoreError`].
//!
//! The seam's error type is the runtime's; this module only decides what to call
//! each failure, and which failures are worth a retry (a lost connection, a pool
//! that could not connect) versus which are final.

use foldkit::store::StoreError;

/// A backend error: `action` says what was being done.
pub(crate) fn backend(action: impl Into<String>, e: tokio_postgres::Error) -> StoreError {
    StoreError::backend(action, e)
}

/// A pool error (no connection could be had).
pub(crate) fn pool(action: impl Into<String>, e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::backend(action, e)
}

/// The SQLSTATE of a server error, if it is one.
pub(crate) fn sqlstate(e: &tokio_postgres::Error) -> Option<&str> {
    e.code().map(|c| c.code())
}

/// Whether a statement failed because its connection went away (or the server
/// is shutting down or in recovery): the statement may or may not have run.
pub(crate) fn is_connection_loss(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.as_db_error() {
        // A server error: only these classes mean "this node is going away".
        Some(db) => matches!(
            db.code().code(),
            // admin_shutdown, crash_shutdown, cannot_connect_now, read_only_sql_transaction
            "57P01" | "57P02" | "57P03" | "25006"
        ),
        // No server error: an I/O or protocol failure of the connection.
        None => e.code().is_none() && std::error::Error::source(e).is_some(),
    }
}

/// A stored value that cannot be what the schema allows.
pub(crate) fn corrupt(what: impl Into<String>, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        what: what.into(),
        reason: reason.into(),
    }
}
