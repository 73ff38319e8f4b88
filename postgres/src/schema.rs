//! The tables and the append function, created and upgraded at connect.
//!
//! Migrations are numbered; each runs once, in order, inside one transaction that
//! first takes a transaction-level advisory lock ([`MIGRATE_LOCK`]). Several
//! instances starting at once therefore queue on the lock: the first applies
//! what is missing, the others find it applied. A database migrated by a newer
//! build (a version this build does not know) is refused with
//! [`StoreError::Format`] rather than written to.
//!
//! The append functions ([`APPEND_ONE_FN`], [`APPEND_BATCHES_FN`]) are where
//! the ordering guarantees live; see the crate docs ("Why the order is
//! gap-free").

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

/// The single-batch append function of schema version 3 (`foldkit_append`
/// of version 1 stays for older builds).
pub(crate) const APPEND_ONE_FN: &str = "foldkit_append_one";

/// The append of one event to no stream without an idempotency key (schema
/// version 4): the common case, with the least work per call.
pub(crate) const APPEND_EVENT_FN: &str = "foldkit_append_event";

/// The function appending several batches in one transaction (schema
/// version 2; `foldkit_append_group` of version 1 stays for older builds).
pub(crate) const APPEND_BATCHES_FN: &str = "foldkit_append_batches";

/// SQLSTATE raised by the append function when a concurrent writer of the
/// same stream got there first (its commit was pending when we looked).
pub(crate) const STATE_STREAM_MOVED: &str = "FK002";
/// SQLSTATE raised when a concurrent append with the same idempotency key
/// committed first: a retry returns that append's result.
pub(crate) const STATE_KEY_RACE: &str = "FK003";

/// The migrations, in order: `MIGRATIONS[i]` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// The oldest schema version whose tables this build reads: versions 2 to 4
/// only added append functions, so a read-only store (which never appends)
/// reads a database of any version from here to [`SCHEMA_VERSION`], such as
/// one that instances of an older build still write.
const TABLES_SINCE: u32 = 1;

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

-- Several batches in one transaction (the store groups concurrent appends):
-- each batch is checked and answered on its own, as foldkit_append would;
-- the positions of all of them are allocated under one hold of the lock.
CREATE FUNCTION foldkit_append_group(
    p_counts          integer[],  -- events per batch
    p_streams         text[],
    p_expected        bigint[],
    p_keys            text[],
    p_names           text[],     -- every batch's events, one after the other
    p_schema_versions integer[],
    p_payloads        bytea[],
    p_correlation_ids text[],
    p_causations      bigint[],
    p_actors          text[],
    p_metadata        text[]
) RETURNS TABLE (status text, first_position bigint, last_position bigint, stream_version bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
    nb     integer := cardinality(p_counts);
    st     text[]   := array_fill('pending'::text, ARRAY[nb]);
    fp     bigint[] := array_fill(NULL::bigint, ARRAY[nb]);
    lp     bigint[] := array_fill(NULL::bigint, ARRAY[nb]);
    sv     bigint[] := array_fill(0::bigint, ARRAY[nb]);
    cur    bigint;
    b      integer;
    n      integer;
    off    integer := 0;
    ts     bigint;
    cnt    bigint;
    f      bigint;
    l      bigint;
    v      bigint;
    moved  text := NULL;
    pending integer := 0;
BEGIN
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'foldkit_append_group must be the first write of its transaction'
            USING ERRCODE = 'FK001';
    END IF;
    FOR b IN 1..nb LOOP
        IF p_keys[b] IS NOT NULL THEN
            SELECT i.first_position, i.last_position, i.stream_version INTO f, l, v
              FROM foldkit_idempotency i WHERE i.key = p_keys[b];
            IF FOUND THEN
                st[b] := 'duplicate'; fp[b] := f; lp[b] := l; sv[b] := v;
                CONTINUE;
            END IF;
        END IF;
        IF p_streams[b] IS NOT NULL THEN
            SELECT coalesce(max(e.stream_version), 0) INTO cur
              FROM foldkit_events e WHERE e.stream_id = p_streams[b];
            sv[b] := cur;
            IF p_expected[b] >= 0 AND cur <> p_expected[b] THEN
                st[b] := 'conflict';
                CONTINUE;
            END IF;
        END IF;
        pending := pending + 1;
    END LOOP;

    IF pending > 0 THEN
        PERFORM pg_advisory_lock(__APPEND_LOCK__);
        ts := greatest((extract(epoch FROM clock_timestamp()) * 1000)::bigint,
                       (SELECT c.last_value FROM foldkit_clock c));
        PERFORM setval('foldkit_clock', ts);
        FOR b IN 1..nb LOOP
            n := p_counts[b];
            IF st[b] = 'pending' THEN
                WITH ins AS (
                    INSERT INTO foldkit_events (stream_id, stream_version, event_name, schema_version,
                                                timestamp_ms, correlation_id, causation, actor, metadata, payload)
                    SELECT p_streams[b],
                           CASE WHEN p_streams[b] IS NULL THEN NULL ELSE sv[b] + u.ord END,
                           u.name, u.sver, ts, p_correlation_ids[b], p_causations[b], p_actors[b],
                           p_metadata[b]::jsonb, u.payload
                      FROM unnest(p_names[off + 1 : off + n], p_schema_versions[off + 1 : off + n],
                                  p_payloads[off + 1 : off + n]) WITH ORDINALITY AS u(name, sver, payload, ord)
                     ORDER BY u.ord
                    ON CONFLICT ON CONSTRAINT foldkit_events_stream_version DO NOTHING
                    RETURNING foldkit_events.position
                )
                SELECT min(ins.position), max(ins.position), count(*) INTO f, l, cnt FROM ins;
                IF cnt <> n OR l - f + 1 <> n THEN
                    moved := coalesce(p_streams[b], '');
                    EXIT;
                END IF;
                fp[b] := f; lp[b] := l;
                IF p_streams[b] IS NOT NULL THEN
                    sv[b] := sv[b] + n;
                END IF;
            END IF;
            off := off + n;
        END LOOP;
        PERFORM pg_advisory_unlock(__APPEND_LOCK__);
    END IF;

    IF moved IS NOT NULL THEN
        RAISE EXCEPTION 'stream % moved during the append', moved USING ERRCODE = 'FK002';
    END IF;
    FOR b IN 1..nb LOOP
        IF st[b] = 'pending' THEN
            IF p_keys[b] IS NOT NULL THEN
                INSERT INTO foldkit_idempotency (key, first_position, last_position, stream_version)
                VALUES (p_keys[b], fp[b], lp[b], sv[b])
                ON CONFLICT (key) DO NOTHING;
                GET DIAGNOSTICS cnt = ROW_COUNT;
                IF cnt = 0 THEN
                    RAISE EXCEPTION 'idempotency key % was appended concurrently', p_keys[b]
                        USING ERRCODE = 'FK003';
                END IF;
            END IF;
            st[b] := 'appended';
        END IF;
    END LOOP;
    RETURN QUERY SELECT u.s, u.f, u.l, u.v FROM unnest(st, fp, lp, sv) AS u(s, f, l, v);
END
$fn$;
"#;

/// Version 2: `foldkit_append_batches`, the set-based group append. Where
/// `foldkit_append_group` runs one `INSERT` (and one key and one version
/// lookup) per batch, this runs one statement per step for the whole group:
/// one lookup of the keys, one of the stream versions, one `INSERT` of every
/// event (which also releases the lock), one `INSERT` of the keys. Per-event
/// arrays carry each event's batch (`p_batch`, 1-based); the answer is one row
/// of per-batch arrays (status, first and last position, stream version).
const V2: &str = r#"
CREATE FUNCTION foldkit_append_batches(
    p_counts          integer[],
    p_streams         text[],
    p_expected        bigint[],
    p_keys            text[],
    p_batch           integer[],
    p_names           text[],
    p_schema_versions integer[],
    p_payloads        bytea[],
    p_correlation_ids text[],
    p_causations      bigint[],
    p_actors          text[],
    p_metadata        text[],
    OUT statuses        text[],
    OUT first_positions bigint[],
    OUT last_positions  bigint[],
    OUT stream_versions bigint[]
)
LANGUAGE plpgsql AS $fn$
DECLARE
    nb      integer := cardinality(p_counts);
    go      boolean[] := array_fill(true, ARRAY[nb]);
    base    bigint[]  := array_fill(NULL::bigint, ARRAY[nb]);
    b       integer;
    cur     bigint;
    f       bigint;
    l       bigint;
    v       bigint;
    n       bigint;
    cnt     bigint;
    total   bigint := 0;
    off     bigint := 0;
    keyed   integer := 0;
    ts      bigint;
    unlocked boolean;
BEGIN
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'foldkit_append_batches must be the first write of its transaction'
            USING ERRCODE = 'FK001';
    END IF;
    statuses        := array_fill('appended'::text, ARRAY[nb]);
    first_positions := array_fill(NULL::bigint, ARRAY[nb]);
    last_positions  := array_fill(NULL::bigint, ARRAY[nb]);
    stream_versions := array_fill(0::bigint, ARRAY[nb]);
    IF cardinality(array_remove(p_keys, NULL)) > 0 THEN
        FOR b, f, l, v IN
            SELECT k.b, i.first_position, i.last_position, i.stream_version
              FROM unnest(p_keys) WITH ORDINALITY AS k(key, b)
              JOIN foldkit_idempotency i ON i.key = k.key
        LOOP
            go[b] := false;
            statuses[b] := 'duplicate'; first_positions[b] := f; last_positions[b] := l;
            stream_versions[b] := v;
        END LOOP;
    END IF;
    IF cardinality(array_remove(p_streams, NULL)) > 0 THEN
        FOR b, cur IN
            SELECT s.b, (SELECT coalesce(max(e.stream_version), 0) FROM foldkit_events e
                          WHERE e.stream_id = s.stream)
              FROM unnest(p_streams) WITH ORDINALITY AS s(stream, b)
             WHERE s.stream IS NOT NULL
        LOOP
            IF go[b] THEN
                stream_versions[b] := cur;
                IF p_expected[b] >= 0 AND cur <> p_expected[b] THEN
                    go[b] := false;
                    statuses[b] := 'conflict';
                END IF;
            END IF;
        END LOOP;
    END IF;
    -- Offsets: the events of batch b are p_names[off + 1 .. off + n].
    FOR b IN 1..nb LOOP
        n := p_counts[b];
        IF go[b] THEN
            total := total + n;
            IF p_streams[b] IS NOT NULL THEN
                base[b] := stream_versions[b] - off;
            END IF;
            IF p_keys[b] IS NOT NULL THEN keyed := keyed + 1; END IF;
        END IF;
        off := off + n;
    END LOOP;

    IF total > 0 THEN
        PERFORM pg_advisory_lock(__APPEND_LOCK__);
        ts := setval('foldkit_clock', greatest((extract(epoch FROM clock_timestamp()) * 1000)::bigint,
                                               (SELECT c.last_value FROM foldkit_clock c)));
        WITH ins AS (
            INSERT INTO foldkit_events (stream_id, stream_version, event_name, schema_version,
                                        timestamp_ms, correlation_id, causation, actor, metadata, payload)
            SELECT p_streams[u.b], base[u.b] + u.ord, u.name, u.sver, ts, p_correlation_ids[u.b],
                   p_causations[u.b], p_actors[u.b], p_metadata[u.b]::jsonb, u.payload
              FROM unnest(p_names, p_schema_versions, p_payloads, p_batch)
                   WITH ORDINALITY AS u(name, sver, payload, b, ord)
             WHERE go[u.b]
             ORDER BY u.ord
            ON CONFLICT ON CONSTRAINT foldkit_events_stream_version DO NOTHING
            RETURNING foldkit_events.position
        )
        SELECT s.f, s.l, s.c, pg_advisory_unlock(__APPEND_LOCK__)
          INTO f, l, cnt, unlocked
          FROM (SELECT min(ins.position) AS f, max(ins.position) AS l, count(*) AS c FROM ins) s;
        IF cnt <> total THEN
            RAISE EXCEPTION 'a stream of the group moved during the append' USING ERRCODE = 'FK002';
        END IF;
        IF l - f + 1 <> total THEN
            RAISE EXCEPTION 'positions % to % are not consecutive for % events', f, l, total
                USING ERRCODE = 'FK004';
        END IF;
        FOR b IN 1..nb LOOP
            IF go[b] THEN
                n := p_counts[b];
                first_positions[b] := f;
                last_positions[b] := f + n - 1;
                f := f + n;
                IF p_streams[b] IS NOT NULL THEN
                    stream_versions[b] := stream_versions[b] + n;
                END IF;
            END IF;
        END LOOP;
        IF keyed > 0 THEN
            INSERT INTO foldkit_idempotency (key, first_position, last_position, stream_version)
            SELECT k.key, k.f, k.l, k.v
              FROM unnest(p_keys, first_positions, last_positions, stream_versions, go)
                   AS k(key, f, l, v, g)
             WHERE k.g AND k.key IS NOT NULL
            ON CONFLICT (key) DO NOTHING;
            GET DIAGNOSTICS cnt = ROW_COUNT;
            IF cnt <> keyed THEN
                RAISE EXCEPTION 'an idempotency key of the group was appended concurrently'
                    USING ERRCODE = 'FK003';
            END IF;
        END IF;
    END IF;
END
$fn$;
"#;

/// Version 3: `foldkit_append_one`, the single-batch append of this build.
/// Same parameters, checks, order and answers as `foldkit_append` (which
/// stays for older builds), for less work per call:
///
/// - the lock, the clock and the unlock are PL/pgSQL *simple expressions*
///   (evaluated directly, not as queries through SPI and the executor);
/// - the clock reads `foldkit_clock` with `pg_sequence_last_value` and calls
///   `setval` only when the clock moved on (the transaction id is then
///   assigned by the `INSERT`, still under the lock);
/// - a one-event batch is one `INSERT .. VALUES`, without `ON CONFLICT` when
///   it goes to no stream (nothing can conflict there);
/// - the notification (`p_notify`) is sent by the function;
/// - the answer is one `bigint[]` (status, first and last position, stream
///   version; status 0 appended, 1 duplicate, 2 conflict), a scalar, so the
///   call is one `SELECT` of one expression, without a function scan.
const V3: &str = r#"
CREATE FUNCTION foldkit_append_one(
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
    p_notify          boolean   -- notify __CHANNEL__ of the last position when appended
) RETURNS bigint[]              -- {status (0 appended, 1 duplicate, 2 conflict), first, last, version}
LANGUAGE plpgsql AS $fn$
DECLARE
    n    integer := cardinality(p_names);
    cur  bigint;
    ts   bigint;
    last bigint;
    f    bigint;
    l    bigint;
    v    bigint;
    cnt  bigint;
    ok   boolean;
BEGIN
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'foldkit_append_one must be the first write of its transaction'
            USING ERRCODE = 'FK001';
    END IF;
    -- The key and the stream version are checked before the lock: the unique
    -- indexes are what guard them (a concurrent writer that got there first
    -- makes the inserts below find a conflict: FK002, FK003).
    IF p_key IS NOT NULL THEN
        SELECT i.first_position, i.last_position, i.stream_version INTO f, l, v
          FROM foldkit_idempotency i WHERE i.key = p_key;
        IF FOUND THEN
            RETURN ARRAY[1, f, l, v];
        END IF;
    END IF;
    IF p_stream IS NOT NULL THEN
        cur := (SELECT coalesce(max(e.stream_version), 0) FROM foldkit_events e
                 WHERE e.stream_id = p_stream);
        IF p_expected >= 0 AND cur <> p_expected THEN
            RETURN ARRAY[2, NULL, NULL, cur];
        END IF;
    END IF;

    -- Under the lock: the clock, the transaction id (assigned by the first
    -- write: setval, or else the INSERT) and the positions, in one order.
    ok := pg_advisory_lock(__APPEND_LOCK__) IS NULL;
    ts := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
    last := pg_sequence_last_value('foldkit_clock');
    IF last IS NULL OR ts > last THEN
        ts := setval('foldkit_clock', ts);
    ELSE
        ts := last;
    END IF;
    IF n = 1 AND p_stream IS NULL THEN
        INSERT INTO foldkit_events (event_name, schema_version, timestamp_ms, correlation_id,
                                    causation, actor, metadata, payload)
        VALUES (p_names[1], p_schema_versions[1], ts, p_correlation_id, p_causation, p_actor,
                p_metadata, p_payloads[1])
        RETURNING position INTO f;
        cnt := 1;
        l := f;
    ELSIF n = 1 THEN
        INSERT INTO foldkit_events (stream_id, stream_version, event_name, schema_version,
                                    timestamp_ms, correlation_id, causation, actor, metadata, payload)
        VALUES (p_stream, cur + 1, p_names[1], p_schema_versions[1], ts, p_correlation_id,
                p_causation, p_actor, p_metadata, p_payloads[1])
        ON CONFLICT ON CONSTRAINT foldkit_events_stream_version DO NOTHING
        RETURNING position INTO f;
        cnt := CASE WHEN FOUND THEN 1 ELSE 0 END;
        l := f;
    ELSE
        WITH ins AS (
            INSERT INTO foldkit_events (stream_id, stream_version, event_name, schema_version,
                                        timestamp_ms, correlation_id, causation, actor, metadata, payload)
            SELECT p_stream, cur + u.ord, u.name, u.sv, ts, p_correlation_id, p_causation,
                   p_actor, p_metadata, u.payload
              FROM unnest(p_names, p_schema_versions, p_payloads)
                   WITH ORDINALITY AS u(name, sv, payload, ord)
             ORDER BY u.ord
            ON CONFLICT ON CONSTRAINT foldkit_events_stream_version DO NOTHING
            RETURNING foldkit_events.position
        )
        SELECT min(ins.position), max(ins.position), count(*) INTO f, l, cnt FROM ins;
    END IF;
    ok := pg_advisory_unlock(__APPEND_LOCK__);

    IF cnt <> n THEN
        RAISE EXCEPTION 'stream % moved during the append', p_stream USING ERRCODE = 'FK002';
    END IF;
    IF l - f + 1 <> n THEN
        RAISE EXCEPTION 'positions % to % are not consecutive for % events', f, l, n
            USING ERRCODE = 'FK004';
    END IF;
    v := coalesce(cur + n, 0);
    IF p_key IS NOT NULL THEN
        INSERT INTO foldkit_idempotency (key, first_position, last_position, stream_version)
        VALUES (p_key, f, l, v)
        ON CONFLICT (key) DO NOTHING;
        GET DIAGNOSTICS cnt = ROW_COUNT;
        IF cnt = 0 THEN
            RAISE EXCEPTION 'idempotency key % was appended concurrently', p_key
                USING ERRCODE = 'FK003';
        END IF;
    END IF;
    IF p_notify THEN
        ok := pg_notify('__CHANNEL__', l::text) IS NULL;
    END IF;
    RETURN ARRAY[0, f, l, v];
END
$fn$;
"#;

/// Version 4: `foldkit_append_event`, the append of one event to no stream
/// without an idempotency key, the common case. There is nothing to look up
/// before the lock and nothing that can conflict, and PL/pgSQL pays for every
/// statement it runs (each expression's state is rebuilt in every
/// transaction), so the function is only what the order needs: the
/// transaction check, the lock, the clock, the `INSERT`, the unlock and the
/// notification. The clock is `setval(max(now, last))` on every call, the
/// transaction's first write, so the transaction id is assigned under the
/// lock as in `foldkit_append_one`; the answer is the position alone.
const V4: &str = r#"
CREATE FUNCTION foldkit_append_event(
    p_name            text,
    p_schema_version  integer,
    p_payload         bytea,
    p_correlation_id  text,
    p_causation       bigint,
    p_actor           text,
    p_metadata        jsonb,
    p_notify          boolean   -- notify __CHANNEL__ of the position
) RETURNS bigint                -- the event's position
LANGUAGE plpgsql AS $fn$
DECLARE
    ts  bigint;
    f   bigint;
    ok  boolean;
BEGIN
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'foldkit_append_event must be the first write of its transaction'
            USING ERRCODE = 'FK001';
    END IF;
    ok := pg_advisory_lock(__APPEND_LOCK__) IS NULL;
    ts := setval('foldkit_clock', greatest((extract(epoch FROM clock_timestamp()) * 1000)::bigint,
                                           coalesce(pg_sequence_last_value('foldkit_clock'), 0)));
    INSERT INTO foldkit_events (event_name, schema_version, timestamp_ms, correlation_id,
                                causation, actor, metadata, payload)
    VALUES (p_name, p_schema_version, ts, p_correlation_id, p_causation, p_actor, p_metadata,
            p_payload)
    RETURNING position INTO f;
    ok := pg_advisory_unlock(__APPEND_LOCK__);
    IF p_notify THEN
        ok := pg_notify('__CHANNEL__', f::text) IS NULL;
    END IF;
    RETURN f;
END
$fn$;
"#;

/// Creates or upgrades the schema; returns the version found before.
pub(crate) async fn migrate(client: &mut Client) -> Result<u32, StoreError> {
    migrate_to(client, SCHEMA_VERSION).await
}

/// Creates or upgrades the schema to version `target` (at most
/// [`SCHEMA_VERSION`]; tests build older databases with it); returns the
/// version found before.
pub(crate) async fn migrate_to(client: &mut Client, target: u32) -> Result<u32, StoreError> {
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
        .map_err(|e| backend("read foldkit_schema_migrations", e))
        .and_then(|row| {
            crate::read::column(&row, 0, || {
                "table foldkit_schema_migrations, column version".into()
            })
        })?;
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
    let target = target.min(SCHEMA_VERSION) as usize;
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .take(target)
        .skip(found as usize)
    {
        let version = i as i32 + 1;
        let sql = sql
            .replace("__APPEND_LOCK__", &APPEND_LOCK.to_string())
            .replace("__CHANNEL__", CHANNEL);
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

/// Checks, writing nothing, that the database holds foldkit's tables at a
/// version this build reads ([`TABLES_SINCE`] to [`SCHEMA_VERSION`]; a
/// read-only store). Returns that version.
pub(crate) async fn check(client: &Client, what: &str) -> Result<u32, StoreError> {
    let row = client
        .query_one(
            "SELECT to_regclass('foldkit_schema_migrations') IS NOT NULL, \
                    to_regclass('foldkit_events') IS NOT NULL",
            &[],
        )
        .await
        .map_err(|e| backend("look for the foldkit tables", e))?;
    let place = || "the search for the foldkit tables".to_owned();
    let (migrations, events): (bool, bool) = (
        crate::read::column(&row, 0, place)?,
        crate::read::column(&row, 1, place)?,
    );
    if !migrations || !events {
        return Err(StoreError::NotAStore {
            what: what.to_owned(),
            reason: "no foldkit tables (foldkit_schema_migrations, foldkit_events) in its \
                     search_path: not a foldkit database"
                .into(),
        });
    }
    let found: i32 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM foldkit_schema_migrations",
            &[],
        )
        .await
        .map_err(|e| backend("read foldkit_schema_migrations", e))
        .and_then(|row| {
            crate::read::column(&row, 0, || {
                "table foldkit_schema_migrations, column version".into()
            })
        })?;
    let found = u32::try_from(found).map_err(|_| StoreError::Corrupt {
        what: "table foldkit_schema_migrations".into(),
        reason: format!("negative schema version {found}"),
    })?;
    if !(TABLES_SINCE..=SCHEMA_VERSION).contains(&found) {
        return Err(StoreError::Format {
            what: format!("the foldkit tables of {what}"),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_exit_while_the_append_lock_is_held() {
        // V1: foldkit_append and foldkit_append_group; V2: foldkit_append_batches;
        // V3: foldkit_append_one; V4: foldkit_append_event.
        for (migration, functions) in [(V1, 2), (V2, 1), (V3, 1), (V4, 1)] {
            let locks: Vec<_> = migration
                .match_indices("pg_advisory_lock(__APPEND_LOCK__)")
                .collect();
            let unlocks: Vec<_> = migration
                .match_indices("pg_advisory_unlock(__APPEND_LOCK__)")
                .collect();
            assert_eq!(
                (locks.len(), unlocks.len()),
                (functions, functions),
                "one hold per function"
            );
            for ((lock, _), (unlock, _)) in locks.iter().zip(&unlocks) {
                let held = &migration[*lock..*unlock];
                let returns = held.matches("RETURN").count() - held.matches("RETURNING").count();
                assert!(
                    !held.contains("RAISE") && returns == 0,
                    "no exit while locked: {held}"
                );
            }
        }
    }
}
