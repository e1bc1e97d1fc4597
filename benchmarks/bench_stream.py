"""A streamed input through ``spot.map``: peak memory stays bounded whatever its size.

    .venv/bin/python benchmarks/bench_stream.py [--items 1000000] [--concurrency 1000]
                                                [--postgres]

A generator yields N small inputs to a no-op async step on the embedded Spot (or, with
``--postgres``, a Spot in a database of its own, made on HOKURO_BENCH_PG_URL's server and
dropped afterwards); jobs are made in windows ahead of completion, so the process never
holds the whole input. Prints jobs/s and the peak RSS of the process (the issue's bound:
300 MB for 1,000,000 inputs).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import tempfile
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import hokuro


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--postgres", action="store_true",
                        help="a PostgreSQL ledger instead of the embedded one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, _database(args.postgres) as db, \
            hokuro.Spot("stream", db=db, workspace=folder) as spot:

        @spot.mark(name="noop")
        async def noop(i: int) -> None:
            return None

        def inputs():
            for i in range(args.items):
                yield {"id": i, "name": f"item-{i}"}

        start = time.perf_counter()
        run = spot.map(noop, inputs(), concurrency=args.concurrency, progress=False)
        wall = time.perf_counter() - start
        summary = run.summary()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{args.items:,} streamed inputs at concurrency {args.concurrency}: "
              f"{wall:.1f} s, {args.items / wall:,.0f} jobs/s, peak RSS {peak:.0f} MB "
              f"(at the end: {_memory()}), {summary['done']:,} done, "
              f"{summary['failed']} failed")


@contextlib.contextmanager
def _database(postgres: bool) -> Iterator[str | None]:
    """None (the embedded ledger), or the URL of a new PostgreSQL database, dropped after."""
    if not postgres:
        yield None
        return
    import psycopg

    admin = os.environ.get("HOKURO_BENCH_PG_URL",
                           "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"hokuro_bench_stream_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def _memory() -> str:
    """Private memory apart from file pages (libraries, and a ledger read through mmap
    where SQLite's mmap_size is set): those count in RSS though they are files', not the
    heap's."""
    try:
        with open("/proc/self/status") as status:
            fields = dict(line.split(":", 1) for line in status)
    except OSError:
        return "n/a"
    return ", ".join(f"{name} {int(fields[name].split()[0]) / 1024:.0f} MB"
                     for name in ("RssAnon", "RssFile") if name in fields)


if __name__ == "__main__":
    main()
