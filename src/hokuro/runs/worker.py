"""A worker process: ``hokuro worker SPOT`` serves the submitted runs of a Spot until stopped.

The loop is :class:`~hokuro.runs.serving.ServingExecutor`; around it a worker

- registers itself in the ledger's ``workers`` table (host, pid, scopes, concurrency,
  started) and beats every :data:`~hokuro.model.workers.HEARTBEAT` seconds with its counts
  (jobs running, jobs ended); ``hokuro workers SPOT`` lists them, a silent one as lost;
- wakes on the ledger's news (``runs/waking.py``) rather than polling;
- stops gracefully on SIGTERM or Ctrl-C (SIGINT): it stops claiming, lets the running jobs
  finish for up to ``grace`` seconds, then cancels what still runs and hands those jobs
  back without counting an attempt; a second signal skips the rest of the grace. Jobs it
  had claimed but not started go back at once. ``max_jobs`` ends it after that many jobs.

A worker killed outright (kill -9, a lost machine) leaves its jobs running under its
lease: any other worker claims them once the lease has run out (at once for a dead process
of the same host when a worker starts), and the attempt number fences off whatever the
lost worker might still write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError
from ..model.workers import HEARTBEAT, WorkerRecord, WorkerStatus
from .executor import Options
from .resolving import Hook, StepResolver
from .serving import ServingExecutor
from .waking import wakeup_for

log = logging.getLogger("hokuro")

#: Seconds a stopped worker lets its running jobs finish, by default.
GRACE = 30.0
#: Rows of workers that stopped longer ago than this are deleted when a worker starts.
FORGET_AFTER = 7 * 86400.0


@dataclass(slots=True)
class WorkerReport:
    """What a worker did, when it ends."""

    id: str
    claimed: int
    ended: int
    handed_back: int
    seconds: float


class Worker:
    """Serves ``spot``'s submitted runs (see the module's docstring)."""

    def __init__(self, spot: Any, *, scopes: list[str] | None = None, concurrency: int = 32,
                 max_jobs: int | None = None, grace: float = GRACE,
                 hooks: Mapping[str, Hook] | None = None, heartbeat: float = HEARTBEAT,
                 say: Callable[[str], None] | None = None,
                 plans: dict[str, Any] | None = None) -> None:
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError("concurrency must be a whole number >= 1")
        if max_jobs is not None and max_jobs < 1:
            raise ConfigurationError("max_jobs must be a whole number >= 1 (or None)")
        if grace < 0:
            raise ConfigurationError("grace must be a number of seconds >= 0")
        if scopes is not None:
            scopes = [s.strip() for s in scopes if s.strip()]
            if not scopes:
                raise ConfigurationError("give at least one scope, or none to serve every "
                                         "scope")
        if not getattr(spot.ledger, "supports_runs", False) or not hasattr(
                spot.ledger, "register_worker"):
            raise ConfigurationError(f"the ledger {spot.ledger.describe()} keeps no runs or "
                                     "workers; workers need the SQLite or PostgreSQL ledger")
        self.spot = spot
        self.scopes = scopes
        self.concurrency = concurrency
        self.grace = grace
        self.heartbeat = heartbeat
        self.say = say or (lambda text: None)
        resolver = StepResolver(spot, hooks, ledger=spot.ledger)
        # plans: serve only these runs, with these plan objects (a forked local worker).
        self.executor = ServingExecutor(spot, resolver, Options(concurrency=concurrency),
                                        scopes=scopes, max_jobs=max_jobs, plans=plans)
        self.id = self.executor.owner
        self._stopping = False
        self._abandon_at: float | None = None

    # -- running ------------------------------------------------------------------------------
    def run(self) -> WorkerReport:
        """Serve until stopped (a signal, ``max_jobs``, :meth:`stop`)."""
        return asyncio.run(self.serve())

    async def serve(self) -> WorkerReport:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        await loop.run_in_executor(None, self._register)
        wakeup = wakeup_for(self.spot.ledger, self.executor.signal)
        if wakeup is not None:
            wakeup.start()
        self.executor.listening = wakeup is not None and bool(
            getattr(self.spot.ledger, "notify_channel", None))
        self._install_signals(loop)
        beating = loop.create_task(self._beat())
        serves = ", ".join(self.scopes) if self.scopes else "every scope"
        self.say(f"worker {self.id} serving {serves} of {self.spot.ledger.describe()}, "
                 f"concurrency {self.concurrency}")
        handed_back = 0
        abandoned: list[tuple[str, str]] | None = None
        running = loop.create_task(self.executor.execute())
        try:
            while not running.done():
                await asyncio.wait({running}, timeout=0.2)
                if self._abandon_at is not None and time.monotonic() >= self._abandon_at \
                        and abandoned is None:
                    abandoned = self.executor.abandon()
            await running
        finally:
            beating.cancel()
            await asyncio.gather(beating, return_exceptions=True)
            self._remove_signals(loop)
            if wakeup is not None:
                await loop.run_in_executor(None, wakeup.stop)
            keys = abandoned or []
            if keys or self.executor._tasks_held:
                handed_back = await loop.run_in_executor(None, self.executor.hand_back, keys)
            await loop.run_in_executor(None, self._beat_once, WorkerStatus.STOPPED)
        report = WorkerReport(self.id, self.executor.claimed_total, self.executor.ended,
                              handed_back, time.monotonic() - started)
        self.say(f"worker {self.id} stopped: {report.ended} jobs ended, "
                 f"{report.handed_back} handed back")
        return report

    def stop(self, grace: float | None = None) -> None:
        """Stop claiming; running jobs get ``grace`` seconds (default: the worker's) to
        finish. Called again, the grace ends now. (From the worker's event loop.)"""
        now = time.monotonic()
        if self._stopping:
            self._abandon_at = now
            return
        self._stopping = True
        self._abandon_at = now + (self.grace if grace is None else grace)
        self.executor.stop()
        self.say(f"worker {self.id} stopping: no new jobs; running ones get "
                 f"{self.grace if grace is None else grace:g} s to finish")
        try:  # off the event loop when called on it (a signal handler)
            asyncio.get_running_loop().run_in_executor(None, self._beat_quietly,
                                                       WorkerStatus.STOPPING)
        except RuntimeError:
            self._beat_quietly(WorkerStatus.STOPPING)

    def _beat_quietly(self, status: str) -> None:
        with contextlib.suppress(Exception):
            self._beat_once(status)

    # -- the ledger's record of this worker --------------------------------------------------
    def _register(self) -> None:
        now = self.spot.clock()
        self.spot.ledger.forget_workers(before=now - FORGET_AFTER)
        self.spot.ledger.register_worker(WorkerRecord(
            id=self.id, host=os.uname().nodename, pid=os.getpid(),
            scopes=None if self.scopes is None else ",".join(self.scopes),
            concurrency=self.concurrency, started_at=now, heartbeat_at=now,
            status=WorkerStatus.RUNNING, every=self.heartbeat))

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                await loop.run_in_executor(None, self._beat_once, None)
            except Exception as exc:  # the next beat tries again
                log.warning("hokuro: worker heartbeat failed: %s", exc)

    def _beat_once(self, status: str | None) -> None:
        executor = self.executor
        if not self.spot.ledger.beat_worker(
                self.id, self.spot.clock(), running=executor._running,
                done=executor.ended, status=status) and status is None:
            self._register()  # its row was forgotten meanwhile: say again that it runs

    # -- signals --------------------------------------------------------------------------
    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.stop)

    def _remove_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
