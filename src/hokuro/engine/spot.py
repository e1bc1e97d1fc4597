"""``Spot``: one workspace of records — a ledger, a blob store, a codec and limiters."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BlobError, ConfigurationError
from ..model.codec import Codec
from ..model.records import Status
from ..model.redact import mask_secrets
from ..store.blobs import BlobStorageBase, open_blobs
from ..store.blobs.local import LocalBlobs
from ..store.blobs.names import files_ref
from ..store.ledger import TaskDB, open_ledger
from .flight import FlightTable
from .io_thread import IoThread
from .keeping import is_recorded_failure
from .leases import LeaseKeeper
from .marking import MarkedFunction
from .options import MarkOptions
from .owners import current_owner, owner_is_dead
from .tasks import Task, is_abandoned, read_status

if TYPE_CHECKING:  # limiters import asyncio: loaded on first use, not with the Spot
    from ..store.limits import Guard, Limiter, LimitStore

#: Results larger than this many encoded bytes go to the blob store (see README:
#: measured in benchmarks/bench_blob_threshold.py: inline is faster to read at every size
#: and about as fast to write at 2 MiB, where the blob file's fsync stops dominating).
DEFAULT_BLOB_THRESHOLD = 2 * 1024 * 1024
#: Default cap of one task's captured log.
DEFAULT_LOG_LIMIT = 1024 * 1024
#: Encoded arguments larger than this are not kept, only the key (the task cannot be
#: replayed). Measured in benchmarks/bench_args_limit.py (see README): keeping arguments
#: costs a SQLite miss about 1 ms at 256 KiB, 2-3 ms at 512 KiB, then 10-14 ms at 1 MiB.
DEFAULT_ARGS_LIMIT = 256 * 1024
log = logging.getLogger("hokuro")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# hadrosaur's status words, accepted by find_by_status.
_SEED_STATUS = {"completed": "done", "complete": "done", "error": "failed",
                "pending": "running", "unavailable": "missing"}


def _check_collection(name: object) -> None:
    """Refuse a collection name that is empty or looks like a path (it names the task in
    every listing and command, and must never be taken for a folder)."""
    if (not isinstance(name, str) or not name or name.startswith(".") or "/" in name
            or "\\" in name or ".." in name or not name.isprintable()):
        raise ConfigurationError(
            f"resource collection name {name!r} is not allowed: use a non-empty name "
            "without '/', '\\', '..', a leading '.' or control characters, e.g. 'genomes'"
        )


def default_workspace() -> Path:
    return Path.cwd() / ".hokuro"


class Spot:
    """A workspace of task records.

    ``Spot("name")`` keeps records in ``.hokuro/name.db`` (SQLite, WAL) and large results in
    ``.hokuro/blobs/name/`` under the working directory; ``workspace=`` moves both.
    ``db=`` and ``blobs=`` (alias ``storage=``) take a path, a URL (``postgresql://…``,
    ``s3://bucket/prefix``) or a backend object. A Spot is safe to share between threads
    and asyncio tasks; many processes may open the same Spot at once.

    A Spot is a namespace: in a PostgreSQL database each Spot has a schema of its own, and
    a SQLite file belongs to one Spot. A ledger object given as ``db=`` is used as it is
    (its own namespace). Rate limiters are shared by name across Spots.
    """

    def __init__(
        self,
        name: str = "default",
        *,
        db: str | os.PathLike[str] | TaskDB | None = None,
        blobs: str | os.PathLike[str] | BlobStorageBase | None = None,
        storage: str | os.PathLike[str] | BlobStorageBase | None = None,
        workspace: str | os.PathLike[str] | None = None,
        tpm: int | None = None,
        limits: Any = None,
        blob_threshold: int = DEFAULT_BLOB_THRESHOLD,
        lease: float = 60.0,
        log_limit: int = DEFAULT_LOG_LIMIT,
        args_limit: int | None = DEFAULT_ARGS_LIMIT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigurationError(
                f"Spot name {name!r} is not allowed: use letters, digits, '_', '.' or '-' "
                "(up to 128), not starting with '.' or '-'"
            )
        if name.endswith(".db"):
            # Spot("results.db") would keep its records in .hokuro/results.db.db.
            raise ConfigurationError(
                f"Spot name {name!r} looks like a file name; a Spot's name is not its file. "
                f"Give a name, Spot({name[:-3]!r}) (records in .hokuro/{name}), or a file, "
                f"Spot({name[:-3]!r}, db={name!r})"
            )
        if blobs is not None and storage is not None:
            raise ConfigurationError("give blobs= or storage= (its alias), not both")
        if lease <= 0:
            raise ConfigurationError("lease must be a positive number of seconds")
        if args_limit is not None and (not isinstance(args_limit, int) or args_limit < 0):
            raise ConfigurationError(
                "args_limit must be a whole number of bytes >= 0, or None to keep arguments "
                "of any size")
        self.name = name
        self.workspace = Path(workspace).absolute() if workspace else default_workspace()
        # A ledger object given as db= is the caller's own namespace, used as it is.
        self.ledger: TaskDB = db if isinstance(db, TaskDB) else open_ledger(
            db if db is not None else self.workspace / f"{name}.db", spot=name)
        self.blobs: BlobStorageBase = open_blobs(
            blobs if blobs is not None else storage if storage is not None
            else self.workspace / "blobs" / name)
        # Recorded before the first task runs (prepare_to_run), not here: opening a Spot to
        # read it writes nothing.
        self._blobs_unrecorded = not isinstance(db, TaskDB)
        self.codec = Codec()
        self.blob_threshold = blob_threshold
        self.lease = float(lease)
        self.log_limit = log_limit
        self.args_limit = args_limit
        self.clock = clock
        self.poll_min = 0.002
        self.poll_max = 0.25
        self.flights = FlightTable()
        self.leases = LeaseKeeper(self.ledger, self.owner_token, self.lease, clock)
        self.counters: Counter[str] = Counter()
        self._resources: dict[str, tuple[MarkedFunction, bool]] = {}
        # Limits are shared like the records: between processes by default (SQLite next to
        # the ledger), between machines when the ledger is PostgreSQL. Opened on first use.
        if limits is None:
            limits = db if isinstance(db, str) and db.startswith(
                ("postgresql://", "postgres://")) else "sqlite"
        self._limits_spec = limits
        self._limit_store: LimitStore | None = None
        self._limiters: dict[str, Limiter] = {}
        self._tpm = tpm
        self._default_limiter: Limiter | None = None
        #: Set by the call path once :meth:`prepare_to_run` succeeded (later calls skip it;
        #: set on the caller's side, so async calls reach their limiter in the order made).
        self.prepared = False
        self._io_thread: IoThread | None = None
        self._io_lock = threading.Lock()

    def prepare_to_run(self) -> None:
        """Before a task of this Spot runs: the blob store must be reachable (a missing S3
        bucket is found before any work is done), and the ledger records, once per Spot
        object, where the blobs are, so readers (``hokuro show URL``) find them without
        being told — only a folder or an ``s3://`` URL, never a credential."""
        self.blobs.ensure_ready()
        if self._blobs_unrecorded:
            if self.blobs.kind in ("folder", "s3"):
                location = mask_secrets(self.blobs.describe())
                if self.ledger.get_meta("blobs") != location:
                    self.ledger.set_meta("blobs", location)
            self._blobs_unrecorded = False

    @property
    def io_thread(self) -> IoThread:
        """The thread that answers the ledger requests of this Spot's async calls in
        batches (started by the first one)."""
        io = self._io_thread
        if io is None:
            with self._io_lock:
                io = self._io_thread
                if io is None:
                    io = self._io_thread = IoThread(self.ledger)
        return io

    # -- marking --------------------------------------------------------------------------
    def mark(self, fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
        """Make ``fn`` durable: ``@spot.mark`` or ``@spot.mark(version="2", ...)``."""
        parsed = MarkOptions.parse(options)
        if fn is None:
            return lambda f: MarkedFunction(self, f, parsed)
        return MarkedFunction(self, fn, parsed)

    @contextlib.contextmanager
    def cached_run(self, *fns: Callable[..., Any], **options: Any) -> Iterator[Any]:
        """``with spot.cached_run(f, g, version="2") as (f2, g2):`` — marked wrappers for
        one block, leaving the original functions untouched."""
        if not fns:
            raise TypeError("cached_run needs at least one function")
        parsed = MarkOptions.parse(options)
        marked = tuple(MarkedFunction(self, fn, parsed) for fn in fns)
        yield marked[0] if len(marked) == 1 else marked

    def register_type(self, type_: type, code: int, encoder: Callable[[Any], Any],
                      decoder: Callable[[Any], Any]) -> None:
        """Teach this Spot's codec a type (codes 0 to 95 are yours)."""
        self.codec.register_type(type_, code, encoder, decoder)

    def register(self, code: int, encoder: Callable[[Any], Any] | None = None,
                 decoder: Callable[[Any], Any] | None = None) -> Callable[[type], type]:
        """Class decorator form of :meth:`register_type`."""
        return self.codec.register(code, encoder, decoder)

    # -- resources: collections computed by ident ------------------------------------------
    def resource(self, name: str, *, args_in_key: bool = False, **options: Any
                 ) -> Callable[[Callable[..., Any]], MarkedFunction]:
        """``@spot.resource("genomes")`` on ``def compute(ident, args, ctx)``.

        By default a resource is keyed by its ident alone (``args`` do not join the key, as
        in hadrosaur); ``args_in_key=True`` keys by ident and args.
        """
        _check_collection(name)

        def decorate(fn: Callable[..., Any]) -> MarkedFunction:
            marked = MarkedFunction(self, fn, MarkOptions.parse({**options, "name": name}),
                                    resource=True)
            self._resources[name] = (marked, args_in_key)
            return marked
        return decorate

    def _resource(self, name: str) -> tuple[MarkedFunction, bool]:
        try:
            return self._resources[name]
        except KeyError:
            known = ", ".join(sorted(self._resources)) or "none"
            raise ConfigurationError(
                f"no resource collection {name!r} in Spot {self.name!r} (known: {known}); "
                f"define it with @spot.resource({name!r})"
            ) from None

    def _ident_call(self, name: str, ident: str, args: Any) -> tuple[MarkedFunction, str]:
        if not isinstance(ident, str) or not ident:
            raise ConfigurationError(f"an ident must be a non-empty string, not {ident!r}")
        marked, args_in_key = self._resource(name)
        return marked, marked.ident_key(ident, args, args_in_key=args_in_key)

    def fetch(self, name: str, ident: str, args: Any = None, *, recompute: bool = False
              ) -> Task:
        """Compute resource ``ident`` of collection ``name`` unless kept; return its Task.

        A failure does not raise here: the returned Task has status ``failed`` and its
        ``error`` and ``log``.
        """
        marked, key = self._ident_call(name, ident, args)
        if marked.is_async:
            raise ConfigurationError(f"{name} is async: use await spot.fetch_async(...)")
        try:
            marked.run_ident(ident, args, key, recompute)
        except Exception as exc:
            if not is_recorded_failure(exc, key):
                raise  # not the task's failure (a ledger error, say): nothing carries it
        return self.task_view(key, marked)

    async def fetch_async(self, name: str, ident: str, args: Any = None, *,
                          recompute: bool = False) -> Task:
        """:meth:`fetch` for asyncio code; a sync resource runs in a worker thread so the
        event loop is never blocked by it."""
        marked, key = self._ident_call(name, ident, args)
        try:
            if marked.is_async:
                await marked.run_ident(ident, args, key, recompute)
            else:
                import asyncio

                await asyncio.to_thread(marked.run_ident, ident, args, key, recompute)
        except Exception as exc:
            if not is_recorded_failure(exc, key):
                raise  # not the task's failure (a ledger error, say): nothing carries it
        return self.task_view(key, marked)

    # -- reading records ------------------------------------------------------------------
    def task_view(self, key: str, marked: MarkedFunction | None = None) -> Task:
        record = self.ledger.get(key)
        return Task(self, key, marked.name if marked else None, record,
                    codec=marked.options.codec if marked else None, whole=True)

    def _key_for(self, fn_or_name: MarkedFunction | str, ident_or_args: Any) -> str | None:
        """The key of a task named by a marked function and its arguments (a tuple of
        positional arguments, a dict of keywords, or one argument), or by a collection and
        an ident."""
        if isinstance(fn_or_name, MarkedFunction) and not fn_or_name.resource:
            if isinstance(ident_or_args, tuple):
                return fn_or_name.key_of(*ident_or_args)
            if isinstance(ident_or_args, dict):
                return fn_or_name.key_of(**ident_or_args)
            return fn_or_name.key_of(ident_or_args)
        name = fn_or_name.name if isinstance(fn_or_name, MarkedFunction) else fn_or_name
        marked, args_in_key = self._resources.get(name, (None, True))
        if marked is not None and not args_in_key:
            return marked.ident_key(ident_or_args, None, args_in_key=False)
        # Keyed by ident and args, or known only by name: its newest record of that ident.
        for record in self.ledger.find(fn=name, ident=str(ident_or_args), limit=1):
            return record.key
        return None

    def task(self, fn_or_name: MarkedFunction | str, ident_or_args: Any) -> Task:
        """The Task view of one task, named by function/collection and ident or args."""
        key = self._key_for(fn_or_name, ident_or_args)
        name = fn_or_name.name if isinstance(fn_or_name, MarkedFunction) else fn_or_name
        if key is None:
            return Task(self, "", name, None)
        marked = fn_or_name if isinstance(fn_or_name, MarkedFunction) else None
        return self.task_view(key, marked)

    def status(self, fn_or_name: MarkedFunction | str, ident_or_args: Any) -> str:
        """``missing``, ``running``, ``done``, ``failed`` or ``expired`` — never raises for an
        unknown ident."""
        key = self._key_for(fn_or_name, ident_or_args)
        record = None if key is None else self.ledger.get(key)
        return read_status(record, self.clock())

    def stats(self, fn_or_name: MarkedFunction | str | None = None) -> dict[str, Any]:
        """Counts per status per collection and totals, computed by the ledger.

        ``{"counts": {"total": n, "done": n, ...}, "size": bytes,
        "collections": {name: {"counts": {...}, "size": bytes}}}``. Results past their
        retention count as ``expired``; running tasks past their lease as ``failed``.
        """
        name = fn_or_name.name if isinstance(fn_or_name, MarkedFunction) else fn_or_name
        collections: dict[str, dict[str, Any]] = {}
        totals: Counter[str] = Counter()
        size = 0
        now = self.clock()
        for row in self.ledger.stats(name, now=now):
            entry = collections.setdefault(row.fn, {"counts": Counter(), "size": 0})
            stale = row.expired
            if row.status == Status.RUNNING and row.count > stale:
                # Leases still alive may belong to dead processes on this host; running
                # tasks are few, so look at each owner rather than wait for the expiry.
                stale = sum(1 for r in self.ledger.find(fn=row.fn, status=Status.RUNNING)
                            if is_abandoned(r, now))
            if row.status == Status.RUNNING:
                shown = {"running": row.count - stale, "failed": stale}
            elif row.status in (Status.DONE, Status.FAILED):
                shown = {row.status: row.count - stale, "expired": stale}
            else:
                shown = {row.status: row.count}
            for status, count in shown.items():
                if count:
                    entry["counts"][status] += count
                    totals[status] += count
            entry["size"] += row.size
            size += row.size
        for entry in collections.values():
            entry["counts"] = {"total": sum(entry["counts"].values()), **entry["counts"]}
        return {"counts": {"total": sum(totals.values()), **totals}, "size": size,
                "collections": collections}

    def find(self, fn_or_name: MarkedFunction | str | None = None, *, status: str | None = None,
             since: float | None = None, limit: int | None = None) -> Iterator[Task]:
        """Task views, newest first, streamed (bounded memory)."""
        name = fn_or_name.name if isinstance(fn_or_name, MarkedFunction) else fn_or_name
        codec = fn_or_name.options.codec if isinstance(fn_or_name, MarkedFunction) else None
        stored = _SEED_STATUS.get(status, status) if status else None
        if stored in ("missing",):
            return
        wanted = stored
        if stored == "expired":
            stored = None
        count = 0
        for record in self.ledger.find(fn=name, status=stored if stored != "failed" else None,
                                       since=since,
                                       limit=limit if wanted in (None, "running") else None):
            view = Task(self, record.key, record.fn, record, codec=codec)
            if wanted is not None and view.status != wanted:
                continue
            yield view
            count += 1
            if limit is not None and count >= limit:
                return

    def find_by_status(self, name: str, status: str) -> list[str]:
        """Idents (or keys, for tasks without one) of a collection with that status."""
        return [t.ident or t.key for t in self.find(name, status=status)]

    def fetch_error(self, name: str, ident: str) -> str | None:
        """The traceback of a failed resource, or None."""
        error = self.task(name, ident).error
        return None if error is None else (error.traceback or str(error))

    def fetch_log(self, name: str, ident: str) -> str:
        """The log written through ``ctx.logger`` while computing a resource."""
        return self.task(name, ident).log

    # -- removing -------------------------------------------------------------------------
    def forget(self, fn: MarkedFunction, *args: Any, **kwargs: Any) -> bool:
        """Remove the record of ``fn(*args, **kwargs)``; True if there was one."""
        if not isinstance(fn, MarkedFunction):
            raise TypeError("spot.forget takes a marked function and the call's arguments")
        return self.forget_key(fn.key_of(*args, **kwargs))

    def forget_key(self, key: str) -> bool:
        """Remove the record of ``key``, then its blobs and files. The record goes first, so
        nothing ever names a removed blob; a blob that cannot be removed is left for
        ``hokuro clean``."""
        removed = self.ledger.delete([key])
        for record in removed:
            for ref in (record.blob, record.log_blob):
                if ref:
                    try:
                        self.blobs.delete(ref)
                    except BlobError as exc:
                        log.warning("hokuro: blob %s of task %s stays until hokuro clean: %s",
                                    ref, key[:12], exc)
        import shutil  # here: it imports bz2 and lzma, which a cache hit never needs

        shutil.rmtree(self.task_dir(key, create=False), ignore_errors=True)
        return bool(removed)

    # -- files ----------------------------------------------------------------------------
    @property
    def files_root(self) -> Path:
        """Where the folders of tasks' own files live (``ctx.dir``): ``files/`` inside a
        local blob folder, or, with a remote blob store, ``<workspace>/files/<name>/`` on
        this machine."""
        if isinstance(self.blobs, LocalBlobs):
            return self.blobs.path_of("files")
        return self.workspace / "files" / self.name

    def task_dir(self, key: str, *, create: bool = True) -> Path:
        """The folder for a task's own files, named by its key (never by its ident)."""
        path = self.files_root.joinpath(*files_ref(key).split("/")[1:])
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return path

    def blob_location(self, ref: str) -> str:
        if isinstance(self.blobs, LocalBlobs):
            return str(self.blobs.path_of(ref))
        return f"{self.blobs.describe().rstrip('/')}/{ref}"

    # -- rate limits ----------------------------------------------------------------------
    @property
    def limit_store(self) -> LimitStore:
        """Where this Spot's rate limits live (see ``Spot(limits=...)``)."""
        if self._limit_store is None:
            from ..store.limits import open_store  # here: limiters import asyncio

            self._limit_store = open_store(self._limits_spec, spot_name=self.name,
                                           workspace=self.workspace)
        return self._limit_store

    def limiter(self, *, name: str | None = None, limits: Any = None, burst: Any = None,
                cost: Any = None) -> Limiter | Guard:
        """A rate limiter shared by name (and by every process using the same store).

        ``spot.limiter(name="openai", limits=["500/min", "90000/min tokens"])`` returns the
        limiter (decorator, context manager, ``acquire``/``acquire_async``/``try_acquire``);
        ``@spot.limiter(cost=1)`` decorates with the Spot's default limiter (``tpm=``).
        Put it inside ``@spot.mark`` so kept results never spend the limit.
        """
        from ..store.limits import Limiter, limiter_call

        if self._default_limiter is None and self._tpm is not None:
            self._default_limiter = Limiter(f"{self.name}:default", [f"{self._tpm}/min"],
                                            store=self.limit_store)
        return limiter_call(self._default_limiter, self._limiters, name=name, limits=limits,
                            burst=burst, cost=cost,
                            store=self.limit_store if name is not None else None)

    # -- runs: batches and pipelines ------------------------------------------------------
    def map(self, fn: Any, items: Any, *, concurrency: int = 32, progress: bool | None = None,
            run: str | None = None, retries: int | None = None,
            timeout: float | str | None = None) -> Any:
        """Run ``fn`` (a marked function or a pipe) on every item, ``concurrency`` at a time,
        and return the :class:`~hokuro.runs.run.Run` once every item is done or failed.

        Each call is a task (kept results are reused, identical work runs once); the jobs
        live in the ledger, so a run stopped by Ctrl-C or kill -9 resumes where it stopped
        when started again with the same name (``run=``, by default the step's name).
        ``items`` may be any iterable, a generator of millions too: jobs are made in windows
        ahead of completion. A progress display shows on a terminal (``progress=False``
        hides it).
        """
        from ..model.plans import Plan

        return self._run_sync(Plan.for_map(fn), items, run, concurrency, progress, retries,
                              timeout)

    async def amap(self, fn: Any, items: Any, *, concurrency: int = 32,
                   progress: bool | None = None, run: str | None = None,
                   retries: int | None = None, timeout: float | str | None = None) -> Any:
        """:meth:`map` for asyncio code: the run's steps share the caller's event loop."""
        from ..model.plans import Plan

        return await self._run_async(Plan.for_map(fn), items, run, concurrency, progress,
                                     retries, timeout)

    def run(self, plan: Any, *, over: Any = None, concurrency: int = 32,
            progress: bool | None = None, run: str | None = None, retries: int | None = None,
            timeout: float | str | None = None, workers: int = 0) -> Any:
        """Run a :class:`~hokuro.Plan` (or a pipe ``a | b | c``) — once, or over every item
        of ``over`` — and return its :class:`~hokuro.runs.run.Run`. Options as in
        :meth:`map`.

        ``workers=0`` (the default) executes it in this process. ``workers=N`` submits it
        and starts N local worker processes (forked from this one, ``concurrency`` each)
        that serve it until it ends, then stops them."""
        if workers:
            from ..runs.local_workers import run_on_local_workers

            if not isinstance(workers, int) or workers < 0:
                raise ConfigurationError("workers must be a whole number >= 0")
            return run_on_local_workers(self, self._plan_of(plan, over), over=over, name=run,
                                        workers=workers, progress=progress,
                                        options=self._run_options(concurrency, retries,
                                                                  timeout))
        return self._run_sync(self._plan_of(plan, over), over, run, concurrency, progress,
                              retries, timeout)

    def submit(self, plan: Any, *, over: Any = None, name: str | None = None,
               retries: int | None = None, timeout: float | str | None = None) -> Any:
        """Record a run of ``plan`` (a :class:`~hokuro.Plan` or a pipe) over ``over`` for
        workers (``hokuro worker``), execute nothing, and return its
        :class:`~hokuro.runs.run.Run` (``run.wait()`` waits for its end). Its steps must
        be importable by the workers (module-level marked functions). A streamed input is
        read here to its end, in windows of jobs inserted one transaction each (workers
        start on the first). ``name``, as ``run=`` of :meth:`run`: submitting again under
        the name of an unfinished run goes on with that run."""
        from ..runs.submitting import submit

        self.prepare_to_run()
        return submit(self, self._plan_of(plan, over), over=over, name=name,
                      options=self._run_options(1, retries, timeout))

    async def arun(self, plan: Any, *, over: Any = None, concurrency: int = 32,
                   progress: bool | None = None, run: str | None = None,
                   retries: int | None = None, timeout: float | str | None = None) -> Any:
        """:meth:`run` for asyncio code."""
        return await self._run_async(self._plan_of(plan, over), over, run, concurrency,
                                     progress, retries, timeout)

    @staticmethod
    def _plan_of(plan: Any, over: Any) -> Any:
        from ..model.plans import Pipe, Plan

        if isinstance(plan, Plan):
            return plan
        if isinstance(plan, Pipe | MarkedFunction):
            if over is None:
                raise ConfigurationError(
                    f"spot.run({getattr(plan, 'name', plan)}) runs a pipe over items: give "
                    "them with over=items (or build a hokuro.Plan that takes no input)")
            return Plan.for_pipe(plan if isinstance(plan, Pipe) else Pipe((plan,)))
        raise ConfigurationError(f"spot.run takes a hokuro.Plan or a pipe (a | b), not "
                                 f"{type(plan).__name__}")

    def _run_options(self, concurrency: int, retries: int | None, timeout: Any) -> Any:
        from ..model.durations import parse_duration
        from ..runs.executor import Options

        if not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError("concurrency must be a whole number >= 1")
        if retries is not None and (not isinstance(retries, int) or retries < 0):
            raise ConfigurationError("retries must be a whole number >= 0")
        return Options(concurrency=concurrency, retries=retries,
                       timeout=parse_duration(timeout, what="timeout"))

    def _run_sync(self, plan: Any, over: Any, name: str | None, concurrency: int,
                  progress: bool | None, retries: int | None, timeout: Any) -> Any:
        from ..runs.starting import run_sync

        self.prepare_to_run()
        return run_sync(self, plan, over=over, name=name, progress=progress,
                        options=self._run_options(concurrency, retries, timeout))

    async def _run_async(self, plan: Any, over: Any, name: str | None, concurrency: int,
                         progress: bool | None, retries: int | None, timeout: Any) -> Any:
        import asyncio

        from ..runs.starting import run_async

        options = self._run_options(concurrency, retries, timeout)
        await asyncio.to_thread(self.prepare_to_run)
        return await run_async(self, plan, over=over, name=name, progress=progress,
                               options=options)

    @staticmethod
    def owner_is_dead(token: str | None) -> bool:
        """True when ``token`` names a process of this host that no longer runs."""
        return owner_is_dead(token)

    # -- identity and lifecycle -----------------------------------------------------------
    def owner_token(self) -> str:
        return current_owner().token()

    @staticmethod
    def nonce() -> str:
        return os.urandom(6).hex()

    def close(self) -> None:
        """Stop renewing leases and release connections and clients."""
        self.leases.close()
        if self._io_thread is not None:
            self._io_thread.close()
        self.ledger.close()
        self.blobs.close()
        if self._limit_store is not None:
            self._limit_store.close()

    def __enter__(self) -> Spot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Spot({self.name!r}, db={self.ledger.describe()!r})"
