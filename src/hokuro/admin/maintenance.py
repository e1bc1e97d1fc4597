"""Admin operations over a Spot's records and blobs: history, one task's details, error
groups, replaying failed calls, deletion and garbage collection; and the Spots of a whole
workspace or database.

The command line and the dashboard are thin layers over :class:`MaintenanceService`. It
works through the ledger and blob store protocols only, so every backend is served alike.
Two parts of it are modules of their own, mixins the service inherits: removing tasks and
garbage (:mod:`hokuro.admin.removing`) and the Spots of a whole workspace or database
(:mod:`hokuro.admin.spots`). Replaying failed calls is its own module,
:mod:`hokuro.admin.replay`; the service hands it the ledger and the failed records.

Why these choices:
- Nothing is unpickled unless the caller asks (``allow_pickle``) or, for replays, the
  function itself chose pickle (invariant 7); a value this process cannot decode is shown
  as a placeholder, never raised.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.spot import Spot
from ..engine.tasks import Task, TaskError, is_abandoned, read_status
from ..errors import (
    BlobError,
    BlobMissing,
    ConfigurationError,
    HokuroError,
    LedgerError,
)
from ..model.codec import Codec, PickleCodec
from ..model.records import (
    ABANDONED,
    READ_STATUSES,
    Record,
    Status,
    args_not_kept_reason,
    error_line,
)
from ..model.redact import mask_secrets
from ..store.blobs import BlobStorageBase, open_blobs
from ..store.ledger import TaskDB, open_ledger
from .removing import CleanReport, Removal, Removing
from .replay import RetryResult, args_codec, replay_failed
from .spots import WORKSPACE_DIR, Spots, SpotSummary
from .unknown_blobs import _UnknownBlobs

__all__ = [
    "CleanReport",
    "ErrorGroup",
    "MaintenanceService",
    "Removal",
    "RetryResult",
    "SpotSummary",
    "TaskDetail",
]

#: Whole records read first when one example is wanted.
_FEW = 8
#: The fingerprint given to tasks whose owner died while running them.
ABANDONED_FINGERPRINT = "abandoned"
_SPOT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


# -- results ---------------------------------------------------------------------------------

@dataclass(slots=True)
class TaskDetail:
    """Everything known about one task, with its result and arguments decoded when possible.

    ``result_note`` / ``args_note`` / ``log_note`` are set (a short ``<...>`` placeholder)
    when the value is there but was not decoded or read, saying why.
    """

    record: Record
    status: str
    result: Any = None
    result_note: str | None = None
    args: Any = None
    args_note: str | None = None
    error: TaskError | None = None
    log: str = ""
    log_note: str | None = None
    paths: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.record.key

    @property
    def has_result(self) -> bool:
        return self.record.status == Status.DONE and self.result_note is None

    @property
    def decoded_data(self) -> Any:
        """The decoded result, under the name beautyspot's dashboard used."""
        return self.result


@dataclass(slots=True)
class ErrorGroup:
    """Failed tasks that ended with the same error (same type and the same frames)."""

    fingerprint: str
    error_type: str
    count: int
    collections: list[str]
    first_seen: float
    last_seen: float
    #: The last line of the newest failure's traceback.
    message: str | None
    example_key: str
    example_traceback: str | None


# -- the service -----------------------------------------------------------------------------

class MaintenanceService(Removing, Spots):
    """Admin operations over one ledger and its blob store.

    Build it with :meth:`from_path` (a SQLite file), :meth:`from_spot` (an open Spot) or
    :meth:`from_target` (what the command line takes: a Spot name, a path or a URL). Pass
    ``read_only=True`` to the factories to guarantee that nothing is created, migrated or
    written.
    """

    def __init__(self, ledger: TaskDB, blobs: BlobStorageBase | None = None,
                 codec: Codec | None = None, *, name: str | None = None,
                 workspace: str | os.PathLike[str] | None = None,
                 clock: Callable[[], float] = time.time, owns: bool = False) -> None:
        spot = Spot(_spot_name(name), db=ledger,
                    blobs=blobs if blobs is not None else _UnknownBlobs(),
                    workspace=workspace, clock=clock)
        if codec is not None:
            spot.codec = codec
        self._attach(spot, owns=owns)

    def _attach(self, spot: Spot, *, owns: bool) -> None:
        # A Spot gives the task views, stats and file folders their one implementation.
        self.spot = spot
        self._owns = owns

    # -- factories ------------------------------------------------------------------------
    @classmethod
    def from_path(cls, db_path: str | os.PathLike[str],
                  blob_dir: str | os.PathLike[str] | None = None, *,
                  spot: str | None = None, read_only: bool = False,
                  clock: Callable[[], float] = time.time) -> MaintenanceService:
        """A service over the SQLite ledger at ``db_path``. Blobs: ``blob_dir``, else the
        store the Spot recorded in its ledger (when it can be reached), else the Spot
        layout, ``<its folder>/blobs/<its stem>``. The ledger must exist; ``spot``, when
        given, must be the Spot the file belongs to."""
        path = Path(db_path).absolute()
        if not path.is_file():
            raise LedgerError(f"no ledger file at {path}; check the path")
        default = path.parent / "blobs" / path.stem
        return cls._open(str(path), blob_dir, name=path.stem, workspace=path.parent,
                         spot=spot, default_blobs=default, read_only=read_only, clock=clock)

    @classmethod
    def from_spot(cls, spot: Spot) -> MaintenanceService:
        """A service over an open Spot (its codec, with the types registered in it). The
        Spot stays the caller's to close."""
        service = cls.__new__(cls)
        service._attach(spot, owns=False)
        return service

    @classmethod
    def from_target(cls, target: str, *, spot: str | None = None,
                    workspace: str | os.PathLike[str] | None = None,
                    blobs: str | None = None, read_only: bool = False,
                    clock: Callable[[], float] = time.time) -> MaintenanceService:
        """A service over what a person names a Spot by.

        ``target`` is a database URL (``postgresql://…``, ``sqlite:///…``), a path to a
        ledger file (blobs at ``<its folder>/blobs/<its stem>``), or a Spot name looked up
        as ``<workspace>/<name>.db`` (workspace defaults to ``./.hokuro``). A PostgreSQL
        database may hold several Spots: ``spot`` names one, and may be left out when it
        holds only one. ``blobs`` overrides where blobs live; by default they are where the
        Spot recorded them (a Spot that never did: the operations that need them say so).
        A target that does not exist is an error: this never creates a ledger or a Spot.
        """
        if target.startswith(("postgresql://", "postgres://")):
            name = _spot_name(spot or target.rsplit("/", 1)[-1].split("?")[0])
            return cls._open(target, blobs, name=name, workspace=workspace, spot=spot,
                             read_only=read_only, clock=clock)
        if target.startswith("sqlite:///"):
            target = target[len("sqlite:///"):]
        elif "://" in target:
            raise ConfigurationError(
                f"{mask_secrets(target)} is not a ledger this hokuro can open; give a Spot "
                "name, a ledger file path, sqlite:///path or postgresql://user@host/dbname")
        path = Path(target)
        if path.is_file():
            return cls.from_path(path, blobs, spot=spot, read_only=read_only, clock=clock)
        folder = Path(workspace) if workspace is not None else Path.cwd() / WORKSPACE_DIR
        if not _SPOT_NAME.match(target):
            raise LedgerError(f"no ledger file at {path.absolute()}; check the path")
        db = folder / f"{target}.db"
        if target.endswith(".db") and not db.is_file():
            # "results.db" names the file of Spot "results" (or, made before such names
            # were refused, Spot "results.db"'s results.db.db).
            db = folder / target
        if not db.is_file():
            known = sorted(p.stem for p in folder.glob("*.db")) if folder.is_dir() else []
            where = f"{folder.absolute()}" + ("" if folder.is_dir() else " (no such folder)")
            raise LedgerError(
                f"no Spot named {target!r} in {where}; known Spots: "
                f"{', '.join(known) or 'none'}. Give a Spot name, a ledger file path or a "
                "database URL (run it from your project folder, or pass --workspace)")
        return cls.from_path(db, blobs, spot=spot, read_only=read_only, clock=clock)

    @classmethod
    def _open(cls, db: str, blobs: str | os.PathLike[str] | None, *, name: str,
              workspace: str | os.PathLike[str] | None, read_only: bool,
              clock: Callable[[], float], spot: str | None = None,
              default_blobs: Path | None = None) -> MaintenanceService:
        try:
            ledger = open_ledger(db, spot=spot, read_only=read_only, create=False)
        except HokuroError:
            raise
        except Exception as exc:  # e.g. a file that is not SQLite at all
            raise LedgerError(
                f"cannot open {mask_secrets(db)} as a hokuro ledger: {exc}") from exc
        try:
            if spot is not None and ledger.spot not in (None, spot):
                raise ConfigurationError(
                    f"{mask_secrets(ledger.describe())} is the ledger of Spot "
                    f"{ledger.spot!r}, not {spot!r}; leave out --spot or name that Spot")
            if blobs is None:
                blobs = _recorded_blobs(ledger.get_meta("blobs"), default_blobs)
            # Never create the blob folder: reading must not write, and writers make the
            # folders they need when they save.
            store = open_blobs(blobs, create=False) if blobs is not None else None
        except BaseException:
            ledger.close()
            raise
        return cls(ledger, store, name=ledger.spot or name, workspace=workspace, clock=clock,
                   owns=True)

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        """Close the ledger and blob store if this service opened them (the factories
        ``from_path``/``from_target``, or ``owns=True``); a Spot or ledger handed in stays
        open for its owner."""
        if self._owns:
            self.spot.close()

    def __enter__(self) -> MaintenanceService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def ledger(self) -> TaskDB:
        return self.spot.ledger

    @property
    def blobs(self) -> BlobStorageBase:
        return self.spot.blobs

    @property
    def codec(self) -> Codec:
        return self.spot.codec

    @property
    def blobs_known(self) -> bool:
        return not isinstance(self.spot.blobs, _UnknownBlobs)

    def describe(self) -> dict[str, str]:
        """Where the ledger and the blobs live, passwords masked."""
        return {"ledger": mask_secrets(self.ledger.describe()),
                "blobs": mask_secrets(self.blobs.describe())}

    def _now(self) -> float:
        return self.spot.clock()

    # -- reading --------------------------------------------------------------------------
    def get_history(self, limit: int | None = 1000, *, fn: str | None = None,
                    status: str | None = None) -> list[Task]:
        """Task views, newest first: up to ``limit``, of collection ``fn``, with the status
        a reader sees (``done``, ``failed``, ``expired``, ``running``, ...)."""
        if status is not None and status not in READ_STATUSES:
            raise ConfigurationError(
                f"status {status!r} is not one of {', '.join(READ_STATUSES)}")
        if limit is not None and limit < 0:
            raise ConfigurationError("limit must be 0 or more")
        if limit == 0:
            return []
        return list(self.spot.find(fn, status=status, limit=limit))

    def stats(self, fn: str | None = None) -> dict[str, Any]:
        """Counts per collection and status and sizes, computed by the ledger (no row
        cap); see :meth:`hokuro.Spot.stats`."""
        return self.spot.stats(fn)

    def summary(self) -> dict[str, Any]:
        """Records, bytes of results and the time of the last activity, in one query."""
        rows = self.ledger.stats(now=self._now())
        activity = [row.last_activity for row in rows if row.last_activity is not None]
        return {
            "records": sum(row.count for row in rows),
            "size": sum(row.size for row in rows),
            "failed": sum(row.count for row in rows if row.status == Status.FAILED),
            "collections": len({row.fn for row in rows}),
            "last_activity": max(activity) if activity else None,
        }

    def resolve_key_prefix(self, prefix: str, *, limit: int = 20) -> str | list[str] | None:
        """The full key that ``prefix`` names: the key itself (an exact match or the only
        key starting with it), a sorted list of up to ``limit`` candidates when several
        match, or None when none does."""
        prefix = prefix.strip().lower()
        if not prefix:
            raise ConfigurationError("give the first characters of a task key")
        if self.ledger.lookup(prefix) is not None:
            return prefix
        keys = sorted(r.key for r in self.ledger.find(key_prefix=prefix, limit=limit))
        if not keys:
            return None
        return keys[0] if len(keys) == 1 else keys

    def get_task_detail(self, key: str, *, include_expired: bool = False,
                        allow_pickle: bool = False, max_bytes: int | None = None
                        ) -> TaskDetail | None:
        """The whole record of ``key`` with its result, arguments and log, or None.

        An expired task is None unless ``include_expired``. A result stored with pickle is
        decoded only with ``allow_pickle=True``; one this process cannot decode (a custom
        type registered only in the user's code, say) gets a placeholder in
        ``result_note``. A blob larger than ``max_bytes`` is not loaded.
        """
        record = self.ledger.get(key)
        if record is None:
            return None
        now = self._now()
        status = read_status(record, now)
        if status == "expired" and not include_expired:
            return None
        task = Task(self.spot, key, record.fn, record, whole=True)
        detail = TaskDetail(record=record, status=status, error=task.error)
        if record.status == Status.DONE:
            detail.result, detail.result_note = self._decode_result(
                record, allow_pickle, max_bytes)
        not_kept = args_not_kept_reason(record.args)
        if not_kept is not None:
            detail.args_note = f"<{not_kept}>"
        elif record.args is not None:
            detail.args, detail.args_note = self._decode(
                record.args, args_codec(record.args), allow_pickle, self.codec, "arguments")
        else:
            detail.args_note = "<not recorded: an argument could not be encoded>"
        detail.log, detail.log_note = self._read_log(record)
        try:
            detail.paths = {k: v for k, v in task.paths.items() if v is not None}
        except HokuroError:
            detail.paths = {"ledger": self.ledger.describe()}
        detail.paths["ledger"] = mask_secrets(str(detail.paths.get("ledger", "")))
        return detail

    def _decode_result(self, record: Record, allow_pickle: bool, max_bytes: int | None
                       ) -> tuple[Any, str | None]:
        data = record.result
        if record.blob is not None:
            if max_bytes is not None and (record.size or 0) > max_bytes:
                return None, f"<{record.size} bytes in blob {record.blob}; not loaded>"
            try:
                data = self.blobs.load(record.blob)
            except BlobMissing:
                return None, f"<blob {record.blob} is missing from {self.blobs.describe()}>"
            except BlobError as exc:
                return None, f"<blob {record.blob} could not be read: {exc}>"
        if data is None:
            return None, "<empty result>"
        return self._decode(data, record.codec or "msgpack", allow_pickle, self.codec,
                            "result")

    @staticmethod
    def _decode(data: bytes, codec_name: str, allow_pickle: bool, codec: Codec, what: str
                ) -> tuple[Any, str | None]:
        if codec_name == "pickle" and not allow_pickle:
            return None, f"<pickle, {len(data)} bytes; not decoded>"
        decoder = PickleCodec() if codec_name == "pickle" else codec
        if codec_name not in ("pickle", "msgpack"):
            return None, f"<codec {codec_name!r}, {len(data)} bytes; not known here>"
        try:
            return decoder.decode(data), None
        except Exception as exc:  # a custom decoder may raise anything; show, never crash
            reason = str(exc).split(";")[0]
            return None, f"<{what} not decoded: {reason}>"

    def _read_log(self, record: Record) -> tuple[str, str | None]:
        if record.log_blob:
            try:
                return self.blobs.load(record.log_blob).decode("utf-8", "replace"), None
            except BlobError as exc:
                return "", f"<log blob {record.log_blob} could not be read: {exc}>"
        return record.log or "", None

    def get_log(self, key: str) -> str | None:
        """The log of task ``key`` (empty when it wrote none), or None when there is no
        such task."""
        record = self.ledger.get(key)
        if record is None:
            return None
        text, note = self._read_log(record)
        if note is not None:
            raise BlobError(note.strip("<>"))
        return text

    # -- errors ---------------------------------------------------------------------------
    def error_groups(self, fn: str | None = None) -> list[ErrorGroup]:
        """Failed tasks grouped by identical error (fingerprint), most frequent first.

        Tasks whose owner died while running them form one group with the fingerprint
        ``abandoned``. Failures past their retention are left out, as readers see them
        as expired.
        """
        now = self._now()
        groups: dict[str, ErrorGroup] = {}
        # Counted by the ledger (one GROUP BY); only each group's newest example is read.
        for stat in self.ledger.error_stats(fn, now=now):
            group = groups.get(stat.fingerprint)
            if group is None:
                groups[stat.fingerprint] = ErrorGroup(
                    stat.fingerprint, stat.error_type or "Error", stat.count, [stat.fn],
                    stat.first_seen, stat.last_seen, None, "", None)
                continue
            group.count += stat.count
            group.collections.append(stat.fn)
            group.first_seen = min(group.first_seen, stat.first_seen)
            group.last_seen = max(group.last_seen, stat.last_seen)
        for group in groups.values():
            example = self._newest_failure(group.fingerprint, fn, now)
            if example is not None:
                group.example_key, group.example_traceback = example.key, example.error
                group.message = error_line(example.error)
        abandoned = [r for name in self._collections(fn)
                     for r in self.ledger.find(fn=name, status=Status.RUNNING)
                     if is_abandoned(r, now)]
        if abandoned:
            abandoned.sort(key=lambda r: (r.updated_at, r.key), reverse=True)
            newest = abandoned[0]
            seen = [r.updated_at for r in abandoned]
            groups[ABANDONED_FINGERPRINT] = ErrorGroup(
                ABANDONED_FINGERPRINT, ABANDONED, len(abandoned),
                sorted({r.fn for r in abandoned}), min(seen), max(seen),
                f"its owner stopped before finishing ({newest.owner})", newest.key, None)
        for group in groups.values():
            group.collections.sort()
        return sorted(groups.values(), key=lambda g: (-g.count, -g.last_seen))

    def _collections(self, fn: str | None) -> list[str | None]:
        """``[fn]``, or every collection when the ledger can name them cheaply: running
        tasks are found through the (collection, status) index one collection at a time,
        where a search by status alone reads the whole table (2 s on 1,000,000 records,
        against 2 ms)."""
        if fn is not None:
            return [fn]
        names = getattr(self.ledger, "collections", None)
        return list(names()) if names is not None else [None]

    def _newest_failure(self, fingerprint: str, fn: str | None, now: float) -> Record | None:
        # A few whole records first (the newest is almost always one): a page of 500 with
        # their tracebacks took 60-90 ms on a group of 33,000 failures.
        for limit in (_FEW, None):
            for record in self.ledger.find(fn=fn, status=Status.FAILED, full=True,
                                           error_fingerprint=fingerprint, limit=limit):
                if not record.is_expired(now):
                    return record
        # Records without a fingerprint are grouped by their error type.
        for record in self.ledger.find(fn=fn, status=Status.FAILED, full=True):
            if record.error_fingerprint is None and (record.error_type or "Error") \
                    == fingerprint and not record.is_expired(now):
                return record
        return None

    def failed_tasks(self, fn: str | None = None, fingerprint: str | None = None
                     ) -> Iterator[Record]:
        """Whole records of the failed tasks (of ``fn``, with that error fingerprint),
        newest first; ``fingerprint="abandoned"`` names tasks whose owner died."""
        return self._failed(fn, fingerprint, self._now(), full=True)

    def _failed(self, fn: str | None, fingerprint: str | None, now: float, *, full: bool
                ) -> Iterator[Record]:
        if fingerprint != ABANDONED_FINGERPRINT:
            for record in self.ledger.find(fn=fn, status=Status.FAILED, full=full,
                                           error_fingerprint=fingerprint):
                if not record.is_expired(now):
                    yield record
        if fingerprint in (None, ABANDONED_FINGERPRINT):
            for record in self.ledger.find(fn=fn, status=Status.RUNNING, full=full):
                if is_abandoned(record, now):
                    yield record

    # -- replaying failures ---------------------------------------------------------------
    def retry_failed(self, *, fn: str | None = None, fingerprint: str | None = None,
                     search_path: str | os.PathLike[str] | None = None,
                     dry_run: bool = False) -> Iterator[RetryResult]:
        """Replay failed tasks, after their code was fixed, one result per task.

        Each task's function is imported by the import path in its record (``module:
        qualname``), with ``search_path`` (default: the current folder) first on
        ``sys.path``, and called again with the arguments recorded for it. A function that
        cannot be imported, or that now records into another ledger, is reported and its
        tasks skipped; the others are still replayed. Arguments stored with pickle are
        decoded only for a function that chose ``codec="pickle"`` (invariant 7).
        """
        yield from replay_failed(self.ledger, self.failed_tasks(fn, fingerprint),
                                 search_path=search_path, dry_run=dry_run)


# -- small pieces ----------------------------------------------------------------------------

def _recorded_blobs(recorded: str | None, default: Path | None) -> str | Path | None:
    """Where to look for a Spot's blobs: the store it recorded, unless that is a folder
    that is not here (a project moved to another folder or machine) and the Spot layout's
    default is; None when neither is known."""
    if recorded is None:
        return default
    if "://" in recorded or default is None or Path(recorded).is_dir() \
            or not default.is_dir():
        return recorded
    return default


def _spot_name(name: str | None) -> str:
    # The internal Spot only needs a valid name (it names task folders of remote stores).
    usable = name and _SPOT_NAME.match(name) and not name.endswith(".db")
    return name if usable else "maintenance"

