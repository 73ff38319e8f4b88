//! A PostgreSQL [`EventStore`](foldkit::store::EventStore) for foldkit: many
//! service instances share one log, and the log survives a node going away.
//!
//! ```no_run
//! # async fn demo() -> Result<(), foldkit::store::StoreError> {
//! let store = foldkit_postgres::PgStore::connect(
//!     "postgres://app@db1,db2/shop?target_session_attrs=read-write",
//! )
//! .await?;
//! # let _ = store; Ok(()) }
//! ```
//!
//! Built on `tokio-postgres` with a `deadpool-postgres` pool, without TLS.
//! [`PgStore::connect`] creates or upgrades the tables (versioned migrations in
//! one transaction under `pg_advisory_xact_lock`, so instances starting at once
//! are safe). The tables live in the connection's `search_path` (set
//! `options=-csearch_path%3Dmyschema` in the URL to use another schema).
//!
//! # The schema (readable from SQL)
//!
//! ```sql
//! foldkit_events (
//!     position        bigint  identity, primary key  -- the global order (Seq)
//!     tx_id           xid8    the writing transaction (pg_current_xact_id())
//!     stream_id       text    null for events appended to no stream
//!     stream_version  bigint  1, 2, .. within the stream; UNIQUE (stream_id, stream_version)
//!     event_name      text    the event type's stable NAME
//!     schema_version  integer the version the payload was encoded with
//!     timestamp_ms    bigint  ms since the UNIX epoch, non-decreasing in position order
//!     correlation_id  text    \
//!     causation       bigint   | the batch's EventContext (null when absent)
//!     actor           text     |
//!     metadata        jsonb   /  an object of strings
//!     payload         bytea   the encoded event (postcard)
//! )
//! foldkit_idempotency (key text primary key, first_position, last_position,
//!                      stream_version, created_at)   -- one row per keyed batch
//! foldkit_snapshots   (state text, position bigint, bytes bytea, written_at;
//!                      primary key (state, position))
//! foldkit_checkpoints (name text primary key, position bigint, updated_at)
//! foldkit_schema_migrations (version integer primary key, applied_at)
//! foldkit_clock       -- a sequence: the last timestamp handed out
//! foldkit_append_one(..)  -- the append function (one round trip per batch;
//!                            schema version 3)
//! foldkit_append_event(..) -- the same for one event to no stream, without a
//!                            key (schema version 4)
//! foldkit_append_batches(..) -- several batches in one transaction (group commit)
//! foldkit_append(..), foldkit_append_group(..) -- version 1's, kept for older builds
//! ```
//!
//! Tools that only look (the `foldkit` command line tool's `--postgres URL`)
//! open the store with [`PgStoreBuilder::read_only`]: no table is created or
//! migrated, a database without these tables is refused as not foldkit's, and
//! every session is `default_transaction_read_only`.
//!
//! For example, the history of one account:
//! `SELECT position, stream_version, event_name, timestamp_ms FROM foldkit_events
//! WHERE stream_id = 'account/42' ORDER BY stream_version`.
//!
//! Appends go through `foldkit_append_one`, `foldkit_append_event` or
//! `foldkit_append_batches` (or version 1's `foldkit_append`) only; a row inserted by hand breaks the
//! guarantees below.
//!
//! `foldkit_append_one(stream, expected, key, names, schema_versions,
//! payloads, correlation_id, causation, actor, metadata, notify)` returns a
//! `bigint[]`: `{status, first_position, last_position, stream_version}`,
//! status 0 appended, 1 duplicate (the key's first append), 2 conflict
//! (nothing written; the version is the stream's actual one). `expected` is
//! -1 for any version, otherwise the exact version (0: no stream yet).
//! `foldkit_append_event(name, schema_version, payload, correlation_id,
//! causation, actor, metadata, notify)` returns the event's position.
//!
//! # Why the order is gap-free
//!
//! An identity column hands out positions when rows are inserted, but
//! transactions commit in any order: a reader that tails by position could read
//! 11 while 10 is still uncommitted, and never see 10. This store closes that
//! gap with two rules:
//!
//! 1. **Positions are allocated in transaction-id order.** The append
//!    functions take a session-level advisory lock, assign the transaction its
//!    id (`tx_id`; its first write, the clock update below or else the
//!    `INSERT`, happens under the lock), its timestamp and its positions, and
//!    release the lock *before* the commit, so commits and their WAL flushes
//!    still overlap. Transaction
//!    ids are handed out in increasing order, so for two events, a lower
//!    position always has a lower-or-equal `tx_id`. (The idempotency key and the
//!    stream version are checked before the lock: the unique indexes guard them.)
//! 2. **Reads return only rows of transactions older than every running one**:
//!    `tx_id < pg_snapshot_xmin(pg_current_snapshot())`, in position order.
//!    Every transaction below the snapshot's xmin has finished, so every row
//!    below a returned row (lower position, hence lower `tx_id`) is already
//!    committed and visible, or was rolled back and never will be.
//!
//! So a read never returns an event that a later read could precede with a
//! lower position. The price: a transaction that stays open (ours or anyone's
//! on the same server: xmin is cluster-wide) delays what readers see until it
//! ends; it never reorders or loses anything. Stream reads
//! ([`read_stream`](foldkit::store::EventStore::read_stream)) do not need the
//! filter: a stream's next version is written only after its previous one
//! committed, so they see their stream's newest event at once.
//!
//! # Timestamps
//!
//! The timestamp is taken from the *server's* clock inside the append lock, as
//! `max(clock_timestamp(), last)`, where `last` is kept in the sequence
//! `foldkit_clock` (sequence updates are not transactional, so the next holder
//! of the lock sees it before this append commits). Timestamps are therefore
//! non-decreasing in position order across all instances, whatever their own
//! clocks say, and across a failover (the sequence is WAL-logged with the
//! commit that used it; `foldkit_append_one` writes it only when the clock
//! moved on, `foldkit_append_event` on every call). If the
//! server's wall clock steps backwards, the `max` absorbs it: timestamps stay
//! flat until the clock catches up.
//!
//! # Live updates and reconnects
//!
//! From its first tail on, each store keeps one connection that `LISTEN`s on
//! `foldkit_events` (a store that only appends needs none, and so is not woken
//! by its own notifications). An append whose turn it is carries `pg_notify`
//! in its own transaction, so other instances are told at its commit; PostgreSQL serializes notifying commits
//! through their WAL flush, so a store runs one notifying transaction at a
//! time and, under load, at most one per
//! [`PgStoreBuilder::notify_interval`]; appends that carried none are
//! announced by a separate `pg_notify` within about one interval. Tails treat a notification only as a hint and
//! re-read gap-free from their own position; they also poll
//! ([`PgStoreBuilder::poll_interval`]), so a lost notification or a listener
//! that is reconnecting costs latency, never an event. Lost connections are
//! replaced: reads and tails retry from the same position
//! ([`PgStoreBuilder::retry_for`]).
//!
//! # Group commit
//!
//! Concurrent appends of one store share a transaction: a few worker tasks
//! take what is queued (no two batches of one stream or key in a group) and
//! append it with one call of `foldkit_append_batches` (one lock hold, one
//! `INSERT` of every event, one commit), while each batch keeps its own answer; a group that fails as a
//! whole is appended again batch by batch. An append that finds no other of
//! its store in flight takes the single-batch path in its caller's task, so
//! it waits for nothing and hands off to no worker.
//!
//! # Idempotency and conflicts
//!
//! A batch with an idempotency key is recorded in `foldkit_idempotency` in the
//! same transaction as its events; a retry (even a concurrent one) appends
//! nothing and returns the first append's positions with `deduplicated: true`.
//! Keyed appends are retried by the store when the connection is lost mid-way;
//! an unkeyed append that loses its connection returns an error saying that the
//! outcome is unknown. An append whose stream is not at the expected version
//! writes nothing and returns [`StoreError::Conflict`](foldkit::store::StoreError)
//! with the stream's actual version.
//!
//! # Durability
//!
//! An append is acknowledged after its commit, so it is as durable as the
//! server's `synchronous_commit` makes commits (`on`, the default: flushed; with
//! a synchronous standby, also on the standby). [`sync`](foldkit::store::EventStore::sync)
//! and [`close`](foldkit::store::EventStore::close) flush the WAL even on a
//! server running with `synchronous_commit = off`.

mod append;
mod error;
mod group;
mod notify;
mod read;
mod schema;
mod store;
mod tail;

#[cfg(feature = "testing")]
pub mod testing;

pub use schema::SCHEMA_VERSION;
pub use store::{PgStore, PgStoreBuilder};
pub use tail::PgTail;
