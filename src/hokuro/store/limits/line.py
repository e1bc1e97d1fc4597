"""This process's waiting line for one limiter: the callers that must wait queue here, and
only the first of them asks the store.

A caller books its place only once it is a short horizon ahead (see
:func:`~hokuro.limits.gcra.booking_horizon`), so a waiting caller has to ask again later.
Were every waiter to ask, each grant would cost one store call per waiter; in line, the first
asks, books, and hands its turn to the next together with its booking, from which the next
works out when to ask. The line lives in this process's memory: it dies with the process,
and a waiter that leaves (cancellation, interrupt) gives its place to those behind it.
Threads and asyncio tasks, of any event loop, share one line.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections import deque
from typing import Any


class Turn:
    """One waiter's place in a :class:`Line`."""

    __slots__ = ("_event", "_future", "_loop", "first", "hint")

    def __init__(self) -> None:
        self.first = False
        self.hint: Any = None  # what the waiter before it left behind (its booking)
        self._event: threading.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._future: asyncio.Future[None] | None = None


class Line:
    """Waiters in order of arrival; the first may ask the store, the others sleep."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Its truth says whether anyone waits: callers read it without the lock (a late
        # answer only costs a turn), which is cheaper than any method call.
        self.turns: deque[Turn] = deque()
        _LINES.add(self)

    def __len__(self) -> int:
        return len(self.turns)

    def join(self) -> Turn:
        turn = Turn()
        with self._lock:
            self.turns.append(turn)
            turn.first = len(self.turns) == 1
        return turn

    def wait(self, turn: Turn) -> None:
        """Block until ``turn`` is first."""
        with self._lock:
            if turn.first:
                return
            turn._event = threading.Event()
        turn._event.wait()

    async def wait_async(self, turn: Turn) -> None:
        """Wait, without blocking the event loop, until ``turn`` is first."""
        with self._lock:
            if turn.first:
                return
            loop = asyncio.get_running_loop()
            turn._loop, turn._future = loop, loop.create_future()
        await turn._future

    def leave(self, turn: Turn, hint: Any = None) -> None:
        """Take ``turn`` out of the line; when it was first, the next becomes first and
        receives ``hint``."""
        with self._lock:
            turns = self.turns
            if not turns or turns[0] is not turn:
                try:
                    turns.remove(turn)  # left from the middle: those behind move up
                except ValueError:
                    pass  # the line was emptied by a fork
                return
            turns.popleft()
            while turns and not _wake(turns[0], hint):
                turns.popleft()


def _wake(turn: Turn, hint: Any) -> bool:
    """Make ``turn`` first and wake it; False when its waiter can never run again."""
    turn.first, turn.hint = True, hint
    if turn._event is not None:
        turn._event.set()
    elif turn._future is not None:
        assert turn._loop is not None
        try:
            turn._loop.call_soon_threadsafe(_resolve, turn._future)
        except RuntimeError:  # its event loop is closed, and its waiter with it
            return False
    return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_LINES: weakref.WeakSet[Line] = weakref.WeakSet()


def _forget_lines() -> None:
    # A forked child has none of its parent's waiting threads or tasks; an inherited waiter
    # first in line would keep everyone behind it waiting forever, and the lock may have
    # been held at the fork.
    for line in list(_LINES):
        line._lock = threading.Lock()
        line.turns.clear()  # in place: limiters hold it


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_lines)
