"""Hit latency and miss overhead of a memoized call: hokuro against its peers, in one run.

    .venv/bin/python benchmarks/bench_core.py [--calls N] [--json FILE]

Every library memoizes the same function on disk, with the same small arguments and
result, each in its own temporary folder. *Hit*: a call whose result is kept (the function
does not run). *Miss overhead*: a call with new arguments, minus nothing — the function
itself does no work, so all of the time is the library's bookkeeping. Figures are per call,
p50 and p99, in microseconds; ratios are peer / hokuro (above 1.0: hokuro is faster).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

RESULT = {"answer": "Processed: item", "score": 0.5, "tokens": [1, 2, 3]}


def work(item: str, n: int) -> dict:
    return RESULT


def setup_hokuro(folder: Path) -> Callable[[str, int], dict]:
    import hokuro

    spot = hokuro.Spot("bench", workspace=folder)
    return spot.mark(work)


def setup_diskcache(folder: Path) -> Callable[[str, int], dict]:
    import diskcache

    cache = diskcache.Cache(str(folder / "diskcache"))
    return cache.memoize()(work)


def setup_joblib(folder: Path) -> Callable[[str, int], dict]:
    import joblib

    memory = joblib.Memory(str(folder / "joblib"), verbose=0)
    return memory.cache(work)


def setup_cachier(folder: Path) -> Callable[[str, int], dict]:
    from cachier import cachier

    return cachier(cache_dir=str(folder / "cachier"))(work)


def setup_beautyspot(folder: Path) -> Callable[[str, int], dict]:
    import beautyspot

    spot = beautyspot.Spot("bench", db=str(folder / "beautyspot.db"),
                           storage_path=str(folder / "beautyspot-blobs"))
    return spot.mark(work)


LIBRARIES: dict[str, Callable[[Path], Callable[[str, int], dict]]] = {
    "hokuro": setup_hokuro,
    "diskcache": setup_diskcache,
    "joblib": setup_joblib,
    "cachier": setup_cachier,
    "beautyspot": setup_beautyspot,
}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(fn: Callable[[str, int], dict], calls: list[tuple[str, int]]) -> list[float]:
    samples = []
    clock = time.perf_counter_ns
    gc.collect()
    # The collector stays on: beautyspot leaves a SQLite connection per call for it to close.
    for item, n in calls:
        start = clock()
        fn(item, n)
        samples.append((clock() - start) / 1000)
    return samples


def measure(name: str, calls: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        fn = LIBRARIES[name](Path(tmp))
        misses = [(f"item-{i}", i) for i in range(calls)]
        miss = timed(fn, misses)
        hits = [misses[i % 100] for i in range(calls * 5)]
        timed(fn, hits[:200])  # warm-up
        hit = timed(fn, hits)
        assert fn("item-3", 3) == RESULT
        return {"hit_p50": percentile(hit, 0.5), "hit_p99": percentile(hit, 0.99),
                "miss_p50": percentile(miss, 0.5), "miss_p99": percentile(miss, 0.99),
                "hit_mean": statistics.fmean(hit), "miss_mean": statistics.fmean(miss)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="misses per library")
    parser.add_argument("--only", nargs="*", help="libraries to run")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    results = {}
    for name in args.only or LIBRARIES:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            try:
                results[name] = measure(name, args.calls)
            except ImportError as exc:
                print(f"skipping {name}: {exc}", file=sys.stderr)
    ours = results["hokuro"]
    print(f"memoized call, {args.calls} misses and {args.calls * 5} hits per library "
          f"(µs per call; ratio = peer / hokuro)\n")
    print("| library | hit p50 | hit p99 | miss p50 | miss p99 | hit ratio | miss ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['hit_p50']:.1f} | {r['hit_p99']:.1f} | {r['miss_p50']:.1f} | "
              f"{r['miss_p99']:.1f} | {r['hit_p50'] / ours['hit_p50']:.2f} | "
              f"{r['miss_p50'] / ours['miss_p50']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
