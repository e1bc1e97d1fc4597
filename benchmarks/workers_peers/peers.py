"""procrastinate and pgqueuer, each as bench_workers.py drives it: ``enqueue`` N no-op jobs,
then K processes ``drain`` them at once. A drain prints ``BENCH-RESULT {json}`` with how
many jobs it ran and when its first one started and its last one ended (epoch seconds), so
the rate is measured from the first job to the last, whatever the processes' start-up.

Settings as in benchmarks/runs_peers/ (their authors' recommended ones): procrastinate with
the psycopg connector (pool of 20) and ``run_worker_async(wait=False)``, which returns when
the queue is empty; pgqueuer with asyncpg, batches of 50 with 100 in flight, drain mode.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import timedelta
from typing import Any

MARK = "BENCH-RESULT "
CONCURRENCY = 100


class Clock:
    def __init__(self) -> None:
        self.first: float | None = None
        self.last = 0.0
        self.count = 0

    def job(self) -> None:
        now = time.time()
        if self.first is None:
            self.first = now
        self.last = now
        self.count += 1

    def report(self) -> dict[str, Any]:
        return {"count": self.count, "first": self.first, "last": self.last}


# -- procrastinate -----------------------------------------------------------------------------

def _procrastinate(db: str, clock: Clock):
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=db, min_size=4, max_size=20))

    @app.task(name="noop")
    async def noop(i: int) -> None:
        clock.job()

    return app, noop


async def procrastinate_enqueue(db: str, jobs: int) -> dict[str, Any]:
    app, noop = _procrastinate(db, Clock())
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        for start in range(0, jobs, 5000):
            await noop.batch_defer_async(*({"i": i} for i in range(start,
                                                                   min(jobs, start + 5000))))
    return {}


async def procrastinate_drain(db: str, jobs: int) -> dict[str, Any]:
    clock = Clock()
    app, _ = _procrastinate(db, clock)
    async with app.open_async():
        await app.run_worker_async(concurrency=CONCURRENCY, wait=False,
                                   install_signal_handlers=False,
                                   fetch_job_polling_interval=0.5)
    return clock.report()


# -- pgqueuer ----------------------------------------------------------------------------------

async def _queries(db: str):
    import asyncpg
    from pgqueuer import AsyncpgDriver, Queries

    return Queries(AsyncpgDriver(await asyncpg.connect(db)))


async def pgqueuer_enqueue(db: str, jobs: int) -> dict[str, Any]:
    queries = await _queries(db)
    await queries.install()
    for start in range(0, jobs, 5000):
        ids = range(start, min(jobs, start + 5000))
        await queries.enqueue(["noop"] * len(ids), [b"%d" % i for i in ids], [0] * len(ids))
    return {}


async def pgqueuer_drain(db: str, jobs: int) -> dict[str, Any]:
    from pgqueuer import QueueManager
    from pgqueuer.types import QueueExecutionMode

    clock = Clock()
    qm = QueueManager(await _queries(db))

    @qm.entrypoint("noop")
    async def noop(job) -> None:
        clock.job()

    await qm.run(batch_size=CONCURRENCY // 2, max_concurrent_tasks=CONCURRENCY,
                 mode=QueueExecutionMode.drain, dequeue_timeout=timedelta(seconds=1))
    return clock.report()


if __name__ == "__main__":
    engine, phase, db, jobs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    try:
        result = {"status": "ok", **asyncio.run(globals()[f"{engine}_{phase}"](db, jobs))}
    except ImportError as exc:
        result = {"status": f"not installed ({exc.name or exc})"}
    except Exception as exc:
        result = {"status": f"error: {type(exc).__name__}: {exc}"[:200]}
    print(MARK + json.dumps(result), flush=True)
    os._exit(0)
