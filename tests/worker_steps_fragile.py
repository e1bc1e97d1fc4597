"""A step whose module raises on import in a worker started with HOKURO_TEST_BREAK_IMPORT=1
(tests/test_workers.py)."""

from __future__ import annotations

import os

from worker_steps import _executed, spot

if os.environ.get("HOKURO_TEST_BREAK_IMPORT") == "1":
    raise RuntimeError("this module refuses to be imported here")


@spot.mark
def fragile(x: int) -> int:
    _executed("fragile", x)
    return x
