"""huey on SQLite (``SqliteHuey``), a consumer of thread workers in the same process.

huey's tasks are synchronous: a W1 job is ``time.sleep(0.1)`` on one of 1,000 worker
threads (its concurrency is its thread count); W2-W4 use 100 threads. Results are not
stored (``results=False``: nothing here reads them, and a pipeline passes each step's
result on in memory). Idle workers poll from 10 ms, backing off to at most 100 ms (the
defaults, 100 ms to 10 s, would add seconds of idling to W3). W3 uses huey's pipelines
(``step.s(x).then(step)...``). W4: a worker takes a job off the queue before running it,
so the jobs in flight when the process dies are gone; that is huey's documented behaviour.
"""

from __future__ import annotations

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
)

CONSUMER = {"worker_type": "thread", "periodic": False, "initial_delay": 0.01,
            "backoff": 1.15, "max_delay": 0.1, "check_worker_health": False}


class Counter:
    def __init__(self) -> None:
        self.n = 0
        self.lock = threading.Lock()

    def add(self) -> None:
        with self.lock:
            self.n += 1

    def wait(self, target: int, timeout: float = 600) -> None:
        deadline = time.perf_counter() + timeout
        while self.n < target:
            if time.perf_counter() > deadline:
                raise TimeoutError("jobs did not finish in time")
            time.sleep(0.002)


def make_huey(config: dict[str, Any]):
    from huey import SqliteHuey

    return SqliteHuey("bench", filename=os.path.join(config["folder"], "huey.db"),
                      results=False)


def w1(config: dict[str, Any]) -> dict[str, Any]:
    huey = make_huey(config)
    done = Counter()

    @huey.task()
    def sleep_job(i: int) -> None:
        time.sleep(W1_SLEEP)
        done.add()

    consumer = huey.create_consumer(workers=W1_CONCURRENCY, **CONSUMER)
    start = time.perf_counter()
    for i in range(W1_JOBS):
        sleep_job(i)
    consumer.start()
    done.wait(W1_JOBS)
    wall = time.perf_counter() - start
    consumer.stop(graceful=True)
    return {"wall_s": wall}


def w2(config: dict[str, Any]) -> dict[str, Any]:
    huey = make_huey(config)
    done = Counter()

    @huey.task()
    def noop(i: int) -> None:
        done.add()

    start = time.perf_counter()
    for i in range(W2_JOBS):
        noop(i)
    enqueued = time.perf_counter()
    consumer = huey.create_consumer(workers=CONCURRENCY, **CONSUMER)
    consumer.start()
    done.wait(W2_JOBS)
    drained = time.perf_counter()
    consumer.stop(graceful=True)
    return {"enqueue_per_s": W2_JOBS / (enqueued - start),
            "drain_per_s": W2_JOBS / (drained - enqueued)}


def w3(config: dict[str, Any]) -> dict[str, Any]:
    huey = make_huey(config)
    done = Counter()

    @huey.task()
    def step(x: int) -> int:
        return x + 1

    @huey.task()
    def last(x: int) -> int:
        done.add()
        return x + 1

    consumer = huey.create_consumer(workers=CONCURRENCY, **CONSUMER)
    consumer.start()
    start = time.perf_counter()
    for i in range(W3_ITEMS):
        pipeline = step.s(i)
        for _ in range(W3_STEPS - 2):
            pipeline = pipeline.then(step)
        huey.enqueue(pipeline.then(last))
    done.wait(W3_ITEMS)
    wall = time.perf_counter() - start
    consumer.stop(graceful=True)
    return {"wall_s": wall}


def crash_huey(config: dict[str, Any]):
    huey = make_huey(config)
    log = JobLog(config["log"])

    @huey.task()
    def crash_job(i: int) -> None:
        time.sleep(W4_SLEEP)
        log.done(i)

    return huey, crash_job


def w4_enqueue(config: dict[str, Any]) -> dict[str, Any]:
    _, crash_job = crash_huey(config)
    for i in range(W4_JOBS):
        crash_job(i)
    return {}


def w4_work(config: dict[str, Any]) -> dict[str, Any]:
    huey, _ = crash_huey(config)
    consumer = huey.create_consumer(workers=CONCURRENCY, **CONSUMER)
    consumer.start()
    while True:  # until the harness kills it
        time.sleep(1)


if __name__ == "__main__":
    main({"w1": w1, "w2": w2, "w3": w3, "w4_enqueue": w4_enqueue, "w4_work": w4_work})
