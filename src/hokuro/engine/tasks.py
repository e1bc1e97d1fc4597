"""``Task``: a read-only view of one task's record, decoded lazily."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import HokuroError, SerializationError
from ..model.codec import codec_for
from ..model.records import ABANDONED, Record, Status, error_message
from .owners import owner_is_dead

if TYPE_CHECKING:
    from .spot import Spot


@dataclass(frozen=True, slots=True)
class TaskError:
    """The error a task ended with."""

    type: str | None
    message: str | None
    traceback: str | None
    fingerprint: str | None

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"


def read_status(record: Record | None, now: float) -> str:
    """The status a reader sees: ``missing``, ``expired``, or the stored one, except that a
    ``running`` record whose owner is gone (lease expired, or a dead process on this host)
    reads as ``failed``."""
    if record is None:
        return "missing"
    if record.status == Status.RUNNING and is_abandoned(record, now):
        return Status.FAILED
    if record.status in (Status.DONE, Status.FAILED) and record.is_expired(now):
        return "expired"
    return str(record.status)


def is_abandoned(record: Record, now: float) -> bool:
    return record.status == Status.RUNNING and (
        record.lease_until is None or record.lease_until <= now or owner_is_dead(record.owner))


class Task:
    """What is known about one task. ``result`` and ``log`` are read only when asked for."""

    def __init__(self, spot: Spot, key: str, fn: str | None, record: Record | None,
                 *, codec: str | None = None, whole: bool = False) -> None:
        self._spot = spot
        self._record = record
        # A record from a listing lacks its large columns; it is read whole when needed.
        self._whole = whole or record is None
        self._codec = codec
        self.key = key
        self.fn = fn if record is None else record.fn
        self._now = spot.clock()

    @property
    def record(self) -> Record | None:
        """The raw record (None when the task is missing)."""
        return self._record

    @property
    def status(self) -> str:
        return read_status(self._record, self._now)

    @property
    def exists(self) -> bool:
        return self._record is not None

    @property
    def ident(self) -> str | None:
        return None if self._record is None else self._record.ident

    @property
    def version(self) -> str | None:
        return None if self._record is None else self._record.version

    @property
    def attempts(self) -> int:
        return 0 if self._record is None else self._record.attempts

    @property
    def started_at(self) -> float | None:
        return None if self._record is None else self._record.started_at

    @property
    def finished_at(self) -> float | None:
        return None if self._record is None else self._record.finished_at

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    @property
    def result(self) -> Any:
        """The kept value, decoded now. Raises when the task has no result."""
        record = self._full()
        if record is None or record.status != Status.DONE:
            raise HokuroError(f"task {self.key[:12]} has no result (status {self.status})")
        if record.codec == "pickle" and self._codec != "pickle":
            raise HokuroError(
                f"task {self.key[:12]} was stored with pickle; read it through the marked "
                "function that chose codec='pickle' (hokuro never unpickles otherwise)"
            )
        data = record.result
        if record.blob is not None:
            data = self._spot.blobs.load(record.blob)
        if data is None:
            raise SerializationError(f"task {self.key[:12]} has an empty result")
        return codec_for(record.codec or "msgpack", self._spot.codec).decode(data)

    @property
    def error(self) -> TaskError | None:
        record = self._full()
        if record is None:
            return None
        if record.status == Status.RUNNING and is_abandoned(record, self._now):
            return TaskError(ABANDONED, "its owner stopped before finishing (lease expired "
                             f"or process gone: {record.owner})", None, None)
        if record.error_type is None:
            return None
        return TaskError(record.error_type, error_message(record.error_type, record.error),
                         record.error, record.error_fingerprint)

    @property
    def log(self) -> str:
        record = self._full()
        if record is None:
            return ""
        if record.log_blob:
            return self._spot.blobs.load(record.log_blob).decode("utf-8", "replace")
        return record.log or ""

    @property
    def dir(self) -> Path:
        """The folder of this task's own files (created when first asked for)."""
        return self._spot.task_dir(self.key)

    @property
    def paths(self) -> dict[str, Path | str | None]:
        record = self._record
        return {
            "dir": self._spot.task_dir(self.key, create=False),
            "blob": None if record is None or record.blob is None
            else self._spot.blob_location(record.blob),
            "log": None if record is None or record.log_blob is None
            else self._spot.blob_location(record.log_blob),
            "ledger": self._spot.ledger.describe(),
        }

    def _full(self) -> Record | None:
        if not self._whole:
            self._record = self._spot.ledger.get(self.key) or self._record
            self._whole = True
        return self._record

    def __repr__(self) -> str:
        return f"<Task {self.fn} {self.key[:12]} {self.status}>"
