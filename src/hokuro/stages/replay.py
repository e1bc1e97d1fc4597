"""Replaying the items a stage failed on, after a fix: what ``hokuro retry`` does with the
failure records of stages (``admin/replay.py`` hands them here).

Records are grouped by stage, output database and recorded context; each group is one
batch of the stage (its depends are not run again: the context recorded is the one the
stage started with, after them; the stages it triggers run on its results as usual). An item
now kept — or ignored on purpose — has its record marked done (resolved); one that fails
again has its record updated (one more attempt) and is reported failed.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from ..model.codec import Codec
from ..model.records import Record
from .collector import COLLECTION, ErrorCollector
from .items import item_of_ref
from .output import missing_file, open_engine
from .registry import Registered, check_names, find, lookup
from .session import StageSession
from .variables import Variables

__all__ = ["ReplayOutcome", "is_stage_record", "replay_stage_failures"]


@dataclass(slots=True)
class ReplayOutcome:
    """What replaying one failure record gave: ``done``, ``failed``, ``would_retry``,
    ``not_importable`` or ``not_replayable``, and why when it is not ``done``."""

    record: Record
    outcome: str
    detail: str | None = None


def is_stage_record(record: Record) -> bool:
    return bool(record.fn_path and record.fn_path.startswith(COLLECTION))


def replay_stage_failures(ledger: Any, records: Iterable[Record], *, dry_run: bool = False,
                          clock: Any = None) -> Iterator[ReplayOutcome]:
    """Replay the failure records of stages (see the module's docstring)."""
    import time

    codec = Codec()
    collector = ErrorCollector(ledger, codec, clock or time.time)
    groups: dict[tuple[str, str, bytes], list[tuple[Record, Any]]] = {}
    entries: dict[str, Registered] = {}
    for record in records:
        found = _entry(record, entries)
        if isinstance(found, str):
            yield ReplayOutcome(record, "not_importable", found)
            continue
        try:
            args = codec.decode(record.args) if record.args else None
            if not isinstance(args, dict) or "item" not in args:
                raise ValueError("its item was not recorded (the codec could not encode it)")
        except Exception as exc:
            yield ReplayOutcome(record, "not_replayable", str(exc))
            continue
        if dry_run:
            yield ReplayOutcome(record, "would_retry")
            continue
        context = codec.encode(args.get("context") or {})
        groups.setdefault((found.name, args["db"], context), []).append((record, args))
    for (name, db, context), members in groups.items():
        yield from _replay_group(entries[name], db, codec.decode(context), members,
                                 collector)


def _entry(record: Record, entries: dict[str, Registered]) -> Registered | str:
    """The registered stage of a failure record, importing its class's module; or why not."""
    assert record.fn_path is not None
    path = record.fn_path[len(COLLECTION):]
    name = record.fn[len(COLLECTION):]
    if name in entries:
        return entries[name]
    module = path.partition(":")[0]
    known = find(name)
    if known is not None:  # registered in this process already: no import needed
        entries[name] = known
        return known
    if module == "__main__":
        return (f"stage {name!r} was defined in a script run directly (python script.py); "
                "move it into a module to replay its failures")
    try:
        importlib.import_module(module)
        check_names()
        entry = lookup(name)
    except Exception as exc:
        return f"cannot load stage {name!r} from {module}: {type(exc).__name__}: {exc}"
    entries[name] = entry
    return entry


def _replay_group(entry: Registered, db: str, context: dict[str, Any],
                  members: list[tuple[Record, Any]], collector: ErrorCollector
                  ) -> Iterator[ReplayOutcome]:
    gone = missing_file(db)
    if gone is not None:
        for record, _ in members:
            yield ReplayOutcome(record, "not_replayable",
                                f"its output database {gone} does not exist")
        return
    try:
        session = StageSession(open_engine(db), collector=collector)
    except Exception as exc:
        for record, _ in members:
            yield ReplayOutcome(record, "not_replayable",
                                f"cannot open its output database {db}: {exc}")
        return
    items, wanted = [], []
    with Session(session.engine, expire_on_commit=False) as loader:
        for record, args in members:
            try:
                items.append(item_of_ref(args["item"], loader))
                wanted.append(record)
            except Exception as exc:
                yield ReplayOutcome(record, "not_replayable", str(exc))
        if not items:
            return
        try:
            report = session.run_entry(entry, items, Variables(context), depends=False)
        except Exception as exc:  # Error, or a fault outside process(): nothing was kept
            for record in wanted:
                yield ReplayOutcome(record, "failed", f"{type(exc).__name__}: {exc}")
            return
    ignored = set(report.ignored_items)
    if ignored:
        collector.resolve(entry.name, sorted(ignored), "ignored by the stage when replayed",
                          known_failed=True)
    failed = {f.identity: f.error for f in report.failures}
    kept = set(report.kept)
    for record in wanted:
        ident = record.ident or ""
        if ident in kept:
            yield ReplayOutcome(record, "done")
        elif ident in ignored:
            yield ReplayOutcome(record, "done", "ignored by the stage")
        elif ident in failed:
            error = failed[ident]
            yield ReplayOutcome(record, "failed", f"{type(error).__name__}: {error}")
        elif report.broken:
            yield ReplayOutcome(record, "failed", "not reached: an earlier item raised Break")
        else:
            yield ReplayOutcome(record, "failed", "prepare() left it out of the batch")

