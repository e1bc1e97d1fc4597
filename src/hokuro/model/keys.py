"""Task keys: a stable fingerprint of one call of a marked function.

A **key** is 32 hex characters: ``blake2b(digest_size=16)`` over the canonical encoding of ::

    ("hokuro-task-v1", fn_name, version, {argument name: value, ...})

where ``fn_name`` is the collection name (:func:`stable_name` by default) and the dict holds the
bound arguments after ``ignore=`` and any :class:`~hokuro.engine.keygen.KeyPolicy` were applied. A
task named by an explicit ident (:func:`ident_key`) uses ``("hokuro-ident-v1", fn_name,
version, ident)``, with the args appended when they join the key, so the two kinds never
share a key.

The encoding itself (which values are keyable, how, ``__hokuro_key__`` for your own classes)
is :mod:`hokuro.model.canonical`.

Stability promise: the same arguments give the same key in every process, on every machine,
in every run, and across hokuro releases; golden tests (``tests/test_keys.py``) pin the keys,
and a change to the encoding must change the domain tag (``hokuro-task-v2``). The caveats
are the encoding's (callables passed as arguments, pathlib paths): see
:mod:`hokuro.model.canonical`. Changing the *marked function's* own code does NOT change its
keys: bump ``version=`` on the mark to recompute.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ConfigurationError
from .canonical import canonical, canonical_into, canonical_str

__all__ = [
    "ident_key",
    "stable_name",
    "task_key",
]


# Argument names repeat on every call of a marked function: keep their encoded bytes. The
# cap keeps a flood of distinct **kwargs names from growing it without bound.
_NAME_BYTES: dict[str, bytes] = {}
_NAME_CACHE_CAP = 4096


def _name_bytes(name: str) -> bytes:
    if type(name) is not str:
        raise ConfigurationError(f"argument names must be str, not {name!r}")
    encoded = canonical_str(name)
    if len(_NAME_BYTES) < _NAME_CACHE_CAP:
        _NAME_BYTES[name] = encoded
    return encoded


def _encode_arguments(bound: Mapping[str, Any], out: list[bytes]) -> None:
    """Encode ``bound`` exactly as ``canonical(dict(bound))`` would, naming the failing one."""
    cached = _NAME_BYTES.get
    # Names are distinct, so sorting the pairs only ever compares the encoded bytes.
    items = sorted([(cached(name) or _name_bytes(name), name) for name in bound])
    out.append(b"d%d:" % len(items))
    active: set[int] = set()
    for kb, name in items:
        out.append(kb)
        canonical_into(bound[name], out, active, name)


_TASK_HEAD = b"t4:" + canonical_str("hokuro-task-v1")
_IDENT_HEAD = canonical_str("hokuro-ident-v1")


def _encode_header(fn_name: str, version: str | None, out: list[bytes]) -> None:
    if type(fn_name) is not str:
        raise ConfigurationError(f"a collection name must be a str, not {fn_name!r}")
    out.append(canonical_str(fn_name))
    if version is None:
        out.append(b"N")
    elif type(version) is str:
        out.append(canonical_str(version))
    else:
        raise ConfigurationError(f"version= must be a str or None, not {version!r}")


def task_key(fn_name: str, version: str | None, bound: Mapping[str, Any]) -> str:
    """The key of one call: 32 hex chars of ``blake2b(digest_size=16)`` over
    ``canonical(("hokuro-task-v1", fn_name, version, dict(bound)))``.

    ``bound`` maps argument names to values, after ignore= and key policies. An argument
    that cannot be keyed raises :class:`~hokuro.errors.UnkeyableArgument` whose path starts
    with its name.
    """
    out = [_task_head(fn_name, version)]
    _encode_arguments(bound, out)
    return hashlib.blake2b(b"".join(out), digest_size=16).hexdigest()


def task_keyer(fn_name: str, version: str | None, names: tuple[str, ...]
               ) -> Callable[[tuple[Any, ...]], str]:
    """``keyer(values)`` == ``task_key(fn_name, version, dict(zip(names, values)))`` for a
    tuple of exactly ``len(names)`` values, with the work that is the same for every call
    (the header, the names' bytes and their order) done once: a run keys thousands of
    inputs of one step in a row."""
    if len(set(names)) != len(names):
        raise ConfigurationError(f"argument names repeat: {names}")
    # Sorted by their encoded bytes, as _encode_arguments sorts them (names are distinct).
    order = tuple((encoded, i, name) for encoded, i, name in
                  sorted((_name_bytes(name), i, name) for i, name in enumerate(names)))
    head = _task_head(fn_name, version) + b"d%d:" % len(names)
    digest = hashlib.blake2b

    def keyer(values: tuple[Any, ...]) -> str:
        out = [head]
        active: set[int] = set()
        for encoded, i, name in order:
            out.append(encoded)
            canonical_into(values[i], out, active, name)
        return digest(b"".join(out), digest_size=16).hexdigest()

    return keyer


@functools.lru_cache(maxsize=4096)
def _task_head(fn_name: str, version: str | None) -> bytes:
    # The same few marked functions are called millions of times: encode their part once.
    out = [_TASK_HEAD]
    _encode_header(fn_name, version, out)
    return b"".join(out)


def ident_key(fn_name: str, version: str | None, ident: str, args: Any = None) -> str:
    """The key of a task named by an explicit ``ident`` (a collection computed by ident).

    It is ``canonical(("hokuro-ident-v1", fn_name, version, ident))`` hashed like
    :func:`task_key`, with ``args`` (usually a mapping) as a fifth element when it is not
    None. The domain tag differs from task_key's, so the two never give the same key.
    """
    out = [b"t4:" if args is None else b"t5:", _IDENT_HEAD]
    _encode_header(fn_name, version, out)
    if type(ident) is not str:
        raise ConfigurationError(f"an ident must be a str, not {type(ident).__name__}")
    out.append(canonical_str(ident))
    if args is not None:
        out.append(canonical(args, "args"))
    return hashlib.blake2b(b"".join(out), digest_size=16).hexdigest()


def stable_name(fn: Callable[..., Any]) -> str:
    """The default collection name of ``fn``: ``"module.qualname"``.

    A function defined in a script run as ``python script.py`` lives in ``__main__`` and is
    named ``"__main__.f"`` as is, so the same function imported from another module
    (``"script.f"``) is a different collection; give the mark ``name=`` to pin one name.
    """
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise ConfigurationError(
            f"{fn!r} has no __module__ and __qualname__ to name its collection; "
            "give the mark name='...'"
        )
    return f"{module}.{qualname}"
