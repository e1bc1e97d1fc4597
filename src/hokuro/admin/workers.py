"""Workers as people read them (``hokuro workers SPOT``, later the dashboard).

Reading never writes (invariant 6): the ledger is read as it is; one without the workers
table (an older schema read in place, or a ledger that keeps no runs) lists no workers. A
worker whose heartbeat is too old is shown as lost (``WorkerRecord.seen_as``): its jobs go
back to the queue when their leases run out, and any other worker claims them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..model.workers import WorkerRecord, WorkerStatus

__all__ = ["WorkerRow", "list_workers"]


@dataclass(slots=True)
class WorkerRow:
    """A worker and how it reads now (``status``: running, stopping, stopped or lost)."""

    record: WorkerRecord
    status: str

    @property
    def lost(self) -> bool:
        return self.status == WorkerStatus.LOST


def list_workers(ledger: Any, *, now: float | None = None, stopped: bool = True,
                 limit: int = 1000) -> list[WorkerRow]:
    """The workers of a ledger, the newest started first; ``stopped=False`` leaves out
    those that stopped."""
    if not hasattr(ledger, "list_workers"):
        return []
    now = time.time() if now is None else now
    rows = [WorkerRow(record, record.seen_as(now)) for record in ledger.list_workers(limit)]
    if not stopped:
        rows = [row for row in rows if row.status != WorkerStatus.STOPPED]
    return rows
