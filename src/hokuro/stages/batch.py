"""One batch of one stage: prepare, each item in its SAVEPOINT, finish, one commit.

The batch is one transaction of the output session. Each item runs on a new stage object
(``self`` lives for one item) inside a SAVEPOINT; its saves are buffered and written in
groups (see :mod:`hokuro.stages.output`). What each outcome does:

- returned, or ``Continue(result)``: the item's outputs are kept; a non-None result is
  collected for ``finish`` and for the stages it triggers;
- ``Ignore``: the item is rolled back; ``Break``: rolled back, and the batch stops
  (``finish`` still runs; items not reached keep their previous outputs);
- ``Error``: the whole batch is rolled back and the error raised;
- any other exception: the item is rolled back and handed to the error collector; the batch
  goes on. With ``debug=True`` it is raised instead, after rolling the batch back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .collector import Failure
from .flow import Break, Continue, Error, Ignore
from .items import identity as identity_of
from .output import Outputs
from .registry import Registered
from .variables import Variables

__all__ = ["BatchReport", "run_batch"]


@dataclass(slots=True)
class BatchReport:
    """What one batch of one stage did."""

    stage: str
    #: Items that ``prepare`` returned.
    prepared: int = 0
    #: Items whose outputs were kept (returned normally or through ``Continue``).
    done: int = 0
    ignored: int = 0
    #: Identities of the items that raised ``Ignore``.
    ignored_items: list[str] = field(default_factory=list)
    #: True when an item raised ``Break``; ``unreached`` items were not processed.
    broken: bool = False
    unreached: int = 0
    failures: list[Failure] = field(default_factory=list)
    #: The non-None results of ``process``, in item order.
    results: list[Any] = field(default_factory=list)
    #: Identities of the items whose outputs were kept.
    kept: list[str] = field(default_factory=list)
    #: Reports of the stages run with this one: its depends, then those it triggered.
    chained: list[BatchReport] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.failures)


def new_stage(cls: type, item: Any, local: Variables, context: Variables, outputs: Any,
              session: Any) -> Any:
    """A stage object for one item (or, with ``item=None``, for prepare and finish)."""
    stage = cls.__new__(cls)
    stage.__dict__.update(item=item, local=local, context=context, session=session,
                          _outputs=outputs)
    return stage


def run_batch(entry: Registered, items: list[Any], context: Variables, session: Any,
              outputs: Outputs | None, *, debug: bool = False,
              key: Callable[[Any], Any] | None = None) -> BatchReport:
    """Process ``items`` through the stage in ``session``'s current transaction. The caller
    commits; on ``Error`` (or any error with ``debug``, or outside ``process``) the caller
    rolls back. ``outputs=None`` processes without a database (``Stage.eval``)."""
    report = BatchReport(entry.name)
    local = Variables()
    head = new_stage(entry.cls, None, local, context, outputs, session)
    prepared = list(head.prepare(list(items)))
    report.prepared = len(prepared)
    collected: list[tuple[int, str, Any]] = []
    for index, item in enumerate(prepared):
        ident = identity_of(item, key or entry.key)
        stage = new_stage(entry.cls, item, local, context, outputs, session)
        if outputs is not None:
            outputs.start_item(ident, index)
        savepoint = session.begin_nested() if session is not None else None
        try:
            result = stage.process()
        except Continue as signal:
            result = signal.result
        except Ignore:
            _undo(savepoint, outputs)
            report.ignored += 1
            report.ignored_items.append(ident)
            continue
        except Break:
            _undo(savepoint, outputs)
            report.broken = True
            report.unreached = len(prepared) - index - 1
            break
        except Error:
            _undo(savepoint, outputs)
            raise
        except Exception as exc:
            _undo(savepoint, outputs)
            if debug:
                raise
            report.failures.append(Failure(index, item, ident, exc))
            continue
        if savepoint is not None:
            savepoint.commit()
        if outputs is not None:
            outputs.keep_item()
        collected.append((index, ident, result))
    if outputs is not None:
        outputs.flush()
        refused = {index: exc for index, _, exc in outputs.refused}
        if refused:
            if debug:
                raise next(iter(refused.values()))
            for index, ident, _ in collected:
                if index in refused:
                    report.failures.append(Failure(index, prepared[index], ident,
                                                   refused[index]))
            collected = [c for c in collected if c[0] not in refused]
            report.failures.sort(key=lambda f: f.index)
    report.done = len(collected)
    report.kept = [ident for _, ident, _ in collected]
    report.results = [result for _, _, result in collected if result is not None]
    head.finish(list(report.results))
    local.clear()
    return report


def _undo(savepoint: Any, outputs: Outputs | None) -> None:
    if outputs is not None:
        outputs.drop_item()
    if savepoint is not None and savepoint.is_active:
        savepoint.rollback()
