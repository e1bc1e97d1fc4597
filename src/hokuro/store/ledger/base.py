"""The ledger protocol: where records live. Every backend implements :class:`TaskDB`.

A custom backend subclasses :class:`TaskDB` and implements the abstract methods; the shared
conformance suite (``tests/test_ledger_conformance.py``) tells whether it behaves.
Each write method is atomic: it either happens whole or not at all.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ...model.records import (
    RECORD_COLUMNS,
    Claim,
    ClaimResult,
    ErrorStat,
    Outcome,
    Record,
    StatRow,
    Status,
)

#: What the hit path reads (``lookup``): the record's fields right after ``key``, so that
#: ``Record(key, *row)`` builds it. Every column costs time on every cache hit.
LOOKUP_COLUMNS = RECORD_COLUMNS[1:9]
#: What a listing reads (``find(full=False)``): everything but the large columns.
LIGHT_COLUMNS = frozenset(RECORD_COLUMNS) - {"args", "result", "log"}
#: The filters of ``find``, each an indexed condition over named parameters written
#: ``{name}``; :func:`find_records` puts in the backend's placeholder style.
FIND_FILTERS = {
    "fn": "fn = {fn}",
    "status": "status = {status}",
    "since": "updated_at >= {since}",
    "until": "updated_at <= {until}",
    "key_prefix": "key >= {key_prefix} AND key < {key_prefix_end}",
    "ident": "ident = {ident}",
    "error_fingerprint": "error_fingerprint = {error_fingerprint}",
    "expired_at": "expires_at IS NOT NULL AND expires_at <= {expired_at}",
}
#: Resumes a newest-first listing after the last row of the previous page.
PAGE_AFTER = "(updated_at, key) < ({cursor_updated}, {cursor_key})"
_PAGE = 500
_UPDATED_AT = RECORD_COLUMNS.index("updated_at")


def select_list(columns: frozenset[str] | None = None) -> str:
    """SELECT expressions in the record's field order, NULL for columns left out and none
    after the last one wanted, so that a row becomes a :class:`Record` positionally:
    ``Record(*row)``."""
    wanted = RECORD_COLUMNS if columns is None else [c for c in RECORD_COLUMNS if c in columns]
    last = RECORD_COLUMNS.index(wanted[-1])
    return ", ".join(c if c in wanted else "NULL" for c in RECORD_COLUMNS[:last + 1])


def find_records(fetch: Callable[[str, dict[str, Any]], list[tuple[Any, ...]]],
                 placeholder: str, *, limit: int | None = None, full: bool = False,
                 **filters: Any) -> Iterator[Record]:
    """``TaskDB.find`` for SQL ledgers, newest first, one page per query.

    ``fetch(sql, params)`` runs one query and returns all its rows; ``placeholder`` is the
    driver's parameter style with ``NAME`` for the name (``":NAME"``, ``"%(NAME)s"``).
    Pages resume after the last row seen (keyset), so no query or transaction stays open
    while the caller iterates, and memory stays bounded.
    """
    def style(sql: str) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: placeholder.replace("NAME", m.group(1)), sql)

    params: dict[str, Any] = {k: v for k, v in filters.items() if v is not None}
    if params.get("key_prefix") is not None:
        # Keys are hex, compared bytewise: every key starting with the prefix sorts here.
        params["key_prefix_end"] = params["key_prefix"] + "\U0010ffff"
    conditions = [style(FIND_FILTERS[name]) for name in filters if filters[name] is not None]
    columns = select_list(None if full else LIGHT_COLUMNS)
    later_pages = [*conditions, style(PAGE_AFTER)]
    where = conditions
    remaining = limit
    while remaining is None or remaining > 0:
        page = _PAGE if remaining is None else min(_PAGE, remaining)
        sql = (f"SELECT {columns} FROM tasks{' WHERE ' + ' AND '.join(where) if where else ''}"
               f" ORDER BY updated_at DESC, key DESC LIMIT {page}")
        rows = fetch(sql, dict(params))
        for row in rows:
            yield Record(*row)
        if len(rows) < page:
            return
        params["cursor_updated"], params["cursor_key"] = rows[-1][_UPDATED_AT], rows[-1][0]
        where = later_pages
        if remaining is not None:
            remaining -= len(rows)


class TaskDB(ABC):
    """Protocol of a ledger. Methods are called from many threads at once."""

    #: Short name shown to people ("sqlite", "postgresql", ...).
    kind: str = "custom"
    #: True when the ledger is reached over a network (the engine then prefers a thread
    #: for its calls from asyncio code).
    remote: bool = False
    #: The Spot whose records this ledger holds, when it knows (hokuro's own ledgers do).
    spot: str | None = None
    #: True when the ledger keeps runs and jobs (the run engine's operations: create_run,
    #: insert_jobs, claim_jobs, commit, ...; see the SQL ledgers). A custom ledger need not:
    #: it still serves marked calls, and the run engine says it cannot keep runs.
    supports_runs: bool = False

    # -- the engine's calls ---------------------------------------------------------------
    @abstractmethod
    def lookup(self, key: str) -> Record | None:
        """The record of ``key`` with at least :data:`LOOKUP_COLUMNS` filled (others may be
        left at their defaults, ``fn`` too), or None. This is the hit path: keep it one
        cheap read."""

    @abstractmethod
    def claim(self, claim: Claim) -> ClaimResult:
        """Atomically decide who executes ``claim.key``.

        - no record, or a record that is not reusable (failed, cancelled, expired, or any
          with ``claim.force``) and not leased by a live owner: the record becomes
          ``running`` with ``owner``/``lease_until`` set, ``attempts`` + 1, ``started_at`` =
          ``claim.now``, and the call fields (fn, fn_path, ident, args, version) stored:
          ``ClaimResult("claimed", record, attempt)``;
        - a ``done`` record not expired (and no ``force``), or a ``failed`` one when
          ``claim.reuse_failed``: ``ClaimResult("hit", record)``;
        - a ``running`` record whose lease is alive (``lease_until > claim.now``) and whose
          owner is not ``claim.steal_from``: ``ClaimResult("busy", record)``.
        """

    @abstractmethod
    def renew(self, owner: str, keys: Iterable[str], lease_until: float) -> set[str]:
        """Extend the leases ``owner`` holds on ``keys``; return the keys still held."""

    @abstractmethod
    def finish(self, key: str, owner: str, outcome: Outcome) -> bool:
        """Write the end of an execution if ``owner`` still holds the lease of ``key``.

        Sets status, result/blob, error fields, log, finished_at, updated_at, expires_at
        from ``outcome`` and clears ``lease_until``. Returns False (writing nothing) when
        the lease was lost to another owner.
        """

    def finish_many(self, finishes: list[tuple[str, str, Outcome]]) -> list[bool]:
        """:meth:`finish` for each ``(key, owner, outcome)``, in order: whether each was
        written. The SQL ledgers write them in one transaction; this default writes them one
        by one, each atomic."""
        return [self.finish(key, owner, outcome) for key, owner, outcome in finishes]

    def claim_many(self, claims: list[Claim]) -> list[ClaimResult]:
        """:meth:`claim` for each of ``claims``, in order (a key claimed earlier in the list
        is ``busy`` for the later ones). The SQL ledgers do it in one transaction; this
        default claims one by one, each atomic."""
        return [self.claim(claim) for claim in claims]

    # -- reading --------------------------------------------------------------------------
    @abstractmethod
    def get(self, key: str) -> Record | None:
        """The whole record of ``key``, or None."""

    def get_many(self, keys: Iterable[str]) -> dict[str, Record]:
        """The whole records of those ``keys`` that have one, by key."""
        found = {}
        for key in keys:
            record = self.get(key)
            if record is not None:
                found[key] = record
        return found

    @abstractmethod
    def find(self, *, fn: str | None = None, status: str | None = None,
             since: float | None = None, until: float | None = None,
             key_prefix: str | None = None, ident: str | None = None,
             error_fingerprint: str | None = None, expired_at: float | None = None,
             limit: int | None = None, full: bool = False) -> Iterator[Record]:
        """Records matching every given filter, newest ``updated_at`` first, streamed.

        ``since``/``until`` bound ``updated_at``; ``expired_at`` keeps records whose
        ``expires_at`` is at or before it. ``full=False`` may leave out ``args``,
        ``result`` and ``log`` to keep memory bounded.
        """

    @abstractmethod
    def stats(self, fn: str | None = None, *, now: float | None = None) -> list[StatRow]:
        """Counts and total sizes per (collection, status), computed by the database. A size
        is the bytes of the results plus those of the stored arguments."""

    def error_stats(self, fn: str | None = None, *, now: float) -> list[ErrorStat]:
        """Failed tasks not past their retention, counted per (fingerprint, collection).

        This default streams every failure; SQL ledgers answer with one GROUP BY.
        """
        groups: dict[tuple[str, str], list[Record]] = {}
        for record in self.find(fn=fn, status=Status.FAILED):
            if not record.is_expired(now):
                fingerprint = record.error_fingerprint or record.error_type or "Error"
                groups.setdefault((fingerprint, record.fn), []).append(record)
        return [ErrorStat(fingerprint, name, max(r.error_type or "" for r in rows) or None,
                          len(rows), min(r.finished_at or r.updated_at for r in rows),
                          max(r.finished_at or r.updated_at for r in rows))
                for (fingerprint, name), rows in groups.items()]

    @abstractmethod
    def blob_refs(self) -> Iterator[str]:
        """Every blob reference (results and logs) that a record names."""

    # -- writing outside the engine -------------------------------------------------------
    @abstractmethod
    def delete(self, keys: Iterable[str]) -> list[Record]:
        """Remove the records of ``keys``; return what was removed (for their blobs)."""

    @abstractmethod
    def put(self, record: Record) -> None:
        """Insert or replace a whole record (imports, tests, maintenance)."""

    def put_many(self, records: Iterable[Record]) -> int:
        """Insert or replace many records (imports, benchmarks); backends batch it."""
        count = 0
        for record in records:
            self.put(record)
            count += 1
        return count

    # -- facts about the Spot -------------------------------------------------------------
    def get_meta(self, name: str) -> str | None:
        """A fact the Spot recorded about itself (``blobs``: where its blob store is), or
        None. A ledger that keeps none returns None."""
        return None

    def set_meta(self, name: str, value: str) -> None:  # noqa: B027 - optional, not abstract
        """Record a fact about the Spot (never a credential); a ledger may ignore it."""

    # -- lifecycle ------------------------------------------------------------------------
    @abstractmethod
    def close(self) -> None:
        """Release connections. Further calls may reopen them."""

    def describe(self) -> str:
        """Where the ledger lives, with any password masked."""
        return self.kind
