"""Waiting callers: what a grant costs in store calls, how close the flow stays to the rate,
and how long a killed batch's bookings delay the next process.

Run: ``.venv/bin/python benchmarks/bench_limit_waiting.py`` (Redis and PostgreSQL as in
``bench_limits.py``; a missing one skips its rows).

- *saturated*: 8 threads and, separately, 200 asyncio tasks call ``acquire`` in a loop on
  "200/s" with burst 1 for 2 s; a counting store notes every store operation. Figures: grants
  per second within the 2 s (the rate is 200) and store operations per grant. Then 4
  processes of 50 asyncio tasks each share the limit through the store: the same figures,
  and each process's share of the grants (fair is 25 %).
- *rerun after kill -9*: a child process starts 500 waiting calls on "50/s" (default burst)
  and is killed with SIGKILL 2 s later; then this process's first ``acquire`` on the same
  store is timed. Before bookings were bounded it waited for every place the dead batch had
  booked.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from hokuro.store.limits import Limiter, LimitStore, MemoryStore, open_store

REDIS_URL = os.environ.get("HOKURO_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_URL = os.environ.get("HOKURO_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
RATE = 200.0
SECONDS = 2.0


class Counting(LimitStore):
    """A store that counts the operations made on the store it wraps."""

    def __init__(self, inner: LimitStore) -> None:
        self.inner, self.kind = inner, inner.kind
        self.calls: collections.Counter[str] = collections.Counter()

    def decide(self, *args: Any) -> Any:
        self.calls["decide"] += 1
        return self.inner.decide(*args)

    def held(self, *args: Any) -> Any:
        self.calls["held"] += 1
        return self.inner.held(*args)

    def hold(self, *args: Any) -> Any:
        self.calls["hold"] += 1
        return self.inner.hold(*args)

    def refund(self, *args: Any) -> Any:
        self.calls["refund"] += 1
        return self.inner.refund(*args)

    def now(self) -> float:
        return self.inner.now()


def saturated_threads(store: LimitStore) -> tuple[float, float]:
    counting = Counting(store)
    lim = Limiter(f"wait-{uuid.uuid4().hex[:8]}", f"{RATE:g}/s", burst=1, store=counting)
    grants = [0] * 8
    in_time = [0] * 8
    stop = time.monotonic() + SECONDS

    def loop(i: int) -> None:
        while time.monotonic() < stop:
            lim.acquire()
            grants[i] += 1
            in_time[i] += time.monotonic() <= stop

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(in_time) / SECONDS, sum(counting.calls.values()) / sum(grants)


def saturated_tasks(store: LimitStore) -> tuple[float, float]:
    counting = Counting(store)
    lim = Limiter(f"wait-{uuid.uuid4().hex[:8]}", f"{RATE:g}/s", burst=1, store=counting)
    grants = in_time = 0

    async def loop(stop: float) -> None:
        nonlocal grants, in_time
        while time.monotonic() < stop:
            await lim.acquire_async()
            grants += 1
            in_time += time.monotonic() <= stop

    async def main() -> None:
        await asyncio.gather(*(loop(time.monotonic() + SECONDS) for _ in range(200)))

    asyncio.run(main())
    return in_time / SECONDS, sum(counting.calls.values()) / grants


SHARER = """
import asyncio, json, sys, time
sys.path.insert(0, sys.argv[1])
from bench_limit_waiting import Counting, RATE, _redis
from hokuro.store.limits import Limiter, open_store
spec, prefix, name, start, stop = sys.argv[2:]
store = Counting(_redis(spec, prefix) if spec.startswith("redis") else open_store(spec))
lim = Limiter(name, f"{RATE:g}/s", burst=1, store=store)
grants = in_time = 0
async def loop():
    global grants, in_time
    while time.time() < float(stop):
        await lim.acquire_async()
        grants += 1
        in_time += time.time() <= float(stop)
async def main():
    await asyncio.sleep(float(start) - time.time())
    await asyncio.gather(*(loop() for _ in range(50)))
asyncio.run(main())
print(json.dumps([in_time, grants, sum(store.calls.values())]))
"""


def shared_by_processes(spec: str, processes: int = 4) -> tuple[float, float, list[float]]:
    prefix = f"hokuro-bench-{uuid.uuid4().hex[:8]}:"
    name = f"share-{uuid.uuid4().hex[:8]}"
    start = time.time() + 2.0
    stop = start + SECONDS
    children = [subprocess.Popen(
        [sys.executable, "-c", SHARER, str(Path(__file__).parent), spec, prefix, name,
         str(start), str(stop)], stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    results = [json.loads(child.communicate()[0]) for child in children]
    in_time = sum(n for n, _, _ in results)
    grants = sum(g for _, g, _ in results)
    return (in_time / SECONDS, sum(ops for _, _, ops in results) / grants,
            [n / in_time for n, _, _ in results])


CHILD = """
import asyncio, sys
from hokuro.store.limits import Limiter, open_store
from hokuro.store.limits.redis import RedisStore
spec, prefix, name = sys.argv[1:]
store = RedisStore(spec, prefix=prefix) if spec.startswith("redis") else open_store(spec)
lim = Limiter(name, "50/s", store=store)
async def main():
    print("ready", flush=True)
    await asyncio.gather(*(lim.acquire_async() for _ in range(500)))
asyncio.run(main())
"""


def rerun_after_kill(spec: str, open_: Any) -> float:
    prefix = f"hokuro-bench-{uuid.uuid4().hex[:8]}:"
    name = f"rerun-{uuid.uuid4().hex[:8]}"
    child = subprocess.Popen([sys.executable, "-c", CHILD, spec, prefix, name],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    time.sleep(2.0)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    store = open_(spec, prefix)
    lim = Limiter(name, "50/s", store=store)
    start = time.monotonic()
    lim.acquire()
    first = time.monotonic() - start
    store.close()
    return first


def _redis(spec: str, prefix: str) -> LimitStore:
    from hokuro.store.limits.redis import RedisStore

    return RedisStore(spec, prefix=prefix)


def _scratch_database() -> str:
    """A new PostgreSQL database for this run (so no table is left in ``postgres``)."""
    try:
        import psycopg

        name = f"hokuro_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return PG_URL.rsplit("/", 1)[0] + f"/{name}"
    except Exception:
        return PG_URL  # its rows will be skipped with the reason


def _drop_database(url: str) -> None:
    if url == PG_URL:
        return
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def main() -> int:
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus; limit {RATE:g}/s burst 1")
    folder = Path(tempfile.mkdtemp())
    pg_url = _scratch_database()
    stores: list[tuple[str, Any, str]] = [
        ("memory", lambda: MemoryStore(), ""),
        ("sqlite", lambda: open_store(folder / "limits.db"), str(folder / "rerun.db")),
        ("redis", lambda: _redis(REDIS_URL, f"hokuro-bench-{uuid.uuid4().hex[:8]}:"),
         REDIS_URL),
        ("postgres", lambda: open_store(pg_url), pg_url),
    ]
    print("| store | callers | grants/s | store ops per grant |")
    print("|---|---|---:|---:|")
    reruns = []
    for kind, make, spec in stores:
        try:
            for label, bench in (("8 threads", saturated_threads),
                                 ("200 asyncio tasks", saturated_tasks)):
                store = make()
                rate, ops = bench(store)
                store.close()
                print(f"| {kind} | {label} | {rate:.1f} | {ops:.2f} |", flush=True)
            if spec:
                rate, ops, shares = shared_by_processes(spec)
                print(f"| {kind} | 4 processes x 50 tasks | {rate:.1f} | {ops:.2f} "
                      f"(shares {', '.join(f'{share:.0%}' for share in shares)}) |",
                      flush=True)
                opener = _redis if kind == "redis" else lambda s, _p: open_store(s)
                reruns.append((kind, rerun_after_kill(spec, opener)))
        except Exception as exc:  # a missing server skips its rows, and says so
            print(f"skipped {kind}: {type(exc).__name__}: {exc}")
    _drop_database(pg_url)
    shutil.rmtree(folder)
    print()
    print("| store | first grant after a killed batch (500 calls at 50/s, killed at 2 s) |")
    print("|---|---:|")
    for kind, first in reruns:
        print(f"| {kind} | {first * 1000:.0f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
