-- PostgreSQL dialect of the run engine's statements: runs, jobs, and the batch task
-- operations the executor needs. The tables are made by migration_3 in postgres.sql.
-- A batch is passed as arrays and read with unnest: one statement per batch, whatever its
-- size (and one round trip).

-- name: create_run
INSERT INTO runs (id, name, status, cursor, inputs_done, created_at, updated_at, finished_at,
                  error, options, plan)
VALUES (%(id)s, %(name)s, %(status)s, %(cursor)s, %(inputs_done)s, %(created_at)s,
        %(updated_at)s, %(finished_at)s, %(error)s, %(options)s, %(plan)s)

-- name: get_run
SELECT {run_columns} FROM runs WHERE id = %(id)s

-- name: find_unfinished_run
SELECT {run_columns} FROM runs
WHERE name = %(name)s AND status = ANY(%(statuses)s::text[])
ORDER BY created_at DESC, id DESC LIMIT 1

-- name: list_runs
SELECT {run_columns} FROM runs
WHERE (%(status)s::text IS NULL OR status = %(status)s)
ORDER BY created_at DESC, id DESC LIMIT %(limit)s

-- name: update_run
-- One statement for any subset of the fields: each is written only when its flag is set.
UPDATE runs SET
    status = CASE WHEN %(set_status)s THEN %(status)s::text ELSE status END,
    cursor = CASE WHEN %(set_cursor)s THEN %(cursor)s::bigint ELSE cursor END,
    inputs_done = CASE WHEN %(set_inputs_done)s THEN %(inputs_done)s::boolean
                       ELSE inputs_done END,
    finished_at = CASE WHEN %(set_finished_at)s THEN %(finished_at)s::double precision
                       ELSE finished_at END,
    error = CASE WHEN %(set_error)s THEN %(error)s::text ELSE error END,
    updated_at = %(updated_at)s
WHERE id = %(id)s

-- name: run_status
-- A run's status, read in the transaction that inserts its jobs: a cancelled run takes no
-- new jobs. FOR SHARE: a cancel being committed is waited for (and then seen), and a
-- cancel that comes after waits for these jobs, which it then cancels with the others.
SELECT status FROM runs WHERE id = %(run_id)s FOR SHARE

-- name: done_among
-- Which of these jobs of a run are done (the parents of jobs being inserted). FOR SHARE:
-- a parent whose done is being committed elsewhere is waited for, and one not done yet
-- cannot become done before our children (and their edges) are committed, so its
-- countdown sees them. Either way no child waits for a parent that never counts down.
SELECT job_id, status FROM jobs
WHERE run_id = %(run_id)s AND job_id = ANY(%(job_ids)s::text[])
ORDER BY job_id FOR SHARE

-- name: insert_jobs
-- An existing job is left as it is: a resumed run never duplicates or resets a job.
-- Rows go in list order, so seq follows it.
-- A job whose task is already done comes in done, with its task and output keys.
-- The rows come as one JSON document (a list of [job_id, node, step, status, waiting,
-- scope, priority, run_after, parents, input as hex, task_key, output_key]): the driver
-- writes twelve text arrays element by element in Python (measured 4x slower for a window
-- of 3,000 done jobs), json.dumps writes the document in C, and jsonb parses it once.
INSERT INTO jobs (run_id, job_id, node, step, status, waiting, scope, priority, run_after,
                  created_at, updated_at, parents, input, task_key, output_key)
SELECT %(run_id)s, r->>0, r->>1, r->>2, r->>3, (r->>4)::int, r->>5, (r->>6)::int,
       (r->>7)::double precision, %(now)s, %(now)s, r->>8, decode(r->>9, 'hex'), r->>10,
       r->>11
FROM jsonb_array_elements(%(rows)s::jsonb) WITH ORDINALITY AS s(r, n)
ORDER BY s.n
ON CONFLICT (run_id, job_id) DO NOTHING
RETURNING job_id

-- name: insert_new_jobs
-- insert_jobs without ON CONFLICT, tried first: a window's jobs are new but on a resume,
-- and the arbiter check of ON CONFLICT costs about a quarter of the insert (measured on
-- 3,000 done jobs). A job that exists already fails it, and insert_jobs goes instead.
INSERT INTO jobs (run_id, job_id, node, step, status, waiting, scope, priority, run_after,
                  created_at, updated_at, parents, input, task_key, output_key)
SELECT %(run_id)s, r->>0, r->>1, r->>2, r->>3, (r->>4)::int, r->>5, (r->>6)::int,
       (r->>7)::double precision, %(now)s, %(now)s, r->>8, decode(r->>9, 'hex'), r->>10,
       r->>11
FROM jsonb_array_elements(%(rows)s::jsonb) WITH ORDINALITY AS s(r, n)
ORDER BY s.n
RETURNING job_id

-- name: insert_edges
INSERT INTO job_edges (run_id, parent, child)
SELECT %(run_id)s, e.parent, e.child
FROM unnest(%(parents)s::text[], %(children)s::text[]) AS e(parent, child)
ON CONFLICT DO NOTHING

-- name: claim_jobs
-- Claimable: queued or waiting with run_after passed (through jobs_claim), or running under
-- an expired lease (through jobs_leases). Each lane (a scope of the list given, or, with no
-- list, every scope that has claimable jobs, found by a skip scan of jobs_claim) locks its
-- first :limit unlocked jobs in index order (SKIP LOCKED: concurrent claimers pass each
-- other); the best :limit of those are claimed, the others unlocked at commit. So no claim
-- sorts more than (lanes x limit) rows, however many jobs wait. %(runs)s (or NULL) keeps to
-- those runs: a worker serves submitted runs only.
WITH RECURSIVE present(scope) AS (
    SELECT min(scope) FROM jobs
    WHERE status IN ('queued', 'waiting') AND %(scopes)s::text[] IS NULL
    UNION ALL
    SELECT (SELECT min(j.scope) FROM jobs j
            WHERE j.status IN ('queued', 'waiting') AND j.scope > p.scope)
    FROM present p WHERE p.scope IS NOT NULL
),
lanes(scope, pos) AS (
    SELECT g.scope, g.pos FROM unnest(%(scopes)s::text[]) WITH ORDINALITY AS g(scope, pos)
    UNION ALL SELECT scope, 0 FROM present WHERE scope IS NOT NULL
),
ready AS (
    SELECT l.pos, c.row, c.priority, c.run_after, c.seq
    FROM lanes l CROSS JOIN LATERAL (
        SELECT ctid AS row, priority, run_after, seq FROM jobs
        WHERE scope = l.scope AND status IN ('queued', 'waiting')
          AND run_after <= %(now)s
          AND (%(run_id)s::text IS NULL OR run_id = %(run_id)s::text)
          AND (%(runs)s::text[] IS NULL OR run_id = ANY(%(runs)s::text[]))
        ORDER BY priority DESC, run_after, seq
        LIMIT %(limit)s FOR UPDATE SKIP LOCKED) c
    UNION ALL
    SELECT coalesce(array_position(%(scopes)s::text[], e.scope), 0), e.row,
           e.priority, e.run_after, e.seq
    FROM (SELECT ctid AS row, scope, priority, run_after, seq FROM jobs
          WHERE status = 'running' AND lease_until <= %(now)s
            AND (%(scopes)s::text[] IS NULL OR scope = ANY(%(scopes)s::text[]))
            AND (%(run_id)s::text IS NULL OR run_id = %(run_id)s::text)
            AND (%(runs)s::text[] IS NULL OR run_id = ANY(%(runs)s::text[]))
          FOR UPDATE SKIP LOCKED) e
),
picked AS (
    SELECT row FROM ready ORDER BY pos, priority DESC, run_after, seq LIMIT %(limit)s
)
-- By ctid: the rows are locked by this statement, so their versions cannot move, and a Tid
-- scan finds them whatever the planner believes about the table's size.
UPDATE jobs SET status = 'running', owner = %(owner)s, lease_until = %(lease_until)s,
       attempts = attempts + 1, updated_at = %(now)s
WHERE ctid = ANY(ARRAY(SELECT row FROM picked))
RETURNING {job_columns}

-- name: claimed_before
-- A claim re-sent after its connection broke: the jobs the first try claimed, if it
-- committed (same owner, lease and time).
SELECT {job_columns} FROM jobs
WHERE status = 'running' AND lease_until = %(lease_until)s AND owner = %(owner)s
  AND updated_at = %(now)s

-- name: renew_jobs
UPDATE jobs j SET lease_until = %(lease_until)s
FROM unnest(%(run_ids)s::text[], %(job_ids)s::text[]) AS k(run_id, job_id)
WHERE j.run_id = k.run_id AND j.job_id = k.job_id AND j.owner = %(owner)s
  AND j.status = 'running'
RETURNING j.run_id, j.job_id

-- name: release_jobs
-- Handed back unfinished (Ctrl-C, SIGTERM): the claim does not count as an attempt.
UPDATE jobs j SET status = 'queued', attempts = j.attempts - 1, lease_until = NULL,
       updated_at = %(now)s
FROM unnest(%(run_ids)s::text[], %(job_ids)s::text[]) AS k(run_id, job_id)
WHERE j.run_id = k.run_id AND j.job_id = k.job_id AND j.owner = %(owner)s
  AND j.status = 'running'
RETURNING j.run_id, j.job_id

-- name: finish_tasks
-- The task finishes of a group commit (and of finish_many), fenced as finish is (the
-- owner's lease); the keys written.
UPDATE tasks t SET status = o.status, result = o.result, blob = o.blob, codec = o.codec,
       content_type = o.content_type, size = o.size, checksum = o.checksum,
       error_type = o.error_type, error = o.error, error_fingerprint = o.error_fingerprint,
       log = o.log, log_blob = o.log_blob, finished_at = o.finished_at,
       updated_at = o.finished_at, expires_at = o.expires_at, lease_until = NULL
FROM unnest(%(keys)s::text[], %(owners)s::text[], %(statuses)s::text[],
            %(results)s::bytea[], %(blobs)s::text[], %(codecs)s::text[],
            %(content_types)s::text[], %(sizes)s::bigint[], %(checksums)s::text[],
            %(error_types)s::text[], %(errors)s::text[], %(error_fingerprints)s::text[],
            %(logs)s::text[], %(log_blobs)s::text[], %(finished_ats)s::double precision[],
            %(expires_ats)s::double precision[])
     AS o(key, owner, status, result, blob, codec, content_type, size, checksum, error_type,
          error, error_fingerprint, log, log_blob, finished_at, expires_at)
WHERE t.key = o.key AND t.owner = o.owner AND t.status = 'running'
RETURNING t.key

-- name: finish_tasks_again
-- The same, re-sent after a broken connection: also matches the rows the first sending
-- wrote (as finish_again does for one).
UPDATE tasks t SET status = o.status, result = o.result, blob = o.blob, codec = o.codec,
       content_type = o.content_type, size = o.size, checksum = o.checksum,
       error_type = o.error_type, error = o.error, error_fingerprint = o.error_fingerprint,
       log = o.log, log_blob = o.log_blob, finished_at = o.finished_at,
       updated_at = o.finished_at, expires_at = o.expires_at, lease_until = NULL
FROM unnest(%(keys)s::text[], %(owners)s::text[], %(statuses)s::text[],
            %(results)s::bytea[], %(blobs)s::text[], %(codecs)s::text[],
            %(content_types)s::text[], %(sizes)s::bigint[], %(checksums)s::text[],
            %(error_types)s::text[], %(errors)s::text[], %(error_fingerprints)s::text[],
            %(logs)s::text[], %(log_blobs)s::text[], %(finished_ats)s::double precision[],
            %(expires_ats)s::double precision[])
     AS o(key, owner, status, result, blob, codec, content_type, size, checksum, error_type,
          error, error_fingerprint, log, log_blob, finished_at, expires_at)
WHERE t.key = o.key AND t.owner = o.owner
  AND (t.status = 'running' OR (t.status = o.status AND t.finished_at = o.finished_at
                               AND t.lease_until IS NULL))
RETURNING t.key

-- name: job_done
-- The outcomes below are fenced: written only while this owner's claim of this attempt
-- still holds the job. The owner stays on the row: who ran it last.
UPDATE jobs j SET status = 'done', task_key = o.task_key, output_key = o.output_key,
       error = NULL, lease_until = NULL, updated_at = %(now)s
FROM unnest(%(run_ids)s::text[], %(job_ids)s::text[], %(owners)s::text[],
            %(attempts)s::int[], %(task_keys)s::text[], %(output_keys)s::text[],
            %(run_afters)s::double precision[], %(errors)s::text[])
     AS o(run_id, job_id, owner, attempt, task_key, output_key, run_after, error)
WHERE j.run_id = o.run_id AND j.job_id = o.job_id AND j.owner = o.owner
  AND j.attempts = o.attempt AND j.status = 'running'
RETURNING j.run_id, j.job_id, o.owner, o.attempt

-- name: job_waiting
-- Not ready yet (Pending): claimable again at run_after. A poll is not an attempt, so the
-- claim's attempt is given back (attempts counts executions that ended in an error or a
-- result, which is what retries are capped by).
UPDATE jobs j SET status = 'waiting', run_after = o.run_after, attempts = j.attempts - 1,
       task_key = coalesce(o.task_key, j.task_key), error = NULL, lease_until = NULL,
       updated_at = %(now)s
FROM unnest(%(run_ids)s::text[], %(job_ids)s::text[], %(owners)s::text[],
            %(attempts)s::int[], %(task_keys)s::text[], %(output_keys)s::text[],
            %(run_afters)s::double precision[], %(errors)s::text[])
     AS o(run_id, job_id, owner, attempt, task_key, output_key, run_after, error)
WHERE j.run_id = o.run_id AND j.job_id = o.job_id AND j.owner = o.owner
  AND j.attempts = o.attempt AND j.status = 'running'
RETURNING j.run_id, j.job_id, o.owner, o.attempt

-- name: job_queued
-- A retry after backoff: the attempt counts; the error that caused it is kept for show.
UPDATE jobs j SET status = 'queued', run_after = o.run_after, error = o.error,
       task_key = coalesce(o.task_key, j.task_key), lease_until = NULL,
       updated_at = %(now)s
FROM unnest(%(run_ids)s::text[], %(job_ids)s::text[], %(owners)s::text[],
            %(attempts)s::int[], %(task_keys)s::text[], %(output_keys)s::text[],
            %(run_afters)s::double precision[], %(errors)s::text[])
     AS o(run_id, job_id, owner, attempt, task_key, output_key, run_after, error)
WHERE j.run_id = o.run_id AND j.job_id = o.job_id AND j.owner = o.owner
  AND j.attempts = o.attempt AND j.status = 'running'
RETURNING j.run_id, j.job_id, o.owner, o.attempt

-- name: job_failed
UPDATE jobs j SET status = 'failed', error = o.error,
       task_key = coalesce(o.task_key, j.task_key), lease_until = NULL,
       updated_at = %(now)s
FROM unnest(%(run_ids)s::text[], %(job_ids)s::text[], %(owners)s::text[],
            %(attempts)s::int[], %(task_keys)s::text[], %(output_keys)s::text[],
            %(run_afters)s::double precision[], %(errors)s::text[])
     AS o(run_id, job_id, owner, attempt, task_key, output_key, run_after, error)
WHERE j.run_id = o.run_id AND j.job_id = o.job_id AND j.owner = o.owner
  AND j.attempts = o.attempt AND j.status = 'running'
RETURNING j.run_id, j.job_id, o.owner, o.attempt

-- name: job_cancelled
UPDATE jobs j SET status = 'cancelled', error = o.error,
       task_key = coalesce(o.task_key, j.task_key), lease_until = NULL,
       updated_at = %(now)s
FROM unnest(%(run_ids)s::text[], %(job_ids)s::text[], %(owners)s::text[],
            %(attempts)s::int[], %(task_keys)s::text[], %(output_keys)s::text[],
            %(run_afters)s::double precision[], %(errors)s::text[])
     AS o(run_id, job_id, owner, attempt, task_key, output_key, run_after, error)
WHERE j.run_id = o.run_id AND j.job_id = o.job_id AND j.owner = o.owner
  AND j.attempts = o.attempt AND j.status = 'running'
RETURNING j.run_id, j.job_id, o.owner, o.attempt

-- name: job_reset
-- The fence alone, for a reset (whose writes follow from the chain): locks the rows held.
SELECT j.run_id, j.job_id, o.owner, o.attempt FROM jobs j
JOIN unnest(%(run_ids)s::text[], %(job_ids)s::text[], %(owners)s::text[],
            %(attempts)s::int[], %(task_keys)s::text[], %(output_keys)s::text[],
            %(run_afters)s::double precision[], %(errors)s::text[])
     AS o(run_id, job_id, owner, attempt, task_key, output_key, run_after, error)
  ON j.run_id = o.run_id AND j.job_id = o.job_id
WHERE j.owner = o.owner AND j.attempts = o.attempt AND j.status = 'running'
FOR UPDATE OF j

-- name: committed_before
-- A commit re-sent after its connection broke: the outcomes the first try wrote, if it
-- committed (the rows this owner left at this time, no longer running).
SELECT j.run_id, j.job_id, o.owner, o.attempt, o.status FROM jobs j
JOIN unnest(%(run_ids)s::text[], %(job_ids)s::text[], %(owners)s::text[],
            %(attempts)s::int[], %(statuses)s::text[])
     AS o(run_id, job_id, owner, attempt, status)
  ON j.run_id = o.run_id AND j.job_id = o.job_id
WHERE j.owner = o.owner AND j.updated_at = %(now)s AND j.status <> 'running'

-- name: count_down
-- Parents are done: their blocked children wait for that many parents less; at none they
-- are queued.
UPDATE jobs j SET waiting = j.waiting - d.n,
       status = CASE WHEN j.waiting <= d.n THEN 'queued' ELSE j.status END,
       updated_at = %(now)s
FROM (SELECT e.run_id, e.child, count(*) AS n
      FROM unnest(%(run_ids)s::text[], %(job_ids)s::text[]) AS p(run_id, job_id)
      -- OFFSET 0 keeps this a lookup of each parent's edges by key: as a plain join the
      -- planner, misled by a young table's missing statistics, sorts every edge instead.
      CROSS JOIN LATERAL (SELECT run_id, child FROM job_edges
                          WHERE run_id = p.run_id AND parent = p.job_id OFFSET 0) e
      GROUP BY e.run_id, e.child) d
WHERE j.run_id = d.run_id AND j.job_id = d.child AND j.status = 'blocked'

-- name: cancel_below
-- Every descendant not finished is cancelled (a failed or cancelled job's chain), with the
-- error given for the job it descends from.
WITH RECURSIVE below(run_id, job_id, error) AS (
    SELECT e.run_id, e.child, p.error
    FROM unnest(%(run_ids)s::text[], %(job_ids)s::text[], %(errors)s::text[])
         AS p(run_id, job_id, error)
    CROSS JOIN LATERAL (SELECT run_id, child FROM job_edges
                        WHERE run_id = p.run_id AND parent = p.job_id OFFSET 0) e
    UNION
    SELECT e.run_id, e.child, b.error
    FROM below b JOIN job_edges e ON e.run_id = b.run_id AND e.parent = b.job_id
)
UPDATE jobs j SET status = 'cancelled', error = b.error, lease_until = NULL,
       updated_at = %(now)s
FROM (SELECT DISTINCT ON (run_id, job_id) run_id, job_id, error FROM below
      ORDER BY run_id, job_id, error) b
WHERE j.run_id = b.run_id AND j.job_id = b.job_id
  AND j.status NOT IN ('done', 'failed', 'cancelled')

-- name: chain_above
-- A job and all its ancestors: the chain a reset restarts.
WITH RECURSIVE above(job_id) AS (
    SELECT %(job_id)s::text
    UNION
    SELECT p.parent FROM above a JOIN jobs j ON j.run_id = %(run_id)s AND j.job_id = a.job_id
    CROSS JOIN LATERAL jsonb_array_elements_text(j.parents::jsonb) AS p(parent)
)
SELECT j.job_id, j.status, j.parents, j.resets
FROM above a JOIN jobs j ON j.run_id = %(run_id)s AND j.job_id = a.job_id
ORDER BY j.job_id FOR UPDATE OF j

-- name: wait_again
-- Done parents go back to work (a reset): their blocked children outside the chain wait
-- for them again. (The chain's own members are done or running here, never blocked.)
UPDATE jobs j SET waiting = j.waiting + d.n, updated_at = %(now)s
FROM (SELECT e.child, count(*) AS n FROM job_edges e
      WHERE e.run_id = %(run_id)s AND e.parent = ANY(%(job_ids)s::text[])
      GROUP BY e.child) d
WHERE j.run_id = %(run_id)s AND j.job_id = d.child AND j.status = 'blocked'

-- name: reset_jobs
UPDATE jobs j SET status = r.status, waiting = r.waiting, resets = r.resets, attempts = 0,
       run_after = %(now)s, task_key = NULL, output_key = NULL, error = NULL,
       lease_until = NULL, updated_at = %(now)s
FROM unnest(%(job_ids)s::text[], %(statuses)s::text[], %(waitings)s::int[],
            %(resets)s::int[]) AS r(job_id, status, waiting, resets)
WHERE j.run_id = %(run_id)s AND j.job_id = r.job_id

-- name: run_counts
SELECT node, status, COUNT(*) FROM jobs WHERE run_id = %(run_id)s GROUP BY node, status

-- name: next_wake
SELECT MIN(run_after) FROM jobs
WHERE run_id = %(run_id)s AND status IN ('queued', 'waiting')

-- name: get_jobs
SELECT {job_columns} FROM jobs
WHERE run_id = %(run_id)s AND job_id = ANY(%(job_ids)s::text[])
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
WHERE j.run_id = %(run_id)s AND j.node = %(node)s

-- name: find_jobs
-- Pages in job id order, each a seek in the (run_id, job_id) key: a page in seq order
-- read every job of the run and sorted them, for each page of a large run.
SELECT {job_columns} FROM jobs
WHERE run_id = %(run_id)s AND (%(status)s::text IS NULL OR status = %(status)s::text)
  AND job_id > %(after)s
ORDER BY job_id LIMIT %(page)s

-- name: reusable_tasks
-- Which of these tasks hold a result a run may reuse now (done, not past retention), with
-- whether that result is an inline None (the job passes its input on: msgpack's nil) and
-- how long it once took: three columns, no record, for a window of thousands of keys.
SELECT key, blob IS NULL AND result = '\xc0'::bytea, coalesce(finished_at - started_at, 0.0)
FROM tasks
WHERE key IN (SELECT jsonb_array_elements_text(%(keys)s::jsonb)) AND status = 'done'
  AND (expires_at IS NULL OR expires_at > %(now)s)

-- name: lookup_tasks
-- What the run engine needs to reuse a kept result (the hit path's columns, the step, and
-- how long it once took), not the whole record: fewer columns read is faster.
-- The keys come as one JSON list (a window of thousands in one statement; a text array
-- of them is written element by element in Python by the driver).
SELECT key, {lookup_columns}, fn, started_at, finished_at FROM tasks
WHERE key IN (SELECT jsonb_array_elements_text(%(keys)s::jsonb))

-- name: get_tasks
SELECT {record_columns} FROM tasks WHERE key = ANY(%(keys)s::text[])

-- name: lock_tasks
SELECT {record_columns} FROM tasks WHERE key = ANY(%(keys)s::text[])
ORDER BY key FOR UPDATE

-- name: claim_new_tasks
-- The tasks of a claim batch seen for the first time, claimed by this one statement (in
-- key order, so two batches inserting the same keys wait for each other, never deadlock).
INSERT INTO tasks (key, fn, status, fn_path, ident, args, version, attempts, owner,
                   lease_until, created_at, started_at, updated_at)
SELECT c.key, c.fn, 'running', c.fn_path, c.ident, c.args, c.version, 1, c.owner,
       c.lease_until, c.now, c.now, c.now
FROM unnest(%(keys)s::text[], %(fns)s::text[], %(fn_paths)s::text[], %(idents)s::text[],
            %(args)s::bytea[], %(versions)s::text[], %(owners)s::text[],
            %(lease_untils)s::double precision[], %(nows)s::double precision[])
     AS c(key, fn, fn_path, ident, args, version, owner, lease_until, now)
ORDER BY c.key
ON CONFLICT (key) DO NOTHING
RETURNING key

-- name: claim_tasks_again
UPDATE tasks t SET status = 'running', fn = c.fn, fn_path = c.fn_path, ident = c.ident,
       args = c.args, version = c.version, attempts = t.attempts + 1, owner = c.owner,
       lease_until = c.lease_until, started_at = c.now, finished_at = NULL,
       updated_at = c.now
FROM unnest(%(keys)s::text[], %(fns)s::text[], %(fn_paths)s::text[], %(idents)s::text[],
            %(args)s::bytea[], %(versions)s::text[], %(owners)s::text[],
            %(lease_untils)s::double precision[], %(nows)s::double precision[])
     AS c(key, fn, fn_path, ident, args, version, owner, lease_until, now)
WHERE t.key = c.key
RETURNING t.key, t.attempts

-- name: failed_jobs
-- The failed jobs of a run, with their parents (hokuro retry --run queues them again).
SELECT job_id, parents FROM jobs
WHERE run_id = %(run_id)s AND status = 'failed' ORDER BY seq FOR UPDATE

-- name: cancelled_below
-- The descendants of these jobs that are cancelled (their failure cancelled them), locked.
WITH RECURSIVE below(job_id) AS (
    SELECT e.child FROM unnest(%(job_ids)s::text[]) AS f(job_id)
    JOIN job_edges e ON e.run_id = %(run_id)s AND e.parent = f.job_id
    UNION
    SELECT e.child FROM below b
    JOIN job_edges e ON e.run_id = %(run_id)s AND e.parent = b.job_id
)
SELECT j.job_id, j.parents FROM below b
JOIN jobs j ON j.run_id = %(run_id)s AND j.job_id = b.job_id
WHERE j.status = 'cancelled' ORDER BY j.job_id FOR UPDATE OF j

-- name: statuses_of
-- FOR SHARE, as done_among: a parent cannot become done unseen before the blocked children
-- that count it are committed, so its countdown finds them.
SELECT job_id, status FROM jobs
WHERE run_id = %(run_id)s AND job_id = ANY(%(job_ids)s::text[])
ORDER BY job_id FOR SHARE

-- name: requeue_jobs
-- Failed jobs, and descendants their failure cancelled, go back to work with a fresh count
-- of attempts (only from those statuses: a job that moved on meanwhile is left alone).
UPDATE jobs j SET status = r.status, waiting = r.waiting, attempts = 0,
       run_after = %(now)s, task_key = NULL, output_key = NULL, error = NULL,
       lease_until = NULL, updated_at = %(now)s
FROM unnest(%(job_ids)s::text[], %(statuses)s::text[], %(waitings)s::int[])
     AS r(job_id, status, waiting)
WHERE j.run_id = %(run_id)s AND j.job_id = r.job_id AND j.status IN ('failed', 'cancelled')
RETURNING j.job_id
