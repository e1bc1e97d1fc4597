"""The limit store protocol: where limit keys keep their GCRA state, and whose clock decides.

A store holds, per key, a :class:`~hokuro.store.limits.gcra.KeyState` and makes each operation
below one atomic step on its own clock (a transaction, a server script, a locked dict), so
every thread, process or machine that shares the store shares the limit exactly. Keys come
sorted; a store that locks rows locks them in that order.

Waiting happens in the caller, never in the store: ``decide`` with a ``horizon`` books a place
at most that far ahead and says how long to sleep, or refuses, places the caller in the
waiting line and says when to ask again; a caller that is cancelled while asleep on a booked
place calls ``refund``. A store may keep no waiting line (``queued`` always 0): then waiters
of several processes all ask at every turn, which costs round trips, never exactness.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import NamedTuple

from ..named_blocks import load_blocks


class Verdict(NamedTuple):
    """A store's answer to :meth:`LimitStore.decide`."""

    granted: bool  # the cost is taken (for now, or booked for ``wait`` seconds from now)
    wait: float  # seconds to sleep before using the grant; when refused, until its place comes
    now: float  # the store's clock at the decision, epoch seconds
    tats: tuple[float, ...]  # granted: each key's new TAT (the receipt :meth:`refund` wants);
    # refused: the caller's ticket (its place in the waiting line), or the TATs it would have
    held: tuple[float, ...]  # each key's ``held`` total at the decision (see :meth:`held`)


class LimitStore(ABC):
    """Protocol of a limit store. Methods are called from many threads at once."""

    kind: str = "custom"

    @abstractmethod
    def decide(self, keys: Sequence[str], increments: Sequence[float],
               tolerances: Sequence[float], horizon: float,
               ticket: Sequence[float] | None = None) -> Verdict:
        """Decide a cost against every key at once (see :func:`gcra.decide_all`): granted
        when its place comes within ``horizon`` seconds (0: only now; ``inf``: whenever).
        When granted, store each key's new TAT in the same atomic step; when a caller that
        waits is refused, give it a place in the waiting line (its ``ticket``, returned as
        the verdict's ``tats``, which it shows when it asks again)."""

    @abstractmethod
    def held(self, keys: Sequence[str]) -> tuple[float, ...]:
        """Each key's ``held`` total. A waiter compares it with its verdict's on waking: a
        growth means a hold moved the line back, and the waiter sleeps that much longer."""

    @abstractmethod
    def hold(self, keys: Sequence[str], tolerances: Sequence[float], seconds: float) -> None:
        """Grant nothing on these keys for ``seconds`` from now (see :func:`gcra.hold`)."""

    @abstractmethod
    def refund(self, keys: Sequence[str], increments: Sequence[float],
               receipts: Sequence[float]) -> bool:
        """Give back an unused reservation where that is safe (see :func:`gcra.refund`);
        True when every key took it back."""

    @abstractmethod
    def now(self) -> float:
        """The store's clock, epoch seconds."""

    def close(self) -> None:  # noqa: B027 - most stores have something to release, not all
        """Release connections and handles."""

    def describe(self) -> str:
        """Where the store lives, with any secret masked."""
        return self.kind


def load_scripts(filename: str) -> dict[str, str]:
    """Named blocks of ``scripts/<filename>`` (SQL and Lua alike)."""
    return load_blocks(__package__, f"scripts/{filename}")
