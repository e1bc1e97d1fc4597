"""The blob store protocol: where large results, logs and task files live.

A custom store subclasses :class:`BlobStorageBase`. ``save`` must make a blob visible only
once it is whole (write elsewhere, then publish atomically).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """One stored blob: its reference, size in bytes and modification time (epoch s)."""

    ref: str
    size: int
    mtime: float


class BlobStorageBase(ABC):
    """Protocol of a blob store. Methods are called from many threads at once.

    References are relative names made of safe characters (``[A-Za-z0-9._-]`` segments
    joined by ``/``, none starting with a dot); stores refuse anything else.
    """

    kind: str = "custom"

    @abstractmethod
    def save(self, ref: str, data: bytes) -> str:
        """Store ``data`` under ``ref`` atomically; return the reference to record."""

    @abstractmethod
    def load(self, ref: str) -> bytes:
        """The bytes of ``ref``; raise :class:`hokuro.errors.BlobMissing` when absent."""

    @abstractmethod
    def delete(self, ref: str) -> bool:
        """Remove ``ref``; True if it existed. A missing blob is not an error."""

    @abstractmethod
    def list_blobs(self) -> Iterator[BlobInfo]:
        """Every stored blob (temporary files excluded)."""

    def ensure_ready(self) -> None:  # noqa: B027 - optional: most stores need no check
        """Raise :class:`hokuro.errors.BlobError`, saying what to do, when the store cannot
        take blobs at all (an S3 bucket that does not exist). Called before a task runs, so
        it must be cheap after its first success."""

    def clean_temp(self, max_age_seconds: float, now: float | None = None) -> int:
        """Remove temporary files older than ``max_age_seconds``; return how many."""
        return 0

    def close(self) -> None:  # noqa: B027 - optional: most stores hold nothing to release
        """Release clients and handles."""

    def describe(self) -> str:
        """Where the store lives, with any secret masked."""
        return self.kind
