"""In-process limit store: a dict under a lock, shared by the threads and asyncio tasks of one
process. Every decision is a few float operations under the lock, so asyncio code may call
it directly without blocking the loop for longer than that."""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence

from . import gcra
from .base import LimitStore, Verdict
from .gcra import EPSILON

_new_tuple = tuple.__new__  # builds a named tuple without its Python-level __new__


class MemoryStore(LimitStore):
    """Limit state in this process; ``clock`` (epoch seconds) is replaceable for tests."""

    kind = "memory"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        # key -> [tat, held, held_until, queued], a KeyState kept as a list so a decision
        # updates it in place instead of allocating a new one
        self._states: dict[str, list[float]] = {}
        _STORES.add(self)

    @staticmethod
    def shared() -> MemoryStore:
        """The process-wide store, so limiters of the same name share it across Spots."""
        return _SHARED

    def _state(self, key: str) -> list[float]:
        state = self._states.get(key)
        if state is None:  # setdefault is atomic: two threads get the same list
            state = self._states.setdefault(key, [0.0, 0.0, 0.0, 0.0])
        return state

    def decide(self, keys: Sequence[str], increments: Sequence[float],
               tolerances: Sequence[float], horizon: float,
               ticket: Sequence[float] | None = None) -> Verdict:
        if len(keys) != 1 or ticket is not None:
            return self._decide_many(keys, increments, tolerances, horizon, ticket)
        # gcra.decide_all for one key, spelled out: this is the whole cost of in-process
        # limiting, and the generic path (lists, zip, named tuples) doubles it. The
        # conformance suite holds both to the same answers.
        state = self._states.get(keys[0]) or self._state(keys[0])
        lock = self._lock
        lock.acquire()
        try:
            now = self._clock()
            tat = state[0]
            if tat < now:
                tat = now
            if horizon > 0 and state[3] > tat + EPSILON \
                    and state[3] - tolerances[0] > now + EPSILON:  # others wait: join them
                return self._settle((state,), now, gcra.decide_all(
                    (state[0],), now, increments, tolerances, horizon, (state[3],)))
            tat += increments[0]
            wait = tat - tolerances[0] - now
            if wait <= EPSILON:
                wait, granted = 0.0, True
                state[0] = tat
            elif wait <= horizon:
                granted = True
                state[0] = tat
            elif horizon <= 0:
                granted = False  # a caller that will not wait takes no place in the line
            else:
                return self._settle((state,), now, gcra.decide_all(
                    (state[0],), now, increments, tolerances, horizon, (state[3],)))
            held = state[1]
        finally:
            lock.release()
        return _new_tuple(Verdict, (granted, wait, now, (tat,), (held,)))

    def _decide_many(self, keys: Sequence[str], increments: Sequence[float],
                     tolerances: Sequence[float], horizon: float,
                     ticket: Sequence[float] | None) -> Verdict:
        states = [self._state(key) for key in keys]
        with self._lock:
            now = self._clock()
            return self._settle(states, now, gcra.decide_all(
                [state[0] for state in states], now, increments, tolerances, horizon,
                [state[3] for state in states], ticket))

    @staticmethod
    def _settle(states: Sequence[list[float]], now: float, decision: gcra.Decision) -> Verdict:
        """Store what ``decision`` changed; the caller holds the lock."""
        if decision.granted:
            for state, tat in zip(states, decision.tats, strict=True):
                state[0] = tat
        elif decision.queued is not None:
            for state, end in zip(states, decision.queued, strict=True):
                state[3] = end
        return Verdict(decision.granted, decision.wait, now, decision.tats,
                       tuple(state[1] for state in states))

    def held(self, keys: Sequence[str]) -> tuple[float, ...]:
        with self._lock:
            return tuple(self._state(key)[1] for key in keys)

    def hold(self, keys: Sequence[str], tolerances: Sequence[float], seconds: float) -> None:
        states = [self._state(key) for key in keys]
        with self._lock:
            now = self._clock()
            for state, tolerance in zip(states, tolerances, strict=True):
                state[:] = gcra.hold(gcra.KeyState(*state), now, seconds, tolerance)

    def refund(self, keys: Sequence[str], increments: Sequence[float],
               receipts: Sequence[float]) -> bool:
        states = [self._state(key) for key in keys]
        every = True
        with self._lock:
            for state, increment, receipt in zip(states, increments, receipts, strict=True):
                given = gcra.refund(gcra.KeyState(*state), increment, receipt)
                if given is None:
                    every = False
                else:
                    state[:] = given
        return every

    def now(self) -> float:
        return self._clock()


_STORES: weakref.WeakSet[MemoryStore] = weakref.WeakSet()
_SHARED = MemoryStore()


def _renew_locks() -> None:
    # A lock another thread held at fork time stays held forever in the child; the child
    # has no such thread, so a fresh lock is right.
    for store in list(_STORES):
        store._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_locks)
