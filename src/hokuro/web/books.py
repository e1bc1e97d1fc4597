"""What the dashboard's pages show, read from one Spot's books: the same library calls the
command line makes (``MaintenanceService``, ``hokuro.admin.runs``), plus the ledger's reads
for people (``store/ledger/readings.py``) and the limit store's use (``store/limits/usage``).

Why these choices:
- The pages read through a service opened read-only, once, for the server's life: nothing
  is created, migrated or written, and no module named by stored data is imported
  (invariant 6). Actions (retry, cancel) open their own writable service, as the command
  line does, and close it when done.
- Every listing is one indexed page: tasks are paged by keyset (the ``(updated_at, key)`` of
  the last row shown), never by OFFSET and never by counting matches, so a page costs the
  same on the millionth record as on the first.
- Figures that need many rows are bounded: duration percentiles come from the newest
  ``PERCENTILE_SAMPLE`` finished tasks of a collection, throughput from one GROUP BY over
  the chart's window.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..admin.maintenance import (
    ErrorGroup,
    MaintenanceService,
    SpotSummary,
    TaskDetail,
)
from ..admin.runs import RunDetail, RunRow, find_run, keeps_runs, list_runs, run_detail
from ..errors import ConfigurationError, HokuroError
from ..model.records import READ_STATUSES, Record, Status
from ..model.redact import mask_secrets

#: Tasks per page of the tasks listing.
PAGE_SIZE = 50
#: Finished tasks per collection whose durations make the percentiles.
PERCENTILE_SAMPLE = 500
#: Collections the collections page draws figures for (the others are counted only).
FIGURED_COLLECTIONS = 40
#: Blobs larger than this are not loaded to show a task's result.
PREVIEW_BYTES = 8 * 1024 * 1024
#: Up to this many collections, a filter by status alone is asked per collection.
SPLIT_COLLECTIONS = 100
#: The statuses a reader may filter tasks by (those the ledger stores).
TASK_STATUSES = tuple(s for s in READ_STATUSES if s not in ("missing", "expired"))


@dataclass(slots=True)
class TaskFilter:
    """The filters of the tasks page, as its query string gives them."""

    fn: str | None = None
    status: str | None = None
    since: float | None = None
    until: float | None = None
    key_prefix: str | None = None
    ident: str | None = None

    @classmethod
    def from_query(cls, query: Any) -> TaskFilter:
        def text(name: str) -> str | None:
            value = (query.get(name) or "").strip()
            return value or None

        status = text("status")
        if status is not None and status not in TASK_STATUSES:
            raise ConfigurationError(
                f"status {status!r} is not one of {', '.join(TASK_STATUSES)}")
        prefix = text("key")
        if prefix is not None:
            prefix = prefix.lower()
            if not all(c in "0123456789abcdef" for c in prefix):
                raise ConfigurationError("a key prefix is hex digits (0-9, a-f)")
        return cls(fn=text("fn"), status=status, since=_instant(text("since"), "since"),
                   until=_instant(text("until"), "until"), key_prefix=prefix,
                   ident=text("ident"))

    def ledger_filters(self) -> dict[str, Any]:
        return {"fn": self.fn, "status": self.status, "since": self.since,
                "until": self.until, "key_prefix": self.key_prefix, "ident": self.ident}

    def query(self) -> dict[str, str]:
        """The query string that gives these filters back (empty ones left out)."""
        found = {"fn": self.fn, "status": self.status, "key": self.key_prefix,
                 "ident": self.ident,
                 "since": _iso(self.since) if self.since is not None else None,
                 "until": _iso(self.until) if self.until is not None else None}
        return {k: v for k, v in found.items() if v}


@dataclass(slots=True)
class TaskPage:
    records: list[Record]
    #: The cursor of the next page (``updated_at`` and key of the last row), or None.
    next_cursor: str | None


@dataclass(slots=True)
class CollectionFigures:
    """One collection: counts per status, bytes, and its finished tasks' durations."""

    name: str
    counts: dict[str, int]
    size: int
    #: p50, p90, p99 and max of the newest finished tasks' durations, seconds.
    percentiles: dict[str, float] = field(default_factory=dict)
    sample: int = 0


@dataclass(slots=True)
class Throughput:
    """Done and failed tasks per bucket over a window ending at ``end``."""

    start: float
    end: float
    bucket: float
    done: list[int]
    failed: list[int]

    @property
    def total(self) -> int:
        return sum(self.done) + sum(self.failed)


class Books:
    """One Spot's books, read-only, for the pages; ``target`` is what ``hokuro ui`` was
    given (a Spot name, a ledger file or a database URL)."""

    def __init__(self, target: str, *, spot: str | None = None,
                 workspace: str | os.PathLike[str] | None = None, blobs: str | None = None,
                 limits: str | None = None, clock: Callable[[], float] = time.time) -> None:
        self.target = target
        self.spot_name = spot
        self.workspace = workspace
        self.blobs_spec = blobs
        self.clock = clock
        self.service = MaintenanceService.from_target(
            target, spot=spot, workspace=workspace, blobs=blobs, read_only=True, clock=clock)
        self.ledger = self.service.ledger
        self.name = self.service.spot.name
        self.limits_spec = limits

    def close(self) -> None:
        self.service.close()

    def writable(self) -> MaintenanceService:
        """A service that may write, for one action; the caller closes it."""
        return MaintenanceService.from_target(
            self.target, spot=self.ledger.spot or self.spot_name, workspace=self.workspace,
            blobs=self.blobs_spec, read_only=False, clock=self.clock)

    @property
    def where(self) -> str:
        """Where the ledger lives, any password masked."""
        return mask_secrets(self.ledger.describe())

    @property
    def is_database(self) -> bool:
        return self.target.startswith(("postgresql://", "postgres://"))

    # -- Spots -------------------------------------------------------------------------------
    def spots(self) -> list[SpotSummary]:
        """The Spots beside this one: of its PostgreSQL database, or of its ledger's folder."""
        if self.is_database:
            return MaintenanceService.scan_database(self.target)
        path = getattr(self.ledger, "path", None)
        if path is None:
            return []
        return MaintenanceService.scan_spots(Path(path).parent)

    # -- collections -------------------------------------------------------------------------
    def collections(self, fn: str | None = None) -> tuple[dict[str, Any], list[CollectionFigures]]:
        """The Spot's counts and each collection's figures (of ``fn`` only, when given)."""
        stats = self.service.stats(fn)
        figures = []
        for i, (name, entry) in enumerate(sorted(stats["collections"].items())):
            found = CollectionFigures(name, dict(entry["counts"]), entry["size"])
            if i < FIGURED_COLLECTIONS:
                found.percentiles, found.sample = self.durations(name)
            figures.append(found)
        return stats, figures

    def durations(self, fn: str) -> tuple[dict[str, float], int]:
        """Percentiles of the durations of ``fn``'s newest done tasks."""
        records = self.ledger.find_page(fn=fn, status=Status.DONE, limit=PERCENTILE_SAMPLE)
        spans = sorted(r.finished_at - r.started_at for r in records
                       if r.finished_at is not None and r.started_at is not None)
        if not spans:
            return {}, 0
        return {"p50": _percentile(spans, 50), "p90": _percentile(spans, 90),
                "p99": _percentile(spans, 99), "max": spans[-1]}, len(spans)

    def throughput(self, *, fn: str | None = None, hours: float = 3.0,
                   bucket: float = 60.0) -> Throughput:
        """Done and failed tasks per minute (``bucket``) over the last ``hours``."""
        now = self.clock()
        end = (math.floor(now / bucket) + 1) * bucket
        start = end - max(1, round(hours * 3600 / bucket)) * bucket
        slots = round((end - start) / bucket)
        done, failed = [0] * slots, [0] * slots
        reader = getattr(self.ledger, "throughput", None)
        if reader is not None:
            for at, status, count in reader(start, fn=fn, bucket=bucket):
                slot = round((at - start) / bucket)
                if 0 <= slot < slots:
                    (done if status == Status.DONE else failed)[slot] += count
        return Throughput(start, end, bucket, done, failed)

    # -- tasks -------------------------------------------------------------------------------
    def tasks(self, wanted: TaskFilter, cursor: str | None, limit: int = PAGE_SIZE) -> TaskPage:
        """One page of tasks, newest first, after ``cursor`` (from the previous page).

        The ledger's index on (collection, status, updated_at) serves a filter by both at
        once. A filter by one of them alone is asked as one page per status (or per
        collection) and merged: each such page is an index range, where the single query
        would sort every record of the collection (400 ms on 200,000) or read the whole
        table for a rare status (2 s on 1,000,000).
        """
        after = _parse_cursor(cursor)
        filters = wanted.ledger_filters()
        split: list[dict[str, Any]] = [filters]
        if wanted.key_prefix is None:
            if wanted.fn is not None and wanted.status is None and wanted.ident is None:
                split = [{**filters, "status": str(s)} for s in Status]
            elif wanted.fn is None and (wanted.status is not None or wanted.ident is not None):
                names = getattr(self.ledger, "collections", None)
                found = names(SPLIT_COLLECTIONS + 1) if names is not None else []
                if 0 < len(found) <= SPLIT_COLLECTIONS:
                    split = [{**filters, "fn": name} for name in found]
        records = [r for part in split
                   for r in self.ledger.find_page(after=after, limit=limit + 1, **part)]
        if len(split) > 1:
            records.sort(key=lambda r: (r.updated_at, r.key), reverse=True)
            records = records[:limit + 1]
        more = len(records) > limit
        records = records[:limit]
        last = records[-1] if records and more else None
        return TaskPage(records, f"{last.updated_at!r}:{last.key}" if last else None)

    def task(self, key: str) -> TaskDetail | None:
        """One task with its result (never unpickled), arguments, error and log."""
        return self.service.get_task_detail(key, include_expired=True,
                                            max_bytes=PREVIEW_BYTES)

    def resolve_key(self, prefix: str) -> str | list[str] | None:
        return self.service.resolve_key_prefix(prefix)

    # -- errors ------------------------------------------------------------------------------
    def error_groups(self, fn: str | None = None) -> list[ErrorGroup]:
        return self.service.error_groups(fn)

    def error_group(self, fingerprint: str) -> ErrorGroup | None:
        for group in self.error_groups():
            if group.fingerprint == fingerprint:
                return group
        return None

    # -- runs --------------------------------------------------------------------------------
    @property
    def keeps_runs(self) -> bool:
        return keeps_runs(self.ledger)

    def runs(self, status: str | None = None, limit: int = 50) -> list[RunRow]:
        return list_runs(self.ledger, status=status, limit=limit)

    def run(self, ref: str, *, limit: int = 20) -> RunDetail:
        record = find_run(self.ledger, ref)
        return run_detail(self.ledger, record, self.service.codec, limit=limit)

    # -- workers and queues ------------------------------------------------------------------
    def queues(self) -> dict[str, Any]:
        """Jobs per scope and priority now, running jobs per owner, and the workers when
        the ledger keeps them."""
        now = self.clock()
        depths = getattr(self.ledger, "queue_depths", None)
        running = getattr(self.ledger, "running_jobs", None)
        return {
            "now": now,
            "depths": depths(now) if depths is not None and self.keeps_runs else [],
            "running": running() if running is not None and self.keeps_runs else [],
            "workers": self.workers(),
        }

    def workers(self) -> list[Any] | None:
        """The registered workers (newest first), or None when this ledger keeps no workers
        table (a custom ledger, or a file of an older schema opened read-only)."""
        reader = getattr(self.ledger, "list_workers", None)
        if reader is None:
            return None
        try:
            return list(reader())
        except HokuroError:
            return None

    # -- limits ------------------------------------------------------------------------------
    def limit_location(self) -> str | None:
        """Where this Spot's limits live: ``--limits``, else where a Spot opened on this
        ledger keeps them by default (its database, or ``<name>.limits.db`` beside its
        ledger file)."""
        from ..store.limits.usage import store_location

        spec = self.limits_spec
        if spec is None:
            spec = self.target if self.is_database else "sqlite"
        path = getattr(self.ledger, "path", None)
        folder = Path(path).parent if path is not None else Path.cwd()
        return store_location(spec, spot_name=self.name, workspace=folder)

    def limits(self) -> tuple[str | None, list[Any], str | None]:
        """(where, each limit's use, why it cannot be told)."""
        from ..store.limits.usage import read_usage

        location = self.limit_location()
        if location is None:
            return None, [], "limits kept in one process's memory cannot be read from here"
        try:
            return mask_secrets(location), read_usage(location, now=self.clock()), None
        except (HokuroError, OSError) as exc:
            return mask_secrets(location), [], mask_secrets(str(exc))
        except Exception as exc:  # a driver's error: shown, never a crashed page
            return mask_secrets(location), [], mask_secrets(f"{type(exc).__name__}: {exc}")


def _percentile(ordered: list[float], p: float) -> float:
    """The nearest-rank percentile of sorted values."""
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def _parse_cursor(cursor: str | None) -> tuple[float, str] | None:
    if not cursor:
        return None
    stamp, _, key = cursor.partition(":")
    try:
        return float(stamp), key
    except ValueError:
        raise ConfigurationError("the page cursor is not understood; start from the first "
                                 "page") from None


def _instant(text: str | None, what: str) -> float | None:
    """Epoch seconds of a date-time the page's form gives (ISO 8601, UTC unless it says
    otherwise), or of epoch seconds."""
    if text is None:
        return None
    from datetime import UTC, datetime

    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(
            f"{what}: {text!r} is not a time; give e.g. 2026-01-31T14:00 (UTC)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _iso(stamp: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%S")
