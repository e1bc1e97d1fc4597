"""A stage over many items on the run engine: ``hokuro.run_stage(spot, name, items,
chunk=10, db=...)``.

The items are cut into chunks; each chunk is a job of a run (its step: :func:`run_chunk`, a
marked function of the Spot), and each chunk is one batch of the stage (with its depends
and triggers) in its own transaction. So progress, resume, ``hokuro runs`` and — once
hokuro's workers and Celery integration land — other machines apply. A chunk's input is
plain data: the stage's name, the items (an ORM item as its class and primary key, loaded
again by the job), the context, the output database's URL without its password, and a
token of this call (so a second ``run_stage`` over the same items processes them again,
while a resumed run keeps the chunks it finished).

Why a function and not ``spot.run_stage``: the Spot lives in the engine, below stages, and
must not import them; a hook that stages would install into the Spot at import time would
make ``spot.run_stage`` exist or not depending on what was imported. A function of the
stages layer that takes the Spot is the honest form.

A chunk killed with its process is run again when the run resumes; its batch had either
committed or not, and lineage makes a second pass replace the first, so each item's outputs
exist exactly once.
"""

from __future__ import annotations

import itertools
import os
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy.orm import Session

from ..errors import ConfigurationError
from .batch import BatchReport
from .items import item_of_ref, ref_of
from .output import (
    DEFAULT_FLUSH_EVERY,
    known_engine,
    open_engine,
    public_url,
    remember_engine,
)
from .registry import check_names, lookup
from .session import StageSession
from .variables import Variables

__all__ = ["chunk_step", "run_chunk", "run_stage"]

#: The name of the chunk step in runs and records.
STEP_NAME = "stage-chunk"
_spots: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_spots_lock = threading.Lock()
_worker_engines: dict[str, Any] = {}


def run_stage(spot: Any, name: str, items: Iterable[Any], *, db: Any, chunk: int = 10,
              context: dict[str, Any] | None = None, concurrency: int = 4,
              run: str | None = None, progress: bool | None = None, debug: bool = False,
              flush_every: int = DEFAULT_FLUSH_EVERY, scope: str | None = None,
              submit: bool = False) -> Any:
    """Run stage ``name`` over ``items`` in chunks of ``chunk`` items, each chunk a job of a
    run of ``spot`` (``concurrency`` chunks at a time); returns the
    :class:`~hokuro.runs.run.Run` (each chunk's result is a summary: done, ignored, failed,
    broken, missing). Started again with the same ``run`` name after a crash, the run
    resumes: finished chunks stay finished. ``context`` (plain data) is each chunk's
    starting context.

    With ``submit=True`` nothing runs here: the run is recorded for workers (``hokuro
    worker SPOT --import <the module that registers the stage>``), which run its chunks;
    ``run.wait()`` waits for them."""
    if not isinstance(chunk, int) or chunk < 1:
        raise ConfigurationError("chunk must be a whole number of items >= 1")
    if isinstance(items, str | bytes | dict) or not isinstance(items, Iterable):
        raise ConfigurationError(f"run_stage runs over items (a list, or any iterable), not "
                                 f"{type(items).__name__}")
    check_names()
    lookup(name)
    engine = open_engine(db)
    remember_engine(engine)
    shared = dict(context or {})
    try:
        spot.codec.encode(shared)
    except Exception as exc:
        raise ConfigurationError(f"the context of a chunked run travels with its jobs, so it "
                                 f"must be plain data hokuro's codec encodes: {exc}") from exc
    step = chunk_step(spot, scope=scope)
    token = os.urandom(8).hex()
    payloads = _payloads(name, items, chunk, shared, public_url(engine), spot.name, token,
                         debug, flush_every)
    if submit:
        return spot.submit(step, over=payloads, name=run or f"stage:{name}")
    return spot.map(step, payloads, concurrency=concurrency, run=run or f"stage:{name}",
                    progress=progress)


def chunk_step(spot: Any, *, scope: str | None = None) -> Any:
    """The chunk step as a marked function of ``spot``: what ``run_stage`` runs, and what
    whoever rebuilds a stage run's plan elsewhere (``hokuro retry --run``, workers) resolves
    the import path ``hokuro.stages.chunks:run_chunk`` to."""
    with _spots_lock:
        # Chunk jobs find their Spot by name (their input is plain data): the Spot that
        # made the step last. Two Spots of one name but different ledgers running stage
        # chunks at once in one process would share it.
        _spots[spot.name] = spot
    return spot.mark(run_chunk, name=STEP_NAME, **({"scope": scope} if scope else {}))


def _step_for_ledger(ledger: Any) -> Any:
    """The chunk step of a Spot over ``ledger`` (``hokuro retry --run`` has a ledger, not
    the Spot that ran the stage)."""
    from ..engine.spot import Spot

    return chunk_step(Spot(ledger.spot or "default", db=ledger))


def _payloads(name: str, items: Iterable[Any], chunk: int, context: dict[str, Any],
              db_url: str, spot: str, token: str, debug: bool, flush_every: int
              ) -> Iterator[dict[str, Any]]:
    iterator = iter(items)
    while True:
        part = list(itertools.islice(iterator, chunk))
        if not part:
            return
        yield {"stage": name, "items": [ref_of(item) for item in part], "context": context,
               "db": db_url, "spot": spot, "call": token, "debug": debug,
               "flush_every": flush_every}


def run_chunk(chunk: dict[str, Any]) -> dict[str, Any]:
    """The step of a chunk job: one batch of the stage (with its depends and triggers) over
    the chunk's items. Returns a summary of the stage's batch and of the chained ones."""
    check_names()
    entry = lookup(chunk["stage"])
    spot = _spot_named(chunk["spot"])
    engine = known_engine(chunk["db"])  # the caller's, when run_stage runs in this process
    if engine is None:  # a worker's own engine for this URL, kept for its next chunks
        engine = open_engine(chunk["db"])
        with _spots_lock:
            _worker_engines.setdefault(chunk["db"], engine)
    session = StageSession(engine, spot=spot, debug=chunk.get("debug", False),
                           flush_every=chunk.get("flush_every", DEFAULT_FLUSH_EVERY))
    missing = 0
    with Session(session.engine, expire_on_commit=False) as loader:
        items = []
        for value in chunk["items"]:
            try:
                items.append(item_of_ref(value, loader))
            except LookupError:  # deleted since the run started: nothing to process
                missing += 1
        report = session.run_entry(entry, items, Variables(chunk.get("context")))
    summary = _summary(report)
    summary["missing"] = missing
    return summary


#: How admin/replay.py turns this import path into a marked step for a given ledger.
run_chunk.__hokuro_mark_for__ = _step_for_ledger  # type: ignore[attr-defined]


def _summary(report: BatchReport) -> dict[str, Any]:
    return {"stage": report.stage, "done": report.done, "ignored": report.ignored,
            "failed": report.failed, "broken": report.broken, "results": len(report.results),
            "chained": [_summary(r) for r in report.chained]}


def _spot_named(name: str) -> Any:
    with _spots_lock:
        spot = _spots.get(name)
    if spot is None:  # another process (a worker): the Spot of that name here
        from ..engine.spot import Spot

        spot = Spot(name)
        with _spots_lock:
            _spots[name] = spot
    return spot
