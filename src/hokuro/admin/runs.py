"""Runs as people read and steer them (``hokuro runs``, ``hokuro run show``, ``hokuro run
cancel``, ``hokuro retry --run``), and, later, the dashboard: listing, naming one run,
its details, cancelling it, retrying its failures.

Why these choices:
- Reading never writes (invariant 6): the readers take a ledger opened read-only and call
  only its reads; a ledger without the runs tables (an older schema opened as it is, or a
  ledger that keeps no runs) reads as "no runs", and nothing named by stored data is
  imported. Only :func:`retry_run` imports the steps, to run them, as ``hokuro retry``
  does for tasks.
- A run is named by its id, the first characters of its id, or its name (the newest run
  of that name): ids are long random hex, names are what people remember.
- Cancelling claims and cancels the jobs (``runs/cancelling.py``): the store's fencing by
  owner and attempt keeps a live owner's late outcomes out, with no statement of its own.
"""

from __future__ import annotations

import heapq
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AmbiguousRun, ConfigurationError, HokuroError, RunNotFound
from ..model.jobs import FINAL_JOB_STATUSES, JobStatus, RunRecord, RunStatus
from ..model.plans import Plan
from ..runs.cancelling import cancel_jobs, open_jobs
from ..runs.executor import Options
from ..runs.run import Run
from ..runs.starting import resume_sync
from .replay import Unusable, args_codec, import_marked, importable_from

__all__ = [
    "CancelReport",
    "JobLine",
    "RetryReport",
    "RunDetail",
    "RunRow",
    "StepRow",
    "cancel_run",
    "find_run",
    "follow_run",
    "keeps_runs",
    "list_runs",
    "retry_run",
    "run_detail",
]

#: Job statuses in the order people read them: finished first, then what is on its way.
STATUS_ORDER = (JobStatus.DONE, JobStatus.RUNNING, JobStatus.WAITING, JobStatus.FAILED,
                JobStatus.CANCELLED, JobStatus.BLOCKED, JobStatus.QUEUED)
#: Statuses of a run that is still going on somewhere (``--follow`` waits for them to end).
LIVE_RUN_STATUSES = frozenset({RunStatus.RUNNING, RunStatus.SUBMITTED})
#: The error of jobs cancelled by ``hokuro run cancel``.
CANCEL_REASON = "cancelled: the run was cancelled (hokuro run cancel)"
#: How many runs a name or an id prefix is looked up among.
_LOOKUP = 100_000
#: How follow_run waits (tests put a fake clock here).
_sleep = time.sleep


def keeps_runs(ledger: Any) -> bool:
    """Whether ``ledger`` has runs to read (a custom ledger may keep tasks only)."""
    return bool(getattr(ledger, "supports_runs", False)) and hasattr(ledger, "list_runs")


def status_counts(ledger: Any, run_id: str) -> dict[str, int]:
    """Jobs of a run per status."""
    counts: dict[str, int] = {}
    for (_, status), n in ledger.run_counts(run_id).items():
        counts[str(status)] = counts.get(str(status), 0) + n
    return counts


# -- listing and naming ------------------------------------------------------------------------

@dataclass(slots=True)
class RunRow:
    """A run with its jobs counted per status."""

    record: RunRecord
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def count(self, status: str) -> int:
        return self.counts.get(status, 0)

    @property
    def open(self) -> int:
        return sum(n for s, n in self.counts.items() if s not in FINAL_JOB_STATUSES)


def list_runs(ledger: Any, *, status: str | None = None, limit: int | None = 50
              ) -> list[RunRow]:
    """Runs newest first (``limit`` None: all), each with its jobs counted."""
    if not keeps_runs(ledger):
        return []
    records = ledger.list_runs(limit=_LOOKUP if limit is None else limit, status=status)
    return [RunRow(record, status_counts(ledger, record.id)) for record in records]


def find_run(ledger: Any, ref: str) -> RunRecord:
    """The run that ``ref`` names: its id, a unique first part of its id, or its name (the
    newest run of that name). Raises :class:`RunNotFound` or :class:`AmbiguousRun`."""
    ref = ref.strip()
    if not ref:
        raise RunNotFound("give a run's id, the first characters of its id, or its name")
    if not keeps_runs(ledger):
        raise RunNotFound(f"no run has the id or name {ref!r}: this ledger has no runs")
    exact = ledger.get_run(ref)
    if exact is not None:
        return exact
    records = ledger.list_runs(limit=_LOOKUP)
    named = [r for r in records if r.name == ref]
    if named:
        return named[0]
    matching = [r for r in records if r.id.startswith(ref.lower())]
    if len(matching) == 1:
        return matching[0]
    if not matching:
        raise RunNotFound(f"no run has the id or name {ref!r}; hokuro runs SPOT lists the "
                          "runs with their ids")
    shown = ", ".join(f"{r.id[:12]} ({r.name}, {r.status})" for r in matching[:10])
    more = f" and {len(matching) - 10} more" if len(matching) > 10 else ""
    raise AmbiguousRun(f"{len(matching)} runs have ids starting with {ref!r}: {shown}{more}; "
                       "give more characters of the id", matching)


# -- one run in detail -----------------------------------------------------------------------

@dataclass(slots=True)
class StepRow:
    """The jobs of one node of the plan, per status."""

    node: str
    step: str
    counts: dict[str, int]


@dataclass(slots=True)
class JobLine:
    """A job as ``run show`` lists it: a failure, or a job waiting to be polled again."""

    job_id: str
    node: str
    step: str
    status: str
    attempts: int
    run_after: float
    error: str | None  # its first line


@dataclass(slots=True)
class RunDetail:
    record: RunRecord
    plan: dict[str, Any] | None  # the plan's description, as recorded
    steps: list[StepRow]
    counts: dict[str, int]
    failures: list[JobLine]  # the first ones, in the order the jobs were made
    waiting: list[JobLine]  # those that wake first
    next_wake: float | None  # when the first queued or waiting job is due

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def run_detail(ledger: Any, record: RunRecord, codec: Any, *, limit: int = 20) -> RunDetail:
    """Per-step counts, the first ``limit`` failures and the ``limit`` waiting jobs that
    wake first, of ``record``'s run."""
    plan = described_plan(record, codec)
    counts = ledger.run_counts(record.id)
    by_node: dict[str, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for (node, status), n in counts.items():
        by_node.setdefault(node, {})[str(status)] = n
        totals[str(status)] = totals.get(str(status), 0) + n
    steps = [StepRow(node, step, by_node.pop(node, {})) for node, step in plan_nodes(plan)]
    steps += [StepRow(node, node.split(".", 1)[-1], c) for node, c in sorted(by_node.items())]
    # The first failures in the order their jobs were made (the ledger lists them by id).
    failures = [_line(job) for job in heapq.nsmallest(
        limit, ledger.find_jobs(record.id, status=JobStatus.FAILED),
        key=lambda job: job.seq)] if limit else []
    soonest = heapq.nsmallest(limit, ledger.find_jobs(record.id, status=JobStatus.WAITING),
                              key=lambda job: (job.run_after, job.seq)) if limit else []
    return RunDetail(record, plan, steps, totals, failures, [_line(j) for j in soonest],
                     ledger.next_wake(record.id))


def follow_run(ledger: Any, run_id: str, codec: Any, *, every: float = 1.0, limit: int = 20,
               sleep: Callable[[float], None] | None = None) -> Iterator[RunDetail]:
    """The run's details now, then again every ``every`` seconds while it runs (or waits
    for workers); the last one is the run as it ended."""
    sleep = sleep or _sleep
    while True:
        record = ledger.get_run(run_id)
        if record is None:
            raise RunNotFound(f"run {run_id[:12]} is gone")
        yield run_detail(ledger, record, codec, limit=limit)
        if record.status not in LIVE_RUN_STATUSES:
            return
        sleep(every)


def described_plan(record: RunRecord, codec: Any) -> dict[str, Any] | None:
    """The plan recorded with a run, as plain data (never unpickled: a description is
    written by the Spot's msgpack codec; anything else is not read)."""
    if not record.plan or args_codec(record.plan) != "msgpack":
        return None
    try:
        plan = codec.decode(record.plan)
    except Exception:
        return None
    return plan if isinstance(plan, dict) else None


def plan_nodes(plan: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(node id, step name) of every call of a described plan, fan-out bodies after their
    fan-out, in the plan's order."""
    found: list[tuple[str, str]] = []

    def walk(nodes: Any) -> None:
        for node in nodes or ():
            if not isinstance(node, dict):
                continue
            if node.get("kind") == "call":
                found.append((str(node.get("id")), str(node.get("step"))))
            elif node.get("kind") == "each":
                walk(node.get("nodes"))

    if plan is not None:
        walk(plan.get("nodes"))
    return found


def _line(job: Any) -> JobLine:
    error = (job.error or "").strip().splitlines()
    return JobLine(job.job_id, job.node, job.step, str(job.status), job.attempts,
                   job.run_after, error[0] if error else None)


# -- steering ----------------------------------------------------------------------------------

@dataclass(slots=True)
class CancelReport:
    run: RunRecord
    open_before: int  # jobs not done, failed or cancelled when the cancel began
    cancelled: int  # of those, cancelled (their descendants included)
    still_open: int  # jobs another process kept adding meanwhile (normally 0)
    nothing_to_do: bool = False


def cancel_run(ledger: Any, record: RunRecord, *, owner: str,
               clock: Callable[[], float] = time.time, lease: float = 60.0,
               reason: str = CANCEL_REASON) -> CancelReport:
    """Cancel a run: its status becomes cancelled (so it is never resumed, and the process
    running it stops claiming), then every job not done is cancelled, running ones of a live
    owner included (its late outcomes are fenced off: ``runs/cancelling.py``). A run that
    ended with nothing open is left as it is (``nothing_to_do``)."""
    _check_runs(ledger)
    before = open_jobs(ledger, record.id)
    if not before and record.status in (RunStatus.DONE, RunStatus.FAILED,
                                        RunStatus.CANCELLED):
        return CancelReport(record, 0, 0, 0, nothing_to_do=True)
    now = clock()
    # The status first: a resume, or the process running the run, sees it before the jobs
    # go; a cancel cut short is finished by running it again.
    ledger.update_run(record.id, status=RunStatus.CANCELLED, finished_at=now, error=reason,
                      updated_at=now)
    cancel_jobs(ledger, record.id, owner, clock, reason=reason, lease=lease)
    after = status_counts(ledger, record.id)
    still_open = sum(n for s, n in after.items() if s not in FINAL_JOB_STATUSES)
    return CancelReport(ledger.get_run(record.id) or record, before, before - still_open,
                        still_open)


@dataclass(slots=True)
class RetryReport:
    record: RunRecord
    failed: int  # failed jobs found
    requeued: list[str]  # job ids queued again (the failed ones and what they cancelled)
    run: Run | None  # None: a dry run, or nothing to retry
    steps: list[str] = field(default_factory=list)  # the import paths of the steps

    @property
    def nothing_to_do(self) -> bool:
        return self.run is None and not self.failed


def retry_run(ledger: Any, record: RunRecord, *, search_path: str | os.PathLike[str] | None
              = None, concurrency: int = 32, progress: bool | None = None,
              dry_run: bool = False) -> RetryReport:
    """Queue the failed jobs of a run again, from their failed step (and the jobs their
    failures cancelled), and run it in this process to its end.

    The steps are imported by the import paths recorded in the run's plan, with
    ``search_path`` (default: the current folder) first on ``sys.path``, and must record
    into this ledger. With ``dry_run`` they are imported and nothing changes. A run with
    no failure but jobs still open (interrupted) is run on as well."""
    _check_runs(ledger)
    plan, spot, paths = _plan_of(ledger, record, search_path)
    failed = status_counts(ledger, record.id).get(JobStatus.FAILED, 0)
    report = RetryReport(record, failed, [], None, paths)
    if dry_run or (not failed and not open_jobs(ledger, record.id)):
        return report
    spot.prepare_to_run()
    report.requeued = spot.ledger.requeue_failed(record.id, spot.clock())
    report.run = resume_sync(spot, plan, record, options=Options(concurrency=concurrency),
                             progress=progress)
    report.record = report.run.record
    return report


def _plan_of(ledger: Any, record: RunRecord, search_path: str | os.PathLike[str] | None
             ) -> tuple[Plan, Any, list[str]]:
    description = described_plan(record, _codec())
    if description is None:
        raise HokuroError(f"run {record.id[:8]} ({record.name}) has no plan this hokuro can "
                          "read, so its steps cannot be imported; run its code again")
    steps: dict[str, Any] = {}
    problems: list[str] = []
    script_spot: list[Any] = []

    def resolve(name: str, fn_path: str) -> Any:
        if fn_path.startswith("script:"):  # a step of a .bue script: compiled from its file
            found = _script_step(name, fn_path, ledger, script_spot, problems)
            if found is not None:
                steps[fn_path] = found
                return found
            return _Missing(name, fn_path)
        found = import_marked(fn_path, ledger)
        if isinstance(found, Unusable):
            problems.append(f"step {name}: {found.reason}")
            return _Missing(name, fn_path)
        if found.name != name:
            problems.append(f"step {name}: {fn_path} is now named {found.name}; its tasks "
                            "are recorded under the old name")
        steps[fn_path] = found
        return found

    with importable_from(Path(search_path) if search_path else Path.cwd()):
        try:
            plan = Plan.from_description(description, resolve)
        except ConfigurationError:
            if not problems:
                raise
            plan = None
    if problems or plan is None:
        raise HokuroError(f"run {record.id[:8]} ({record.name}) cannot be retried here: "
                          + "; ".join(problems))
    spot = next(iter(steps.values())).spot
    return plan, spot, sorted(steps)


def _script_step(name: str, fn_path: str, ledger: Any, spot: list[Any],
                 problems: list[str]) -> Any:
    """The script step ``fn_path`` for a Spot over ``ledger`` (one per retry), or None with
    the problem noted."""
    from ..engine.spot import Spot
    from ..script import resolve_step

    try:
        if not spot:
            spot.append(Spot(ledger.spot or "default", db=ledger))
        return resolve_step(fn_path, spot[0])
    except HokuroError as exc:
        problems.append(f"step {name}: {exc}")
        return None


class _Missing:
    """Stands for a step that could not be imported, so that the plan's other problems are
    found too (the retry is refused whatever they are)."""

    def __init__(self, name: str, fn_path: str) -> None:
        self.name = name
        self.fn_path = fn_path
        self.options = None

    def __call__(self, *args: Any) -> Any:
        raise HokuroError(f"{self.fn_path} was not imported")


def _check_runs(ledger: Any) -> None:
    if not keeps_runs(ledger):
        raise ConfigurationError(f"the ledger {ledger.describe()} keeps no runs")


def _codec() -> Any:
    from ..model.codec import Codec

    return Codec()
