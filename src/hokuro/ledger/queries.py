"""The ledger's SQL: one file of named blocks per dialect (``sql/<dialect>.sql``).

Column lists come from the record itself: ``{record_columns}`` and ``{lookup_columns}`` in a
block are replaced by :func:`hokuro.ledger.base.select_list`, so every SELECT returns rows in
the record's field order.
"""

from __future__ import annotations

from functools import cache

from ..named_blocks import load_blocks
from .base import LOOKUP_COLUMNS, select_list


@cache
def load_queries(dialect: str) -> dict[str, str]:
    lists = {"{record_columns}": select_list(), "{lookup_columns}": select_list(LOOKUP_COLUMNS)}
    queries = {}
    for name, sql in load_blocks(__package__, f"sql/{dialect}.sql").items():
        for placeholder, columns in lists.items():
            sql = sql.replace(placeholder, columns)
        queries[name] = sql
    return queries
