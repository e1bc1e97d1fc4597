"""Runs and jobs in the SQLite ledger: the run engine's operations, a mixin of SQLiteLedger.

Why these choices:
- Every write is one ``BEGIN IMMEDIATE`` transaction: the writer takes the file's write lock
  up front, so what it read inside the transaction (which parents are done, which claims
  still hold) cannot change before it commits. That makes each rule a few plain statements.
- The claim (``UPDATE … WHERE seq IN (SELECT … LIMIT n) RETURNING``) and a batch's
  countdown are one statement each, lists passed as JSON (``json_each``). A fenced outcome
  is one prepared statement per job, which tells each job's answer (written, or fenced off)
  and measured no slower than one ``UPDATE … FROM json_each`` for the batch: in-process, a
  statement costs microseconds (``benchmarks/bench_jobs_store.py``).
- A ledger file of schema 2 read without migrating it (readers never write) has no runs
  tables: it reads as "no runs".
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from typing import Any

from ...errors import LedgerError
from ...model.jobs import UNFINISHED_RUN_STATUSES, Job, JobOutcome, JobSpec, RunRecord
from ...model.records import Claim, ClaimResult, Outcome, Record
from .job_rows import (
    PAGE,
    chain_restart,
    check_outcomes,
    claim_params,
    decide_claims,
    done_at_insert,
    encode_parents,
    in_claim_order,
    job_from_row,
    looked_up,
    outside_parents,
    page_jobs,
    refuse_if_cancelled,
    requeue_plan,
    reusable_pages,
    run_from_row,
    run_params,
    run_update_params,
    start_of,
    unique_specs,
)
from .queries import load_queries
from .sqlite_errors import translate_errors

Q = load_queries("sqlite")
#: Keys per statement of :meth:`SQLiteJobs.reusable` (one JSON parameter: no bound on them).
REUSE_PAGE = 5000
J = load_queries("sqlite_jobs")
#: The first schema with runs and jobs.
RUNS_SCHEMA = 3
#: The claim updates with RETURNING (SQLite 3.35, 2021), the countdown with UPDATE FROM.
RUNS_SQLITE = (3, 35, 0)


class SQLiteJobs:
    """The job operations of :class:`~hokuro.store.ledger.sqlite.SQLiteLedger`."""

    supports_runs = sqlite3.sqlite_version_info >= RUNS_SQLITE
    #: False for a ledger file of an older schema opened read-only: it has no runs tables.
    _has_runs = True

    # -- runs -----------------------------------------------------------------------------
    def create_run(self, run: RunRecord) -> None:
        if not self.supports_runs:
            raise LedgerError(
                f"runs need SQLite {'.'.join(map(str, RUNS_SQLITE))} or newer; this Python "
                f"uses SQLite {sqlite3.sqlite_version}. Use a Python built with a newer "
                "SQLite, or a PostgreSQL ledger")
        with self._pool.connection() as conn, self._write(conn):
            try:
                conn.execute(J["create_run"], run_params(run))
            except sqlite3.IntegrityError:
                raise LedgerError(f"a run with id {run.id} already exists; give each run a "
                                  "new id (or resume it)") from None

    def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._job_rows(J["get_run"], (run_id,))
        return run_from_row(rows[0]) if rows else None

    def find_unfinished_run(self, name: str) -> RunRecord | None:
        statuses = json.dumps(sorted(UNFINISHED_RUN_STATUSES))
        rows = self._job_rows(J["find_unfinished_run"], {"name": name, "statuses": statuses})
        return run_from_row(rows[0]) if rows else None

    def list_runs(self, limit: int = 50, status: str | None = None) -> list[RunRecord]:
        rows = self._job_rows(J["list_runs"], {"limit": limit, "status": status})
        return [run_from_row(row) for row in rows]

    def update_run(self, run_id: str, **fields: Any) -> None:
        params = run_update_params(run_id, fields, time.time())
        with self._pool.connection() as conn, self._write(conn):
            conn.execute(J["update_run"], params)

    # -- jobs: inserting, claiming --------------------------------------------------------
    def insert_jobs(self, run_id: str, specs: list[JobSpec], now: float) -> int:
        if not specs:
            return 0
        with self._pool.connection() as conn, self._write(conn):
            refuse_if_cancelled(conn.execute(J["run_status"], {"run_id": run_id}).fetchall(),
                                run_id)
            return _insert(conn, run_id, specs, now)

    def claim_jobs(self, owner: str, now: float, lease_until: float, limit: int,
                   scopes: list[str] | None = None, run_id: str | None = None,
                   runs: list[str] | None = None) -> list[Job]:
        if limit <= 0 or scopes == [] or runs == []:
            return []
        params = {"owner": owner, "now": now, "lease_until": lease_until, "limit": limit,
                  "run_id": run_id, "scopes": None if scopes is None else json.dumps(scopes),
                  "runs": None if runs is None else json.dumps(runs)}
        with self._pool.connection() as conn, self._write(conn):
            rows = conn.execute(J["claim_jobs"], params).fetchall()
        return in_claim_order([job_from_row(row) for row in rows], scopes)

    def renew_jobs(self, owner: str, keys: Iterable[tuple[str, str]],
                   lease_until: float) -> set[tuple[str, str]]:
        held = set()
        with self._pool.connection() as conn, self._write(conn):
            for run_id, job_id in keys:
                params = {"run_id": run_id, "job_id": job_id, "owner": owner,
                          "lease_until": lease_until}
                if conn.execute(J["renew_job"], params).rowcount:
                    held.add((run_id, job_id))
        return held

    def release_jobs(self, owner: str, keys: Iterable[tuple[str, str]],
                     now: float) -> set[tuple[str, str]]:
        released = set()
        with self._pool.connection() as conn, self._write(conn):
            for run_id, job_id in keys:
                params = {"run_id": run_id, "job_id": job_id, "owner": owner, "now": now}
                if conn.execute(J["release_job"], params).rowcount:
                    released.add((run_id, job_id))
        return released

    # -- jobs: the group commit -----------------------------------------------------------
    def commit(self, outcomes: list[JobOutcome],
               tasks: list[tuple[str, str, Outcome]], now: float) -> list[bool]:
        check_outcomes(outcomes)
        with self._pool.connection() as conn, self._write(conn):
            if tasks:
                conn.executemany(Q["finish"], (_finish_params(*task) for task in tasks))
            written = [_write_outcome(conn, outcome, now) for outcome in outcomes]
            kept = [o for o, ok in zip(outcomes, written, strict=True) if ok]
            done = [o for o in kept if o.status == "done"]
            for run_id in dict.fromkeys(o.run_id for o in done):
                conn.execute(J["count_down"], {"run_id": run_id, "now": now, "job_ids": json.dumps(
                    [o.job_id for o in done if o.run_id == run_id])})
            for outcome in done:
                if outcome.children:
                    _insert(conn, outcome.run_id, outcome.children, now)
            for outcome in kept:
                if outcome.status in ("failed", "cancelled"):
                    error = (outcome.error if outcome.status == "cancelled"
                             else f"upstream failed: {outcome.job_id}")
                    conn.execute(J["cancel_below"], {"run_id": outcome.run_id, "now": now,
                                                     "job_id": outcome.job_id, "error": error})
                elif outcome.status == "reset":
                    _reset_chain(conn, outcome.run_id, outcome.job_id, now)
        return written

    # -- jobs: reading --------------------------------------------------------------------
    def run_counts(self, run_id: str) -> dict[tuple[str, str], int]:
        rows = self._job_rows(J["run_counts"], (run_id,))
        return {(node, status): count for node, status, count in rows}

    def next_wake(self, run_id: str) -> float | None:
        rows = self._job_rows(J["next_wake"], (run_id,))
        return rows[0][0] if rows else None

    def get_jobs(self, run_id: str, job_ids: Iterable[str]) -> list[Job]:
        job_ids = list(job_ids)
        found: list[Job] = []
        for start in range(0, len(job_ids), PAGE):
            params = {"run_id": run_id, "job_ids": json.dumps(job_ids[start:start + PAGE])}
            found += [job_from_row(row) for row in self._job_rows(J["get_jobs"], params)]
        return found

    def node_results(self, run_id: str, node: str) -> list[tuple[Any, ...]]:
        """Every job of ``node`` in run ``run_id`` (in no set order) as (job_id, status, step,
        error, output_key, fn, codec, blob, result): the last four of the task its output
        names, or None (an input passed on, or a task gone)."""
        return [tuple(row) for row in
                self._job_rows(J["node_results"], {"run_id": run_id, "node": node})]

    def find_jobs(self, run_id: str, status: str | None = None,
                  limit: int | None = None) -> Iterator[Job]:
        return page_jobs(lambda params: self._job_rows(J["find_jobs"], params), run_id,
                         status, limit)

    # -- tasks in batches -----------------------------------------------------------------
    def get_many(self, keys: Iterable[str]) -> dict[str, Record]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, Record] = {}
        for start in range(0, len(keys), PAGE):
            rows = self._rows(J["get_tasks"], (json.dumps(keys[start:start + PAGE]),))
            found.update((row[0], Record(*row)) for row in rows)
        return found

    def finish_many(self, finishes: list[tuple[str, str, Outcome]]) -> list[bool]:
        """Each finish as :meth:`finish` fences it, all in one transaction."""
        if not finishes:
            return []
        with self._pool.connection() as conn, self._write(conn):
            return [conn.execute(Q["finish"], _finish_params(*finish)).rowcount == 1
                    for finish in finishes]

    def reusable(self, keys: Iterable[str], now: float) -> dict[str, tuple[bool, float]]:
        """The keys among ``keys`` whose task holds a result a run may reuse at ``now``:
        key -> (the result is an inline None, the seconds it once took)."""
        return reusable_pages(lambda params: self._rows(J["reusable_tasks"], params),
                              keys, now, REUSE_PAGE)

    def lookup_many(self, keys: Iterable[str]) -> dict[str, Record]:
        """:meth:`get_many` reading only what reusing a kept result needs: the lookup
        columns, ``fn``, ``started_at`` and ``finished_at`` (the rest left at defaults)."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, Record] = {}
        for start in range(0, len(keys), PAGE):
            rows = self._rows(J["lookup_tasks"], (json.dumps(keys[start:start + PAGE]),))
            found.update((row[0], looked_up(row)) for row in rows)
        return found

    def claim_many(self, claims: list[Claim]) -> list[ClaimResult]:
        """Each claim as :meth:`claim` decides it, all in one transaction; a key claimed
        earlier in the list is ``busy`` for the later claims of it."""
        if not claims:
            return []
        with self._pool.connection() as conn, self._write(conn):
            current: dict[str, Record] = {}
            keys = list(dict.fromkeys(c.key for c in claims))
            for start in range(0, len(keys), PAGE):
                rows = conn.execute(J["get_tasks"],
                                    (json.dumps(keys[start:start + PAGE]),)).fetchall()
                current.update((row[0], Record(*row)) for row in rows)
            results, fresh, again = decide_claims(claims, current)
            if fresh:
                conn.executemany(Q["claim_insert"], map(claim_params, fresh))
            if again:
                conn.executemany(Q["claim_update"], map(claim_params, again))
            return results

    # -- jobs: a run retried (hokuro retry --run) ------------------------------------------
    def requeue_failed(self, run_id: str, now: float) -> list[str]:
        """Queue the failed jobs of a run again, with a fresh count of attempts, and block
        again the descendants their failures cancelled (see ``requeue_plan``); one
        transaction. The ids of the jobs that go back to work."""
        with self._pool.connection() as conn, self._write(conn):
            failed = {job_id: _parents(text) for job_id, text in
                      conn.execute(J["failed_jobs"], {"run_id": run_id})}
            if not failed:
                return []
            below = {job_id: _parents(text) for job_id, text in conn.execute(
                J["cancelled_below"], {"run_id": run_id, "job_ids": json.dumps(list(failed))})}
            outside = sorted({p for ps in (*failed.values(), *below.values()) for p in ps}
                             - failed.keys() - below.keys())
            status_of: dict[str, str] = {}
            for start in range(0, len(outside), PAGE):
                params = {"run_id": run_id, "job_ids": json.dumps(outside[start:start + PAGE])}
                status_of.update(conn.execute(J["statuses_of"], params).fetchall())
            changes = requeue_plan(failed, below, status_of)
            conn.executemany(J["requeue_job"], (
                {"run_id": run_id, "job_id": job_id, "status": status, "waiting": waiting,
                 "now": now} for job_id, status, waiting in changes))
            return [job_id for job_id, _, _ in changes]

    # -- plumbing -------------------------------------------------------------------------
    def _job_rows(self, sql: str, params: Any) -> list[Any]:
        """Rows of a read of the runs tables; none on a file without them (read as it is)."""
        if not self._has_runs:
            return []
        return self._rows(sql, params)


def _parents(text: str) -> tuple[str, ...]:
    return () if text == "[]" else tuple(json.loads(text))


def _finish_params(key: str, owner: str, outcome: Outcome) -> dict[str, Any]:
    return {"key": key, "owner": owner, "status": outcome.status, "result": outcome.result,
            "blob": outcome.blob, "codec": outcome.codec, "content_type": outcome.content_type,
            "size": outcome.size, "checksum": outcome.checksum,
            "error_type": outcome.error_type, "error": outcome.error,
            "error_fingerprint": outcome.error_fingerprint, "log": outcome.log,
            "log_blob": outcome.log_blob, "finished_at": outcome.finished_at,
            "expires_at": outcome.expires_at}


def _insert(conn: sqlite3.Connection, run_id: str, specs: Iterable[JobSpec],
            now: float) -> int:
    """Insert the new jobs of ``specs`` (inside the caller's transaction); how many."""
    specs = unique_specs(specs)
    outside = outside_parents(specs)
    done = done_at_insert(specs)
    for start in range(0, len(outside), PAGE):
        params = {"run_id": run_id, "job_ids": json.dumps(outside[start:start + PAGE])}
        done.update(row[0] for row in conn.execute(J["done_among"], params))
    rows = []
    for spec in specs:
        status, waiting = start_of(spec, done)
        rows.append((run_id, spec.job_id, spec.node, spec.step, str(status), waiting,
                     spec.scope, spec.priority, spec.run_after, now,
                     encode_parents(spec.parents), spec.input, spec.task_key,
                     spec.output_key))
    before = conn.total_changes
    conn.executemany(J["insert_job"], rows)
    inserted = conn.total_changes - before
    # Edges of jobs that already existed are there already; inserting them again does nothing.
    edges = [(run_id, parent, spec.job_id) for spec in specs for parent in set(spec.parents)]
    if edges:
        conn.executemany(J["insert_edge"], edges)
    return inserted


def _write_outcome(conn: sqlite3.Connection, outcome: JobOutcome, now: float) -> bool:
    params = {"run_id": outcome.run_id, "job_id": outcome.job_id, "owner": outcome.owner,
              "attempt": outcome.attempt, "now": now}
    if outcome.status == "reset":
        return bool(conn.execute(J["job_holds"], params).fetchall())
    params.update(task_key=outcome.task_key, output_key=outcome.output_key,
                  run_after=now if outcome.run_after is None else outcome.run_after,
                  error=outcome.error)
    return conn.execute(J[f"job_{outcome.status}"], params).rowcount == 1


def _reset_chain(conn: sqlite3.Connection, run_id: str, job_id: str, now: float) -> None:
    chain = conn.execute(J["chain_above"], {"run_id": run_id, "job_id": job_id}).fetchall()
    was_done, restarted = chain_restart(chain)
    conn.executemany(J["wait_again"], ({"run_id": run_id, "job_id": parent, "now": now}
                                       for parent in was_done))
    conn.executemany(J["reset_job"], (
        {"run_id": run_id, "job_id": member, "status": status, "waiting": waiting,
         "resets": resets, "now": now} for member, status, waiting, resets in restarted))


translate_errors(SQLiteJobs, calls=(
    "create_run", "get_run", "find_unfinished_run", "list_runs", "update_run", "insert_jobs",
    "claim_jobs", "renew_jobs", "release_jobs", "commit", "run_counts", "next_wake",
    "get_jobs", "node_results", "get_many", "lookup_many", "claim_many", "requeue_failed"),
    iterators=("find_jobs",))
