"""What the msgpack codec and its ext encoders share. No I/O.

An ext encoder is called as ``encoder(value, pack)`` and returns an ``ExtType``; when it meets
a value it cannot write faithfully it raises :class:`Unencodable`, which
:meth:`hokuro.model.codec.Codec.encode` turns into the message users see. Time zones are stored as
data the same way by the datetime / time extensions and by tz-aware pandas columns.

Separate from :mod:`hokuro.model.codec` so that :mod:`hokuro.model.codec_types` (the
built-in types' encodings) and :mod:`hokuro.model.codec_arrays` (the NumPy and pandas ones),
which the Codec dispatches to, can use these without importing codec: the imports run codec ->
codec_types | codec_arrays -> codec_base, with no cycle, as the import-linter layers require.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import SerializationError

# ``pack`` is the codec's own packing function, so payloads may hold any encodable value.
Pack = Callable[[Any], bytes]


def qualified_name(type_: type) -> str:
    return f"{type_.__module__}.{type_.__qualname__}"


def short_repr(key: Any) -> str:
    text = repr(key)
    return text if len(text) <= 40 else text[:37] + "..."


class Unencodable(SerializationError):
    """Raised deep inside packing; :meth:`Codec.encode` turns it into the message users see.

    ``leaf`` is the value no encoder knows, ``anchor`` the object to look for in the user's
    value to say where it sat (a container may re-anchor to itself when the leaf lies inside
    something the path search cannot enter), ``notes`` extra context gathered on the way up.
    """

    def __init__(self, leaf: Any, reason: str | None = None) -> None:
        super().__init__(reason or "")
        self.leaf = leaf
        self.anchor = leaf
        self.reason = reason
        self.notes: list[str] = []


# -- time zones as data ------------------------------------------------------------------------

_MICROSECOND = timedelta(microseconds=1)


def tz_state(owner: Any, tz: Any) -> str | list:
    """A zone as data: a ZoneInfo by its key, a fixed offset as [microseconds(, name)]."""
    kind = type(tz)
    if kind is timezone:
        offset, *name = tz.__getinitargs__()  # the name only when one was given
        return [offset // _MICROSECOND, *name]
    if kind is ZoneInfo:
        if tz.key is None:
            raise Unencodable(owner, "its ZoneInfo was loaded from a file and has no key to "
                               "rebuild it by; use zoneinfo.ZoneInfo('Area/City')")
        return tz.key
    raise Unencodable(owner, f"its tzinfo is a {qualified_name(kind)}; hokuro rebuilds "
                       "datetime.timezone and zoneinfo.ZoneInfo zones faithfully, so convert "
                       "with .astimezone(zoneinfo.ZoneInfo('Area/City')) or .replace(tzinfo=...)")


def tz_from(state: Any) -> Any:
    if type(state) is str:
        try:
            return ZoneInfo(state)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise SerializationError(
                f"the stored value uses the time zone {state!r}, which this machine does not "
                "know; install the tzdata package (pip install tzdata)") from exc
    if type(state) is list and 1 <= len(state) <= 2:
        return timezone(state[0] * _MICROSECOND, *state[1:])
    raise ValueError(f"bad time zone {state!r}")
