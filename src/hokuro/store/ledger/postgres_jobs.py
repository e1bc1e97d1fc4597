"""Runs and jobs in the PostgreSQL ledger: the run engine's operations, a mixin of
PostgresLedger.

Why these choices:
- A batch is one statement over arrays (``unnest``), never a statement per job: a group
  commit of 500 outcomes is a handful of round trips whatever its size.
- The claim is one statement: ``FOR UPDATE SKIP LOCKED`` per scope lane, so workers
  claiming at once pass each other instead of queueing on the same rows.
- A job's inserted children lock their parents ``FOR SHARE`` while they count which are
  done, so a parent's done committed at the same moment elsewhere either is seen or sees
  the children's edges (and counts them down). No child waits for a countdown that never
  comes.
- Writes retry after a lost connection, as every method of the ledger does (``_run``).
  A retried claim or commit first looks for what its first try wrote (its owner, lease and
  time on the rows): a try that committed before the reply was lost is reported as done,
  not done twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import psycopg

from ...errors import LedgerError
from ...model.jobs import UNFINISHED_RUN_STATUSES, Job, JobOutcome, JobSpec, RunRecord
from ...model.records import Claim, ClaimResult, Outcome, Record
from .job_rows import (
    OUTCOME_STATUSES,
    PAGE,
    chain_restart,
    check_outcomes,
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

if TYPE_CHECKING:
    from psycopg import Connection

J = load_queries("postgres_jobs")
#: The first schema with runs and jobs.
RUNS_SCHEMA = 3
#: Keys per statement of ``lookup_many``: a run's window of inputs in one or two round trips.
LOOKUP_PAGE = 5000


def text(value: str | None) -> str | None:
    """``value`` without NUL characters, which PostgreSQL text cannot hold (a log or a
    traceback with binary output in it would fail the write, and the task run forever)."""
    if value is not None and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


class PostgresJobs:
    """The job operations of :class:`~hokuro.store.ledger.postgres.PostgresLedger`."""

    supports_runs = True
    #: False for a Spot of an older schema opened read-only: it has no runs tables.
    _has_runs = True

    # -- runs -----------------------------------------------------------------------------
    def create_run(self, run: RunRecord) -> None:
        self._write()
        params = run_params(run)
        params["error"] = text(run.error)

        def work(conn: Connection, attempt: int) -> None:
            try:
                conn.execute(J["create_run"], params)
            except psycopg.errors.UniqueViolation:
                if attempt:
                    return  # our first try committed before its reply was lost
                raise LedgerError(f"a run with id {run.id} already exists; give each run a "
                                  "new id (or resume it)") from None

        self._run(work)

    def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._job_rows(J["get_run"], {"id": run_id})
        return run_from_row(rows[0]) if rows else None

    def find_unfinished_run(self, name: str) -> RunRecord | None:
        params = {"name": name, "statuses": sorted(UNFINISHED_RUN_STATUSES)}
        rows = self._job_rows(J["find_unfinished_run"], params)
        return run_from_row(rows[0]) if rows else None

    def list_runs(self, limit: int = 50, status: str | None = None) -> list[RunRecord]:
        rows = self._job_rows(J["list_runs"], {"limit": limit, "status": status})
        return [run_from_row(row) for row in rows]

    def update_run(self, run_id: str, **fields: Any) -> None:
        self._write()
        params = run_update_params(run_id, fields, time.time())
        params["error"] = text(params["error"])
        self._run(lambda conn, _: conn.execute(J["update_run"], params))

    # -- jobs: inserting, claiming --------------------------------------------------------
    def insert_jobs(self, run_id: str, specs: list[JobSpec], now: float) -> int:
        """(A retry after a lost connection whose first try committed counts 0 new.)"""
        self._write()
        if not specs:
            return 0

        def work(conn: Connection, _: int) -> int:
            with conn.transaction():
                refuse_if_cancelled(conn.execute(J["run_status"], {"run_id": run_id}).fetchall(),
                                    run_id)
                return _insert(conn, run_id, specs, now)

        return self._run(work)

    def claim_jobs(self, owner: str, now: float, lease_until: float, limit: int,
                   scopes: list[str] | None = None, run_id: str | None = None,
                   runs: list[str] | None = None) -> list[Job]:
        self._write()
        if limit <= 0 or scopes == [] or runs == []:
            return []
        params = {"owner": owner, "now": now, "lease_until": lease_until, "limit": limit,
                  "run_id": run_id, "scopes": scopes, "runs": runs}

        def work(conn: Connection, attempt: int) -> list[Any]:
            if attempt:
                rows = conn.execute(J["claimed_before"], params).fetchall()
                if rows:
                    return rows
            return conn.execute(J["claim_jobs"], params).fetchall()

        return in_claim_order([job_from_row(row) for row in self._run(work)], scopes)

    def renew_jobs(self, owner: str, keys: Iterable[tuple[str, str]],
                   lease_until: float) -> set[tuple[str, str]]:
        return self._on_keys("renew_jobs", keys, owner=owner, lease_until=lease_until)

    def release_jobs(self, owner: str, keys: Iterable[tuple[str, str]],
                     now: float) -> set[tuple[str, str]]:
        return self._on_keys("release_jobs", keys, owner=owner, now=now)

    # -- jobs: the group commit -----------------------------------------------------------
    def commit(self, outcomes: list[JobOutcome],
               tasks: list[tuple[str, str, Outcome]], now: float) -> list[bool]:
        self._write()
        check_outcomes(outcomes)
        finishes = _finish_arrays(tasks) if tasks else None
        groups = {status: [o for o in outcomes if o.status == status]
                  for status in OUTCOME_STATUSES}

        def work(conn: Connection, attempt: int) -> set[tuple[Any, ...]]:
            with conn.transaction():
                if attempt and outcomes:
                    before = _committed_before(conn, outcomes, now)
                    if before:
                        return before
                if finishes is not None:
                    conn.execute(J["finish_tasks"], finishes)
                written: set[tuple[Any, ...]] = set()
                for status, group in groups.items():
                    if group:
                        rows = conn.execute(J[f"job_{status}"], _outcome_arrays(group, now))
                        written.update((*row, status) for row in rows.fetchall())
                _effects(conn, [o for o in outcomes if _identity(o) in written], now)
                return written

        written = self._run(work)
        return [_identity(o) in written for o in outcomes]

    # -- jobs: reading --------------------------------------------------------------------
    def run_counts(self, run_id: str) -> dict[tuple[str, str], int]:
        rows = self._job_rows(J["run_counts"], {"run_id": run_id})
        return {(node, status): count for node, status, count in rows}

    def next_wake(self, run_id: str) -> float | None:
        rows = self._job_rows(J["next_wake"], {"run_id": run_id})
        return rows[0][0] if rows else None

    def get_jobs(self, run_id: str, job_ids: Iterable[str]) -> list[Job]:
        job_ids = list(job_ids)
        found: list[Job] = []
        for start in range(0, len(job_ids), PAGE):
            params = {"run_id": run_id, "job_ids": job_ids[start:start + PAGE]}
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
            params = {"keys": keys[start:start + PAGE]}
            rows = self._run(lambda conn, _, p=params: conn.execute(J["get_tasks"], p)
                             .fetchall())
            found.update((row[0], Record(*row)) for row in rows)
        return found

    def finish_many(self, finishes: list[tuple[str, str, Outcome]]) -> list[bool]:
        """Each finish as :meth:`finish` fences it, in one statement (atomic on its own)."""
        self._write()
        if not finishes:
            return []
        arrays = _finish_arrays(finishes)

        def work(conn: Connection, attempt: int) -> set[str]:
            # Re-sent after a broken connection, it also recognises the rows its first
            # sending wrote (as finish_again does for one).
            query = J["finish_tasks_again"] if attempt else J["finish_tasks"]
            return {key for (key,) in conn.execute(query, arrays).fetchall()}

        written = self._run(work)
        return [key in written for key, _, _ in finishes]

    def reusable(self, keys: Iterable[str], now: float) -> dict[str, tuple[bool, float]]:
        """The keys among ``keys`` whose task holds a result a run may reuse at ``now``:
        key -> (the result is an inline None, the seconds it once took)."""
        return reusable_pages(lambda params: self._rows(J["reusable_tasks"], params),
                              keys, now, LOOKUP_PAGE)

    def lookup_many(self, keys: Iterable[str]) -> dict[str, Record]:
        """:meth:`get_many` reading only what reusing a kept result needs: the lookup
        columns, ``fn``, ``started_at`` and ``finished_at`` (the rest left at defaults)."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, Record] = {}
        for start in range(0, len(keys), LOOKUP_PAGE):
            params = {"keys": json.dumps(keys[start:start + LOOKUP_PAGE])}
            rows = self._run(lambda conn, _, p=params: conn.execute(J["lookup_tasks"], p)
                             .fetchall())
            found.update((row[0], looked_up(row)) for row in rows)
        return found

    def claim_many(self, claims: list[Claim]) -> list[ClaimResult]:
        """Each claim as :meth:`claim` decides it, all in one transaction; a key claimed
        earlier in the list is ``busy`` for the later claims of it."""
        self._write()
        if not claims:
            return []
        from .postgres import _made_by  # the rule claim() uses to recognise its own write

        # In key order: concurrent batches (other processes) then lock the rows they share
        # in the same order, so they wait for each other instead of deadlocking.
        firsts = sorted({c.key: c for c in reversed(claims)}.values(), key=lambda c: c.key)

        def work(conn: Connection, attempt: int) -> list[ClaimResult]:
            with conn.transaction():
                # New keys are claimed by one insert; the others are locked, then decided.
                new = {r[0] for r in conn.execute(J["claim_new_tasks"], _claim_arrays(firsts))}
                rest = [c.key for c in firsts if c.key not in new]
                current = {}
                if rest:
                    rows = conn.execute(J["lock_tasks"], {"keys": rest}).fetchall()
                    current = {row[0]: Record(*row) for row in rows}
                results, fresh, again = decide_claims(claims, current,
                                                      _made_by if attempt else None)
                vanished = [c for c in fresh if c.key not in new]
                if vanished:  # found by the insert, deleted before the lock: rare
                    made = conn.execute(J["claim_new_tasks"], _claim_arrays(vanished))
                    if len(made.fetchall()) < len(vanished):
                        raise LedgerError("a batch of claims kept racing with deletes; "
                                          "try again")
                if again:
                    conn.execute(J["claim_tasks_again"], _claim_arrays(again))
                return results

        return self._run(work)

    # -- jobs: a run retried (hokuro retry --run) ------------------------------------------
    def requeue_failed(self, run_id: str, now: float) -> list[str]:
        """Queue the failed jobs of a run again, with a fresh count of attempts, and block
        again the descendants their failures cancelled (see ``requeue_plan``); one
        transaction. The ids of the jobs that go back to work (none on a retry after a lost
        connection whose first try committed)."""
        self._write()

        def work(conn: Connection, _: int) -> list[str]:
            with conn.transaction():
                failed = {job_id: _parents(text) for job_id, text in
                          conn.execute(J["failed_jobs"], {"run_id": run_id}).fetchall()}
                if not failed:
                    return []
                below = {job_id: _parents(text) for job_id, text in conn.execute(
                    J["cancelled_below"], {"run_id": run_id, "job_ids": list(failed)})}
                outside = sorted({p for ps in (*failed.values(), *below.values()) for p in ps}
                                 - failed.keys() - below.keys())
                status_of: dict[str, str] = {}
                if outside:
                    status_of.update(conn.execute(J["statuses_of"], {
                        "run_id": run_id, "job_ids": outside}).fetchall())
                changes = requeue_plan(failed, below, status_of)
                rows = conn.execute(J["requeue_jobs"], {
                    "run_id": run_id, "now": now, "job_ids": [c[0] for c in changes],
                    "statuses": [c[1] for c in changes], "waitings": [c[2] for c in changes]})
                written = {row[0] for row in rows.fetchall()}
                return [c[0] for c in changes if c[0] in written]

        return self._run(work)

    # -- plumbing -------------------------------------------------------------------------
    def _job_rows(self, sql: str, params: Any) -> list[Any]:
        """Rows of a read of the runs tables; none on a Spot without them (read as it is)."""
        if not self._has_runs:
            return []
        return self._run(lambda conn, _: conn.execute(sql, params).fetchall())

    def _on_keys(self, query: str, keys: Iterable[tuple[str, str]],
                 **params: Any) -> set[tuple[str, str]]:
        self._write()
        keys = list(keys)
        if not keys:
            return set()
        params.update(run_ids=[k[0] for k in keys], job_ids=[k[1] for k in keys])
        rows = self._run(lambda conn, _: conn.execute(J[query], params).fetchall())
        return {(run_id, job_id) for run_id, job_id in rows}


def _parents(text: str) -> tuple[str, ...]:
    return () if text == "[]" else tuple(json.loads(text))


def _insert(conn: Connection, run_id: str, specs: Iterable[JobSpec], now: float) -> int:
    """Insert the new jobs of ``specs`` (inside the caller's transaction); how many."""
    specs = unique_specs(specs)
    outside = outside_parents(specs)
    done = done_at_insert(specs)
    if outside:
        rows = conn.execute(J["done_among"], {"run_id": run_id, "job_ids": outside})
        done |= {job_id for job_id, status in rows.fetchall() if status == "done"}
    rows = []
    for spec in specs:
        status, waiting = start_of(spec, done)
        rows.append((spec.job_id, spec.node, spec.step, str(status), waiting, spec.scope,
                     spec.priority, float(spec.run_after), encode_parents(spec.parents),
                     None if spec.input is None else spec.input.hex(), spec.task_key,
                     spec.output_key))
    params = {"run_id": run_id, "now": now,
              "rows": json.dumps(rows, separators=(",", ":"), allow_nan=False)}
    try:
        with conn.transaction():  # a savepoint: only this statement is undone on a conflict
            found = conn.execute(J["insert_new_jobs"], params).fetchall()
    except psycopg.errors.UniqueViolation:  # some exist already (a resume): skip those
        found = conn.execute(J["insert_jobs"], params).fetchall()
    new = {row[0] for row in found}
    edges = [(parent, spec.job_id) for spec in specs if spec.job_id in new
             for parent in set(spec.parents)]
    if edges:
        conn.execute(J["insert_edges"], {"run_id": run_id, "parents": [e[0] for e in edges],
                                         "children": [e[1] for e in edges]})
    return len(new)


def _outcome_arrays(group: Sequence[JobOutcome], now: float) -> dict[str, Any]:
    return {"now": now, "run_ids": [o.run_id for o in group],
            "job_ids": [o.job_id for o in group], "owners": [o.owner for o in group],
            "attempts": [o.attempt for o in group], "task_keys": [o.task_key for o in group],
            "output_keys": [o.output_key for o in group],
            "run_afters": [now if o.run_after is None else float(o.run_after) for o in group],
            "errors": [text(o.error) for o in group]}


def _identity(outcome: JobOutcome) -> tuple[Any, ...]:
    """What tells one outcome of a batch from another: its job, claim and status."""
    return outcome.run_id, outcome.job_id, outcome.owner, outcome.attempt, outcome.status


def _committed_before(conn: Connection, outcomes: Sequence[JobOutcome],
                      now: float) -> set[tuple[Any, ...]]:
    rows = conn.execute(J["committed_before"], {
        "now": now, "run_ids": [o.run_id for o in outcomes],
        "job_ids": [o.job_id for o in outcomes], "owners": [o.owner for o in outcomes],
        "attempts": [o.attempt for o in outcomes], "statuses": [o.status for o in outcomes]})
    return set(rows.fetchall())


def _effects(conn: Connection, kept: Sequence[JobOutcome], now: float) -> None:
    """What the written outcomes cause: dones count down their children and insert their
    fan-out; failures and cancellations cancel their descendants; resets restart chains."""
    done = [o for o in kept if o.status == "done"]
    if done:
        conn.execute(J["count_down"], {"now": now, "run_ids": [o.run_id for o in done],
                                       "job_ids": [o.job_id for o in done]})
        children: dict[str, list[JobSpec]] = {}
        for outcome in done:
            children.setdefault(outcome.run_id, []).extend(outcome.children)
        for run_id, specs in children.items():
            if specs:
                _insert(conn, run_id, specs, now)
    ended = [o for o in kept if o.status in ("failed", "cancelled")]
    if ended:
        conn.execute(J["cancel_below"], {
            "now": now, "run_ids": [o.run_id for o in ended],
            "job_ids": [o.job_id for o in ended],
            "errors": [text(o.error) if o.status == "cancelled"
                       else f"upstream failed: {o.job_id}" for o in ended]})
    for outcome in kept:
        if outcome.status == "reset":
            _reset_chain(conn, outcome.run_id, outcome.job_id, now)


def _reset_chain(conn: Connection, run_id: str, job_id: str, now: float) -> None:
    chain = conn.execute(J["chain_above"], {"run_id": run_id, "job_id": job_id}).fetchall()
    was_done, restarted = chain_restart(chain)
    if was_done:
        conn.execute(J["wait_again"], {"run_id": run_id, "job_ids": was_done, "now": now})
    conn.execute(J["reset_jobs"], {
        "run_id": run_id, "now": now, "job_ids": [r[0] for r in restarted],
        "statuses": [r[1] for r in restarted], "waitings": [r[2] for r in restarted],
        "resets": [r[3] for r in restarted]})


def _finish_arrays(tasks: Sequence[tuple[str, str, Outcome]]) -> dict[str, Any]:
    outcomes = [t[2] for t in tasks]
    return {"keys": [t[0] for t in tasks], "owners": [t[1] for t in tasks],
            "statuses": [o.status for o in outcomes], "results": [o.result for o in outcomes],
            "blobs": [o.blob for o in outcomes], "codecs": [o.codec for o in outcomes],
            "content_types": [o.content_type for o in outcomes],
            "sizes": [o.size for o in outcomes], "checksums": [o.checksum for o in outcomes],
            "error_types": [o.error_type for o in outcomes],
            "errors": [text(o.error) for o in outcomes],
            "error_fingerprints": [o.error_fingerprint for o in outcomes],
            "logs": [text(o.log) for o in outcomes],
            "log_blobs": [o.log_blob for o in outcomes],
            "finished_ats": [o.finished_at for o in outcomes],
            "expires_ats": [o.expires_at for o in outcomes]}


def _claim_arrays(claims: Sequence[Claim]) -> dict[str, Any]:
    return {"keys": [c.key for c in claims], "fns": [c.fn for c in claims],
            "fn_paths": [c.fn_path for c in claims], "idents": [c.ident for c in claims],
            "args": [c.args for c in claims], "versions": [c.version for c in claims],
            "owners": [c.owner for c in claims],
            "lease_untils": [c.lease_until for c in claims],
            "nows": [c.now for c in claims]}
