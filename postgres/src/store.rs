//! [`PgStore`]: connecting, configuration, and the [`EventStore`] implementation.
//!
//! The store holds a connection pool (deadpool) for appends and reads, one
//! dedicated connection that LISTENs for appends of other instances once it
//! has a tail ([`crate::tail`]), and a small task that announces the appends of this
//! instance that did not carry their own notification ([`crate::notify`]).

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use foldkit::Seq;
use foldkit::store::{AppendBatch, Appended, EventStore, RecordedEvent, StoreError, StoreTail};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;

use crate::append;
use crate::error::{backend, pool as pool_error};
use crate::group::{self, Pending};
use crate::notify::{self, Gate, Ticket};
use crate::read::{self, Failure};
use crate::schema;
use crate::tail::{self, PgTail, Signal};

/// How a [`PgStore`] connects and behaves. Built by [`PgStore::builder`].
#[derive(Debug, Clone)]
pub struct PgStoreBuilder {
    url: String,
    pool_size: usize,
    poll_interval: Duration,
    notify_interval: Duration,
    retry_for: Duration,
    read_only: bool,
}

impl PgStoreBuilder {
    /// Opens the store read-only, for tools that inspect a live database (the
    /// `foldkit` command line tool): no tables are created or migrated (a
    /// database without foldkit's tables is [`StoreError::NotAStore`], one of a
    /// newer schema, or of one older than its tables' last change,
    /// [`StoreError::Format`]; an older schema with the same tables, which
    /// an older build's instances write, is read), every session runs with
    /// `default_transaction_read_only = on`, and the writing methods return
    /// [`StoreError::ReadOnly`].
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// At most `n` pooled connections for appends and reads (default 16).
    pub fn pool_size(mut self, n: usize) -> Self {
        self.pool_size = n.max(1);
        self
    }

    /// How often a tail polls when no notification arrives (default 500 ms):
    /// the fallback when a NOTIFY is lost (e.g. while the listener reconnects).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The shortest time between two notifications to other instances while
    /// this store appends faster than it notifies (default 1 ms). A lone append
    /// is announced at once; when appends commit while a NOTIFY is in flight
    /// (a busy writer), the next NOTIFY waits until this interval after the
    /// last and covers all of them, so a busy writer costs the server one small
    /// transaction (and each listener one wake-up) per interval instead of one
    /// per append. Other instances then see an append up to this much later
    /// (with tokio's timer, at least about 1 ms). Zero: never wait.
    pub fn notify_interval(mut self, interval: Duration) -> Self {
        self.notify_interval = interval;
        self
    }

    /// How long an operation keeps retrying while the server cannot be
    /// reached (default 30 s): reads and tails always, appends when nothing was
    /// sent or when the batch has an idempotency key (so a retry is safe).
    pub fn retry_for(mut self, duration: Duration) -> Self {
        self.retry_for = duration;
        self
    }

    /// Connects, creates or upgrades the tables (checks them when
    /// [`read_only`](Self::read_only)), and starts listening.
    ///
    /// # Cancel safety
    ///
    /// Dropping it before it completes closes the connections it opened; a
    /// migration it started either commits whole or rolls back.
    pub async fn connect(self) -> Result<PgStore, StoreError> {
        PgStore::open(self).await
    }
}

/// A PostgreSQL [`EventStore`]: many service instances share one log.
///
/// See the [crate docs](crate) for the schema and the guarantees. Cloning is
/// cheap and shares the pool.
#[derive(Clone)]
pub struct PgStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) pool: Pool,
    pub(crate) pg_config: tokio_postgres::Config,
    pub(crate) describe: String,
    pub(crate) closed: AtomicBool,
    pub(crate) signal: watch::Sender<Signal>,
    /// Who notifies other instances, and when ([`crate::notify`]).
    pub(crate) gate: Arc<Gate>,
    pub(crate) poll_interval: Duration,
    pub(crate) retry_for: Duration,
    /// Opened with [`PgStoreBuilder::read_only`]: writes are refused.
    pub(crate) read_only: bool,
    /// The group-commit queue ([`crate::group`]).
    queue: mpsc::UnboundedSender<Pending>,
    /// Appends in flight through [`EventStore::append`] (see [`InFlight`]).
    appending: AtomicUsize,
    /// The listener ([`tail::listen`]) was started: by the first tail, since
    /// only tails use what it hears.
    listening: AtomicBool,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("server", &self.inner.describe)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to `url` with the default settings; see [`PgStore::builder`].
    ///
    /// `url` is a libpq-style connection string or URL; several hosts with
    /// `target_session_attrs=read-write` make the store find the primary after
    /// a failover: `postgres://app@db1,db2/shop?target_session_attrs=read-write`.
    ///
    /// # Cancel safety
    ///
    /// As [`PgStoreBuilder::connect`].
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        Self::builder(url).connect().await
    }

    /// A builder for a store at `url`.
    pub fn builder(url: &str) -> PgStoreBuilder {
        PgStoreBuilder {
            url: url.to_owned(),
            pool_size: 16,
            poll_interval: Duration::from_millis(500),
            notify_interval: Duration::from_millis(1),
            retry_for: Duration::from_secs(30),
            read_only: false,
        }
    }

    async fn open(options: PgStoreBuilder) -> Result<PgStore, StoreError> {
        let mut pg_config: tokio_postgres::Config = options.url.parse().map_err(|e| {
            StoreError::backend("parse the PostgreSQL connection string", Box::new(e))
        })?;
        if pg_config.get_application_name().is_none() {
            pg_config.application_name("foldkit-postgres");
        }
        if pg_config.get_connect_timeout().is_none() {
            pg_config.connect_timeout(Duration::from_secs(5));
        }
        if options.read_only {
            // The server itself refuses writes, whatever a bug here would try.
            let read_only = "-c default_transaction_read_only=on";
            let all = match pg_config.get_options() {
                Some(given) if !given.is_empty() => format!("{given} {read_only}"),
                _ => read_only.to_owned(),
            };
            pg_config.options(&all);
        }
        let describe = describe(&pg_config);

        let (mut client, connection) = pg_config
            .connect(NoTls)
            .await
            .map_err(|e| backend(format!("connect to {describe}"), e))?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let migrated = if options.read_only {
            schema::check(&client, &describe).await
        } else {
            schema::migrate(&mut client).await
        };
        drop(client);
        let _ = driver.await;
        let found = migrated?;
        if found < schema::SCHEMA_VERSION && !options.read_only {
            tracing::info!(
                server = %describe,
                from = found,
                to = schema::SCHEMA_VERSION,
                "foldkit-postgres: schema migrated"
            );
        }

        let manager = Manager::from_config(
            pg_config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .build()
            .map_err(|e| StoreError::backend("build the connection pool", Box::new(e)))?;
        let (signal, _) = watch::channel(Signal::default());
        let (queue, queued) = mpsc::unbounded_channel();
        let queued: group::Queue = Arc::new(tokio::sync::Mutex::new(queued));
        let inner = Arc::new(Inner {
            pool,
            pg_config,
            describe,
            closed: AtomicBool::new(false),
            signal,
            gate: Gate::new(options.notify_interval),
            poll_interval: options.poll_interval,
            retry_for: options.retry_for,
            read_only: options.read_only,
            queue,
            appending: AtomicUsize::new(0),
            listening: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
            workers: Mutex::new(Vec::new()),
        });
        let announcer = tokio::spawn(notify::announce(Arc::downgrade(&inner), inner.gate.clone()));
        inner.tasks.lock().push(announcer);
        // Workers are not stopped by `close` (a group in flight finishes and is
        // answered); they end when the store is dropped.
        for _ in 0..group::WORKERS {
            let worker = tokio::spawn(group::worker(Arc::downgrade(&inner), queued.clone()));
            inner.workers.lock().push(worker);
        }
        Ok(PgStore { inner })
    }

    /// Test hook: appends `batch` inside an explicit transaction that stays open
    /// for `hold` after the events were written (a slow writer holding a
    /// position that later positions commit before).
    #[cfg(feature = "testing")]
    ///
    /// # Cancel safety
    ///
    /// As `EventStore::append`: the batch is appended whole or not at all.
    pub async fn append_holding(
        &self,
        batch: AppendBatch,
        hold: Duration,
    ) -> Result<Appended, StoreError> {
        self.inner.check_writable("append")?;
        let prepared = append::prepare(&batch)?;
        append::append_holding(&self.inner, &prepared, hold).await
    }

    /// The server(s) this store talks to, without credentials.
    pub fn server(&self) -> &str {
        &self.inner.describe
    }
}

impl Inner {
    pub(crate) fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    /// Open, and not read-only: `operation` may go ahead.
    pub(crate) fn check_writable(&self, operation: &'static str) -> Result<(), StoreError> {
        self.check_open()?;
        if self.read_only {
            return Err(StoreError::ReadOnly {
                what: format!("PostgreSQL store at {}", self.describe),
                operation,
            });
        }
        Ok(())
    }

    /// Starts the listener unless it runs (or the store is closed); needs a
    /// tokio runtime, so without one it leaves it to a later call (a tail
    /// calls this when created and on every read).
    pub(crate) fn ensure_listener(self: &Arc<Self>) {
        if self.listening.load(Ordering::Acquire) || self.closed.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut tasks = self.tasks.lock();
        // Under the task lock: `close` takes it to abort the tasks.
        if self.closed.load(Ordering::Acquire) || self.listening.swap(true, Ordering::AcqRel) {
            return;
        }
        tasks.push(runtime.spawn(tail::listen(Arc::downgrade(self))));
    }

    /// An append committed: wakes local tails.
    pub(crate) fn committed(&self, appended: &Appended) {
        let last = *appended.positions.end();
        self.signal.send_modify(|s| {
            s.generation += 1;
            s.max_committed = s.max_committed.max(last);
        });
    }

    /// After a commit (of one batch or a group) that appended events (`new`):
    /// its notification was carried (`ticket`, then sent with the commit) or is
    /// owed by the announcer. Call after [`committed`](Self::committed).
    pub(crate) fn settle(&self, new: bool, ticket: Option<Ticket>) {
        match (new, ticket) {
            (true, Some(ticket)) => ticket.sent(),
            (true, None) => self.gate.owe(),
            (false, ticket) => drop(ticket),
        }
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, Failure> {
        self.pool.get().await.map_err(|e| {
            let transient = !matches!(e, deadpool_postgres::PoolError::Closed);
            Failure {
                error: pool_error(format!("get a connection to {}", self.describe), e),
                transient,
            }
        })
    }
}

/// One append in flight through [`EventStore::append`], counted while it
/// lives. An append that finds none other in flight (`alone`) has nothing to
/// share a group commit with, so it runs in its caller's task; the others go
/// through the group-commit queue.
struct InFlight<'a> {
    count: &'a AtomicUsize,
    alone: bool,
}

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        let before = count.fetch_add(1, Ordering::AcqRel);
        Self {
            count,
            alone: before == 0,
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

impl EventStore for PgStore {
    fn append(&self, batch: AppendBatch) -> BoxFuture<'_, Result<Appended, StoreError>> {
        Box::pin(async move {
            self.inner.check_writable("append")?;
            let prepared = append::prepare(&batch)?;
            let in_flight = InFlight::enter(&self.inner.appending);
            if in_flight.alone {
                // Nothing to share a transaction with: append from this task,
                // without the two hand-offs to and from a worker.
                return append::append(&self.inner, &prepared).await;
            }
            let (reply, answer) = oneshot::channel();
            self.inner
                .queue
                .send(Pending { prepared, reply })
                .map_err(|_| StoreError::Closed)?;
            answer.await.map_err(|_| StoreError::Closed)?
        })
    }

    fn read(&self, from: Seq, max: usize) -> BoxFuture<'_, Result<Vec<RecordedEvent>, StoreError>> {
        Box::pin(async move {
            self.inner.check_open()?;
            read::with_retry(&self.inner, || read::events(&self.inner, from, max)).await
        })
    }

    fn tail(&self, from: Seq) -> Box<dyn StoreTail> {
        Box::new(PgTail::new(self.inner.clone(), from))
    }

    fn read_stream(
        &self,
        stream: &str,
        versions: RangeInclusive<u64>,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>, StoreError>> {
        let stream = stream.to_owned();
        Box::pin(async move {
            self.inner.check_open()?;
            read::with_retry(&self.inner, || {
                read::stream(&self.inner, &stream, versions.clone())
            })
            .await
        })
    }

    fn stream_version(&self, stream: &str) -> BoxFuture<'_, Result<u64, StoreError>> {
        let stream = stream.to_owned();
        Box::pin(async move {
            self.inner.check_open()?;
            read::with_retry(&self.inner, || read::stream_version(&self.inner, &stream)).await
        })
    }

    fn last_position(&self) -> BoxFuture<'_, Result<Option<Seq>, StoreError>> {
        Box::pin(async move {
            self.inner.check_open()?;
            read::with_retry(&self.inner, || read::last_position(&self.inner)).await
        })
    }

    fn sync(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.inner.check_open()?;
            if self.inner.read_only {
                return Ok(()); // it wrote nothing
            }
            read::with_retry(&self.inner, || read::flush_wal(&self.inner)).await
        })
    }

    fn close(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if self.inner.closed.swap(true, Ordering::AcqRel) {
                return Ok(());
            }
            // Every acknowledged append is already committed (and so durable
            // under the server's synchronous_commit); flush anyway, so that a
            // server running with synchronous_commit=off keeps the promise too.
            let flushed = if self.inner.read_only {
                Ok(())
            } else {
                read::with_retry(&self.inner, || read::flush_wal(&self.inner)).await
            };
            let tasks: Vec<_> = std::mem::take(&mut *self.inner.tasks.lock());
            for task in tasks {
                task.abort();
            }
            self.inner.signal.send_modify(|s| {
                s.generation += 1;
                s.closed = true;
            });
            flushed
        })
    }

    fn write_snapshot(
        &self,
        state: &str,
        position: Seq,
        bytes: Vec<u8>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let state = state.to_owned();
        Box::pin(async move {
            self.inner.check_writable("write a snapshot")?;
            read::with_retry(&self.inner, || {
                read::write_snapshot(&self.inner, &state, position, &bytes)
            })
            .await
        })
    }

    fn list_snapshots(&self, state: &str) -> BoxFuture<'_, Result<Vec<Seq>, StoreError>> {
        let state = state.to_owned();
        Box::pin(async move {
            self.inner.check_open()?;
            read::with_retry(&self.inner, || read::list_snapshots(&self.inner, &state)).await
        })
    }

    fn read_snapshot(
        &self,
        state: &str,
        position: Seq,
    ) -> BoxFuture<'_, Result<Option<Vec<u8>>, StoreError>> {
        let state = state.to_owned();
        Box::pin(async move {
            self.inner.check_open()?;
            read::with_retry(&self.inner, || {
                read::read_snapshot(&self.inner, &state, position)
            })
            .await
        })
    }

    fn remove_snapshot(&self, state: &str, position: Seq) -> BoxFuture<'_, Result<(), StoreError>> {
        let state = state.to_owned();
        Box::pin(async move {
            self.inner.check_writable("remove a snapshot")?;
            read::with_retry(&self.inner, || {
                read::remove_snapshot(&self.inner, &state, position)
            })
            .await
        })
    }

    fn write_checkpoint(&self, name: &str, position: Seq) -> BoxFuture<'_, Result<(), StoreError>> {
        let name = name.to_owned();
        Box::pin(async move {
            self.inner.check_writable("write a checkpoint")?;
            read::with_retry(&self.inner, || {
                read::write_checkpoint(&self.inner, &name, position)
            })
            .await
        })
    }

    fn read_checkpoint(&self, name: &str) -> BoxFuture<'_, Result<Option<Seq>, StoreError>> {
        let name = name.to_owned();
        Box::pin(async move {
            self.inner.check_open()?;
            read::with_retry(&self.inner, || read::read_checkpoint(&self.inner, &name)).await
        })
    }

    fn snapshot_names(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            self.inner.check_open()?;
            read::with_retry(&self.inner, || read::snapshot_names(&self.inner)).await
        })
    }

    fn checkpoint_names(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            self.inner.check_open()?;
            read::with_retry(&self.inner, || read::checkpoint_names(&self.inner)).await
        })
    }

    fn describe(&self) -> String {
        format!("PostgreSQL store at {}", self.inner.describe)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in self
            .tasks
            .get_mut()
            .drain(..)
            .chain(self.workers.get_mut().drain(..))
        {
            task.abort();
        }
    }
}

/// `postgres://host:port,host:port/dbname`, without user or password.
fn describe(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    format!(
        "postgres://{}/{}",
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}
