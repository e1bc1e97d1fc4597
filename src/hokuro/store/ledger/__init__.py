"""Ledgers: where records live. :func:`open_ledger` picks the backend for a path or URL."""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import ConfigurationError
from .base import TaskDB

__all__ = ["TaskDB", "open_ledger"]


def open_ledger(db: str | os.PathLike[str] | TaskDB, *, spot: str | None = None,
                read_only: bool = False, create: bool = True) -> TaskDB:
    """The ledger of Spot ``spot`` in ``db``: a SQLite path or ``sqlite:///`` URL, a
    ``postgresql://`` URL, or a :class:`TaskDB` (used as is: an object you made is its own
    namespace, and ``spot`` is not applied to it).

    A SQLite file belongs to one Spot: opening it writable for another raises
    :class:`ConfigurationError`. A PostgreSQL database holds each Spot in a schema of its
    own; without ``spot`` the ledger is its only Spot. ``read_only`` never creates, migrates
    or writes; ``create=False`` never creates a ledger (nor, on PostgreSQL, a Spot).
    """
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

        return PostgresLedger(db, spot=spot, read_only=read_only, create=create)
    if db.startswith("sqlite:///"):
        db = db[len("sqlite:///"):]
    elif "://" in db:
        raise ConfigurationError(
            f"db URL {db.split('://')[0]}:// is not supported; use a file path, sqlite:///path "
            "or postgresql://user@host/dbname"
        )
    from .sqlite import SQLiteLedger

    return SQLiteLedger(Path(db), spot=spot, read_only=read_only, create=create)
