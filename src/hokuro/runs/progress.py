"""A live display of a run on a terminal: one bar per step, read from the ledger's counts.

The display polls ``run_counts`` twice a second from its own coroutine instead of being told
about every job, so it costs the executor nothing per job. A count reads every job of the
run, so a large run is counted less often: never more than a tenth of the time goes to
counting (a run of 1,000,000 jobs, counted in about half a second, every five seconds),
and never less often than every five seconds.
It is shown only on a terminal (or when asked); ``progress=False`` or a pipe keep the run
quiet.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..model.jobs import JobStatus

#: Seconds between two refreshes of the display, at least.
REFRESH = 0.5
#: The share of the time the display may spend counting the run's jobs.
COUNTING = 0.1
#: Seconds between two refreshes, at most (one slow count, waiting for a busy ledger, does
#: not freeze the display).
LONGEST = 5.0


def pause_after(took: float) -> float:
    """Seconds to wait before the next count, after a count that took ``took`` seconds."""
    return min(LONGEST, max(REFRESH, took / COUNTING))


def wanted(progress: bool | None) -> bool:
    if progress is not None:
        return bool(progress)
    return sys.stderr.isatty()


class RunProgress:
    """Bars per node of a run: done / total, rate and time left, and what waits or failed."""

    def __init__(self, run_id: str, ledger: Any, tally: Any,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.run_id = run_id
        self.ledger = ledger
        self.tally = tally
        self.clock = clock  # times the counts (tests put a fake clock here)
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
            TextColumn("{task.fields[extra]}"), transient=False, refresh_per_second=4)
        self.bars: dict[str, Any] = {}

    async def follow(self, loop: asyncio.AbstractEventLoop, pool: Any,
                     sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        """Show the run's counts until cancelled (the run has ended), then once more."""
        with self.progress:
            try:
                while True:
                    counts, took = await loop.run_in_executor(pool, self._count)
                    self.show(counts)
                    await sleep(pause_after(took))
            except asyncio.CancelledError:
                counts, _ = await loop.run_in_executor(pool, self._count)
                self.show(counts)
                raise

    def _count(self) -> tuple[dict[tuple[str, str], int], float]:
        """The run's jobs per (node, status), and the seconds that took."""
        started = self.clock()
        counts = self.ledger.run_counts(self.run_id)
        return counts, self.clock() - started

    def show(self, counts: dict[tuple[str, str], int]) -> None:
        nodes: dict[str, dict[str, int]] = {}
        for (node, status), n in counts.items():
            nodes.setdefault(node, {})[status] = n
        for node, by_status in sorted(nodes.items()):
            total = sum(by_status.values())
            finished = sum(by_status.get(s, 0) for s in
                           (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED))
            node_tally = self.tally.by_node.get(node, {})
            extra = []
            for label, n in (("reused", node_tally.get("reused", 0)),
                             ("waiting", by_status.get(JobStatus.WAITING, 0)),
                             ("failed", by_status.get(JobStatus.FAILED, 0)),
                             ("cancelled", by_status.get(JobStatus.CANCELLED, 0))):
                if n:
                    extra.append(f"{n} {label}")
            bar = self.bars.get(node)
            if bar is None:
                bar = self.bars[node] = self.progress.add_task(node, total=total, rate="",
                                                               extra="")
            task = self.progress.tasks[bar]
            speed = task.speed
            self.progress.update(bar, total=total, completed=finished,
                                 rate=f"{speed:.0f}/s" if speed else "",
                                 extra=", ".join(extra))

    def watch(self, run: Any) -> None:
        """Show the run until it has ended (a run that workers execute elsewhere)."""
        with self.progress:
            due = 0.0
            while True:  # the run's end is seen within REFRESH; counts come when due
                ended = run.refresh().status not in ("submitted", "running")
                if ended or time.monotonic() >= due:
                    counts, took = self._count()
                    self.show(counts)
                    due = time.monotonic() + pause_after(took)
                if ended:
                    return
                time.sleep(REFRESH)
