"""The executor's ledger calls on its I/O threads: claims of jobs with their tasks (and the
arguments a pipeline step reads from its parents), claims of tasks, reads in batches and
renewals of leases, each under the turns this process's writers take.

:class:`Claiming` is a part of :class:`~hokuro.runs.executor.Executor`: it uses the
executor's ledger, owner, plan hooks, writers' locks and held tasks. The loop's side of a
claim (how many, when, starting the jobs) stays in the executor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..model.records import ClaimResult, Record, Status
from .stepping import INPUT_REF, _load_any


class Claiming:
    """The executor's ledger calls made on its I/O threads."""

    def _claim_jobs_and_tasks(self, now: float, limit: int
                              ) -> tuple[list[Any], dict[tuple[str, str], Any]]:
        """On an I/O thread: claim up to ``limit`` jobs, then, in the same hand-off, their
        arguments (a pipeline step's parents and the kept results they name, in one read)
        and their tasks (one read of the keys not looked up when their jobs went in, one
        claim of the rest): their steps start with both answered, without two more trips
        through the event loop and the I/O thread per wave. A job whose arguments or key
        cannot be worked out here (an input passed on, a blob, a fault) does it as it
        runs, and says what fails."""
        jobs = self._jobs_serially(self.ledger.claim_jobs, self.owner, now,
                                   now + self.spot.lease, limit, **self._claim_where())
        return jobs, self._claim_tasks_early(jobs, now) if jobs else {}

    def _claim_tasks_early(self, jobs: list[Any], now: float
                           ) -> dict[tuple[str, str], Any]:
        """((run id, job id) -> (arguments, claim, answer)) for the claimed jobs whose arguments and
        task key could be worked out here; ``answer`` is the ledger's failure when the task
        claims failed (the jobs then stop the run, as a failed task claim does)."""
        wanted = [(job.run_id, parent) for job in jobs if not job.resets
                  for parent in job.parents]
        try:
            parents = dict(zip(wanted, self._get_parents(wanted), strict=True)) \
                if wanted else {}
        except Exception:  # each job reads its parents as it runs
            parents = None
        picked: list[tuple[tuple[str, str], list[Any], Any]] = []
        for job in jobs:
            if job.resets or (job.parents and parents is None):
                continue
            try:
                node = self._plan_of(job).node(job.node)
                step = node.step
                if not getattr(step, "claims_by_key", False):
                    raise LookupError(step)
                item = self._codec_of(job).decode(job.input) if node.uses_input else None
                outputs = []
                if job.parents:
                    keys = [_early_output(parents, job, parent) for parent in job.parents]
                    outputs = [_early_value(self._plan_of(job), parents[(job.run_id, p)][1])
                               for p in job.parents]
                args = node.arguments(item, outputs)
                claim = self._task_claim(job, step, args, now)
            except Exception:  # its step works it out as it runs (and says what fails)
                continue
            if job.parents:
                self._parent_outputs[(job.run_id, job.job_id)] = keys
            picked.append(((job.run_id, job.job_id), args, claim))
        if not picked:
            return {}
        try:
            answers: list[Any] = self._claim_many([claim for _, _, claim in picked])
        except Exception as exc:
            answers = [exc] * len(picked)
        return {job: (args, claim, answer)
                for (job, args, claim), answer in zip(picked, answers, strict=True)}

    def _renew(self, jobs: list[tuple[str, str]], tasks: list[str]) -> None:
        # The run renews its tasks' leases itself, with its jobs', in turn with group commits
        # (renewals interleaved with a commit finishing the same rows in another order could
        # deadlock on PostgreSQL), then under the writers' lock: claims wait for the renewal
        # alone, not for a commit it waited for.
        until = self.clock() + self.spot.lease
        with self._commit_turn, self._serial:
            if jobs:
                self.ledger.renew_jobs(self.owner, jobs, until)
            if tasks:
                self.ledger.renew(self.owner, tasks, until)

    def _serially(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self._serial:
            return fn(*args, **kwargs)

    def _jobs_serially(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self._jobs_serial:
            return fn(*args, **kwargs)

    def _claim_many(self, claims: list[Any]) -> list[Any]:
        # Kept results are found by a read, which takes no write lock: a rerun whose tasks
        # are all done writes nothing for them. Only the rest are claimed (one transaction).
        # Keys looked up when their jobs were inserted are not looked up again: the claim
        # itself still finds a result done meanwhile (a hit).
        # A task this process holds (claimed, its outcome not written yet) is busy: that is
        # the ledger's answer too, and not asking it keeps claims off the rows a group
        # commit is finishing (PostgreSQL: the two then cannot deadlock). Held is decided
        # under the writers' lock, and a task claimed is held from the moment its claim is
        # written, so no later claim here can reach a task a commit is finishing.
        checked, held = self._checked, self._tasks_held
        unknown = [c.key for c in claims
                   if not c.force and c.key not in checked and c.key not in held]
        found = self.ledger.lookup_many(unknown) if unknown else {}
        checked.difference_update(c.key for c in claims)
        answers: list[Any] = [None] * len(claims)
        rest = []
        for i, claim in enumerate(claims):
            record = found.get(claim.key)
            if record is not None and not claim.force and record.is_fresh_result(claim.now):
                answers[i] = ClaimResult("hit", record)
            else:
                rest.append(i)
        if rest:
            with self._serial:
                asked = []
                for i in rest:
                    claim = claims[i]
                    if claim.key in held:
                        answers[i] = ClaimResult("busy", Record(
                            claim.key, Status.RUNNING, fn=claim.fn, owner=self.owner,
                            lease_until=claim.lease_until))
                    else:
                        asked.append(i)
                if asked:
                    claimed = self.ledger.claim_many([claims[i] for i in asked])
                    for i, answer in zip(asked, claimed, strict=True):
                        answers[i] = answer
                        if answer.outcome == "claimed":
                            held.add(claims[i].key)
        return answers

    def _get_many(self, keys: list[str]) -> list[Any]:
        found = self.ledger.lookup_many(keys)
        return [found.get(key) for key in keys]

    def _get_parents(self, keys: list[tuple[str, str]]) -> list[tuple[Any, Any]]:
        """Parent jobs, each with the task its output names (None when it names none, or
        an input passed on, or the task is gone)."""
        jobs = self._get_jobs(keys)
        tasks = self.ledger.lookup_many([job.output_key for job in jobs if job is not None
                                         and job.output_key is not None
                                         and not job.output_key.startswith(INPUT_REF)])
        return [(job, None if job is None or job.output_key is None
                 else tasks.get(job.output_key)) for job in jobs]

    def _get_jobs(self, keys: list[tuple[str, str]]) -> list[Any]:
        by_run: dict[str, list[str]] = {}
        for run_id, job_id in keys:
            by_run.setdefault(run_id, []).append(job_id)
        found = {}
        for run_id, job_ids in by_run.items():
            for job in self.ledger.get_jobs(run_id, job_ids):
                found[(job.run_id, job.job_id)] = job
        return [found.get(key) for key in keys]


class _NotEarly(Exception):
    """A job whose arguments are read as it runs, not with its claim."""


def _early_output(parents: dict[tuple[str, str], Any], job: Any, parent: str) -> str:
    found, record = parents.get((job.run_id, parent), (None, None))
    if found is None or record is None or found.output_key is None \
            or found.output_key.startswith(INPUT_REF) or record.blob is not None:
        raise _NotEarly(parent)
    return found.output_key


def _early_value(plan: Any, record: Any) -> Any:
    found, value = _load_any(plan, record)
    if not found:
        raise _NotEarly(record.key)
    return value
