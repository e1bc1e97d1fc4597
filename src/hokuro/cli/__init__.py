"""The ``hokuro`` command line: thin click commands over library calls."""

from __future__ import annotations

from .app import main

__all__ = ["main"]
