"""Many awaiting callers, one call off the event loop: the executor's I/O in batches.

Jobs of a run ask the ledger small questions (claim this task, read these results) from
many coroutines at once. :class:`Batched` gathers the questions asked during one turn of the
event loop and answers them with one call of a ``many`` function on an I/O thread, so the
loop never blocks on the ledger (invariant 8) and a thousand jobs cost a few transactions.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

log = logging.getLogger("hokuro")

#: Most questions answered by one call.
MAX_BATCH = 1000


class Batched:
    """``await batched(item)`` → the answer for ``item``, from ``many(items)`` (a list of
    answers in the same order, computed on ``pool``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pool: Executor,
                 many: Callable[[list[Any]], Sequence[Any]]) -> None:
        self._loop = loop
        self._pool = pool
        self._many = many
        self._items: list[Any] = []
        self._futures: list[asyncio.Future[Any]] = []
        self._scheduled = False

    def __call__(self, item: Any) -> asyncio.Future[Any]:
        future = self._loop.create_future()
        self._items.append(item)
        self._futures.append(future)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._scheduled = False
        while self._items:
            items, self._items = self._items[:MAX_BATCH], self._items[MAX_BATCH:]
            futures, self._futures = self._futures[:MAX_BATCH], self._futures[MAX_BATCH:]
            task = self._loop.run_in_executor(self._pool, self._many, items)
            task.add_done_callback(lambda done, futures=futures: _settle(done, futures))


def _settle(done: asyncio.Future[Sequence[Any]], futures: list[asyncio.Future[Any]]) -> None:
    if done.cancelled():
        for future in futures:
            future.cancel()
        return
    exc = done.exception()
    if exc is not None:
        for future in futures:
            if not future.done():
                future.set_exception(exc)
        return
    for future, answer in zip(futures, done.result(), strict=True):
        if not future.done():
            future.set_result(answer)


class Inbox:
    """Calls handed to the event loop from other threads, many per wake-up: the first call
    posted since the last drain wakes the loop (one ``call_soon_threadsafe``), the others
    join it. Ends of steps and commits arrive in bursts; a wake-up each would cost the loop
    a self-pipe write and a turn per job."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._lock = threading.Lock()

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            self._calls.append((fn, args))
            if len(self._calls) > 1:
                return  # a drain is already on its way
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    def _drain(self) -> None:
        with self._lock:
            calls, self._calls = self._calls, []
        for fn, args in calls:
            try:
                fn(*args)
            except Exception:  # one failed call must not drop the others
                log.exception("hokuro: a call handed to the event loop failed")
