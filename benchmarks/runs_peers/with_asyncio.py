"""The baseline: plain asyncio with a Semaphore, nothing kept. What an ideal engine costs."""

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


async def gather_limited(fn, items, concurrency: int) -> list:
    gate = asyncio.Semaphore(concurrency)

    async def one(item):
        async with gate:
            return await fn(item)

    return await asyncio.gather(*(one(i) for i in items))


async def sleep_job(i: int) -> int:
    await asyncio.sleep(W1_SLEEP)
    return i


def w1(config: dict[str, Any]) -> dict[str, Any]:
    start = time.perf_counter()
    results = asyncio.run(gather_limited(sleep_job, range(W1_JOBS), W1_CONCURRENCY))
    assert len(results) == W1_JOBS
    return {"wall_s": time.perf_counter() - start}


def w2(config: dict[str, Any]) -> dict[str, Any]:
    async def drain() -> tuple[float, float]:
        queue: asyncio.Queue[int] = asyncio.Queue()
        start = time.perf_counter()
        for i in range(W2_JOBS):
            queue.put_nowait(i)
        enqueued = time.perf_counter()

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return enqueued - start, time.perf_counter() - enqueued

    enqueue_s, drain_s = asyncio.run(drain())
    return {"enqueue_per_s": W2_JOBS / enqueue_s, "drain_per_s": W2_JOBS / drain_s}


async def step(x: int) -> int:
    return x + 1


def w3(config: dict[str, Any]) -> dict[str, Any]:
    async def pipeline(x: int) -> int:
        for _ in range(W3_STEPS):
            x = await step(x)
        return x

    start = time.perf_counter()
    results = asyncio.run(gather_limited(pipeline, range(W3_ITEMS), CONCURRENCY))
    assert results == [i + W3_STEPS for i in range(W3_ITEMS)]
    return {"wall_s": time.perf_counter() - start}


def w4_work(config: dict[str, Any]) -> dict[str, Any]:
    # Nothing is kept: a restart does every job again.
    log = JobLog(config["log"])

    async def job(i: int) -> None:
        await asyncio.sleep(W4_SLEEP)
        log.done(i)

    asyncio.run(gather_limited(job, range(W4_JOBS), CONCURRENCY))
    return {}


if __name__ == "__main__":
    main({"w1": w1, "w2": w2, "w3": w3, "w4_work": w4_work})
