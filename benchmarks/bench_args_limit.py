"""How much does keeping a call's arguments cost a miss? Measure, to choose ``args_limit``.

    .venv/bin/python benchmarks/bench_args_limit.py

For each argument size, a trivial marked function (it returns the length of its argument) is
called with distinct arguments of that size: once keeping the arguments in the record
(``args_limit=None``) and once keeping only the key (``store_args=False``). The table shows
the p50 time of a miss in milliseconds and the share of it spent keeping the arguments. The
key (a hash of the arguments) is computed in both cases.
"""

from __future__ import annotations

import statistics
import tempfile
import time

import hokuro

SIZES = [1 << 10, 16 << 10, 64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20, 4 << 20,
         16 << 20, 50 << 20]


def measure(size: int, keep: bool, rounds: int) -> float:
    """p50 miss in ms."""
    with tempfile.TemporaryDirectory() as tmp, \
            hokuro.Spot("t", workspace=tmp, args_limit=None) as spot:

        @spot.mark(name="bench.length", store_args=keep)
        def length(data: bytes) -> int:
            return len(data)

        base = bytearray(size)
        times = []
        for i in range(rounds):
            base[:8] = i.to_bytes(8, "little")  # a distinct task each round
            arg = bytes(base)
            start = time.perf_counter()
            length(arg)
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1e3


def main() -> None:
    print("| argument size | miss, arguments kept | miss, key only | keeping costs |")
    print("|---:|---:|---:|---:|")
    for size in SIZES:
        rounds = max(5, min(200, (64 << 20) // size))
        kept = measure(size, True, rounds)
        key_only = measure(size, False, rounds)
        label = f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"
        print(f"| {label} | {kept:.2f} ms | {key_only:.2f} ms | "
              f"{kept - key_only:.2f} ms ({100 * (kept - key_only) / kept:.0f} %) |", flush=True)


if __name__ == "__main__":
    main()
