//! The bank over HTTP: an [axum] service that runs [`AccountCommand`](crate::bank::AccountCommand)s on the
//! [`Account`] aggregate and serves the [`Bank`] read model.
//!
//! It speaks the API of the RustAPI event-sourcing bank example, so a client written
//! for that bank works unchanged; foldkit's extras are extra fields and headers.
//!
//! | method and path | what it does |
//! |---|---|
//! | `POST /accounts/{id}` | runs the command in the body: `{"type":"OpenAccount","owner":"Alice","initial_balance":1000.0}`, `{"type":"Deposit","amount":500.0}`, `{"type":"Withdraw","amount":200.0}`; answers the account as `GET` does, plus `seqs` (what it wrote) and `events` |
//! | `GET /accounts/{id}` | `{"id":"acc-001","owner":"Alice","balance":1300.0,"version":3}`, with the version as the `ETag` |
//! | `GET /accounts/{id}/events` | the history, a JSON array tagged by `"type"`: `[{"type":"AccountOpened","owner":"Alice","initial_balance":1000.0},{"type":"MoneyDeposited","amount":500.0},...]`, each event with an extra `meta` (`version`, `seq`, `timestamp`) |
//! | `GET /accounts?owner=..&min_balance=..&max_balance=..&limit=..&min_seq=..` | a typed query on the read model: `{"accounts":[..],"applied_seq":N}` |
//! | `GET /accounts/watch?owner=..&min_balance=..&max_balance=..` | a server-sent-events stream of that query: the current result at once, then each change |
//! | `GET /metrics` | foldkit's metrics (see `foldkit::observability`) in the Prometheus text format, when the service was built [`with_metrics`](AppState::with_metrics); 404 otherwise |
//!
//! Every request is traced (`tower-http`'s trace layer: a span per request,
//! its status and latency at `debug`); the binary logs through
//! `tracing-subscriber`, filtered by `RUST_LOG` (default `info`).
//!
//! Money is exact: an amount is a decimal with at most two places, kept as integer
//! cents (see [`money`]); a negative amount, more places, NaN or more than
//! 9999999999999.99 is a 400 naming what is wrong. Balances are written as decimals.
//!
//! A command's body is read as JSON whatever its `Content-Type` (so a bare
//! `curl -d '{..}'` works); axum's default limit of 2 MB applies.
//!
//! Read-your-writes: `POST` answers the seqs it wrote; `GET /accounts` (and the
//! watch) take `min_seq=N` and wait until the read model has folded seq `N` before
//! they query it ([`Handle::wait_for_seq`]).
//!
//! Optimistic concurrency, two ways:
//! - `If-Match` as RFC 9110 defines it (see [`if_match`]): `*` (the account must
//!   exist) or a list of entity tags, compared strongly with the account's ETag (a weak
//!   `W/` tag never matches); when it does not hold: 412 and nothing is written;
//! - `?expected_version=N`: runs only if the account is at version `N` (0: it must
//!   not exist yet), 409 otherwise.
//!
//! Without either, commands on one account simply run one after the other.
//!
//! Errors are JSON, `{"error": "<message>", "kind": "<kind>", ...details}`, on every
//! route, unknown ones included:
//!
//! | status | kind | when |
//! |---|---|---|
//! | 400 | `bad_request` | malformed JSON, an unknown command type, a missing field, a bad amount, bad query parameters or headers, an invalid account id |
//! | 404 | `not_found` | the account does not exist (reading it, or a command other than `OpenAccount`), or no such route |
//! | 405 | `method_not_allowed` | a known path with another method |
//! | 409 | `conflict` | `expected_version` is not the account's version (`expected`, `actual`) |
//! | 412 | `precondition_failed` | `If-Match` does not hold (`actual`: the account's version, also in the `ETag`) |
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

mod config;
mod error;
pub mod if_match;
pub mod money;
mod routes;
#[cfg(test)]
mod tests;
pub mod wire;

pub use config::{Config, USAGE};
pub use error::ApiError;
pub use routes::MAX_ID_LEN;

use error::{method_not_allowed, no_route};
use routes::{account_events, execute, get_account, query_accounts, watch_accounts};
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::State as AxumState;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use foldkit::prelude::*;
use foldkit::{Aggregates, DbError, Seq};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower_http::trace::TraceLayer;

use crate::bank::{Account, Bank};

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

/// Opens the bank's Db over PostgreSQL at `url` (see `foldkit_postgres::PgStore`):
/// every instance given the same database folds the same log.
pub async fn open_postgres(url: &str) -> Result<Db, DbError> {
    let store = foldkit_postgres::PgStore::connect(url).await?;
    Db::builder_with(store)
        .aggregate::<Account>()
        .state::<Bank>()
        .open()
        .await
}

/// Opens the Db `config` selects: PostgreSQL when `config.postgres` is set,
/// else the directory `config.data_dir`.
pub async fn open_configured(config: &Config) -> Result<Db, DbError> {
    match &config.postgres {
        Some(url) => open_postgres(url).await,
        None => open_db(&config.data_dir).await,
    }
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
    metrics: Option<PrometheusHandle>,
}

impl AppState {
    /// The state of a service over `db`.
    pub fn new(db: Db) -> Self {
        let accounts = db.aggregate::<Account>();
        Self {
            db,
            accounts,
            shutdown: Arc::new(tokio::sync::watch::Sender::new(false)),
            metrics: None,
        }
    }

    /// Serves `GET /metrics` from `handle` (the Prometheus recorder the
    /// process installed, e.g. [`install_metrics`]).
    pub fn with_metrics(mut self, handle: PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
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
            .route("/metrics", get(metrics))
            .fallback(no_route)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(TraceLayer::new_for_http())
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

    /// The account's version (0: it does not exist).
    async fn version_of(&self, id: &str) -> Result<u64, ApiError> {
        let stream = Aggregates::<Account>::stream_id(id);
        Ok(self.db.stream_version(&stream).await?)
    }

    /// Waits until the read model has folded `min_seq`, if one was given.
    async fn catch_up(&self, bank: &Handle<Bank>, min_seq: Option<Seq>) -> Result<(), ApiError> {
        let Some(seq) = min_seq else { return Ok(()) };
        let last = self.db.last_seq().await?.unwrap_or(0);
        if seq > last {
            return Err(ApiError::bad_request(format!(
                "min_seq {seq} is beyond the log, which ends at seq {last}"
            ))
            .with("last_seq", last));
        }
        bank.wait_for_seq(seq).await.map_err(ApiError::from)
    }
}

/// Installs the process-wide Prometheus recorder (once per process) and
/// returns its handle, for [`AppState::with_metrics`].
pub fn install_metrics() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    PrometheusBuilder::new().install_recorder()
}

/// `GET /metrics`: the recorder's metrics as Prometheus text.
async fn metrics(AxumState(app): AxumState<AppState>) -> Response {
    match &app.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "this service exports no metrics",
        )
        .into_response(),
    }
}
