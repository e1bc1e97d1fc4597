"""In-process single flight: identical concurrent calls in one process share one execution.

Threads and asyncio tasks (on any loop) may wait on the same flight; the leader's result or
exception is handed to every waiter. Across processes the ledger's lease does the same job.

A forked child starts with no flights: the parent's leaders are threads the child does not
have, so a copied flight would never end and the child's call would wait for it forever.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # asyncio is imported when an async caller first waits (import cost)
    import asyncio


class Flight:
    """One execution in progress, awaited by zero or more followers.

    Most flights never get a follower, so nothing is made for waiting until one arrives:
    a sync follower brings its own Event, an async one its own future.
    """

    __slots__ = ("_done", "_exc", "_lock", "_value", "_waiters")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = False
        self._waiters: list[threading.Event | tuple[asyncio.AbstractEventLoop,
                                                    asyncio.Future[None]]] = []
        self._value: Any = None
        self._exc: BaseException | None = None

    def _settle(self) -> None:
        with self._lock:
            self._done = True
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if isinstance(waiter, threading.Event):
                waiter.set()
                continue
            loop, future = waiter
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:  # that loop is closed; its waiter is gone
                pass

    def succeed(self, value: Any) -> None:
        self._value = value
        self._settle()

    def fail(self, exc: BaseException) -> None:
        self._exc = exc
        self._settle()

    def wait(self) -> None:
        with self._lock:
            if self._done:
                return
            event = threading.Event()
            self._waiters.append(event)
        event.wait()

    async def wait_async(self) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        with self._lock:
            if self._done:
                return
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, future))
        await future

    @property
    def error(self) -> BaseException | None:
        """The exception the leader ended with, if any."""
        return self._exc

    def outcome(self) -> Any:
        if self._exc is not None:
            raise self._exc
        return self._value


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class FlightTable:
    """The flights in progress in this process, by task key."""

    def __init__(self) -> None:
        self._flights: dict[str, Flight] = {}
        self._lock = threading.Lock()
        _TABLES.add(self)

    def join(self, key: str) -> tuple[Flight, bool]:
        """The flight of ``key`` and whether the caller leads it (must execute)."""
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            flight = self._flights[key] = Flight()
            return flight, True

    def leave(self, key: str, flight: Flight) -> None:
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]


_TABLES: weakref.WeakSet[FlightTable] = weakref.WeakSet()


def _forget_flights_in_child() -> None:
    for table in list(_TABLES):
        # The lock too: another thread may have held it at the instant of fork.
        table._flights, table._lock = {}, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_flights_in_child)
