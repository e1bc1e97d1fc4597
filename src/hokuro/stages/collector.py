"""The error collector: an item that raised is a failed task record in the Spot's ledger.

One record per (stage, item identity), keyed like a resource's ident, under the collection
``stage:<name>``: the error's type, message and traceback, a fingerprint that ignores line
numbers (so ``hokuro errors`` groups the same fault), the item's repr and identity (in the
record's log and ident), and what a replay needs (in its arguments): the item (or its ORM
class and primary key), the stage's context as the batch began, and the output database's
URL without its password. ``hokuro retry SPOT --error FP`` replays them; an item that later
succeeds — replayed, or processed again by any run — has its record marked done (resolved).
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..model.keys import ident_key
from ..model.records import Record, Status, error_fingerprint
from .items import ref_of

__all__ = ["COLLECTION", "ErrorCollector", "Failure", "failure_key", "stage_path"]

#: Failure records of stage ``x`` are the collection ``stage:x``; their ``fn_path`` is
#: ``stage:<module>:<qualname>`` of the stage's class (what ``hokuro retry`` imports).
COLLECTION = "stage:"
#: The longest item repr kept in a record.
REPR_LIMIT = 500


@dataclass(slots=True)
class Failure:
    """An item that raised: where it stood in the batch, what it was, and the error."""

    index: int
    item: Any
    identity: str
    error: BaseException


def failure_key(stage: str, identity: str) -> str:
    return ident_key(COLLECTION + stage, None, identity)


def stage_path(path: str) -> str:
    return COLLECTION + path


def _short_repr(item: Any) -> str:
    try:
        text = repr(item)
    except Exception as exc:  # a broken __repr__ must not hide the item's real error
        text = f"<{type(item).__name__}: repr failed: {exc}>"
    return text if len(text) <= REPR_LIMIT else text[:REPR_LIMIT] + "…"


class ErrorCollector:
    """Writes and resolves the failure records of stages in one ledger."""

    def __init__(self, ledger: Any, codec: Any, clock: Callable[[], float]) -> None:
        self.ledger = ledger
        self.codec = codec
        self.clock = clock

    def record(self, stage: str, path: str, failures: list[Failure],
               context: dict[str, Any] | None, db_url: str) -> None:
        if not failures:
            return
        now = self.clock()
        keys = [failure_key(stage, f.identity) for f in failures]
        previous = self.ledger.get_many(keys)
        records = []
        for key, failure in zip(keys, failures, strict=True):
            exc = failure.error
            error_type = type(exc).__qualname__
            frames = [(os.path.basename(f.filename), f.name)
                      for f in traceback.extract_tb(exc.__traceback__)]
            shown = _short_repr(failure.item)
            before = previous.get(key)
            records.append(Record(
                key=key, status=Status.FAILED, fn=COLLECTION + stage,
                fn_path=stage_path(path), ident=failure.identity,
                args=self._args(failure.item, shown, context, db_url),
                error_type=error_type, error="".join(traceback.format_exception(exc)),
                error_fingerprint=error_fingerprint(error_type, frames),
                codec=self.codec.name,
                log=f"stage {stage!r} failed on item {shown} (identity {failure.identity})\n",
                attempts=(before.attempts if before else 0) + 1,
                created_at=before.created_at if before else now, started_at=now,
                finished_at=now, updated_at=now))
        self.ledger.put_many(records)

    def _args(self, item: Any, shown: str, context: dict[str, Any] | None,
              db_url: str) -> bytes | None:
        """What a replay needs, encoded; None when the item cannot be encoded (the record
        then says it cannot be replayed)."""
        try:
            return self.codec.encode({"item": ref_of(item), "repr": shown,
                                      "context": context, "db": db_url})
        except Exception:
            try:  # the context may be what the codec refused: replay from an empty one
                return self.codec.encode({"item": ref_of(item), "repr": shown,
                                          "context": None, "db": db_url})
            except Exception:
                return None

    def resolve(self, stage: str, identities: list[str], note: str, *,
                known_failed: bool = False) -> int:
        """Mark the failure records of those items done; how many there were. Unless
        ``known_failed``, first one cheap look whether the stage has any failure at all."""
        if not identities:
            return 0
        if not known_failed and next(iter(self.ledger.find(
                fn=COLLECTION + stage, status=Status.FAILED, limit=1)), None) is None:
            return 0
        now = self.clock()
        found = self.ledger.get_many([failure_key(stage, i) for i in identities])
        resolved = []
        for record in found.values():
            if record.status != Status.FAILED:
                continue
            record.status = Status.DONE
            record.result = self.codec.encode(None)
            record.codec = self.codec.name
            record.log = (record.log or "") + f"resolved: {note}\n"
            record.owner = None
            record.lease_until = None
            record.finished_at = record.updated_at = now
            resolved.append(record)
        if resolved:
            self.ledger.put_many(resolved)
        return len(resolved)
