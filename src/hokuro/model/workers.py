"""Workers as the ledger keeps them: one ``workers`` row per ``hokuro worker`` process.

A worker registers itself when it starts, beats (``heartbeat_at``, its counts) while it runs,
and says ``stopped`` when it ends. One that stops beating without saying so (kill -9, a lost
machine) is *lost*: it is read as lost once its heartbeat is older than
:data:`LOST_AFTER` beats, and its jobs go back to the queue when their leases run out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

#: Seconds between two heartbeats of a worker.
HEARTBEAT = 5.0
#: A worker that missed this many heartbeats in a row is read as lost.
LOST_AFTER = 3


class WorkerStatus(StrEnum):
    RUNNING = "running"
    STOPPING = "stopping"  # stopped claiming (SIGTERM, Ctrl-C, --max-jobs): finishing
    STOPPED = "stopped"
    LOST = "lost"  # never stored: read from a heartbeat too old


@dataclass(slots=True)
class WorkerRecord:
    """The stored row of a worker (the ``workers`` table)."""

    id: str  # its owner token: the jobs it holds carry the same
    host: str
    pid: int
    scopes: str | None  # the scopes it serves, comma separated, in order; None: every scope
    concurrency: int
    started_at: float
    heartbeat_at: float
    status: str
    running: int = 0  # jobs running now
    done: int = 0  # jobs ended since it started
    stopped_at: float | None = None
    every: float = HEARTBEAT  # its heartbeat interval

    def seen_as(self, now: float) -> str:
        """Its status as read at ``now``: a running worker whose heartbeat is too old is
        lost."""
        if self.status != WorkerStatus.STOPPED and \
                now - self.heartbeat_at > LOST_AFTER * self.every:
            return WorkerStatus.LOST
        return self.status

    @property
    def scope_list(self) -> list[str] | None:
        return None if self.scopes is None else self.scopes.split(",")
