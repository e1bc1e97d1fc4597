"""One Spot shared through PostgreSQL: call latency against SQLite, and many processes at once.

    .venv/bin/python benchmarks/bench_shared.py [--calls N] [--procs P] [--per-proc C]
                                                [--keys K] [--json FILE]

Needs the PostgreSQL server of the tests (``postgresql://postgres@127.0.0.1:5432/postgres``,
or ``HOKURO_BENCH_PG_URL``): the benchmark creates its own database there and drops it after.

1. *Latency*, in one run: the same marked function on the embedded default (SQLite + blob
   folder) and on a PostgreSQL ledger (with the blob folder: the results are small and stay
   inline, so S3 would never be touched). *Hit*: a call whose result is kept. *Miss
   overhead*: a call with new arguments of a function that does no work, so all of its time
   is hokuro's bookkeeping (lookup, claim, finish). Per call, p50 and p99, in µs.
2. *Shared*: P processes call one marked function against one PostgreSQL Spot, C calls
   each over K distinct keys. Processes are paired, and both processes of a pair call the
   same keys in the same order, at the same moment: every key is contended, so each call
   either executes the task, waits for the other process's execution, or finds its result.
   Every execution appends its key to the process's own file; the benchmark counts them:
   tasks per second (distinct tasks done / wall time), and duplicates (executions beyond one
   per key), which must be 0.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench_core import percentile, timed  # the peers benchmark's timing, reused

ADMIN_URL = os.environ.get("HOKURO_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
RESULT = {"answer": "Processed: item", "score": 0.5, "tokens": [1, 2, 3]}


def work(item: str, n: int) -> dict:
    return RESULT


# -- a database of its own ------------------------------------------------------------------

def create_database() -> str:
    import psycopg

    name = f"hokuro_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(ADMIN_URL)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def drop_database(url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = %s", (name,))
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


# -- 1. latency ---------------------------------------------------------------------------



def latency(db: str | None, folder: Path, calls: int) -> dict[str, float]:
    import hokuro

    with hokuro.Spot("bench", db=db, workspace=folder) as spot:
        fn = spot.mark(work)
        timed(fn, [(f"warm-{i}", i) for i in range(100)])  # connections, statements, caches
        misses = [(f"item-{i}", i) for i in range(calls)]
        miss = timed(fn, misses)
        hits = [misses[i % 100] for i in range(calls * 5)]
        timed(fn, hits[:200])
        hit = timed(fn, hits)
        assert fn("item-3", 3) == RESULT
    return {"hit_p50": percentile(hit, 0.5), "hit_p99": percentile(hit, 0.99),
            "hit_mean": statistics.fmean(hit), "miss_p50": percentile(miss, 0.5),
            "miss_p99": percentile(miss, 0.99), "miss_mean": statistics.fmean(miss)}


# -- 2. many processes, one Spot --------------------------------------------------------------

def child(workspace: str, db: str, executions: str, keys: str, start_at: str) -> None:
    """One process of the shared run: call its keys in order, print what it did as JSON."""
    import hokuro

    spot = hokuro.Spot("bench-shared", db=db, workspace=workspace)
    with open(executions, "a", buffering=1) as log:

        @spot.mark(name="bench.shared")
        def task(key: int) -> dict:
            log.write(f"{key}\n")
            return {"key": key, **RESULT}

        order = [int(k) for k in keys.split(",")]
        spot.ledger.lookup("0" * 32)  # open the connection pool before the start
        time.sleep(max(0.0, float(start_at) - time.time()))
        began = time.time()
        for key in order:
            assert task(key)["key"] == key
        ended = time.time()
    print(json.dumps({"began": began, "ended": ended, "calls": len(order),
                      "hits": spot.counters["hits"], "misses": spot.counters["misses"]}))
    spot.close()


def shared_run(db: str, folder: Path, procs: int, per_proc: int, keys: int) -> dict[str, float]:
    pairs = max(1, procs // 2)
    if per_proc * pairs != keys:
        raise SystemExit(f"--keys must be --per-proc x pairs ({per_proc} x {pairs})")
    orders = [list(range((p % pairs) * per_proc, (p % pairs + 1) * per_proc))
              for p in range(procs)]
    start_at = f"{time.time() + 2.0 + 0.1 * procs:.3f}"
    children = [
        subprocess.Popen([sys.executable, __file__, "child", str(folder), db,
                          str(folder / f"executions-{p}.txt"), ",".join(map(str, order)),
                          start_at], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for p, order in enumerate(orders)
    ]
    reports = []
    for proc in children:
        out, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"a benchmark process failed:\n{err}")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    executions: Counter[int] = Counter()
    for path in folder.glob("executions-*.txt"):
        executions.update(int(line) for line in path.read_text().split())
    wall = max(r["ended"] for r in reports) - min(r["began"] for r in reports)
    calls = sum(r["calls"] for r in reports)
    return {"procs": procs, "calls": calls, "keys": keys, "wall_s": wall,
            "tasks_per_s": len(executions) / wall, "calls_per_s": calls / wall,
            "executions": sum(executions.values()),
            "duplicates": sum(n - 1 for n in executions.values()),
            "lost": keys - len(executions), "hits": sum(r["hits"] for r in reports)}


# -- the report ---------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="misses per backend")
    parser.add_argument("--procs", type=int, default=8, help="processes of the shared run")
    parser.add_argument("--per-proc", type=int, default=500, help="calls per process")
    parser.add_argument("--keys", type=int, default=2000, help="distinct keys of the run")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    db = create_database()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-shared-") as tmp:
            folder = Path(tmp)
            lat = {"SQLite": latency(None, folder / "sqlite", args.calls),
                   "PostgreSQL": latency(db, folder / "postgres", args.calls)}
            (folder / "shared").mkdir()
            run = shared_run(db, folder / "shared", args.procs, args.per_proc, args.keys)
    finally:
        drop_database(db)

    sqlite = lat["SQLite"]
    print(f"memoized call, {args.calls} misses and {args.calls * 5} hits per ledger "
          "(µs per call; ratio = PostgreSQL / SQLite, p50)\n")
    print("| ledger | hit p50 | hit p99 | miss p50 | miss p99 | hit ratio | miss ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in lat.items():
        print(f"| {name} | {r['hit_p50']:.0f} | {r['hit_p99']:.0f} | {r['miss_p50']:.0f} | "
              f"{r['miss_p99']:.0f} | {r['hit_p50'] / sqlite['hit_p50']:.2f} | "
              f"{r['miss_p50'] / sqlite['miss_p50']:.2f} |")
    print(f"\n{run['procs']} processes, one PostgreSQL Spot: {run['calls']} calls over "
          f"{run['keys']} keys, each key called by two processes at once\n")
    print("| processes | calls | wall s | tasks/s | calls/s | executions | duplicates | lost |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {run['procs']} | {run['calls']} | {run['wall_s']:.2f} | {run['tasks_per_s']:.0f} | "
          f"{run['calls_per_s']:.0f} | {run['executions']} | {run['duplicates']} | "
          f"{run['lost']} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"latency": lat, "shared": run}, indent=2))
    if run["duplicates"] or run["lost"]:
        raise SystemExit("single flight broken: duplicated or lost tasks")


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        child(*sys.argv[2:])
    else:
        main()
