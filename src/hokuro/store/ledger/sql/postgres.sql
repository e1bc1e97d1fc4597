-- PostgreSQL dialect of the ledger. Same tables, columns and indexes as sqlite.sql.
-- Timestamps are epoch seconds (double precision); encoded values are bytea.
-- Parameters use psycopg's %(name)s style; {schema} and {home} are identifiers filled in
-- with psycopg.sql.
--
-- Layout (schema 2): each Spot's tables live in a schema of its own, "hokuro_<name>"
-- (see postgres.py), and its connections set search_path to it, so the queries below name
-- tables without a schema. The database's default schema (the "home", usually public)
-- keeps only a hokuro_meta whose schema_version says that layout: hokuro 0.1 reads it
-- first and refuses, rather than making tables of its own beside the Spots.

-- name: meta_exists
SELECT to_regclass('hokuro_meta') IS NOT NULL

-- name: home_schema
SELECT current_schema()

-- name: meta_in
SELECT to_regclass(quote_ident(%(schema)s) || '.hokuro_meta') IS NOT NULL

-- name: tasks_in
SELECT to_regclass(quote_ident(%(schema)s) || '.tasks') IS NOT NULL

-- name: spot_schemas
-- Schemas that may hold a Spot; each one's hokuro_meta says which Spot (meta_of).
SELECT nspname FROM pg_namespace
WHERE left(nspname, 7) = 'hokuro_'
  AND to_regclass(quote_ident(nspname) || '.hokuro_meta') IS NOT NULL
ORDER BY nspname

-- name: meta_of
SELECT value FROM {schema}.hokuro_meta WHERE name = %(name)s

-- name: lock_schema
-- Serialises schema creation, adoption and migration between processes starting at once.
-- The constant is "hokuro" in ASCII. Taken for the session, before the transaction that
-- reads and changes the schemas: a transaction begun after the wait sees the catalog as
-- the previous holder left it, whereas within one transaction PostgreSQL may still answer
-- lookups of schemas and tables from its cache of before the wait.
SELECT pg_advisory_lock(114784820031855)

-- name: unlock_schema
SELECT pg_advisory_unlock(114784820031855)

-- name: session_read_only
SET default_transaction_read_only = on

-- name: use_schema
SET search_path TO {schema}

-- name: use_schema_here
-- For the rest of the schema step's transaction only.
SET LOCAL search_path TO {schema}

-- name: create_schema
CREATE SCHEMA IF NOT EXISTS {schema}

-- name: create_meta
CREATE TABLE IF NOT EXISTS hokuro_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
)

-- name: get_schema_version
SELECT value FROM hokuro_meta WHERE name = 'schema_version'

-- name: set_schema_version
INSERT INTO hokuro_meta (name, value) VALUES ('schema_version', %(version)s)
ON CONFLICT (name) DO UPDATE SET value = excluded.value

-- name: get_meta
SELECT value FROM hokuro_meta WHERE name = %(name)s

-- name: set_meta
INSERT INTO hokuro_meta (name, value) VALUES (%(name)s, %(value)s)
ON CONFLICT (name) DO UPDATE SET value = excluded.value

-- name: migration_1
-- key is COLLATE "C" so ordering and prefix ranges compare bytes, as SQLite does,
-- whatever the database's locale.
CREATE TABLE tasks (
    key TEXT COLLATE "C" PRIMARY KEY,
    fn TEXT NOT NULL,
    status TEXT NOT NULL,
    fn_path TEXT,
    ident TEXT,
    args BYTEA,
    version TEXT,
    result BYTEA,
    blob TEXT,
    codec TEXT,
    content_type TEXT,
    size BIGINT,
    checksum TEXT,
    error_type TEXT,
    error TEXT,
    error_fingerprint TEXT,
    log TEXT,
    log_blob TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    lease_until DOUBLE PRECISION,
    created_at DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION,
    updated_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION,
    run_id TEXT,
    scope TEXT,
    priority INTEGER,
    run_after DOUBLE PRECISION,
    parents TEXT
);
-- Covers stats (an index-only scan) and listings by collection and status.
CREATE INDEX tasks_fn_status ON tasks (fn, status, updated_at) INCLUDE (size, expires_at, lease_until);
-- (updated_at, key) rather than (updated_at) alone: it serves find's keyset pages directly.
CREATE INDEX tasks_updated ON tasks (updated_at, key);
CREATE INDEX tasks_expires ON tasks (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX tasks_fingerprint ON tasks (error_fingerprint) WHERE error_fingerprint IS NOT NULL;
CREATE INDEX tasks_ident ON tasks (fn, ident) WHERE ident IS NOT NULL;
CREATE INDEX tasks_run ON tasks (run_id, status) WHERE run_id IS NOT NULL;
CREATE INDEX tasks_queue ON tasks (scope, priority DESC, run_after) WHERE status = 'queued'

-- name: adopt
-- Schema 1 kept one Spot's tables in the home schema. The first Spot that opens such a
-- database adopts them: they move, rows and indexes as they are, into its own schema, and
-- a new hokuro_meta in the home schema then marks the database as laid out in schemas.
CREATE SCHEMA IF NOT EXISTS {schema};
ALTER TABLE {home}.tasks SET SCHEMA {schema};
ALTER TABLE {home}.hokuro_meta SET SCHEMA {schema}

-- name: migration_2
-- Schema 2 (each Spot in its own schema, see adopt) also counts the stored arguments in
-- stats: their size is a column the server keeps, so that stats stays an index-only scan.
-- Adding it rewrites the table once.
ALTER TABLE tasks ADD COLUMN args_size BIGINT GENERATED ALWAYS AS (octet_length(args)) STORED;
DROP INDEX tasks_fn_status;
CREATE INDEX tasks_fn_status ON tasks (fn, status, updated_at)
    INCLUDE (size, expires_at, lease_until, args_size)

-- name: lookup
SELECT {lookup_columns}
FROM tasks WHERE key = %(key)s

-- name: get
SELECT {record_columns}
FROM tasks WHERE key = %(key)s

-- name: get_for_update
SELECT {record_columns}
FROM tasks WHERE key = %(key)s FOR UPDATE

-- name: claim_insert
-- DO NOTHING: when another claimer inserted the row first, this waits for its transaction
-- and inserts nothing; the caller then locks that row and decides again.
INSERT INTO tasks (key, fn, status, fn_path, ident, args, version, attempts, owner,
                   lease_until, created_at, started_at, updated_at)
VALUES (%(key)s, %(fn)s, 'running', %(fn_path)s, %(ident)s, %(args)s, %(version)s, 1,
        %(owner)s, %(lease_until)s, %(now)s, %(now)s, %(now)s)
ON CONFLICT (key) DO NOTHING
RETURNING attempts

-- name: claim_update
UPDATE tasks SET status = 'running', fn = %(fn)s, fn_path = %(fn_path)s, ident = %(ident)s,
       args = %(args)s, version = %(version)s, attempts = attempts + 1, owner = %(owner)s,
       lease_until = %(lease_until)s, started_at = %(now)s, finished_at = NULL,
       updated_at = %(now)s
WHERE key = %(key)s
RETURNING attempts

-- name: renew
UPDATE tasks SET lease_until = %(lease_until)s
WHERE key = ANY(%(keys)s) AND owner = %(owner)s AND status = 'running'
RETURNING key

-- name: finish
UPDATE tasks SET status = %(status)s, result = %(result)s, blob = %(blob)s, codec = %(codec)s,
       content_type = %(content_type)s, size = %(size)s, checksum = %(checksum)s,
       error_type = %(error_type)s, error = %(error)s,
       error_fingerprint = %(error_fingerprint)s, log = %(log)s, log_blob = %(log_blob)s,
       finished_at = %(finished_at)s, updated_at = %(finished_at)s,
       expires_at = %(expires_at)s, lease_until = NULL
WHERE key = %(key)s AND owner = %(owner)s AND status = 'running'

-- name: finish_again
-- The same write, re-sent after the connection broke before the first one was acknowledged:
-- it also matches the row that first write produced (same owner, status and finish time),
-- so a finish that did commit reports True instead of "lease lost".
UPDATE tasks SET status = %(status)s, result = %(result)s, blob = %(blob)s, codec = %(codec)s,
       content_type = %(content_type)s, size = %(size)s, checksum = %(checksum)s,
       error_type = %(error_type)s, error = %(error)s,
       error_fingerprint = %(error_fingerprint)s, log = %(log)s, log_blob = %(log_blob)s,
       finished_at = %(finished_at)s, updated_at = %(finished_at)s,
       expires_at = %(expires_at)s, lease_until = NULL
WHERE key = %(key)s AND owner = %(owner)s
  AND (status = 'running'
       OR (status = %(status)s AND finished_at = %(finished_at)s AND lease_until IS NULL))

-- name: delete
DELETE FROM tasks WHERE key = ANY(%(keys)s)
RETURNING {record_columns}

-- name: put
INSERT INTO tasks (key, fn, status, fn_path, ident, args, version, result, blob, codec,
                   content_type, size, checksum, error_type, error, error_fingerprint, log,
                   log_blob, attempts, owner, lease_until, created_at, started_at,
                   finished_at, updated_at, expires_at, run_id, scope, priority, run_after,
                   parents)
VALUES (%(key)s, %(fn)s, %(status)s, %(fn_path)s, %(ident)s, %(args)s, %(version)s,
        %(result)s, %(blob)s, %(codec)s, %(content_type)s, %(size)s, %(checksum)s,
        %(error_type)s, %(error)s, %(error_fingerprint)s, %(log)s, %(log_blob)s,
        %(attempts)s, %(owner)s, %(lease_until)s, %(created_at)s, %(started_at)s,
        %(finished_at)s, %(updated_at)s, %(expires_at)s, %(run_id)s, %(scope)s,
        %(priority)s, %(run_after)s, %(parents)s)
ON CONFLICT (key) DO UPDATE SET
    fn = excluded.fn, status = excluded.status, fn_path = excluded.fn_path,
    ident = excluded.ident, args = excluded.args, version = excluded.version,
    result = excluded.result, blob = excluded.blob, codec = excluded.codec,
    content_type = excluded.content_type, size = excluded.size,
    checksum = excluded.checksum, error_type = excluded.error_type, error = excluded.error,
    error_fingerprint = excluded.error_fingerprint, log = excluded.log,
    log_blob = excluded.log_blob, attempts = excluded.attempts, owner = excluded.owner,
    lease_until = excluded.lease_until, created_at = excluded.created_at,
    started_at = excluded.started_at, finished_at = excluded.finished_at,
    updated_at = excluded.updated_at, expires_at = excluded.expires_at,
    run_id = excluded.run_id, scope = excluded.scope, priority = excluded.priority,
    run_after = excluded.run_after, parents = excluded.parents

-- name: stats
-- Settled records (every status but running) from the tally (migration_6): a sum over a
-- few rows per collection, however many records there are. Counted here: running
-- records, per collection (names found by a loose index scan, then a seek each: running
-- records are as many as are running now), and what depends on the clock, records past
-- their retention (an index range over expires_at, which holds fn and status) and running
-- records past their lease.
WITH RECURSIVE names(fn) AS (
    SELECT CASE WHEN %(fn)s::TEXT IS NULL
                THEN (SELECT t.fn FROM tasks AS t ORDER BY t.fn LIMIT 1)
                ELSE %(fn)s::TEXT END
    UNION ALL
    SELECT (SELECT t.fn FROM tasks AS t WHERE t.fn > names.fn ORDER BY t.fn LIMIT 1)
    FROM names WHERE names.fn IS NOT NULL AND %(fn)s::TEXT IS NULL),
tally AS (
    SELECT fn, status, SUM(count) AS count, SUM(size) AS size,
           MAX(last_activity) AS last_activity
    FROM tasks_tally WHERE (%(fn)s::TEXT IS NULL OR fn = %(fn)s)
    GROUP BY fn, status HAVING SUM(count) > 0),
expired AS (
    SELECT fn, status, COUNT(*) AS n FROM tasks
    WHERE expires_at IS NOT NULL AND expires_at <= %(now)s AND status <> 'running'
      AND (%(fn)s::TEXT IS NULL OR fn = %(fn)s)
    GROUP BY fn, status)
SELECT * FROM (
    SELECT t.fn, t.status, t.count::BIGINT, t.size::BIGINT, COALESCE(e.n, 0),
           t.last_activity
    FROM tally t LEFT JOIN expired e ON e.fn = t.fn AND e.status = t.status
    UNION ALL
    SELECT fn, status, COUNT(*),
           (COALESCE(SUM(size), 0) + COALESCE(SUM(args_size), 0))::BIGINT,
           COUNT(*) FILTER (WHERE lease_until IS NULL OR lease_until <= %(now)s),
           MAX(updated_at)
    FROM tasks WHERE fn IN (SELECT fn FROM names) AND status = 'running'
    GROUP BY fn, status) AS counted
ORDER BY fn COLLATE "C", status COLLATE "C"

-- name: stats_scan
-- Counted from the records themselves: Spots of schemas 2 to 5 read where they are
-- (readers never migrate), and the check of the tally. The size counts the stored
-- arguments too: they take room as results do.
SELECT fn, status, COUNT(*),
       (COALESCE(SUM(size), 0) + COALESCE(SUM(args_size), 0))::BIGINT,
       COUNT(*) FILTER (WHERE CASE WHEN status = 'running'
                                   THEN lease_until IS NULL OR lease_until <= %(now)s
                                   ELSE expires_at IS NOT NULL AND expires_at <= %(now)s END),
       MAX(updated_at)
FROM tasks WHERE (%(fn)s::TEXT IS NULL OR fn = %(fn)s)
GROUP BY fn, status ORDER BY fn COLLATE "C", status COLLATE "C"

-- name: stats_1
-- A ledger of schema 1, read where it is (readers never migrate): it has no args_size.
SELECT fn, status, COUNT(*),
       COALESCE(SUM(size), 0)::BIGINT,
       COUNT(*) FILTER (WHERE CASE WHEN status = 'running'
                                   THEN lease_until IS NULL OR lease_until <= %(now)s
                                   ELSE expires_at IS NOT NULL AND expires_at <= %(now)s END),
       MAX(updated_at)
FROM tasks WHERE (%(fn)s::TEXT IS NULL OR fn = %(fn)s)
GROUP BY fn, status ORDER BY fn COLLATE "C", status COLLATE "C"

-- name: error_stats
-- Failures with a fingerprint are grouped by (fingerprint, collection), the order of
-- tasks_failures, so the groups stream out of the index; grouping by an expression (the
-- fingerprint or else the error type) sorted every failure first, 3 to 10 times slower on
-- 100,000. Failures without one (older records) are grouped by their error type.
SELECT error_fingerprint, fn, MAX(error_type), COUNT(*),
       MIN(COALESCE(finished_at, updated_at)), MAX(COALESCE(finished_at, updated_at))
FROM tasks
WHERE status = 'failed' AND error_fingerprint IS NOT NULL
  AND (expires_at IS NULL OR expires_at > %(now)s) AND (%(fn)s::text IS NULL OR fn = %(fn)s)
GROUP BY error_fingerprint, fn
UNION ALL
SELECT COALESCE(error_type, 'Error'), fn, MAX(error_type), COUNT(*),
       MIN(COALESCE(finished_at, updated_at)), MAX(COALESCE(finished_at, updated_at))
FROM tasks
WHERE status = 'failed' AND error_fingerprint IS NULL
  AND (expires_at IS NULL OR expires_at > %(now)s) AND (%(fn)s::text IS NULL OR fn = %(fn)s)
GROUP BY 1, 2

-- name: blob_refs_first
-- Paged by key so no transaction stays open while the caller iterates.
SELECT key, blob, log_blob FROM tasks
WHERE blob IS NOT NULL OR log_blob IS NOT NULL
ORDER BY key LIMIT %(page)s

-- name: blob_refs_next
SELECT key, blob, log_blob FROM tasks
WHERE key > %(after)s AND (blob IS NOT NULL OR log_blob IS NOT NULL)
ORDER BY key LIMIT %(page)s

-- name: migration_3
-- Runs and their jobs (the run engine), beside tasks; the same tables and index names as
-- sqlite.sql. seq is FIFO order across the Spot. A job's parents are a JSON list (its
-- arguments, in order), and job_edges holds the same links by parent, so that a parent's done
-- counts down its children and a failure cancels its descendants in one indexed statement
-- each. waiting counts the distinct parents not done yet.
CREATE TABLE runs (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    cursor BIGINT NOT NULL DEFAULT 0,
    inputs_done BOOLEAN NOT NULL DEFAULT false,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION,
    error TEXT,
    options BYTEA,
    plan BYTEA
);
CREATE INDEX runs_name ON runs (name, created_at);
CREATE INDEX runs_created ON runs (created_at);
CREATE TABLE jobs (
    run_id TEXT COLLATE "C" NOT NULL,
    job_id TEXT COLLATE "C" NOT NULL,
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    node TEXT NOT NULL,
    step TEXT NOT NULL,
    status TEXT NOT NULL,
    waiting INTEGER NOT NULL DEFAULT 0,
    scope TEXT COLLATE "C" NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    run_after DOUBLE PRECISION NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    resets INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    lease_until DOUBLE PRECISION,
    task_key TEXT,
    output_key TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    parents TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    input BYTEA,
    PRIMARY KEY (run_id, job_id)
);
CREATE INDEX jobs_claim ON jobs (scope, priority DESC, run_after, seq)
    WHERE status IN ('queued', 'waiting');
CREATE INDEX jobs_leases ON jobs (lease_until) WHERE status = 'running';
-- No index by (run_id, status): every change of status would move its entry (a fifth of
-- the cost of a job's way through the store, measured), and counting a run is a scan of
-- its jobs either way, which the (run_id, job_id) key finds.
CREATE TABLE job_edges (
    run_id TEXT COLLATE "C" NOT NULL,
    parent TEXT COLLATE "C" NOT NULL,
    child TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (run_id, parent, child)
)

-- name: migration_4
-- Workers (hokuro worker): one row per process, its heartbeat and counts. Read as lost when
-- its heartbeat is too old (model/workers.py).
-- And the wake-up: a statement that makes jobs claimable (inserted queued, counted down,
-- retried, handed back) notifies channel <this Spot's schema> once, at commit (NOTIFY folds
-- repeats within a transaction). Workers LISTEN on it instead of polling. Statement-level
-- triggers over the transition table: one call per statement, whatever its size; a claim
-- (every row running) notifies nobody.
CREATE TABLE workers (
    id TEXT COLLATE "C" PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    scopes TEXT,
    concurrency INTEGER NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    heartbeat_at DOUBLE PRECISION NOT NULL,
    status TEXT NOT NULL,
    running INTEGER NOT NULL DEFAULT 0,
    done BIGINT NOT NULL DEFAULT 0,
    stopped_at DOUBLE PRECISION,
    every DOUBLE PRECISION NOT NULL
);
CREATE INDEX workers_started ON workers (started_at);
CREATE FUNCTION jobs_notify_ready() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM ready_rows WHERE status IN ('queued', 'waiting')) THEN
        PERFORM pg_notify(TG_TABLE_SCHEMA, '');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_ready_inserted AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS ready_rows
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_notify_ready();
CREATE TRIGGER jobs_ready_updated AFTER UPDATE ON jobs
    REFERENCING NEW TABLE AS ready_rows
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_notify_ready()

-- name: migration_5
-- Failures by fingerprint (hokuro errors, the dashboard's errors page): the GROUP BY of
-- error_stats reads this partial index alone (an index-only scan), not the whole table.
CREATE INDEX tasks_failures ON tasks (error_fingerprint, fn)
    INCLUDE (error_type, finished_at, updated_at, expires_at) WHERE status = 'failed'

-- name: migration_6
-- The tally: records and bytes per collection and status, kept by statement-level triggers
-- in the same transaction as every write, so that stats (the dashboard's collections page,
-- hokuro stats) reads a few rows instead of an index of every record (215 ms on
-- 1,000,000). Running records are left out: they are few (as many as run now) and stats
-- counts them when read, so a claim adds nothing here. Writers only ever INSERT into it: a delta row per (collection, status) that a
-- statement changed, so concurrent writers never wait on one counter row. Every 64th
-- statement folds the deltas into one row per (collection, status) under a try-lock, in
-- its own transaction's snapshot: rows other transactions add meanwhile are left for the
-- next fold. Readers sum what is there. {schema} names this Spot's schema, so the triggers
-- write into it whatever the writer's search_path.
-- And tasks_expires now holds fn and status, so that counting the expired records reads
-- that index alone; tasks_failures_newest orders failures by fingerprint, then newest
-- first, so that the newest example of an error is a seek, not a sort of all of them.
CREATE TABLE tasks_tally (
    fn TEXT NOT NULL,
    status TEXT NOT NULL,
    count BIGINT NOT NULL,
    size BIGINT NOT NULL,
    last_activity DOUBLE PRECISION
);
CREATE SEQUENCE tasks_tally_turns;
INSERT INTO tasks_tally (fn, status, count, size, last_activity)
SELECT fn, status, COUNT(*), COALESCE(SUM(size), 0) + COALESCE(SUM(args_size), 0),
       MAX(updated_at)
FROM tasks WHERE status <> 'running' GROUP BY fn, status;
CREATE FUNCTION tasks_tally_settle() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF nextval('{schema}.tasks_tally_turns') % 64 = 0
       AND pg_try_advisory_xact_lock(1752462924, hashtext('{schema}')) THEN
        WITH gone AS (DELETE FROM {schema}.tasks_tally RETURNING *)
        INSERT INTO {schema}.tasks_tally (fn, status, count, size, last_activity)
        SELECT fn, status, SUM(count), SUM(size), MAX(last_activity) FROM gone
        GROUP BY fn, status HAVING SUM(count) <> 0 OR SUM(size) <> 0;
    END IF;
END
$$;
CREATE FUNCTION tasks_tally_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {schema}.tasks_tally (fn, status, count, size, last_activity)
    SELECT fn, status, COUNT(*), COALESCE(SUM(size), 0) + COALESCE(SUM(args_size), 0),
           MAX(updated_at)
    FROM added WHERE status <> 'running' GROUP BY fn, status;
    PERFORM {schema}.tasks_tally_settle();
    RETURN NULL;
END
$$;
CREATE FUNCTION tasks_tally_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {schema}.tasks_tally (fn, status, count, size, last_activity)
    SELECT fn, status, -COUNT(*), -(COALESCE(SUM(size), 0) + COALESCE(SUM(args_size), 0)),
           NULL
    FROM removed WHERE status <> 'running' GROUP BY fn, status;
    PERFORM {schema}.tasks_tally_settle();
    RETURN NULL;
END
$$;
-- A renewed lease (lease_until alone) adds no row: nothing it counts moved.
CREATE FUNCTION tasks_tally_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {schema}.tasks_tally (fn, status, count, size, last_activity)
    SELECT fn, status, SUM(n), SUM(bytes), MAX(at) FROM (
        SELECT fn, status, -1 AS n, -(COALESCE(size, 0) + COALESCE(args_size, 0)) AS bytes,
               NULL::DOUBLE PRECISION AS at, updated_at AS was
        FROM old_rows WHERE status <> 'running'
        UNION ALL
        SELECT fn, status, 1, COALESCE(size, 0) + COALESCE(args_size, 0), updated_at, NULL
        FROM new_rows WHERE status <> 'running') moved
    GROUP BY fn, status
    HAVING SUM(n) <> 0 OR SUM(bytes) <> 0 OR MAX(at) > MAX(was);
    PERFORM {schema}.tasks_tally_settle();
    RETURN NULL;
END
$$;
-- TRUNCATE fires no row or statement trigger of its own kind: it empties the tally here.
CREATE FUNCTION tasks_tally_emptied() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {schema}.tasks_tally;
    RETURN NULL;
END
$$;
CREATE TRIGGER tasks_tally_emptied AFTER TRUNCATE ON tasks
    FOR EACH STATEMENT EXECUTE FUNCTION tasks_tally_emptied();
CREATE TRIGGER tasks_tally_added AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION tasks_tally_added();
CREATE TRIGGER tasks_tally_removed AFTER DELETE ON tasks
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION tasks_tally_removed();
CREATE TRIGGER tasks_tally_changed AFTER UPDATE ON tasks
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tasks_tally_changed();
DROP INDEX tasks_expires;
CREATE INDEX tasks_expires ON tasks (expires_at) INCLUDE (fn, status)
    WHERE expires_at IS NOT NULL;
CREATE INDEX tasks_failures_newest ON tasks (error_fingerprint, updated_at, key)
    WHERE status = 'failed'
