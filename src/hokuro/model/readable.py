"""Quantities as people read them: a size in bytes, a time relative to now. Pure; shared by
the command line and the dashboard."""

from __future__ import annotations

import math


def size(n: int | None) -> str:
    """ "512 B", "1.5 KiB", "3.2 GiB"; "-" for none."""
    if n is None:
        return "-"
    if n < 1024:
        return f"{n} B"
    exponent = min(int(math.log(n, 1024)), 4)
    return f"{n / 1024 ** exponent:.1f} {'BKMGT'[exponent]}iB"


def relative(epoch: float | None, now: float) -> str:
    """How far ``epoch`` is from ``now``: "in 12s", "in 3m 05s", "4s ago"; "-" for none."""
    if epoch is None:
        return "-"
    delta = epoch - now
    span = abs(delta)
    if span < 1:
        return "now"
    whole = int(span)
    if whole < 60:
        text = f"{whole}s"
    elif whole < 3600:
        text = f"{whole // 60}m {whole % 60:02d}s"
    elif whole < 86400:
        text = f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    else:
        text = f"{whole // 86400}d {whole % 86400 // 3600:02d}h"
    return f"in {text}" if delta > 0 else f"{text} ago"
