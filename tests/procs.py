"""Functions run in child processes by the multi-process tests (importable by path).

Each takes the workspace first and, last, the db and blobs URLs of the Spot ("" for the
embedded default), so one test drives children on either backend.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def _spot(name: str, workspace: str, db: str, blobs: str, **options):
    import hokuro

    return hokuro.Spot(name, workspace=workspace, db=db or None, blobs=blobs or None,
                       **options)


def counted_call(workspace: str, counter: str, arg: str, sleep: float, db: str = "",
                 blobs: str = "") -> str:
    """Call a marked function that appends a line to ``counter`` each time it executes."""
    spot = _spot("procs", workspace, db, blobs)

    @spot.mark(name="tests.counted")
    def work(x: str) -> str:
        with open(counter, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        time.sleep(float(sleep))
        return f"done:{x}"

    try:
        return work(arg)
    finally:
        spot.close()


def hang_in_call(workspace: str, started: str, arg: str, db: str = "", blobs: str = "") -> None:
    """Start a marked call that never ends on its own; signals when it is running."""
    spot = _spot("procs", workspace, db, blobs)

    @spot.mark(name="tests.counted")
    def work(x: str) -> str:
        Path(started).write_text(str(os.getpid()))
        time.sleep(3600)
        return x

    work(arg)


def many_writes(workspace: str, worker: str, count: str, db: str = "", blobs: str = "") -> int:
    """Make ``count`` distinct marked calls; return how many succeeded."""
    spot = _spot("procs", workspace, db, blobs)

    @spot.mark(name="tests.writes")
    def work(w: int, i: int) -> dict:
        return {"w": w, "i": i, "pad": "x" * 100}

    done = 0
    for i in range(int(count)):
        assert work(int(worker), i) == {"w": int(worker), "i": i, "pad": "x" * 100}
        done += 1
    spot.close()
    return done


def first_calls_in_threads(workspace: str, count: str, db: str = "", blobs: str = "") -> str:
    """This process's first marked calls, ``count`` distinct ones made at once by threads;
    prints how many of them are recorded done."""
    import threading

    spot = _spot("procs", workspace, db, blobs)

    @spot.mark(name="tests.first")
    def work(i: int) -> int:
        return i

    barrier = threading.Barrier(int(count))

    def call(i: int) -> None:
        barrier.wait(10)
        work(i)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(int(count))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done = sum(work.task(i).status == "done" for i in range(int(count)))
    spot.close()
    return str(done)


def _genomes(workspace: str, counter: str, sleep: float, started: str, db: str, blobs: str):
    spot = _spot("res", workspace, db, blobs, lease=float(os.environ.get("LEASE", "60")))

    @spot.resource("genomes")
    def compute(ident, args, ctx):
        if started:
            Path(started).write_text(str(os.getpid()))
        with open(counter, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        ctx.logger.info("computing %s", ident)
        time.sleep(sleep)
        return {"ident": ident}

    return spot


def fetch_resource(workspace: str, counter: str, ident: str, sleep: str, db: str = "",
                   blobs: str = "") -> str:
    spot = _genomes(workspace, counter, float(sleep), "", db, blobs)
    task = spot.fetch("genomes", ident)
    spot.close()
    return f"{task.status}:{task.result['ident']}"


def hang_in_fetch(workspace: str, counter: str, ident: str, started: str, db: str = "",
                  blobs: str = "") -> None:
    spot = _genomes(workspace, counter, 3600.0, started, db, blobs)
    spot.fetch("genomes", ident)


def faulted_calls(workspace: str, worker: str, own: str, shared: str, executions: str,
                  start_at: str, db: str = "", blobs: str = "") -> str:
    """Call ``own`` keys of this worker and ``shared`` keys every worker calls, shuffled.

    Each execution appends the item to ``executions`` (this worker's own file), so the test
    counts executions from outside the ledger. About one result in 25 is large (a blob). Prints
    how many calls returned and how many ledger operations were retried.
    """
    import random

    spot = _spot("faults", workspace, db, blobs)

    @spot.mark(name="tests.faulted", blob_threshold=1024)
    def work(item: str) -> dict:
        with open(executions, "a") as handle:
            handle.write(f"{item}\n")
        time.sleep(0.003)
        return faulted_result(item)

    items = [f"w{worker}-{i}" for i in range(int(own))]
    items += [f"s-{i}" for i in range(int(shared))]
    random.Random(int(worker)).shuffle(items)
    time.sleep(max(0.0, float(start_at) - time.time()))
    for item in items:
        assert work(item) == faulted_result(item), item
    reconnects = getattr(spot.ledger, "reconnects", 0)
    spot.close()
    return f"{len(items)} {reconnects}"


def faulted_result(item: str) -> dict:
    big = sum(map(ord, item)) % 25 == 0
    return {"item": item, "pad": ("x" * 4096) if big else ""}


def batch_run(workspace: str, log: str, count: str, sleep: str, db: str = "",
              blobs: str = "") -> str:
    """``spot.map`` over ``count`` items; each execution appends its item to ``log``."""
    spot = _spot("procs", workspace, db, blobs)

    @spot.mark(name="tests.batch_item")
    def work(i: int) -> int:
        with open(log, "a") as handle:
            handle.write(f"{i}\n")
        time.sleep(float(sleep))
        return i * 2

    run = spot.map(work, range(int(count)), concurrency=8, progress=False, run="batch")
    results = run.results(strict=True)
    assert results == [i * 2 for i in range(int(count))], results
    spot.close()
    return f"{run.status} {len(results)}"


if __name__ == "__main__":  # python procs.py FUNCTION ARGS...
    import signal

    # Tests send Ctrl-C (SIGINT) to these processes. A test run started in the background
    # (`make test &`, nohup) ignores SIGINT, and its children inherit that: restore Python's
    # own handling, as a process started from a terminal has.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    name, *args = sys.argv[1:]
    print(globals()[name](*args))
