"""The lineage table in the output database: which input item of which stage made which
output rows, and the statements that read, replace and delete through it.

``hokuro_lineage(stage, item, target, row_key)``: one row per output row, keyed by all four
(the primary key's prefix ``(stage, item)`` serves every lookup). ``target`` is the output's
table (``schema.name`` when it has a schema) and ``row_key`` its primary key as JSON.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import (
    ARRAY,
    Column,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    tuple_,
)
from sqlalchemy.schema import sort_tables

from ..errors import ConfigurationError
from .items import row_identity

__all__ = ["LINEAGE", "OutputTables", "cascade", "ensure_lineage", "forget_items",
           "outputs_of", "record_outputs"]

_metadata = MetaData()
LINEAGE = Table(
    "hokuro_lineage", _metadata,
    Column("stage", String(255), primary_key=True),
    Column("item", String(512), primary_key=True),
    Column("target", String(255), primary_key=True),
    Column("row_key", String(255), primary_key=True),
)
#: Values per IN list (SQLite allows 32,766 bound values; PostgreSQL 65,535).
CHUNK = 500
_ready: weakref.WeakSet[Any] = weakref.WeakSet()
_ready_lock = threading.Lock()


def ensure_lineage(engine: Any) -> None:
    """Create the lineage table in ``engine``'s database if it is not there (once per
    connection pool)."""
    with _ready_lock:
        if engine.pool in _ready:
            return
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Processes starting at once (workers, Celery workers) would race in
                # CREATE TABLE IF NOT EXISTS (a duplicate key in pg_type): one at a time, for
                # the rest of this transaction.
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('hokuro_lineage'))"))
            _metadata.create_all(conn, checkfirst=True)
        _ready.add(engine.pool)


def _chunks(values: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


def _parts(conn: Any, values: list[Any]) -> Iterator[list[Any]]:
    """PostgreSQL takes any number of values in one array parameter; others get IN lists
    of at most CHUNK values."""
    if conn.dialect.name == "postgresql":
        if values:
            yield values
        return
    yield from _chunks(values)


def member_of(conn: Any, column: Any, values: list[Any]) -> Any:
    """``column IN values``: on PostgreSQL ``column IN (SELECT unnest(:array))`` — one
    parameter, where a long IN list costs psycopg a parse of a statement with thousands of
    placeholders. Not ``column = ANY(:array)``: once psycopg prepares the statement (its
    fifth run) PostgreSQL may plan it generically, the array unknown, and then filter every
    row of the stage against the whole array (a rerun of 5,000 items slowed down by each
    repetition, from 1.0 to 4.7 s); a join with the unnested array seeks each value."""
    if conn.dialect.name == "postgresql":
        return column.in_(select(func.unnest(bindparam(None, values,
                                                        type_=ARRAY(column.type)))))
    return column.in_(values)


def outputs_of(conn: Any, pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str, str, str]]:
    """Lineage rows ``(stage, item, target, row_key)`` of those (stage, item) pairs."""
    by_stage: dict[str, list[str]] = {}
    for stage, item in pairs:
        by_stage.setdefault(stage, []).append(item)
    found: list[tuple[str, str, str, str]] = []
    for stage, items in by_stage.items():
        for part in _parts(conn, sorted(set(items))):
            query = select(LINEAGE.c.stage, LINEAGE.c.item, LINEAGE.c.target,
                           LINEAGE.c.row_key).where(LINEAGE.c.stage == stage,
                                                    member_of(conn, LINEAGE.c.item, part))
            found.extend(tuple(row) for row in conn.execute(query))
    return found


def forget_items(conn: Any, pairs: Iterable[tuple[str, str]]) -> None:
    """Delete the lineage rows of those (stage, item) pairs."""
    by_stage: dict[str, list[str]] = {}
    for stage, item in pairs:
        by_stage.setdefault(stage, []).append(item)
    for stage, items in by_stage.items():
        for part in _parts(conn, sorted(set(items))):
            conn.execute(delete(LINEAGE).where(LINEAGE.c.stage == stage,
                                               member_of(conn, LINEAGE.c.item, part)))


def record_outputs(conn: Any, rows: list[dict[str, str]]) -> None:
    """Insert lineage rows: with psycopg by COPY (no statement to build and parse), else in
    multi-row INSERTs."""
    if not rows:
        return
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        raw = conn.connection.dbapi_connection
        with raw.cursor() as cursor, cursor.copy(
                "COPY hokuro_lineage (stage, item, target, row_key) FROM STDIN") as copy:
            for row in rows:
                copy.write_row((row["stage"], row["item"], row["target"], row["row_key"]))
        return
    conn.execute(insert(LINEAGE), rows)


class OutputTables:
    """The tables outputs go to, by name: those seen in saves, others reflected from the
    database (an old output's table the current code no longer saves to)."""

    def __init__(self) -> None:
        self._tables: dict[str, Table] = {}
        self._reflected = MetaData()

    def know(self, table: Table) -> None:
        if not table.primary_key.columns:
            raise ConfigurationError(
                f"table {table.fullname} has no primary key; a stage's outputs need one "
                "(lineage names each output row by it)")
        self._tables.setdefault(table.fullname, table)

    def table(self, conn: Any, name: str) -> Table:
        table = self._tables.get(name)
        if table is None:
            schema, _, bare = name.rpartition(".")
            table = Table(bare, self._reflected, schema=schema or None, autoload_with=conn)
            self.know(table)
        return table

    def delete_rows(self, conn: Any, rows: list[tuple[str, str]]) -> None:
        """Delete output rows ``(target, row_key)``: tables that others refer to last."""
        by_target: dict[str, list[str]] = {}
        for target, key in rows:
            by_target.setdefault(target, []).append(key)
        tables = {name: self.table(conn, name) for name in by_target}
        order = list(reversed(sort_tables(tables.values())))
        for table in order:
            keys = [json.loads(k) for k in by_target[table.fullname]]
            columns = list(table.primary_key.columns)
            # One array parameter for a one-column key on PostgreSQL; a composite key goes
            # in IN lists of tuples, CHUNK at a time (PostgreSQL allows 65,535 parameters).
            for part in _parts(conn, keys) if len(columns) == 1 else _chunks(keys):
                if len(columns) == 1:
                    where = member_of(conn, columns[0], [k[0] for k in part])
                else:
                    where = tuple_(*columns).in_([tuple(k) for k in part])
                conn.execute(delete(table).where(where))


def cascade(conn: Any, stage: str, items: list[str], downstream: Any
            ) -> tuple[list[list[tuple[str, str]]], list[tuple[str, str]]]:
    """Everything to remove when ``items`` of ``stage`` are replaced: their output rows, and
    the outputs that triggered stages made from those rows (recursively), one list per level
    of the chain, deepest first; and the (stage, item) lineage pairs to forget."""
    levels: list[list[tuple[str, str]]] = []
    pairs: list[tuple[str, str]] = [(stage, item) for item in items]
    level = [(stage, item) for item in items]
    seen = set(level)
    while level:
        found = outputs_of(conn, level)
        if found:
            levels.insert(0, [(target, key) for _, _, target, key in found])
        level = []
        for name, _, target, key in found:
            for below in downstream(name):
                pair = (below, row_identity(target, key))
                if pair not in seen:
                    seen.add(pair)
                    level.append(pair)
        pairs.extend(level)
    return levels, pairs
