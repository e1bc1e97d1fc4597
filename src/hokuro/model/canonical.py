"""The canonical encoding: deterministic, injective bytes of a value, the material of every key.

:func:`canonical` gives a type-tagged, length-prefixed byte string:

* every value starts with a one-byte tag of its kind, so ``1``, ``1.0``, ``True`` and ``"1"``
  differ, as do ``list``/``tuple``, ``set``/``frozenset``, ``bytes``/``bytearray`` and a
  naive/aware ``datetime``;
* every encoding is self-delimiting, so a sequence of them is never ambiguous;
* dicts, sets and frozensets are sorted by the encoded bytes of their keys or members, so
  insertion order and ``PYTHONHASHSEED`` never matter (``OrderedDict`` keeps its order,
  because its equality does too);
* no ``hash()``, ``id()`` or ``repr()`` of objects takes part (``id()`` only detects cycles).

Supported: ``None``, bools, ints of any size, floats (every NaN alike), complex, str, bytes,
bytearray, memoryview, list, tuple, dict, set, frozenset, ``...``, date, time, datetime (the
tz identity is kept: a ``ZoneInfo`` by its key, a fixed offset by its offset), timedelta,
Decimal (by ``str``), UUID, pathlib paths, Enum members, namedtuples, dataclass instances
(fields with ``compare=False`` are left out, as equality leaves them out), pydantic v2 models
(``model_dump(mode="python")``), NumPy arrays and scalars (when NumPy is already imported;
little-endian bytes, so the key does not depend on the machine), functions, methods,
builtins, classes, ``functools.partial`` and code objects. Subclasses of builtin types are
tagged with their class name, so they never collide with the base type.

**Your own classes** become keyable by defining ``__hokuro_key__(self)``, returning any
keyable value; the key is the class's qualified name plus that value. Anything else raises
:class:`~hokuro.errors.UnkeyableArgument` naming where it sat (``cfg['client']``); there is no
silent ``str()`` fallback, because an address in a repr would give a new key every run.

Stability: the same value gives the same bytes in every process, on every machine, in every
run, and across hokuro releases; golden tests (``tests/test_keys.py``) pin the encoding, and
a change to it must change the domain tags of :mod:`hokuro.model.keys` (``hokuro-task-v2``).
Two caveats: callables are fingerprinted by their bytecode, which differs between Python
minor versions; and pathlib paths keep their concrete class (``PosixPath`` on one OS,
``WindowsPath`` on another).
"""

from __future__ import annotations

import dataclasses
import functools
import struct
import sys
import types
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Mapping
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from enum import Enum
from operator import itemgetter
from pathlib import PosixPath, PurePath, PurePosixPath, PureWindowsPath, WindowsPath
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from ..errors import UnkeyableArgument

__all__ = [
    "canonical",
    "canonical_into",
    "canonical_str",
]

# An encoder appends the encoding of one value to ``out``. ``active`` holds the ids of the
# containers (and functions) being encoded above it: the only use of ``id()`` here.
_Encoder = Callable[[Any, list[bytes], set[int]], None]

_pack_double = struct.Struct(">d").pack
# Every NaN (any sign, any payload) encodes as this one bit pattern, so NaN is stable.
_NAN = b"f" + _pack_double(float("nan"))
_first = itemgetter(0)
_SHOWN = 60  # longest repr of a key or member shown in an error path


class _Refused(Exception):
    """A value that cannot be keyed; the path is collected while the encoders unwind.

    Building a path string for every value on the hit path would cost more than keying it,
    so containers add their segment only when this passes through them.
    """

    def __init__(self, value_type: type, reason: str) -> None:
        super().__init__(reason)
        self.value_type = value_type
        self.reason = reason
        self.segments: list[str] = []

    def at(self, root: str) -> UnkeyableArgument:
        return UnkeyableArgument(root + "".join(reversed(self.segments)), self.value_type,
                                 self.reason)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _qualified(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or ""
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", "?")
    return f"{module}.{qualname}"


def _enter(value: Any, active: set[int]) -> int:
    ident = id(value)
    if ident in active:
        raise _Refused(type(value), "it contains itself (a reference cycle has no finite key)")
    active.add(ident)
    return ident


# -- scalars ----------------------------------------------------------------------------------

def _enc_none(v: None, out: list[bytes], active: set[int]) -> None:
    out.append(b"N")


def _enc_bool(v: bool, out: list[bytes], active: set[int]) -> None:
    out.append(b"T" if v else b"F")


def _enc_int(v: int, out: list[bytes], active: set[int]) -> None:
    # Hex, because decimal conversion of huge ints is capped (sys.set_int_max_str_digits)
    # and hex is not; the ";" ends the digits.
    out.append(b"i%x;" % v)


def _float_bytes(v: float) -> bytes:
    return _NAN if v != v else b"f" + _pack_double(v)


def _enc_float(v: float, out: list[bytes], active: set[int]) -> None:
    out.append(_NAN if v != v else b"f" + _pack_double(v))


def _enc_complex(v: complex, out: list[bytes], active: set[int]) -> None:
    out.append(b"j" + _float_bytes(v.real) + _float_bytes(v.imag))


def canonical_str(v: str) -> bytes:
    """``canonical(v)`` for an exact ``str``, in one piece and without the dispatch."""
    try:
        data = v.encode()
    except UnicodeEncodeError:
        # Lone surrogates: their surrogatepass bytes are never valid UTF-8, so no collision.
        data = v.encode("utf-8", "surrogatepass")
    return b"s%d:" % len(data) + data


def _enc_str(v: str, out: list[bytes], active: set[int]) -> None:
    try:
        data = v.encode()
    except UnicodeEncodeError:
        data = v.encode("utf-8", "surrogatepass")
    out.append(b"s%d:" % len(data))
    out.append(data)


def _enc_bytes(v: bytes, out: list[bytes], active: set[int]) -> None:
    out.append(b"b%d:" % len(v))
    out.append(v)


def _enc_bytearray(v: bytearray, out: list[bytes], active: set[int]) -> None:
    out.append(b"y%d:" % len(v))
    out.append(bytes(v))


def _enc_memoryview(v: memoryview, out: list[bytes], active: set[int]) -> None:
    data = v.tobytes()
    out.append(b"m")
    _enc_str(v.format, out, active)
    _enc_tuple(v.shape or (), out, active)
    out.append(b"%d:" % len(data))
    out.append(data)


def _enc_ellipsis(v: Any, out: list[bytes], active: set[int]) -> None:
    out.append(b".")


# -- containers -------------------------------------------------------------------------------

def _encode(v: Any, out: list[bytes], active: set[int]) -> None:
    _DISPATCH.get(type(v), _encode_other)(v, out, active)


def _to_bytes(v: Any, active: set[int]) -> bytes:
    parts: list[bytes] = []
    _DISPATCH.get(type(v), _encode_other)(v, parts, active)
    return b"".join(parts)


def _index_of(items: Any, item: Any) -> int:
    # The first element identical to the failing one failed too (encoding is deterministic).
    return next(i for i, candidate in enumerate(items) if candidate is item)


def _enc_list(v: list[Any], out: list[bytes], active: set[int]) -> None:
    ident = _enter(v, active)
    out.append(b"l%d:" % len(v))
    get = _DISPATCH.get
    try:
        for item in v:
            get(type(item), _encode_other)(item, out, active)
    except _Refused as exc:
        exc.segments.append(f"[{_index_of(v, item)}]")
        raise
    active.discard(ident)


def _enc_tuple(v: tuple[Any, ...], out: list[bytes], active: set[int]) -> None:
    # No cycle check: a tuple can only reach itself through a list or dict, which check.
    out.append(b"t%d:" % len(v))
    get = _DISPATCH.get
    try:
        for item in v:
            get(type(item), _encode_other)(item, out, active)
    except _Refused as exc:
        exc.segments.append(f"[{_index_of(v, item)}]")
        raise


def _sorted_entries(v: Mapping[Any, Any], active: set[int]
                    ) -> tuple[list[tuple[bytes, Any]], bool]:
    """(entries sorted by encoded key, whether two keys may share an encoding)."""
    entries = []
    may_tie = False
    try:
        for k, value in v.items():
            if type(k) is str:
                entries.append((canonical_str(k), value))
            else:
                # Distinct str or int keys always encode differently; other keys may not
                # (two NaN objects are two keys with one encoding).
                may_tie = may_tie or type(k) is not int
                entries.append((_to_bytes(k, active), value))
    except _Refused as exc:
        exc.segments.append(f"[key {_show(k)}]")
        raise
    entries.sort(key=_first)
    return entries, may_tie


def _enc_dict(v: dict[Any, Any], out: list[bytes], active: set[int]) -> None:
    ident = _enter(v, active)
    entries, may_tie = _sorted_entries(v, active)
    out.append(b"d%d:" % len(entries))
    if may_tie and len({kb for kb, _ in entries}) < len(entries):
        # Order the entries whose keys share an encoding by their values too, or insertion
        # order would leak into the key.
        _enc_entries_by_value(v, entries, out, active)
    else:
        get = _DISPATCH.get
        try:
            for kb, value in entries:
                out.append(kb)
                get(type(value), _encode_other)(value, out, active)
        except _Refused as exc:
            exc.segments.append(_dict_segment(v, value))
            raise
    active.discard(ident)


def _dict_segment(v: Mapping[Any, Any], value: Any) -> str:
    key = next((k for k, candidate in v.items() if candidate is value), "?")
    return f"[{_show(key)}]"


def _enc_entries_by_value(v: Mapping[Any, Any], entries: list[tuple[bytes, Any]],
                          out: list[bytes], active: set[int]) -> None:
    pairs = []
    try:
        for kb, value in entries:
            pairs.append((kb, _to_bytes(value, active)))
    except _Refused as exc:
        exc.segments.append(_dict_segment(v, value))
        raise
    pairs.sort()
    for kb, vb in pairs:
        out.append(kb)
        out.append(vb)


def _enc_ordered_dict(v: OrderedDict[Any, Any], out: list[bytes], active: set[int]) -> None:
    ident = _enter(v, active)
    out.append(b"o%d:" % len(v))
    try:
        for k, value in v.items():
            segment = f"[key {_show(k)}]"
            _encode(k, out, active)
            segment = f"[{_show(k)}]"
            _encode(value, out, active)
    except _Refused as exc:
        exc.segments.append(segment)
        raise
    active.discard(ident)


def _sorted_members(v: Collection[Any], active: set[int]) -> list[bytes]:
    members = []
    try:
        for item in v:
            members.append(canonical_str(item) if type(item) is str else _to_bytes(item, active))
    except _Refused as exc:
        exc.segments.append(f"[member {_show(item)}]")
        raise
    members.sort()
    return members


def _enc_set(v: set[Any], out: list[bytes], active: set[int]) -> None:
    members = _sorted_members(v, active)
    out.append(b"S%d:" % len(members))
    out.extend(members)


def _enc_frozenset(v: frozenset[Any], out: list[bytes], active: set[int]) -> None:
    members = _sorted_members(v, active)
    out.append(b"z%d:" % len(members))
    out.extend(members)


# -- dates, numbers, identifiers, paths -------------------------------------------------------

def _enc_timedelta(v: timedelta, out: list[bytes], active: set[int]) -> None:
    out.append(b"w%x;%x;%x;" % (v.days, v.seconds, v.microseconds))


def _enc_tz(tz: tzinfo | None, value: datetime | time, out: list[bytes],
            active: set[int]) -> None:
    if tz is None:
        out.append(b"-")
    elif type(tz) is timezone:
        out.append(b"O")
        _enc_timedelta(tz.utcoffset(None), out, active)
    elif type(tz) is ZoneInfo and tz.key is not None:
        out.append(b"Z")
        _enc_str(tz.key, out, active)
    else:
        out.append(b"U")
        _enc_str(_qualified(type(tz)), out, active)
        _encode(value.utcoffset(), out, active)
        _encode(value.tzname(), out, active)


def _enc_datetime(v: datetime, out: list[bytes], active: set[int]) -> None:
    # The wall time, then the zone: the offset a zone gives a future date can change with
    # the tz database, and Python compares datetimes of one zone by wall time anyway.
    out.append(b"D")
    _enc_str(v.replace(tzinfo=None).isoformat(), out, active)
    out.append(b"%d" % v.fold)  # fold tells the two 01:30s of a DST change apart
    _enc_tz(v.tzinfo, v, out, active)


def _enc_date(v: date, out: list[bytes], active: set[int]) -> None:
    out.append(b"a")
    _enc_str(v.isoformat(), out, active)


def _enc_time(v: time, out: list[bytes], active: set[int]) -> None:
    out.append(b"h")
    _enc_str(v.replace(tzinfo=None).isoformat(), out, active)
    out.append(b"%d" % v.fold)
    _enc_tz(v.tzinfo, v, out, active)


def _enc_decimal(v: Decimal, out: list[bytes], active: set[int]) -> None:
    out.append(b"g")
    _enc_str(str(v), out, active)


def _enc_uuid(v: UUID, out: list[bytes], active: set[int]) -> None:
    out.append(b"u" + v.bytes)


def _enc_path(v: PurePath, out: list[bytes], active: set[int]) -> None:
    # The bare class name: pathlib's module name has moved between Python versions.
    out.append(b"p")
    _enc_str(type(v).__qualname__, out, active)
    _enc_str(str(v), out, active)


# -- callables ------------------------------------------------------------------------------

def _enc_code(co: types.CodeType, out: list[bytes], active: set[int]) -> None:
    # Bytecode, constants (nested code objects recurse through the dispatch) and names;
    # never line numbers or file names, so moving a function does not change its key.
    out.append(b"c")
    _enc_bytes(co.co_code, out, active)
    _enc_tuple(co.co_consts, out, active)
    _enc_tuple(co.co_names, out, active)
    _enc_tuple(co.co_varnames, out, active)
    _enc_tuple(co.co_freevars, out, active)
    out.append(b"%x;%x;%x;%x;" % (co.co_argcount, co.co_posonlyargcount,
                                  co.co_kwonlyargcount, co.co_flags))


def _enc_function(fn: types.FunctionType, out: list[bytes], active: set[int]) -> None:
    name = _qualified(fn)
    ident = id(fn)
    if ident in active:
        # A function reaching itself (a nested recursive def holds itself in a closure
        # cell) is ordinary, not an error: name it instead of encoding it again.
        out.append(b"R")
        _enc_str(name, out, active)
        return
    active.add(ident)
    out.append(b"L")
    _enc_str(name, out, active)
    _enc_code(fn.__code__, out, active)
    # Defaults and closure contents decide behaviour as much as code does: two scorers
    # made by make_scorer(0.5) and make_scorer(0.9) must not share a key.
    segment = ".__defaults__"
    try:
        _encode(fn.__defaults__, out, active)
        segment = ".__kwdefaults__"
        _encode(fn.__kwdefaults__, out, active)
        cells = fn.__closure__ or ()
        out.append(b"%x;" % len(cells))
        for freevar, cell in zip(fn.__code__.co_freevars, cells, strict=False):
            segment = f".__closure__[{freevar!r}]"
            try:
                content = cell.cell_contents
            except ValueError:  # a cell not yet filled
                out.append(b"-")
                continue
            out.append(b"+")
            _encode(content, out, active)
    except _Refused as exc:
        exc.segments.append(segment)
        raise
    active.discard(ident)


def _enc_method(m: types.MethodType, out: list[bytes], active: set[int]) -> None:
    out.append(b"M")
    _encode(m.__func__, out, active)
    try:
        _encode(m.__self__, out, active)
    except _Refused as exc:
        exc.segments.append(".__self__")
        raise


def _enc_builtin(fn: Any, out: list[bytes], active: set[int]) -> None:
    # C functions have no bytecode: the name is all there is. A bound one (``"ab".upper``)
    # also carries its object, unless that is just the module it lives in.
    out.append(b"B")
    _enc_str(_qualified(fn), out, active)
    owner = getattr(fn, "__self__", None)
    if owner is None or isinstance(owner, types.ModuleType):
        out.append(b"-")
        return
    out.append(b"+")
    try:
        _encode(owner, out, active)
    except _Refused as exc:
        exc.segments.append(".__self__")
        raise


def _enc_partial(p: functools.partial[Any], out: list[bytes], active: set[int]) -> None:
    out.append(b"Q")
    segment = ".func"
    try:
        _encode(p.func, out, active)
        segment = ".args"
        _enc_tuple(p.args, out, active)
        segment = ".keywords"
        _enc_dict(p.keywords, out, active)
    except _Refused as exc:
        exc.segments.append(segment)
        raise


def _enc_class(cls: type, out: list[bytes], active: set[int]) -> None:
    # A class is its name plus the code of the functions it defines. Only code: method
    # defaults and closures (``__class__`` for super()) would refuse or loop for no gain.
    codes = []
    for attr_name, attr in vars(cls).items():
        if isinstance(attr, (staticmethod, classmethod)):
            attr = attr.__func__
        if isinstance(attr, property):
            for part in ("fget", "fset", "fdel"):
                accessor = getattr(attr, part)
                if type(accessor) is types.FunctionType:
                    codes.append((f"{attr_name}.{part}", accessor.__code__))
        elif type(attr) is types.FunctionType:
            codes.append((attr_name, attr.__code__))
    codes.sort(key=_first)
    out.append(b"C")
    _enc_str(_qualified(cls), out, active)
    out.append(b"%d:" % len(codes))
    for attr_name, code in codes:
        _enc_str(attr_name, out, active)
        _enc_code(code, out, active)


# -- everything that is not an exact builtin type ---------------------------------------------

def _enc_fields(tag: bytes, cls: type, fields: list[tuple[str, Any]], value: Any,
                out: list[bytes], active: set[int]) -> None:
    ident = _enter(value, active)
    out.append(tag)
    _enc_str(_qualified(cls), out, active)
    out.append(b"%d:" % len(fields))
    try:
        for name, item in fields:
            _enc_str(name, out, active)
            _encode(item, out, active)
    except _Refused as exc:
        exc.segments.append(f".{name}")
        raise
    active.discard(ident)


def _enc_hokuro_key(v: Any, out: list[bytes], active: set[int]) -> None:
    ident = _enter(v, active)
    material = v.__hokuro_key__()
    if material is v:
        raise _Refused(type(v), "its __hokuro_key__() returned the object itself; return "
                                "a plain value (a str, a tuple of fields, ...)")
    out.append(b"K")
    _enc_str(_qualified(type(v)), out, active)
    try:
        _encode(material, out, active)
    except _Refused as exc:
        exc.segments.append(".__hokuro_key__()")
        raise
    active.discard(ident)


def _enc_numpy(v: Any, np: Any, out: list[bytes], active: set[int]) -> None:
    if isinstance(v, np.ndarray):
        if type(v) is not np.ndarray and not isinstance(v, np.memmap):
            raise _Refused(type(v), "a subclass of numpy.ndarray may carry more than its "
                                    "data (a mask, say); pass numpy.asarray(value)")
        tag = b"V"
        array = v
    else:
        tag = b"v"
        array = np.asarray(v)
    dtype = array.dtype
    if dtype.hasobject:
        if dtype.kind != "O":
            raise _Refused(type(v), "a structured dtype holding Python objects")
        out.append(tag)
        _enc_str(dtype.str, out, active)
        _enc_tuple(array.shape, out, active)
        try:
            _enc_list(array.ravel().tolist() if array.ndim else [array.item()], out, active)
        except _Refused as exc:
            if exc.segments:  # name the element by its flat (C-order) index
                exc.segments[-1] = f".flat{exc.segments[-1]}"
            raise
        return
    # Little-endian everywhere, so a key made on a big-endian machine is the same.
    little = dtype.newbyteorder("<")
    if little != dtype:
        array = array.astype(little)
        dtype = little
    if dtype.kind in "fc":
        # One bit pattern for every NaN, as for Python floats: 0.0/0.0 and numpy.nan
        # differ in their sign bit, and must not differ in their key.
        nans = np.isnan(array)
        if nans.any():
            array = array.copy()
            array[nans] = np.nan
    out.append(tag)
    if dtype.fields is None:
        _enc_str(dtype.str, out, active)
    else:  # a structured dtype's str ("|V16") would forget the field names
        _encode(dtype.descr, out, active)
    _enc_tuple(array.shape, out, active)
    _enc_bytes(array.tobytes(order="C"), out, active)


def _encode_other(v: Any, out: list[bytes], active: set[int]) -> None:
    """The slow path: every type not in the exact-type dispatch table, in a fixed order."""
    cls = type(v)
    if getattr(cls, "__hokuro_key__", None) is not None:
        _enc_hokuro_key(v, out, active)
        return
    if isinstance(v, Enum):
        # Before the int/str rule: IntEnum and StrEnum members are keyed as members.
        out.append(b"E")
        _enc_str(_qualified(cls), out, active)
        try:
            _encode(v.value, out, active)
        except _Refused as exc:
            exc.segments.append(".value")
            raise
        return
    np = sys.modules.get("numpy")  # never imported here: only values that exist need it
    if np is not None and isinstance(v, (np.ndarray, np.generic)):
        _enc_numpy(v, np, out, active)
        return
    if hasattr(cls, "__dataclass_fields__"):
        fields = [(f.name, getattr(v, f.name)) for f in dataclasses.fields(v) if f.compare]
        _enc_fields(b"A", cls, fields, v, out, active)
        return
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(v, pydantic.BaseModel):
        _enc_pydantic(v, out, active)
        return
    if isinstance(v, tuple) and hasattr(cls, "_fields"):
        _enc_fields(b"n", cls, list(zip(cls._fields, v, strict=False)), v, out, active)
        return
    for base, exact_copy, encoder in _SUBCLASSED:
        if isinstance(v, base):
            ident = _enter(v, active)
            out.append(b"X")
            _enc_str(_qualified(cls), out, active)
            encoder(exact_copy(v), out, active)
            active.discard(ident)
            return
    if isinstance(v, PurePath):
        _enc_path(v, out, active)
    elif isinstance(v, type):
        _enc_class(v, out, active)
    elif isinstance(v, functools.partial):
        _enc_partial(v, out, active)
    elif isinstance(v, Iterator):
        raise _Refused(cls, "keying an iterator or generator would consume it; pass a list "
                            "or tuple")
    else:
        raise _Refused(cls, "hokuro knows no stable encoding for it; a class of your own can "
                            "define __hokuro_key__() returning a keyable value")


def _enc_pydantic(v: Any, out: list[bytes], active: set[int]) -> None:
    ident = _enter(v, active)
    try:
        dumped = v.model_dump(mode="python")
    except Exception as exc:
        raise _Refused(type(v), f"model_dump() failed: {exc}") from exc
    out.append(b"P")
    _enc_str(_qualified(type(v)), out, active)
    _enc_dict(dumped, out, active)
    active.discard(ident)


def _same(v: Any) -> Any:
    return v


# Subclasses of builtins: (base, exact copy of the base value, encoder). The copy goes
# through the base class's own method, so a subclass overriding __str__ or __iter__ cannot
# change what is keyed. OrderedDict before dict and datetime before date: most specific first.
_SUBCLASSED: tuple[tuple[type, Callable[[Any], Any], _Encoder], ...] = (
    (OrderedDict, OrderedDict, _enc_ordered_dict),
    (dict, dict, _enc_dict),
    (list, list, _enc_list),
    (tuple, tuple, _enc_tuple),
    (set, set, _enc_set),
    (frozenset, frozenset, _enc_frozenset),
    (str, str.__str__, _enc_str),
    (bytes, bytes.__bytes__, _enc_bytes),
    (bytearray, bytearray, _enc_bytearray),
    (int, int.__int__, _enc_int),
    (float, float.__float__, _enc_float),
    (complex, complex.__complex__, _enc_complex),
    (datetime, _same, _enc_datetime),
    (date, _same, _enc_date),
    (time, _same, _enc_time),
    (timedelta, _same, _enc_timedelta),
    (Decimal, _same, _enc_decimal),
    (UUID, _same, _enc_uuid),
)

# Exact type -> encoder: one dict lookup serves nearly every argument on the hit path.
_DISPATCH: dict[type, _Encoder] = {
    str: _enc_str,
    int: _enc_int,
    float: _enc_float,
    bool: _enc_bool,
    type(None): _enc_none,
    bytes: _enc_bytes,
    tuple: _enc_tuple,
    list: _enc_list,
    dict: _enc_dict,
    set: _enc_set,
    frozenset: _enc_frozenset,
    bytearray: _enc_bytearray,
    memoryview: _enc_memoryview,
    complex: _enc_complex,
    type(...): _enc_ellipsis,
    OrderedDict: _enc_ordered_dict,
    datetime: _enc_datetime,
    date: _enc_date,
    time: _enc_time,
    timedelta: _enc_timedelta,
    Decimal: _enc_decimal,
    UUID: _enc_uuid,
    PurePosixPath: _enc_path,
    PureWindowsPath: _enc_path,
    PosixPath: _enc_path,
    WindowsPath: _enc_path,
    types.FunctionType: _enc_function,
    types.MethodType: _enc_method,
    types.BuiltinFunctionType: _enc_builtin,
    types.MethodDescriptorType: _enc_builtin,
    types.WrapperDescriptorType: _enc_builtin,
    types.ClassMethodDescriptorType: _enc_builtin,
    types.MethodWrapperType: _enc_builtin,
    functools.partial: _enc_partial,
    types.CodeType: _enc_code,
    type: _enc_class,
}


# -- public API -------------------------------------------------------------------------------

_TOO_DEEP = "it is nested too deeply (or a __hokuro_key__() never reaches a plain value)"


def canonical(value: Any, path: str = "value") -> bytes:
    """The canonical bytes of ``value``: deterministic, injective, tagged by type.

    ``path`` names the value in errors (callers pass the argument name), so a failure reads
    ``UnkeyableArgument: argument "cfg['client']" of type ...``.
    """
    out: list[bytes] = []
    try:
        _DISPATCH.get(type(value), _encode_other)(value, out, set())
    except _Refused as exc:
        raise exc.at(path) from None
    except RecursionError:
        raise UnkeyableArgument(path, type(value), _TOO_DEEP) from None
    return b"".join(out)



def canonical_into(value: Any, out: list[bytes], active: set[int], path: str) -> None:
    """Append ``canonical(value, path)``'s bytes to ``out``, in parts: the hot path of a key.

    ``active`` holds the ids of the containers being encoded: start with an empty set; one set
    may serve a run of values, as encoding a value leaves it as it found it.
    """
    try:
        _DISPATCH.get(type(value), _encode_other)(value, out, active)
    except _Refused as exc:
        raise exc.at(path) from None
    except RecursionError:
        raise UnkeyableArgument(path, type(value), _TOO_DEEP) from None
