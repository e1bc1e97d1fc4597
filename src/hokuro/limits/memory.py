"""In-process limit store: a dict under a lock, shared by the threads and asyncio tasks of one
process. Every decision is a few float operations under the lock, so asyncio code may call
it directly without blocking the loop for longer than that."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from . import gcra
from .base import LimitStore, Verdict


class MemoryStore(LimitStore):
    """Limit state in this process; ``clock`` (epoch seconds) is replaceable for tests."""

    kind = "memory"
    _shared: MemoryStore | None = None

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[str, gcra.KeyState] = {}

    @classmethod
    def shared(cls) -> MemoryStore:
        """The process-wide store, so limiters of the same name share it across Spots."""
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def decide(self, keys: Sequence[str], increments: Sequence[float],
               tolerances: Sequence[float], reserve: bool) -> Verdict:
        states = self._states
        fresh = gcra.KeyState()
        with self._lock:
            now = self._clock()
            current = [states.get(key, fresh) for key in keys]
            granted, wait, tats = gcra.decide_all(
                [state.tat for state in current], now, increments, tolerances, reserve)
            if granted:
                for key, state, tat in zip(keys, current, tats, strict=True):
                    states[key] = gcra.KeyState(tat, state.held, state.held_until)
        return Verdict(granted, wait, now, tats, tuple(state.held for state in current))

    def held(self, keys: Sequence[str]) -> tuple[float, ...]:
        with self._lock:
            return tuple(self._states.get(key, gcra.KeyState()).held for key in keys)

    def hold(self, keys: Sequence[str], tolerances: Sequence[float], seconds: float) -> None:
        with self._lock:
            now = self._clock()
            for key, tolerance in zip(keys, tolerances, strict=True):
                state = self._states.get(key, gcra.KeyState())
                self._states[key] = gcra.hold(state, now, seconds, tolerance)

    def refund(self, keys: Sequence[str], increments: Sequence[float],
               receipts: Sequence[float]) -> bool:
        every = True
        with self._lock:
            for key, increment, receipt in zip(keys, increments, receipts, strict=True):
                given = gcra.refund(self._states.get(key, gcra.KeyState()), increment, receipt)
                if given is None:
                    every = False
                else:
                    self._states[key] = given
        return every

    def now(self) -> float:
        return self._clock()
