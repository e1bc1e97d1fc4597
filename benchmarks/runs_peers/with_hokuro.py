"""hokuro's run engine: ``spot.map`` / ``spot.run`` exactly as issue 10 specifies them.

Until the engine is in the tree (``hokuro.Spot`` has no ``map``), every workload reports
"not available": a figure is measured or it is not shown.

Variants: ``sqlite`` (the embedded Spot, a workspace of its own) and ``postgres`` (a
database of its own, made by the harness).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from runs_peers.workloads import (
    CONCURRENCY,
    W1_CONCURRENCY,
    W1_JOBS,
    W1_SLEEP,
    W2_JOBS,
    W3_ITEMS,
    W3_STEPS,
    W4_JOBS,
    W4_SLEEP,
    JobLog,
    main,
)


class NotAvailable(Exception):
    pass


def open_spot(config: dict[str, Any], needs: str = "map"):
    import hokuro

    if not hasattr(hokuro.Spot, needs):
        raise NotAvailable(f"hokuro.Spot.{needs} is not in this tree yet")
    db = config["db"] if config["variant"] == "postgres" else None
    return hokuro.Spot("bench-runs", db=db, workspace=config["folder"])


def w1(config: dict[str, Any]) -> dict[str, Any]:
    spot = open_spot(config)

    @spot.mark(name="sleep_job")
    async def sleep_job(i: int) -> int:
        await asyncio.sleep(W1_SLEEP)
        return i

    start = time.perf_counter()
    run = spot.map(sleep_job, range(W1_JOBS), concurrency=W1_CONCURRENCY, progress=False)
    results = run.results()
    wall = time.perf_counter() - start
    assert len(results) == W1_JOBS
    # The same run again: every job's task is done, so nothing sleeps.
    start = time.perf_counter()
    spot.map(sleep_job, range(W1_JOBS), concurrency=W1_CONCURRENCY, progress=False).results()
    return {"wall_s": wall, "rerun_s": time.perf_counter() - start}


def w2(config: dict[str, Any]) -> dict[str, Any]:
    spot = open_spot(config)

    @spot.mark(name="noop")
    def noop(i: int) -> int:
        return i

    # spot.map enqueues as it drains (windows ahead of completion): one figure, jobs/s.
    start = time.perf_counter()
    spot.map(noop, range(W2_JOBS), concurrency=CONCURRENCY, progress=False).results()
    return {"drain_per_s": W2_JOBS / (time.perf_counter() - start)}


def w3(config: dict[str, Any]) -> dict[str, Any]:
    spot = open_spot(config, needs="run")
    steps = []
    for k in range(W3_STEPS):
        async def step(x: int) -> int:
            return x + 1

        steps.append(spot.mark(step, name=f"step{k}"))
    pipe = steps[0]
    for step_k in steps[1:]:
        pipe = pipe | step_k

    start = time.perf_counter()
    run = spot.run(pipe, over=range(W3_ITEMS), concurrency=CONCURRENCY, progress=False)
    results = run.results()
    wall = time.perf_counter() - start
    assert list(results) == [i + W3_STEPS for i in range(W3_ITEMS)]
    return {"wall_s": wall}


def w4_work(config: dict[str, Any]) -> dict[str, Any]:
    spot = open_spot(config)
    log = JobLog(config["log"])

    @spot.mark(name="crash_job")
    async def crash_job(i: int) -> int:
        await asyncio.sleep(W4_SLEEP)
        log.done(i)
        return i

    # The same run name again resumes the run that was killed.
    spot.map(crash_job, range(W4_JOBS), concurrency=CONCURRENCY, progress=False,
             run="bench-crash").results()
    return {}


def guarded(fn):
    def call(config: dict[str, Any]) -> dict[str, Any]:
        try:
            return fn(config)
        except NotAvailable as exc:
            return {"status": f"not available ({exc})"}

    return call


if __name__ == "__main__":
    main({"w1": guarded(w1), "w2": guarded(w2), "w3": guarded(w3),
          "w4_work": guarded(w4_work)})
