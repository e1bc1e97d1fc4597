"""Plain data of the ledger: the record of a task, statuses, owners and claims. No I/O."""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field, fields
from enum import StrEnum


class Status(StrEnum):
    """Stored status of a task or job."""

    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: Statuses a reader may see for a task; ``missing`` and ``expired`` are never stored.
READ_STATUSES = ("missing", "running", "done", "failed", "expired", "queued", "waiting",
                 "cancelled")

#: The error type given to a task whose owner died while it was running.
ABANDONED = "Abandoned"


@dataclass(slots=True)
class Record:
    """One row of the ledger: everything known about one task.

    Timestamps are epoch seconds (floats). ``result`` holds the encoded value inline, or
    ``blob`` names it in the blob store; never both.
    """

    # The fields after ``key`` up to ``error`` are what the hit path reads (TaskDB.lookup):
    # a ledger selects just these, which keeps a kept result's answer to a few microseconds.
    key: str
    status: str
    result: bytes | None = None
    blob: str | None = None
    codec: str | None = None
    checksum: str | None = None
    expires_at: float | None = None
    error_type: str | None = None
    error: str | None = None
    fn: str = ""
    fn_path: str | None = None
    ident: str | None = None
    args: bytes | None = None
    version: str | None = None
    content_type: str | None = None
    size: int | None = None
    error_fingerprint: str | None = None
    log: str | None = None
    log_blob: str | None = None
    attempts: int = 0
    owner: str | None = None
    lease_until: float | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    updated_at: float = 0.0
    run_id: str | None = None
    scope: str | None = None
    priority: int | None = None
    run_after: float | None = None
    parents: str | None = None

    def is_expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def is_fresh_result(self, now: float) -> bool:
        """True when this record holds a result a caller may reuse now."""
        return self.status == Status.DONE and not self.is_expired(now)

    def lease_alive(self, now: float) -> bool:
        return (self.status == Status.RUNNING and self.lease_until is not None
                and self.lease_until > now)


#: Column names of the record, in declaration order (the ledger's column order).
RECORD_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Record))


@dataclass(frozen=True, slots=True)
class Owner:
    """Who runs a task: a host, a process (pid + its start time) and a random nonce.

    The start time tells a reused pid apart from the process that took the lease.
    """

    host: str
    pid: int
    start: float
    nonce: str

    def token(self) -> str:
        return f"{self.host}|{self.pid}|{self.start:.2f}|{self.nonce}"

    @classmethod
    def parse(cls, token: str | None) -> Owner | None:
        if not token:
            return None
        parts = token.split("|")
        if len(parts) != 4:
            return None
        try:
            return cls(parts[0], int(parts[1]), float(parts[2]), parts[3])
        except ValueError:
            return None


@dataclass(slots=True)
class Claim:
    """A request to take the lease of a task so this owner may execute it."""

    key: str
    fn: str
    owner: str
    lease_until: float
    now: float
    fn_path: str | None = None
    ident: str | None = None
    args: bytes | None = None
    version: str | None = None
    #: Claim even when a fresh result exists (``recompute=True``).
    force: bool = False
    #: Treat a stored failure as an answer (``cache_errors=True``) instead of re-running.
    reuse_failed: bool = False
    #: Take over a live lease held by exactly this owner token (known to be dead).
    steal_from: str | None = None


@dataclass(slots=True)
class ClaimResult:
    """What a claim found: ``claimed`` (run it), ``hit`` (reuse ``record``) or ``busy``."""

    outcome: str
    record: Record | None = None
    attempt: int = 0


@dataclass(slots=True)
class Outcome:
    """The end of one execution, written by :meth:`TaskDB.finish` under the owner's fence."""

    status: str
    finished_at: float
    result: bytes | None = None
    blob: str | None = None
    codec: str | None = None
    content_type: str | None = None
    size: int | None = None
    checksum: str | None = None
    error_type: str | None = None
    error: str | None = None
    error_fingerprint: str | None = None
    log: str | None = None
    log_blob: str | None = None
    expires_at: float | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StatRow:
    """Counts of one (collection, status) pair, computed by the ledger."""

    fn: str
    status: str
    count: int
    size: int
    #: Of ``count``: records past their retention, or for ``running``, past their lease.
    expired: int = 0
    #: The latest ``updated_at`` of a record that entered this (collection, status), from
    #: the tally (schema 6); an older ledger read where it is gives its newest record's.
    last_activity: float | None = None


@dataclass(frozen=True, slots=True)
class ErrorStat:
    """Failed tasks of one collection that ended with one error (by fingerprint; the error
    type stands in for records without one), computed by the ledger."""

    fingerprint: str
    fn: str
    error_type: str | None
    count: int
    first_seen: float
    last_seen: float


def decide_claim(current: Record | None, claim: Claim) -> str:
    """Who executes a task, given its current record: ``claimed``, ``hit`` or ``busy``.

    One pure rule that every ledger applies inside its claim transaction.
    """
    if current is None:
        return "claimed"
    if current.status == Status.RUNNING and current.lease_until is not None \
            and current.lease_until > claim.now and current.owner != claim.steal_from:
        return "busy"
    if not claim.force:
        if current.is_fresh_result(claim.now):
            return "hit"
        if claim.reuse_failed and current.status == Status.FAILED \
                and not current.is_expired(claim.now):
            return "hit"
    return "claimed"


def error_fingerprint(error_type: str, frames: list[tuple[str, str]]) -> str:
    """A stable id of an error: its type plus the (file name, function) of each frame.

    Line numbers and messages are left out, so the same fault raised for different inputs,
    or after an unrelated edit above it, groups together.
    """
    digest = hashlib.blake2b(digest_size=8)
    digest.update(error_type.encode())
    for filename, function in frames:
        digest.update(b"\0" + filename.encode() + b":" + function.encode())
    return digest.hexdigest()


def error_line(error: str | None) -> str | None:
    """The last line of a recorded traceback ("ValueError: bad input"), or None."""
    lines = [line for line in (error or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else None


def error_message(error_type: str | None, error: str | None) -> str | None:
    """The message of a recorded error: the traceback's last line without its type prefix."""
    last = error_line(error)
    if last is None:
        return None
    head, sep, rest = last.partition(": ")
    if sep and error_type and head.split(".")[-1] == error_type.split(".")[-1]:
        return rest
    if error_type and last.split(".")[-1] == error_type.split(".")[-1]:
        return ""  # raised without a message
    return last


def blob_checksum(data: bytes) -> str:
    """The checksum kept with a blob, checked on every read of it.

    CRC-32 catches truncation and damage on disk at several GB/s; it is no defence against
    someone forging a blob (nothing in a blob store is executed or unpickled by default).
    """
    return f"crc32:{zlib.crc32(data):08x}"


#: Kept in a record in place of a call's arguments that were left out (larger than the
#: Spot's ``args_limit``, or ``store_args=False``). Arguments are always a mapping, whose
#: msgpack starts with 0x80-0x8f, 0xde or 0xdf and whose pickle starts with 0x80, so these
#: bytes are never taken for stored arguments.
_ARGS_NOT_KEPT = b"hokuro:args-not-kept:"


def args_not_kept(size: int | None = None, limit: int | None = None, *,
                  at_least: bool = False) -> bytes:
    """The marker of arguments left out: ``size`` bytes (``at_least``: or more) over
    ``limit``, or, with no size, by the mark's ``store_args=False``."""
    if size is None:
        return _ARGS_NOT_KEPT + b"store_args=False"
    return _ARGS_NOT_KEPT + f"{size}{'+' if at_least else ''}>{limit}".encode("ascii")


def args_not_kept_reason(data: bytes | None) -> str | None:
    """Why a record's arguments were left out, as one sentence, or None when they were
    kept (or ``data`` is None: the codec could not encode them)."""
    if data is None or not data.startswith(_ARGS_NOT_KEPT):
        return None
    detail = data[len(_ARGS_NOT_KEPT):].decode("ascii", "replace")
    size, sep, limit = detail.partition(">")
    if sep and size.rstrip("+").isdigit() and limit.isdigit():
        more = "at least " if size.endswith("+") else ""
        detail = f"{more}{int(size.rstrip('+'))} bytes > args_limit {int(limit)}"
    return f"arguments not kept ({detail}); cannot be replayed"
