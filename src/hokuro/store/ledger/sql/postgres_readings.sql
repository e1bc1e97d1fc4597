-- Reads for people (the dashboard): finished tasks per time bucket, and the jobs waiting in
-- each queue lane. Each statement reads through an existing index; none writes.

-- name: throughput
-- Finished tasks per bucket of updated_at (a task's finish sets it), through tasks_updated.
SELECT floor(updated_at / %(bucket)s)::bigint, status, COUNT(*)
FROM tasks
WHERE updated_at >= %(since)s AND status IN ('done', 'failed')
GROUP BY 1, 2

-- name: throughput_fn
-- One collection: the index (fn, status, updated_at) answers it.
SELECT floor(updated_at / %(bucket)s)::bigint, status, COUNT(*)
FROM tasks
WHERE fn = %(fn)s AND status IN ('done', 'failed') AND updated_at >= %(since)s
GROUP BY 1, 2

-- name: queue_depths
-- Claimable now (run_after passed) and later, per scope and priority: jobs_claim covers it.
SELECT scope, priority, COUNT(*) FILTER (WHERE run_after <= %(now)s),
       COUNT(*) FILTER (WHERE run_after > %(now)s), MIN(run_after)
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
    (SELECT fn, 1 FROM tasks ORDER BY fn LIMIT 1)
    UNION ALL
    SELECT (SELECT t.fn FROM tasks AS t WHERE t.fn > names.fn ORDER BY t.fn LIMIT 1), n + 1
    FROM names WHERE names.fn IS NOT NULL AND n < %(limit)s
)
SELECT fn FROM names WHERE fn IS NOT NULL
