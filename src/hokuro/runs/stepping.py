"""One job's step, from its arguments to its outcome: the task claim (or the result found
kept), the call (async on the loop, sync on a thread, with its timeout), and what its value
or error means for the job (done with its children, waiting, reset, cancelled, retried or
failed). A part of :class:`~hokuro.runs.executor.Executor`, which claims the jobs, runs
many at once and commits their outcomes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from ..errors import HokuroError
from ..model.jobs import JobOutcome, JobSpec, JobStatus
from ..model.records import Status
from ..model.steering import Cancel, Pending, Reset, RetryPolicy

#: A job whose task another owner is computing looks again after this many seconds.
BUSY_POLL = 0.25
#: An output that is the input of a job, not a task's result: "input:<job id>".
INPUT_REF = "input:"
#: msgpack's None: a kept result that passes its input on.
_NIL = b"\xc0"
#: Stands for a kept result that was not read (nothing here needs its value).
_KEPT = object()
#: The outcome that restarts an item's chain from its first step (never a stored status).
RESET = "reset"


class StepTimeout(HokuroError, TimeoutError):
    """A step ran past its timeout."""


class Stepping:
    """The steps of one job at a time (the executor provides the state they use: the
    ledger, owner, clock, loop, thread pools, tally and the per-run hooks)."""

    async def _job_outcome(self, job: Any, node: Any, early: Any = None
                           ) -> tuple[JobOutcome, tuple[str, str, Any] | None]:
        """Execute ``job``: its outcome, and the task finish to commit with it. ``early``:
        (arguments, claim, answer) when its task was claimed with the job."""
        step = node.step
        if early is not None:
            args, claim, answer = early
            now = claim.now
            if isinstance(answer, BaseException):
                raise answer
        else:
            try:
                args = await self._arguments(job, node)
            except Exception as exc:
                return self._outcome(job, JobStatus.FAILED,
                                     error=f"cannot read the inputs of {job.job_id}: {exc}"), None
            now = self.clock()
            try:
                claim = self._task_claim(job, step, args, now)
            except Exception as exc:  # an argument that cannot be keyed
                return self._outcome(job, JobStatus.FAILED,
                                     error=f"{type(exc).__name__}: {exc}"), None
            answer = await self._claim_tasks(claim)
        if answer.outcome == "busy":
            record = answer.record
            if self.spot.owner_is_dead(record.owner):
                claim.steal_from = record.owner
                answer = await self._claim_tasks(claim)
            if answer.outcome == "busy":
                return self._outcome(job, JobStatus.WAITING, run_after=now + BUSY_POLL), None
        if answer.outcome == "hit":
            record = answer.record
            if record.status == Status.DONE:
                # A kept result is read only when its value matters here (a fan-out over
                # it); otherwise the job points at the task, and a reader loads it.
                if node.fanouts:
                    found, value = await self._loop.run_in_executor(self._io, step.load,
                                                                    record)
                else:
                    found, value = True, _unread(record)
                if found:
                    return self._reused(job, node, claim.key, record, value, args), None
            claim.force = True  # a damaged kept result: compute it again
            answer = await self._claim_tasks(claim)
            if answer.outcome != "claimed":
                return self._outcome(job, JobStatus.WAITING, run_after=now + BUSY_POLL), None
        return await self._execute(job, node, claim.key, answer.attempt, args)

    def _task_claim(self, job: Any, step: Any, args: list[Any], now: float) -> Any:
        """The claim of ``job``'s task on ``args`` (forced for a reset chain). A root job's
        key, computed when its window went in, is used rather than computed again, and not
        looked up again: its task was not done then."""
        force = job.resets > 0
        key = self._root_keys.pop((job.run_id, job.job_id), None)
        if key is None or force or not getattr(step, "claims_by_key", False):
            return step.task_claim(tuple(args), self.owner, now, force=force)
        claim = step.task_claim(tuple(args), self.owner, now, key=key)
        self._checked.add(key)
        return claim

    async def _execute(self, job: Any, node: Any, key: str, attempt: int, args: list[Any]
                       ) -> tuple[JobOutcome, tuple[str, str, Any] | None]:
        step = node.step  # its task is held since its claim was written (_claim_many)
        if self._stop:
            return self._handed_back(job, key)
        ctx = step.task_context(key, attempt)
        timeout = self._timeout_of(job, step)
        limit = step.options.concurrency
        await self._slots.acquire()
        started = time.perf_counter()
        try:
            if self._stop:
                return self._handed_back(job, key)
            if limit:
                slots = self._step_slots.setdefault(step.name, asyncio.Semaphore(limit))
                async with slots:
                    value = await self._invoke(step, args, ctx, timeout)
            else:
                value = await self._invoke(step, args, ctx, timeout)
        except Exception as exc:
            self.tally.spent += time.perf_counter() - started
            return self._failed(job, step, key, exc, ctx)
        except (KeyboardInterrupt, SystemExit) as exc:
            return self._interrupted(job, step, key, exc, ctx)
        finally:
            self._slots.release()
        self.tally.spent += time.perf_counter() - started
        ended = self._value_outcome(job, node, key, args, ctx, value, off_loop=False)
        if isinstance(ended, _Upload):
            return await self._uploaded(job, ended)
        return ended

    # -- the direct path: a job whose claim answered everything ---------------------------
    def _start_answered(self, job: Any, early: Any) -> bool:
        """Start ``job`` without a coroutine of its own when its claim answered everything
        (its arguments read, its task found kept or claimed): a reused job ends here, and a
        sync step runs on a step thread that works out its outcome there, so the loop sees
        the job once, when it ends. False: ``job`` takes the general path
        (:meth:`_job_outcome`): an async step (it runs on the loop either way, inline in
        its job's coroutine), a step with a timeout or a concurrency of its own, a fan-out
        over a kept result."""
        args, claim, answer = early
        if isinstance(answer, BaseException) or job.resets:
            return False
        node = self._plan_of(job).node(job.node)
        step = node.step
        if answer.outcome == "hit":
            record = answer.record
            if node.fanouts or record.status != Status.DONE:
                return False
            self._ended(job, node, self._reused(job, node, claim.key, record,
                                                _unread(record), args), None)
            return True
        if answer.outcome != "claimed" or step.is_async or step.options.concurrency \
                or self._timeout_of(job, step):
            return False
        key = claim.key  # held since its claim was written (_claim_many)
        if self._stop:
            self._ended(job, node, *self._handed_back(job, key))
            return True
        self._slots.take(lambda: self._launch(job, node, key, answer.attempt, args))
        return True

    def _launch(self, job: Any, node: Any, key: str, attempt: int, args: list[Any]) -> bool:
        """Holding a slot: start the sync step on a step thread (True), or hand the job
        back when the run has stopped meanwhile (False: the slot was not needed)."""
        if self._stop:
            self._ended(job, node, *self._handed_back(job, key))
            return False
        lane = _Lane(job)
        self._claimed[lane] = (job.run_id, job.job_id)
        self._steps.submit(self._in_lane, lane, node, key, args,
                           node.step.task_context(key, attempt))
        return True

    def _in_lane(self, lane: _Lane, node: Any, key: str, args: list[Any], ctx: Any) -> None:
        """On a step thread: call a sync step and work out its outcome here (encoding its
        value, uploading a blob), then hand the end to the loop."""
        job, step = lane.job, node.step
        started = time.perf_counter()
        try:
            value = step.invoke(tuple(args), ctx)
        except Exception as exc:
            ended: Any = self._failed(job, step, key, exc, ctx)
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: stop the run
            ended = exc
        else:
            ended = self._value_outcome(job, node, key, args, ctx, value, off_loop=True)
        self._inbox.post(self._lane_ended, lane, node, key, ctx, ended,
                         time.perf_counter() - started)

    def _lane_ended(self, lane: _Lane, node: Any, key: str, ctx: Any, ended: Any,
                    spent: float) -> None:
        if self._claimed.pop(lane, None) is None:
            return  # abandoned by a stopping worker: its job went back already
        self._slots.release()
        self.tally.spent += spent
        if isinstance(ended, BaseException):
            if isinstance(ended, KeyboardInterrupt | SystemExit):
                ended = self._interrupted(lane.job, node.step, key, ended, ctx)
            else:
                self._fault(lane.job, ended)
                return
        self._ended(lane.job, node, *ended)

    def _drop_lanes(self) -> None:
        """A stopping worker gives up on the sync steps still running: a thread cannot be
        stopped, so their jobs count as ended here and their late results are dropped."""
        for handle, key in list(self._claimed.items()):
            if isinstance(handle, _Lane):
                del self._claimed[handle]
                self._running -= 1
                self._held.discard(key)

    # -- what a step's end means ------------------------------------------------------------
    def _timeout_of(self, job: Any, step: Any) -> float | None:
        return step.options.timeout if step.options.timeout is not None \
            else self._options_of(job).timeout

    def _value_outcome(self, job: Any, node: Any, key: str, args: list[Any], ctx: Any,
                       value: Any, *, off_loop: bool) -> Any:
        """The outcome of a step that returned ``value`` and its task's finish; on the
        loop (``off_loop`` False) a result that goes to the blob store comes back as an
        :class:`_Upload` to do on an I/O thread."""
        step = node.step
        if isinstance(value, Pending):
            after = value.delay(step.options.poll)
            task = (key, self.owner, _ended(Status.WAITING, self.clock()))
            return self._outcome(job, JobStatus.WAITING, run_after=self.clock() + after), task
        if isinstance(value, Reset):
            error = f"reset by {step.name}" + (f": {value.reason}" if value.reason else "")
            task = (key, self.owner, _ended(Status.CANCELLED, self.clock(), error))
            max_resets = self._options_of(job).max_resets
            if job.resets >= max_resets:
                return self._outcome(job, JobStatus.CANCELLED, error=(
                    f"{error}; the chain was reset {job.resets} times already (the cap, "
                    f"max_resets={max_resets}), so it is cancelled")), task
            return self._outcome(job, RESET, error=error), task
        if isinstance(value, Cancel):
            error = f"cancelled by {step.name}" + (f": {value.reason}" if value.reason else "")
            task = (key, self.owner, _ended(Status.CANCELLED, self.clock(), error))
            return self._outcome(job, JobStatus.CANCELLED, error=error), task
        try:
            done = self._done(job, node, key, value, args)
            # Encoding is CPU work, done here; only a blob upload (a large result or log)
            # goes to an I/O thread.
            data = step.encode_result(value)
            if not off_loop and step.needs_io(data, ctx):
                return _Upload(done, step, key, data, ctx)
            return done, (key, self.owner, step.result_outcome(key, data, ctx))
        except Exception as exc:  # the value cannot be kept or fanned out: the task fails
            return self._failed(job, step, key, exc, ctx)

    async def _uploaded(self, job: Any, upload: _Upload
                        ) -> tuple[JobOutcome, tuple[str, str, Any] | None]:
        try:
            outcome = await self._loop.run_in_executor(
                self._io, upload.step.result_outcome, upload.key, upload.data, upload.ctx)
        except Exception as exc:
            return self._failed(job, upload.step, upload.key, exc, upload.ctx)
        return upload.done, (upload.key, self.owner, outcome)

    def _interrupted(self, job: Any, step: Any, key: str, exc: BaseException, ctx: Any
                     ) -> tuple[JobOutcome, tuple[str, str, Any]]:
        """A step that stops the program stops the run: its task is recorded cancelled, its
        job handed back, the others finish, then the interrupt goes on up."""
        self._interrupt = exc
        self.stop()
        now = self.clock()
        return (self._outcome(job, JobStatus.WAITING, run_after=now),
                (key, self.owner, step.error_outcome(key, exc, ctx)))

    def _reused(self, job: Any, node: Any, key: str, record: Any, value: Any,
                args: list[Any]) -> JobOutcome:
        """A job done by its task's kept result: counted as reused (and the time it saved)."""
        self.tally.saved += max(0.0, (record.finished_at or 0) - (record.started_at or 0))
        self.tally.add(node.id, "reused")
        if self.observer is not None:
            self.observer(node.id, "reused", 1)
        return self._done(job, node, key, value, args)

    async def _invoke(self, step: Any, args: list[Any], ctx: Any, timeout: float | None
                      ) -> Any:
        if step.is_async:
            call = step.invoke(tuple(args), ctx)
            if not timeout:
                return await call
            try:
                async with asyncio.timeout(timeout) as window:
                    return await call
            except TimeoutError:
                if window.expired():
                    raise StepTimeout(f"{step.name} ran past its timeout of {timeout:g} s and "
                                      "was cancelled") from None
                raise
        future = self._in_thread(step.invoke, tuple(args), ctx)
        if not timeout:
            return await future
        try:
            # A thread cannot be stopped: past its timeout the job fails, and whatever the
            # thread returns later is dropped (it is no longer this job's).
            async with asyncio.timeout(timeout) as window:
                return await asyncio.shield(future)
        except TimeoutError:
            if not window.expired():
                raise
            raise StepTimeout(f"{step.name} ran past its timeout of {timeout:g} s; its "
                              "thread could not be stopped and its late result is "
                              "dropped") from None

    def _in_thread(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """``fn(*args)`` on a step thread; its end comes back through the inbox (one wake-up
        of the loop for the many steps that end together)."""
        future = self._loop.create_future()
        inbox = self._inbox

        def call() -> None:
            try:
                value = fn(*args)
            except BaseException as exc:  # handed to the awaiting job, as run_in_executor
                inbox.post(fail_future, future, exc)
            else:
                inbox.post(resolve_future, future, value)

        self._steps.submit(call)
        return future

    def _handed_back(self, job: Any, key: str) -> tuple[JobOutcome, tuple[str, str, Any]]:
        """A job claimed ahead that had not started when the run stopped: claimable again at
        once, its attempt given back, its task left for whoever runs it next."""
        now = self.clock()
        return (self._outcome(job, JobStatus.WAITING, run_after=now),
                (key, self.owner, _ended(Status.WAITING, now)))

    def _failed(self, job: Any, step: Any, key: str, exc: BaseException, ctx: Any
                ) -> tuple[JobOutcome, tuple[str, str, Any]]:
        task = (key, self.owner, step.error_outcome(key, exc, ctx))
        policy: RetryPolicy = step.options.retry_policy
        retries = self._options_of(job).retries
        if step.options.retries is None and retries is not None:
            policy = policy.over(retries=retries)  # the run's default
        error = f"{type(exc).__name__}: {exc}"
        if policy.should_retry(exc, job.attempts):
            return self._outcome(job, JobStatus.QUEUED, error=error,
                                 run_after=self.clock() + policy.delay(job.attempts, exc)), task
        return self._outcome(job, JobStatus.FAILED, error=error), task

    def _done(self, job: Any, node: Any, key: str, value: Any, args: list[Any]
              ) -> JobOutcome:
        output = key
        if value is None:
            # A step that returns None passes its (first) input on.
            output = self._passed_on(job, node)
        children: list[JobSpec] = []
        for each_id in node.fanouts:
            children.extend(self._children(job, each_id, value if value is not None
                                           else (args[0] if args else None)))
        return self._outcome(job, JobStatus.DONE, task_key=key, output_key=output,
                             children=children)

    def _children(self, job: Any, each_id: str, value: Any) -> list[JobSpec]:
        if isinstance(value, str | bytes | dict) or not hasattr(value, "__iter__"):
            raise _NotIterable(job.job_id, value)
        encode = self._codec_of(job).encode
        elements = [encode(e, root=f"element {k} of {job.job_id}") for k, e in enumerate(value)]
        return self._plan_of(job).body_jobs(each_id, job.job_id, elements)

    def _passed_on(self, job: Any, node: Any) -> str:
        first = node.parents[0] if node.parents else None
        if first is None or first == "input":
            return INPUT_REF + job.job_id
        return self._parent_outputs[(job.run_id, job.job_id)][0]

    def _outcome(self, job: Any, status: str, **fields: Any) -> JobOutcome:
        return JobOutcome(run_id=job.run_id, job_id=job.job_id, owner=self.owner,
                          attempt=job.attempts, status=status, **fields)

    # -- arguments ---------------------------------------------------------------------------
    async def _arguments(self, job: Any, node: Any) -> list[Any]:
        item = None
        if node.uses_input:
            item = self._codec_of(job).decode(job.input)
        outputs = []
        if job.parents:
            # Each parent job with the kept result its output names: one read of both.
            if len(job.parents) == 1:  # a chain's step: no gathering
                found = [await self._read_parents((job.run_id, job.parents[0]))]
            else:
                found = await asyncio.gather(*(self._read_parents((job.run_id, p))
                                               for p in job.parents))
            keys = [parent.output_key for parent, _ in found]
            self._parent_outputs[(job.run_id, job.job_id)] = keys
            outputs = [await self._output(key, job, record)
                       for key, (_, record) in zip(keys, found, strict=True)]
        return node.arguments(item, outputs)

    async def _output(self, key: str | None, job: Any, record: Any = None) -> Any:
        """The value an output key names (``record``: its task, when read already)."""
        if key is None:
            raise HokuroError("a parent job is done but names no output")
        if key.startswith(INPUT_REF):
            source = await self._read_jobs((job.run_id, key[len(INPUT_REF):]))
            return self._codec_of(job).decode(source.input)
        if record is None:
            record = await self._read_tasks(key)
        if record is None:
            raise HokuroError(f"the result of task {key[:12]} is gone (forgotten or "
                              "cleared); retry the run to compute it again")
        if record.blob is None:  # inline: decoding is CPU work, done here (as encoding is)
            found, value = _load_any(self._plan_of(job), record)
        else:  # a blob is read on an I/O thread
            found, value = await self._loop.run_in_executor(self._io, _load_any,
                                                            self._plan_of(job), record)
        if not found:
            raise HokuroError(f"the result of task {key[:12]} cannot be read")
        return value


class _Lane:
    """A sync step running on a step thread, started by the direct path: the handle by which
    a stopping worker gives it up."""

    __slots__ = ("job",)

    def __init__(self, job: Any) -> None:
        self.job = job


class _Upload:
    """A step's value that goes to the blob store: the upload is left to an I/O thread."""

    __slots__ = ("ctx", "data", "done", "key", "step")

    def __init__(self, done: JobOutcome, step: Any, key: str, data: bytes, ctx: Any) -> None:
        self.done, self.step, self.key, self.data, self.ctx = done, step, key, data, ctx


def _unread(record: Any) -> Any:
    """The value a job reusing ``record`` passes on without reading it: None when the kept
    result is None (the job passes its input on), else a stand-in."""
    return None if record.blob is None and record.result == _NIL else _KEPT


class _NotIterable(HokuroError, TypeError):
    def __init__(self, job_id: str, value: Any) -> None:
        super().__init__(f"the fan-out source {job_id} returned {type(value).__name__}, not a "
                         "list of elements: a fan-out needs a list (or another iterable that "
                         "is not text, bytes or a dict) to start one body per element")


def _load_any(plan: Any, record: Any) -> tuple[bool, Any]:
    step = plan.steps().get(record.fn)
    if step is None:
        raise HokuroError(f"task {record.key[:12]} of {record.fn} is not a step of this plan")
    return step.load(record)


def _ended(status: str, now: float, error: str | None = None) -> Any:
    from ..model.records import Outcome

    return Outcome(status=status, finished_at=now, error=error,
                   error_type=None if error is None else "Steered")


def resolve_future(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def fail_future(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
