"""How each built-in type is written as a msgpack extension, and read back. No I/O.

Ext codes 96..110: tuple, set, frozenset, ints beyond 64 bits, bytearray, datetime / date /
time (a ``datetime.timezone`` or ``zoneinfo.ZoneInfo`` zone as data, ``fold`` kept), timedelta,
Decimal, UUID, pathlib paths, complex, Enum members (by the import path of their class, looked
up and never imported when read) and a ``msgpack.ExtType`` the user put in a value; and the walk
that finds, inside lists and dicts, the bytearray and ExtType values msgpack's C packer would
write wrongly.

Separate from :mod:`hokuro.model.codec`, which keeps the registry of user types, the packing,
the dispatch and the error messages: each code's encoder and decoder sit side by side here, as
the NumPy and pandas ones do in :mod:`hokuro.model.codec_arrays`. The Codec starts from
``BUILTIN_ENCODERS`` and ``builtin_decoders``, packs through ``holds_raw`` / ``lower`` and
writes Enum members with ``encode_enum``; this module never imports codec (``pack`` and
``unpack_list`` come in as arguments, the shared pieces from :mod:`hokuro.model.codec_base`).
"""

from __future__ import annotations

import enum
import pathlib
import struct
import sys
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from msgpack import ExtType

from ..errors import SerializationError
from .codec_base import Pack, Unencodable, tz_from, tz_state

__all__ = ["BUILTIN_ENCODERS", "builtin_decoders", "encode_enum", "holds_raw", "lower"]

# Built-in ext codes, in hokuro's range 96..127. A code, once written to a ledger, keeps its
# meaning forever: new formats get new codes.
_TUPLE = 96
_SET = 97
_FROZENSET = 98
_BIGINT = 99
_BYTEARRAY = 100
_DATETIME = 101
_DATE = 102
_TIME = 103
_TIMEDELTA = 104
_DECIMAL = 105
_UUID = 106
_PATH = 107
_COMPLEX = 108
_ENUM = 109
_RAW_EXT = 110  # a msgpack.ExtType the user put in a value, kept as such
# 111 (a registered type whose encoder returned a value rather than bytes) is in codec.py, with
# the registry; 112..116 (NumPy array / scalar, pandas DataFrame / Series / Index) are in
# codec_arrays.

_PATH_CLASSES: tuple[type[pathlib.PurePath], ...] = (
    pathlib.PurePosixPath, pathlib.PureWindowsPath, pathlib.PosixPath, pathlib.WindowsPath,
)
_COMPLEX_LAYOUT = struct.Struct("<dd")
# A value that needs the bigint extension has more than 64 bits: 9 bytes at least.
_BIGINT_MIN_BYTES = 9
_WALKED = frozenset({list, dict, bytearray, ExtType})


# -- values msgpack would write wrongly --------------------------------------------------------

def holds_raw(container: list | dict) -> bool:
    """True when a list / dict tree holds a bytearray or a msgpack.ExtType.

    msgpack's C packer writes a bytearray exactly like bytes and writes an ExtType as the
    extension it is, without calling ``default``: the first would come back as bytes, the
    second be read as one of our types. Only a walk can find them. The walk stops at every
    other container (tuple, set, registered types...) because those reach ``default``, which
    walks its own payload. Dict keys are not walked: a bytearray cannot be one, and an ExtType
    used as a key is written as the extension it is.
    """
    values = container.values() if type(container) is dict else container
    if len(values) > 16:
        # One C-speed pass over a long list decides most cases without a Python loop.
        kinds = set(map(type, values))
        if kinds.isdisjoint(_WALKED):
            return False
        if bytearray in kinds or ExtType in kinds:
            return True
    for item in values:
        kind = type(item)
        if kind is list or kind is dict:
            if holds_raw(item):
                return True
        elif kind is bytearray or kind is ExtType:
            return True
    return False


def lower(obj: Any) -> Any:
    """A copy of a list / dict tree with bytearray and ExtType wrapped in our extensions."""
    kind = type(obj)
    if kind is list:
        return [lower(item) for item in obj]
    if kind is dict:
        return {key: lower(item) for key, item in obj.items()}
    if kind is bytearray:
        return ExtType(_BYTEARRAY, bytes(obj))
    if kind is ExtType:
        return ExtType(_RAW_EXT, bytes([obj.code]) + obj.data)  # ExtType codes are 0..127
    return obj


# -- built-in encoders: (value, pack) -> ExtType ------------------------------------------------
# ``pack`` is the codec's own packing function, so payloads may hold any encodable value.


def _encode_tuple(obj: tuple, pack: Pack) -> ExtType:
    return ExtType(_TUPLE, pack(list(obj)))


def _encode_set(obj: set, pack: Pack) -> ExtType:
    return ExtType(_SET, pack(list(obj)))


def _encode_frozenset(obj: frozenset, pack: Pack) -> ExtType:
    return ExtType(_FROZENSET, pack(list(obj)))


def _encode_bigint(obj: int, pack: Pack) -> ExtType:
    # msgpack calls ``default`` for an int only when it overflows 64 bits.
    return ExtType(_BIGINT, obj.to_bytes((obj.bit_length() + 8) // 8, "little", signed=True))


def _encode_datetime(obj: datetime, pack: Pack) -> ExtType:
    state = [obj.year, obj.month, obj.day, obj.hour, obj.minute, obj.second, obj.microsecond,
             obj.fold]
    if obj.tzinfo is not None:
        state.append(tz_state(obj, obj.tzinfo))
    return ExtType(_DATETIME, pack(state))


def _encode_date(obj: date, pack: Pack) -> ExtType:
    return ExtType(_DATE, pack([obj.year, obj.month, obj.day]))


def _encode_time(obj: time, pack: Pack) -> ExtType:
    state = [obj.hour, obj.minute, obj.second, obj.microsecond, obj.fold]
    if obj.tzinfo is not None:
        state.append(tz_state(obj, obj.tzinfo))
    return ExtType(_TIME, pack(state))


def _encode_timedelta(obj: timedelta, pack: Pack) -> ExtType:
    return ExtType(_TIMEDELTA, pack([obj.days, obj.seconds, obj.microseconds]))


def _encode_decimal(obj: Decimal, pack: Pack) -> ExtType:
    # str() of a Decimal is exact and reversible: sign, digits, exponent, NaN payloads.
    return ExtType(_DECIMAL, str(obj).encode("ascii"))


def _encode_uuid(obj: uuid.UUID, pack: Pack) -> ExtType:
    return ExtType(_UUID, obj.bytes)


def _encode_path(obj: pathlib.PurePath, pack: Pack) -> ExtType:
    # surrogatepass keeps file names that were not valid UTF-8 (os.fsdecode's surrogates).
    kind = _PATH_CLASSES.index(type(obj))
    return ExtType(_PATH, bytes([kind]) + str(obj).encode("utf-8", "surrogatepass"))


def _encode_complex(obj: complex, pack: Pack) -> ExtType:
    return ExtType(_COMPLEX, _COMPLEX_LAYOUT.pack(obj.real, obj.imag))


BUILTIN_ENCODERS: dict[type, Callable[[Any, Pack], ExtType]] = {
    tuple: _encode_tuple,
    set: _encode_set,
    frozenset: _encode_frozenset,
    int: _encode_bigint,
    datetime: _encode_datetime,
    date: _encode_date,
    time: _encode_time,
    timedelta: _encode_timedelta,
    Decimal: _encode_decimal,
    uuid.UUID: _encode_uuid,
    complex: _encode_complex,
    **{cls: _encode_path for cls in _PATH_CLASSES},
}


# -- built-in decoders: payload -> value ------------------------------------------------------

def builtin_decoders(unpack_list: Callable[..., list]) -> dict[int, Callable[[bytes], Any]]:
    """The decoders of codes 96..110, by code, for one codec.

    ``unpack_list(data, length=None)`` is that codec's: it unpacks a payload that must be a list
    (of ``length`` items), nested values through the codec's own ext hook.
    """

    def decode_datetime(data: bytes) -> datetime:
        state = unpack_list(data)
        if len(state) not in (8, 9):
            raise ValueError("bad datetime payload")
        tz = tz_from(state[8]) if len(state) == 9 else None
        return datetime(*state[:7], tzinfo=tz, fold=state[7])

    def decode_time(data: bytes) -> time:
        state = unpack_list(data)
        if len(state) not in (5, 6):
            raise ValueError("bad time payload")
        tz = tz_from(state[5]) if len(state) == 6 else None
        return time(*state[:4], tzinfo=tz, fold=state[4])

    return {
        _TUPLE: lambda data: tuple(unpack_list(data)),
        _SET: lambda data: set(unpack_list(data)),
        _FROZENSET: lambda data: frozenset(unpack_list(data)),
        _BIGINT: _decode_bigint,
        _BYTEARRAY: bytearray,
        _DATETIME: decode_datetime,
        _DATE: lambda data: date(*unpack_list(data, 3)),
        _TIME: decode_time,
        _TIMEDELTA: lambda data: timedelta(*unpack_list(data, 3)),
        _DECIMAL: lambda data: Decimal(data.decode("ascii")),
        _UUID: lambda data: uuid.UUID(bytes=data),
        _PATH: _decode_path,
        _COMPLEX: lambda data: complex(*_COMPLEX_LAYOUT.unpack(data)),
        _ENUM: lambda data: _decode_enum(*unpack_list(data, 3)),
        _RAW_EXT: _decode_raw_ext,
    }


def _decode_bigint(data: bytes) -> int:
    if len(data) < _BIGINT_MIN_BYTES:
        raise ValueError("a big int payload shorter than 9 bytes")
    return int.from_bytes(data, "little", signed=True)


def _decode_path(data: bytes) -> pathlib.PurePath:
    cls = _PATH_CLASSES[data[0]]
    try:
        return cls(data[1:].decode("utf-8", "surrogatepass"))
    except NotImplementedError as exc:
        raise SerializationError(
            f"the stored value holds a {cls.__name__}, which cannot be made on this "
            f"operating system; read it where it was written, or store a "
            f"Pure{cls.__name__} instead") from exc


def _decode_raw_ext(data: bytes) -> ExtType:
    if not data:
        raise ValueError("an empty ExtType payload")
    return ExtType(data[0], data[1:])


# -- Enum members, by the import path of their class -------------------------------------------

_ENUM_PATHS: dict[type, tuple[str, str]] = {}


class _NotImported(LookupError):
    """The module a stored value names is not imported in this process."""


def _resolve(module: str, qualname: str) -> Any:
    # Only modules this process has already imported: importing by a name read from stored
    # data would run that module's top-level code while merely reading a record (DESIGN
    # invariant 6). A class being encoded lives in an imported module anyway.
    found: Any = sys.modules.get(module)
    if found is None:
        raise _NotImported(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def _enum_path(member: enum.Enum) -> tuple[str, str]:
    cls = type(member)
    known = _ENUM_PATHS.get(cls)
    if known is not None:
        return known
    module, qualname = cls.__module__, cls.__qualname__
    if "<locals>" in qualname:
        raise Unencodable(member, "its Enum class is defined inside a function, so it cannot "
                           "be found when the value is read back; define it at module level")
    try:
        found = _resolve(module, qualname)
    except Exception:
        found = None
    if found is not cls:
        raise Unencodable(member, f"looking up {module}.{qualname} does not give back its Enum "
                           "class, so it could not be rebuilt; define it at module level")
    _ENUM_PATHS[cls] = (module, qualname)  # checked once per class, then a dict hit
    return module, qualname


def encode_enum(member: enum.Enum, pack: Pack) -> ExtType:
    """An Enum member as the import path of its class and its value (the value packed too)."""
    module, qualname = _enum_path(member)
    try:
        return ExtType(_ENUM, pack([module, qualname, member.value]))
    except Unencodable as exc:
        exc.notes.append(f"in the value of {member!r}")
        exc.anchor = member
        raise


def _decode_enum(module: Any, qualname: Any, value: Any) -> enum.Enum:
    # The class is looked up, never imported, and nothing is called unless it is an Enum
    # class: unlike pickle, the data cannot pick code to run.
    if type(module) is not str or type(qualname) is not str:
        raise ValueError("bad Enum payload")
    where = f"{module}.{qualname}"
    try:
        cls = _resolve(module, qualname)
    except _NotImported as exc:
        raise SerializationError(
            f"the stored value holds a member of the Enum {where}, and its module {module!r} "
            f"is not imported in this process; import {module} before reading the record "
            "(hokuro never imports a module named by stored data)") from exc
    except Exception as exc:
        raise SerializationError(
            f"the stored value holds a member of the Enum {where}, which cannot be imported "
            f"here ({exc!r}); make its module importable before reading the record") from exc
    if not (isinstance(cls, type) and issubclass(cls, enum.Enum)):
        raise SerializationError(f"the stored value names {where} as an Enum, but it is not one "
                                 "here; the record is corrupt or the name now means another thing")
    try:
        return cls(value)
    except ValueError as exc:
        raise SerializationError(f"{value!r} is no longer a value of the Enum {where}; the "
                                 "record was written by an older version of that Enum") from exc
