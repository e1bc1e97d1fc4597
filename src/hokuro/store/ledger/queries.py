"""The ledger's SQL: one file of named blocks per dialect (``sql/<dialect>.sql``).

Column lists come from the record itself: ``{record_columns}`` in a block becomes
:func:`hokuro.store.ledger.base.select_list` (every field, in the record's order) and
``{lookup_columns}`` the hit path's :data:`~hokuro.store.ledger.base.LOOKUP_COLUMNS`.
"""

from __future__ import annotations

from functools import cache

from ..named_blocks import load_blocks
from .base import LOOKUP_COLUMNS, select_list


@cache
def load_queries(dialect: str) -> dict[str, str]:
    lists = {"{record_columns}": select_list(), "{lookup_columns}": ", ".join(LOOKUP_COLUMNS)}
    queries = {}
    for name, sql in load_blocks(__package__, f"sql/{dialect}.sql").items():
        for placeholder, columns in lists.items():
            sql = sql.replace(placeholder, columns)
        queries[name] = sql
    return queries
