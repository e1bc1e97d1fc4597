"""Rows of the runs and jobs tables as the plain data of :mod:`hokuro.model.jobs`, for both
SQL ledgers: the column lists their statements select, and the conversions back.

A job's parents are kept as a JSON list (an opaque string per parent, in argument order):
the same text on SQLite and PostgreSQL, read by SQLite's ``json_each`` and PostgreSQL's
``jsonb_array_elements_text`` when a reset walks a chain upwards.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import fields
from typing import Any

from ...errors import LedgerError, RunCancelled
from ...model.jobs import Job, JobOutcome, JobSpec, JobStatus, RunRecord, RunStatus
from ...model.records import Claim, ClaimResult, Record, Status, decide_claim

#: Columns of ``jobs`` in the order of :class:`Job`'s fields: ``job_from_row`` builds a Job.
JOB_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Job))
#: Columns of ``runs`` in the order of :class:`RunRecord`'s fields.
RUN_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(RunRecord))
#: Where ``job_id`` is in a job row (pages of ``find_jobs`` resume after it).
JOB_ID = JOB_COLUMNS.index("job_id")
_INPUTS_DONE = RUN_COLUMNS.index("inputs_done")
#: What ``update_run`` may change (``updated_at`` is always written).
RUN_FIELDS = ("status", "cursor", "inputs_done", "finished_at", "error")
#: Outcome statuses ``commit`` writes, and the order it applies them in: a batch's dones
#: count down (and insert fan-out children) before failures cancel descendants.
OUTCOME_STATUSES = ("done", "waiting", "queued", "failed", "cancelled", "reset")
#: Jobs per page of ``find_jobs``; keys per statement of ``get_many``.
PAGE = 500


def encode_parents(parents: Iterable[str]) -> str:
    if parents == ():  # a root job (most of a batch's): spare it the JSON encoder
        return "[]"
    return json.dumps(list(parents), separators=(",", ":"))


def job_from_row(row: Sequence[Any]) -> Job:
    job = Job(*row)
    # Most jobs are roots or have one parent: spare them the JSON decoder.
    parents = job.parents
    job.parents = () if parents == "[]" else tuple(json.loads(parents))  # type: ignore[arg-type]
    return job


def looked_up(row: Sequence[Any]) -> Record:
    """A record from a ``lookup_tasks`` row: key, the lookup columns, fn, started_at,
    finished_at."""
    return Record(*row[:9], fn=row[9], started_at=row[10], finished_at=row[11])


def in_claim_order(jobs: list[Job], scopes: Sequence[str] | None) -> list[Job]:
    """Claimed ``jobs`` in the claim's order (RETURNING gives rows in the order they were
    written): scope position in ``scopes``, priority (highest first), run_after, seq."""
    position = {} if scopes is None else {s: i for i, s in reversed(list(enumerate(scopes)))}
    jobs.sort(key=lambda j: (position.get(j.scope, 0), -j.priority, j.run_after, j.seq))
    return jobs


def run_from_row(row: Sequence[Any]) -> RunRecord:
    values = list(row)
    values[_INPUTS_DONE] = bool(values[_INPUTS_DONE])
    return RunRecord(*values)


def run_params(run: RunRecord) -> dict[str, Any]:
    return {name: getattr(run, name) for name in RUN_COLUMNS}


def run_update_params(run_id: str, fields_: dict[str, Any], now: float) -> dict[str, Any]:
    """Parameters of ``update_run``: each field with its ``set_<field>`` flag."""
    unknown = set(fields_) - {*RUN_FIELDS, "updated_at"}
    if unknown:
        raise LedgerError(f"update_run cannot change {', '.join(sorted(unknown))}; it changes "
                          f"{', '.join(RUN_FIELDS)} (and updated_at)")
    params: dict[str, Any] = {"id": run_id, "updated_at": fields_.get("updated_at", now)}
    for name in RUN_FIELDS:
        params[f"set_{name}"] = name in fields_
        params[name] = fields_.get(name)
    if params["inputs_done"] is not None:
        params["inputs_done"] = bool(params["inputs_done"])
    return params


def unique_specs(specs: Iterable[JobSpec]) -> list[JobSpec]:
    """``specs`` without repeated job ids (the first one wins, as in the ledger)."""
    seen: dict[str, JobSpec] = {}
    for spec in specs:
        seen.setdefault(spec.job_id, spec)
    return list(seen.values())


def outside_parents(specs: Sequence[JobSpec]) -> list[str]:
    """The parents of ``specs`` that are not themselves among ``specs`` (only those can be
    done already), each once."""
    ids = {spec.job_id for spec in specs}
    return sorted({p for spec in specs for p in spec.parents if p not in ids})


def start_of(spec: JobSpec, done: set[str]) -> tuple[str, int]:
    """(status, waiting) of a new job: blocked on its distinct parents not done yet, else
    queued. Parents already done count as done: a resumed insert never blocks forever.
    A spec that names its task (already done) is inserted done."""
    if spec.task_key is not None:
        return JobStatus.DONE, 0
    waiting = len(set(spec.parents) - done)
    return (JobStatus.BLOCKED if waiting else JobStatus.QUEUED), waiting


def refuse_if_cancelled(rows: Sequence[Sequence[Any]], run_id: str) -> None:
    """Raise :class:`RunCancelled` when a ``run_status`` read found the run cancelled: such
    a run takes no new jobs (a window of inputs read while the cancel was being committed),
    so a cancel leaves nothing open behind it. A run without a record (jobs inserted by
    hand) takes them."""
    if rows and rows[0][0] == RunStatus.CANCELLED:
        raise RunCancelled(f"run {run_id[:8]} was cancelled: it takes no new jobs")


def done_at_insert(specs: Iterable[JobSpec]) -> set[str]:
    """The jobs of ``specs`` inserted done: their children in the same insert count them
    as done parents."""
    return {spec.job_id for spec in specs if spec.task_key is not None}


def chain_restart(chain: Sequence[tuple[str, str, str, int]]
                  ) -> tuple[list[str], list[tuple[str, str, int, int]]]:
    """A reset of ``chain`` (rows of job_id, status, parents, resets: a job and all its
    ancestors): the members that were done, and each member's new (job_id, status, waiting,
    resets). Every member waits for all its parents again (they are all in the chain); each
    carries the chain's count of resets, so the job that asks for the next one sees it."""
    resets = max(row[3] for row in chain) + 1
    was_done = [row[0] for row in chain if row[1] == JobStatus.DONE]
    restarted = []
    for job_id, _status, parents, _resets in chain:
        waiting = len(set(json.loads(parents or "[]")))
        status = JobStatus.BLOCKED if waiting else JobStatus.QUEUED
        restarted.append((job_id, str(status), waiting, resets))
    return was_done, restarted


def check_outcomes(outcomes: Iterable[JobOutcome]) -> None:
    for outcome in outcomes:
        if outcome.status not in OUTCOME_STATUSES:
            raise LedgerError(
                f"job {outcome.job_id} of run {outcome.run_id}: outcome status "
                f"{outcome.status!r} is not one of {', '.join(OUTCOME_STATUSES)}")


def decide_claims(claims: Sequence[Claim], current: dict[str, Record],
                  ours: Callable[[Record, Claim], bool] | None = None
                  ) -> tuple[list[ClaimResult], list[Claim], list[Claim]]:
    """``claim_many``'s decisions, given the ``current`` records of their keys (locked):
    the results in order, the claims that make a new record and those that take an
    existing one. A key claimed earlier in the batch is ``busy`` for its later claims.
    ``ours(record, claim)`` recognises a record a previous try of this batch wrote."""
    results: list[ClaimResult] = []
    fresh: list[Claim] = []
    again: list[Claim] = []
    claimed: dict[str, tuple[Claim, int, Record | None]] = {}
    for claim in claims:
        if claim.key in claimed:
            results.append(ClaimResult("busy", _running(*claimed[claim.key])))
            continue
        before = current.get(claim.key)
        if ours is not None and before is not None and ours(before, claim):
            results.append(ClaimResult("claimed", None, before.attempts))
            claimed[claim.key] = (claim, before.attempts, before)
            continue
        outcome = decide_claim(before, claim)
        if outcome != "claimed":
            results.append(ClaimResult(outcome, before))
            continue
        attempt = 1 if before is None else before.attempts + 1
        (fresh if before is None else again).append(claim)
        results.append(ClaimResult("claimed", before, attempt))
        claimed[claim.key] = (claim, attempt, before)
    return results, fresh, again


def _running(claim: Claim, attempt: int, before: Record | None) -> Record:
    """The record a claim made (what a later claim of its key in the batch finds)."""
    return Record(key=claim.key, status=Status.RUNNING, fn=claim.fn, owner=claim.owner,
                  lease_until=claim.lease_until, attempts=attempt, started_at=claim.now,
                  created_at=before.created_at if before else claim.now, updated_at=claim.now)


def claim_params(claim: Claim) -> dict[str, Any]:
    return {"key": claim.key, "fn": claim.fn, "fn_path": claim.fn_path, "ident": claim.ident,
            "args": claim.args, "version": claim.version, "owner": claim.owner,
            "lease_until": claim.lease_until, "now": claim.now}


#: Statuses of a job still on its way: a job blocked on one of them will be counted down.
_OPEN = frozenset({JobStatus.BLOCKED, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.WAITING})


def requeue_plan(failed: dict[str, tuple[str, ...]], cancelled: dict[str, tuple[str, ...]],
                 status_of: dict[str, str]) -> list[tuple[str, str, int]]:
    """What ``requeue_failed`` writes: (job_id, status, waiting) for every failed job and for
    each cancelled descendant (``cancelled``: job id -> parents) that can finish again.

    A descendant goes back only when every parent is done, goes back itself, or is still on
    its way (``status_of`` gives the others' statuses): one whose other parent was cancelled
    for another reason (a ``Cancel``, a cancelled run) would wait for it forever, so it stays
    cancelled, and so do its own descendants. Each job waits for its distinct parents that
    are not done; one waiting for none is queued."""
    again = dict(failed)
    pending = {job_id: parents for job_id, parents in cancelled.items() if job_id not in again}
    grew = True
    while grew:
        grew = False
        for job_id, parents in list(pending.items()):
            if any(p in again for p in parents) and all(
                    p in again or status_of.get(p) == JobStatus.DONE or status_of.get(p) in _OPEN
                    for p in parents):
                again[job_id] = pending.pop(job_id)
                grew = True
    changes = []
    for job_id, parents in again.items():
        waiting = len({p for p in parents if p in again or status_of.get(p) != JobStatus.DONE})
        changes.append((job_id, str(JobStatus.BLOCKED if waiting else JobStatus.QUEUED),
                        waiting))
    return changes


def page_jobs(rows: Callable[[dict[str, Any]], list[Any]], run_id: str, status: str | None,
              limit: int | None) -> Iterator[Job]:
    """``find_jobs`` for both dialects: the run's jobs in job id order, in pages (each its own
    query, ``rows``, so no statement stays open and no connection is held while a slow
    caller iterates), each page a seek in the (run_id, job_id) key after the last."""
    after, remaining = "", limit
    while remaining is None or remaining > 0:
        page = PAGE if remaining is None else min(PAGE, remaining)
        found = rows({"run_id": run_id, "status": status, "after": after, "page": page})
        yield from (job_from_row(row) for row in found)
        if len(found) < page:
            return
        after = found[-1][JOB_ID]
        if remaining is not None:
            remaining -= len(found)



def reusable_pages(rows: Callable[[dict[str, Any]], list[Any]], keys: Iterable[str],
                   now: float, page: int) -> dict[str, tuple[bool, float]]:
    """``reusable`` for both dialects: the keys looked up ``page`` at a time (each page its
    own query, ``rows``, the keys as one JSON parameter)."""
    keys = list(dict.fromkeys(keys))
    found: dict[str, tuple[bool, float]] = {}
    for start in range(0, len(keys), page):
        params = {"keys": json.dumps(keys[start:start + page]), "now": now}
        found.update((key, (bool(nil), took)) for key, nil, took in rows(params))
    return found
