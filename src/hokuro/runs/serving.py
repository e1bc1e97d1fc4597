"""Serving every submitted run: the executor of ``hokuro worker``.

:class:`ServingExecutor` is the run engine's :class:`~hokuro.runs.executor.Executor` — the
same claim, execute, group-commit loop — pointed at every run that was submitted for
workers (``spot.submit``, ``hokuro submit``) instead of one run of this process:

- a claim takes ready jobs of any submitted run, in the worker's scope order, then priority
  (highest first), then run_after, then FIFO, in one statement (``claim_jobs(scopes=,
  runs=)``);
- each run's plan is rebuilt once from its recorded description
  (:class:`~hokuro.runs.resolving.StepResolver`), with the run's options (retries,
  timeout, max_resets) and the codec of its steps' Spot;
- when idle it sleeps until a job is due (``next_due``) or the ledger says jobs became
  claimable (``runs/waking.py``), never in a polling loop;
- a run whose last job ended is marked done or failed here, whoever ran that job;
- ``max_jobs`` stops claiming after that many jobs; :meth:`abandon` (after a stop's grace)
  cancels what still runs, and :meth:`hand_back` returns those jobs without counting an
  attempt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ..errors import HokuroError
from ..model.jobs import FINAL_JOB_STATUSES, JobOutcome, RunStatus
from ..model.plans import Plan
from ..model.records import Outcome, Status
from .executor import Executor, Options
from .resolving import StepResolver

log = logging.getLogger("hokuro")

#: Seconds between two looks at which runs are submitted (sooner when the ledger notifies).
RUNS_EVERY = 2.0
#: Longest idle sleep when the ledger notifies (PostgreSQL) / when nothing tells (else).
IDLE_LISTENING = 10.0
IDLE_BLIND = 1.0
#: Seconds between two attempts to finish the runs whose jobs ended here.
SETTLE_EVERY = 0.2
#: Runs looked at per refresh, at most.
_RUNS_LIMIT = 10_000


class RunBook:
    """The submitted runs a worker serves: each run's plan, options and codec, rebuilt once.

    ``plans`` (run id -> plan) are used as they are instead of being rebuilt (a forked
    local worker has its parent's plan objects), and then only those runs are served."""

    def __init__(self, spot: Any, resolver: StepResolver,
                 plans: dict[str, Any] | None = None) -> None:
        self.spot = spot
        self.resolver = resolver
        self.given = dict(plans or {})
        self.plans: dict[str, Any] = {}
        self.options: dict[str, Options] = {}
        self.codecs: dict[str, Any] = {}
        self.served: list[str] = []
        self.checked_at = float("-inf")
        self.stale = True

    def refresh(self, base: Options) -> list[str]:
        """Read which runs are submitted (on an I/O thread) and rebuild the new ones."""
        ledger = self.spot.ledger
        records = ledger.list_runs(limit=_RUNS_LIMIT, status=RunStatus.SUBMITTED)
        served = []
        for record in records:
            if self.given and record.id not in self.given:
                continue
            if record.id not in self.plans:
                try:
                    self._load(record, base)
                except Exception as exc:
                    self._refuse(record, exc)
                    continue
            served.append(record.id)
        self.served = served
        self.checked_at = time.monotonic()
        self.stale = False
        return served

    def _load(self, record: Any, base: Options) -> None:
        codec = self.spot.codec
        if record.plan is None:
            raise HokuroError("it recorded no plan")
        plan = self.given.get(record.id)
        if plan is None:
            plan = Plan.from_description(codec.decode(record.plan), self.resolver)
        step_codecs = [getattr(getattr(s, "spot", None), "codec", None)
                       for s in plan.steps().values()]
        self.codecs[record.id] = next((c for c in step_codecs if c is not None), codec)
        settings = codec.decode(record.options) if record.options else {}
        self.options[record.id] = Options(
            concurrency=base.concurrency,
            timeout=settings.get("timeout", base.timeout),
            retries=settings.get("retries", base.retries),
            max_resets=settings.get("max_resets", base.max_resets))
        self.plans[record.id] = plan

    def _refuse(self, record: Any, exc: BaseException) -> None:
        """A run whose plan cannot be rebuilt at all (a damaged description) fails."""
        error = (f"no worker can run it: its plan cannot be rebuilt ({type(exc).__name__}: "
                 f"{exc})")
        log.error("hokuro: run %s (%s): %s", record.id[:8], record.name, error)
        now = self.spot.clock()
        self.spot.ledger.update_run(record.id, status=RunStatus.FAILED, error=error,
                                    finished_at=now, updated_at=now)

    def ensure(self, run_id: str, base: Options) -> None:
        """Have run ``run_id``'s plan (claimed before this book saw the run: a race with a
        refresh), whatever its status now."""
        if run_id in self.plans:
            return
        record = self.spot.ledger.get_run(run_id)
        if record is None:
            raise HokuroError(f"run {run_id[:8]} is gone")
        self._load(record, base)

    def forget(self, run_id: str) -> None:
        for table in (self.plans, self.options, self.codecs):
            table.pop(run_id, None)


class ServingExecutor(Executor):
    """The executor over every submitted run (see the module's docstring)."""

    def __init__(self, spot: Any, resolver: StepResolver, options: Options, *,
                 scopes: list[str] | None = None, max_jobs: int | None = None,
                 plans: dict[str, Any] | None = None) -> None:
        super().__init__(spot, None, None, options)  # type: ignore[arg-type]
        self.scopes = scopes
        self.max_jobs = max_jobs
        self.book = RunBook(spot, resolver, plans)
        self.claimed_total = 0
        self.ended = 0  # jobs whose outcome this worker committed
        self.listening = False  # the ledger notifies (set by the worker)
        self._signals = 0
        self._dirty: set[str] = set()

    # -- the executor's hooks --------------------------------------------------------------
    def _plan_of(self, job: Any) -> Any:
        plan = self.book.plans.get(job.run_id)
        if plan is None:  # rare: read here, blocking the loop once for this run
            self.book.ensure(job.run_id, self.options)
            plan = self.book.plans[job.run_id]
        return plan

    def _options_of(self, job: Any) -> Options:
        return self.book.options[job.run_id]

    def _codec_of(self, job: Any) -> Any:
        return self.book.codecs[job.run_id]

    def _claim_where(self) -> dict[str, Any]:
        # On an I/O thread: the list of runs is read again when stale, and new runs' plans
        # are rebuilt here, never on the event loop.
        if self.book.stale or time.monotonic() - self.book.checked_at > RUNS_EVERY:
            self.book.refresh(self.options)
        return {"scopes": self.scopes, "runs": self.book.served}

    # -- the loop ---------------------------------------------------------------------------
    async def execute(self) -> Any:
        self._loop = asyncio.get_running_loop()
        settling = self._loop.create_task(self._settle_runs())
        try:
            return await super().execute()
        finally:
            settling.cancel()
            await asyncio.gather(settling, return_exceptions=True)
            await self._loop.run_in_executor(None, self._settle, set(self._dirty))

    def signal(self) -> None:
        """The ledger says jobs may be claimable (from any thread)."""
        loop = getattr(self, "_loop", None)
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._signalled)

    def _signalled(self) -> None:
        self._signals += 1
        self.book.stale = True  # a new run's jobs notify too
        if hasattr(self, "_wake"):
            self._wake.set()

    async def _claim(self) -> int:
        if self.max_jobs is not None:
            left = self.max_jobs - self.claimed_total
            if left <= 0:  # the last ones run to their end, then the worker stops
                if self._running == 0 and self._committing == 0:
                    self.stop()
                return 0
            self._ahead = min(self._ahead, self._running + left)
        seen = self._signals
        claimed = await super()._claim()
        if claimed > 0:
            self.claimed_total += claimed
        self._seen = seen
        return claimed

    async def _sleep(self) -> None:
        if self.max_jobs is not None and self.claimed_total >= self.max_jobs:
            await self._wait_wake(1.0)  # until its last jobs end
            return
        seen = getattr(self, "_seen", self._signals)
        due = await self._off(self._next_due)
        now = self.clock()
        if due is not None and due <= now and self._running < self._ahead:
            return  # claimable now (another worker may take it first: then look again)
        timeout = IDLE_LISTENING if self.listening else IDLE_BLIND
        if due is not None:
            timeout = min(timeout, max(0.0, due - now))
        # Not cleared here: a job that ended while the ledger was read (the loop clears the
        # wake-up as each turn begins) ends this wait at once.
        if self._signals != seen or self._stop:
            return
        try:
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        except TimeoutError:
            self.book.stale = True

    def _next_due(self) -> float | None:
        if self.book.stale:
            self.book.refresh(self.options)
        return self.ledger.next_due(self.book.served, self.scopes)

    async def _open_jobs(self) -> int:
        return 1  # a worker serves until it is stopped

    async def _recover(self) -> None:
        """Jobs left running by a dead process of this host go back at once."""
        served = await self._off(self.book.refresh, self.options)
        for run_id in served:
            dead: dict[str, list[tuple[str, str]]] = {}
            for job in await self._off(lambda r=run_id: list(self.ledger.find_jobs(
                    r, status="running"))):
                if job.owner != self.owner and self.spot.owner_is_dead(job.owner):
                    dead.setdefault(job.owner, []).append((job.run_id, job.job_id))
            for owner, keys in dead.items():
                await self._off(self._serially, self.ledger.release_jobs, owner, keys,
                                self.clock())

    def _count(self, job: Any, node: Any, outcome: JobOutcome) -> None:
        super()._count(job, node, outcome)
        self.ended += 1
        if outcome.status in FINAL_JOB_STATUSES:
            self._dirty.add(job.run_id)

    # -- runs that end --------------------------------------------------------------------
    async def _settle_runs(self) -> None:
        while True:
            await asyncio.sleep(SETTLE_EVERY)
            if self._dirty:
                dirty, self._dirty = self._dirty, set()
                try:
                    await self._off(self._settle, dirty)
                except Exception as exc:  # tried again when another job of it ends
                    log.warning("hokuro: could not finish runs: %s", exc)
                    self._dirty |= dirty

    def _settle(self, run_ids: set[str]) -> None:
        for run_id in run_ids:
            if self.ledger.finish_run_if_ended(run_id, RunStatus.SUBMITTED, self.clock()):
                log.info("hokuro: run %s ended", run_id[:8])
                self.book.forget(run_id)
                self.book.stale = True

    # -- stopping -------------------------------------------------------------------------
    def abandon(self) -> list[tuple[str, str]]:
        """Past the grace of a stop: cancel the jobs still running (an async step is
        cancelled; a thread cannot be, and its late result is dropped). Their keys, for
        :meth:`hand_back`."""
        keys = list(self._claimed.values())
        for task in list(self._jobs):
            task.cancel()
        self._drop_lanes()
        return keys

    def hand_back(self, keys: list[tuple[str, str]]) -> int:
        """Return abandoned jobs to the queue without counting the attempt, and let their
        tasks' claims go, so another worker takes them at once. How many went back."""
        now = self.clock()
        for key in list(self._tasks_held):
            self.ledger.finish(key, self.owner, Outcome(
                status=Status.CANCELLED, finished_at=now, error_type="Interrupted",
                error="interrupted: its worker stopped before it ended; it runs again "
                      "when its job is claimed again"))
        return len(self.ledger.release_jobs(self.owner, keys, now)) if keys else 0
