"""Where should results leave the SQLite row for a blob file? Measure both sides.

    .venv/bin/python benchmarks/bench_blob_threshold.py

For each result size, a marked function stores its result inline (``save_blob=False``) and
as a blob file (``save_blob=True``); the table shows the time of a miss (encode + write) and
of a hit (read + decode), p50 in microseconds. The default ``blob_threshold`` is the size
from which the blob file is no slower overall.
"""

from __future__ import annotations

import statistics
import tempfile
import time

import hokuro

SIZES = [4 << 10, 16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10, 1 << 20, 2 << 20, 4 << 20]


def measure(size: int, save_blob: bool, rounds: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp, hokuro.Spot("t", workspace=tmp) as spot:
        payload = b"\x07" * size

        @spot.mark(save_blob=save_blob)
        def produce(i: int) -> bytes:
            return payload

        misses, hits = [], []
        for i in range(rounds):
            start = time.perf_counter()
            produce(i)
            misses.append(time.perf_counter() - start)
        for _ in range(3):
            for i in range(rounds):
                start = time.perf_counter()
                produce(i)
                hits.append(time.perf_counter() - start)
        return statistics.median(misses) * 1e6, statistics.median(hits) * 1e6


def main() -> None:
    print("| size | inline miss | blob miss | inline hit | blob hit |")
    print("|---:|---:|---:|---:|---:|")
    for size in SIZES:
        rounds = max(20, min(400, (8 << 20) // size))
        inline = measure(size, False, rounds)
        blob = measure(size, True, rounds)
        print(f"| {size >> 10} KiB | {inline[0]:.0f} | {blob[0]:.0f} | {inline[1]:.0f} | "
              f"{blob[1]:.0f} |")


if __name__ == "__main__":
    main()
