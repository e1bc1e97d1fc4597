"""The output database: opening it (any SQLAlchemy URL or Engine), and one batch's
outputs — saved per item, buffered, written in groups with their lineage.

Why outputs are buffered in Python rather than added to the ORM session at once: an item
that is ignored or fails is dropped by forgetting its buffer (its own database work, if any,
is undone by its SAVEPOINT), and the rows of many items go to the database in one
multi-row INSERT per table. Before an item's new rows are written its previous outputs are
deleted (through lineage), in the same transaction, so a re-run replaces them.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event, insert
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, NoInspectionAvailable

from ..errors import ConfigurationError
from .items import row_key
from .lineage import OutputTables, cascade, ensure_lineage, forget_items, record_outputs

__all__ = ["DEFAULT_FLUSH_EVERY", "Outputs", "for_stages", "known_engine", "missing_file",
           "open_engine", "public_url", "remember_engine"]

#: Output rows buffered before they are written (``flush_every=``).
DEFAULT_FLUSH_EVERY = 1000
#: Engines by URL (with and without password), while someone holds them: a session, or a
#: run_stage call (so its chunk jobs find the caller's Engine by the URL in their input).
_engines: weakref.WeakValueDictionary[str, Engine] = weakref.WeakValueDictionary()
_engines_lock = threading.Lock()
_sqlite_ready: weakref.WeakSet[Engine] = weakref.WeakSet()
#: The execution option that marks hokuro's own connections.
_OURS = "hokuro_stages"


def public_url(engine: Engine) -> str:
    """The engine's URL without its password: what records and chunk jobs keep. A process
    that opens it again takes the password from the driver's own sources (PostgreSQL:
    ``PGPASSWORD`` or ``~/.pgpass``)."""
    url = engine.url.set(password=None)
    database = url.database
    if (url.get_backend_name() == "sqlite" and database and database != ":memory:"
            and not database.startswith("file:") and not os.path.isabs(database)):
        url = url.set(database=os.path.abspath(database))  # replayed from another folder
    return url.render_as_string(hide_password=False)


def missing_file(url: str) -> str | None:
    """The path of a SQLite output database that does not exist (a replay must not create
    an empty one), or None."""
    parsed = make_url(url)
    database = parsed.database
    if (parsed.get_backend_name() == "sqlite" and database and database != ":memory:"
            and not database.startswith("file:") and not os.path.exists(database)):
        return database
    return None


def open_engine(db: str | URL | Engine) -> Engine:
    """An Engine for ``db``: an Engine as it is, or a URL (engines are shared per URL in a
    process). ``postgresql://`` without a driver means psycopg 3, hokuro's PostgreSQL
    driver. SQLite engines get SQLAlchemy's documented fix for SAVEPOINTs with pysqlite:
    hokuro begins its own transactions itself (``BEGIN IMMEDIATE``, so concurrent writers
    wait for each other instead of failing); other users of the engine are left alone."""
    if isinstance(db, Engine):
        engine = db
    elif isinstance(db, str | URL):
        url = make_url(db)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        text = url.render_as_string(hide_password=False)
        with _engines_lock:
            engine = _engines.get(text)
            if engine is None:
                options: dict[str, Any] = {}
                if url.get_backend_name() == "sqlite":
                    options["connect_args"] = {"timeout": 60}
                engine = create_engine(url, **options)
                _engines[text] = engine
                _engines[public_url(engine)] = engine
    else:
        raise ConfigurationError(f"db= takes a SQLAlchemy URL ('sqlite:///out.db', "
                                 f"'postgresql://...') or Engine, not {type(db).__name__}")
    if engine.dialect.name == "sqlite" and engine.dialect.driver == "pysqlite":
        _fix_sqlite(engine)
    return engine


def known_engine(url: str) -> Engine | None:
    """The engine of this process for ``url`` (as :func:`public_url` writes it), if one is
    alive."""
    with _engines_lock:
        return _engines.get(url)


def remember_engine(engine: Engine) -> None:
    """Let chunk jobs and replays of this process find ``engine`` by its public URL."""
    with _engines_lock:
        _engines.setdefault(public_url(engine), engine)


def _fix_sqlite(engine: Engine) -> None:
    """SAVEPOINTs with pysqlite need hokuro to begin transactions itself (SQLAlchemy's
    documented recipe). Only hokuro's own connections (``for_stages``) get it: the user's
    sessions on the same engine keep pysqlite's default behaviour."""
    with _engines_lock:
        if engine in _sqlite_ready:
            return
        _sqlite_ready.add(engine)

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        raw = connection.connection.dbapi_connection
        if connection.get_execution_options().get(_OURS):
            raw.isolation_level = None
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        elif raw.isolation_level is None:  # one of ours before: back to pysqlite's default
            raw.isolation_level = ""


def for_stages(engine: Engine) -> Engine:
    """``engine`` as hokuro's stages use it (same pool; see :func:`open_engine`)."""
    return engine.execution_options(**{_OURS: True})


def checked_saves(objects: tuple[Any, ...]
                  ) -> tuple[list[Any], list[tuple[Table, dict[str, Any]]]]:
    """The arguments of ``self.save``: ORM objects, or a Core table followed by rows (dicts
    of column values); anything else is refused with what to give instead."""
    if not objects:
        return [], []
    if isinstance(objects[0], Table):
        table = objects[0]
        for row in objects[1:]:
            if not isinstance(row, dict):
                raise ConfigurationError(f"save({table.name}, ...) takes rows as dicts of "
                                         f"column values, not {type(row).__name__}")
        return [], [(table, row) for row in objects[1:]]
    for obj in objects:
        try:
            mapper = sa_inspect(type(obj))
        except NoInspectionAvailable:
            mapper = None
        if mapper is None or not hasattr(mapper, "local_table"):
            raise ConfigurationError(
                f"save() takes SQLAlchemy ORM objects, or a Core table and rows "
                f"(save(table, {{...}})), not {type(obj).__name__}")
    return list(objects), []


@dataclass(slots=True)
class ItemOutputs:
    """What one item saved: ORM objects, and Core rows per table."""

    identity: str
    index: int
    orm: list[Any] = field(default_factory=list)
    rows: list[tuple[Table, dict[str, Any]]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.orm) + len(self.rows)


class Outputs:
    """One batch's outputs in one ORM session (its transaction is the batch's)."""

    def __init__(self, session: Any, stage: str, downstream: Callable[[str], list[str]],
                 tables: OutputTables, flush_every: int = DEFAULT_FLUSH_EVERY) -> None:
        self.session = session
        self.stage = stage
        self.downstream = downstream
        self.tables = tables
        self.flush_every = flush_every
        self.current: ItemOutputs | None = None
        self._kept: list[ItemOutputs] = []
        self._buffered = 0
        #: Items whose rows the database refused at a flush: (index, identity, error).
        self.refused: list[tuple[int, str, BaseException]] = []
        ensure_lineage(session.get_bind())

    # -- one item ---------------------------------------------------------------------------
    def start_item(self, identity: str, index: int) -> None:
        self.current = ItemOutputs(identity, index)

    def save(self, objects: tuple[Any, ...]) -> None:
        """``save(obj, ...)`` ORM objects, or ``save(table, row, ...)`` rows of a Core table."""
        if self.current is None:
            raise ConfigurationError("save() belongs in process(): outputs are kept per item "
                                     "(prepare and finish have no item to name them by)")
        orm, rows = checked_saves(objects)
        for obj in orm:
            self.tables.know(sa_inspect(type(obj)).local_table)
        for table, _ in rows[:1]:
            self.tables.know(table)
        self.current.orm.extend(orm)
        self.current.rows.extend(rows)

    def drop_item(self) -> None:
        self.current = None

    def keep_item(self) -> None:
        current, self.current = self.current, None
        if current is None:
            return
        self._kept.append(current)
        self._buffered += current.size
        if self._buffered >= self.flush_every:
            self.flush()

    # -- writing ----------------------------------------------------------------------------
    def flush(self) -> None:
        """Write the kept items: old outputs out, new rows and lineage in. When the database
        refuses the group (a constraint, say), each item is written alone, so only the items
        at fault fail (they are listed in ``refused``)."""
        pending, self._kept, self._buffered = self._kept, [], 0
        if not pending:
            return
        try:
            with self.session.begin_nested():
                self._write(pending)
        except DBAPIError as exc:
            if len(pending) == 1:
                self.refused.append((pending[0].index, pending[0].identity, exc))
                return
            for item in pending:
                try:
                    with self.session.begin_nested():
                        self._write([item])
                except DBAPIError as exc:
                    self.refused.append((item.index, item.identity, exc))

    def _write(self, pending: list[ItemOutputs]) -> None:
        session = self.session
        conn = session.connection()
        levels, pairs = cascade(conn, self.stage, [p.identity for p in pending],
                                self.downstream)
        for level in levels:
            self.tables.delete_rows(conn, level)
        forget_items(conn, pairs)
        lineage: dict[tuple[str, str, str], None] = {}
        orm = [obj for p in pending for obj in p.orm]
        if orm:
            session.add_all(orm)
            session.flush()
            for p in pending:
                for obj in p.orm:
                    state = sa_inspect(obj)
                    lineage[(p.identity, state.mapper.local_table.fullname,
                             row_key(state.identity))] = None
        by_table: dict[Table, list[tuple[str, dict[str, Any]]]] = {}
        for p in pending:
            for table, row in p.rows:
                by_table.setdefault(table, []).append((p.identity, row))
        for table, rows in by_table.items():
            columns = list(table.primary_key.columns)
            statement = insert(table).returning(*columns, sort_by_parameter_order=True)
            keys = session.execute(statement, [row for _, row in rows]).all()
            for (owner, _), key in zip(rows, keys, strict=True):
                lineage[(owner, table.fullname, row_key(key))] = None
        record_outputs(conn, [{"stage": self.stage, "item": item, "target": target,
                               "row_key": key} for item, target, key in lineage])

