"""hokuro against diskcache's ``Cache.memoize``, side by side in one run.

    .venv/bin/python benchmarks/bench_memo.py [--calls N] [--procs P] [--json FILE]

Cases (the same function, arguments and results for both libraries, each in its own
temporary folder):

- *import*: ``python -c "import X"`` wall time, best of several fresh interpreters, minus
  the interpreter's own start-up (``python -c pass``);
- *hit* / *miss*: one call with a kept result / new arguments, small result (µs, p50);
- *1 MB hit*: a kept 1 MiB ``bytes`` result read back (µs, p50);
- *multi-process miss*: P processes, each making N misses on one shared store, started
  together (wall seconds of the slowest process).

Ratio = hokuro / diskcache: below 1.0, hokuro is faster.
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
import warnings
from collections.abc import Callable
from pathlib import Path

SMALL = {"answer": "Processed: item", "score": 0.5, "tokens": [1, 2, 3]}
LARGE = os.urandom(1024 * 1024)
LIBRARIES = ("hokuro", "diskcache")


def small(item: str, n: int) -> dict:
    return SMALL


def large(item: str, n: int) -> bytes:
    return LARGE


def memoize(name: str, folder: Path, fn: Callable) -> Callable:
    if name == "hokuro":
        import hokuro

        return hokuro.Spot("bench", workspace=folder).mark(fn)
    import diskcache

    return diskcache.Cache(str(folder / "diskcache")).memoize()(fn)


def p50(fn: Callable, calls: list[tuple[str, int]]) -> float:
    clock = time.perf_counter_ns
    samples = []
    for item, n in calls:
        start = clock()
        fn(item, n)
        samples.append((clock() - start) / 1000)
    return statistics.median(samples)


def in_process(name: str, calls: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"memo-{name}-") as tmp:
        fn = memoize(name, Path(tmp), small)
        misses = [(f"item-{i}", i) for i in range(calls)]
        miss = p50(fn, misses)
        hits = [misses[i % 100] for i in range(calls * 5)]
        p50(fn, hits[:200])
        hit = p50(fn, hits)
        big = memoize(name, Path(tmp) / "large", large)
        keys = [(f"big-{i}", i) for i in range(20)]
        p50(big, keys)
        big_hit = p50(big, [keys[i % 20] for i in range(400)])
        assert big("big-1", 1) == LARGE
        return {"hit": hit, "miss": miss, "hit_1mb": big_hit}


_WORKER = """
import sys, time
sys.path.insert(0, {bench!r})
from pathlib import Path
import bench_memo
name, folder, proc, calls, start_at = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), \\
    int(sys.argv[4]), float(sys.argv[5])
fn = bench_memo.memoize(name, folder, bench_memo.small)
fn("warm-up", proc)
while time.time() < start_at:
    time.sleep(0.001)
t0 = time.perf_counter()
for i in range(calls):
    fn(f"p{{proc}}-{{i}}", i)
print(time.perf_counter() - t0)
"""


def multi_process(name: str, procs: int, calls: int) -> float:
    with tempfile.TemporaryDirectory(prefix=f"memo-mp-{name}-") as tmp:
        memoize(name, Path(tmp), small)  # create the store before the race
        code = _WORKER.format(bench=str(Path(__file__).parent))
        start_at = time.time() + 1.5
        running = [subprocess.Popen([sys.executable, "-c", code, name, tmp, str(p), str(calls),
                                     str(start_at)], stdout=subprocess.PIPE, text=True)
                   for p in range(procs)]
        return max(float(p.communicate()[0]) for p in running)


def import_ms(module: str, runs: int = 15) -> float:
    """Best wall time of ``import module`` in a fresh interpreter, minus the interpreter's own
    start. Bytecode is compiled first, as an installed wheel has it (an editable checkout
    under PYTHONDONTWRITEBYTECODE would otherwise recompile every module on every import)."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            compileall.compile_dir(folder, quiet=1)

    def best(code: str) -> float:
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            times.append(time.perf_counter() - t0)
        return min(times)

    return (best(f"import {module}") - best("pass")) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    results: dict[str, dict[str, float]] = {}
    for name in LIBRARIES:
        figures = {"import_ms": import_ms(name)}
        figures.update(in_process(name, args.calls))
        figures["mp_miss_s"] = multi_process(name, args.procs, args.calls)
        results[name] = figures
    ours, peer = results["hokuro"], results["diskcache"]
    rows = [("import (ms)", "import_ms"), ("hit p50 (µs)", "hit"), ("miss p50 (µs)", "miss"),
            ("1 MB hit p50 (µs)", "hit_1mb"),
            (f"{args.procs} processes x {args.calls} misses (s)", "mp_miss_s")]
    print("hokuro against diskcache Cache.memoize (ratio = hokuro / diskcache; "
          "below 1.0 hokuro is faster)\n")
    print("| case | hokuro | diskcache | ratio |")
    print("|---|---:|---:|---:|")
    for label, field in rows:
        print(f"| {label} | {ours[field]:.2f} | {peer[field]:.2f} | "
              f"{ours[field] / peer[field]:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
