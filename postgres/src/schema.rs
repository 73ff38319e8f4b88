//! The tables and the append function, created and upgraded at connect.
//!
//! Migrations are numbered; each runs once, in order, inside one transaction that
//! first takes a transaction-level advisory lock ([`MIGRATE_LOCK`]). Several
//! instances starting at once therefore queue on the lock: the first applies
//! what is missing, the others find it applied. A database migrated by a newer
//! build (a version this build does not know) is refused with
//! [`StoreError::Format`] rather than written to.
//!
//! The append function ([`APPEND_FN`]) is where the ordering guarantees live;
//! see the crate docs ("Why the order is gap-free").

use foldkit::store::StoreError;
use tokio_postgres::Client;

use crate::error::backend;

/// `pg_advisory_xact_lock` key serialising migrations ("foldkit" + 1).
pub(crate) const MIGRATE_LOCK: i64 = 0x666f_6c64_6b69_7401;
/// `pg_advisory_lock` key serialising position allocation ("foldkit" + 2).
/// Held only while one append allocates its positions, never across a commit.
pub(crate) const APPEND_LOCK: i64 = 0x666f_6c64_6b69_7402;

/// The channel appends are announced on.
pub(crate) const CHANNEL: &str = "foldkit_events";

/// The name of the append function (one round trip per append).
pub(crate) const APPEND_FN: &str = "foldkit_append";

/// SQLSTATE raised by the append function when a concurrent writer of the
/// same stream got there first (its commit was pending when we looked).
pub(crate) const STATE_STREAM_MOVED: &str = "FK002";
/// SQLSTATE raised when a concurrent append with the same idempotency key
/// committed first: a retry returns that append's result.
pub(crate) const STATE_KEY_RACE: &str = "FK003";

/// The migrations, in order: `MIGRATIONS[i]` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[V1];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

const V1: &str = r#"
CREATE TABLE foldkit_events (
    position        bigint  GENERATED ALWAYS AS IDENTITY (MINVALUE 1 START 1 CACHE 1) PRIMARY KEY,
    tx_id           xid8    NOT NULL DEFAULT pg_current_xact_id(),
    stream_id       text,
    stream_version  bigint,
    event_name      text    NOT NULL,
    schema_version  integer NOT NULL CHECK (schema_version >= 0),
    timestamp_ms    bigint  NOT NULL,
    correlation_id  text,
    causation       bigint,
    actor           text,
    metadata        jsonb,
    payload         bytea   NOT NULL,
    CONSTRAINT foldkit_events_stream_version UNIQUE (stream_id, stream_version),
    CONSTRAINT foldkit_events_stream_pair CHECK ((stream_id IS NULL) = (stream_version IS NULL)),
    CONSTRAINT foldkit_events_version_positive CHECK (stream_version IS NULL OR stream_version >= 1)
);

CREATE TABLE foldkit_idempotency (
    key             text        PRIMARY KEY,
    first_position  bigint      NOT NULL,
    last_position   bigint      NOT NULL,
    stream_version  bigint      NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE foldkit_snapshots (
    state       text        NOT NULL,
    position    bigint      NOT NULL,
    bytes       bytea       NOT NULL,
    written_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (state, position)
);

CREATE TABLE foldkit_checkpoints (
    name        text        PRIMARY KEY,
    position    bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The last timestamp handed out: a sequence because its updates are not
-- transactional, so the next append sees it before this one commits.
CREATE SEQUENCE foldkit_clock AS bigint MINVALUE 0 START 0;

CREATE FUNCTION foldkit_append(
    p_stream          text,
    p_expected        bigint,   -- -1: any version; n >= 0: exactly n (0: no stream yet)
    p_key             text,
    p_names           text[],
    p_schema_versions integer[],
    p_payloads        bytea[],
    p_correlation_id  text,
    p_causation       bigint,
    p_actor           text,
    p_metadata        jsonb,
    OUT status         text,
    OUT first_position bigint,
    OUT last_position  bigint,
    OUT stream_version bigint
)
LANGUAGE plpgsql AS $fn$
DECLARE
    n   integer := cardinality(p_names);
    cur bigint  := 0;
    ts  bigint;
    cnt bigint;
BEGIN
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'foldkit_append must be the first write of its transaction'
            USING ERRCODE = 'FK001';
    END IF;
    -- The key and the stream version are checked before the lock: the unique
    -- indexes are what guard them (a concurrent writer that got there first
    -- makes the inserts below find a conflict: FK002, FK003).
    IF p_key IS NOT NULL THEN
        SELECT i.first_position, i.last_position, i.stream_version
          INTO first_position, last_position, stream_version
          FROM foldkit_idempotency i WHERE i.key = p_key;
        IF FOUND THEN
            status := 'duplicate';
            RETURN;
        END IF;
    END IF;
    IF p_stream IS NOT NULL THEN
        SELECT coalesce(max(e.stream_version), 0) INTO cur
          FROM foldkit_events e WHERE e.stream_id = p_stream;
        IF p_expected >= 0 AND cur <> p_expected THEN
            status := 'conflict';
            stream_version := cur;
            RETURN;
        END IF;
    END IF;

    -- Under the lock: the transaction id (assigned by setval, the first write),
    -- the timestamp and the positions, so all three follow one order.
    PERFORM pg_advisory_lock(__APPEND_LOCK__);
    ts := greatest((extract(epoch FROM clock_timestamp()) * 1000)::bigint,
                   (SELECT c.last_value FROM foldkit_clock c));
    PERFORM setval('foldkit_clock', ts);
    IF n = 1 THEN
        INSERT INTO foldkit_events (stream_id, stream_version, event_name, schema_version,
                                    timestamp_ms, correlation_id, causation, actor, metadata, payload)
        VALUES (p_stream, CASE WHEN p_stream IS NULL THEN NULL ELSE cur + 1 END,
                p_names[1], p_schema_versions[1], ts, p_correlation_id, p_causation, p_actor,
                p_metadata, p_payloads[1])
        ON CONFLICT ON CONSTRAINT foldkit_events_stream_version DO NOTHING
        RETURNING position INTO first_position;
        cnt := CASE WHEN FOUND THEN 1 ELSE 0 END;
        last_position := first_position;
    ELSE
        WITH ins AS (
            INSERT INTO foldkit_events (stream_id, stream_version, event_name, schema_version,
                                        timestamp_ms, correlation_id, causation, actor, metadata, payload)
            SELECT p_stream,
                   CASE WHEN p_stream IS NULL THEN NULL ELSE cur + u.ord END,
                   u.name, u.sv, ts, p_correlation_id, p_causation, p_actor, p_metadata, u.payload
              FROM unnest(p_names, p_schema_versions, p_payloads) WITH ORDINALITY AS u(name, sv, payload, ord)
             ORDER BY u.ord
            ON CONFLICT ON CONSTRAINT foldkit_events_stream_version DO NOTHING
            RETURNING foldkit_events.position
        )
        SELECT min(ins.position), max(ins.position), count(*)
          INTO first_position, last_position, cnt FROM ins;
    END IF;
    PERFORM pg_advisory_unlock(__APPEND_LOCK__);

    IF cnt <> n THEN
        RAISE EXCEPTION 'stream % moved during the append', p_stream USING ERRCODE = 'FK002';
    END IF;
    IF last_position - first_position + 1 <> n THEN
        RAISE EXCEPTION 'positions % to % are not consecutive for % events',
            first_position, last_position, n USING ERRCODE = 'FK004';
    END IF;
    stream_version := CASE WHEN p_stream IS NULL THEN 0 ELSE cur + n END;
    IF p_key IS NOT NULL THEN
        INSERT INTO foldkit_idempotency (key, first_position, last_position, stream_version)
        VALUES (p_key, first_position, last_position, stream_version)
        ON CONFLICT (key) DO NOTHING;
        GET DIAGNOSTICS cnt = ROW_COUNT;
        IF cnt = 0 THEN
            RAISE EXCEPTION 'idempotency key % was appended concurrently', p_key USING ERRCODE = 'FK003';
        END IF;
    END IF;
    status := 'appended';
END
$fn$;
"#;

/// Creates or upgrades the schema; returns the version found before.
pub(crate) async fn migrate(client: &mut Client) -> Result<u32, StoreError> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| backend("begin the migration transaction", e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
        .await
        .map_err(|e| backend("take the migration lock", e))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS foldkit_schema_migrations (
             version    integer     PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(|e| backend("create table foldkit_schema_migrations", e))?;
    let found: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM foldkit_schema_migrations",
            &[],
        )
        .await
        .map_err(|e| backend("read foldkit_schema_migrations", e))?
        .get(0);
    let found = u32::try_from(found).map_err(|_| StoreError::Corrupt {
        what: "table foldkit_schema_migrations".into(),
        reason: format!("negative schema version {found}"),
    })?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::Format {
            what: "the foldkit tables (foldkit_schema_migrations)".into(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = i as i32 + 1;
        let sql = sql.replace("__APPEND_LOCK__", &APPEND_LOCK.to_string());
        tx.batch_execute(&sql)
            .await
            .map_err(|e| backend(format!("apply schema migration {version}"), e))?;
        tx.execute(
            "INSERT INTO foldkit_schema_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(|e| backend(format!("record schema migration {version}"), e))?;
    }
    tx.commit()
        .await
        .map_err(|e| backend("commit the schema migrations", e))?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_append_lock_is_released_on_the_one_path_that_takes_it() {
        assert_eq!(V1.matches("pg_advisory_lock(__APPEND_LOCK__)").count(), 1);
        assert_eq!(V1.matches("pg_advisory_unlock(__APPEND_LOCK__)").count(), 1);
        let locked =
            &V1[V1.find("pg_advisory_lock(").unwrap()..V1.find("pg_advisory_unlock(").unwrap()];
        assert!(
            !locked.contains("RAISE") && !locked.contains("RETURN;"),
            "no exit while locked"
        );
    }
}
