"""What every engine's child process shares: sizes, the job log, and the report line.

W1  10,000 jobs of ``await asyncio.sleep(0.1)`` at concurrency 1,000: wall time.
W2  20,000 jobs that do nothing: enqueue them, then drain them (jobs/s of each).
W3  a 5-step pipeline over 1,000 items, steps that do no work: wall / 5,000 is the
    bookkeeping per durable step.
W4  2,000 jobs, each appending its id to the job log when it completes; the child is
    killed (SIGKILL) at half done and started again: ids missing from the log were lost,
    ids logged twice were completed twice.

A child prints one line, ``BENCH-RESULT {json}``, with its figures and its peak RSS.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

W1_JOBS, W1_CONCURRENCY, W1_SLEEP = 10_000, 1_000, 0.1
W2_JOBS = 20_000
W3_ITEMS, W3_STEPS = 1_000, 5
W4_JOBS = 2_000
# Jobs in flight at once in W2-W4, where the workload does not say: enough for every peer
# to batch its bookkeeping, few enough for thread-based peers to keep one thread per job.
CONCURRENCY = 100
# Jobs of W4 take a little time so that a kill lands with jobs in flight.
W4_SLEEP = 0.05

MARK = "BENCH-RESULT "


class JobLog:
    """One line per completed execution, appended with O_APPEND so lines never interleave.

    Written without fsync on purpose: the page cache survives the SIGKILL of the process
    (not of the machine), and an fsync per job would make the log the bottleneck.
    """

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def done(self, job_id: int) -> None:
        os.write(self.fd, b"%d\n" % job_id)


def count_log(path: str) -> tuple[int, int]:
    """(distinct ids, executions beyond the first) in a job log."""
    seen: dict[int, int] = {}
    try:
        with open(path, "rb") as f:
            for line in f:
                if line.strip():
                    key = int(line)
                    seen[key] = seen.get(key, 0) + 1
    except FileNotFoundError:
        return 0, 0
    return len(seen), sum(n - 1 for n in seen.values())


def peak_rss_mb() -> float:
    """Peak RSS of this process or of any child it waited for (a Celery worker), in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024  # ru_maxrss is in KiB on Linux


async def wait_for(predicate: Callable[[], bool], timeout: float, every: float = 0.005) -> None:
    """Poll ``predicate`` until true; the drivers use it where a peer has no "all done" call."""
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("jobs did not finish in time")
        await asyncio.sleep(every)


def main(workloads: dict[str, Callable[[dict[str, Any]], dict[str, Any]]]) -> None:
    """Run ``workloads[config["workload"]]`` with the JSON config given on the command line."""
    config = json.loads(sys.argv[1])
    name = config["workload"]
    if config.get("phase"):
        name = f"{name}_{config['phase']}"
    try:
        if name not in workloads:
            result: dict[str, Any] = {"status": "n/a"}
        else:
            result = {"status": "ok", **workloads[name](config)}
    except ImportError as exc:
        result = {"status": f"not installed ({exc.name or exc})"}
    except TimeoutError as exc:
        result = {"status": f"timeout ({exc})"}
    except Exception as exc:
        traceback.print_exc()
        result = {"status": f"error: {type(exc).__name__}: {exc}"[:200]}
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    print(MARK + json.dumps(result), flush=True)
    sys.stdout.flush()
    # Some peers leave non-daemon threads behind (pools, listeners): the figures are out.
    os._exit(0)
