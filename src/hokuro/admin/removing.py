"""Removing what the books no longer need: one task, the tasks past their retention, tasks
not updated for a while or a whole collection (``prune``, ``clear``), and the garbage nothing
names any more (orphan blobs, task file folders without a record, temporary files left by
interrupted writes). A part of :class:`~hokuro.admin.maintenance.MaintenanceService`, kept
apart from its reading.

Why these choices:
- Deleting removes the records first, then their blobs. A reader can never be served a
  record whose blob is gone, and a blob that cannot be removed (a network fault) is left
  as garbage that :meth:`Removing.scan_garbage` finds later. The other order would lose
  track of a blob whenever the record delete failed after it.
- Deletion goes in chunks of keys, so clearing a million records keeps memory bounded and
  never holds one huge write transaction.
- Running tasks whose owner is alive are never removed by ``prune``/``clear``/expiry: the
  owner would finish into a missing record and its result would be dropped.
- Garbage is only what nothing names and is older than a grace period: a result's blob is
  saved before its record (invariant 1), so for a moment it is named by nothing. Blobs of
  the other Spots of the same database that record the same store count as named, and the
  scan picks only names hokuro could have written (anything else is left alone).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..engine.spot import Spot
from ..engine.tasks import is_abandoned
from ..errors import BlobError, ConfigurationError, HokuroError
from ..model.durations import parse_duration
from ..model.records import Record, Status
from ..model.redact import mask_secrets
from ..store.blobs import BlobInfo, BlobStorageBase
from ..store.blobs.local import TEMP_SUFFIX, LocalBlobs
from ..store.blobs.names import is_safe_ref
from ..store.ledger import TaskDB
from .unknown_blobs import _UnknownBlobs

log = logging.getLogger("hokuro")

#: Keys removed per ledger call: bounded memory and short write transactions.
DELETE_CHUNK = 500
#: Statuses of tasks that ended; only these (and abandoned running ones) are ever removed.
_ENDED = frozenset({Status.DONE, Status.FAILED, Status.CANCELLED})
_FAN = re.compile(r"^[0-9a-f]{2}$")
_KEY = re.compile(r"^[0-9a-f]{32}$")


# -- results ---------------------------------------------------------------------------------

@dataclass(slots=True)
class Removal:
    """What a removal did (or, with ``dry_run``, would do)."""

    records: int = 0
    blobs: int = 0
    #: Blobs that could not be removed; they are garbage for ``clean`` now.
    blob_failures: int = 0
    #: Bytes of results the removed records held (inline and in blobs).
    size: int = 0
    #: Tasks left alone because their owner is still running them (or they wait in a run).
    kept: int = 0
    dry_run: bool = False


class CleanReport(tuple[int, int]):
    """``(expired tasks removed, orphans removed)`` as beautyspot returned it, plus
    :attr:`temp`, the stale temporary files removed (None when unknown in a dry run)."""

    temp: int | None

    def __new__(cls, expired: int, orphans: int, temp: int | None) -> CleanReport:
        report = super().__new__(cls, (expired, orphans))
        report.temp = temp
        return report

    @property
    def expired(self) -> int:
        return self[0]

    @property
    def orphans(self) -> int:
        return self[1]


# -- the removing half of the service --------------------------------------------------------

class Removing:
    """The removing half of :class:`~hokuro.admin.maintenance.MaintenanceService` (it has
    ``spot``, ``ledger``, ``blobs``, ``blobs_known`` and ``_now``)."""

    spot: Spot
    ledger: TaskDB
    blobs: BlobStorageBase
    blobs_known: bool
    _now: Callable[[], float]

    # -- removing -------------------------------------------------------------------------
    def delete_task(self, key: str) -> bool:
        """Remove task ``key``: its record, then its blobs and files. True if it existed.

        Tolerant: a blob already gone is fine, and one that cannot be removed is left as
        garbage for :meth:`clean_garbage`; the record is removed in any case.
        """
        self._check_blobs_for_removal()
        return self._remove(iter([key])).records == 1

    def delete_expired_tasks(self, *, dry_run: bool = False) -> int:
        """Remove the tasks past their retention (``@spot.mark(retention=...)``); return
        how many were (or, with ``dry_run``, would be) removed."""
        now = self._now()
        found = (r for r in self.ledger.find(expired_at=now) if r.status in _ENDED)
        if dry_run:
            return sum(1 for _ in found)
        self._check_blobs_for_removal()
        return self._remove(r.key for r in found).records

    def prune(self, older_than: float | str, fn: str | None = None, *,
              dry_run: bool = False) -> Removal:
        """Remove tasks not updated for ``older_than`` (seconds, or text like ``"30d"``),
        of collection ``fn`` or all. Tasks still running are kept."""
        seconds = parse_duration(older_than, what="older_than")
        if seconds is None:
            raise ConfigurationError("older_than needs a duration, such as 30 * 86400 or '30d'")
        now = self._now()
        return self._remove_ended(self.ledger.find(fn=fn, until=now - seconds), now, dry_run)

    def clear(self, fn: str | None = None, *, dry_run: bool = False) -> Removal:
        """Remove every task of collection ``fn`` (or of every collection). Tasks still
        running are kept; run it again once they finish."""
        now = self._now()
        return self._remove_ended(self.ledger.find(fn=fn), now, dry_run)

    def _remove_ended(self, records: Iterable[Record], now: float, dry_run: bool) -> Removal:
        kept = 0
        counted = Removal(dry_run=dry_run)

        def removable() -> Iterator[str]:
            nonlocal kept
            for record in records:
                if record.status in _ENDED or is_abandoned(record, now):
                    if dry_run:
                        counted.records += 1
                        counted.size += record.size or 0
                        counted.blobs += (record.blob is not None) + (record.log_blob is not None)
                    yield record.key
                else:
                    kept += 1

        if dry_run:
            for _ in removable():
                pass
            counted.kept = kept
            return counted
        self._check_blobs_for_removal()
        removal = self._remove(removable())
        removal.kept = kept
        return removal

    def _check_blobs_for_removal(self) -> None:
        # Removing records whose blobs nobody can reach would orphan those blobs for good.
        if self.blobs_known:
            return
        refs = self.ledger.blob_refs()
        try:
            named = next(iter(refs), None) is not None
        finally:
            close = getattr(refs, "close", None)
            if close is not None:
                close()  # do not leave a half-read cursor open on the ledger
        if named:
            raise ConfigurationError(
                "records of this ledger name blobs in a store that was not given; give it "
                "(--blobs URL or HOKURO_BLOBS on the command line) so they are removed too")

    def _remove(self, keys: Iterator[str]) -> Removal:
        removal = Removal()
        while chunk := _take(keys, DELETE_CHUNK):
            for record in self.ledger.delete(chunk):
                removal.records += 1
                removal.size += record.size or 0
                for ref in (record.blob, record.log_blob):
                    if not ref:
                        continue
                    try:
                        self.blobs.delete(ref)
                        removal.blobs += 1
                    except (BlobError, OSError) as exc:
                        removal.blob_failures += 1
                        log.warning("hokuro: blob %s of task %s was not removed (%s); "
                                    "hokuro clean will find it", ref, record.key[:12], exc)
                self._remove_files(record.key)
        return removal

    def _remove_files(self, key: str) -> None:
        try:
            folder = self.spot.task_dir(key, create=False)
        except HokuroError:
            return
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)

    # -- garbage --------------------------------------------------------------------------
    def scan_garbage(self, grace_period: float = 60.0) -> list[BlobInfo]:
        """Blobs no record names, older than ``grace_period`` seconds, and (for a local
        store) folders of task files whose task has no record.

        The grace period spares blobs being written right now: a result's blob is saved
        before its record (invariant 1), so for a moment it is named by nothing.
        """
        if not self.blobs_known:
            raise ConfigurationError(_UnknownBlobs._WHY)
        # The cutoff is taken before the records are read: a blob older than it was written
        # before the read began, so a record naming it is in what is read.
        cutoff = self._now() - grace_period
        named = set(self.ledger.blob_refs())
        named.update(self._refs_of_neighbours())
        orphans = [info for info in self.blobs.list_blobs()
                   if info.mtime < cutoff and info.ref not in named and is_safe_ref(info.ref)]
        orphans.extend(self._orphan_file_folders(cutoff))
        return orphans

    def _refs_of_neighbours(self) -> Iterator[str]:
        """Blobs named by the other Spots of this Spot's database that record the same blob
        store: a store shared by Spots holds blobs that are not this Spot's, yet no
        orphans. (Spots in other databases or files that share a store are not seen: give
        each Spot its own prefix or folder.)"""
        ledger = self.ledger
        if ledger.kind != "postgresql":
            return
        from ..store.ledger.postgres import PostgresLedger

        if not isinstance(ledger, PostgresLedger) or ledger.spot is None:
            return
        ours = mask_secrets(self.blobs.describe())
        for name in ledger.neighbours():
            if name is None:
                continue
            other = ledger.open_neighbour(name)
            try:
                if other.get_meta("blobs") == ours:
                    yield from other.blob_refs()
            finally:
                other.close()

    def _orphan_file_folders(self, cutoff: float) -> Iterator[BlobInfo]:
        # With a remote blob store each machine keeps its own task files: these are the
        # ones of this machine.
        root = self.spot.files_root
        if not root.is_dir():
            return
        for fan in sorted(root.iterdir()):
            if not (_FAN.match(fan.name) and fan.is_dir()):
                continue
            for folder in sorted(fan.iterdir()):
                if not (_KEY.match(folder.name) and folder.is_dir()):
                    continue  # not a folder hokuro made: leave it alone
                mtime = folder.stat().st_mtime
                if mtime < cutoff and self.ledger.lookup(folder.name) is None:
                    yield BlobInfo(f"files/{fan.name}/{folder.name}", _tree_size(folder), mtime)

    def remove_orphans(self, orphans: Iterable[str | BlobInfo]) -> int:
        """Remove blobs (and task file folders) found by :meth:`scan_garbage`; return how
        many were removed. A folder whose task was recorded again meanwhile is kept."""
        removed = 0
        for orphan in orphans:
            ref = orphan.ref if isinstance(orphan, BlobInfo) else orphan
            try:
                if ref.startswith("files/"):
                    key = ref.rsplit("/", 1)[-1]
                    if not _KEY.match(key) or self.ledger.lookup(key) is not None:
                        continue
                    folder = self.spot.task_dir(key, create=False)
                    if folder.is_dir():
                        shutil.rmtree(folder)
                        removed += 1
                elif self.blobs.delete(ref):
                    removed += 1
            except (HokuroError, OSError) as exc:
                log.warning("hokuro: orphan %s was not removed: %s", ref, exc)
        return removed

    def clean_garbage(self, orphans: Iterable[str | BlobInfo] | None = None,
                      tmp_max_age_seconds: float = 86400,
                      orphan_grace_seconds: float = 60.0, *, dry_run: bool = False
                      ) -> CleanReport:
        """Remove expired tasks, orphan blobs (``orphans`` if given, else those
        :meth:`scan_garbage` finds) and temporary files older than
        ``tmp_max_age_seconds`` left by interrupted writes.

        Returns ``(expired removed, orphans removed)``, with ``.temp`` the temporary files
        removed. With ``dry_run`` nothing is removed and the counts are what would be.
        """
        if not self.blobs_known:
            raise ConfigurationError(_UnknownBlobs._WHY)
        expired = self.delete_expired_tasks(dry_run=dry_run)
        found = list(orphans) if orphans is not None else \
            self.scan_garbage(orphan_grace_seconds)
        if dry_run:
            return CleanReport(expired, len(found), self._stale_temp(tmp_max_age_seconds))
        removed = self.remove_orphans(found)
        temp = self.blobs.clean_temp(tmp_max_age_seconds, now=self._now())
        return CleanReport(expired, removed, temp)

    def _stale_temp(self, max_age: float) -> int | None:
        if not isinstance(self.blobs, LocalBlobs):
            return None  # other stores can only clean, not count
        if not self.blobs.root.is_dir():
            return 0
        cutoff = self._now() - max_age
        count = 0
        for dirpath, _, filenames in os.walk(self.blobs.root):
            for name in filenames:
                if name.endswith(TEMP_SUFFIX):
                    with contextlib.suppress(FileNotFoundError):
                        if os.stat(os.path.join(dirpath, name)).st_mtime <= cutoff:
                            count += 1
        return count


# -- small pieces ----------------------------------------------------------------------------

def _take(items: Iterator[str], n: int) -> list[str]:
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= n:
            break
    return chunk


def _tree_size(folder: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(dirpath, name)).st_size
    return total
