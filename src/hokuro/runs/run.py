"""``Run``: the handle of a run — its results in input order, its failures, its summary.

Everything a handle reports is read from the ledger (the jobs and their tasks), so a run
handle over a million items holds no million results in memory until ``results()`` is asked
for, and a resumed or finished run reads the same as a live one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import HokuroError
from ..model.jobs import FINAL_JOB_STATUSES, JobStatus, RunRecord, RunStatus
from .executor import Tally, result_node
from .stepping import INPUT_REF

#: Jobs read per query when walking a run.
_PAGE = 500
#: Statuses of a run that has not ended yet.
_LIVE = frozenset({RunStatus.SUBMITTED, RunStatus.RUNNING})


def _inline_decoders(steps: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """(codec name, decode) of each step that says how its inline results decode without
    its ``load`` (``inline_decoder``)."""
    found = {}
    for name, step in steps.items():
        decoder = getattr(step, "inline_decoder", None)
        if decoder is not None:
            found[name] = decoder()
    return found


class JobFailed(HokuroError):
    """An item of a run that did not finish: the job that failed (or was cancelled) and why.

    ``run.results()`` puts one in place of the item's value (or raises it with
    ``strict=True``)."""

    def __init__(self, job_id: str, step: str, status: str, error: str | None) -> None:
        self.job_id = job_id
        self.step = step
        self.status = status
        self.error = error or status
        super().__init__(f"{job_id} ({step}) {status}: {self.error}")


class RunTimeout(HokuroError, TimeoutError):
    """``run.wait(timeout=...)`` ran out before the run ended."""


@dataclass(frozen=True, slots=True)
class Failure:
    """A job that failed for good, with the input of its item."""

    job_id: str
    step: str
    error: str
    input: Any


class Run:
    """A run of a plan: ``results()``, ``failures()``, ``summary()``; iterating it yields
    ``(input, outcome)`` pairs in the order the items finished."""

    def __init__(self, spot: Any, plan: Any, record: RunRecord, tally: Tally | None = None
                 ) -> None:
        self.spot = spot
        self.plan = plan
        self.record = record
        self.tally = tally or Tally()
        self._result_node = result_node(plan)

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def status(self) -> str:
        return self.record.status

    # -- waiting for workers ---------------------------------------------------------------
    def refresh(self) -> Run:
        """Read the run's record again (its status, as workers move it on)."""
        stored = self.spot.ledger.get_run(self.id)
        if stored is not None:
            self.record = stored
        return self

    def wait(self, timeout: float | None = None, *, every: float = 0.25) -> Run:
        """Wait until the run has ended (done, failed, cancelled or interrupted) — a
        submitted run ends when workers have run its last job — and return it; its
        results and summary can then be read. Raises :class:`RunTimeout` after
        ``timeout`` seconds."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while self.refresh().status in _LIVE:
            if deadline is not None and time.monotonic() >= deadline:
                raise RunTimeout(f"run {self.name!r} ({self.id[:8]}) is still "
                                 f"{self.status} after {timeout:g} s; is a worker serving "
                                 "it? (hokuro workers SPOT)")
            time.sleep(every if deadline is None
                       else max(0.0, min(every, deadline - time.monotonic())))
        return self

    # -- reading ---------------------------------------------------------------------------
    def _jobs(self, status: str | None = None) -> Iterator[Any]:
        return self.spot.ledger.find_jobs(self.id, status=status)

    def _job_of(self, head: str) -> str:
        """The job id of an item's result (``head`` is its index; "" for a run without
        input, whose jobs are named by their nodes alone)."""
        return f"{head}/{self._result_node}" if head else self._result_node

    def _items(self) -> list[str]:
        """Item prefixes ("0", "1", …) in input order."""
        if not self.plan.uses_input:
            return [""]
        items = []
        for job in self._jobs():
            head, _, rest = job.job_id.partition("/")
            if rest == self._result_node:
                items.append(head)
        items.sort(key=lambda head: (len(head), head))
        return items

    def _value(self, output_key: str | None) -> Any:
        ledger = self.spot.ledger
        if output_key is None:
            raise HokuroError("a done job names no output")
        if output_key.startswith(INPUT_REF):
            (source,) = ledger.get_jobs(self.id, [output_key[len(INPUT_REF):]])
            return self.spot.codec.decode(source.input)
        record = ledger.get(output_key)
        if record is None:
            raise HokuroError(f"the result of task {output_key[:12]} is gone (forgotten or "
                              "cleared); run again to compute it")
        step = self.plan.steps().get(record.fn)
        found, value = step.load(record)
        if not found:
            raise HokuroError(f"the result of task {output_key[:12]} cannot be read")
        return value

    @staticmethod
    def _why(failures: dict[str, list[Any]], item: str, job_id: str, step: str, status: str,
             error: str | None) -> JobFailed:
        """Why an item did not finish: its first failed job (``failures``, from
        :meth:`_failures_by_item`), else the job that ended it (the other arguments)."""
        for failed in failures.get(item, ()):
            return JobFailed(failed.job_id, failed.step, JobStatus.FAILED, failed.error)
        return JobFailed(job_id, step, status, error)

    def _failures_by_item(self) -> dict[str, list[Any]]:
        found: dict[str, list[Any]] = {}
        for job in sorted(self._jobs(JobStatus.FAILED), key=lambda job: job.seq):
            found.setdefault(job.job_id.partition("/")[0], []).append(job)
        return found

    def results(self, *, strict: bool = False) -> list[Any]:
        """The result of every item, in input order. An item that did not finish is a
        :class:`JobFailed` in its place, or raised when ``strict=True``.

        Read in bulk: one query gives every item's last job with the kept result its
        output names; inputs passed on, and the records of results kept any other way
        than inline (a blob), are read apart, in pages."""
        ledger = self.spot.ledger
        rows = ledger.node_results(self.id, self._result_node)
        if self.plan.uses_input:
            ends = {row[0].partition("/")[0]: row for row in rows if row[0].count("/") == 1}
            heads = sorted(ends, key=int)  # the items' indexes
        else:
            ends = {"": next(row for row in rows if row[0] == self._result_node)}
            heads = [""]
        passed = [ends[h][4] for h in heads if ends[h][1] == JobStatus.DONE
                  and ends[h][4] is not None and ends[h][4].startswith(INPUT_REF)]
        inputs = self._inputs_of(passed)
        steps = self.plan.steps()
        inline = _inline_decoders(steps)
        results: list[Any] = []
        later: dict[int, str | None] = {}  # position -> output key, read the long way
        failures: dict[str, list[Any]] | None = None
        for head in heads:
            job_id, status, step_name, error, output_key, fn, codec, blob, result = ends[head]
            if status == JobStatus.DONE:
                # The common case, a result kept inline in its step's codec, decoded here;
                # anything else (a blob, an input passed on, a fault) the long way.
                if blob is None and result is not None:
                    decoding = inline.get(fn)
                    if decoding is not None and decoding[0] == codec:
                        try:
                            results.append(decoding[1](result))
                            continue
                        except Exception:  # said (and recomputed) by the long way
                            pass
                later[len(results)] = output_key if fn is not None else None
                results.append(None)
                continue
            if failures is None:
                failures = self._failures_by_item()
            results.append(self._why(failures, head, job_id, step_name, status, error))
        records = ledger.get_many(key for key in later.values()
                                  if key is not None and not key.startswith(INPUT_REF))
        for i, head in enumerate(heads):  # in input order: the first error is the one raised
            if i in later:
                key = later[i]
                record = records.get(key) if key is not None else None
                results[i] = self._loaded(ends[head][4], record, inputs, steps)
            elif strict and isinstance(results[i], JobFailed):
                raise results[i]
        return results

    def _inputs_of(self, output_keys: list[str]) -> dict[str, Any]:
        """The decoded inputs that outputs ``input:<job id>`` pass on, read in pages."""
        decode = self.spot.codec.decode
        found: dict[str, Any] = {}
        for start in range(0, len(output_keys), _PAGE):
            page = [key[len(INPUT_REF):] for key in output_keys[start:start + _PAGE]]
            for job in self.spot.ledger.get_jobs(self.id, page):
                found[INPUT_REF + job.job_id] = decode(job.input)
        return found

    def _loaded(self, output_key: str | None, record: Any, inputs: dict[str, Any],
                steps: dict[str, Any]) -> Any:
        """:meth:`_value` from what ``results`` read: the inputs passed on, and the record
        of the task the output names (None when it is gone)."""
        if output_key is None:
            raise HokuroError("a done job names no output")
        if output_key.startswith(INPUT_REF):
            return inputs[output_key]
        if record is None:
            raise HokuroError(f"the result of task {output_key[:12]} is gone (forgotten or "
                              "cleared); run again to compute it")
        step = steps.get(record.fn)
        if step is None:
            raise HokuroError(f"task {output_key[:12]} of {record.fn} is not a step of this "
                              "plan")
        found, value = step.load(record)
        if not found:
            raise HokuroError(f"the result of task {output_key[:12]} cannot be read")
        return value

    def failures(self) -> list[Failure]:
        """Jobs that failed for good (after their retries), with their item's input."""
        found = []
        # In the order the jobs were made (the ledger lists them in job id order).
        for job in sorted(self._jobs(JobStatus.FAILED), key=lambda job: job.seq):
            root = job.input
            if root is None and job.parents:
                root = self._root_input(job)
            found.append(Failure(job.job_id, job.step, job.error or "failed",
                                 None if root is None else self.spot.codec.decode(root)))
        return found

    def _root_input(self, job: Any) -> bytes | None:
        ledger = self.spot.ledger
        while job.parents:
            (job,) = ledger.get_jobs(self.id, [job.parents[0]])
            if job.input is not None:
                return job.input
        return job.input

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        """``(input, outcome)`` per item, in the order the items finished: the outcome is
        the result, or a :class:`JobFailed`."""
        ends = {self._job_of(h) for h in self._items()} if not self.plan.uses_input else None
        finished = [j for j in self._jobs() if j.status in FINAL_JOB_STATUSES and (
            j.job_id in ends if ends is not None
            else j.job_id.partition("/")[2] == self._result_node)]
        finished.sort(key=lambda j: (j.updated_at, j.seq))
        failures: dict[str, list[Any]] | None = None
        for job in finished:
            root = job.input if job.input is not None else self._root_input(job)
            item = None if root is None else self.spot.codec.decode(root)
            if job.status == JobStatus.DONE:
                yield item, self._value(job.output_key)
            else:
                if failures is None:  # read once, for every item that did not finish
                    failures = self._failures_by_item()
                yield item, self._why(failures, job.job_id.partition("/")[0], job.job_id,
                                     job.step, job.status, job.error)

    def summary(self) -> dict[str, Any]:
        """Counts of this run: per status from the ledger, and from this process: how many
        jobs were reused (their task was already done) or retried, the time spent running
        steps and the time saved by reuse."""
        counts = self.spot.ledger.run_counts(self.id)
        by_status: dict[str, int] = {}
        by_step: dict[str, dict[str, int]] = {}
        for (node, status), n in counts.items():
            by_status[status] = by_status.get(status, 0) + n
            by_step.setdefault(node, {})[status] = n
        tally = self.tally.counts
        return {
            "run": self.id, "name": self.name, "status": self.status,
            "jobs": sum(by_status.values()),
            "done": by_status.get(JobStatus.DONE, 0),
            "reused": tally.get("reused", 0),
            "failed": by_status.get(JobStatus.FAILED, 0),
            "retried": tally.get("retried", 0),
            "waiting": by_status.get(JobStatus.WAITING, 0),
            "cancelled": by_status.get(JobStatus.CANCELLED, 0),
            "resets": tally.get("reset", 0),
            "polls": tally.get(JobStatus.WAITING, 0),
            "spent": round(self.tally.spent, 6),
            "saved": round(self.tally.saved, 6),
            "steps": by_step,
        }

    def __repr__(self) -> str:
        return f"<Run {self.name!r} {self.id[:8]} {self.status}>"
