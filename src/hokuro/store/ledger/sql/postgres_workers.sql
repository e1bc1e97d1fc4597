-- PostgreSQL dialect of the workers' statements (the table and the wake-up trigger are made
-- by migration_4 of postgres.sql).

-- name: register_worker
INSERT INTO workers (id, host, pid, scopes, concurrency, started_at, heartbeat_at, status,
                     running, done, stopped_at, every)
VALUES (%(id)s, %(host)s, %(pid)s, %(scopes)s, %(concurrency)s, %(started_at)s,
        %(heartbeat_at)s, %(status)s, %(running)s, %(done)s, %(stopped_at)s, %(every)s)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, status = excluded.status

-- name: beat_worker
UPDATE workers SET heartbeat_at = %(now)s, running = %(running)s, done = %(done)s,
       status = coalesce(%(status)s::text, status),
       stopped_at = CASE WHEN %(status)s::text = 'stopped' THEN %(now)s ELSE stopped_at END
WHERE id = %(id)s

-- name: list_workers
SELECT id, host, pid, scopes, concurrency, started_at, heartbeat_at, status, running, done,
       stopped_at, every
FROM workers ORDER BY started_at DESC, id LIMIT %(limit)s

-- name: forget_workers
DELETE FROM workers WHERE status = 'stopped' AND stopped_at < %(before)s

-- name: next_due
-- When the first of these runs' jobs (in these scopes) is claimable: a queued or waiting job's run_after, or a
-- running job's lease running out (its owner gone).
SELECT least(
    (SELECT min(run_after) FROM jobs WHERE status IN ('queued', 'waiting')
       AND (%(runs)s::text[] IS NULL OR run_id = ANY(%(runs)s::text[]))
       AND (%(scopes)s::text[] IS NULL OR scope = ANY(%(scopes)s::text[]))),
    (SELECT min(lease_until) FROM jobs WHERE status = 'running'
       AND (%(runs)s::text[] IS NULL OR run_id = ANY(%(runs)s::text[]))
       AND (%(scopes)s::text[] IS NULL OR scope = ANY(%(scopes)s::text[]))))

-- name: finish_run
-- A run whose last job ended is done or failed, once (whoever ran that job).
UPDATE runs SET finished_at = %(now)s, updated_at = %(now)s,
       status = CASE WHEN EXISTS (SELECT 1 FROM jobs WHERE run_id = %(run_id)s
                                  AND status IN ('failed', 'cancelled'))
                     THEN 'failed' ELSE 'done' END
WHERE id = %(run_id)s AND status = %(was)s AND inputs_done
  AND NOT EXISTS (SELECT 1 FROM jobs WHERE run_id = %(run_id)s
                  AND status NOT IN ('done', 'failed', 'cancelled'))

-- name: take_job
-- Another executor takes over a job claimed for it (Celery: the dispatcher claimed it, a
-- Celery worker executes it), or one whose owner is gone: the job moves to %(owner)s under
-- a new lease; %(counted)s (0 or 1) adds an attempt when the previous owner had started it.
UPDATE jobs SET owner = %(owner)s, lease_until = %(lease_until)s, updated_at = %(now)s,
       attempts = attempts + %(counted)s
WHERE run_id = %(run_id)s AND job_id = %(job_id)s AND status = 'running'
  AND owner = %(expected)s
RETURNING {job_columns}
