"""Value ⇄ bytes: msgpack that brings every value back equal and of the same type. No I/O.

Two codecs store results and call arguments:

* :class:`Codec` (``"msgpack"``, the default). Values made only of msgpack's own types (None,
  bool, int, float, str, bytes, list, dict) are written exactly as msgpack writes them, so any
  msgpack reader can open a record and a cache hit costs one ``unpackb``. Every other type the
  codec knows travels as a msgpack *extension* (an ext code and a payload) and is rebuilt on
  decode: tuple, set, frozenset, bytearray, ints beyond 64 bits, datetime / date / time (naive,
  or with a ``datetime.timezone`` or ``zoneinfo.ZoneInfo`` zone; ``fold`` kept), timedelta,
  Decimal, UUID, complex, pathlib paths, Enum members, NumPy arrays and scalars, and pandas
  DataFrame / Series / Index. Anything else raises :class:`SerializationError` that says how to
  teach the codec (``register_type`` / ``register``) or to choose pickle for that function.
  ``memoryview`` is written as its bytes and read back as ``bytes`` (a view cannot outlive the
  buffer it viewed).
* :class:`PickleCodec` (``"pickle"``), only for marks that ask for it: loading pickle runs code
  named by the data (DESIGN invariant 7), so nothing here ever unpickles on its own.

Ext codes 0..95 belong to users (beautyspot projects register e.g. 10 and 20); 96..127 are
hokuro's built-ins below. A code, once written to a ledger, keeps its meaning forever: new
formats get new codes. A type registered with an encoder that returns ``bytes`` is written
exactly as beautyspot wrote it (``ExtType(code, encoder(obj))``), so old beautyspot records
decode once the same types are registered.

Registered and built-in types match by exact type: a subclass of a registered class is not
the registered class and is refused until it is registered itself (silently writing it as its
base class would bring back a different type).

How each built-in type is written lives in :mod:`hokuro.model.codec_types` (codes 96..110) and
the NumPy and pandas encodings in :mod:`hokuro.model.codec_arrays` (112..116); what they share
with this module is in :mod:`hokuro.model.codec_base`. The Codec here keeps the registry of user
types (and code 111, a registered type's value), packs, dispatches to them and holds the NumPy
and pandas decoders.
"""

from __future__ import annotations

import dataclasses
import enum
import threading
from collections.abc import Callable
from typing import Any, NoReturn

import msgpack
from msgpack import ExtType, Timestamp

from ..errors import ConfigurationError, SerializationError
from .codec_arrays import (
    _DATAFRAME,
    _INDEX,
    _NDARRAY,
    _NPSCALAR,
    _SERIES,
    _encode_numpy,
    _encode_pandas,
    _frame_from,
    _index_from,
    _ndarray_from,
    _npscalar_from,
    _series_from,
)
from .codec_base import Pack, Unencodable, qualified_name, short_repr
from .codec_types import BUILTIN_ENCODERS, builtin_decoders, encode_enum, holds_raw, lower

__all__ = ["BUILTIN_CODES", "USER_CODES", "Codec", "PickleCodec", "codec_for"]

#: Ext codes users may register types under.
USER_CODES = range(0, 96)
#: Ext codes reserved for hokuro's built-in types.
BUILTIN_CODES = range(96, 128)

# 96..110 (tuple ... datetime ... Enum, a user's ExtType) are in codec_types.
_CUSTOM = 111  # a registered type whose encoder returned a value rather than bytes
# 112..116 (NumPy array / scalar, pandas DataFrame / Series / Index) are in codec_arrays.

# Types msgpack's C packer writes itself, never calling ``default``: registering one would
# silently do nothing, so it is refused.
_NATIVE = frozenset({type(None), bool, int, float, str, bytes, bytearray, memoryview, list, dict,
                     ExtType, Timestamp})

# Packers are reused per thread because building one costs more than packing a small value;
# one that grew beyond this is dropped so a thread does not keep a huge buffer alive.
_POOLED_BUFFER_LIMIT = 256 * 1024
# Nested payloads (a tuple in a tuple...) each take a packer; a few cover ordinary depths.
_POOL_SIZE = 8

_packb = msgpack.packb
_unpackb = msgpack.unpackb


# -- the codecs ----------------------------------------------------------------------------------

class Codec:
    """msgpack with faithful types, and a registry of user types (ext codes 0..95).

    One instance belongs to one Spot. Encoding and decoding take no lock; ``register_type``
    builds new registry dicts and swaps them in, so threads encoding meanwhile see either the
    old or the new registry, never half of one.
    """

    name = "msgpack"

    def __init__(self) -> None:
        self._lock = threading.Lock()  # serialises registrations only
        self._encoders: dict[type, Callable[[Any, Pack], ExtType]] = dict(BUILTIN_ENCODERS)
        self._user_types: dict[int, type] = {}
        self._decoders: dict[int, Callable[[bytes], Any]] = {
            **builtin_decoders(self._unpack_list),
            _CUSTOM: self._decode_custom,
            _NDARRAY: lambda data: _ndarray_from(self._unpack_list(data, 4)),
            _NPSCALAR: lambda data: _npscalar_from(self._unpack_list(data, 2)),
            _DATAFRAME: lambda data: _frame_from(self._unpack_list(data, 5), self._unpack),
            _SERIES: lambda data: _series_from(self._unpack_list(data, 5)),
            _INDEX: lambda data: _index_from(self._unpack_list(data)),
        }
        self._hook = self._ext_hook  # bound once: decode is the hot path of every cache hit
        self._pack = self._packing(unicode_errors=None)
        # Lone surrogates (from os.fsdecode) are not valid UTF-8; msgpack refuses them unless
        # told otherwise, which costs speed, so only a value that needs it is packed this way.
        self._pack_surrogates = self._packing(unicode_errors="surrogatepass")

    # registration ------------------------------------------------------------------------------

    def register_type(self, type_: type, code: int, encoder: Callable[[Any], Any],
                      decoder: Callable[[Any], Any]) -> None:
        """Teach the codec a type under ext ``code`` (0..95), as beautyspot's ``register_type``.

        ``encoder(obj)`` returns ``bytes`` (written as the ext payload, beautyspot's format) or
        any value this codec can encode, including other registered types. ``decoder`` receives
        exactly what the encoder returned, decoded, and returns the object. Only instances of
        exactly ``type_`` use it; subclasses must be registered on their own.

        A type hokuro already writes itself (datetime, tuple, numpy.ndarray...) may be
        registered too: the registration then decides how it is written, which lets a project
        keep writing the format its older records use. msgpack's own types cannot be.
        """
        if not isinstance(type_, type):
            raise ConfigurationError(f"register_type needs a class, got {type_!r}")
        if not callable(encoder) or not callable(decoder):
            raise ConfigurationError(f"register_type({type_.__qualname__}, ...) needs a "
                                     "callable encoder and a callable decoder")
        type_name = qualified_name(type_)

        def encode(obj: Any, pack: Pack) -> ExtType:
            try:
                out = encoder(obj)
            except Exception as exc:
                raise Unencodable(obj, f"the encoder registered for {type_name} raised "
                                   f"{exc!r}") from exc
            if type(out) is bytes:
                return ExtType(code, out)
            try:
                return ExtType(_CUSTOM, pack([code, out]))
            except Unencodable as exc:
                exc.notes.append(f"in what the encoder registered for {type_name} returned")
                exc.anchor = obj
                raise

        def decode(data: Any) -> Any:
            try:
                return decoder(data)
            except Exception as exc:
                raise SerializationError(
                    f"the decoder registered for {type_name} (ext code {code}) raised "
                    f"{exc!r}") from exc

        with self._lock:
            self._check_registration(type_, code)
            # Decoders first: a thread that encodes with the new type can already decode it.
            self._decoders = {**self._decoders, code: decode}
            self._user_types = {**self._user_types, code: type_}
            self._encoders = {**self._encoders, type_: encode}

    def register(self, code: int, encoder: Callable[[Any], Any] | None = None,
                 decoder: Callable[[Any], Any] | None = None) -> Callable[[type], type]:
        """Class decorator: ``@codec.register(code)`` registers the class under ``code``.

        Without ``encoder`` / ``decoder``, a dataclass is written as its fields and rebuilt by
        calling the class with them (fields with ``init=False`` are set afterwards); any other
        class is written as ``vars(obj)`` and rebuilt with ``cls.__new__(cls)`` and that dict.
        """
        self._check_code(code)
        if (encoder is None) != (decoder is None):
            raise ConfigurationError(f"register({code}, ...) needs both encoder= and decoder=, "
                                     "or neither to use the class's fields")

        def decorate(cls: type) -> type:
            if encoder is not None and decoder is not None:
                self.register_type(cls, code, encoder, decoder)
            elif dataclasses.is_dataclass(cls):
                self.register_type(cls, code, *_dataclass_coders(cls))
            else:
                self.register_type(cls, code, *_plain_class_coders(cls))
            return cls

        return decorate

    def _check_code(self, code: Any) -> None:
        if type(code) is not int or code not in USER_CODES:
            raise ConfigurationError(
                f"ext code {code!r} is not allowed: codes 0..95 are for your types and 96..127 "
                "are reserved for hokuro's built-in types; choose a free code in 0..95"
                f"{self._codes_in_use()}")

    def _check_registration(self, type_: type, code: int) -> None:
        self._check_code(code)
        if type_ in _NATIVE:
            raise ConfigurationError(f"{qualified_name(type_)} is one of msgpack's own types, "
                                     "which hokuro always writes itself; it cannot be "
                                     "registered")
        if code in self._user_types:
            raise ConfigurationError(
                f"ext code {code} is already registered for "
                f"{qualified_name(self._user_types[code])}; choose another code for "
                f"{qualified_name(type_)}{self._codes_in_use()}. A code is stored with the data, "
                "so never give a used code to another type")
        for used, known in self._user_types.items():
            if known is type_:
                raise ConfigurationError(
                    f"{qualified_name(type_)} is already registered with ext code {used}; "
                    "register each type once per Spot")

    def _codes_in_use(self) -> str:
        used = sorted(self._user_types)
        return f" (in use: {', '.join(map(str, used))})" if used else ""

    # encoding ----------------------------------------------------------------------------------

    def _packing(self, unicode_errors: str | None) -> Pack:
        """The packing function of one string mode; ``default`` and nested payloads share it."""
        def default(obj: Any) -> Any:
            # self._encoders is read on every call: a registration swaps in a new dict.
            encode = self._encoders.get(type(obj))
            if encode is not None:
                return encode(obj, pack)
            return self._encode_other(obj, pack)

        local = threading.local()

        def pack(obj: Any) -> bytes:
            kind = type(obj)
            if kind is list or kind is dict:
                if holds_raw(obj):
                    obj = lower(obj)
            elif kind is bytearray or kind is ExtType:
                obj = lower(obj)
            if unicode_errors is not None:
                return _packb(obj, default=default, strict_types=True,
                              unicode_errors=unicode_errors)
            # Packer is not thread-safe and packing re-enters through ``default`` (and user
            # encoders may call encode): each call takes a packer out of this thread's pool
            # and puts it back only after a clean pack.
            try:
                pool = local.pool
            except AttributeError:
                pool = local.pool = []
            packer = pool.pop() if pool else msgpack.Packer(default=default, strict_types=True)
            data = packer.pack(obj)
            if len(data) <= _POOLED_BUFFER_LIMIT and len(pool) < _POOL_SIZE:
                pool.append(packer)
            return data

        return pack

    def _encode_other(self, obj: Any, pack: Pack) -> ExtType:
        if isinstance(obj, enum.Enum):
            return encode_enum(obj, pack)
        module = type(obj).__module__
        # numpy and pandas are imported only when a value of theirs shows up.
        if module == "numpy" or module.startswith("numpy."):
            return _encode_numpy(obj, pack)
        if module == "pandas" or module.startswith("pandas."):
            return _encode_pandas(obj, pack)
        raise Unencodable(obj)

    def encode(self, value: Any, *, root: str = "value") -> bytes:
        """The bytes of ``value``; :meth:`decode` gives back an equal value of the same type.

        A value that cannot be written faithfully raises SerializationError naming its type,
        where it sat (``root`` names the whole value there: ``result['items'][2]``) and how
        to teach the codec or choose pickle.
        """
        try:
            return self._pack(value)
        except UnicodeEncodeError:
            pass  # a str with lone surrogates: packed again below in the mode that keeps them
        except Exception as exc:
            _raise_encode_error(exc, value, root)
        try:
            return self._pack_surrogates(value)
        except Exception as exc:
            _raise_encode_error(exc, value, root)

    # decoding ----------------------------------------------------------------------------------

    def decode(self, data: bytes) -> Any:
        """The value that :meth:`encode` turned into ``data``.

        Bytes that are truncated, corrupt or not hokuro msgpack raise SerializationError.
        """
        try:
            return _unpackb(data, ext_hook=self._hook, strict_map_key=False,
                            unicode_errors="surrogatepass")
        except SerializationError:
            raise
        except Exception as exc:
            raise SerializationError(
                f"cannot decode the stored value: the bytes are truncated, corrupt or not "
                f"written by hokuro's msgpack codec ({exc!r})") from exc

    def _unpack(self, data: bytes) -> Any:
        return _unpackb(data, ext_hook=self._hook, strict_map_key=False,
                        unicode_errors="surrogatepass")

    def _unpack_list(self, data: bytes, length: int | None = None) -> list:
        items = self._unpack(data)
        if type(items) is not list or (length is not None and len(items) != length):
            raise ValueError("an extension payload has the wrong shape")
        return items

    def _ext_hook(self, code: int, data: bytes) -> Any:
        decoder = self._decoders.get(code)
        if decoder is None:
            raise self._unknown_code(code)
        return decoder(data)

    def _unknown_code(self, code: int) -> SerializationError:
        if code in USER_CODES:
            return SerializationError(
                f"the stored value holds a custom type with ext code {code}, which is not "
                "registered in this Spot; register the type in this Spot with "
                f"spot.register_type(YourType, code={code}, encoder=..., decoder=...) or "
                f"@spot.register({code}) before reading it")
        if code in BUILTIN_CODES:
            return SerializationError(
                f"the stored value uses hokuro's built-in ext code {code}, which this version "
                "of hokuro does not know; it was written by a newer hokuro, so upgrade")
        return SerializationError(f"the stored value holds an unknown ext code {code}; the "
                                  "record is corrupt or was not written by hokuro")

    def _decode_custom(self, data: bytes) -> Any:
        code, value = self._unpack_list(data, 2)
        if type(code) is not int or code not in USER_CODES:
            raise ValueError("bad custom type payload")
        decoder = self._decoders.get(code)
        if decoder is None:
            raise self._unknown_code(code)
        return decoder(value)


def _raise_encode_error(exc: Exception, value: Any, root: str) -> NoReturn:
    if isinstance(exc, Unencodable):
        # The internal error becomes the user-facing one; keep what caused it, if anything.
        raise SerializationError(_unencodable_message(exc, value, root)) from exc.__cause__
    if isinstance(exc, SerializationError):
        raise exc
    if isinstance(exc, RecursionError) or "recursion limit" in str(exc):
        raise SerializationError(
            f"cannot encode {root}: it nests too deeply or contains itself (a list or dict "
            "inside itself cannot be stored)") from exc
    raise SerializationError(f"cannot encode {root}: {exc!r}") from exc


def _dataclass_coders(cls: type) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    fields = dataclasses.fields(cls)
    names = [field.name for field in fields]
    set_after = [field.name for field in fields if not field.init]

    def encoder(obj: Any) -> dict:
        return {name: getattr(obj, name) for name in names}

    def decoder(state: dict) -> Any:
        # Stored by name, so fields added later (with defaults) or reordered still decode.
        later = {name: state.pop(name) for name in set_after if name in state}
        obj = cls(**state)
        for name, value in later.items():
            object.__setattr__(obj, name, value)  # also works for frozen dataclasses
        return obj

    return encoder, decoder


def _plain_class_coders(cls: type) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    if cls.__dictoffset__ == 0:
        raise ConfigurationError(
            f"{qualified_name(cls)} instances have no __dict__ (it uses __slots__), so register() "
            "cannot store them by their attributes; pass encoder= and decoder=")

    def decoder(state: dict) -> Any:
        obj = cls.__new__(cls)
        obj.__dict__.update(state)
        return obj

    return vars, decoder


def _unencodable_message(exc: Unencodable, value: Any, root: str) -> str:
    leaf_type = type(exc.leaf)
    where = _locate(value, exc.anchor, root)
    place = f" at {where}" if where else f" inside {root}"
    notes = "".join(f" ({note})" for note in exc.notes)
    head = f"cannot encode a {qualified_name(leaf_type)}{place}{notes}: "
    pickle_hint = ('or store this function\'s values with pickle: @spot.mark(codec="pickle") '
                   "(only for data you trust: loading pickle runs code).")
    if exc.reason:
        return f"{head}{exc.reason}; {pickle_hint}"
    kind = "dataclass" if dataclasses.is_dataclass(leaf_type) else "class"
    return (f"{head}hokuro's msgpack codec does not know this type. Teach it: "
            f"spot.register_type({leaf_type.__qualname__}, code=<free code 0..95>, "
            f"encoder=..., decoder=...), or decorate the {kind} with @spot.register(<code>); "
            f"{pickle_hint}")


def _locate(root: Any, target: Any, root_name: str, budget: int = 100_000) -> str | None:
    """Where ``target`` sits in ``root``, as ``root['items'][2]``, or None if not found."""
    stack: list[tuple[Any, str]] = [(root, root_name)]
    seen: set[int] = set()
    while stack and budget > 0:
        budget -= 1
        obj, path = stack.pop()
        if obj is target:
            return path
        kind = type(obj)
        if kind not in (dict, list, tuple, set, frozenset) or id(obj) in seen:
            continue
        seen.add(id(obj))
        children: list[tuple[Any, str]] = []
        if kind is dict:
            for position, (key, item) in enumerate(obj.items()):
                children.append((key, f"{path}.keys()[{position}]"))
                children.append((item, f"{path}[{short_repr(key)}]"))
        elif kind is list or kind is tuple:
            children = [(item, f"{path}[{position}]") for position, item in enumerate(obj)]
        else:
            children = [(item, f"{path}{{…}}") for item in obj]
        stack.extend(reversed(children))  # depth first, in the order the value shows
    return None


class PickleCodec:
    """pickle, protocol 5: for values msgpack cannot rebuild, when a mark chooses it.

    Loading pickle runs code named by the data; the engine decodes with this codec only for
    marks that chose ``codec="pickle"`` (DESIGN invariant 7).
    """

    name = "pickle"

    def encode(self, value: Any, *, root: str = "value") -> bytes:
        import pickle  # only for marks that chose it

        try:
            return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise SerializationError(f"pickle cannot encode this value: {exc!r}") from exc

    def decode(self, data: bytes) -> Any:
        import pickle

        try:
            return pickle.loads(data)
        except Exception as exc:
            raise SerializationError(
                f"cannot unpickle the stored value (truncated, corrupt, or a class it names "
                f"is gone): {exc!r}") from exc


_CODEC_NAMES = ("msgpack", "pickle")


def codec_for(name: str, msgpack_codec: Codec) -> Codec | PickleCodec:
    """The codec a mark asked for: ``"msgpack"`` is the Spot's own codec, ``"pickle"`` pickle."""
    if name == "msgpack":
        return msgpack_codec
    if name == "pickle":
        return PickleCodec()
    raise ConfigurationError(f"unknown codec {name!r}; valid codecs are "
                             f"{', '.join(map(repr, _CODEC_NAMES))}")
