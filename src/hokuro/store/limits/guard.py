"""A limiter with a cost: the decorator and context manager :meth:`Limiter.__call__`
returns, and what it leaves on a decorated function for a mark above it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from ...errors import ConfigurationError

if TYPE_CHECKING:
    from .limiter import Limiter

Cost = float | Mapping[str, float]
CostSpec = Cost | Callable[..., Cost]


class Guard:
    """A limiter with a cost: a decorator (sync or async) and a context manager."""

    __slots__ = ("cost", "limiter")

    def __init__(self, limiter: Limiter, cost: CostSpec) -> None:
        self.limiter = limiter
        self.cost = cost
        if not callable(cost):
            limiter._increments(cost)  # a cost that can never pass fails here, at decoration

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        limiter, cost = self.limiter, self.cost
        wrapper: Callable[..., Any]
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def guarded_async(*args: Any, **kwargs: Any) -> Any:
                steps = limiter._guarded(limiter._cost_of(cost, args, kwargs))
                return await limiter._run_async(steps, lambda: fn(*args, **kwargs))

            wrapper = guarded_async
        else:
            @functools.wraps(fn)
            def guarded(*args: Any, **kwargs: Any) -> Any:
                steps = limiter._guarded(limiter._cost_of(cost, args, kwargs))
                return limiter._run(steps, lambda: fn(*args, **kwargs))

            wrapper = guarded
        wrapper.__hokuro_guard__ = Guarded(self, fn, wrapper)  # type: ignore[attr-defined]
        return wrapper

    def _fixed_cost(self) -> Cost:
        if callable(self.cost):
            raise ConfigurationError(
                "a cost function needs the call's arguments: use the limiter as a decorator, "
                "or give the context manager a number")
        return self.cost

    def __enter__(self) -> Limiter:
        self.limiter.acquire(self._fixed_cost())
        return self.limiter

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.limiter._after(exc)

    async def __aenter__(self) -> Limiter:
        await self.limiter.acquire_async(self._fixed_cost())
        return self.limiter

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.limiter._after(exc)


class Guarded(NamedTuple):
    """What a guard leaves on the function it returns, as ``__hokuro_guard__``.

    A mark over a guarded function takes the limiter's place itself, before it claims the
    task, then calls ``fn`` past the guard: so waiting for the limiter is never shown as
    running, and the limit is spent once. ``wrapper`` is what the guard returned; another
    decorator between the mark and the guard copies the attribute (``functools.wraps``)
    but is not ``wrapper``, so the mark leaves it alone and calls through it.
    """

    guard: Guard
    fn: Callable[..., Any]
    wrapper: Callable[..., Any]

    def take(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[float, ...]:
        """Wait for this call's place; return its cost (the increments :meth:`call` needs)."""
        limiter = self.guard.limiter
        increments = limiter._cost_of(self.guard.cost, args, kwargs)
        if any(increments):
            limiter._run(limiter._take(increments))
        return increments

    async def take_async(self, args: tuple[Any, ...], kwargs: dict[str, Any]
                         ) -> tuple[float, ...]:
        limiter = self.guard.limiter
        increments = limiter._cost_of(self.guard.cost, args, kwargs)
        if any(increments):
            await limiter._run_async(limiter._take(increments))
        return increments

    def call(self, increments: tuple[float, ...], args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> Any:
        """Call ``fn`` on the place :meth:`take` took (a coroutine for an async ``fn``); a
        :class:`~hokuro.errors.RetryAfter` holds and retries as the guard would."""
        limiter, fn = self.guard.limiter, self.fn
        steps = limiter._guarded(increments, taken=True)
        if inspect.iscoroutinefunction(fn):
            return limiter._run_async(steps, lambda: fn(*args, **kwargs))
        return limiter._run(steps, lambda: fn(*args, **kwargs))
