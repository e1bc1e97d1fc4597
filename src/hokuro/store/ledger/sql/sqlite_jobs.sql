-- SQLite dialect of the run engine's statements: runs, jobs, and the batch task operations
-- the executor needs. The tables are made by migration_3 in sqlite.sql. Every write runs
-- inside BEGIN IMMEDIATE (see sqlite_jobs.py). Lists are passed as one JSON parameter and
-- read with json_each: one statement per batch, whatever its size.

-- name: create_run
INSERT INTO runs (id, name, status, cursor, inputs_done, created_at, updated_at, finished_at,
                  error, options, plan)
VALUES (:id, :name, :status, :cursor, :inputs_done, :created_at, :updated_at, :finished_at,
        :error, :options, :plan)

-- name: get_run
SELECT {run_columns} FROM runs WHERE id = ?

-- name: find_unfinished_run
SELECT {run_columns} FROM runs
WHERE name = :name AND status IN (SELECT value FROM json_each(:statuses))
ORDER BY created_at DESC, id DESC LIMIT 1

-- name: list_runs
SELECT {run_columns} FROM runs
WHERE (:status IS NULL OR status = :status)
ORDER BY created_at DESC, id DESC LIMIT :limit

-- name: update_run
-- One statement for any subset of the fields: each is written only when its flag is set.
UPDATE runs SET
    status = CASE WHEN :set_status THEN :status ELSE status END,
    cursor = CASE WHEN :set_cursor THEN :cursor ELSE cursor END,
    inputs_done = CASE WHEN :set_inputs_done THEN :inputs_done ELSE inputs_done END,
    finished_at = CASE WHEN :set_finished_at THEN :finished_at ELSE finished_at END,
    error = CASE WHEN :set_error THEN :error ELSE error END,
    updated_at = :updated_at
WHERE id = :id

-- name: run_status
-- A run's status, read in the transaction that inserts its jobs: a cancelled run takes no
-- new jobs (SQLite's writers take turns, so a cancel is wholly before or after).
SELECT status FROM runs WHERE id = :run_id

-- name: done_among
-- Which of these jobs of a run are done (the parents of jobs being inserted).
SELECT job_id FROM jobs
WHERE run_id = :run_id AND status = 'done'
  AND job_id IN (SELECT value FROM json_each(:job_ids))

-- name: insert_job
-- An existing job is left as it is: a resumed run never duplicates or resets a job.
-- A job whose task is already done comes in done, with its task and output keys.
INSERT INTO jobs (run_id, job_id, node, step, status, waiting, scope, priority, run_after,
                  created_at, updated_at, parents, input, task_key, output_key)
-- Numbered parameters, given as tuples: binding a dict of names costs more than the row's
-- insert does.
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12, ?13, ?14)
ON CONFLICT (run_id, job_id) DO NOTHING

-- name: insert_edge
INSERT INTO job_edges (run_id, parent, child) VALUES (?, ?, ?)
ON CONFLICT DO NOTHING

-- name: claim_jobs
-- Claimable: queued or waiting with run_after passed (through jobs_claim), or running under
-- an expired lease (through jobs_leases). Each lane (a scope of the list given, or, with no
-- list, every scope that has claimable jobs, found by a skip scan of jobs_claim) gives its
-- first :limit jobs in index order; the best :limit of those are claimed. So no claim sorts
-- more than (lanes x limit) rows, however many jobs wait. :runs (a JSON list, or NULL)
-- keeps to those runs: a worker serves submitted runs only.
WITH RECURSIVE
given(pos, scope) AS (SELECT key, value FROM json_each(:scopes)),
present(scope) AS (
    SELECT (SELECT min(scope) FROM jobs WHERE status IN ('queued', 'waiting'))
    WHERE :scopes IS NULL
    UNION ALL
    SELECT (SELECT min(j.scope) FROM jobs j
            WHERE j.status IN ('queued', 'waiting') AND j.scope > p.scope)
    FROM present p WHERE p.scope IS NOT NULL
),
lanes(pos, scope) AS (
    SELECT pos, scope FROM given
    UNION ALL SELECT 0, scope FROM present WHERE scope IS NOT NULL
),
ready(pos, seq, priority, run_after) AS (
    SELECT l.pos, j.seq, j.priority, j.run_after
    FROM lanes l JOIN jobs j ON j.seq IN (
        SELECT c.seq FROM jobs c
        WHERE c.scope = l.scope AND c.status IN ('queued', 'waiting')
          AND c.run_after <= :now AND (:run_id IS NULL OR c.run_id = :run_id)
          AND (:runs IS NULL OR c.run_id IN (SELECT value FROM json_each(:runs)))
        ORDER BY c.priority DESC, c.run_after, c.seq LIMIT :limit)
    UNION ALL
    SELECT coalesce((SELECT min(g.pos) FROM given g WHERE g.scope = e.scope), 0),
           e.seq, e.priority, e.run_after
    FROM jobs e
    WHERE e.status = 'running' AND e.lease_until <= :now
      AND (:scopes IS NULL OR e.scope IN (SELECT scope FROM given))
      AND (:run_id IS NULL OR e.run_id = :run_id)
      AND (:runs IS NULL OR e.run_id IN (SELECT value FROM json_each(:runs)))
)
UPDATE jobs SET status = 'running', owner = :owner, lease_until = :lease_until,
       attempts = attempts + 1, updated_at = :now
WHERE seq IN (SELECT seq FROM ready ORDER BY pos, priority DESC, run_after, seq LIMIT :limit)
RETURNING {job_columns}

-- name: renew_job
UPDATE jobs SET lease_until = :lease_until
WHERE run_id = :run_id AND job_id = :job_id AND owner = :owner AND status = 'running'

-- name: release_job
-- Handed back unfinished (Ctrl-C, SIGTERM): the claim does not count as an attempt.
UPDATE jobs SET status = 'queued', attempts = attempts - 1, lease_until = NULL,
       updated_at = :now
WHERE run_id = :run_id AND job_id = :job_id AND owner = :owner AND status = 'running'

-- name: job_done
-- The outcomes below are fenced: written only while this owner's claim of this attempt
-- still holds the job. The owner stays on the row: who ran it last.
UPDATE jobs SET status = 'done', task_key = :task_key, output_key = :output_key,
       error = NULL, lease_until = NULL, updated_at = :now
WHERE run_id = :run_id AND job_id = :job_id AND owner = :owner AND attempts = :attempt
  AND status = 'running'

-- name: job_waiting
-- Not ready yet (Pending): claimable again at run_after. A poll is not an attempt, so the
-- claim's attempt is given back (attempts counts executions that ended in an error or a
-- result, which is what retries are capped by).
UPDATE jobs SET status = 'waiting', run_after = :run_after, attempts = attempts - 1,
       task_key = coalesce(:task_key, task_key), error = NULL, lease_until = NULL,
       updated_at = :now
WHERE run_id = :run_id AND job_id = :job_id AND owner = :owner AND attempts = :attempt
  AND status = 'running'

-- name: job_queued
-- A retry after backoff: the attempt counts; the error that caused it is kept for show.
UPDATE jobs SET status = 'queued', run_after = :run_after, error = :error,
       task_key = coalesce(:task_key, task_key), lease_until = NULL, updated_at = :now
WHERE run_id = :run_id AND job_id = :job_id AND owner = :owner AND attempts = :attempt
  AND status = 'running'

-- name: job_failed
UPDATE jobs SET status = 'failed', error = :error, task_key = coalesce(:task_key, task_key),
       lease_until = NULL, updated_at = :now
WHERE run_id = :run_id AND job_id = :job_id AND owner = :owner AND attempts = :attempt
  AND status = 'running'

-- name: job_cancelled
UPDATE jobs SET status = 'cancelled', error = :error,
       task_key = coalesce(:task_key, task_key), lease_until = NULL, updated_at = :now
WHERE run_id = :run_id AND job_id = :job_id AND owner = :owner AND attempts = :attempt
  AND status = 'running'

-- name: job_holds
-- The fence alone, for a reset (whose writes follow from the chain).
SELECT 1 FROM jobs
WHERE run_id = :run_id AND job_id = :job_id AND owner = :owner AND attempts = :attempt
  AND status = 'running'

-- name: count_down
-- Parents of a run are done: their blocked children wait for that many parents less; at
-- none they are queued. (+status: the children are found by id through the edges.)
UPDATE jobs SET waiting = waiting - d.n,
       status = CASE WHEN waiting <= d.n THEN 'queued' ELSE status END, updated_at = :now
FROM (SELECT e.child, count(*) AS n
      FROM json_each(:job_ids) p
      JOIN job_edges e ON e.run_id = :run_id AND e.parent = p.value
      GROUP BY e.child) d
WHERE jobs.run_id = :run_id AND jobs.job_id = d.child AND +jobs.status = 'blocked'

-- name: cancel_below
-- Every descendant not finished is cancelled (a failed or cancelled job's chain).
WITH RECURSIVE below(job_id) AS (
    SELECT child FROM job_edges WHERE run_id = :run_id AND parent = :job_id
    UNION
    SELECT e.child FROM below b JOIN job_edges e ON e.run_id = :run_id AND e.parent = b.job_id
)
UPDATE jobs SET status = 'cancelled', error = :error, lease_until = NULL, updated_at = :now
WHERE run_id = :run_id AND job_id IN (SELECT job_id FROM below)
  AND status NOT IN ('done', 'failed', 'cancelled')

-- name: chain_above
-- A job and all its ancestors: the chain a reset restarts.
WITH RECURSIVE above(job_id) AS (
    SELECT :job_id
    UNION
    SELECT p.value FROM above a JOIN jobs j ON j.run_id = :run_id AND j.job_id = a.job_id,
         json_each(j.parents) p
)
SELECT j.job_id, j.status, j.parents, j.resets
FROM above a JOIN jobs j ON j.run_id = :run_id AND j.job_id = a.job_id

-- name: wait_again
-- A done parent goes back to work (a reset): its blocked children outside the chain wait
-- for it again. (The chain's own members are done or running here, never blocked.)
UPDATE jobs SET waiting = waiting + 1, updated_at = :now
WHERE run_id = :run_id AND status = 'blocked'
  AND job_id IN (SELECT child FROM job_edges WHERE run_id = :run_id AND parent = :job_id)

-- name: reset_job
UPDATE jobs SET status = :status, waiting = :waiting, resets = :resets, attempts = 0,
       run_after = :now, task_key = NULL, output_key = NULL, error = NULL,
       lease_until = NULL, updated_at = :now
WHERE run_id = :run_id AND job_id = :job_id

-- name: run_counts
SELECT node, status, COUNT(*) FROM jobs WHERE run_id = ? GROUP BY node, status

-- name: next_wake
-- Through jobs_claim (+run_id): the jobs still to claim, not every job of the run.
SELECT MIN(run_after) FROM jobs WHERE +run_id = ? AND status IN ('queued', 'waiting')

-- name: get_jobs
SELECT {job_columns} FROM jobs
WHERE run_id = :run_id AND job_id IN (SELECT value FROM json_each(:job_ids))
ORDER BY seq

-- name: node_results
-- The jobs of one node of a run with what a reader of their results needs of the task each
-- one's output names: its step, and its codec, blob and inline result (NULL when the output
-- is an input passed on, or gone). A run's results in one pass, reading no more columns
-- than the common case needs (a result kept inline, decoded at once); the rest read their
-- record apart. In no set order: the caller puts them in input order (ordering by seq here
-- sorted every row, results and all: nearly half the statement's time for 10,000 jobs).
SELECT j.job_id, j.status, j.step, j.error, j.output_key, t.fn, t.codec, t.blob, t.result
FROM jobs j LEFT JOIN tasks t ON t.key = j.output_key
WHERE j.run_id = :run_id AND j.node = :node

-- name: find_jobs
-- Pages in job id order, each a seek in the (run_id, job_id) key: a page in seq order
-- read every job of the run and sorted them, for each page of a large run.
SELECT {job_columns} FROM jobs
WHERE run_id = :run_id AND (:status IS NULL OR status = :status) AND job_id > :after
ORDER BY job_id LIMIT :page

-- name: reusable_tasks
-- Which of these tasks hold a result a run may reuse now (done, not past retention), with
-- whether that result is an inline None (the job passes its input on: msgpack's nil) and
-- how long it once took: three columns, no record, for a window of thousands of keys.
SELECT key, blob IS NULL AND result = x'c0', coalesce(finished_at - started_at, 0.0)
FROM tasks
WHERE key IN (SELECT value FROM json_each(:keys)) AND status = 'done'
  AND (expires_at IS NULL OR expires_at > :now)

-- name: lookup_tasks
-- What the run engine needs to reuse a kept result (the hit path's columns, the step, and
-- how long it once took), not the whole record: fewer columns read is faster.
SELECT key, {lookup_columns}, fn, started_at, finished_at FROM tasks WHERE key IN (SELECT value FROM json_each(?))

-- name: get_tasks
SELECT {record_columns} FROM tasks WHERE key IN (SELECT value FROM json_each(?))

-- name: failed_jobs
-- The failed jobs of a run, with their parents (hokuro retry --run queues them again).
SELECT job_id, parents FROM jobs WHERE run_id = :run_id AND status = 'failed' ORDER BY seq

-- name: cancelled_below
-- The descendants of these jobs that are cancelled (their failure cancelled them).
WITH RECURSIVE below(job_id) AS (
    SELECT e.child FROM json_each(:job_ids) f
    JOIN job_edges e ON e.run_id = :run_id AND e.parent = f.value
    UNION
    SELECT e.child FROM below b JOIN job_edges e ON e.run_id = :run_id AND e.parent = b.job_id
)
SELECT j.job_id, j.parents FROM below b JOIN jobs j ON j.run_id = :run_id AND j.job_id = b.job_id
WHERE j.status = 'cancelled'

-- name: statuses_of
SELECT job_id, status FROM jobs
WHERE run_id = :run_id AND job_id IN (SELECT value FROM json_each(:job_ids))

-- name: requeue_job
-- A failed job, or a descendant its failure cancelled, goes back to work with a fresh count
-- of attempts (only from those statuses: a job that moved on meanwhile is left alone).
UPDATE jobs SET status = :status, waiting = :waiting, attempts = 0, run_after = :now,
       task_key = NULL, output_key = NULL, error = NULL, lease_until = NULL, updated_at = :now
WHERE run_id = :run_id AND job_id = :job_id AND status IN ('failed', 'cancelled')
