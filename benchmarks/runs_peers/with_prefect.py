"""Prefect 3: a flow whose jobs are ``task.map`` over the items, thread-pool task runner.

Prefect runs against its API; with no server configured it starts a temporary local one
(SQLite under ``PREFECT_HOME``, pointed into the case's folder). A warm-up flow runs first
so that the server's start-up is not counted. Concurrency is the runner's ``max_workers``
(1,000 for W1, 100 otherwise); each async task runs on a worker thread. W3 submits a
chain of five tasks per item (each takes the previous one's future). W4 keeps results
(``persist_result=True``) with the INPUTS cache policy, Prefect's way of not running a task
again for the same inputs, so the program run again skips the tasks that completed.
"""

from __future__ import annotations

import asyncio
import os
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


def prefect(config: dict[str, Any]):
    os.environ["PREFECT_HOME"] = os.path.join(config["folder"], "prefect-home")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    import prefect as prefect_module
    from prefect.task_runners import ThreadPoolTaskRunner

    @prefect_module.flow
    def warm_up() -> int:
        return 1

    warm_up()
    return prefect_module, ThreadPoolTaskRunner


def w1(config: dict[str, Any]) -> dict[str, Any]:
    pf, runner = prefect(config)

    @pf.task
    async def sleep_job(i: int) -> int:
        await asyncio.sleep(W1_SLEEP)
        return i

    @pf.flow(task_runner=runner(max_workers=W1_CONCURRENCY))
    def batch() -> list[int]:
        return sleep_job.map(range(W1_JOBS)).result()

    start = time.perf_counter()
    assert len(batch()) == W1_JOBS
    return {"wall_s": time.perf_counter() - start}


def w2(config: dict[str, Any]) -> dict[str, Any]:
    pf, runner = prefect(config)

    @pf.task
    def noop(i: int) -> int:
        return i

    @pf.flow(task_runner=runner(max_workers=CONCURRENCY))
    def batch() -> list[int]:
        return noop.map(range(W2_JOBS)).result()

    start = time.perf_counter()
    assert len(batch()) == W2_JOBS
    # Prefect has no queue to fill first: submitting is running.
    return {"drain_per_s": W2_JOBS / (time.perf_counter() - start)}


def w3(config: dict[str, Any]) -> dict[str, Any]:
    pf, runner = prefect(config)

    @pf.task
    def step(x: int) -> int:
        return x + 1

    @pf.flow(task_runner=runner(max_workers=CONCURRENCY))
    def pipelines() -> list[int]:
        ends = []
        for i in range(W3_ITEMS):
            future = step.submit(i)
            for _ in range(W3_STEPS - 1):
                future = step.submit(future)
            ends.append(future)
        return [f.result() for f in ends]

    start = time.perf_counter()
    assert pipelines() == [i + W3_STEPS for i in range(W3_ITEMS)]
    return {"wall_s": time.perf_counter() - start}


def w4_work(config: dict[str, Any]) -> dict[str, Any]:
    pf, runner = prefect(config)
    from prefect.cache_policies import INPUTS

    log = JobLog(config["log"])

    @pf.task(persist_result=True, cache_policy=INPUTS)
    async def crash_job(i: int) -> int:
        await asyncio.sleep(W4_SLEEP)
        log.done(i)
        return i

    @pf.flow(task_runner=runner(max_workers=CONCURRENCY))
    def batch() -> list[int]:
        return crash_job.map(range(W4_JOBS)).result()

    batch()
    return {}


if __name__ == "__main__":
    main({"w1": w1, "w2": w2, "w3": w3, "w4_work": w4_work})
