"""Marked functions defined at module level, for the process-pool tests (tests/test_processes.py).

A spawned worker imports this module by name, so the Spot here must open the same workspace
in every process: it is read from ``HOKURO_TEST_POOL_WORKSPACE``, which the test sets before
the first import and which spawned children inherit.
"""

from __future__ import annotations

import os

import hokuro

spot = hokuro.Spot("pool", workspace=os.environ["HOKURO_TEST_POOL_WORKSPACE"])


@spot.mark(name="tests.pool.square")
def square(x: int) -> dict:
    return {"square": x * x, "pid": os.getpid()}


class Steps:
    """A marked function reached through its class, as pickle finds methods."""

    @staticmethod
    @spot.mark(name="tests.pool.cube")
    def cube(x: int) -> int:
        return x * x * x
