"""The ``workers`` table for both SQL ledgers: registering, heartbeats, listing, and the two
questions a worker asks between claims (when is the next job due; is this run finished).

One mixin serves both dialects: the statements differ only in their parameter style, and
each ledger gives its own ``_worker_rows`` (a read) and ``_worker_write`` (a write).
A ledger of an older schema read as it is has no ``workers`` table: it lists no workers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any

from ...model.jobs import Job
from ...model.workers import WorkerRecord
from .job_rows import job_from_row
from .queries import load_queries

#: The first schema with the workers table (and, on PostgreSQL, the wake-up trigger).
WORKERS_SCHEMA = 4
_COLUMNS = tuple(f.name for f in fields(WorkerRecord))


class WorkerRows:
    """Workers' operations of the SQL ledgers (a mixin)."""

    #: False for a ledger of an older schema opened read-only: it has no workers table.
    _has_workers = True
    _worker_dialect = "sqlite"

    def _wq(self, name: str) -> str:
        return load_queries(f"{self._worker_dialect}_workers")[name]

    def register_worker(self, worker: WorkerRecord) -> None:
        """Record a worker that starts (or says again that it runs)."""
        self._worker_write(self._wq("register_worker"), asdict(worker))

    def beat_worker(self, worker_id: str, now: float, *, running: int, done: int,
                    status: str | None = None) -> bool:
        """A heartbeat with the worker's counts (and a new status: stopping, stopped).
        False when the worker's row is gone."""
        return bool(self._worker_write(self._wq("beat_worker"), {
            "id": worker_id, "now": now, "running": running, "done": done,
            "status": None if status is None else str(status)}))

    def list_workers(self, limit: int = 1000) -> list[WorkerRecord]:
        """Workers, the newest started first."""
        if not self._has_workers:
            return []
        rows = self._worker_rows(self._wq("list_workers"), {"limit": limit})
        return [WorkerRecord(**dict(zip(_COLUMNS, row, strict=True))) for row in rows]

    def forget_workers(self, before: float) -> int:
        """Delete the rows of workers that stopped before ``before``; how many."""
        return self._worker_write(self._wq("forget_workers"), {"before": before})

    def next_due(self, runs: list[str] | None = None, scopes: list[str] | None = None
                 ) -> float | None:
        """When the first job of ``runs`` (None: of every run) in ``scopes`` (None: any)
        is claimable: the earliest run_after of a queued or waiting job, or lease end of a
        running one."""
        if runs == [] or scopes == []:
            return None
        rows = self._worker_rows(self._wq("next_due"), {"runs": self._list_param(runs),
                                                         "scopes": self._list_param(scopes)})
        return rows[0][0] if rows else None

    def finish_run_if_ended(self, run_id: str, was: str, now: float) -> bool:
        """Mark run ``run_id`` done (or failed, when some of its jobs failed or were
        cancelled) if its status is still ``was``, its inputs were all read and no job of it
        is open; True when this call finished it."""
        return bool(self._worker_write(self._wq("finish_run"),
                                       {"run_id": run_id, "was": str(was), "now": now}))

    def take_job(self, run_id: str, job_id: str, *, expected: str, owner: str, now: float,
                 lease_until: float, count_attempt: bool) -> Job | None:
        """Move a running job from owner ``expected`` to ``owner`` (a new lease; one more
        attempt when ``count_attempt``): the job as taken, or None when ``expected`` no
        longer holds it. A take whose reply was lost reads as taken when ``owner`` holds
        the job at ``lease_until``."""
        params = {"run_id": run_id, "job_id": job_id, "expected": expected, "owner": owner,
                  "now": now, "lease_until": lease_until, "counted": int(count_attempt)}
        rows = self._worker_returning(self._wq("take_job"), params)
        if rows:
            return job_from_row(rows[0])
        for job in self.get_jobs(run_id, [job_id]):  # type: ignore[attr-defined]
            if job.owner == owner and job.lease_until == lease_until \
                    and job.status == "running":
                return job
        return None

    def _list_param(self, values: list[str] | None) -> Any:
        if values is None:
            return None
        return json.dumps(values) if self._worker_dialect == "sqlite" else list(values)

    # Each ledger gives these two.
    def _worker_rows(self, sql: str, params: dict[str, Any]) -> list[Any]:
        raise NotImplementedError

    def _worker_write(self, sql: str, params: dict[str, Any]) -> int:
        raise NotImplementedError

    def _worker_returning(self, sql: str, params: dict[str, Any]) -> list[Any]:
        raise NotImplementedError
