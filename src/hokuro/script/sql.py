"""SQL steps: a query over the step's inputs, loaded as tables, on SQLite or PostgreSQL.

The first input becomes a table named by the step's second line; later inputs become
``pipe1``, ``pipe2``, … An input is a list of rows (dicts), or a dict holding exactly one
such list (buelon's ``{'config': …, 'table_data': [...]}``): then the query's rows replace
that list in a copy of the dict, which goes on. Column types come from the values (whole
numbers, floats, text, bytes, booleans; lists and dicts as JSON; anything else as text).

Table and column names are always quoted as identifiers (a column named
``x"; DROP TABLE t; --`` is just a strange column), values are always bound parameters, and
the query is the step's own text, run as written: SQLite's arithmetic applies (``spend /
sales`` on whole numbers is integer division). An empty table has no columns to create, so
a query over an empty input is not run: its result is an empty list.

SQLite steps run in an in-memory database per job. PostgreSQL steps run in a schema of
their own (``hokuro_step_<random>``), created, used and dropped in one transaction, so
nothing stays behind even when the process is killed halfway.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from ..errors import HokuroError


class SqlInputError(HokuroError, TypeError):
    """An input of a SQL step is not rows."""


class Table:
    """One input as a table: its name, columns (with kinds) and rows."""

    def __init__(self, name: str, rows: list[dict[str, Any]], step: str) -> None:
        self.name = name
        columns: dict[str, str | None] = {}
        for row in rows:
            for key, value in row.items():
                if not isinstance(key, str):
                    raise SqlInputError(f"{step}: a column name is text, not {key!r} (in "
                                        f"table {name})")
                columns[key] = _merge(columns.get(key), _kind(value))
        self.columns = columns
        self.rows = rows

    def values(self, kinds: dict[str, str]) -> list[tuple[Any, ...]]:
        return [tuple(_value(row.get(column), self.columns[column], kinds)
                      for column in self.columns) for row in self.rows]


def tables_of(inputs: Sequence[Any], table: str, step: str
              ) -> tuple[list[Table], tuple[dict[str, Any], str] | None]:
    """The inputs as tables, and (the dict, its key) when the first input is a dict holding
    its rows (the result then goes back into a copy of it)."""
    tables: list[Table] = []
    holder = None
    for i, value in enumerate(inputs):
        name = table if i == 0 else f"pipe{i}"
        rows, where = _rows(value, name, step)
        if i == 0 and where is not None:
            holder = (value, where)
        tables.append(Table(name, rows, step))
    return tables, holder


def _rows(value: Any, name: str, step: str) -> tuple[list[dict[str, Any]], str | None]:
    if isinstance(value, list | tuple) and all(isinstance(row, dict) for row in value):
        return list(value), None
    if isinstance(value, dict):
        lists = [key for key, item in value.items() if isinstance(item, list)
                 and all(isinstance(row, dict) for row in item)]
        if len(lists) == 1:
            return value[lists[0]], lists[0]
        raise SqlInputError(
            f"{step}: its input for table {name} is a dict holding {len(lists)} lists of "
            "rows; a SQL step takes a list of rows (dicts), or a dict holding exactly one "
            "such list")
    raise SqlInputError(f"{step}: its input for table {name} is a {type(value).__name__}; "
                        "a SQL step takes a list of rows (dicts), or a dict holding exactly "
                        "one such list")


def result_of(rows: list[dict[str, Any]], holder: tuple[dict[str, Any], str] | None) -> Any:
    if holder is None:
        return rows
    original, key = holder
    copy = dict(original)
    copy[key] = rows
    return copy


def _kind(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "text"
    if isinstance(value, bytes | bytearray | memoryview):
        return "bytes"
    if isinstance(value, dict | list | tuple):
        return "json"
    return "text"


def _merge(a: str | None, b: str | None) -> str | None:
    if a is None or a == b:
        return b if a is None else a
    if b is None:
        return a
    if {a, b} <= {"int", "float", "bool"}:
        return "float" if "float" in (a, b) else "int"
    return "text"


def _value(value: Any, kind: str | None, kinds: dict[str, str]) -> Any:
    if value is None:
        return None
    if kind == "json":
        return kinds["json"](value)
    if kind == "text" and not isinstance(value, str):
        if isinstance(value, dict | list | tuple):
            return json.dumps(value, default=str)
        return str(value)
    if kind == "float" and not isinstance(value, float):
        return float(value)
    if kind == "int" and isinstance(value, bool):
        return int(value)
    if kind == "bytes":
        return bytes(value)
    return value


# -- SQLite ------------------------------------------------------------------------------------

_SQLITE_TYPES = {"int": "INTEGER", "float": "REAL", "text": "TEXT", "bytes": "BLOB",
                 "bool": "INTEGER", "json": "TEXT", None: ""}


def quote(name: str) -> str:
    """``name`` as an SQL identifier (double quotes, inner quotes doubled)."""
    if "\x00" in name:
        raise SqlInputError(f"a table or column name cannot hold a NUL character: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def run_sqlite(query: str, table: str, inputs: Sequence[Any], step: str) -> Any:
    """Run ``query`` over ``inputs`` in a new in-memory SQLite database."""
    import sqlite3

    tables, holder = tables_of(inputs, table, step)
    if any(not t.rows for t in tables):
        return result_of([], holder)
    kinds = {"json": lambda v: json.dumps(v, default=str)}
    connection = sqlite3.connect(":memory:")
    try:
        for t in tables:
            columns = ", ".join(f"{quote(c)} {_SQLITE_TYPES[k]}".rstrip()
                                for c, k in t.columns.items())
            connection.execute(f"CREATE TABLE {quote(t.name)} ({columns})")
            marks = ", ".join("?" for _ in t.columns)
            connection.executemany(f"INSERT INTO {quote(t.name)} VALUES ({marks})",
                                   t.values(kinds))
        cursor = connection.execute(query)
        names = [d[0] for d in cursor.description or ()]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        connection.commit()
    finally:
        connection.close()
    return result_of(rows, holder)


# -- PostgreSQL ---------------------------------------------------------------------------------

_PG_TYPES = {"int": "BIGINT", "float": "DOUBLE PRECISION", "text": "TEXT", "bytes": "BYTEA",
             "bool": "BOOLEAN", "json": "JSONB", None: "TEXT"}
#: The prefix of the schemas that PostgreSQL steps make and drop.
SCHEMA_PREFIX = "hokuro_step_"


def run_postgres(url: str, query: str, table: str, inputs: Sequence[Any], step: str) -> Any:
    """Run ``query`` over ``inputs`` in a schema of its own in the database at ``url``; the
    schema is created and dropped in the query's transaction."""
    import psycopg
    from psycopg import sql
    from psycopg.types.json import Jsonb

    tables, holder = tables_of(inputs, table, step)
    if any(not t.rows for t in tables):
        return result_of([], holder)
    schema = SCHEMA_PREFIX + os.urandom(8).hex()
    kinds = {"json": Jsonb}
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        cursor.execute(sql.SQL("SET LOCAL search_path TO {}, public").format(
            sql.Identifier(schema)))
        for t in tables:
            name = sql.Identifier(schema, t.name)
            columns = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(_PG_TYPES[k]))
                for c, k in t.columns.items())
            cursor.execute(sql.SQL("CREATE TABLE {} ({})").format(name, columns))
            marks = sql.SQL(", ").join(sql.Placeholder() for _ in t.columns)
            cursor.executemany(sql.SQL("INSERT INTO {} VALUES ({})").format(name, marks),
                               t.values(kinds))
        cursor.execute(query.encode())  # the step's own SQL, run as written, no parameters
        names = [d.name for d in cursor.description or ()]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()] \
            if cursor.description else []
        cursor.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        # leaving the block commits; an error rolls back, the schema with it
    return result_of(rows, holder)
