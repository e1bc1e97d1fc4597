"""How fast ``hokuro stats`` and ``hokuro errors`` answer on big ledgers.

Builds a SQLite ledger of 1,000,000 records (5 collections, 4 statuses, sizes, some with a
retention), times ``MaintenanceService.stats()`` and ``hokuro stats`` on it (best of 3),
then ``hokuro errors`` on 1,000 failures of 3 kinds, and prints the query plan of the
stats query; then the same counts taken from every record, as ledgers before the tally
(schema 6) are read. The goal: stats under one second with no row cap.

    python benchmarks/bench_stats.py [--records N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from click.testing import CliRunner

from hokuro.admin.maintenance import MaintenanceService
from hokuro.cli import main
from hokuro.model.records import Record, Status
from hokuro.store.ledger.sqlite import Q, SQLiteLedger

COLLECTIONS = [f"pipeline.step_{i}" for i in range(5)]
# Mostly done, as in a real batch; a few running tasks, most of them abandoned.
STATUSES = [(Status.DONE, 0.86), (Status.FAILED, 0.10), (Status.CANCELLED, 0.0399),
            (Status.RUNNING, 0.0001)]
ERRORS = [
    ("ValueError", "0a1b2c3d4e5f6071", "ValueError: bad input"),
    ("TimeoutError", "1b2c3d4e5f607182", "TimeoutError: no answer"),
    ("KeyError", "2c3d4e5f60718293", "KeyError: 'id'"),
]
TRACEBACK = ('Traceback (most recent call last):\n  File "pipeline.py", line 42, in step\n'
             '    return call(item)\n  File "client.py", line 7, in call\n'
             '    raise error\n{}\n')


def records(n: int, *, failures_only: bool = False, seed: int = 1) -> Iterator[Record]:
    rng = random.Random(seed)
    now = time.time()
    statuses = [s for s, _ in STATUSES]
    weights = [w for _, w in STATUSES]
    for i in range(n):
        status = Status.FAILED if failures_only else rng.choices(statuses, weights)[0]
        fn = COLLECTIONS[i % len(COLLECTIONS)]
        updated = now - rng.random() * 30 * 86400
        record = Record(key=f"{rng.getrandbits(128):032x}", fn=fn, status=status,
                        fn_path=f"pipeline:{fn.rsplit('.', 1)[1]}", created_at=updated - 5,
                        started_at=updated - 2, finished_at=updated, updated_at=updated,
                        attempts=1)
        if status == Status.DONE:
            record.size = rng.randint(20, 4000)
            record.codec = "msgpack"
            record.result = b"\x00" * 8
            if i % 10 == 0:
                record.expires_at = now + rng.uniform(-86400, 86400)
        elif status == Status.FAILED:
            error_type, fingerprint, last = ERRORS[i % len(ERRORS)]
            record.error_type, record.error_fingerprint = error_type, fingerprint
            record.error = TRACEBACK.format(f"{last} #{i}")
        elif status == Status.RUNNING:
            alive = i % 50 == 0
            record.owner = "elsewhere|1|0.00|bench"
            record.lease_until = now + 3600 if alive else now - 3600
            record.finished_at = None
        yield record


def build(path: Path, n: int, **kwargs: object) -> float:
    started = time.perf_counter()
    ledger = SQLiteLedger(path)
    batch = 100_000
    made = records(n, **kwargs)  # type: ignore[arg-type]
    for _ in range(0, n, batch):
        ledger.put_many(r for _, r in zip(range(batch), made, strict=False))
    ledger.close()
    return time.perf_counter() - started


def best_of(runs: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def cli(*args: str) -> None:
    result = CliRunner().invoke(main, list(args))
    if result.exit_code != 0:
        raise SystemExit(f"hokuro {' '.join(args)} failed: {result.output}")


def plan(path: Path, query: str = "stats") -> list[str]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("EXPLAIN QUERY PLAN " + Q[query],
                            {"fn": None, "now": time.time()}).fetchall()
        return [row[-1] for row in rows]
    finally:
        conn.close()


def main_(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="build the ledgers here and keep them")
    options = parser.parse_args(argv)
    folder = options.keep or Path(tempfile.mkdtemp(prefix="hokuro-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    big, errs = folder / "big.db", folder / "errors.db"

    if not big.exists():
        print(f"building {options.records:,} records in {big} ...", flush=True)
        print(f"  built in {build(big, options.records):.1f} s")
    if not errs.exists():
        build(errs, 1000, failures_only=True, seed=2)

    print(f"ledger file: {big.stat().st_size / 2**20:.0f} MiB")
    print("stats query plan:", " | ".join(plan(big)))
    with MaintenanceService.from_path(big, read_only=True) as service:
        counts = service.stats()["counts"]
        print(f"counts: {counts}")
        library = best_of(3, service.stats)
    command = best_of(3, lambda: cli("stats", str(big), "--json"))
    script = Path(sys.executable).with_name("hokuro")
    launcher = [str(script)] if script.exists() else \
        [sys.executable, "-c", "from hokuro.cli import main; main()"]
    started = time.perf_counter()
    subprocess.run([*launcher, "stats", str(big), "--json"], check=True, capture_output=True)
    process = time.perf_counter() - started
    errors_small = best_of(3, lambda: cli("errors", str(errs), "--json"))
    errors_big = best_of(1, lambda: cli("errors", str(big), "--json"))

    print(f"MaintenanceService.stats() on {options.records:,} records: {library:.3f} s "
          "(best of 3)")
    print(f"hokuro stats --json (in process):       {command:.3f} s (best of 3)")
    print(f"hokuro stats --json (new process):      {process:.3f} s (once, with start-up)")
    print(f"hokuro errors on 1,000 failures:        {errors_small:.3f} s (best of 3)")
    print(f"hokuro errors on the big ledger ({counts.get('failed', 0):,} failures): "
          f"{errors_big:.3f} s (once)")

    # What the ledgers of schemas 2 to 5 do, read where they are: count every record
    # (through the covering index tasks_fn_status) instead of reading the tally.
    conn = sqlite3.connect(big)
    print("counted, plan:", " | ".join(plan(big, "stats_scan")))
    counted = best_of(3, lambda: conn.execute(Q["stats_scan"],
                                              {"fn": None, "now": time.time()}).fetchall())
    conn.close()
    print(f"the same counts from every record (schemas 2 to 5): {counted:.3f} s (best of 3)")
    if not options.keep:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


if __name__ == "__main__":
    main_()
