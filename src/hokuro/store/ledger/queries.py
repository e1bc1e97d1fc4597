"""The ledger's SQL: one file of named blocks per dialect (``sql/<dialect>.sql``).

Column lists come from the record itself: ``{record_columns}`` in a block becomes
:func:`hokuro.store.ledger.base.select_list` (every field, in the record's order) and
``{lookup_columns}`` the hit path's :data:`~hokuro.store.ledger.base.LOOKUP_COLUMNS`;
``{job_columns}`` and ``{run_columns}`` those of a job and a run (``job_rows.py``).
The run engine's statements are in ``sql/<dialect>_jobs.sql``.
"""

from __future__ import annotations

from functools import cache

from ..named_blocks import load_blocks
from .base import LOOKUP_COLUMNS, select_list
from .job_rows import JOB_COLUMNS, RUN_COLUMNS


@cache
def load_queries(dialect: str) -> dict[str, str]:
    lists = {"{record_columns}": select_list(), "{lookup_columns}": ", ".join(LOOKUP_COLUMNS),
             "{job_columns}": ", ".join(JOB_COLUMNS), "{run_columns}": ", ".join(RUN_COLUMNS)}
    queries = {}
    for name, sql in load_blocks(__package__, f"sql/{dialect}.sql").items():
        for placeholder, columns in lists.items():
            sql = sql.replace(placeholder, columns)
        queries[name] = sql
    return queries
