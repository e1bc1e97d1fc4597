"""The two drivers of the call path: what the one flow (a generator) asks of sync and async
callers — run the function, sleep, wait for a flight or for the limiter — and how each
answers. Kept apart from :mod:`marking`, which holds the flow itself."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from .io_thread import IoThread, run_off_loop

if TYPE_CHECKING:
    from .context import Context


# What stops a call rather than fails it: KeyboardInterrupt, SystemExit, GeneratorExit and
# asyncio.CancelledError are exactly the BaseExceptions that are not Exceptions (named by that
# property so that importing hokuro does not import asyncio).
def _is_cancelling(exc: BaseException | None) -> bool:
    return exc is not None and not isinstance(exc, Exception)


# -- what the call path asks of its driver --------------------------------------------------
class _Invoke:
    __slots__ = ("ctx",)

    def __init__(self, ctx: Context | None) -> None:
        self.ctx = ctx


class _Sleep:
    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class _Await:
    __slots__ = ("flight",)

    def __init__(self, flight: Any) -> None:
        self.flight = flight


class _Take:
    """Wait for the limiter under the mark (see :class:`_LimitedCall`)."""

    __slots__ = ()


_TAKE = _Take()


class _Io:
    """Ledger or blob I/O the flow needs answered: ``fn(arg)``. ``kind`` names the batched
    ledger requests (a lookup, a claim, a finish) that async callers hand to the Spot's I/O
    thread; sync callers simply call ``fn``."""

    __slots__ = ("arg", "fn", "kind")

    def __init__(self, fn: Callable[[Any], Any], arg: Any = None, kind: str | None = None
                 ) -> None:
        self.fn, self.arg, self.kind = fn, arg, kind


_Flow = Generator[Any, Any, Any]


def _drive_sync(flow: _Flow, call: Callable[[Context | None], Any]) -> Any:
    try:
        request = next(flow)
        while True:
            if type(request) is _Invoke:
                try:
                    value = call(request.ctx)
                except BaseException as exc:
                    request = flow.send((False, exc))
                else:
                    request = flow.send((True, value))
                continue
            if type(request) is _Io:
                try:
                    value = request.fn(request.arg)
                except BaseException as exc:
                    request = flow.throw(exc)
                else:
                    request = flow.send(value)
                continue
            try:
                if type(request) is _Sleep:
                    time.sleep(request.seconds)
                elif request is _TAKE:
                    call.take()  # type: ignore[attr-defined]
                else:
                    request.flight.wait()
            except BaseException as exc:
                request = flow.throw(exc)
            else:
                request = next(flow)
    except StopIteration as stop:
        return stop.value


async def _drive_async(flow: _Flow, call: Callable[[Context | None], Any],
                       timeout: float | None = None, name: str = "",
                       io: IoThread | None = None) -> Any:
    """Drive the flow on the event loop: its CPU work (keys, encoding) runs here, its I/O
    requests go to the Spot's I/O thread (batched) or the shared pool (invariant 8).

    A request in flight cannot be stopped (a claim or a record may be committing): when the
    caller is cancelled meanwhile, its answer is still given to the flow, and the
    cancellation is thrown in at the flow's next request, so the flow lets go of its flight
    and lease and records what it must, exactly as when the cancellation arrives while the
    function runs.
    """
    import asyncio  # here, not at the top: `import hokuro` need not pay for asyncio

    pending: BaseException | None = None  # a cancellation that arrived during a request
    try:
        request = next(flow)
        while True:
            if pending is not None:
                cancel, pending = pending, None
                request = flow.throw(cancel)
                continue
            kind = type(request)
            if kind is _Io:
                ok, value, pending = await _answer(request, io)
                request = flow.send(value) if ok else flow.throw(value)
                continue
            if kind is _Invoke:
                try:
                    if timeout is None:
                        value = await call(request.ctx)
                    else:
                        value = await _within(call(request.ctx), timeout, name)
                except BaseException as exc:
                    request = flow.send((False, exc))
                else:
                    request = flow.send((True, value))
                continue
            try:
                if kind is _Sleep:
                    await asyncio.sleep(request.seconds)
                elif request is _TAKE:
                    await call.take_async()  # type: ignore[attr-defined]
                else:
                    await request.flight.wait_async()
            except BaseException as exc:
                request = flow.throw(exc)
            else:
                request = next(flow)
    except StopIteration as stop:
        if pending is not None:
            raise pending from None  # the call ended while its last write committed
        return stop.value


async def _answer(request: _Io, io: IoThread | None) -> tuple[bool, Any, BaseException | None]:
    """(ok, value or exception, a cancellation that arrived meanwhile) of an I/O request,
    waited out whatever cancellations arrive."""
    import asyncio

    if request.kind is not None and io is not None:
        future = io.submit(request.kind, request.fn, request.arg)
    else:
        future = run_off_loop(request.fn, request.arg)
    cancel: BaseException | None = None
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError as exc:
            if not future.done():
                cancel = exc
        except BaseException:
            pass  # read from the future below
    error = future.exception()
    if error is not None:
        return False, error, cancel
    return True, future.result(), cancel


async def _within(call: Any, timeout: float, name: str) -> Any:
    """Await ``call``, cancelling it after ``timeout`` seconds (then: TimeoutError). Only
    async calls have a timeout here: a thread cannot be stopped from outside, and abandoning
    it would leave it running beside the next attempt; the run engine fences a sync step's
    late result off instead."""
    import asyncio

    limit = asyncio.timeout(timeout)
    try:
        async with limit:
            return await call
    except TimeoutError:
        if not limit.expired():
            raise  # the function's own TimeoutError, not its time limit
        raise TimeoutError(f"{name} did not finish within its timeout of {timeout:g} s"
                           ) from None


class _LimitedCall:
    """The call of a function guarded by a hokuro limiter right under the mark
    (``@spot.mark`` over ``@lim``).

    The call path takes the limiter's place (:meth:`take`) after the kept-result check and
    the flight, and before it claims the task; then the function runs past its guard on that
    place. So a call waiting for the limiter is not ``running``, its timings start when the
    function does, a crash while it waits leaves no record, and kept results never reach the
    limiter. The price: a call that finds, once its turn came, that another process holds or
    has finished the same task has spent a place for nothing.
    """

    __slots__ = ("args", "ctx_name", "guarded", "increments", "kwargs")

    def __init__(self, guarded: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                 ctx_name: str | None) -> None:
        self.guarded, self.args, self.kwargs, self.ctx_name = guarded, args, kwargs, ctx_name
        self.increments: tuple[float, ...] = ()

    def _with_ctx(self, ctx: Context | None) -> dict[str, Any]:
        if self.ctx_name is not None and self.ctx_name not in self.kwargs:
            return {**self.kwargs, self.ctx_name: ctx}
        return self.kwargs

    # A cost function sees the call's arguments as the guard would show them; the task's
    # context does not exist before the claim, so it sees ``ctx=None``.
    def take(self) -> None:
        self.increments = self.guarded.take(self.args, self._with_ctx(None))

    async def take_async(self) -> None:
        self.increments = await self.guarded.take_async(self.args, self._with_ctx(None))

    def __call__(self, ctx: Context | None) -> Any:
        return self.guarded.call(self.increments, self.args, self._with_ctx(ctx))
