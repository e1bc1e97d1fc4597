-- Reads for people (the dashboard): finished tasks per time bucket, and the jobs waiting in
-- each queue lane. Each statement reads through an existing index; none writes.

-- name: throughput
-- Finished tasks per bucket of updated_at (a task's finish sets it), through tasks_updated.
SELECT CAST(updated_at / :bucket AS INTEGER), status, COUNT(*)
FROM tasks
WHERE updated_at >= :since AND status IN ('done', 'failed')
GROUP BY 1, 2

-- name: throughput_fn
-- One collection: the covering index (fn, status, updated_at) alone answers it.
SELECT CAST(updated_at / :bucket AS INTEGER), status, COUNT(*)
FROM tasks
WHERE fn = :fn AND status IN ('done', 'failed') AND updated_at >= :since
GROUP BY 1, 2

-- name: queue_depths
-- Claimable now (run_after passed) and later, per scope and priority: jobs_claim covers it.
SELECT scope, priority, SUM(run_after <= :now), SUM(run_after > :now), MIN(run_after)
FROM jobs
WHERE status IN ('queued', 'waiting')
GROUP BY scope, priority
ORDER BY scope, priority DESC

-- name: running_jobs
-- Jobs held by an owner now, per scope and owner (few: the workers' concurrency).
SELECT scope, owner, COUNT(*), MIN(lease_until)
FROM jobs
WHERE status = 'running'
GROUP BY scope, owner
ORDER BY scope, owner

-- name: collections
-- The collection names, one index seek each (a loose index scan of tasks_fn_status): a
-- handful of steps however many records there are, where DISTINCT would read them all.
WITH RECURSIVE names(fn, n) AS (
    SELECT MIN(fn), 1 FROM tasks
    UNION ALL
    SELECT (SELECT MIN(fn) FROM tasks WHERE fn > names.fn), n + 1 FROM names
    WHERE names.fn IS NOT NULL AND n < :limit
)
SELECT fn FROM names WHERE fn IS NOT NULL
