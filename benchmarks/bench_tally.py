"""What the tally (schema 6) costs the writers, and what it saves the readers.

The tally keeps records and bytes per (collection, status) by triggers, in the same
transaction as every write. This measures, on SQLite and on PostgreSQL, the same workloads on
two fresh Spots, one of them with the tally's triggers dropped (how schema 5 wrote), run in
turns so that both see the same machine:

- *misses*: sync marked calls of a function that returns at once (a claim and a finish each);
- *map*: ``spot.map`` of the same function over new items (claims and finishes in batches);

and then ``stats`` on the records that made: from the tally and by counting every record.

    python benchmarks/bench_tally.py [--calls N] [--items N] [--turns K] [--no-postgres]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import hokuro

PG = "postgresql://postgres@127.0.0.1:5432/test"
TRIGGERS = {"sqlite": ("tasks_tally_added", "tasks_tally_removed", "tasks_tally_left",
                       "tasks_tally_entered"),
            "postgres": ("tasks_tally_added", "tasks_tally_removed", "tasks_tally_changed")}


def open_spot(kind: str, folder: Path, tally: bool) -> hokuro.Spot:
    name = f"tally_{'on' if tally else 'off'}_{uuid.uuid4().hex[:6]}"
    spot = hokuro.Spot(name, db=PG if kind == "postgres" else None, workspace=str(folder))
    if not tally:
        if kind == "sqlite":
            conn = sqlite3.connect(spot.ledger.path)
            for trigger in TRIGGERS[kind]:
                conn.execute(f"DROP TRIGGER {trigger}")
            conn.commit()
            conn.close()
        else:
            import psycopg

            with psycopg.connect(PG, autocommit=True) as conn:
                for trigger in TRIGGERS[kind]:
                    conn.execute(f"DROP TRIGGER {trigger} ON {spot.ledger.schema}.tasks")
    return spot


def workloads(spot: hokuro.Spot, calls: int, items: int, start: int) -> dict[str, float]:
    @spot.mark(name="noop")
    def noop(x: int) -> int:
        return x

    started = time.perf_counter()
    for i in range(start, start + calls):
        noop(i)
    misses = (time.perf_counter() - started) / calls
    started = time.perf_counter()
    spot.map(noop, range(start + calls, start + calls + items), concurrency=64,
             progress=False).results()
    mapped = (time.perf_counter() - started) / items
    return {"misses": misses, "map": mapped}


def stats_times(spot: hokuro.Spot, runs: int = 5) -> tuple[float, float]:
    """Best of ``runs``: stats from the tally, and the same counts from every record."""
    module = __import__(type(spot.ledger).__module__, fromlist=["Q"])
    ledger: Any = spot.ledger

    def best(read: Any) -> float:
        spans = []
        for _ in range(runs):
            started = time.perf_counter()
            read()
            spans.append(time.perf_counter() - started)
        return min(spans)

    return (best(lambda: ledger.stats(now=time.time())),
            best(lambda: ledger._rows(module.Q["stats_scan"],
                                      {"fn": None, "now": time.time()})))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    kinds = ["sqlite"] + ([] if args.no_postgres else ["postgres"])
    print("| ledger | workload | without the tally µs | with the tally µs | cost |")
    print("|---|---|---:|---:|---:|")
    for kind in kinds:
        with tempfile.TemporaryDirectory() as folder:
            spots = {tally: open_spot(kind, Path(folder), tally) for tally in (False, True)}
            # A first round warms both (imports, plans, pools): not counted.
            for spot in spots.values():
                workloads(spot, 100, 100, 10_000_000)
            seen: dict[bool, list[dict[str, float]]] = {False: [], True: []}
            start = 0
            for _ in range(args.turns):
                for tally, spot in spots.items():
                    seen[tally].append(workloads(spot, args.calls, args.items, start))
                start += args.calls + args.items
            for workload in ("misses", "map"):
                off = statistics.median(t[workload] for t in seen[False]) * 1e6
                on = statistics.median(t[workload] for t in seen[True]) * 1e6
                print(f"| {kind} | {workload} | {off:.0f} | {on:.0f} | "
                      f"{(on - off) / off:+.0%} |", flush=True)
            tally, scan = stats_times(spots[True])
            count = sum(r.count for r in spots[True].ledger.stats(now=0.0))
            print(f"| {kind} | stats of {count:,} records | {scan * 1e6:.0f} (counted) | "
                  f"{tally * 1e6:.0f} (tally) | {tally / scan:.2f}x |", flush=True)
            for spot in spots.values():
                spot.close()


if __name__ == "__main__":
    main()
