"""DBOS (Transact) on SQLite or PostgreSQL, two ways: steps, or queued workflows.

``steps-*``: one workflow per batch whose jobs are ``@DBOS.step`` calls gathered under a
Semaphore (the concurrency); W3 runs a workflow of five steps per item, 100 items at once.
``queue-*``: every job is a workflow enqueued on a queue registered with
``worker_concurrency`` = the concurrency and a 100 ms polling interval (the default is
1 s). Enqueuing goes one workflow at a time (DBOS has no batch enqueue) while the queue
already runs, so W2's "drained" figure for queues is jobs / time from the first enqueue to
the last completion. Completion is counted in the process (jobs run here), not by polling
20,000 handles. W4: DBOS recovers a dead process's PENDING workflows when the same
program launches again; the queued variant enqueues from a process that listens to no
queue, so nothing runs before the worker starts.
"""

from __future__ import annotations

import asyncio
import os
import threading
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

CRASH_WORKFLOW = "bench-crash"


class Done:
    """Completions counted across DBOS's threads and event loops."""

    def __init__(self) -> None:
        self.n = 0
        self.lock = threading.Lock()

    def add(self) -> None:
        with self.lock:
            self.n += 1


def configure(config: dict[str, Any]) -> tuple[str, Any]:
    from dbos import DBOS

    kind, backend = config["variant"].split("-")
    url = (f"sqlite:///{os.path.join(config['folder'], 'dbos.sqlite')}"
           if backend == "sqlite" else config["db"])
    DBOS(config={"name": "bench-runs", "system_database_url": url, "log_level": "WARNING"})
    return kind, DBOS


async def register_queue(dbos_cls, concurrency: int):
    return await dbos_cls.register_queue_async("bench", worker_concurrency=concurrency,
                                               polling_interval_sec=0.1)


async def gather_limited(fn, items, concurrency: int) -> list:
    gate = asyncio.Semaphore(concurrency)

    async def one(item):
        async with gate:
            return await fn(item)

    return await asyncio.gather(*(one(i) for i in items))


def batch(config: dict[str, Any], jobs: int, concurrency: int, body) -> dict[str, float]:
    """Run ``jobs`` jobs of ``body`` the variant's way: (enqueue seconds, total seconds)."""
    kind, DBOS = configure(config)
    done = Done()

    @DBOS.step()
    async def job_step(i: int) -> int:
        await body(i)
        done.add()
        return i

    @DBOS.workflow()
    async def fan_out(n: int) -> int:
        await gather_limited(job_step, range(n), concurrency)
        return n

    @DBOS.workflow()
    async def job_workflow(i: int) -> int:
        await body(i)
        done.add()
        return i

    async def go() -> dict[str, float]:
        DBOS.launch()
        start = time.perf_counter()
        if kind == "steps":
            await fan_out(jobs)
            return {"enqueue_s": 0.0, "total_s": time.perf_counter() - start}
        queue = await register_queue(DBOS, concurrency)
        start = time.perf_counter()
        for i in range(jobs):
            await queue.enqueue_async(job_workflow, i)
        enqueued = time.perf_counter() - start
        await wait_for(lambda: done.n >= jobs, timeout=600)
        return {"enqueue_s": enqueued, "total_s": time.perf_counter() - start}

    return asyncio.run(go())


async def sleep_body(i: int) -> None:
    await asyncio.sleep(W1_SLEEP)


async def noop_body(i: int) -> None:
    return None


def w1(config: dict[str, Any]) -> dict[str, Any]:
    return {"wall_s": batch(config, W1_JOBS, W1_CONCURRENCY, sleep_body)["total_s"]}


def w2(config: dict[str, Any]) -> dict[str, Any]:
    figures = batch(config, W2_JOBS, CONCURRENCY, noop_body)
    enqueue = W2_JOBS / figures["enqueue_s"] if figures["enqueue_s"] else None
    return {"enqueue_per_s": enqueue, "drain_per_s": W2_JOBS / figures["total_s"]}


def w3(config: dict[str, Any]) -> dict[str, Any]:
    kind, DBOS = configure(config)
    done = Done()

    @DBOS.step()
    async def step(x: int) -> int:
        return x + 1

    @DBOS.workflow()
    async def pipeline(x: int) -> int:
        for _ in range(W3_STEPS):
            x = await step(x)
        done.add()
        return x

    async def go() -> float:
        DBOS.launch()
        start = time.perf_counter()
        if kind == "steps":
            results = await gather_limited(pipeline, range(W3_ITEMS), CONCURRENCY)
            assert results == [i + W3_STEPS for i in range(W3_ITEMS)]
        else:
            queue = await register_queue(DBOS, CONCURRENCY)
            start = time.perf_counter()
            for i in range(W3_ITEMS):
                await queue.enqueue_async(pipeline, i)
            await wait_for(lambda: done.n >= W3_ITEMS, timeout=600)
        return time.perf_counter() - start

    return {"wall_s": asyncio.run(go())}


def crash_program(config: dict[str, Any]):
    kind, DBOS = configure(config)
    log = JobLog(config["log"])

    @DBOS.step()
    async def crash_step(i: int) -> int:
        await asyncio.sleep(W4_SLEEP)
        log.done(i)
        return i

    @DBOS.workflow()
    async def crash_all(n: int) -> int:
        await gather_limited(crash_step, range(n), CONCURRENCY)
        return n

    @DBOS.workflow()
    async def crash_job(i: int) -> int:
        await asyncio.sleep(W4_SLEEP)
        log.done(i)
        return i

    return kind, DBOS, crash_all, crash_job


def w4_enqueue(config: dict[str, Any]) -> dict[str, Any]:
    kind, DBOS, _, crash_job = crash_program(config)
    if kind == "steps":
        return {}

    async def go() -> None:
        DBOS.listen_queues(["nothing-runs-here"])
        DBOS.launch()
        queue = await register_queue(DBOS, CONCURRENCY)
        for i in range(W4_JOBS):
            await queue.enqueue_async(crash_job, i)

    asyncio.run(go())
    return {}


def w4_work(config: dict[str, Any]) -> dict[str, Any]:
    from dbos import SetWorkflowID

    kind, DBOS, crash_all, _ = crash_program(config)

    async def go() -> None:
        DBOS.launch()  # recovers what a killed run left PENDING
        if kind == "queue":
            await register_queue(DBOS, CONCURRENCY)
        elif await DBOS.get_workflow_status_async(CRASH_WORKFLOW) is None:
            with SetWorkflowID(CRASH_WORKFLOW):
                await crash_all(W4_JOBS)
        while True:  # until the harness kills it
            await asyncio.sleep(1)

    asyncio.run(go())
    return {}


if __name__ == "__main__":
    main({"w1": w1, "w2": w2, "w3": w3, "w4_enqueue": w4_enqueue, "w4_work": w4_work})
