//! Shared helpers of the PostgreSQL store tests.
#![allow(dead_code)]

pub mod bank;

use std::sync::Arc;

use foldkit::store::NewEvent;
use foldkit_postgres::testing::{PgServer, ServerOptions, server_or_skip};

/// The database the tests use on their own server.
pub const DB: &str = "postgres";

/// A throwaway server (fsync off unless `durable`) and the URL of its
/// database [`DB`], or `None` when PostgreSQL tests are skipped.
pub fn database(durable: bool) -> Option<(PgServer, String)> {
    let server = server_or_skip(ServerOptions::default().fsync(durable))?;
    let url = server.url(DB);
    Some((server, url))
}

/// A multi-threaded runtime for one test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// An event named `name` whose payload is `payload`.
pub fn event(name: &str, payload: &[u8]) -> NewEvent {
    NewEvent {
        name: Arc::from(name),
        schema_version: 1,
        payload: payload.to_vec(),
    }
}
