"""Runs and jobs as data: what the ledger keeps about a run and each of its jobs. No I/O.

A *run* executes a plan over inputs; a *job* is one step applied to one input inside a run,
identified by its run and a stable path in the plan (``job_id``), so a resumed run never
makes a job twice. A job executes its step as a task: ``task_key`` names that task, and
``output_key`` the task whose result is the job's value (its own, or, when the step returned
None and so passed its input on, its parent's; None for a root job passing its own input).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class JobStatus(StrEnum):
    BLOCKED = "blocked"  # waits for its parents
    QUEUED = "queued"  # ready to be claimed
    RUNNING = "running"  # claimed: an owner holds its lease
    WAITING = "waiting"  # asked to be polled again: claimable once run_after has passed
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: Statuses a job never leaves (unless its chain is reset or the run retried).
FINAL_JOB_STATUSES = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED})


class RunStatus(StrEnum):
    SUBMITTED = "submitted"  # recorded for workers, not started here
    RUNNING = "running"
    INTERRUPTED = "interrupted"  # stopped (Ctrl-C, a crash seen later): resumable
    DONE = "done"  # every job done
    FAILED = "failed"  # finished, with failed or cancelled jobs
    CANCELLED = "cancelled"


#: Statuses of a run that a new run of the same name resumes.
UNFINISHED_RUN_STATUSES = frozenset({RunStatus.SUBMITTED, RunStatus.RUNNING,
                                     RunStatus.INTERRUPTED})


@dataclass(slots=True)
class RunRecord:
    """The stored row of a run."""

    id: str
    name: str
    status: str
    plan: bytes | None  # the encoded plan description (for show, workers, resume checks)
    created_at: float
    updated_at: float
    finished_at: float | None = None
    cursor: int = 0  # inputs already turned into jobs (a streamed input resumes after it)
    inputs_done: bool = False  # the input iterable was read to its end
    options: bytes | None = None  # encoded run-level options
    error: str | None = None


@dataclass(slots=True)
class JobSpec:
    """One job to insert."""

    job_id: str
    node: str  # the plan node this job instantiates
    step: str  # the step's collection name
    parents: tuple[str, ...] = ()  # job ids whose outputs are its arguments, in order
    input: bytes | None = None  # the encoded input of a root job
    scope: str = "default"
    priority: int = 0
    run_after: float = 0.0
    #: Set when the job's task is already done (a rerun's kept result): the job is inserted
    #: ``done`` with these keys, as if it had been claimed and found its task done.
    task_key: str | None = None
    output_key: str | None = None


@dataclass(slots=True)
class Job:
    """A job as the ledger holds it (claimed, or read)."""

    run_id: str
    job_id: str
    node: str
    step: str
    status: str
    parents: tuple[str, ...]
    input: bytes | None
    scope: str
    priority: int
    run_after: float
    seq: int
    attempts: int
    resets: int
    owner: str | None
    lease_until: float | None
    task_key: str | None
    output_key: str | None
    error: str | None
    created_at: float
    updated_at: float


@dataclass(slots=True)
class JobOutcome:
    """What an executor commits for one job it claimed.

    ``status`` is ``done``, ``waiting`` (poll again at ``run_after``), ``queued`` (a retry
    at ``run_after``), ``failed``, ``cancelled`` or ``reset`` (restart the item's chain).
    ``attempt`` is the attempt number of the claim: it fences late writers, so an outcome
    of a job that was meanwhile claimed again is not written.
    """

    run_id: str
    job_id: str
    owner: str
    attempt: int
    status: str
    task_key: str | None = None
    output_key: str | None = None
    run_after: float | None = None
    error: str | None = None
    children: list[JobSpec] = field(default_factory=list)  # fan-out, inserted in the same tx
