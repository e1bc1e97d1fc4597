"""Named text blocks: SQL and Lua kept in files, loaded by name.

A block starts with a line ``-- name: <block_name>`` (a comment in SQL and in Lua alike) and
runs to the next such line, so every backend's statements live in one file, not in Python.
"""

from __future__ import annotations

import re
import sys
from functools import cache
from pathlib import Path

_HEADER = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@cache
def load_blocks(package: str, path: str) -> dict[str, str]:
    """The blocks of the file ``path`` (``/``-separated) inside ``package``, by name."""
    # The package's own folder (importlib.resources would cost every `import hokuro` ~5 ms;
    # hokuro is installed as files, never zipped).
    folder = Path(sys.modules[package].__file__).parent  # type: ignore[arg-type]
    text = folder.joinpath(*path.split("/")).read_text("utf-8")
    parts = _HEADER.split(text)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}
