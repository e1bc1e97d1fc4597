"""Reads for people, shared by both SQL ledgers (a mixin): one page of a listing resumed
after a cursor, finished tasks per time bucket, and the jobs in each queue lane now.

The dashboard calls them on every page view or live update, so each is one statement
through an index the schema already has (``sql/<dialect>_readings.sql``), and none writes:
they serve a ledger opened read-only (invariant 6). A ledger of an older schema without the
runs tables reads as having no jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...model.records import Record
from .base import find_records


@dataclass(slots=True)
class QueueDepth:
    """Jobs waiting in one lane (scope and priority): claimable now, and due later."""

    scope: str
    priority: int
    ready: int
    later: int
    #: When the first of them is (or was) due, epoch seconds.
    first_due: float | None


@dataclass(slots=True)
class HeldJobs:
    """Jobs an owner holds now in one scope, and when the first of their leases ends."""

    scope: str
    owner: str | None
    count: int
    lease_until: float | None


class LedgerReadings:
    """The reads of :mod:`hokuro.store.ledger.readings`; a SQL ledger sets ``_READINGS``
    (its dialect's named statements) and ``_PLACEHOLDER``, and has ``_rows`` (one statement,
    all its rows) and ``_job_rows`` (the same, none without the runs tables)."""

    _READINGS: dict[str, str]
    _PLACEHOLDER: str

    def _rows(self, sql: str, params: Any) -> list[Any]:  # pragma: no cover - each ledger's
        raise NotImplementedError

    def _job_rows(self, sql: str, params: Any) -> list[Any]:  # pragma: no cover
        raise NotImplementedError

    def find_page(self, *, after: tuple[float, str] | None = None, limit: int = 50,
                  **filters: Any) -> list[Record]:
        """Up to ``limit`` records matching ``filters`` (those of ``TaskDB.find``), newest
        first, after the (updated_at, key) of the previous page's last row: each page is
        one indexed range, however deep it is (keyset paging, never OFFSET)."""
        return list(find_records(self._rows, self._PLACEHOLDER, limit=limit, after=after,
                                 **filters))

    def collections(self, limit: int = 1000) -> list[str]:
        """The names of the collections that have records, sorted (at most ``limit``): one
        index seek per name, so it costs the same on a million records as on ten."""
        return [row[0] for row in self._rows(self._READINGS["collections"], {"limit": limit})]

    def throughput(self, since: float, *, fn: str | None = None, bucket: float = 60.0
                   ) -> list[tuple[float, str, int]]:
        """(bucket start, status, count) of tasks that finished ``done`` or ``failed`` since
        ``since``, in buckets of ``bucket`` seconds (of ``fn`` only, when given)."""
        params: dict[str, Any] = {"since": since, "bucket": bucket}
        if fn is not None:
            params["fn"] = fn
        rows = self._rows(self._READINGS["throughput_fn" if fn is not None else "throughput"],
                          params)
        return [(int(start) * bucket, str(status), int(count)) for start, status, count in rows]

    def queue_depths(self, now: float) -> list[QueueDepth]:
        """Queued and waiting jobs of every run per scope and priority (highest first):
        claimable at ``now`` and due later."""
        return [QueueDepth(scope, int(priority), int(ready or 0), int(later or 0), first)
                for scope, priority, ready, later, first in
                self._job_rows(self._READINGS["queue_depths"], {"now": now})]

    def running_jobs(self) -> list[HeldJobs]:
        """Running jobs per scope and owner."""
        return [HeldJobs(scope, owner, int(count), lease)
                for scope, owner, count, lease in
                self._job_rows(self._READINGS["running_jobs"], {})]
