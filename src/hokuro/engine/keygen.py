"""Key policies: which bound arguments become key material, and how (KeyPolicy, KeyGen).

A mark's ``key=`` may be a :class:`KeyPolicy`, built from :class:`KeyGen`'s steps and combined
with ``|``: ``KeyGen.ignore("log") | KeyGen.file_content("src")``. Applied to the bound
arguments before :func:`hokuro.model.keys.task_key` encodes them, it leaves arguments out or
replaces a path by a fingerprint of its file (its bytes, or its resolved path, size and
mtime). ``KeyGen.from_path_stat`` / ``from_file_content`` give those fingerprints for
``input_key_fn=``, the names beautyspot users know.

Separate from :mod:`hokuro.model.keys` because these steps read and stat files on every call,
while keys is the pure layer (no I/O, DESIGN.md) whose encoding is pinned by golden tests.
keygen may import keys; keys never imports keygen.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError, UnkeyableArgument

__all__ = ["KeyGen", "KeyPolicy"]



def _fspath(value: Any, what: str, name: str | None) -> str:
    if not isinstance(value, (str, bytes, os.PathLike)):
        raise UnkeyableArgument(name or "path", type(value),
                                f"{what} needs a path (str or os.PathLike)")
    return os.fsdecode(value)


def _missing(what: str, name: str | None, path: str) -> FileNotFoundError:
    where = f"argument {name!r} names" if name else "it was given"
    return FileNotFoundError(
        errno.ENOENT,
        f"{what}: {where} a file that does not exist, and the task key is made from that "
        "file; create it or pass an existing path",
        path,
    )


def _content_fingerprint(value: Any, name: str | None) -> str:
    what = "KeyGen.file_content" if name else "KeyGen.from_file_content"
    path = _fspath(value, what, name)
    try:
        with open(path, "rb") as handle:
            # file_digest streams in chunks: a 10 GB input does not need 10 GB of memory.
            digest = hashlib.file_digest(handle, lambda: hashlib.blake2b(digest_size=16))
    except FileNotFoundError:
        raise _missing(what, name, path) from None
    return digest.hexdigest()


def _stat_fingerprint(value: Any, name: str | None) -> tuple[str, int, int]:
    what = "KeyGen.path_stat" if name else "KeyGen.from_path_stat"
    path = _fspath(value, what, name)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise _missing(what, name, path) from None
    return os.path.realpath(path), st.st_size, st.st_mtime_ns


_KINDS = ("ignore", "file_content", "path_stat")


@dataclass(frozen=True, slots=True)
class _Step:
    kind: str
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """How bound arguments become key material; made by :class:`KeyGen`, combined with ``|``.

    Steps apply in order: ``KeyGen.ignore("log") | KeyGen.file_content("src")``.
    """

    steps: tuple[_Step, ...]

    def __or__(self, other: object) -> KeyPolicy:
        if not isinstance(other, KeyPolicy):
            return NotImplemented
        return KeyPolicy(self.steps + other.steps)

    @property
    def names(self) -> tuple[str, ...]:
        """Every argument name the policy refers to, in order, without repeats."""
        return tuple(dict.fromkeys(n for step in self.steps for n in step.names))

    def check(self, param_names: Collection[str], *, var_keyword: bool = False) -> None:
        """Raise ConfigurationError if a step names an argument not in ``param_names``.

        Called once when a function is marked, so a typo fails there, not at the first
        call. ``var_keyword=True`` (the function takes ``**kwargs``) accepts any name.
        """
        if var_keyword:
            return
        unknown = [n for n in self.names if n not in param_names]
        if unknown:
            raise ConfigurationError(
                f"{self!r} names {', '.join(map(repr, unknown))}, which the function does not "
                f"take; its parameters are {', '.join(map(repr, param_names)) or 'none'}"
            )

    def apply(self, bound: Mapping[str, Any]) -> dict[str, Any]:
        """Return a new dict of key material; ``bound`` is left as it was.

        A named argument absent from ``bound`` or None (an optional path not given) is left
        as it is.
        """
        material = dict(bound)
        for step in self.steps:
            for name in step.names:
                if step.kind == "ignore":
                    material.pop(name, None)
                elif material.get(name) is not None:
                    if step.kind == "file_content":
                        material[name] = _content_fingerprint(material[name], name)
                    else:
                        material[name] = _stat_fingerprint(material[name], name)
        return material

    def __repr__(self) -> str:
        return " | ".join(
            f"KeyGen.{step.kind}({', '.join(map(repr, step.names))})" for step in self.steps
        )


def _policy(kind: str, names: tuple[str, ...]) -> KeyPolicy:
    if not names:
        raise ConfigurationError(f"KeyGen.{kind}() needs at least one argument name")
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise ConfigurationError(f"KeyGen.{kind}() takes argument names (str), not {bad!r}")
    return KeyPolicy((_Step(kind, names),))


class KeyGen:
    """Ready-made key policies and fingerprints (the names beautyspot users know)."""

    @staticmethod
    def ignore(*names: str) -> KeyPolicy:
        """Leave these arguments out of the key (clients, loggers, progress bars)."""
        return _policy("ignore", names)

    @staticmethod
    def file_content(*names: str) -> KeyPolicy:
        """Key these path arguments by their file's bytes: a touch keeps the key, an edit
        changes it. The file is read on every call, in chunks."""
        return _policy("file_content", names)

    @staticmethod
    def path_stat(*names: str) -> KeyPolicy:
        """Key these path arguments by (resolved path, size, mtime_ns): cheap, but a touch
        changes the key."""
        return _policy("path_stat", names)

    @staticmethod
    def from_path_stat(path: str | os.PathLike[str]) -> str:
        """``"resolved-path:size:mtime_ns"`` of one file; usable as ``input_key_fn=`` of a
        one-argument function. The numbers are read from the right, so ``:`` in a path is
        harmless."""
        resolved, size, mtime_ns = _stat_fingerprint(path, None)
        return f"{resolved}:{size}:{mtime_ns}"

    @staticmethod
    def from_file_content(path: str | os.PathLike[str]) -> str:
        """32 hex chars of blake2b over the file's bytes; usable as ``input_key_fn=``."""
        return _content_fingerprint(path, None)
