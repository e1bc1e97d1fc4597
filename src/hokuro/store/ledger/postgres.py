"""The shared ledger: one PostgreSQL database that every process and machine points at.

Why these choices:
- A ``psycopg_pool.ConnectionPool`` in autocommit mode: a read or a one-statement write
  (``renew``, ``finish``, ``put``) is one round trip with no BEGIN/COMMIT; only ``claim``,
  ``delete``, ``put_many`` and the schema step open an explicit transaction.
- The pool opens on first use and belongs to one process: after ``fork`` the child builds
  its own and drops the parent's without closing it (those sockets are the parent's; psycopg
  does not send a terminate message for a connection made in another process).
- ``claim`` of a new task is one ``INSERT ... ON CONFLICT DO NOTHING``. When the row
  exists, a transaction locks it with ``SELECT ... FOR UPDATE``, applies ``decide_claim``
  and writes. Of two claimers that both find no row, the second one's insert waits for the
  first to commit, inserts nothing, and the second then locks the row the first made and
  finds it ``busy``: never an error, never two owners.
- A lost connection (server restart, ``pg_terminate_backend``, failover) is retried a few
  times with backoff. That is safe because every transaction either committed or was
  rolled back by the server, and the writes that might have committed before the error are
  recognised on the retry (a claim we already made, a finish we already wrote) or are
  idempotent (renew, put).
- The URL's password never appears in ``describe()``, ``repr()`` or an error message.
- Schema creation and migration run holding an advisory lock, in one transaction, so many
  processes opening a new database at once are safe; ``read_only=True`` never creates.
- One Spot, one namespace: each Spot's tables live in a schema of its own (``hokuro_<name>``)
  and its pooled connections set ``search_path`` to it, so every named query stays
  unqualified and a hit or a miss costs what it did (the path is set once per connection).
  A schema rather than a ``spot`` column in every key and index: nothing can forget the
  filter, ``clear`` of one Spot is a plain DELETE in its schema, and one Spot's rows never
  share an index page with another's. It assumes a session keeps its settings: behind
  PgBouncer, use session pooling (or have it track ``search_path``).
- A database of schema 1 (one Spot, tables in the default schema) is adopted by the first
  Spot that opens it writable: ``ALTER TABLE ... SET SCHEMA`` moves its tables, records and
  indexes as they are. Readers never move it; they read it where it is.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...errors import ConfigurationError, HokuroError, LedgerError, MissingDependency
from ...model.records import (
    RECORD_COLUMNS,
    Claim,
    ClaimResult,
    ErrorStat,
    Outcome,
    Record,
    StatRow,
    decide_claim,
)
from ...model.redact import redact_url
from ..postgres_refusals import refusal
from .base import TaskDB, find_records
from .queries import load_queries

try:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise MissingDependency(
        "psycopg_pool" if exc.name == "psycopg_pool" else "psycopg", "postgres"
    ) from exc

# After the check above, which turns a missing psycopg into advice.
from .postgres_jobs import RUNS_SCHEMA, PostgresJobs
from .postgres_jobs import text as _text
from .readings import LedgerReadings
from .spot_schemas import TALLY_SCHEMA, Directory, named, read_version
from .worker_rows import WORKERS_SCHEMA, WorkerRows

if TYPE_CHECKING:
    from psycopg import Connection

T = TypeVar("T")

Q = load_queries("postgres")
_PAGE = 500
_CHUNK = 1000
# Options of ours in the URL's query string; libpq would refuse them, so they are taken out.
_OUR_OPTIONS = ("pool_min", "pool_max", "pool_timeout", "retries")
# Waits before each retry of an operation whose connection was lost.
_BACKOFF = (0.05, 0.25, 1.0, 2.0, 4.0)
# Pools inherited from the parent by a forked child. Kept referenced so that their
# finalizers (which signal worker threads that do not exist in the child) never run here.
_INHERITED: list[Any] = []


def _transient(exc: BaseException) -> bool:
    """True for errors after which the same operation may simply be tried again."""
    if isinstance(exc, PoolTimeout):
        return False  # the pool already waited its whole timeout
    if isinstance(exc, psycopg.errors.TransactionRollback):
        return True  # serialization failure or deadlock: the server rolled back
    if not isinstance(exc, psycopg.OperationalError):
        return False
    if refusal(exc) is not None:
        return False  # a wrong database, role or password: retrying only delays the answer
    state = exc.sqlstate
    # No state: the client lost the socket. 08: connection exception. 57P: the server is
    # shutting down, crashed, or is not accepting connections yet.
    return state is None or state.startswith(("08", "57P"))


class PostgresLedger(PostgresJobs, WorkerRows, LedgerReadings, TaskDB):
    """Records of one Spot in a PostgreSQL database, in that Spot's schema.

    ``spot`` names the Spot; without it, the ledger is the database's only Spot (a
    database with none gets the Spot ``default`` unless ``read_only``, and one with
    several is an error that lists them). ``read_only=True`` never creates, migrates or
    writes; ``create=False`` never creates a Spot or adopts a schema 1 database. A
    database of schema 1 read (or written) without adopting it is used where it is, and
    :attr:`spot` is then None.

    The URL may carry ``pool_min``, ``pool_max``, ``pool_timeout`` (seconds to wait for a
    free connection) and ``retries`` in its query string; keyword arguments override them.
    Every other query parameter goes to libpq (``sslmode``, ``options``, ...).
    """

    kind = "postgresql"
    remote = True
    _READINGS = load_queries("postgres_readings")
    _PLACEHOLDER = "%(NAME)s"

    def __init__(self, url: str, *, spot: str | None = None, read_only: bool = False,
                 create: bool = True, pool_min: int | None = None,
                 pool_max: int | None = None, pool_timeout: float | None = None,
                 retries: int | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._setup(url, read_only=read_only, pool_min=pool_min, pool_max=pool_max,
                    pool_timeout=pool_timeout, retries=retries, sleep=sleep)
        self._check_schema(spot, create=create and not read_only)

    def _setup(self, url: str, *, read_only: bool, pool_min: int | None = None,
               pool_max: int | None = None, pool_timeout: float | None = None,
               retries: int | None = None,
               sleep: Callable[[float], None] = time.sleep) -> None:
        self.read_only = read_only
        self._url = url
        self._where, self._secrets = redact_url(url)
        self._conninfo, options = _split_options(url, self._where)
        self._kwargs = self._connect_kwargs()
        self._pool_min = pool_min if pool_min is not None else int(options.get("pool_min", 1))
        self._pool_max = pool_max if pool_max is not None else int(options.get("pool_max", 10))
        self._pool_timeout = (pool_timeout if pool_timeout is not None
                              else float(options.get("pool_timeout", 30.0)))
        self._retries = retries if retries is not None else int(options.get("retries", 6))
        if not 0 <= self._pool_min <= self._pool_max or self._pool_max < 1:
            raise ConfigurationError(
                f"pool sizes of {self._where} must satisfy 0 <= pool_min <= pool_max and "
                f"pool_max >= 1 (got {self._pool_min}, {self._pool_max})"
            )
        self._sleep = sleep
        self._pool_obj: ConnectionPool | None = None
        self._lock = threading.Lock()
        _LEDGERS.add(self)
        #: How many times an operation was retried after a lost connection (for monitoring).
        self.reconnects = 0
        #: The Spot whose records this ledger holds (None: a schema 1 database, not adopted).
        self.spot: str | None = None
        #: The schema of its tables (None: the connection's default, for schema 1).
        self.schema: str | None = None
        # Schema 1 has no args_size; used where it is, it is asked the old way.
        self._stats = Q["stats"]

    @property
    def conninfo(self) -> str:
        """The database's connection string (with its credentials: never print it), for
        code that opens its own connection there, such as a script's postgres steps."""
        return self._conninfo

    @classmethod
    def spots_in(cls, url: str) -> list[str | None]:
        """The names of the Spots in the database at ``url``, sorted, and None for a ledger of
        schema 1 no Spot has adopted yet. Reads only."""
        probe = cls.__new__(cls)
        probe._setup(url, read_only=True, retries=1)

        def work(conn: Connection) -> list[str | None]:
            conn.execute(Q["session_read_only"])
            return Directory(conn, probe._where).names()

        return probe._on_plain_connection(work, " cannot be read")

    def neighbours(self) -> list[str | None]:
        """The other Spots of this ledger's database (see :meth:`spots_in`)."""
        return [name for name in self.spots_in(self._url) if name != self.spot]

    def open_neighbour(self, spot: str | None) -> PostgresLedger:
        """A read-only ledger of Spot ``spot`` of the same database, for reading alongside
        this one; the caller closes it."""
        return PostgresLedger(self._url, spot=spot, read_only=True, pool_min=0)

    # -- connections ----------------------------------------------------------------------
    def _connect_kwargs(self) -> dict[str, Any]:
        given = conninfo_to_dict(self._conninfo)
        kwargs: dict[str, Any] = {"autocommit": True}
        # Defaults only: whatever the URL says wins.
        if "connect_timeout" not in given:
            kwargs["connect_timeout"] = 10
        if "application_name" not in given:
            kwargs["application_name"] = "hokuro"
        return kwargs

    def _configure(self, conn: Connection) -> None:
        if self.read_only:
            # A second guard under _write(): the server refuses any write on this session.
            conn.execute(Q["session_read_only"])
        if self.schema is not None:
            # Only this Spot's schema: a table it lacks is an error, never another Spot's.
            conn.execute(named("use_schema", schema=self.schema))

    def _pool(self) -> ConnectionPool:
        pool = self._pool_obj
        if pool is not None:
            return pool
        with self._lock:
            if self._pool_obj is None:
                pool = ConnectionPool(
                    self._conninfo, kwargs=self._kwargs, min_size=self._pool_min,
                    max_size=self._pool_max, timeout=self._pool_timeout, open=False,
                    configure=self._configure, name="hokuro-ledger",
                )
                pool.open(wait=False)
                self._pool_obj = pool
            return self._pool_obj

    def _run(self, work: Callable[[Connection, int], T]) -> T:
        """``work(conn, attempt)`` on a pooled connection, retried after a lost connection.

        ``attempt`` is 0 on the first try; work that is not idempotent uses it to recognise
        its own write that committed just before the connection broke.
        """
        attempt = 0
        while True:
            try:
                with self._pool().connection() as conn:
                    return work(conn, attempt)
            except psycopg.Error as exc:
                if attempt >= self._retries or not _transient(exc):
                    raise self._failure(exc) from _cause(exc, self._secrets)
            attempt += 1
            self.reconnects += 1
            self._sleep(_BACKOFF[min(attempt, len(_BACKOFF)) - 1])
            try:
                # Other idle connections of the pool died the same way (a restart kills
                # them all); replace them now rather than failing on each in turn. With none
                # idle there is nothing to check, and check() would grow the pool by one.
                pool = self._pool()
                if pool.get_stats().get("pool_available", 0):
                    pool.check()
            except psycopg.Error:
                pass

    def _failure(self, exc: BaseException, doing: str = "") -> LedgerError:
        message = self._hide(str(exc).strip()) or type(exc).__name__
        hint = ""
        refused = (refusal(exc, conninfo_to_dict(self._conninfo).get("dbname"))
                   if isinstance(exc, psycopg.OperationalError) else None)
        if refused is not None:
            return LedgerError(f"PostgreSQL ledger {self._where}{doing}: {self._hide(refused)}")
        if isinstance(exc, PoolTimeout):
            hint = (f"; no connection was free or could be made within {self._pool_timeout:g}"
                    " s: check that the server is up, or raise pool_max / pool_timeout")
        elif isinstance(exc, psycopg.OperationalError) and _transient(exc):
            hint = "; check that the server is running and reachable, and the URL is right"
        return LedgerError(f"PostgreSQL ledger {self._where}{doing}: {message}{hint}")

    def _hide(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _write(self) -> None:
        if self.read_only:
            raise LedgerError(f"{self._where} was opened read-only")

    _worker_dialect = "postgres"

    def _worker_rows(self, sql: str, params: dict[str, Any]) -> list[Any]:
        return self._run(lambda conn, _: conn.execute(sql, params).fetchall())

    def _worker_write(self, sql: str, params: dict[str, Any]) -> int:
        self._write()
        return self._run(lambda conn, _: conn.execute(sql, params).rowcount)

    def _worker_returning(self, sql: str, params: dict[str, Any]) -> list[Any]:
        self._write()
        return self._run(lambda conn, _: conn.execute(sql, params).fetchall())

    @property
    def notify_channel(self) -> str | None:
        """The channel a worker LISTENs on: statements that make jobs of this Spot
        claimable notify it (a trigger of schema 4). None without a Spot schema."""
        return self.schema if self._has_workers else None

    def listen_connection(self) -> Any:
        """A new connection of its own (autocommit, outside the pool) for LISTEN; the
        caller closes it."""
        return psycopg.connect(self._conninfo, **self._kwargs)

    # -- schema ---------------------------------------------------------------------------
    def _on_plain_connection(self, work: Callable[[Connection], T], doing: str) -> T:
        """``work(conn)`` on a short connection of its own, retried after a lost connection.

        Not the pool: an unreachable server fails at once with libpq's reason instead of
        after the pool's timeout, and the schema step runs before the Spot's schema (which
        the pool's connections are set to) is known.
        """
        attempt = 0
        while True:
            try:
                with psycopg.connect(self._conninfo, **self._kwargs) as conn:
                    return work(conn)
            except HokuroError:
                raise
            except psycopg.Error as exc:
                if attempt >= self._retries or not _transient(exc):
                    # (Two lines: a traceback shows the first, which names no secret.)
                    raise self._failure(exc, doing) \
                        from _cause(exc, self._secrets)
            attempt += 1
            self._sleep(_BACKOFF[min(attempt, len(_BACKOFF)) - 1])

    def _check_schema(self, spot: str | None, *, create: bool) -> None:
        """Find this Spot's schema; create, adopt or migrate it when allowed (or, read-only,
        check that it is there). See :mod:`hokuro.store.ledger.spot_schemas`."""
        def work(conn: Connection) -> None:
            if self.read_only:
                conn.execute(Q["session_read_only"])
            found = Directory(conn, self._where).open(spot, read_only=self.read_only,
                                                      create=create)
            self.spot, self.schema = found.spot, found.schema
            if found.version < 2:
                self._stats = Q["stats_1"]
            elif found.version < TALLY_SCHEMA:
                self._stats = Q["stats_scan"]
            # An older Spot is read where it is: without runs tables it reads as no runs.
            self._has_runs = found.version >= RUNS_SCHEMA
            self._has_workers = found.version >= WORKERS_SCHEMA

        self._on_plain_connection(work, " cannot be opened")

    def schema_version(self) -> int | None:
        return self._run(lambda conn, _: read_version(conn))

    def get_meta(self, name: str) -> str | None:
        row = self._run(lambda conn, _: conn.execute(Q["get_meta"], {"name": name}).fetchone())
        return None if row is None else row[0]

    def set_meta(self, name: str, value: str) -> None:
        self._write()
        params = {"name": name, "value": value}
        self._run(lambda conn, _: conn.execute(Q["set_meta"], params))

    # -- engine ---------------------------------------------------------------------------
    def lookup(self, key: str) -> Record | None:
        row = self._run(lambda conn, _: conn.execute(Q["lookup"], {"key": key}).fetchone())
        return None if row is None else Record(key, *row)

    def claim(self, claim: Claim) -> ClaimResult:
        self._write()
        params = {
            "key": claim.key, "fn": claim.fn, "fn_path": claim.fn_path,
            "ident": claim.ident, "args": claim.args, "version": claim.version,
            "owner": claim.owner, "lease_until": claim.lease_until, "now": claim.now,
        }

        def work(conn: Connection, attempt: int) -> ClaimResult:
            if not attempt:
                # A task seen for the first time (the usual case: the engine looks up
                # before it claims) is claimed by this one statement, atomic on its own.
                inserted = conn.execute(Q["claim_insert"], params).fetchone()
                if inserted is not None:
                    return ClaimResult("claimed", None, inserted[0])
            with conn.transaction():
                # Loops only when a row seen by the insert is deleted before it is locked.
                for _ in range(10):
                    row = conn.execute(Q["get_for_update"], params).fetchone()
                    current = None if row is None else Record(*row)
                    if attempt and current is not None and _made_by(current, claim):
                        # Our previous try committed before its connection broke.
                        return ClaimResult("claimed", None, current.attempts)
                    outcome = decide_claim(current, claim)
                    if outcome != "claimed":
                        return ClaimResult(outcome, current)
                    if current is None:
                        inserted = conn.execute(Q["claim_insert"], params).fetchone()
                        if inserted is None:
                            continue  # another claimer inserted it first: lock and decide
                        return ClaimResult("claimed", None, inserted[0])
                    (attempts,) = conn.execute(Q["claim_update"], params).fetchone() or (0,)
                    return ClaimResult("claimed", current, attempts)
            raise LedgerError(f"claim of task {claim.key[:12]} kept racing with deletes")

        return self._run(work)

    def renew(self, owner: str, keys: Iterable[str], lease_until: float) -> set[str]:
        self._write()
        keys = list(keys)
        if not keys:
            return set()
        params = {"keys": keys, "owner": owner, "lease_until": lease_until}
        rows = self._run(lambda conn, _: conn.execute(Q["renew"], params).fetchall())
        return {key for (key,) in rows}

    def finish(self, key: str, owner: str, outcome: Outcome) -> bool:
        self._write()
        params = {
            "key": key, "owner": owner, "status": outcome.status, "result": outcome.result,
            "blob": outcome.blob, "codec": outcome.codec, "content_type": outcome.content_type,
            "size": outcome.size, "checksum": outcome.checksum,
            "error_type": outcome.error_type, "error": _text(outcome.error),
            "error_fingerprint": outcome.error_fingerprint, "log": _text(outcome.log),
            "log_blob": outcome.log_blob, "finished_at": outcome.finished_at,
            "expires_at": outcome.expires_at,
        }

        def work(conn: Connection, attempt: int) -> bool:
            query = Q["finish_again"] if attempt else Q["finish"]
            return conn.execute(query, params).rowcount == 1

        return self._run(work)

    # -- reading --------------------------------------------------------------------------
    def get(self, key: str) -> Record | None:
        row = self._run(lambda conn, _: conn.execute(Q["get"], {"key": key}).fetchone())
        return None if row is None else Record(*row)

    def find(self, *, fn: str | None = None, status: str | None = None,
             since: float | None = None, until: float | None = None,
             key_prefix: str | None = None, ident: str | None = None,
             error_fingerprint: str | None = None, expired_at: float | None = None,
             limit: int | None = None, full: bool = False) -> Iterator[Record]:
        # Each page is its own query on a connection returned to the pool at once, so a
        # caller iterating slowly holds no connection and no transaction.
        def fetch(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
            return self._run(lambda conn, _: conn.execute(sql, params).fetchall())

        return find_records(fetch, "%(NAME)s", limit=limit, full=full, fn=fn, status=status,
                            since=since, until=until, key_prefix=key_prefix, ident=ident,
                            error_fingerprint=error_fingerprint, expired_at=expired_at)

    def _rows(self, sql: str, params: Any) -> list[Any]:
        """All rows of one read, on a connection given back at once."""
        return self._run(lambda conn, _: conn.execute(sql, params).fetchall())

    def stats(self, fn: str | None = None, *, now: float | None = None) -> list[StatRow]:
        params = {"fn": fn, "now": time.time() if now is None else now}
        rows = self._run(lambda conn, _: conn.execute(self._stats, params).fetchall())
        return [StatRow(r[0], r[1], r[2], r[3], r[4] or 0, r[5]) for r in rows]

    def error_stats(self, fn: str | None = None, *, now: float) -> list[ErrorStat]:
        params = {"fn": fn, "now": now}
        rows = self._run(lambda conn, _: conn.execute(Q["error_stats"], params).fetchall())
        return [ErrorStat(*row) for row in rows]

    def blob_refs(self) -> Iterator[str]:
        after: str | None = None
        while True:
            if after is None:
                query, params = Q["blob_refs_first"], {"page": _CHUNK}
            else:
                query, params = Q["blob_refs_next"], {"page": _CHUNK, "after": after}
            rows = self._run(
                lambda conn, _, q=query, p=params: conn.execute(q, p).fetchall())
            for _key, blob, log_blob in rows:
                if blob is not None:
                    yield blob
                if log_blob is not None:
                    yield log_blob
            if len(rows) < _CHUNK:
                return
            after = rows[-1][0]

    # -- writing outside the engine -------------------------------------------------------
    def delete(self, keys: Iterable[str]) -> list[Record]:
        self._write()
        keys = list(keys)

        # If the connection breaks after the commit, the retry removes nothing more and
        # returns less than was removed; gc later finds the blobs those records named.
        def work(conn: Connection, _: int) -> list[Record]:
            removed: list[Record] = []
            with conn.transaction():
                for start in range(0, len(keys), _CHUNK):
                    rows = conn.execute(
                        Q["delete"], {"keys": keys[start:start + _CHUNK]}).fetchall()
                    removed.extend(Record(*row) for row in rows)
            return removed

        return self._run(work) if keys else []

    def put(self, record: Record) -> None:
        self._write()
        params = _put_params(record)
        self._run(lambda conn, _: conn.execute(Q["put"], params))

    def put_many(self, records: Iterable[Record]) -> int:
        """Insert or replace many records; return how many were written.

        Records are written in transactions of 1000 (each retried whole after a lost
        connection), which keeps memory bounded for any size of import; an import that
        fails part-way may be run again, since each write replaces the record whole.
        """
        self._write()

        def write(chunk: list[dict[str, Any]]) -> None:
            def work(conn: Connection, _: int) -> None:
                with conn.transaction(), conn.cursor() as cursor:
                    # executemany pipelines the statements: one round trip per batch, and
                    # unlike COPY + upsert it accepts a key repeated within one batch.
                    cursor.executemany(Q["put"], chunk)

            self._run(work)

        written = 0
        chunk: list[dict[str, Any]] = []
        for record in records:
            chunk.append(_put_params(record))
            if len(chunk) == _CHUNK:
                write(chunk)
                written, chunk = written + len(chunk), []
        if chunk:
            write(chunk)
            written += len(chunk)
        return written

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            pool, self._pool_obj = self._pool_obj, None
        if pool is not None:
            pool.close(timeout=5.0)

    def _forget_after_fork(self) -> None:
        # The parent's pool (its sockets, its threads) is not ours to use or close, and its
        # lock may have been held by another thread at the instant of fork.
        if self._pool_obj is not None:
            _INHERITED.append(self._pool_obj)
        self._pool_obj, self._lock = None, threading.Lock()

    def describe(self) -> str:
        return self._where

    def __repr__(self) -> str:
        return f"PostgresLedger({self._where!r}, spot={self.spot!r})"


def _made_by(current: Record, claim: Claim) -> bool:
    """True when ``current`` is exactly the row ``claim`` writes (owner, times and all)."""
    return (current.status == "running" and current.owner == claim.owner
            and current.started_at == claim.now and current.lease_until == claim.lease_until)


def _put_params(record: Record) -> dict[str, Any]:
    params = {name: getattr(record, name) for name in RECORD_COLUMNS}
    params["error"], params["log"] = _text(record.error), _text(record.log)
    return params


def _cause(exc: BaseException, secrets: tuple[str, ...]) -> BaseException | None:
    """``exc`` as the cause of our error, unless its text (or its causes') holds a secret."""
    seen: BaseException | None = exc
    while seen is not None:
        if any(secret in str(seen) for secret in secrets):
            return None
        seen = seen.__cause__ or seen.__context__
    return exc


_LEDGERS: weakref.WeakSet[PostgresLedger] = weakref.WeakSet()


def _forget_pools_in_child() -> None:
    for ledger in list(_LEDGERS):
        ledger._forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools_in_child)


def _split_options(url: str, where: str) -> tuple[str, dict[str, str]]:
    """The URL without our own query options (for libpq), and those options."""
    parts = urlsplit(url)
    ours: dict[str, str] = {}
    rest = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in _OUR_OPTIONS:
            ours[name] = value
        else:
            rest.append((name, value))
    for name in ("pool_min", "pool_max", "retries"):
        if name in ours and not ours[name].isdigit():
            raise ConfigurationError(f"{name} in {where} must be a whole number")
    if "pool_timeout" in ours:
        try:
            if not float(ours["pool_timeout"]) > 0:
                raise ValueError
        except ValueError:
            raise ConfigurationError(
                f"pool_timeout in {where} must be a positive number of seconds") from None
    conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest),
                           parts.fragment))
    try:
        conninfo_to_dict(conninfo)
    except psycopg.Error:
        raise ConfigurationError(
            f"{where} is not a valid PostgreSQL URL; expected "
            "postgresql://user[:password]@host[:port]/dbname[?option=value]"
        ) from None
    return conninfo, ours
