"""The run's concurrency: ``n`` slots shared by jobs that await one and jobs started by a
callback, first come first served.

A job whose claim answered everything (its arguments read, its task claimed) starts without
a coroutine of its own: :meth:`Slots.take` starts it now if a slot is free, or when one is
given back. A job on the general path awaits :meth:`Slots.acquire`. Both wait in the same
line, so neither kind overtakes the other, and the run never executes more than ``n`` steps.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class Slots:
    """``n`` slots; used from the event loop only."""

    def __init__(self, loop: asyncio.AbstractEventLoop, n: int) -> None:
        self._loop = loop
        self._free = n
        self._line: deque[asyncio.Future[None] | Callable[[], bool]] = deque()

    @property
    def free(self) -> int:
        return self._free

    def take(self, start: Callable[[], bool]) -> None:
        """Call ``start()`` holding a slot: now if one is free, else once one is given back.
        ``start`` returns True when it keeps the slot (its job runs; it gives the slot back
        with :meth:`release` when the job ends) and False when it did not need it after all;
        it never calls :meth:`release` itself, so a line of jobs that end at once (a stopped
        run hands them back) is walked here, not by recursion."""
        if self._free > 0 and not self._line:
            self._free -= 1
            if not start():
                self._free += 1
        else:
            self._line.append(start)

    async def acquire(self) -> None:
        """Wait for a slot (give it back with :meth:`release`)."""
        if self._free > 0 and not self._line:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._line.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as it was cancelled: pass it on
            raise

    def release(self) -> None:
        """Give a slot back: to the first in line, or to the free ones."""
        while self._line:
            first = self._line.popleft()
            if isinstance(first, asyncio.Future):
                if first.done():  # a waiter cancelled while in line
                    continue
                first.set_result(None)
                return
            if first():
                return
        self._free += 1
