"""Decision cost per acquire: hokuro's limiter against aiolimiter, limits and pyrate-limiter.

Run: ``.venv/bin/python benchmarks/bench_limits.py`` (Redis at 127.0.0.1:6379 and PostgreSQL
at 127.0.0.1:5432 as in the tests; a missing one skips its rows). Override with
``HOKURO_BENCH_REDIS_URL`` / ``HOKURO_BENCH_PG_URL``.

Every contender gets a limit far above what the loop can reach, so each call is a granted
decision and nothing sleeps. Calls are timed in batches; ours and the peer's batches
alternate, so both see the same machine noise; the figure is the median batch's cost per
call. Peers are called through their own public API with their defaults:

- aiolimiter ``AsyncLimiter.acquire`` (async only), against ``await Limiter.acquire_async``;
- limits ``MovingWindowRateLimiter.hit``: of its strategies the one that, like GCRA, bounds
  every window rather than calendar windows (fixed window lets twice the limit through across
  a boundary). Its state is a list of grants, so its cost grows with the grants inside the
  window; the fixed-window and sliding-window-counter figures are printed too;
- pyrate-limiter ``Limiter.try_acquire(blocking=False)`` on ``InMemoryBucket``,
  ``SQLiteBucket.init_from_file`` (its defaults: rollback journal, full sync) and
  ``RedisBucket``; all keep a log of grants (sliding window log).

Log-based peers start each run empty and hold at most the calls of that run.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from hokuro.store.limits import Limiter, LimitStore, MemoryStore, open_store

REDIS_URL = os.environ.get("HOKURO_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_URL = os.environ.get("HOKURO_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
HUGE = 1_000_000_000  # per second: never reached, so every call is a granted decision


def timed(call: Callable[[], object], batch: int) -> float:
    """Seconds per call over one batch."""
    start = time.perf_counter()
    for _ in range(batch):
        call()
    return (time.perf_counter() - start) / batch


async def timed_async(call: Callable[[], Awaitable[object]], batch: int) -> float:
    start = time.perf_counter()
    for _ in range(batch):
        await call()
    return (time.perf_counter() - start) / batch


def alternate(ours: Callable[[], object], peer: Callable[[], object] | None, *, batches: int,
              batch: int) -> tuple[list[float], list[float]]:
    ours_t: list[float] = []
    peer_t: list[float] = []
    timed(ours, batch)  # warm up: connections, script loading, prepared statements
    if peer is not None:
        timed(peer, batch)
    for _ in range(batches):
        ours_t.append(timed(ours, batch))
        if peer is not None:
            peer_t.append(timed(peer, batch))
    return ours_t, peer_t


def us(samples: list[float], q: float = 0.5) -> float:
    """The ``q`` quantile of per-call seconds, in microseconds."""
    ordered = sorted(samples)
    return ordered[round(q * (len(ordered) - 1))] * 1e6 if ordered else float("nan")


ROWS: list[tuple[str, str, float, float]] = []  # backend, peer, ours µs, peer µs
FIGURES: list[str] = []


def record(backend: str, peer: str, ours_t: list[float], peer_t: list[float]) -> None:
    ROWS.append((backend, peer, us(ours_t), us(peer_t)))
    FIGURES.append(f"{backend:<8} {'hokuro':<44} p50 {us(ours_t):8.2f} µs  "
                   f"p90 {us(ours_t, 0.9):8.2f} µs  ({len(ours_t)} batches)")
    if peer_t:
        FIGURES.append(f"{backend:<8} {peer:<44} p50 {us(peer_t):8.2f} µs  "
                       f"p90 {us(peer_t, 0.9):8.2f} µs  ({len(peer_t)} batches)")


def ours_limiter(store: LimitStore) -> Limiter:
    return Limiter(f"bench-{uuid.uuid4().hex[:8]}", f"{HUGE}/s", store=store)


# -- memory ------------------------------------------------------------------------------------

def bench_memory() -> None:
    from aiolimiter import AsyncLimiter

    lim = ours_limiter(MemoryStore())
    peer = AsyncLimiter(HUGE, 1)

    async def run() -> tuple[list[float], list[float]]:
        ours_t: list[float] = []
        peer_t: list[float] = []
        await timed_async(lim.acquire_async, 1000)
        await timed_async(peer.acquire, 1000)
        for _ in range(200):
            ours_t.append(await timed_async(lim.acquire_async, 1000))
            peer_t.append(await timed_async(peer.acquire, 1000))
        return ours_t, peer_t

    record("memory", "aiolimiter AsyncLimiter (async acquire)", *asyncio.run(run()))

    from limits import RateLimitItemPerSecond, storage, strategies

    item = RateLimitItemPerSecond(HUGE)
    for label, strategy in [("moving window", strategies.MovingWindowRateLimiter),
                            ("fixed window", strategies.FixedWindowRateLimiter),
                            ("sliding window counter",
                             strategies.SlidingWindowCounterRateLimiter)]:
        memory = storage.MemoryStorage()
        limiter = strategy(memory)
        lim = ours_limiter(MemoryStore())
        ours_t, peer_t = alternate(lim.acquire, lambda lm=limiter: lm.hit(item, "bench"),
                                   batches=40, batch=500)
        record("memory", f"limits MemoryStorage, {label}", ours_t, peer_t)
        memory.timer.cancel()

    from pyrate_limiter import Duration, InMemoryBucket, Rate
    from pyrate_limiter import Limiter as PyrateLimiter

    pyrate = PyrateLimiter(InMemoryBucket([Rate(HUGE, Duration.SECOND)]))
    lim = ours_limiter(MemoryStore())
    ours_t, peer_t = alternate(
        lim.acquire, lambda: pyrate.try_acquire("bench", blocking=False), batches=40, batch=500)
    record("memory", "pyrate-limiter InMemoryBucket", ours_t, peer_t)
    pyrate.close()


# -- SQLite ------------------------------------------------------------------------------------

def bench_sqlite(folder: Path) -> None:
    from pyrate_limiter import Duration, Rate, SQLiteBucket
    from pyrate_limiter import Limiter as PyrateLimiter

    store = open_store(folder / "hokuro.store.limits.db")
    rates = [Rate(HUGE, Duration.SECOND)]
    bucket = SQLiteBucket.init_from_file(rates, table="bench", db_path=str(folder / "pyrate.db"))
    pyrate = PyrateLimiter(bucket)
    lim = ours_limiter(store)
    ours_t, peer_t = alternate(
        lim.acquire, lambda: pyrate.try_acquire("bench", blocking=False), batches=15, batch=40)
    record("sqlite", "pyrate-limiter SQLiteBucket (its defaults)", ours_t, peer_t)
    pyrate.close()

    # The same bucket on a connection tuned as ours (WAL, synchronous=NORMAL), to separate
    # the algorithm from the journal settings.
    conn = sqlite3.connect(folder / "pyrate-wal.db", isolation_level="DEFERRED",
                           check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS bench (name VARCHAR, item_timestamp INTEGER)")
    conn.execute("CREATE INDEX IF NOT EXISTS bench_ts ON bench (item_timestamp)")
    conn.commit()
    pyrate = PyrateLimiter(SQLiteBucket(rates, conn, "bench"))
    lim = ours_limiter(store)
    ours_t, peer_t = alternate(
        lim.acquire, lambda: pyrate.try_acquire("bench", blocking=False), batches=40, batch=100)
    record("sqlite", "pyrate-limiter SQLiteBucket (WAL, sync=NORMAL)", ours_t, peer_t)
    pyrate.close()
    store.close()


# -- Redis -------------------------------------------------------------------------------------

def bench_redis() -> None:
    import redis
    from limits import RateLimitItemPerSecond, storage, strategies
    from pyrate_limiter import Duration, Rate, RedisBucket
    from pyrate_limiter import Limiter as PyrateLimiter

    from hokuro.store.limits.redis import RedisStore

    prefix = f"hokuro-bench-{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(REDIS_URL)
    store = RedisStore(REDIS_URL, prefix=prefix)
    try:
        item = RateLimitItemPerSecond(HUGE)
        for label, strategy in [("moving window", strategies.MovingWindowRateLimiter),
                                ("fixed window", strategies.FixedWindowRateLimiter)]:
            limits_storage = storage.RedisStorage(REDIS_URL, key_prefix=prefix + label[:3])
            limiter = strategy(limits_storage)
            lim = ours_limiter(store)
            ours_t, peer_t = alternate(lim.acquire, lambda lm=limiter: lm.hit(item, "bench"),
                                       batches=40, batch=100)
            record("redis", f"limits RedisStorage, {label}", ours_t, peer_t)

        bucket = RedisBucket.init([Rate(HUGE, Duration.SECOND)], client, prefix + "pyrate")
        pyrate = PyrateLimiter(bucket)
        lim = ours_limiter(store)
        ours_t, peer_t = alternate(
            lim.acquire, lambda: pyrate.try_acquire("bench", blocking=False),
            batches=40, batch=100)
        record("redis", "pyrate-limiter RedisBucket", ours_t, peer_t)
        pyrate.close()
    finally:
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)
        store.close()
        client.close()


# -- PostgreSQL --------------------------------------------------------------------------------

def bench_postgres() -> None:
    import psycopg

    name = f"hokuro_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        store = open_store(url)
        lim = ours_limiter(store)
        ours_t, _ = alternate(lim.acquire, None, batches=40, batch=100)
        record("postgres", "(no peer)", ours_t, [])
        store.close()
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus; median batch cost per call")
    bench_memory()
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as folder:
        bench_sqlite(Path(folder))
    for bench in (bench_redis, bench_postgres):
        try:
            bench()
        except Exception as exc:  # a missing server skips its rows, and says so
            print(f"skipped {bench.__name__}: {type(exc).__name__}: {exc}")
    print()
    print("| backend | peer | hokuro µs (p50) | peer µs (p50) | hokuro / peer |")
    print("|---|---|---:|---:|---:|")
    for backend, peer, ours, theirs in ROWS:
        ratio = f"{ours / theirs:.2f}" if theirs == theirs else "—"
        peer_us = f"{theirs:.2f}" if theirs == theirs else "—"
        print(f"| {backend} | {peer} | {ours:.2f} | {peer_us} | {ratio} |")
    print()
    print("\n".join(FIGURES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
