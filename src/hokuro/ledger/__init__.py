"""Ledgers: where records live. :func:`open_ledger` picks the backend for a path or URL."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigurationError
from .base import TaskDB

__all__ = ["TaskDB", "open_ledger"]


def open_ledger(db: str | os.PathLike[str] | TaskDB, *, read_only: bool = False) -> TaskDB:
    """A ledger for ``db``: a :class:`TaskDB` (used as is), a SQLite path or ``sqlite:///``
    URL, or a ``postgresql://`` URL."""
    if isinstance(db, TaskDB):
        return db
    if isinstance(db, os.PathLike):
        db = os.fspath(db)
    if not isinstance(db, str):
        raise ConfigurationError(
            f"db= takes a path, a URL or a TaskDB object, not {type(db).__name__}"
        )
    if db.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresLedger

        return PostgresLedger(db, read_only=read_only)
    if db.startswith("sqlite:///"):
        db = db[len("sqlite:///"):]
    elif "://" in db:
        raise ConfigurationError(
            f"db URL {db.split('://')[0]}:// is not supported; use a file path, sqlite:///path "
            "or postgresql://user@host/dbname"
        )
    from .sqlite import SQLiteLedger

    return SQLiteLedger(Path(db), read_only=read_only)
