"""Functions run in child processes by the multi-process tests (importable by path)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def counted_call(workspace: str, counter: str, arg: str, sleep: float, db: str = "",
                 blobs: str = "") -> str:
    """Call a marked function that appends a line to ``counter`` each time it executes."""
    import hokuro

    spot = hokuro.Spot("procs", workspace=workspace, db=db or None, blobs=blobs or None)

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


def hang_in_call(workspace: str, started: str, arg: str, db: str = "") -> None:
    """Start a marked call that never ends on its own; signals when it is running."""
    import hokuro

    spot = hokuro.Spot("procs", workspace=workspace, db=db or None)

    @spot.mark(name="tests.counted")
    def work(x: str) -> str:
        Path(started).write_text(str(os.getpid()))
        time.sleep(3600)
        return x

    work(arg)


def many_writes(workspace: str, worker: str, count: str, db: str = "") -> int:
    """Make ``count`` distinct marked calls; return how many succeeded."""
    import hokuro

    spot = hokuro.Spot("procs", workspace=workspace, db=db or None)

    @spot.mark(name="tests.writes")
    def work(w: int, i: int) -> dict:
        return {"w": w, "i": i, "pad": "x" * 100}

    done = 0
    for i in range(int(count)):
        assert work(int(worker), i) == {"w": int(worker), "i": i, "pad": "x" * 100}
        done += 1
    spot.close()
    return done


def _genomes(workspace: str, counter: str, sleep: float, started: str = ""):
    import hokuro

    spot = hokuro.Spot("res", workspace=workspace, lease=float(os.environ.get("LEASE", "60")))

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


def fetch_resource(workspace: str, counter: str, ident: str, sleep: str) -> str:
    spot = _genomes(workspace, counter, float(sleep))
    task = spot.fetch("genomes", ident)
    spot.close()
    return f"{task.status}:{task.result['ident']}"


def hang_in_fetch(workspace: str, counter: str, ident: str, started: str) -> None:
    spot = _genomes(workspace, counter, 3600.0, started)
    spot.fetch("genomes", ident)


if __name__ == "__main__":  # python procs.py FUNCTION ARGS...
    name, *args = sys.argv[1:]
    print(globals()[name](*args))
