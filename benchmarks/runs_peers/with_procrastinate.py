"""procrastinate on PostgreSQL: tasks deferred in batches, an async worker drains them.

Settings: the psycopg connector with a pool of up to 20 connections (its default of 4 starves
a worker running 1,000 jobs), ``run_worker_async(concurrency=..., wait=False)`` so the worker
returns once the queue is drained, LISTEN/NOTIFY on. W3 chains the steps: a step's job
defers the next step's job. W4: procrastinate does not re-run a dead worker's jobs by
itself; its documented recovery is to retry stalled jobs (``get_stalled_jobs`` +
``retry_job``), which the restarted program does every second, with heartbeats every second
and a worker counted as stalled after 3 s without one.
"""

from __future__ import annotations

import asyncio
import contextlib
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
    wait_for,
)

WORKER = {"install_signal_handlers": False, "fetch_job_polling_interval": 0.5}


def make_app(config: dict[str, Any]):
    import procrastinate

    return procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=config["db"], min_size=4, max_size=20))


def w1(config: dict[str, Any]) -> dict[str, Any]:
    app = make_app(config)

    @app.task(name="sleep_job")
    async def sleep_job(i: int) -> None:
        await asyncio.sleep(W1_SLEEP)

    async def go() -> float:
        async with app.open_async():
            await app.schema_manager.apply_schema_async()
            start = time.perf_counter()
            await sleep_job.batch_defer_async(*({"i": i} for i in range(W1_JOBS)))
            await app.run_worker_async(concurrency=W1_CONCURRENCY, wait=False, **WORKER)
            return time.perf_counter() - start

    return {"wall_s": asyncio.run(go())}


def w2(config: dict[str, Any]) -> dict[str, Any]:
    app = make_app(config)
    done = 0

    @app.task(name="noop")
    async def noop(i: int) -> None:
        nonlocal done
        done += 1

    async def go() -> tuple[float, float]:
        async with app.open_async():
            await app.schema_manager.apply_schema_async()
            start = time.perf_counter()
            await noop.batch_defer_async(*({"i": i} for i in range(W2_JOBS)))
            enqueued = time.perf_counter()
            await app.run_worker_async(concurrency=CONCURRENCY, wait=False, **WORKER)
            assert done == W2_JOBS, done
            return enqueued - start, time.perf_counter() - enqueued

    enqueue_s, drain_s = asyncio.run(go())
    return {"enqueue_per_s": W2_JOBS / enqueue_s, "drain_per_s": W2_JOBS / drain_s}


def w3(config: dict[str, Any]) -> dict[str, Any]:
    app = make_app(config)
    finished: list[int] = []
    steps = []

    def register(k: int) -> None:
        @app.task(name=f"step{k}")
        async def step(x: int) -> None:
            if k + 1 < W3_STEPS:
                await steps[k + 1].defer_async(x=x + 1)
            else:
                finished.append(x + 1)

        steps.append(step)

    for k in range(W3_STEPS):
        register(k)

    async def go() -> float:
        async with app.open_async():
            await app.schema_manager.apply_schema_async()
            start = time.perf_counter()
            await steps[0].batch_defer_async(*({"x": i} for i in range(W3_ITEMS)))
            worker = asyncio.create_task(
                app.run_worker_async(concurrency=CONCURRENCY, wait=True, **WORKER))
            await wait_for(lambda: len(finished) == W3_ITEMS, timeout=600)
            wall = time.perf_counter() - start
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            assert sorted(finished) == [i + W3_STEPS for i in range(W3_ITEMS)]
            return wall

    return {"wall_s": asyncio.run(go())}


def crash_app(config: dict[str, Any]):
    app = make_app(config)
    log = JobLog(config["log"])

    @app.task(name="crash_job")
    async def crash_job(i: int) -> None:
        await asyncio.sleep(W4_SLEEP)
        log.done(i)

    return app, crash_job


def w4_enqueue(config: dict[str, Any]) -> dict[str, Any]:
    app, crash_job = crash_app(config)

    async def go() -> None:
        async with app.open_async():
            await app.schema_manager.apply_schema_async()
            await crash_job.batch_defer_async(*({"i": i} for i in range(W4_JOBS)))

    asyncio.run(go())
    return {}


def w4_work(config: dict[str, Any]) -> dict[str, Any]:
    app, _ = crash_app(config)

    async def retry_stalled() -> None:
        while True:
            for job in await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=3):
                await app.job_manager.retry_job(job)
            await asyncio.sleep(1)

    async def go() -> None:
        async with app.open_async():
            retrier = asyncio.create_task(retry_stalled())
            await app.run_worker_async(concurrency=CONCURRENCY, wait=True,
                                       update_heartbeat_interval=1,
                                       stalled_worker_timeout=3, **WORKER)
            retrier.cancel()

    asyncio.run(go())
    return {}


if __name__ == "__main__":
    main({"w1": w1, "w2": w2, "w3": w3, "w4_enqueue": w4_enqueue, "w4_work": w4_work})
