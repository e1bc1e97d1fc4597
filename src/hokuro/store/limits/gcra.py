"""GCRA arithmetic: limits written as text, and the decisions on a key's TAT. Pure: no I/O,
no clock reads; every store feeds it the state it holds and the time on its own clock.

Each limit key keeps one *theoretical arrival time* (TAT): the instant at which everything
granted so far would have been spent at exactly the configured rate. With emission interval
``T = period / count`` a cost ``n`` moves the TAT by ``n * T``; it may go once
``new_tat - burst * T <= now``. So a rested key grants ``burst`` at once, then one unit every
``T``; in any closed window of one period at most ``count + burst`` units are granted.

The default burst is the limit's count: "60/min" may spend a full minute's worth at once after
a quiet minute, which is what people mean by "60 a minute" (the far side counts per window),
while a smaller ``burst=`` smooths the flow.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from ...errors import ConfigurationError
from ...model.durations import parse_duration

# Float TATs are epoch seconds (~1.7e9), where one ulp is ~2.4e-7 s and sums of increments
# such as 0.1 drift by a few ulps; a grant that is "due" within a microsecond is due now, so
# exact boundaries stay exact. A microsecond is far below any rate people configure.
EPSILON = 1e-6

# The least booking horizon, seconds (see booking_horizon): about what a woken thread or
# task may be late, plus a store round trip.
MIN_HORIZON = 0.01

# Labels of limits that count calls rather than a quantity the caller passes as cost.
CALL_LABELS = frozenset({"", "call", "calls", "request", "requests"})

_PERIOD_NAMES = {1.0: "s", 60.0: "min", 3600.0: "h", 86400.0: "day", 604800.0: "week"}

_RATE = re.compile(
    r"^\s*(?P<count>\d+(?:\.\d+)?)\s*(?:/|\bper\b)\s*"
    r"(?P<period>(?:\d+(?:\.\d+)?\s*)?[a-z]+)"
    r"(?:\s+(?P<label>[a-z_][a-z0-9_-]*))?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` units per ``period`` seconds; ``label`` names the unit ("tokens")."""

    count: float
    period: float
    label: str = ""

    @property
    def emission_interval(self) -> float:
        """Seconds one unit occupies at the steady rate."""
        return self.period / self.count

    @property
    def counts_calls(self) -> bool:
        """True when the limit counts calls (no label, or "requests"/"calls")."""
        return self.label in CALL_LABELS

    @property
    def text(self) -> str:
        """Canonical text, the same for every spelling ("60/min" for "60 per 60s")."""
        period = _PERIOD_NAMES.get(self.period, f"{self.period:g}s")
        return f"{self.count:g}/{period}" + (f" {self.label}" if self.label else "")

    def __str__(self) -> str:
        return self.text


def parse_rate(text: str | Rate) -> Rate:
    """Read "60/min", "10/s", "90000/min tokens", "1000/day", "5/2s" or "500 per minute"."""
    if isinstance(text, Rate):
        return text
    if not isinstance(text, str):
        raise ConfigurationError(
            f"a limit is text such as '60/min' or '90000/min tokens', not {type(text).__name__}"
        )
    match = _RATE.match(text)
    if match is None:
        raise ConfigurationError(
            f"limit {text!r} is not understood; write a count, '/', a period and an optional "
            "unit label, such as '60/min', '10/s', '5/2s' or '90000/min tokens'"
        )
    period_text = match.group("period").lower().replace(" ", "")
    if not period_text[0].isdigit():
        period_text = "1" + period_text
    period = parse_duration(period_text, what=f"period of limit {text!r}")
    count = float(match.group("count"))
    if not count or not period:
        raise ConfigurationError(f"limit {text!r} must have a positive count and period")
    return Rate(count, period, (match.group("label") or "").lower())


class Decision(NamedTuple):
    """A decision on several keys at once: all are granted together or none is."""

    granted: bool
    # granted: seconds until the place may be used (0: now); refused: until the place would
    # come, or for a caller in the waiting line, until its place there comes
    wait: float
    # granted: each key's new TAT (the receipt a refund shows); refused: the caller's ticket
    # (its place in the waiting line), or the TATs it would have had
    tats: tuple[float, ...]
    queued: tuple[float, ...] | None = None  # each key's new waiting-line end, when it grew


def decide_all(tats: Sequence[float], now: float, increments: Sequence[float],
               tolerances: Sequence[float], horizon: float,
               queued: Sequence[float] | None = None,
               ticket: Sequence[float] | None = None) -> Decision:
    """Decide one cost against every limit of a limiter.

    ``tats`` are the stored TATs (0 for a key never seen), ``increments`` the cost of each
    limit in seconds (``cost * T``), ``tolerances`` each limit's ``burst * T``. The cost is
    granted when its place comes within ``horizon`` seconds: at once (``wait`` 0), or booked
    for ``wait`` seconds from now, when the caller holds that place and sleeps until it.
    ``horizon`` 0 grants only now; a limiter books a short horizon ahead (see
    :func:`booking_horizon`), so a process that dies while waiting holds no more than that.

    The *waiting line* (``queued``: each key's end of it, a TAT) orders callers that wait
    (``horizon`` > 0) across processes. A refused caller joins it: its ``ticket`` is the
    place after the line's end, and ``wait`` says when that place comes (it asks again one
    horizon before). A caller without a ticket is refused while the line holds places
    beyond the TAT, so waiters go in the order they were refused, and each asks about once
    per turn instead of all asking at every turn. A ticket holder is granted by the TAT
    alone and keeps its ticket when refused. The line grants nothing by itself: places of
    callers who never come back (killed, cancelled) are passed by those after them, and
    places whose time has passed do not count. Without ``queued`` there is no line. A
    refusal's ``wait`` is always positive when ``horizon`` is.
    """
    new_tats = []
    wait = 0.0
    behind = False  # others wait in the line for places beyond the TAT
    for i, (tat, increment, tolerance) in enumerate(
            zip(tats, increments, tolerances, strict=True)):
        base = tat if tat > now else now
        # places beyond the TAT whose time has not passed (a caller late for its place
        # forfeits it to whoever asks first)
        if queued is not None and queued[i] > base + EPSILON \
                and queued[i] - tolerance > now + EPSILON:
            behind = True
        tat = base + increment
        new_tats.append(tat)
        if tat - tolerance - now > wait:
            wait = tat - tolerance - now
    lining = horizon > 0 and queued is not None
    if not (lining and behind and ticket is None):
        if wait <= EPSILON:
            return Decision(True, 0.0, tuple(new_tats))
        if wait <= horizon:
            return Decision(True, wait, tuple(new_tats))
    if not lining:
        return Decision(False, wait, tuple(new_tats))
    assert queued is not None
    if ticket is not None:
        places = tuple(ticket)
        grown = None
    else:
        places = tuple(max(end, tat, now) + increment for end, tat, increment
                       in zip(queued, tats, increments, strict=True))
        grown = places
    due = max(wait, *(place - tolerance - now
                      for place, tolerance in zip(places, tolerances, strict=True)))
    return Decision(False, due, places, grown)


def booking_horizon(emission_intervals: Sequence[float]) -> float:
    """How far ahead a waiting caller may book its place: one emission interval of the
    slowest limit, and never less than :data:`MIN_HORIZON`.

    A place further ahead is not booked: the caller sleeps until it is this close, then asks
    again. So the bookings of a process killed while waiting end within one horizon of its
    death; and where the horizon is one interval, at most one booked place is pending per
    limit at any time, so a waiter that gives up is the last in line and can give its place
    back. :data:`MIN_HORIZON` lets fast limits book a few places ahead, so that a waiter
    woken a little late (the scheduler, a round trip) still finds its place waiting.
    """
    return max(MIN_HORIZON, *emission_intervals)


def decide(tat: float | None, now: float, cost: float, emission_interval: float,
           burst_tolerance: float) -> tuple[bool, float, float]:
    """One key, granted only now: ``(allowed, new_tat, retry_after)``.

    A refused decision leaves the TAT as it was; ``retry_after`` says when it would pass.
    """
    stored = 0.0 if tat is None else tat
    verdict = decide_all((stored,), now, (cost * emission_interval,), (burst_tolerance,), 0.0)
    return verdict.granted, verdict.tats[0] if verdict.granted else stored, verdict.wait


class KeyState(NamedTuple):
    """What a store keeps per key; all zeros is a key never seen (rested)."""

    tat: float = 0.0
    held: float = 0.0  # seconds that holds have pushed this key's waiting line back, in total
    held_until: float = 0.0  # end of the latest hold
    queued: float = 0.0  # end of the waiting line (see decide_all), a TAT; 0: nobody


def hold(state: KeyState, now: float, seconds: float, tolerance: float) -> KeyState:
    """Grant nothing on this key before ``now + seconds`` (the far side said "too many").

    Callers already waiting hold places that lie after ``now`` and after the previous hold's
    end; the whole line moves back by the ``shift`` that puts the earliest of them at the new
    end (the waiting line's end too), and each waiter, on waking, moves itself by the growth
    of ``held``. Moving the line
    as one block keeps every window's count what it was. New callers start after the hold
    with no burst saved up: after a "too many requests" the far side is saturated, and a
    full burst at once would ask for the next refusal. Concurrent holds for the same reason
    do not add up.
    """
    until = now + seconds
    shift = max(0.0, until - max(now, state.held_until))
    tat = max(max(state.tat, now) + shift, until + tolerance)
    queued = state.queued + shift if state.queued > now else state.queued
    return KeyState(tat, state.held + shift, max(state.held_until, until), queued)


def refund(state: KeyState, increment: float, receipt: float) -> KeyState | None:
    """Give back a reservation that will not be used, or ``None`` when that would be unsafe.

    Only the last place in line can be given back (the TAT still equals its receipt): had
    someone reserved after it, moving the TAT back would give a new caller the same slot as
    that waiter, two grants where the rate allows one. A hold since the reservation also
    changes the TAT, so a refund never undoes a hold. Refused refunds cost capacity only.
    """
    if state.tat != receipt:
        return None
    return state._replace(tat=state.tat - increment)
