"""Named SQL blocks, one file per dialect (``sql/<dialect>.sql``).

A block starts with a line ``-- name: <query_name>`` and runs to the next such line.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@cache
def load_queries(dialect: str) -> dict[str, str]:
    text = resources.files(__package__).joinpath("sql", f"{dialect}.sql").read_text("utf-8")
    parts = _HEADER.split(text)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}
