"""Cancelling a run's jobs: every job not done becomes cancelled, and nothing brings it back.

The ledger needs no statement of its own for this: the canceller claims the run's jobs as
an executor does, with a claim time far enough ahead that every queued and waiting job is
due and every lease has run out — the running jobs of a live owner included — and commits
each claimed job as cancelled. A claim raises the job's attempt number and makes the
canceller its owner, and the store writes an outcome only while the (owner, attempt) of
its claim still holds the job. So whatever the previous owner commits for a job later is
refused: a cancelled job is never resurrected by a late result, its fan-out children are
never inserted, its children never counted down. (The late task itself is still recorded:
its work was done, and a later run reuses it.) Blocked jobs wait for one of these, and a
cancelled job cancels its descendants, so they go too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..model.jobs import FINAL_JOB_STATUSES, JobOutcome, JobStatus

#: How far ahead the canceller's claims look: past any lease and any poll or retry delay.
AHEAD = 100 * 365 * 86400.0
#: Jobs claimed and cancelled per transaction.
BATCH = 500
#: Sweeps over the run before the jobs still open are reported: on PostgreSQL a claim skips
#: rows another transaction holds at that instant (SKIP LOCKED), to be caught by the next.
SWEEPS = 20


def open_jobs(ledger: Any, run_id: str) -> int:
    """Jobs of the run that are not done, failed or cancelled."""
    return sum(n for (_, status), n in ledger.run_counts(run_id).items()
               if status not in FINAL_JOB_STATUSES)


def cancel_jobs(ledger: Any, run_id: str, owner: str, clock: Callable[[], float], *,
                reason: str, lease: float = 60.0) -> tuple[int, int]:
    """Cancel every open job of run ``run_id`` with the error ``reason``: (how many were
    cancelled here, how many are still open — 0 unless another process keeps adding jobs)."""
    cancelled = 0
    for sweep in range(SWEEPS):
        while True:
            now = clock()
            # The claim's "now" is only a bound for due times and leases; the lease it
            # writes is a real one, so a canceller killed here hands the jobs back in time.
            jobs = ledger.claim_jobs(owner, now + AHEAD, now + lease, BATCH, run_id=run_id)
            if not jobs:
                break
            written = ledger.commit([
                JobOutcome(run_id=job.run_id, job_id=job.job_id, owner=owner,
                           attempt=job.attempts, status=JobStatus.CANCELLED, error=reason)
                for job in jobs], [], clock())
            cancelled += sum(written)
        left = open_jobs(ledger, run_id)
        if not left:
            return cancelled, 0
        time.sleep(min(0.01 * 2 ** sweep, 0.2))
    return cancelled, left
