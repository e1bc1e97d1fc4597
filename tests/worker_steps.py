"""Steps that worker processes import in the tests of hokuro worker (tests/test_workers.py).

The Spot comes from the environment, so the test and its worker processes open the same
one: ``HOKURO_TEST_WORKER_DB`` (a database URL, or empty for the embedded default under
``HOKURO_TEST_WORKER_HOME``) and ``HOKURO_TEST_WORKER_LEASE`` (seconds). Each execution
appends ``<step> <input> <pid>`` to ``executions.txt`` in ``HOKURO_TEST_WORKER_HOME``.
With ``HOKURO_TEST_BREAK_IMPORT=1`` the module ``worker_steps_fragile`` raises on import.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import hokuro

HOME = Path(os.environ.get("HOKURO_TEST_WORKER_HOME", "."))
spot = hokuro.Spot("wk", db=os.environ.get("HOKURO_TEST_WORKER_DB") or None,
                   workspace=HOME / ".hokuro",
                   lease=float(os.environ.get("HOKURO_TEST_WORKER_LEASE", "60")))


def executions() -> list[list[str]]:
    path = HOME / "executions.txt"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def _executed(step: str, x: object) -> None:
    with open(HOME / "executions.txt", "a") as handle:
        handle.write(f"{step} {x} {os.getpid()}\n")


@spot.mark
def double(x: int) -> int:
    _executed("double", x)
    return x * 2


@spot.mark
async def inc(x: int) -> int:
    _executed("inc", x)
    await asyncio.sleep(0.01)
    return x + 1


@spot.mark
def slow(x: int) -> str:
    """Says it started (a file ``started-<x>``), then takes HOKURO_TEST_SLOW seconds."""
    _executed("slow", x)
    (HOME / f"started-{x}").write_text(str(os.getpid()))
    time.sleep(float(os.environ.get("HOKURO_TEST_SLOW", "0")))
    return f"{x} by {os.getpid()}"


@spot.mark(scope="a")
def in_a(x: int) -> int:
    _executed("in_a", x)
    return x


@spot.mark(scope="b")
def in_b(x: int) -> int:
    _executed("in_b", x)
    return x


@spot.mark
async def note(x: int) -> None:
    """Returns None: passes its input on."""
    _executed("note", x)
    await asyncio.sleep(0.01)


def items(n: int = 5) -> list[int]:
    return list(range(n))


doubled = double | inc
