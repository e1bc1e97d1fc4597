"""buelon's step results (``Result``, ``StepStatus``) and what they mean to a run.

A script step's function returns its result, as in buelon:

- a plain value is the step's result; ``None`` passes the step's (first) input on — the
  input object itself, so a step that edits its rows in place passes the edited rows;
- ``Result(status=StepStatus.pending)`` → :class:`hokuro.Pending`: the job is claimed again
  after the step's poll delay (``!poll``, default 10 s), without holding a worker;
- ``Result(status=StepStatus.reset)`` → :class:`hokuro.Reset`: the item's chain restarts
  from its first step; ``cancel`` → :class:`hokuro.Cancel`; ``error`` raises
  :class:`StepError` (retried as ``!retries`` says, then recorded as a failure);
- a tuple is ``(status, data)`` (or buelon's longer ``(status, env, …, data)``) only when
  its first element is a :class:`StepStatus`; any other tuple is data.
"""

from __future__ import annotations

import enum
from typing import Any

from ..errors import HokuroError
from ..model.steering import Cancel, Pending, Reset


class StepStatus(enum.Enum):
    """What a step says about its job (buelon's names and values)."""

    success = 1
    queued = 2
    pending = 3
    cancel = 4
    reset = 5
    working = 6
    error = 7
    unknown = 8


class Result:
    """A step's answer with a status, as buelon's ``Result``. Only ``status`` and ``data``
    steer a hokuro run; ``env``, ``priority``, ``velocity``, ``next_scope`` and
    ``self_scope`` are kept for compatibility and otherwise ignored."""

    __slots__ = ("data", "env", "next_scope", "priority", "self_scope", "status", "velocity")

    def __init__(self, status: StepStatus | None = None, env: dict[str, Any] | None = None,
                 priority: int | None = None, velocity: float | None = None,
                 data: Any = None, next_scope: str | None = None,
                 self_scope: str | None = None) -> None:
        self.status = status
        self.env = env or {}
        self.priority = priority
        self.velocity = velocity
        self.data = data
        self.next_scope = next_scope
        self.self_scope = self_scope

    def __repr__(self) -> str:
        status = self.status.name if isinstance(self.status, StepStatus) else self.status
        return f"Result(status={status}, data={self.data!r})"


class StepError(HokuroError):
    """A step returned ``Result(status=StepStatus.error)`` (or an unknown status)."""


def steer(value: Any, inputs: tuple[Any, ...], step: str) -> Any:
    """What the run does with ``value``, returned by ``step`` called with ``inputs``: a
    result, or hokuro's ``Pending`` / ``Reset`` / ``Cancel``."""
    status: StepStatus | None = None
    data = value
    if isinstance(value, Result):
        status, data = value.status, value.data
    elif isinstance(value, tuple) and value and isinstance(value[0], StepStatus):
        if len(value) < 2:
            raise StepError(f"{step} returned {value!r}: a (StepStatus, data) tuple needs "
                            "its data (None to pass the input on)")
        status, data = value[0], value[-1]
    if status is None or status is StepStatus.success:
        if data is None and inputs:
            return inputs[0]
        return data
    if status in (StepStatus.pending, StepStatus.queued, StepStatus.working):
        return Pending()
    if status is StepStatus.reset:
        return Reset(f"{step} returned StepStatus.reset")
    if status is StepStatus.cancel:
        reason = data if isinstance(data, str) else ""
        return Cancel(reason or f"{step} returned StepStatus.cancel")
    if status is StepStatus.error:
        raise StepError(f"{step} returned StepStatus.error" + (f": {data}" if data else ""))
    raise StepError(f"{step} returned the status {status!r}, which says nothing a run can "
                    "act on; return data, or a Result with success, pending, reset, cancel "
                    "or error")
