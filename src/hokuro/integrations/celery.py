"""Celery for teams that run it: Celery workers execute a run's jobs, the ledger keeps the
books (``pip install 'hokuro[celery]'``).

```python
app = Celery("ads", broker="amqp://guest:guest@rabbit//")
bridge = CeleryBridge(app, spot, scopes=["ads", "default"], chunksize=10)
```

- **Dispatching.** :meth:`CeleryBridge.dispatch` (a loop; ``dispatch_once`` for one pass)
  claims the ready jobs of submitted runs exactly as ``hokuro worker`` does — one statement
  per batch, scope order, priority, run_after, FIFO, waking on the ledger's news — and sends
  them to Celery: one queue per scope (``hokuro.<scope>``), the job's priority kept as the
  message's (hokuro's priorities are folded into ten levels around 0; RabbitMQ's higher
  first and Redis's lower first are both handled), ``chunksize`` jobs per message (as
  datapipe's ``celery_chunksize``). The dispatcher's claim is a lease of
  ``dispatch_lease`` seconds: a message lost on its way (a broker down) leaves the job to
  be claimed and sent again when it runs out.
- **Executing.** The Celery task ``hokuro.run_jobs`` takes each job over from the
  dispatcher (the ledger moves it to the Celery worker's own lease) and executes it with
  the run engine's executor, so progress, errors, retries, polls, resets, resume and
  ``hokuro retry --run`` work as with ``hokuro worker``. A job already done or taken by a
  live worker is skipped (a duplicate delivery).
- **Late acknowledgement and the lease.** The task acknowledges its message only once its
  jobs are committed (``acks_late``, ``reject_on_worker_lost``): a Celery worker killed
  mid-job has its message delivered again, and the next worker takes the job from the dead
  owner (at once on the same host, else once its lease has run out) and runs it once more.
  The attempt number fences whatever the dead worker might still write: never a lost job,
  never two recorded results.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import ConfigurationError
from ..model.jobs import Job, RunStatus
from ..runs.executor import Options
from ..runs.resolving import Hook, StepResolver
from ..runs.serving import ServingExecutor
from ..runs.waking import wakeup_for

log = logging.getLogger("hokuro")

#: The Celery task that executes jobs.
TASK_NAME = "hokuro.run_jobs"
#: Seconds a dispatched job may wait in its queue before it is claimed and sent again.
DISPATCH_LEASE = 300.0
#: Priority levels of a message (0-9).
LEVELS = 10
#: Jobs claimed per dispatch statement, at most.
DISPATCH_BATCH = 500


def queue_name(scope: str) -> str:
    return f"hokuro.{scope}"


def message_priority(priority: int, transport: str) -> int:
    """hokuro's priority (any integer, higher first) as a Celery message priority: ten
    levels, 0 at the middle; on Redis lower numbers go first, elsewhere higher ones."""
    level = max(0, min(LEVELS - 1, priority + LEVELS // 2))
    return LEVELS - 1 - level if transport.startswith("redis") else level


class CeleryBridge:
    """Ready jobs of ``spot``'s submitted runs, sent to ``app``'s queues and executed by its
    workers (see the module's docstring). Make one in the module your Celery workers load
    (``celery -A module worker -Q hokuro.default``), with the same Spot as your code."""

    def __init__(self, app: Any, spot: Any, *, scopes: Iterable[str] = ("default",),
                 chunksize: int = 1, concurrency: int = 32,
                 dispatch_lease: float = DISPATCH_LEASE,
                 hooks: Mapping[str, Hook] | None = None) -> None:
        if chunksize < 1:
            raise ConfigurationError("chunksize must be a whole number >= 1")
        self.app = app
        self.spot = spot
        self.scopes = list(scopes)
        if not self.scopes:
            raise ConfigurationError("give the scopes whose jobs go to Celery")
        self.chunksize = chunksize
        self.concurrency = concurrency
        self.dispatch_lease = dispatch_lease
        self.hooks = dict(hooks or {})
        self.transport = str(app.conf.broker_url or "amqp").split(":", 1)[0]
        self.sent = 0
        self._configure(app)
        bridge = self

        def run_jobs(task: Any, dispatcher: str, keys: list[list[Any]]) -> dict[str, int]:
            return bridge._run_jobs(task, dispatcher, keys)

        self.task = app.task(name=TASK_NAME, bind=True, acks_late=True,
                             reject_on_worker_lost=True, max_retries=None)(run_jobs)

    def _configure(self, app: Any) -> None:
        from kombu import Queue

        known = {q.name for q in (app.conf.task_queues or [])}
        queues = list(app.conf.task_queues or [])
        for scope in self.scopes:
            if queue_name(scope) not in known:
                queues.append(Queue(queue_name(scope), routing_key=queue_name(scope),
                                    queue_arguments={"x-max-priority": LEVELS - 1}))
        app.conf.task_queues = queues
        app.conf.task_queue_max_priority = LEVELS - 1
        if self.transport.startswith("redis"):
            options = dict(app.conf.broker_transport_options or {})
            options.setdefault("priority_steps", list(range(LEVELS)))
            options.setdefault("queue_order_strategy", "priority")
            options.setdefault("sep", ":")
            app.conf.broker_transport_options = options
        app.conf.worker_prefetch_multiplier = 1  # a late-acked message is one in flight

    # -- dispatching ------------------------------------------------------------------------
    def dispatch_once(self) -> int:
        """Claim the ready jobs of submitted runs and send them; how many were sent."""
        ledger = self.spot.ledger
        runs = [r.id for r in ledger.list_runs(limit=10_000, status=RunStatus.SUBMITTED)]
        owner = self.spot.owner_token()
        sent = 0
        while runs:
            now = self.spot.clock()
            jobs = ledger.claim_jobs(owner, now, now + self.dispatch_lease, DISPATCH_BATCH,
                                     scopes=self.scopes, runs=runs)
            if not jobs:
                break
            self.send(jobs, owner)
            sent += len(jobs)
        self.sent += sent
        return sent

    def send(self, jobs: list[Job], owner: str) -> None:
        """Send claimed jobs to their scope's queue, ``chunksize`` per message."""
        groups: dict[tuple[str, int], list[Job]] = {}
        for job in jobs:
            groups.setdefault((job.scope, job.priority), []).append(job)
        for (scope, priority), members in groups.items():
            for start in range(0, len(members), self.chunksize):
                chunk = members[start:start + self.chunksize]
                self.task.apply_async(
                    args=[owner, [[j.run_id, j.job_id, j.attempts] for j in chunk]],
                    queue=queue_name(scope), routing_key=queue_name(scope),
                    priority=message_priority(priority, self.transport))

    def dispatch(self, *, stop_when_idle: bool = False, idle: float = 1.0) -> int:
        """Dispatch until stopped (Ctrl-C / SIGTERM raise out of it), waking on the ledger's
        news; with ``stop_when_idle``, return once no submitted run has a job left to send
        or running. How many jobs were sent."""
        import threading

        woken = threading.Event()
        wakeup = wakeup_for(self.spot.ledger, woken.set)
        if wakeup is not None:
            wakeup.start()
        try:
            while True:
                woken.clear()
                self.dispatch_once()
                if stop_when_idle and not self._open_runs():
                    return self.sent
                due = self.spot.ledger.next_due(self._submitted(), self.scopes)
                timeout = idle if due is None else max(0.0, min(idle, due - time.time()))
                woken.wait(timeout)
        finally:
            if wakeup is not None:
                wakeup.stop()

    def _submitted(self) -> list[str]:
        return [r.id for r in self.spot.ledger.list_runs(limit=10_000,
                                                         status=RunStatus.SUBMITTED)]

    def _open_runs(self) -> bool:
        return bool(self._submitted())

    # -- executing (in the Celery worker) -----------------------------------------------------
    def _run_jobs(self, task: Any, dispatcher: str, keys: list[list[Any]]) -> dict[str, int]:
        """The Celery task: take over the jobs and execute them; acknowledged once their
        outcomes are committed."""
        self.spot.prepare_to_run()
        executor = _TakenJobs(self.spot, StepResolver(self.spot, self.hooks,
                                                      ledger=self.spot.ledger),
                              Options(concurrency=self.concurrency))
        busy = executor.take(dispatcher, keys)
        if executor.taken:
            asyncio.run(executor.execute())
        if busy:
            # Held by a live worker (a duplicate delivery, or one whose owner's lease still
            # runs): look again once that lease may have run out.
            raise task.retry(args=[dispatcher, busy], countdown=max(1.0, executor.wait_for))
        return {"executed": len(executor.taken), "ended": executor.ended}


class _TakenLedger:
    """The ledger as the Celery task's executor sees it: its claim returns the jobs taken
    over (once); every other call is the ledger's."""

    def __init__(self, ledger: Any, jobs: list[Job]) -> None:
        self._ledger = ledger
        self._jobs = jobs

    def claim_jobs(self, *args: Any, **kwargs: Any) -> list[Job]:
        jobs, self._jobs = self._jobs, []
        return jobs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger, name)


class _TakenJobs(ServingExecutor):
    """The executor over the jobs of one Celery message: it takes them over, runs them,
    commits them, and ends."""

    def __init__(self, spot: Any, resolver: StepResolver, options: Options) -> None:
        super().__init__(spot, resolver, options)
        self.taken: list[Job] = []
        self.wait_for = 0.0

    def take(self, dispatcher: str, keys: list[list[Any]]) -> list[list[Any]]:
        """Take the jobs over; the keys of those a live owner holds (to look at later)."""
        ledger = self.spot.ledger
        now = self.clock()
        busy = []
        for run_id, job_id, attempt in keys:
            found = ledger.get_jobs(run_id, [job_id])
            if not found:
                continue
            job = found[0]
            if job.status != "running" or job.attempts < attempt:
                continue  # done, cancelled, handed back, or sent again since: not ours
            from_dispatcher = job.owner == dispatcher and job.attempts == attempt
            gone = (self.spot.owner_is_dead(job.owner)
                    or (job.lease_until is not None and job.lease_until <= now))
            if not from_dispatcher and not gone:
                busy.append([run_id, job_id, attempt])
                self.wait_for = max(self.wait_for, (job.lease_until or now) - now)
                continue
            taken = ledger.take_job(run_id, job_id, expected=job.owner or "", owner=self.owner,
                                    now=now, lease_until=now + self.spot.lease,
                                    count_attempt=not from_dispatcher)
            if taken is not None:
                self.taken.append(taken)
        self.ledger = _TakenLedger(ledger, list(self.taken))
        return busy

    async def _recover(self) -> None:
        await self._off(self.book.refresh, self.options)

    async def _open_jobs(self) -> int:
        return self._running + self._committing

    async def _sleep(self) -> None:
        await self._wait_wake(0.05)

    def _claim_where(self) -> dict[str, Any]:
        # The runs these jobs belong to, submitted or not (a run resumed elsewhere meanwhile
        # still finishes the jobs taken here).
        missing = {job.run_id for job in self.taken} - set(self.book.plans)
        if missing:
            self.book.refresh(self.options)
            for run_id in missing - set(self.book.plans):
                record = self.spot.ledger.get_run(run_id)
                if record is not None:
                    try:
                        self.book._load(record, self.options)
                    except Exception as exc:
                        self.book._refuse(record, exc)
        return {}
