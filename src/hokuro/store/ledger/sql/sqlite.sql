-- SQLite dialect of the ledger. Timestamps are epoch seconds (REAL).

-- name: create_meta
CREATE TABLE IF NOT EXISTS hokuro_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
)

-- name: get_schema_version
SELECT value FROM hokuro_meta WHERE name = 'schema_version'

-- name: set_schema_version
INSERT INTO hokuro_meta (name, value) VALUES ('schema_version', ?)
ON CONFLICT (name) DO UPDATE SET value = excluded.value

-- name: get_meta
SELECT value FROM hokuro_meta WHERE name = ?

-- name: set_meta
INSERT INTO hokuro_meta (name, value) VALUES (?, ?)
ON CONFLICT (name) DO UPDATE SET value = excluded.value

-- name: migration_1
CREATE TABLE tasks (
    -- Small columns first: SQLite reads a row front to back, so scans that need only these
    -- (stats, listings) never walk the overflow pages of a large result, args or log.
    key TEXT PRIMARY KEY,
    fn TEXT NOT NULL,
    status TEXT NOT NULL,
    fn_path TEXT,
    ident TEXT,
    version TEXT,
    blob TEXT,
    codec TEXT,
    content_type TEXT,
    size INTEGER,
    checksum TEXT,
    error_type TEXT,
    error_fingerprint TEXT,
    log_blob TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    lease_until REAL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    updated_at REAL NOT NULL,
    expires_at REAL,
    run_id TEXT,
    scope TEXT,
    priority INTEGER,
    run_after REAL,
    parents TEXT,
    args BLOB,
    error TEXT,
    log TEXT,
    result BLOB
);
-- Covers stats (no table reads on 1,000,000 rows) and listings by collection and status.
CREATE INDEX tasks_fn_status ON tasks (fn, status, updated_at, size, expires_at, lease_until);
CREATE INDEX tasks_updated ON tasks (updated_at);
CREATE INDEX tasks_expires ON tasks (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX tasks_fingerprint ON tasks (error_fingerprint) WHERE error_fingerprint IS NOT NULL;
CREATE INDEX tasks_ident ON tasks (fn, ident) WHERE ident IS NOT NULL;
CREATE INDEX tasks_run ON tasks (run_id, status) WHERE run_id IS NOT NULL;
CREATE INDEX tasks_queue ON tasks (scope, priority DESC, run_after) WHERE status = 'queued'

-- name: migration_2
-- Stats count the stored arguments too. Their size is a virtual column in the covering
-- index, so stats still reads the index alone (length(args) would read every row, 12x
-- slower on 1,000,000 records).
ALTER TABLE tasks ADD COLUMN args_size INTEGER GENERATED ALWAYS AS (length(args)) VIRTUAL;
DROP INDEX tasks_fn_status;
CREATE INDEX tasks_fn_status ON tasks (fn, status, updated_at, size, expires_at, lease_until, args_size)

-- name: lookup
SELECT {lookup_columns}
FROM tasks WHERE key = ?

-- name: get
SELECT {record_columns}
FROM tasks WHERE key = ?

-- name: claim_insert
INSERT INTO tasks (key, fn, status, fn_path, ident, args, version, attempts, owner,
                   lease_until, created_at, started_at, updated_at)
VALUES (:key, :fn, 'running', :fn_path, :ident, :args, :version, 1, :owner,
        :lease_until, :now, :now, :now)
ON CONFLICT (key) DO NOTHING

-- name: claim_update
UPDATE tasks SET status = 'running', fn = :fn, fn_path = :fn_path, ident = :ident,
       args = :args, version = :version, attempts = attempts + 1, owner = :owner,
       lease_until = :lease_until, started_at = :now, finished_at = NULL, updated_at = :now
WHERE key = :key

-- name: renew
UPDATE tasks SET lease_until = ?
WHERE key = ? AND owner = ? AND status = 'running'

-- name: finish
UPDATE tasks SET status = :status, result = :result, blob = :blob, codec = :codec,
       content_type = :content_type, size = :size, checksum = :checksum,
       error_type = :error_type, error = :error, error_fingerprint = :error_fingerprint,
       log = :log, log_blob = :log_blob, finished_at = :finished_at,
       updated_at = :finished_at, expires_at = :expires_at, lease_until = NULL
WHERE key = :key AND owner = :owner AND status = 'running'

-- name: delete
DELETE FROM tasks WHERE key = ?
RETURNING {record_columns}

-- name: put
-- An upsert, not INSERT OR REPLACE: the delete of a replace fires no trigger, and the
-- tally (migration_6) would go on counting the row it replaced.
INSERT INTO tasks (
    key, fn, status, fn_path, ident, args, version, result, blob, codec, content_type, size,
    checksum, error_type, error, error_fingerprint, log, log_blob, attempts, owner,
    lease_until, created_at, started_at, finished_at, updated_at, expires_at, run_id,
    scope, priority, run_after, parents)
VALUES (
    :key, :fn, :status, :fn_path, :ident, :args, :version, :result, :blob, :codec,
    :content_type, :size, :checksum, :error_type, :error, :error_fingerprint, :log,
    :log_blob, :attempts, :owner, :lease_until, :created_at, :started_at, :finished_at,
    :updated_at, :expires_at, :run_id, :scope, :priority, :run_after, :parents)
ON CONFLICT (key) DO UPDATE SET
    fn = excluded.fn, status = excluded.status, fn_path = excluded.fn_path,
    ident = excluded.ident, args = excluded.args, version = excluded.version,
    result = excluded.result, blob = excluded.blob, codec = excluded.codec,
    content_type = excluded.content_type, size = excluded.size, checksum = excluded.checksum,
    error_type = excluded.error_type, error = excluded.error, error_fingerprint = excluded.error_fingerprint,
    log = excluded.log, log_blob = excluded.log_blob, attempts = excluded.attempts,
    owner = excluded.owner, lease_until = excluded.lease_until, created_at = excluded.created_at,
    started_at = excluded.started_at, finished_at = excluded.finished_at, updated_at = excluded.updated_at,
    expires_at = excluded.expires_at, run_id = excluded.run_id, scope = excluded.scope,
    priority = excluded.priority, run_after = excluded.run_after, parents = excluded.parents

-- name: stats
-- Settled records (every status but running) from the tally (migration_6): a few rows per
-- collection, however many records there are. Counted here: running records, per
-- collection (names found by a loose index scan, then a seek each: running records are as
-- many as are running now), and what depends on the clock, records past their retention
-- (an index range over expires_at, which holds fn and status) and running records past
-- their lease.
WITH RECURSIVE names(fn) AS (
    SELECT CASE WHEN :fn IS NULL THEN (SELECT MIN(fn) FROM tasks) ELSE :fn END
    UNION ALL
    SELECT (SELECT MIN(fn) FROM tasks WHERE fn > names.fn) FROM names
    WHERE names.fn IS NOT NULL AND :fn IS NULL),
running AS (
    SELECT fn, status, COUNT(*) AS count,
           COALESCE(SUM(size), 0) + COALESCE(SUM(args_size), 0) AS size,
           SUM(lease_until IS NULL OR lease_until <= :now) AS late, MAX(updated_at) AS last
    FROM tasks WHERE fn IN (SELECT fn FROM names) AND status = 'running'
    GROUP BY fn),
expired AS (
    -- (IS NOT NULL tells the planner that the partial index tasks_expires serves.)
    SELECT fn, status, COUNT(*) AS n FROM tasks
    WHERE expires_at IS NOT NULL AND expires_at <= :now AND status <> 'running'
      AND (:fn IS NULL OR fn = :fn)
    GROUP BY fn, status)
SELECT tally.fn, tally.status, tally.count, tally.size, COALESCE(e.n, 0), tally.last_activity
FROM tasks_tally AS tally LEFT JOIN expired e ON e.fn = tally.fn AND e.status = tally.status
WHERE tally.count > 0 AND (:fn IS NULL OR tally.fn = :fn)
UNION ALL
SELECT fn, status, count, size, late, last FROM running
ORDER BY 1, 2

-- name: stats_scan
-- Counted from the records themselves: ledgers of schemas 2 to 5 read where they are
-- (readers never migrate), and the check of the tally. The size counts the stored
-- arguments too: they take room as results do.
SELECT fn, status, COUNT(*), COALESCE(SUM(size), 0) + COALESCE(SUM(args_size), 0),
       SUM(CASE WHEN status = 'running' THEN lease_until IS NULL OR lease_until <= :now
                ELSE expires_at IS NOT NULL AND expires_at <= :now END),
       MAX(updated_at)
FROM tasks WHERE (:fn IS NULL OR fn = :fn) GROUP BY fn, status ORDER BY fn, status

-- name: stats_1
-- A ledger of schema 1, read where it is (readers never migrate): it has no args_size.
SELECT fn, status, COUNT(*), COALESCE(SUM(size), 0),
       SUM(CASE WHEN status = 'running' THEN lease_until IS NULL OR lease_until <= :now
                ELSE expires_at IS NOT NULL AND expires_at <= :now END),
       MAX(updated_at)
FROM tasks WHERE (:fn IS NULL OR fn = :fn) GROUP BY fn, status ORDER BY fn, status

-- name: error_stats
-- Failures with a fingerprint are grouped by (fingerprint, collection), the order of
-- tasks_failures, so the groups stream out of the index; grouping by an expression (the
-- fingerprint or else the error type) sorted every failure first, 3 to 10 times slower on
-- 100,000. Failures without one (older records) are grouped by their error type.
SELECT error_fingerprint, fn, MAX(error_type), COUNT(*),
       MIN(COALESCE(finished_at, updated_at)), MAX(COALESCE(finished_at, updated_at))
FROM tasks
WHERE status = 'failed' AND error_fingerprint IS NOT NULL
  AND (expires_at IS NULL OR expires_at > :now) AND (:fn IS NULL OR fn = :fn)
GROUP BY error_fingerprint, fn
UNION ALL
SELECT COALESCE(error_type, 'Error'), fn, MAX(error_type), COUNT(*),
       MIN(COALESCE(finished_at, updated_at)), MAX(COALESCE(finished_at, updated_at))
FROM tasks
WHERE status = 'failed' AND error_fingerprint IS NULL
  AND (expires_at IS NULL OR expires_at > :now) AND (:fn IS NULL OR fn = :fn)
GROUP BY 1, 2

-- name: blob_refs
SELECT key, blob, log_blob FROM tasks
WHERE key > :after AND (blob IS NOT NULL OR log_blob IS NOT NULL)
ORDER BY key LIMIT :page

-- name: migration_3
-- Runs and their jobs (the run engine), beside tasks. seq is the rowid: FIFO order across
-- the ledger, and the claim statement updates jobs by rowid. A job's parents are a JSON
-- list (its arguments, in order), and job_edges holds the same links by parent, so that a
-- parent's done counts down its children and a failure cancels its descendants in one
-- indexed statement each. waiting counts the distinct parents not done yet.
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    cursor INTEGER NOT NULL DEFAULT 0,
    inputs_done INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL,
    error TEXT,
    options BLOB,
    plan BLOB
);
CREATE INDEX runs_name ON runs (name, created_at);
CREATE INDEX runs_created ON runs (created_at);
CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    node TEXT NOT NULL,
    step TEXT NOT NULL,
    status TEXT NOT NULL,
    waiting INTEGER NOT NULL DEFAULT 0,
    scope TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    run_after REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    resets INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    lease_until REAL,
    task_key TEXT,
    output_key TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    parents TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    input BLOB,
    UNIQUE (run_id, job_id)
);
CREATE INDEX jobs_claim ON jobs (scope, priority DESC, run_after, seq)
    WHERE status IN ('queued', 'waiting');
CREATE INDEX jobs_leases ON jobs (lease_until) WHERE status = 'running';
-- No index by (run_id, status): every change of status would move its entry (a fifth of
-- the cost of a job's way through the store, measured), and counting a run is a scan of
-- its jobs either way, which the (run_id, job_id) key finds.
CREATE TABLE job_edges (
    run_id TEXT NOT NULL,
    parent TEXT NOT NULL,
    child TEXT NOT NULL,
    PRIMARY KEY (run_id, parent, child)
) WITHOUT ROWID

-- name: migration_4
-- Workers (hokuro worker): one row per process, its heartbeat and counts. Read as lost when
-- its heartbeat is too old (model/workers.py).
CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    scopes TEXT,
    concurrency INTEGER NOT NULL,
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    status TEXT NOT NULL,
    running INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0,
    stopped_at REAL,
    every REAL NOT NULL
);
CREATE INDEX workers_started ON workers (started_at)

-- name: migration_5
-- Failures by fingerprint (hokuro errors, the dashboard's errors page): the GROUP BY of
-- error_stats reads this partial index alone, not the whole table.
CREATE INDEX tasks_failures ON tasks (error_fingerprint, fn, error_type, finished_at,
                                      updated_at, expires_at) WHERE status = 'failed'

-- name: migration_6
-- The tally: records and bytes per collection and status, kept by triggers in the same
-- transaction as every write, so that stats (the dashboard's collections page, hokuro
-- stats) reads a few rows instead of an index of every record (295 ms on 1,000,000).
-- Running records are left out: they are few (as many as run now) and stats counts them
-- when read, so a task's claim writes nothing here and its finish one row. A row whose
-- count falls to 0 stays (stats skips it). last_activity is the latest updated_at that
-- entered the row. And tasks_expires now holds fn and status, so that counting the
-- expired records reads that index alone; tasks_failures_newest orders failures by
-- fingerprint, then newest first, so that the newest example of an error is a seek (the
-- errors page read all 33,000 failures of a fingerprint to sort them, 38 ms each).
CREATE TABLE tasks_tally (
    fn TEXT NOT NULL,
    status TEXT NOT NULL,
    count INTEGER NOT NULL,
    size INTEGER NOT NULL,
    last_activity REAL,
    PRIMARY KEY (fn, status)
) WITHOUT ROWID;
INSERT INTO tasks_tally (fn, status, count, size, last_activity)
SELECT fn, status, COUNT(*), COALESCE(SUM(size), 0) + COALESCE(SUM(args_size), 0),
       MAX(updated_at)
FROM tasks WHERE status <> 'running' GROUP BY fn, status;
CREATE TRIGGER tasks_tally_added AFTER INSERT ON tasks WHEN new.status <> 'running'
BEGIN
    INSERT INTO tasks_tally (fn, status, count, size, last_activity)
    VALUES (new.fn, new.status, 1, COALESCE(new.size, 0) + COALESCE(new.args_size, 0),
            new.updated_at)
    ON CONFLICT (fn, status) DO UPDATE SET
        count = count + 1, size = size + excluded.size,
        last_activity = MAX(COALESCE(last_activity, excluded.last_activity),
                            excluded.last_activity);
END;
CREATE TRIGGER tasks_tally_removed AFTER DELETE ON tasks WHEN old.status <> 'running'
BEGIN
    UPDATE tasks_tally
    SET count = count - 1, size = size - COALESCE(old.size, 0) - COALESCE(old.args_size, 0)
    WHERE fn = old.fn AND status = old.status;
END;
-- An update moves a record out of its (collection, status) and into the new one, each
-- side only when it is not running. A renewed lease (lease_until alone) fires nothing.
CREATE TRIGGER tasks_tally_left AFTER UPDATE OF fn, status, size, args, updated_at ON tasks
WHEN old.status <> 'running'
     AND (old.fn IS NOT new.fn OR old.status IS NOT new.status OR old.size IS NOT new.size
          OR old.args_size IS NOT new.args_size OR old.updated_at IS NOT new.updated_at)
BEGIN
    UPDATE tasks_tally
    SET count = count - 1, size = size - COALESCE(old.size, 0) - COALESCE(old.args_size, 0)
    WHERE fn = old.fn AND status = old.status;
END;
CREATE TRIGGER tasks_tally_entered AFTER UPDATE OF fn, status, size, args, updated_at ON tasks
WHEN new.status <> 'running'
     AND (old.fn IS NOT new.fn OR old.status IS NOT new.status OR old.size IS NOT new.size
          OR old.args_size IS NOT new.args_size OR old.updated_at IS NOT new.updated_at)
BEGIN
    INSERT INTO tasks_tally (fn, status, count, size, last_activity)
    VALUES (new.fn, new.status, 1, COALESCE(new.size, 0) + COALESCE(new.args_size, 0),
            new.updated_at)
    ON CONFLICT (fn, status) DO UPDATE SET
        count = count + 1, size = size + excluded.size,
        last_activity = MAX(COALESCE(last_activity, excluded.last_activity),
                            excluded.last_activity);
END;
DROP INDEX tasks_expires;
CREATE INDEX tasks_expires ON tasks (expires_at, fn, status) WHERE expires_at IS NOT NULL;
CREATE INDEX tasks_failures_newest ON tasks (error_fingerprint, updated_at, key)
    WHERE status = 'failed'
