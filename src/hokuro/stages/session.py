"""The stage session: runs stages over items in an output database, one batch per call,
with their ``depends`` first and their ``trigger`` stages after the commit.

``StageSession(db, spot=None)``: ``db`` is any SQLAlchemy URL or Engine (where outputs and
lineage go); ``spot`` is the Spot whose ledger collects failures (default: ``Spot()`` in the
working directory, opened when a failure is first recorded).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ..errors import ConfigurationError
from .batch import BatchReport, run_batch
from .collector import ErrorCollector
from .lineage import OutputTables
from .output import (
    DEFAULT_FLUSH_EVERY,
    Outputs,
    for_stages,
    open_engine,
    public_url,
    remember_engine,
)
from .registry import Registered, check_names, lookup, triggered_by
from .variables import Variables

__all__ = ["StageSession", "chain_of"]


def chain_of(name: str) -> list[str]:
    """The stages triggered by ``name``'s results (directly)."""
    return [entry.name for entry in triggered_by(name)]


def _name_and_items(first: Any, second: Any) -> tuple[str, Any]:
    """``run(items, name)`` (datapipe's real order) or ``run(name, items)`` (its README's)."""
    if isinstance(first, str) and not isinstance(second, str):
        return first, second
    if isinstance(second, str) and not isinstance(first, str):
        return second, first
    raise ConfigurationError("run takes a stage name and the items: run('discount_sum', "
                             "items) or run(items, 'discount_sum')")


class StageSession:
    """Runs registered stages over items, writing outputs and lineage to ``db``."""

    def __init__(self, db: Any, *, spot: Any = None, debug: bool = False,
                 flush_every: int = DEFAULT_FLUSH_EVERY,
                 clock: Callable[[], float] = time.time,
                 collector: ErrorCollector | None = None) -> None:
        if not isinstance(flush_every, int) or flush_every < 1:
            raise ConfigurationError("flush_every must be a whole number of rows >= 1")
        self.engine: Engine = open_engine(db)
        self._owns_engine = not isinstance(db, Engine)
        remember_engine(self.engine)
        self.db_url = public_url(self.engine)
        self._bind = for_stages(self.engine)
        self.debug = debug
        self.flush_every = flush_every
        self.clock = clock
        self._spot = spot
        self._collector = collector
        self._tables = OutputTables()

    @property
    def spot(self) -> Any:
        if self._spot is None:
            from ..engine.spot import Spot

            self._spot = Spot()
        return self._spot

    @property
    def collector(self) -> ErrorCollector:
        if self._collector is None:
            self._collector = ErrorCollector(self.spot.ledger, self.spot.codec, self.clock)
        return self._collector

    def run(self, first: Any, second: Any = None, *, context: Any = None) -> BatchReport:
        """Run stage ``name`` over ``items`` as one batch (``run(name, items)`` or
        ``run(items, name)``): its ``depends`` first on the same items, then the stage, then
        — after the commit, if it had results — the stages it triggers, on its results.
        ``context`` (a dict or :class:`Variables`) is shared by all of them. Returns the
        stage's :class:`BatchReport`; ``report.chained`` holds the others'."""
        name, items = _name_and_items(first, second)
        if isinstance(items, str | bytes | dict) or not isinstance(items, Iterable):
            raise ConfigurationError(f"stage {name!r} runs over items (a list, or any "
                                     f"iterable), not {type(items).__name__}")
        check_names()
        entry = lookup(name)
        shared = context if isinstance(context, Variables) else Variables(context)
        return self.run_entry(entry, list(items), shared)

    def run_entry(self, entry: Registered, items: list[Any], context: Variables, *,
                  depends: bool = True, _path: tuple[str, ...] = ()) -> BatchReport:
        if entry.name in _path:
            raise ConfigurationError(
                f"stage {entry.name!r} triggers itself through {' -> '.join(_path)}; "
                "remove one of these triggers")
        path = (*_path, entry.name)
        chained: list[BatchReport] = []
        if depends:
            for name in entry.depends:
                chained.append(self.run_entry(lookup(name), items, context, _path=path))
        report = self.batch(entry, items, context)
        report.chained = chained
        if report.results:
            for below in triggered_by(entry.name):
                report.chained.append(self.run_entry(below, list(report.results), context,
                                                     _path=path))
        return report

    def batch(self, entry: Registered, items: list[Any], context: Variables) -> BatchReport:
        """One batch of one stage in one transaction; then failures are recorded and the
        failures of items that now succeeded are resolved."""
        if not items:  # datapipe raised IndexError here
            return BatchReport(entry.name)
        snapshot = context.as_dict()
        with Session(self._bind, expire_on_commit=False) as session:
            outputs = Outputs(session, entry.name, chain_of, self._tables, self.flush_every)
            try:
                report = run_batch(entry, items, context, session, outputs, debug=self.debug)
                session.commit()
            except BaseException:
                session.rollback()
                raise
        if report.failures:
            self.collector.record(entry.name, entry.path, report.failures, snapshot,
                                  self.db_url)
        if report.kept and self._may_hold_failures():
            self.collector.resolve(entry.name, report.kept,
                                   f"processed again at {time.strftime('%Y-%m-%d %H:%M:%S')}")
        return report

    def _may_hold_failures(self) -> bool:
        """False only when no Spot was given and the default one has no ledger yet: then
        no failure was ever recorded there, and running a stage creates no ledger file."""
        if self._spot is not None or self._collector is not None:
            return True
        from ..engine.spot import default_workspace

        return (default_workspace() / "default.db").exists()

    def close(self) -> None:
        """Close the pooled connections of an engine the session opened from a URL (an
        Engine you gave stays as it is)."""
        self._collector = None
        if self._owns_engine:
            self.engine.dispose()

    def __enter__(self) -> StageSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"StageSession(db={self.db_url!r})"
