"""The ledger's SQL: one file of named blocks per dialect (``sql/<dialect>.sql``)."""

from __future__ import annotations

from functools import cache

from ..named_blocks import load_blocks


@cache
def load_queries(dialect: str) -> dict[str, str]:
    return load_blocks(__package__, f"sql/{dialect}.sql")
