"""Durations written by people ("30s", "12h", "7d") turned into seconds. Pure."""

from __future__ import annotations

import re
from datetime import timedelta

from ..errors import ConfigurationError

_UNITS = {
    "ms": 0.001,
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
    "w": 604800.0, "week": 604800.0, "weeks": 604800.0,
}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)?\s*$")


def parse_duration(value: str | float | int | timedelta | None, *, what: str = "duration"
                   ) -> float | None:
    """Return ``value`` in seconds; ``None`` stays ``None`` (meaning: forever).

    Accepts a number of seconds, a :class:`datetime.timedelta`, or text such as
    ``"30s"``, ``"15min"``, ``"12h"``, ``"7d"``, ``"2w"``.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigurationError(
            f"{what} must be seconds, a timedelta or text like '7d', not a bool")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _PATTERN.match(value.lower())
        if not match or (match.group(2) or "s") not in _UNITS:
            raise ConfigurationError(
                f"{what} {value!r} is not understood; write a number and a unit such as "
                "'30s', '15min', '12h', '7d' or '2w', or give seconds as a number"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ConfigurationError(
            f"{what} must be seconds, a timedelta or text like '7d', not {type(value).__name__}"
        )
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        raise ConfigurationError(f"{what} must be a finite, non-negative duration, not {value!r}")
    return seconds
