"""The executor: claim ready jobs, execute each step as a task, commit outcomes in groups.

One loop serves a run in this process (``spot.map`` / ``spot.run``) and, later, every
``hokuro worker``: it claims jobs in batches (one statement), runs async steps on the event
loop and sync steps on a thread pool, within the run's concurrency and each step's own, and
hands outcomes to the group committer. Ledger and blob I/O never runs on the event loop
(invariant 8): it goes through batched calls on I/O threads.

A job executes its step as a task: the task key comes from the step and its arguments, so a
job whose task is already done is done at once (``reused``) — across resumes, reruns and
runs that share work — and the lease of the task is what makes identical work run once
across processes (invariant 3).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..errors import HokuroError, RunCancelled
from ..model.jobs import FINAL_JOB_STATUSES, JobOutcome, JobStatus, RunRecord
from ..model.steering import DEFAULT_MAX_RESETS
from .batching import Batched, Inbox
from .claiming import Claiming
from .feeding import Feeding
from .slots import Slots
from .stepping import Stepping, resolve_future
from .writer import GroupCommitter
from .writer import Pending as Work

log = logging.getLogger("hokuro")

#: Jobs claimed per statement, at most.
CLAIM_BATCH = 500


@dataclass(slots=True)
class Tally:
    """What happened in this process during a run (the ledger keeps the per-job truth)."""

    counts: Counter[str] = field(default_factory=Counter)
    by_node: dict[str, Counter[str]] = field(default_factory=dict)
    spent: float = 0.0  # seconds spent executing steps
    saved: float = 0.0  # seconds the reused tasks once took

    def add(self, node: str, what: str, n: int = 1) -> None:
        self.counts[what] += n
        counts = self.by_node.get(node)
        if counts is None:
            counts = self.by_node[node] = Counter()
        counts[what] += n


@dataclass(slots=True)
class Options:
    concurrency: int = 32
    timeout: float | None = None
    retries: int | None = None
    max_resets: int = DEFAULT_MAX_RESETS
    window: int = 0  # root items inserted ahead of completion (0: from the concurrency)


class Executor(Stepping, Feeding, Claiming):
    """Runs the jobs of one run in this process until none is left to run."""

    def __init__(self, spot: Any, plan: Any, run: RunRecord, options: Options, *,
                 items: Iterator[tuple[int, Any]] | None = None,
                 observer: Callable[[str, str, int], None] | None = None) -> None:
        self.spot = spot
        self.ledger = spot.ledger
        self.plan = plan
        self.run = run
        self.options = options
        self.items = items
        self.observer = observer
        self.owner = spot.owner_token()
        self.clock = spot.clock
        self.tally = Tally()
        self.window = options.window or max(4 * options.concurrency, 1000)
        self._running = 0  # jobs claimed and not yet ended
        self._committing = 0  # jobs ended, their outcomes not yet committed
        self._inserted = 0  # root items inserted by this executor
        self._finished_roots = 0
        self._inputs_done = items is None
        self._step_slots: dict[str, asyncio.Semaphore] = {}
        self._stop = False
        self._error: BaseException | None = None
        self._interrupt: BaseException | None = None
        self._parent_outputs: dict[tuple[str, str], list[str]] = {}
        self._tasks_held: set[str] = set()  # tasks claimed here whose outcome is not written
        # Jobs claimed here whose outcome is not written, (run id, job id): their leases are
        # renewed until the commit.
        self._held: set[tuple[str, str]] = set()
        # Jobs running, by their handle (their asyncio task, or a sync step's lane).
        self._claimed: dict[Any, tuple[str, str]] = {}
        # Outcomes of jobs that ended in this turn of the event loop, handed to the group
        # committer together (one unit of work, one hand-back to the loop when written).
        self._outbox: list[tuple[Any, Any, JobOutcome, tuple[str, str, Any] | None]] = []
        self._min_claim = max(1, options.concurrency // 10)
        # This process's writers (claims, task claims, group commits) take turns on a lock of
        # ours. On SQLite, which has one writer at a time, a writer finding the file locked
        # sleeps in its busy handler for milliseconds; ours wakes the next at once. On
        # PostgreSQL, two batches of task claims sharing a key could each wait for the
        # other's insert (a deadlock); taking turns rules it out within a process.
        self._serial: Any = threading.Lock()
        # On PostgreSQL, claims of jobs (SKIP LOCKED: they never wait for a row) and inserts
        # of new jobs (rows nobody else holds) cannot take part in a deadlock: they go
        # alongside the others, not in turn. On SQLite every writer takes turns.
        self._remote = bool(getattr(self.ledger, "remote", False))
        self._jobs_serial: Any = contextlib.nullcontext() if self._remote else self._serial
        # On PostgreSQL, group commits go alongside task claims too: a commit finishes only
        # tasks this process holds, and a claim here never takes those to the ledger
        # (``_claim_many`` answers them busy itself), so the two lock disjoint rows; claims
        # waited for each commit, tens of milliseconds, before. Renewals write the rows a
        # commit finishes: those two take turns (``_commit_turn``).
        self._commit_turn: Any = threading.Lock() if self._remote else contextlib.nullcontext()
        # Task keys of root jobs computed when they were inserted and found not done (job
        # id -> key): their claim reuses the key and skips the second look for a result.
        self._root_keys: dict[tuple[str, str], str] = {}
        self._checked: set[str] = set()
        self._result_node = result_node(plan) if plan is not None else None
        # The last window of jobs handed to the committer, until it is known to be written.
        self._inserting: asyncio.Future[Any] | None = None
        # How the task key of each root node's job comes from an item (None: it does not).
        self._keyers: dict[str, Callable[[Any], str] | None] = {}

    # -- the hooks a worker serving many runs overrides (runs/serving.py) ------------------
    def _plan_of(self, job: Any) -> Any:
        """The plan ``job`` belongs to."""
        return self.plan

    def _options_of(self, job: Any) -> Options:
        """The run-level options (timeout, retries, max_resets) of ``job``'s run."""
        return self.options

    def _codec_of(self, job: Any) -> Any:
        """The codec of ``job``'s inputs and fan-out elements."""
        return self.spot.codec

    def _claim_where(self) -> dict[str, Any]:
        """Which jobs a claim takes (claim_jobs' scopes, run_id, runs)."""
        return {"run_id": self.run.id}

    # -- the loop ---------------------------------------------------------------------------
    async def execute(self) -> Tally:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._wake = asyncio.Event()
        # Steps run ``concurrency`` at a time. A wide run claims a quarter more jobs ahead,
        # so the next ones are ready (claimed, their tasks claimed) when a step ends; a
        # narrow one gains little by it, and claims no more than it runs, so that a cancel
        # from outside starts no step claimed before it.
        concurrency = self.options.concurrency
        self._slots = Slots(loop, concurrency)
        self._ahead = concurrency + (concurrency // 4 if concurrency >= 16 else 0)
        if self._remote and concurrency >= 16:
            # A remote ledger pays a round trip per batch, whatever its size: claim a whole
            # concurrency ahead, in batches of at least a quarter of it (fewer, larger
            # claims, task claims and commits).
            self._ahead = 2 * concurrency
            self._min_claim = concurrency // 4
        if not self.options.window:
            # The window holds the jobs in flight (running and claimed ahead) and as many
            # again and more: it is read again once half of it has finished, and the jobs
            # still unclaimed then keep the slots busy while the next half is keyed, looked
            # up and inserted (a window of only 4x the concurrency left none on PostgreSQL,
            # whose run then idled for every refill).
            self.window = max(4 * concurrency + self._ahead, 1000)
        # One I/O thread for a local ledger (its writes take turns anyway, and fewer threads
        # contend less for the GIL: measured faster), four for a remote one (round trips).
        self._io = ThreadPoolExecutor(max_workers=4 if getattr(self.ledger, "remote", False)
                                      else 1, thread_name_prefix="hokuro-io")
        self._steps = ThreadPoolExecutor(max_workers=self.options.concurrency,
                                         thread_name_prefix="hokuro-step")
        self._claim_tasks = Batched(loop, self._io, self._claim_many)
        self._read_tasks = Batched(loop, self._io, self._get_many)
        self._read_jobs = Batched(loop, self._io, self._get_jobs)
        self._read_parents = Batched(loop, self._io, self._get_parents)
        self._inbox = Inbox(loop)
        self.committer = GroupCommitter(
            self.ledger, self.clock, serial=self._commit_turn if self._remote else self._serial,
            inserts_serial=self._jobs_serial)
        self._jobs: set[asyncio.Task[None]] = set()
        renewing = loop.create_task(self._renew_leases())
        try:
            await self._recover()
            while not self._stop:
                # A wake-up from here on (a job ended, its children queued, a window
                # written) is kept until the sleep below, which then returns at once: one
                # that came while the loop was reading the ledger is never lost.
                self._wake.clear()
                await self._feed()
                claimed = await self._claim()
                if self._error is not None:
                    raise self._error
                if claimed:
                    continue  # claimed some, or every slot is busy: claim again when free
                if self._running == 0 and self._committing == 0:
                    if not self._inputs_done and self._window_room() >= self.window // 2:
                        continue  # room for more inputs, as counted here: read them now
                    # Idle: the ledger says what is still open (jobs cancelled by a failure
                    # upstream are never seen here, so the window is counted there), once
                    # the last window is in.
                    await self._inserted_before()
                    still_open = await self._open_jobs()
                    if not still_open and self._inputs_done:
                        break
                    # Open jobs stand in for open items (a pipe's item has several): the
                    # window may hold fewer items than it could, never more.
                    self._finished_roots = self._inserted - still_open
                    if not self._inputs_done and self._window_room() >= self.window // 2:
                        continue  # room for more inputs: read them now
                await self._sleep()  # until a job is due or ends
        finally:
            # Stopped (Ctrl-C, an error) or done: jobs claimed ahead that have not started
            # are handed back; the running ones finish and everything is committed.
            self._stop = True
            for job in list(self._jobs):
                await asyncio.gather(job, return_exceptions=True)
            while self._running > 0:  # sync steps started on the direct path
                await self._wait_wake(0.05)
            renewing.cancel()  # (leases held while the running jobs finish)
            self._flush_outbox()
            # The committer's hand-backs of what it wrote run on this loop before this
            # await returns (they were queued on it first).
            await loop.run_in_executor(self._io, self.committer.close)
            unwritten = self._inserting.result() if self._inserting is not None \
                and self._inserting.done() else None
            if isinstance(unwritten, BaseException) \
                    and not isinstance(unwritten, RunCancelled):  # stopped before awaited
                log.warning("hokuro: inserting a window of jobs of run %s failed: %s",
                            self.run.id[:8], unwritten)
            self._steps.shutdown(wait=False, cancel_futures=True)
            self._io.shutdown(wait=True)
        if self._interrupt is not None:
            raise self._interrupt
        return self.tally

    def stop(self) -> None:
        """Stop claiming; jobs already running finish and are committed."""
        self._stop = True
        if hasattr(self, "_wake"):
            self._loop.call_soon_threadsafe(self._wake.set)

    async def _sleep(self) -> None:
        wake_at = await self._off(self.ledger.next_wake, self.run.id)
        timeout = 1.0
        if wake_at is not None:
            timeout = min(timeout, max(0.0, wake_at - self.clock()))
        await self._wait_wake(timeout, clear=False)

    async def _wait_wake(self, timeout: float, *, clear: bool = True) -> None:
        """Wait until a job ends (or ``timeout``); ``clear=False``: a wake-up since this turn
        of the loop began ends the wait at once. asyncio.timeout, not wait_for: on 3.11
        wait_for can swallow a cancellation that races its timeout, and Ctrl-C (which
        cancels the run) would then be lost."""
        if clear:
            self._wake.clear()
        try:
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        except TimeoutError:
            pass

    async def _open_jobs(self) -> int:
        counts = await self._off(self.ledger.run_counts, self.run.id)
        return sum(n for (_, status), n in counts.items() if status not in FINAL_JOB_STATUSES)

    async def _off(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self._loop.run_in_executor(self._io, fn, *args)

    def _settle_from_thread(self, future: asyncio.Future[Any]) -> Callable[[Any], None]:
        """A callback for another thread that settles ``future`` with its argument and
        wakes the loop (a window of jobs written while the loop waits for steps to end
        may hold the next jobs to claim)."""
        def settle(result: Any) -> None:
            self._inbox.post(self._settle_and_wake, future, result)
        return settle

    def _settle_and_wake(self, future: asyncio.Future[Any], result: Any) -> None:
        resolve_future(future, result)
        self._wake.set()

    # -- claiming --------------------------------------------------------------------------
    async def _recover(self) -> None:
        """Jobs of this run left ``running`` by a dead process on this host are handed back
        at once instead of after their lease (a resumed run goes on right away)."""
        dead: dict[str, list[tuple[str, str]]] = {}
        for job in await self._off(lambda: list(self.ledger.find_jobs(
                self.run.id, status=JobStatus.RUNNING))):
            if job.owner != self.owner and self.spot.owner_is_dead(job.owner):
                dead.setdefault(job.owner, []).append((job.run_id, job.job_id))
        for owner, keys in dead.items():
            await self._off(self._serially, self.ledger.release_jobs, owner, keys, self.clock())

    async def _claim(self) -> int:
        free = self._ahead - self._running
        if self._running and free < self._min_claim:
            # Claim in batches: wait for a few more slots (or a moment) rather than
            # spending a transaction per finished job.
            await self._wait_wake(0.005)
            free = self._ahead - self._running
            if free <= 0:
                return -1
        now = self.clock()
        claiming = self._loop.run_in_executor(self._io, self._claim_jobs_and_tasks, now,
                                              min(free, CLAIM_BATCH))
        try:
            jobs, early = await asyncio.shield(claiming)
        except asyncio.CancelledError:
            # Stopped while the claim was being written: the jobs it took go back at once
            # rather than wait out their lease. Jobs whose tasks were claimed with them go
            # back through their own steps, which find the run stopped and hand back the
            # job and its task alike (the group commit writes both).
            jobs, early = await claiming
            if early:
                self._stop = True
                self._start_jobs(jobs, early)
            else:
                keys = [(job.run_id, job.job_id) for job in jobs]
                if keys:
                    await self._off(self._serially, self.ledger.release_jobs, self.owner,
                                    keys, self.clock())
            raise
        self._start_jobs(jobs, early)
        return len(jobs)

    def _start_jobs(self, jobs: list[Any], early: dict[tuple[str, str], Any]) -> None:
        for job in jobs:
            self._running += 1
            self._held.add((job.run_id, job.job_id))
            answered = early.get((job.run_id, job.job_id))
            try:
                if answered is not None and self._start_answered(job, answered):
                    continue
            except Exception as exc:  # a fault of hokuro's own: stop the run
                self._fault(job, exc)
                continue
            task = self._loop.create_task(self._run_job(job, answered))
            self._jobs.add(task)
            self._claimed[task] = (job.run_id, job.job_id)
            task.add_done_callback(self._forget_job)

    def _forget_job(self, task: asyncio.Task[None]) -> None:
        self._jobs.discard(task)
        self._claimed.pop(task, None)

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(self.spot.lease / 3)
            keys = list(self._held)
            tasks = list(self._tasks_held)
            if keys or tasks:
                try:
                    await self._off(self._renew, keys, tasks)
                except Exception as exc:  # the next round tries again; leases last longer
                    log.warning("hokuro: renewing the leases of %d jobs failed: %s",
                                len(keys), exc)

    # -- one job ---------------------------------------------------------------------------
    async def _run_job(self, job: Any, early: Any = None) -> None:
        node = self._plan_of(job).node(job.node)
        try:
            outcome, task = await self._job_outcome(job, node, early)
        except BaseException as exc:  # a fault of hokuro's own (the ledger): stop the run
            self._fault(job, exc)
            raise
        self._ended(job, node, outcome, task)

    def _fault(self, job: Any, exc: BaseException) -> None:
        """``job`` ended by a fault of hokuro's own (or was cancelled): the run stops."""
        self._error = exc
        self._running -= 1
        self._held.discard((job.run_id, job.job_id))
        self._wake.set()

    def _ended(self, job: Any, node: Any, outcome: JobOutcome,
               task: tuple[str, str, Any] | None) -> None:
        """``job`` ended with ``outcome`` (and its task's finish): to the next group commit.
        The slot is free once the step has ended: its outcome waits for the commit (still
        under the job's lease, renewed) while the next job runs."""
        self._outbox.append((job, node, outcome, task))
        if len(self._outbox) == 1:
            self._loop.call_soon(self._flush_outbox)
        self._running -= 1
        self._committing += 1
        self._wake.set()

    def _flush_outbox(self) -> None:
        """Hand the outcomes of the jobs that ended in this turn to the committer at once."""
        batch, self._outbox = self._outbox, []
        if not batch:
            return
        tasks = [task for _, _, _, task in batch if task is not None]

        def written(result: Any) -> None:  # on the committer's thread
            # The tasks' leases are let go as soon as their outcomes are written: renewing
            # them after that would find them finished ("lost").
            self._tasks_held.difference_update(task[0] for task in tasks)
            self._inbox.post(self._committed, batch, result)

        self.committer.submit(Work(outcomes=[outcome for _, _, outcome, _ in batch],
                                   tasks=tasks, done=written))

    def _committed(self, batch: list[tuple[Any, Any, JobOutcome, Any]], written: Any) -> None:
        """On the loop: the outcomes of ``batch`` are written (``written[i]``: the job was
        still ours), or the commit failed (an exception: the run stops)."""
        failed = isinstance(written, BaseException)
        if failed:
            self._error = written
        for i, (job, node, outcome, _) in enumerate(batch):
            self._committing -= 1
            self._held.discard((job.run_id, job.job_id))
            self._parent_outputs.pop((job.run_id, job.job_id), None)
            if not failed and written[i]:
                self._count(job, node, outcome)
        self._wake.set()

    def _count(self, job: Any, node: Any, outcome: JobOutcome) -> None:
        what = outcome.status
        if what == JobStatus.QUEUED:
            what = "retried"
        self.tally.add(node.id, what)
        if self.observer is not None:
            self.observer(node.id, what, 1)
        if outcome.status in FINAL_JOB_STATUSES and node.id == self._result_node \
                and job.job_id.count("/") == 1:
            self._finished_roots += 1

def result_node(plan: Any) -> str:
    """The node whose output is an item's result: the plan's last top-level call."""
    named = getattr(plan, "result_node", None)
    if isinstance(named, str):
        return named
    calls = [n for n in plan._order if plan.node(n).kind == "call"]
    if not calls:
        raise HokuroError(f"plan {plan.name!r} has no step to run")
    return calls[-1]
