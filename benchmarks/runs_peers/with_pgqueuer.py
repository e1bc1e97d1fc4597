"""pgqueuer on PostgreSQL: jobs enqueued in batches, a QueueManager drains them.

Settings: the asyncpg driver, pgqueuer's first choice (its psycopg driver, which shares one
connection between LISTEN and the queries, took 19 s for 3,000 W1 jobs here); dequeue batches of
100 with ``max_concurrent_tasks=1000`` for W1, batches of 50 with 100 in flight for W2-W4
(pgqueuer wants at least twice the batch in flight). W3 chains the steps the way pgqueuer
does: a step's job enqueues the next step's job. W4's restarted worker re-picks the killed
worker's jobs once their heartbeat is 5 s old (``heartbeat_timeout``; the default is 30 s).
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
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


async def connect(config: dict[str, Any]):
    import asyncpg
    from pgqueuer import AsyncpgDriver, Queries

    return Queries(AsyncpgDriver(await asyncpg.connect(config["db"])))


async def enqueue(queries, entrypoint: str, ids) -> None:
    ids = list(ids)
    await queries.enqueue([entrypoint] * len(ids), [b"%d" % i for i in ids], [0] * len(ids))


async def drain(qm, batch_size: int, concurrency: int) -> None:
    from pgqueuer.types import QueueExecutionMode

    await qm.run(batch_size=batch_size, max_concurrent_tasks=concurrency,
                 mode=QueueExecutionMode.drain, dequeue_timeout=timedelta(seconds=1))


def w1(config: dict[str, Any]) -> dict[str, Any]:
    async def go() -> float:
        from pgqueuer import QueueManager

        queries = await connect(config)
        await queries.install()
        qm = QueueManager(queries)

        @qm.entrypoint("sleep")
        async def sleep_job(job) -> None:
            await asyncio.sleep(W1_SLEEP)

        start = time.perf_counter()
        await enqueue(queries, "sleep", range(W1_JOBS))
        await drain(qm, 100, W1_CONCURRENCY)
        return time.perf_counter() - start

    return {"wall_s": asyncio.run(go())}


def w2(config: dict[str, Any]) -> dict[str, Any]:
    async def go() -> tuple[float, float]:
        from pgqueuer import QueueManager

        queries = await connect(config)
        await queries.install()
        qm = QueueManager(queries)
        done = 0

        @qm.entrypoint("noop")
        async def noop(job) -> None:
            nonlocal done
            done += 1

        start = time.perf_counter()
        await enqueue(queries, "noop", range(W2_JOBS))
        enqueued = time.perf_counter()
        await drain(qm, CONCURRENCY // 2, CONCURRENCY)
        assert done == W2_JOBS, done
        return enqueued - start, time.perf_counter() - enqueued

    enqueue_s, drain_s = asyncio.run(go())
    return {"enqueue_per_s": W2_JOBS / enqueue_s, "drain_per_s": W2_JOBS / drain_s}


def w3(config: dict[str, Any]) -> dict[str, Any]:
    async def go() -> float:
        from pgqueuer import QueueManager

        queries = await connect(config)
        await queries.install()
        # The steps enqueue their successors on a connection of their own.
        producer = await connect(config)
        qm = QueueManager(queries)
        finished: list[int] = []

        def register(k: int) -> None:
            @qm.entrypoint(f"step{k}")
            async def step(job) -> None:
                x = int(job.payload) + 1
                if k + 1 < W3_STEPS:
                    await producer.enqueue(f"step{k + 1}", b"%d" % x)
                else:
                    finished.append(x)

        for k in range(W3_STEPS):
            register(k)
        start = time.perf_counter()
        await enqueue(producer, "step0", range(W3_ITEMS))
        runner = asyncio.create_task(drain(qm, CONCURRENCY // 2, CONCURRENCY))
        await wait_for(lambda: len(finished) == W3_ITEMS, timeout=600)
        wall = time.perf_counter() - start
        qm.shutdown.set()
        await runner
        assert sorted(finished) == [i + W3_STEPS for i in range(W3_ITEMS)]
        return wall

    return {"wall_s": asyncio.run(go())}


def w4_enqueue(config: dict[str, Any]) -> dict[str, Any]:
    async def go() -> None:
        queries = await connect(config)
        await queries.install()
        await enqueue(queries, "crash", range(W4_JOBS))

    asyncio.run(go())
    return {}


def w4_work(config: dict[str, Any]) -> dict[str, Any]:
    async def go() -> None:
        from pgqueuer import QueueManager

        log = JobLog(config["log"])
        qm = QueueManager(await connect(config))

        @qm.entrypoint("crash")
        async def crash_job(job) -> None:
            await asyncio.sleep(W4_SLEEP)
            log.done(int(job.payload))

        await qm.run(batch_size=CONCURRENCY // 2, max_concurrent_tasks=CONCURRENCY,
                     dequeue_timeout=timedelta(seconds=1),
                     heartbeat_timeout=timedelta(seconds=5))

    asyncio.run(go())
    return {}


if __name__ == "__main__":
    main({"w1": w1, "w2": w2, "w3": w3, "w4_enqueue": w4_enqueue, "w4_work": w4_work})
