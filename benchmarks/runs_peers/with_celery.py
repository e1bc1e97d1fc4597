"""Celery over Redis, a worker process with a thread pool (``--pool threads``).

Celery's tasks are synchronous: a W1 job is ``time.sleep(0.1)`` on one of 1,000 threads.
Results are not stored (no result backend); every task counts itself done with one Redis
INCR, which the driver polls. W2 enqueues with the worker's consumer cancelled, then adds
it back, so the drain is timed alone. W3 is a ``chain`` of five tasks per item. W4 uses
Celery's settings for not losing work (``acks_late``, ``task_reject_on_worker_lost``) with a
5 s visibility timeout (the default is an hour). kombu keeps a message a worker has taken
in its ``unacked`` hash until it is acknowledged, and puts it back on the queue when it
restores messages older than the visibility timeout: the restarted worker starts before
those 5 s have passed, and here the killed worker's messages stayed out of the queue for
the whole recovery window (a later worker start put them back).
The peak RSS is the worker's (the driver waits for it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from typing import Any

from celery import Celery, chain

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

REDIS = os.environ.get("BENCH_CELERY_REDIS", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("BENCH_CELERY_QUEUE", "bench-runs")
LOG = os.environ.get("BENCH_CELERY_LOG")

app = Celery("bench_runs", broker=REDIS)
app.conf.update(
    task_default_queue=QUEUE, task_ignore_result=True, task_acks_late=True,
    task_reject_on_worker_lost=True, broker_transport_options={"visibility_timeout": 5},
    worker_hijack_root_logger=False, broker_connection_retry_on_startup=True,
)


def redis_client():
    import redis

    return redis.Redis.from_url(REDIS)


@app.task(name="bench.sleep")
def sleep_job(i: int) -> None:
    time.sleep(W1_SLEEP)
    redis_client_cached().incr(f"{QUEUE}:done")


@app.task(name="bench.noop")
def noop(i: int) -> None:
    redis_client_cached().incr(f"{QUEUE}:done")


@app.task(name="bench.step")
def step(x: int) -> int:
    return x + 1


@app.task(name="bench.last")
def last(x: int) -> int:
    redis_client_cached().incr(f"{QUEUE}:done")
    return x + 1


@app.task(name="bench.crash")
def crash_job(i: int) -> None:
    time.sleep(W4_SLEEP)
    JobLog(LOG).done(i)


_client = None


def redis_client_cached():
    global _client
    if _client is None:
        _client = redis_client()
    return _client


class Worker:
    """A ``celery worker`` process on this run's queue; the driver waits for it to answer."""

    def __init__(self, config: dict[str, Any], concurrency: int) -> None:
        env = {**os.environ, "BENCH_CELERY_REDIS": config["redis"],
               "BENCH_CELERY_QUEUE": config["queue"], "BENCH_CELERY_LOG": config["log"]}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "runs_peers.with_celery:app", "worker",
             "--pool", "threads", "--concurrency", str(concurrency), "-Q", config["queue"],
             "--without-heartbeat", "--without-mingle", "--without-gossip", "-l", "WARNING",
             "-n", f"{config['queue']}@%h"],
            env=env, stdout=sys.stderr, stderr=sys.stderr)
        deadline = time.monotonic() + 60
        while not app.control.ping(destination=[self.name()], timeout=0.5):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the celery worker did not start")

    def name(self) -> str:
        import socket

        return f"{QUEUE}@{socket.gethostname()}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def setup(config: dict[str, Any]) -> None:
    """Point this process's app at the run's Redis and queue (the worker gets them by env)."""
    global QUEUE, REDIS, LOG
    config.setdefault("queue", f"bench-runs-{uuid.uuid4().hex[:8]}")
    QUEUE, REDIS, LOG = config["queue"], config["redis"], config["log"]
    app.conf.broker_url = REDIS
    app.conf.task_default_queue = QUEUE
    redis_client().delete(f"{QUEUE}:done")


def wait_done(target: int, timeout: float = 600) -> None:
    client = redis_client()
    deadline = time.perf_counter() + timeout
    while int(client.get(f"{QUEUE}:done") or 0) < target:
        if time.perf_counter() > deadline:
            raise TimeoutError("jobs did not finish in time")
        time.sleep(0.005)


def cleanup() -> None:
    """Drop this run's queue, counter and the messages kombu holds as unacknowledged for it
    (a hash shared by every queue on the server, so only this queue's entries go)."""
    import json

    client = redis_client()
    for key in client.scan_iter(f"*{QUEUE}*"):
        client.delete(key)
    for tag, entry in client.hscan_iter("unacked"):
        if json.loads(entry)[-1] == QUEUE:
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)


def w1(config: dict[str, Any]) -> dict[str, Any]:
    setup(config)
    worker = Worker(config, W1_CONCURRENCY)
    try:
        start = time.perf_counter()
        for i in range(W1_JOBS):
            sleep_job.delay(i)
        wait_done(W1_JOBS)
        return {"wall_s": time.perf_counter() - start}
    finally:
        worker.stop()
        cleanup()


def w2(config: dict[str, Any]) -> dict[str, Any]:
    setup(config)
    worker = Worker(config, CONCURRENCY)
    try:
        app.control.cancel_consumer(QUEUE, destination=[worker.name()], reply=True)
        start = time.perf_counter()
        for i in range(W2_JOBS):
            noop.delay(i)
        enqueued = time.perf_counter()
        app.control.add_consumer(QUEUE, destination=[worker.name()], reply=True)
        wait_done(W2_JOBS)
        drained = time.perf_counter()
        return {"enqueue_per_s": W2_JOBS / (enqueued - start),
                "drain_per_s": W2_JOBS / (drained - enqueued)}
    finally:
        worker.stop()
        cleanup()


def w3(config: dict[str, Any]) -> dict[str, Any]:
    setup(config)
    worker = Worker(config, CONCURRENCY)
    try:
        start = time.perf_counter()
        for i in range(W3_ITEMS):
            chain(step.s(i), *(step.s() for _ in range(W3_STEPS - 2)), last.s()).delay()
        wait_done(W3_ITEMS)
        return {"wall_s": time.perf_counter() - start}
    finally:
        worker.stop()
        cleanup()


def w4_enqueue(config: dict[str, Any]) -> dict[str, Any]:
    config["queue"] = "bench-runs-" + os.path.basename(config["folder"])[-12:]
    setup(config)
    for i in range(W4_JOBS):
        crash_job.delay(i)
    return {}


def w4_work(config: dict[str, Any]) -> dict[str, Any]:
    config["queue"] = "bench-runs-" + os.path.basename(config["folder"])[-12:]
    setup(config)
    Worker(config, CONCURRENCY)
    while True:  # until the harness kills it, worker and all
        time.sleep(1)


def w4_cleanup(config: dict[str, Any]) -> dict[str, Any]:
    config["queue"] = "bench-runs-" + os.path.basename(config["folder"])[-12:]
    setup(config)
    cleanup()
    return {}


if __name__ == "__main__":
    main({"w1": w1, "w2": w2, "w3": w3, "w4_enqueue": w4_enqueue, "w4_work": w4_work,
          "w4_cleanup": w4_cleanup})
