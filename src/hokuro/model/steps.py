"""Steps as a plan sees them, and pipes of steps. Pure.

A step is a marked function; this layer knows it only as an object with ``.name``,
``.fn_path`` and ``.options`` (it never imports the engine). A **pipe** chains steps,
``request | status | download``: each step's result is the next step's input.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigurationError, PlanError
from .durations import parse_duration
from .steering import RetryPolicy


@runtime_checkable
class Step(Protocol):
    """What a plan needs of a step (a marked function)."""

    name: str
    fn_path: str
    options: Any


def is_step(obj: Any) -> bool:
    return not isinstance(obj, type) and callable(obj) and isinstance(obj, Step)


def not_a_step(obj: Any, where: str) -> PlanError:
    if callable(obj):
        name = getattr(obj, "__qualname__", repr(obj))
        return PlanError(f"{where}: {name} is not a marked function; decorate it with "
                         "@spot.mark so that each of its calls is a task with a record")
    return PlanError(f"{where}: {obj!r} is not a step; give a marked function or a pipe")


def short_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name.rsplit(".", 1)[-1]) or "step"


def _is_ctx_param(param: inspect.Parameter) -> bool:
    # As the call path decides (engine/marking.py), without importing the engine.
    annotation = param.annotation
    if annotation in ("Context", "hokuro.Context") or (
            getattr(annotation, "__name__", None) == "Context"
            and getattr(annotation, "__module__", "").startswith("hokuro")):
        return True
    return param.name == "ctx" and annotation is inspect.Parameter.empty


def check_arity(step: Any, given: int, where: str) -> None:
    """Refuse a call whose number of parents the step's signature cannot take."""
    try:
        signature = inspect.signature(step)
    except (TypeError, ValueError):
        return  # nothing to check against: the run will say
    params = [p for p in signature.parameters.values() if not _is_ctx_param(p)]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    keyword_only = [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    if keyword_only:
        raise PlanError(f"{where}: {step.name} needs keyword argument(s) {keyword_only}, which "
                        "a plan cannot give; give them defaults or make them positional")
    many = any(p.kind is p.VAR_POSITIONAL for p in params)
    if given < len(required) or (given > len(positional) and not many):
        takes = f"{len(required)}" if len(required) == len(positional) or many else \
            f"{len(required)} to {len(positional)}"
        raise PlanError(f"{where}: {step.name} takes {takes} argument(s) but is given {given} "
                        "parent(s); a step receives one argument per parent, in order")


class Pipe:
    """Steps chained: ``a | b | c``. Each step's result is the next step's input."""

    __slots__ = ("steps",)

    def __init__(self, steps: Iterable[Any]) -> None:
        flat: list[Any] = []
        for step in steps:
            if isinstance(step, Pipe):
                flat.extend(step.steps)
            elif is_step(step):
                flat.append(step)
            else:
                raise not_a_step(step, "in a pipe")
        if not flat:
            raise PlanError("a pipe needs at least one step")
        self.steps: tuple[Any, ...] = tuple(flat)

    @property
    def name(self) -> str:
        return " | ".join(step.name for step in self.steps)

    def __or__(self, other: Any) -> Pipe:
        if isinstance(other, Pipe) or is_step(other):
            return Pipe((self, other))
        raise not_a_step(other, "in a pipe")

    def __ror__(self, other: Any) -> Pipe:
        if is_step(other):
            return Pipe((other, self))
        raise not_a_step(other, "in a pipe")

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.steps)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pipe) and other.steps == self.steps

    def __hash__(self) -> int:
        return hash(self.steps)

    def __repr__(self) -> str:
        return f"<pipe {self.name}>"



_SCOPE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]*")
#: Priorities fit a 32-bit column in every ledger.
PRIORITY_RANGE = (-(2**31), 2**31 - 1)


def check_scope(scope: Any, what: str = "scope") -> str | None:
    """A scope name (or None): letters, digits, '_', '.', ':', '-' — a worker's list of
    scopes is written ``a,b,c``."""
    if scope is None:
        return None
    if not isinstance(scope, str) or not _SCOPE.fullmatch(scope) or len(scope) > 100:
        raise PlanError(f"{what}: a scope is a name of letters, digits, '_', '.', ':' and "
                        f"'-' (at most 100), not {scope!r}")
    return scope


def check_priority(priority: Any, what: str = "priority") -> int | None:
    """A priority (or None): a whole number; higher runs first within a scope."""
    if priority is None:
        return None
    low, high = PRIORITY_RANGE
    if isinstance(priority, bool) or not isinstance(priority, int) \
            or not low <= priority <= high:
        raise PlanError(f"{what}: a priority is a whole number from {low} to {high}, not "
                        f"{priority!r}")
    return priority




def check_body_function(body: Callable[..., Any]) -> None:
    try:
        signature = inspect.signature(body)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(None, None)
    except TypeError:
        raise PlanError(f"plan.each: the body {named(body)} must take (sub_plan, x): the "
                        f"plan to build on and the element; it takes {signature}") from None


def named(obj: Any) -> str:
    return str(getattr(obj, "name", None) or getattr(obj, "__qualname__", None) or repr(obj))


def step_options(opts: dict[str, Any]) -> dict[str, Any]:
    """The step options of a mark (``retries``, ``retry_on``, ``backoff``, ``timeout``,
    ``scope``, ``priority``, ``concurrency``, ``poll``), checked (None: not set); each message
    says what is expected."""
    retries, retry_on, backoff = opts.get("retries"), opts.get("retry_on"), opts.get("backoff")
    policy = RetryPolicy().over(retries, retry_on, backoff)  # checks all three
    timeout = parse_duration(opts.get("timeout"), what="timeout")
    if timeout == 0:
        raise ConfigurationError("timeout must be longer than 0 s (leave it out for none)")
    concurrency = opts.get("concurrency")
    if concurrency is not None and (isinstance(concurrency, bool) or not isinstance(
            concurrency, int) or concurrency < 1):
        raise ConfigurationError(
            f"concurrency must be a whole number >= 1 (at most that many jobs of this step "
            f"at once in a run), not {concurrency!r}")
    return {
        "retries": retries,
        "retry_on": None if retry_on is None else policy.retry_on,
        "backoff": None if backoff is None else policy.backoff,
        "timeout": timeout,
        "scope": check_scope(opts.get("scope"), "@spot.mark(scope=...)"),
        "priority": check_priority(opts.get("priority"), "@spot.mark(priority=...)"),
        "concurrency": concurrency,
        "poll": parse_duration(opts.get("poll"), what="poll"),
    }
