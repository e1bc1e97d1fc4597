"""Worker processes on this machine, forked from this one: ``spot.run(..., workers=N)`` and
``hokuro demo --workers N``.

A forked child has this process's objects: it serves this run with its plan as it is here
(steps defined anywhere, closures too), and only this run. It starts with no inherited
connections, flights or leases (invariant 9). The children are stopped with SIGTERM once
the run has ended (they finish what runs, then exit), and killed if they do not exit within
their grace.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
from collections.abc import Iterable
from typing import Any

from ..errors import ConfigurationError
from .executor import Options
from .progress import RunProgress, wanted
from .run import Run
from .submitting import submit

#: Seconds the children get to stop after the run ended.
STOP_GRACE = 10.0


class LocalWorkers:
    """``count`` worker processes serving ``spot`` (forked), stopped by :meth:`stop`."""

    def __init__(self, spot: Any, count: int, *, concurrency: int = 32,
                 scopes: list[str] | None = None, grace: float = STOP_GRACE,
                 plans: dict[str, Any] | None = None) -> None:
        if "fork" not in multiprocessing.get_all_start_methods():
            raise ConfigurationError("local worker processes are forked, which this platform "
                                     "cannot do; start hokuro worker processes instead")
        self.spot = spot
        self.grace = grace
        context = multiprocessing.get_context("fork")
        self.processes = [context.Process(target=_serve, args=(spot, concurrency, scopes,
                                                               grace, plans),
                                          name=f"hokuro-worker-{n}", daemon=True)
                          for n in range(count)]

    def start(self) -> LocalWorkers:
        for process in self.processes:
            process.start()
        return self

    def stop(self) -> list[int | None]:
        """SIGTERM each, wait for them to finish (killed past the grace); exit codes."""
        for process in self.processes:
            if process.pid is not None and process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        for process in self.processes:
            process.join(self.grace + 5)
            if process.is_alive():
                process.kill()
                process.join()
        return [p.exitcode for p in self.processes]

    def __enter__(self) -> LocalWorkers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _serve(spot: Any, concurrency: int, scopes: list[str] | None, grace: float,
           plans: dict[str, Any] | None) -> None:
    from .worker import Worker

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops us
    Worker(spot, concurrency=concurrency, scopes=scopes, grace=grace, plans=plans).run()
    sys.stdout.flush()
    os._exit(0)  # no atexit of the parent's (its threads, its pools) in a forked child


def run_on_local_workers(spot: Any, plan: Any, *, over: Iterable[Any] | None,
                         name: str | None, workers: int, progress: bool | None,
                         options: Options) -> Run:
    """Submit the run, serve it with ``workers`` forked processes, wait for its end."""
    run = submit(spot, plan, over=over, name=name, options=options)
    with LocalWorkers(spot, workers, concurrency=options.concurrency, plans={run.id: plan}):
        if wanted(progress):
            RunProgress(run.id, spot.ledger, run.tally).watch(run)
        else:
            run.wait()
    return run.refresh()
