-- SQLite dialect of the workers' statements (the table is made by migration_4 of sqlite.sql).

-- name: register_worker
INSERT INTO workers (id, host, pid, scopes, concurrency, started_at, heartbeat_at, status,
                     running, done, stopped_at, every)
VALUES (:id, :host, :pid, :scopes, :concurrency, :started_at, :heartbeat_at, :status,
        :running, :done, :stopped_at, :every)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, status = excluded.status

-- name: beat_worker
UPDATE workers SET heartbeat_at = :now, running = :running, done = :done,
       status = coalesce(:status, status),
       stopped_at = CASE WHEN :status = 'stopped' THEN :now ELSE stopped_at END
WHERE id = :id

-- name: list_workers
SELECT id, host, pid, scopes, concurrency, started_at, heartbeat_at, status, running, done,
       stopped_at, every
FROM workers ORDER BY started_at DESC, id LIMIT :limit

-- name: forget_workers
DELETE FROM workers WHERE status = 'stopped' AND stopped_at < :before

-- name: next_due
-- When the first of these runs' jobs (in these scopes) is claimable: a queued or waiting job's run_after, or a
-- running job's lease running out (its owner gone). Through jobs_claim and jobs_leases.
SELECT min(t) FROM (
    SELECT min(run_after) AS t FROM jobs
    WHERE status IN ('queued', 'waiting')
      AND (:runs IS NULL OR +run_id IN (SELECT value FROM json_each(:runs)))
      AND (:scopes IS NULL OR scope IN (SELECT value FROM json_each(:scopes)))
    UNION ALL
    SELECT min(lease_until) FROM jobs
    WHERE status = 'running'
      AND (:runs IS NULL OR +run_id IN (SELECT value FROM json_each(:runs)))
      AND (:scopes IS NULL OR scope IN (SELECT value FROM json_each(:scopes)))
)

-- name: finish_run
-- A run whose last job ended is done or failed, once (whoever ran that job).
UPDATE runs SET finished_at = :now, updated_at = :now,
       status = CASE WHEN EXISTS (SELECT 1 FROM jobs WHERE run_id = :run_id
                                  AND status IN ('failed', 'cancelled'))
                     THEN 'failed' ELSE 'done' END
WHERE id = :run_id AND status = :was AND inputs_done = 1
  AND NOT EXISTS (SELECT 1 FROM jobs WHERE run_id = :run_id
                  AND status NOT IN ('done', 'failed', 'cancelled'))

-- name: take_job
-- Another executor takes over a job claimed for it (Celery: the dispatcher claimed it, a
-- Celery worker executes it), or one whose owner is gone: the job moves to :owner under a
-- new lease; :counted (0 or 1) adds an attempt when the previous owner had started it.
UPDATE jobs SET owner = :owner, lease_until = :lease_until, updated_at = :now,
       attempts = attempts + :counted
WHERE run_id = :run_id AND job_id = :job_id AND status = 'running' AND owner = :expected
RETURNING {job_columns}
