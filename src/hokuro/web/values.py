"""Values as the dashboard shows them: a task's result by its ``content_type``, arguments,
and short previews in listings, every one cut to a size a page can carry.

A result arrives already decoded by the maintenance service, which never unpickles
(invariant 7): a pickled result is a placeholder note here. Images are shown inline from
the bytes the task returned (an ``<img>`` never runs scripts, SVG included); other bytes
as a hex preview; text as text; anything else as pretty JSON when it can be, else as
Python's repr.
"""

from __future__ import annotations

import base64
import json
import pprint
from dataclasses import dataclass
from typing import Any

from ..model.redact import mask_secrets

#: Characters of text (or pretty JSON) shown before a value is cut short.
TEXT_LIMIT = 20_000
#: Bytes shown as hex.
HEX_LIMIT = 512
#: Largest image shown inline.
IMAGE_LIMIT = 4 * 1024 * 1024
#: Characters of a value in a listing cell.
CELL_LIMIT = 80


@dataclass(slots=True)
class Shown:
    """A value ready for a template: ``kind`` is ``json``, ``text``, ``image``, ``hex`` or
    ``note``; ``text`` what to print (or the image's data URI); ``cut`` how many characters
    or bytes were left out."""

    kind: str
    text: str
    cut: int = 0
    media_type: str | None = None


def show_value(value: Any, content_type: str | None = None, note: str | None = None
               ) -> Shown:
    """``value`` as the task page shows it (``note``: why there is no value)."""
    if note is not None:
        return Shown("note", note)
    kind = (content_type or "").split(";")[0].strip().lower()
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if kind.startswith("image/") and len(data) <= IMAGE_LIMIT:
            encoded = base64.b64encode(data).decode("ascii")
            return Shown("image", f"data:{kind};base64,{encoded}", media_type=kind)
        if kind.startswith("text/") or kind in ("application/json", "application/xml"):
            try:
                return _text(data.decode("utf-8"), kind)
            except UnicodeDecodeError:
                pass
        return Shown("hex", _hex(data[:HEX_LIMIT]), max(0, len(data) - HEX_LIMIT),
                     media_type=kind or None)
    if isinstance(value, str):
        return _text(value, kind)
    try:
        pretty = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)
    except (TypeError, ValueError):
        pretty = pprint.pformat(value, width=100, sort_dicts=False)
        return _cut("text", pretty)
    return _cut("json", pretty)


def _text(text: str, kind: str) -> Shown:
    if kind == "application/json":
        try:
            return _cut("json", json.dumps(json.loads(text), indent=2, ensure_ascii=False))
        except ValueError:
            pass
    return _cut("text", text)


def _cut(kind: str, text: str) -> Shown:
    if len(text) > TEXT_LIMIT:
        return Shown(kind, text[:TEXT_LIMIT], len(text) - TEXT_LIMIT)
    return Shown(kind, text)


def _hex(data: bytes) -> str:
    lines = []
    for at in range(0, len(data), 16):
        row = data[at:at + 16]
        printable = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        lines.append(f"{at:08x}  {row.hex(' '):<47}  {printable}")
    return "\n".join(lines)


def shown_text(text: str | None, limit: int = TEXT_LIMIT) -> Shown:
    """A log or a traceback, secrets masked, its start cut when too long (the end of a log
    is what people look for)."""
    text = mask_secrets(text or "")
    if len(text) > limit:
        return Shown("text", text[-limit:], len(text) - limit)
    return Shown("text", text)


def cell(text: Any, limit: int = CELL_LIMIT) -> str:
    """A value cut to a listing cell."""
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"
