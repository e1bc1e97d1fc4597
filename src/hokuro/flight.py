"""In-process single flight: identical concurrent calls in one process share one execution.

Threads and asyncio tasks (on any loop) may wait on the same flight; the leader's result or
exception is handed to every waiter. Across processes the ledger's lease does the same job.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any


class Flight:
    """One execution in progress, awaited by zero or more followers."""

    __slots__ = ("_event", "_exc", "_lock", "_loops", "_value")

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._loops: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._value: Any = None
        self._exc: BaseException | None = None

    def _settle(self) -> None:
        with self._lock:
            self._event.set()
            waiters, self._loops = self._loops, []
        for loop, future in waiters:
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
        self._event.wait()

    async def wait_async(self) -> None:
        if self._event.is_set():
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._event.is_set():
                return
            self._loops.append((loop, future))
        await future

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
