"""Replaying failed tasks after their code was fixed: ``hokuro retry``.

Each failed task's function is imported again by the import path in its record
(``module:qualname``) and called with the arguments recorded for it. The caller hands in
the ledger the tasks belong to and the records to replay, as
``MaintenanceService.retry_failed`` does, so this module never imports the service.

Why these choices:
- A function is imported once per replay run, however many of its tasks failed; one that
  cannot be used is reported for each of its tasks and the others are still replayed.
- A function that now records into another ledger is not called: its replays would land
  where the failures are not.
- Arguments stored with pickle are decoded only for a function that chose
  ``codec="pickle"`` itself (invariant 7).
- The items a stage failed on are failed tasks too (collection ``stage:<name>``, import
  path ``stage:<module>:<class>``): they are gathered and replayed through their stage, a
  batch per stage and output database (``hokuro.stages.replay``), after the other tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine.marking import MarkedFunction
from ..model.records import Record, args_not_kept_reason
from ..model.redact import mask_secrets
from ..runs.resolving import import_object, made_for, same_books
from ..store.ledger import TaskDB

#: The import path of a stage's failure records begins with this (see hokuro.stages).
STAGE_PREFIX = "stage:"

__all__ = ["RetryResult", "Unusable", "args_codec", "import_marked", "importable_from",
           "replay_failed"]


@dataclass(slots=True)
class RetryResult:
    """What replaying one failed task gave.

    ``outcome`` is ``done``, ``failed``, ``would_retry`` (dry run), ``not_importable``,
    ``not_replayable`` or ``other_ledger``; ``detail`` says why when it is not ``done``.
    """

    key: str
    fn: str
    fn_path: str | None
    outcome: str
    detail: str | None = None
    #: The key the replayed call got, when it differs from the recorded one (the
    #: function's version or name changed since).
    new_key: str | None = None


@dataclass(frozen=True, slots=True)
class Unusable:
    """Why the function of some failed tasks cannot be replayed here."""

    reason: str
    outcome: str = "not_importable"


def replay_failed(ledger: TaskDB, records: Iterable[Record], *,
                  search_path: str | os.PathLike[str] | None = None,
                  dry_run: bool = False) -> Iterator[RetryResult]:
    """Replay ``records`` (failed tasks of ``ledger``), one result per task, importing their
    functions with ``search_path`` (default: the current folder) first on ``sys.path``.
    With ``dry_run`` the functions are imported and the arguments decoded, but nothing is
    called."""
    imported: dict[str | None, MarkedFunction | Unusable] = {}
    stage_records: list[Record] = []
    with importable_from(Path(search_path) if search_path else Path.cwd()):
        for record in records:
            if record.fn_path and record.fn_path.startswith(STAGE_PREFIX):
                stage_records.append(record)
                continue
            if record.fn_path not in imported:
                imported[record.fn_path] = import_marked(record.fn_path, ledger)
            found = imported[record.fn_path]
            if isinstance(found, Unusable):
                yield RetryResult(record.key, record.fn, record.fn_path, found.outcome,
                                  found.reason)
                continue
            yield _replay(found, record, dry_run)
        if stage_records:
            yield from _replay_stages(ledger, stage_records, dry_run)


def _replay_stages(ledger: TaskDB, records: list[Record], dry_run: bool
                   ) -> Iterator[RetryResult]:
    """The failure records of stages, replayed through their stages (loaded only when some
    are to be replayed: they need SQLAlchemy)."""
    try:
        from ..stages.replay import replay_stage_failures
    except ImportError as exc:
        for record in records:
            yield RetryResult(record.key, record.fn, record.fn_path, "not_importable",
                              f"stages need SQLAlchemy: {exc}")
        return
    for done in replay_stage_failures(ledger, records, dry_run=dry_run):
        yield RetryResult(done.record.key, done.record.fn, done.record.fn_path,
                          done.outcome, done.detail)


def import_marked(fn_path: str | None, ledger: TaskDB) -> MarkedFunction | Unusable:
    """The marked function at ``fn_path``, or why it cannot be used."""
    if not fn_path or ":" not in fn_path:
        return Unusable("its record names no import path for the function")
    module_name, _, qualname = fn_path.partition(":")
    if module_name == "__main__":
        return Unusable(f"{fn_path} was defined in a script run directly (python "
                         "script.py); move it into a module and give its mark name= to "
                         "keep its records")
    if "<locals>" in qualname:
        return Unusable(f"{fn_path} is defined inside a function, so it cannot be "
                         "imported")
    try:
        found: Any = import_object(fn_path)
    except Exception as exc:
        return Unusable(f"cannot import {fn_path}: {type(exc).__name__}: {exc}")
    try:
        found = made_for(found, ledger)
    except Exception as exc:
        return Unusable(f"cannot make the step {fn_path} for this ledger: {exc}")
    if not isinstance(found, MarkedFunction):
        return Unusable(f"{fn_path} is a {type(found).__name__}, not a marked function; "
                         "hokuro retry replays functions marked at module level")
    if same_books(found.spot.ledger, ledger):
        return found
    return Unusable(f"{fn_path} records into {_place(found.spot.ledger)}, not "
                     f"{_place(ledger)}; run hokuro retry from the folder your code runs in",
                     "other_ledger")


def _replay(marked: MarkedFunction, record: Record, dry_run: bool) -> RetryResult:
    result = RetryResult(record.key, record.fn, record.fn_path, "failed")
    if record.args is None:
        result.outcome = "not_replayable"
        result.detail = "its arguments were not recorded (the codec could not encode one)"
        return result
    not_kept = args_not_kept_reason(record.args)
    if not_kept is not None:
        result.outcome = "not_replayable"
        result.detail = not_kept
        return result
    stored = args_codec(record.args)
    if stored == "pickle" and marked.options.codec != "pickle":
        result.outcome = "not_replayable"
        result.detail = ("its arguments were stored with pickle, but the function no "
                         "longer chooses codec='pickle'; hokuro will not unpickle them")
        return result
    codec = marked.codec if stored == marked.options.codec else marked.spot.codec
    try:
        bound = codec.decode(record.args)
        if not isinstance(bound, dict):
            raise ValueError("the recorded arguments are not a mapping")
        call = _call_of(marked, bound, record.key)
    except Exception as exc:
        result.outcome = "not_replayable"
        result.detail = f"its recorded arguments do not fit the function now: {exc}"
        return result
    run, new_key = call
    if new_key != record.key:
        result.new_key = new_key
    if dry_run:
        result.outcome = "would_retry"
        return result
    try:
        value = run()
        if inspect.isawaitable(value):
            asyncio.run(_awaited(value))
    except Exception as exc:
        result.detail = f"{type(exc).__name__}: {exc}"
        return result
    result.outcome = "done"
    return result


def _place(ledger: TaskDB) -> str:
    where = mask_secrets(ledger.describe())
    return where if ledger.spot is None else f"{where} (Spot {ledger.spot!r})"


def args_codec(data: bytes) -> str:
    """The codec that wrote a record's arguments, read from the bytes themselves.

    The arguments are always a mapping. msgpack writes a mapping as 0x80-0x8f, 0xde or
    0xdf, and 0x80 alone only for an empty one; pickle (protocol 2 and up) begins with
    0x80 and a protocol byte. So 0x80 followed by more bytes can only be pickle. The bytes
    are the truth even for records written before ``codec`` was kept with failures.
    """
    return "pickle" if data[:1] == b"\x80" and len(data) > 1 else "msgpack"


def _call_of(marked: MarkedFunction, bound: dict[str, Any], key: str
             ) -> tuple[Callable[[], Any], str]:
    """A thunk that replays the recorded call, and the key that call has now."""
    if marked.resource:
        ident, args = bound.get("ident"), bound.get("args")
        if not isinstance(ident, str):
            raise ValueError("the recorded ident is missing")
        # A resource's key may or may not include its args; the recorded key is the one.
        return (lambda: marked.run_ident(ident, args, key, False)), key
    unknown = sorted(set(bound) - set(marked.signature.parameters))
    if unknown:
        raise ValueError(f"recorded argument(s) {', '.join(unknown)} are no longer parameters")
    call = inspect.BoundArguments(marked.signature, dict(bound))  # type: ignore[arg-type]
    args, kwargs = call.args, call.kwargs
    new_key = marked.key_of(*args, **kwargs)
    return (lambda: marked(*args, **kwargs)), new_key


async def _awaited(value: Any) -> Any:
    return await value


@contextlib.contextmanager
def importable_from(folder: Path) -> Iterator[None]:
    """Put ``folder`` first on ``sys.path`` for the block, as ``python -m`` would."""
    entry = str(folder.absolute())
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    importlib.invalidate_caches()
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)
