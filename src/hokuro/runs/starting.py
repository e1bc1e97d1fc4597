"""Starting, resuming and finishing a run in this process: ``spot.map`` / ``spot.run``.

A run has a name (by default its plan's). Starting a run whose name matches an unfinished
run resumes it: done jobs stay done, jobs of a dead process are taken back at once, and a
streamed input is read again and skipped up to the recorded cursor. Ctrl-C stops claiming,
lets running jobs finish and commit, marks the run interrupted and says how to resume.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import sys
import threading
from collections.abc import Iterable
from typing import Any

from ..errors import ConfigurationError
from ..model.jobs import FINAL_JOB_STATUSES, JobStatus, RunRecord, RunStatus
from ..model.records import Outcome, Status
from .cancelling import cancel_jobs
from .executor import Executor, Options, Tally
from .progress import RunProgress, wanted
from .run import Run

log = logging.getLogger("hokuro")
#: Seconds between two looks at whether the run was cancelled from outside.
WATCH = 0.5
#: The error of jobs cancelled with their run, when the run names no reason.
CANCELLED = "cancelled with the run"


def prepare(spot: Any, plan: Any, *, over: Iterable[Any] | None, name: str | None,
            status: str = RunStatus.RUNNING, options: bytes | None = None
            ) -> tuple[RunRecord, Any]:
    """The run to execute (new, or the unfinished one of that name) and its items; its
    status becomes ``status`` (``submitted``: for workers)."""
    ledger = spot.ledger
    if not getattr(ledger, "supports_runs", False):
        raise ConfigurationError(
            f"the ledger {ledger.describe()} does not keep runs; use the SQLite or "
            "PostgreSQL ledger (Spot(db=...)) to run plans, or call the steps directly")
    check = getattr(plan, "check", None)
    if check is not None:
        check()
    if plan.uses_input and over is None:
        raise ConfigurationError(f"plan {plan.name!r} takes an input: give the items, "
                                 "spot.run(plan, over=items)")
    if over is not None and not plan.uses_input:
        raise ConfigurationError(f"plan {plan.name!r} never uses its input, so over= would "
                                 "run it once per item on nothing; use plan.input() in it")
    if over is not None and isinstance(over, str | bytes | dict):
        raise ConfigurationError(f"over= takes the items (a list, or any iterable), not a "
                                 f"{type(over).__name__}")
    described = spot.codec.encode(plan.describe(), root="plan") \
        if hasattr(plan, "describe") else None
    run_name = name or plan.name
    now = spot.clock()
    record = ledger.find_unfinished_run(run_name)
    if record is not None:
        if described is not None and record.plan is not None and record.plan != described:
            raise ConfigurationError(
                f"an unfinished run named {run_name!r} ({record.id[:8]}) has another plan; "
                f"finish it (run the old code again), cancel it (hokuro run cancel "
                f"{spot.name} {record.id[:8]}), or give this run another name (run=...)")
        ledger.update_run(record.id, status=status, updated_at=now)
        record.status = status
    else:
        record = RunRecord(id=os.urandom(16).hex(), name=run_name, status=status,
                           plan=described, created_at=now, updated_at=now, options=options)
        ledger.create_run(record)
    if over is None:
        items: Any = iter([(None, None)]) if record.cursor == 0 else iter(())
    else:
        items = itertools.islice(enumerate(over), record.cursor, None)
    return record, items


async def execute(spot: Any, plan: Any, record: RunRecord, items: Any, options: Options,
                  progress: bool | None) -> Tally:
    executor = Executor(spot, plan, record, options, items=items)
    display = None
    if wanted(progress):
        display = RunProgress(record.id, spot.ledger, executor.tally)
    loop = asyncio.get_running_loop()
    helpers = [loop.create_task(_stop_when_cancelled(spot.ledger, record.id, executor))]
    if display is not None:
        helpers.append(loop.create_task(display.follow(loop, None)))
    try:
        return await executor.execute()
    except asyncio.CancelledError:
        executor.stop()
        raise
    finally:
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        spot._last_tally = executor.tally


async def _stop_when_cancelled(ledger: Any, run_id: str, executor: Executor) -> None:
    """Stop claiming and reading inputs once the run is cancelled (``hokuro run cancel``
    from another process); the canceller has already fenced off the running jobs."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(WATCH)
        try:
            stored = await loop.run_in_executor(None, ledger.get_run, run_id)
        except Exception as exc:  # a passing outage: look again next time
            log.warning("hokuro: could not read the status of run %s: %s", run_id[:8], exc)
            continue
        if stored is not None and stored.status == RunStatus.CANCELLED:
            executor.stop()
            return


def finish(spot: Any, plan: Any, record: RunRecord, *, interrupted: bool = False) -> None:
    """Record how the run ended: done, failed (some jobs failed or were cancelled),
    interrupted (stopped, or inputs left to read: resumable), or cancelled meanwhile."""
    ledger = spot.ledger
    now = spot.clock()
    stored = ledger.get_run(record.id) or record
    if stored.status == RunStatus.CANCELLED:
        # Cancelled while running here: what this process inserted after the cancel (a
        # window of inputs, before it saw the cancel) is cancelled too.
        cancel_jobs(ledger, record.id, spot.owner_token(), spot.clock,
                    reason=stored.error or CANCELLED, lease=spot.lease)
        record.status = RunStatus.CANCELLED
        return
    if interrupted:
        hand_back(spot, plan, record)
        ledger.update_run(record.id, status=RunStatus.INTERRUPTED, updated_at=now)
        record.status = RunStatus.INTERRUPTED
        return
    counts = ledger.run_counts(record.id)
    unfinished = sum(n for (_, s), n in counts.items() if s not in FINAL_JOB_STATUSES)
    bad = sum(n for (_, s), n in counts.items() if s in ("failed", "cancelled"))
    status = (RunStatus.INTERRUPTED if unfinished or not stored.inputs_done else
              RunStatus.FAILED if bad else RunStatus.DONE)
    ledger.update_run(record.id, status=status, updated_at=now,
                      finished_at=None if status == RunStatus.INTERRUPTED else now)
    record.status = status


def hand_back(spot: Any, plan: Any, record: RunRecord) -> None:
    """Jobs of this run that this process left running when it was interrupted go back to
    the queue, and their tasks' leases are let go, so that running the run again in this
    same process goes on at once (another process would see this one's jobs as its own
    only after their leases ran out; a dead process's are taken back at once anyway).

    A step that raised KeyboardInterrupt, or jobs cut off by the event loop's shutdown,
    leave their job running and their task claimed under this live owner."""
    ledger = spot.ledger
    owner = spot.owner_token()
    mine = [job for job in ledger.find_jobs(record.id, status=JobStatus.RUNNING)
            if job.owner == owner]
    if not mine:
        return
    reader = Run(spot, plan, record)
    for job in mine:
        try:
            node = plan.node(job.node)
            item = spot.codec.decode(job.input) if node.uses_input else None
            parents = {p.job_id: p for p in ledger.get_jobs(record.id, job.parents)}
            outputs = [reader._value(parents[p].output_key) for p in job.parents]
            key = node.step.task_claim(tuple(node.arguments(item, outputs)), owner,
                                       spot.clock()).key
        except Exception as exc:  # the task's lease then runs out on its own
            log.warning("hokuro: could not find the task of job %s: %s", job.job_id, exc)
            continue
        task = ledger.get(key)
        if task is not None and task.status == Status.RUNNING and task.owner == owner:
            ledger.finish(key, owner, Outcome(
                status=Status.CANCELLED, finished_at=spot.clock(), error_type="Interrupted",
                error=f"interrupted: run {record.name!r} ({record.id[:8]}) was stopped; "
                      "the task runs again when the run goes on"))
    ledger.release_jobs(owner, [(job.run_id, job.job_id) for job in mine], spot.clock())


def run_sync(spot: Any, plan: Any, *, over: Iterable[Any] | None, name: str | None,
             options: Options, progress: bool | None) -> Run:
    record, items = prepare(spot, plan, over=over, name=name)
    return _drive(spot, plan, record, items, options, progress)


def resume_sync(spot: Any, plan: Any, record: RunRecord, *, options: Options,
                progress: bool | None) -> Run:
    """Go on with a recorded run in this process, over the jobs it has in the ledger, and
    read no input (``hokuro retry --run``): a run whose inputs were not all read stays
    interrupted, for its own code to resume."""
    spot.ledger.update_run(record.id, status=RunStatus.RUNNING, finished_at=None, error=None,
                           updated_at=spot.clock())
    record.status = RunStatus.RUNNING
    return _drive(spot, plan, record, None, options, progress)


def _drive(spot: Any, plan: Any, record: RunRecord, items: Any, options: Options,
           progress: bool | None) -> Run:
    coroutine = execute(spot, plan, record, items, options, progress)
    try:
        tally = _run_coroutine(coroutine)
    except KeyboardInterrupt:
        finish(spot, plan, record, interrupted=True)
        run = Run(spot, plan, record, getattr(spot, "_last_tally", None))
        print(f"\nhokuro: run {record.name!r} ({record.id[:8]}) interrupted: "
              f"{_short_summary(run)}. Run the same code again to resume it.", file=sys.stderr)
        raise
    finish(spot, plan, record)
    return Run(spot, plan, record, tally)


async def run_async(spot: Any, plan: Any, *, over: Iterable[Any] | None, name: str | None,
                    options: Options, progress: bool | None) -> Run:
    loop = asyncio.get_running_loop()
    record, items = await loop.run_in_executor(
        None, lambda: prepare(spot, plan, over=over, name=name))
    try:
        tally = await execute(spot, plan, record, items, options, progress)
    except (asyncio.CancelledError, KeyboardInterrupt):
        await loop.run_in_executor(None, lambda: finish(spot, plan, record, interrupted=True))
        raise
    await loop.run_in_executor(None, lambda: finish(spot, plan, record))
    return Run(spot, plan, record, tally)


def _run_coroutine(coroutine: Any) -> Any:
    """Run ``coroutine`` to its end from sync code: on this thread's own event loop, or on
    a new thread's when this thread already runs one (a notebook, an async framework)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coroutine)
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="hokuro-run")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _short_summary(run: Run) -> str:
    summary = run.summary()
    return ", ".join(f"{summary[k]} {k}" for k in ("done", "failed", "waiting", "cancelled")
                     if summary[k]) or "nothing done yet"
