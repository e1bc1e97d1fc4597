"""Direct async marked calls against the same coroutine unmarked, in one run.

    .venv/bin/python benchmarks/bench_async_calls.py [--calls N] [--db URL] [--json FILE]

Cases, each with a fresh Spot in a temporary folder (or a fresh schema of ``--db``):

- *plain*: ``asyncio.gather`` of N calls of ``await asyncio.sleep(0.1)``, unmarked (ideal
  0.1 s);
- *misses*: the same N calls marked, none kept yet (wall seconds, ratio to plain);
- *hits*: the same N calls again, all kept (µs per call, gathered), and one at a time
  (µs per call, sequential);
- *loop held*: while N misses run, the longest gap of a 1 ms ticker on the same loop (ms):
  how long the loop was kept from other work.

Every ledger request of an async call runs on the Spot's I/O thread (batched: lookups,
claims and finishes of concurrent calls share one statement or transaction each), never on
the event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from hokuro import Spot


async def nap(i: int) -> int:
    await asyncio.sleep(0.1)
    return i


async def _measure(spot: Spot, calls: int) -> dict[str, float]:
    marked = spot.mark(nap, name="nap")
    start = time.perf_counter()
    await asyncio.gather(*(nap(i) for i in range(calls)))
    plain = time.perf_counter() - start

    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    start = time.perf_counter()
    assert await asyncio.gather(*(marked(i) for i in range(calls))) == list(range(calls))
    misses = time.perf_counter() - start
    stop.set()
    await tick

    start = time.perf_counter()
    await asyncio.gather(*(marked(i) for i in range(calls)))
    hits = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(calls):
        await marked(i)
    sequential = time.perf_counter() - start
    return {"plain_s": plain, "misses_s": misses, "misses_ratio": misses / plain,
            "hit_gathered_us": hits / calls * 1e6, "hit_sequential_us": sequential / calls * 1e6,
            "loop_held_ms": max(gaps) * 1e3}


def run(calls: int, db: str | None) -> dict[str, float]:
    warnings.simplefilter("ignore", RuntimeWarning)
    os.chdir(tempfile.mkdtemp(prefix="hokuro-bench-async-"))
    name = f"b{uuid.uuid4().hex[:8]}"
    with Spot(name, db=db) if db else Spot(name) as spot:
        return asyncio.run(_measure(spot, calls))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--db", default=None, help="a PostgreSQL URL (default: embedded)")
    parser.add_argument("--json", default=None)
    options = parser.parse_args()
    figures = run(options.calls, options.db)
    where = "PostgreSQL" if options.db else "SQLite (embedded)"
    print(f"{options.calls} concurrent async calls of asyncio.sleep(0.1), {where}, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"  plain (unmarked)        {figures['plain_s']:.3f} s")
    print(f"  marked, misses          {figures['misses_s']:.3f} s "
          f"({figures['misses_ratio']:.2f}x plain)")
    print(f"  marked, hits gathered   {figures['hit_gathered_us']:.0f} µs per call")
    print(f"  marked, hits one by one {figures['hit_sequential_us']:.0f} µs per call")
    print(f"  loop held at most       {figures['loop_held_ms']:.1f} ms (during the misses)")
    if options.json:
        with open(options.json, "w") as out:
            json.dump(figures, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
