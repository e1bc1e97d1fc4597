"""Submitting a run for workers: ``spot.submit(plan, over=items)`` records it and returns.

The run is recorded with status ``submitted`` and its plan's description (which workers
rebuild it from, importing the steps by their recorded paths); its options (retries,
timeout, max_resets) go with it. Nothing executes here.

**A streamed input** (any iterable, a generator of millions too) is read here to its end,
since no worker can read it: it is turned into jobs in windows of :data:`WINDOW` items, one
transaction each, with the run's cursor, so memory stays bounded and workers start on the
first window while the rest is still being inserted. The run cannot finish before its
input is all read (``inputs_done``). Submitting again under the same name after a crash
goes on from the cursor: jobs already inserted are not duplicated.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..model.jobs import JobSpec, RunStatus
from .executor import Options
from .run import Run
from .starting import prepare

#: Input items turned into jobs per transaction.
WINDOW = 1000


def submit(spot: Any, plan: Any, *, over: Iterable[Any] | None, name: str | None,
           options: Options) -> Run:
    settings = {"retries": options.retries, "timeout": options.timeout,
                "max_resets": options.max_resets}
    record, items = prepare(spot, plan, over=over, name=name, status=RunStatus.SUBMITTED,
                            options=spot.codec.encode(settings, root="run options"))
    ledger = spot.ledger
    encode = spot.codec.encode
    specs: list[JobSpec] = []
    cursor = record.cursor

    def flush() -> None:
        ledger.insert_jobs(record.id, specs, spot.clock())
        ledger.update_run(record.id, cursor=cursor, updated_at=spot.clock())
        specs.clear()

    for count, (index, item) in enumerate(items, 1):
        if index is None:  # a plan run once, without input
            specs.extend(plan.root_jobs(None, None))
            cursor = max(cursor, 1)
        else:
            specs.extend(plan.root_jobs(index, encode(item, root=f"input {index}")))
            cursor = index + 1
        if count % WINDOW == 0:
            flush()
    if specs:
        flush()
    record.cursor = cursor
    record.inputs_done = True
    now = spot.clock()
    ledger.update_run(record.id, cursor=cursor, inputs_done=True, updated_at=now)
    # A run with nothing to do (no input, or all of it done before) ends here.
    ledger.finish_run_if_ended(record.id, RunStatus.SUBMITTED, now)
    stored = ledger.get_run(record.id)
    return Run(spot, plan, stored if stored is not None else record)
