"""How the pages write times, sizes and durations (Jinja filters).

A time is written in UTC inside ``<time datetime=…>``; the page's script rewrites it in the
browser's time zone and keeps UTC in the tooltip, so a page (or a screenshot) reads right
anywhere, and a page without its script still reads right in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

from markupsafe import Markup, escape

from ..model.readable import relative, size
from ..model.redact import mask_secrets


def when(epoch: float | None) -> Markup:
    if epoch is None or epoch == 0:
        return Markup("-")
    moment = datetime.fromtimestamp(epoch, UTC)
    utc = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup(f'<time datetime="{moment.isoformat()}" title="{escape(utc)}">'
                  f"{escape(utc)}</time>")


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"


def percent(part: int, whole: int) -> float:
    """``part`` of ``whole`` in percent, for bar widths."""
    return 0.0 if not whole else round(100.0 * part / whole, 2)


def masked(text: str | None) -> str:
    """Text from stored data (an error message, a log line) with URL passwords masked."""
    return "" if text is None else mask_secrets(str(text))


FILTERS = {"when": when, "size": size, "seconds": seconds, "masked": masked}
GLOBALS = {"relative": relative, "percent": percent}
