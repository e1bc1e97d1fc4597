"""What a failure of a SQLite ledger file means, said with the file's path and what to do.

SQLite's own messages ("database disk image is malformed", "unable to open database file")
name neither the file nor a way out. :func:`ledger_error` turns them, and the OSError of
making the ledger's folder, into a :class:`~hokuro.errors.LedgerError`. Nothing here writes:
a damaged file or one that is not a database is reported and left exactly as it was.
"""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ...errors import LedgerError


def ledger_error(exc: sqlite3.Error | OSError, path: Path) -> LedgerError:
    """``exc``, raised while using the ledger file at ``path``, as the error a person reads."""
    if isinstance(exc, OSError):
        return _folder_error(exc, path)
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if name.startswith("SQLITE_CORRUPT") or "malformed" in text:
        return LedgerError(
            f"the ledger {path} is damaged (SQLite: {text}); hokuro changed nothing in it. "
            f"Keep a copy, then recover what SQLite can still read "
            f"(sqlite3 {path} .recover | sqlite3 {path.with_suffix('.recovered.db')}), or "
            "move the file aside to start an empty ledger")
    if name.startswith("SQLITE_NOTADB") or "not a database" in text:
        return LedgerError(
            f"{path} is not a SQLite database (SQLite: {text}); hokuro changed nothing in it. "
            "Point db= (or the Spot name) at a hokuro ledger, or move that file away")
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
        return LedgerError(f"cannot open the ledger {path} (SQLite: {text}): "
                           f"{_why_not_open(path)}")
    if name.startswith("SQLITE_READONLY") or "readonly" in text:
        return LedgerError(
            f"cannot write the ledger {path} (SQLite: {text}): the file or its folder is "
            "read-only for this user; make both writable, or only read it (hokuro list, "
            "show, stats)")
    if name.startswith(("SQLITE_IOERR", "SQLITE_FULL")):
        return LedgerError(f"cannot read or write the ledger {path} (SQLite: {text}): check "
                           "the disk and its free space")
    return LedgerError(f"SQLite ledger {path}: {text}")


def _why_not_open(path: Path) -> str:
    folder = path.parent
    if path.is_dir():
        return f"{path} is a folder; give db= a file path"
    if not folder.is_dir():
        return f"its folder {folder} does not exist; create it or fix the path"
    if not os.access(folder, os.W_OK | os.X_OK):
        return (f"the folder {folder} is not writable by this user; choose a writable "
                "workspace= or db= path, or make the folder writable")
    return (f"check that the folder {folder} is writable by this user (a read-only mount "
            "counts) and that this process has not run out of open files (ulimit -n)")


def _folder_error(exc: OSError, path: Path) -> LedgerError:
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        return LedgerError(f"cannot make the folder of the ledger {path}: {blocker} is a file, "
                           "not a folder; choose another db= path or workspace=")
    if isinstance(exc, PermissionError) or exc.errno == 30:  # EROFS: read-only file system
        return LedgerError(
            f"cannot make the folder of the ledger {path} ({exc.strerror}: {exc.filename}); "
            "choose a writable workspace= or db= path, or make that folder writable")
    return LedgerError(f"cannot make the folder of the ledger {path}: {exc}")


def translate_errors(cls: type, *, calls: Iterable[str], iterators: Iterable[str]) -> None:
    """Make the named methods of ``cls`` (a ledger with a ``path``) raise :func:`ledger_error`
    instead of sqlite3's errors; ``iterators`` return iterators that fail while iterated."""
    for name in calls:
        setattr(cls, name, _translating(getattr(cls, name)))
    for name in iterators:
        setattr(cls, name, _translating_iterator(getattr(cls, name)))


def _translating(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def translated(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise ledger_error(exc, self.path) from exc

    return translated


def _translating_iterator(method: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    @functools.wraps(method)
    def translated(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        try:
            yield from method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise ledger_error(exc, self.path) from exc

    return translated
