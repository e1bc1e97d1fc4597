"""The embedded ledger: one SQLite file in WAL mode.

Why these choices:
- A small pool of connections (``connections.py``) handed out per operation to any thread,
  so descriptors stay bounded however many threads come and go; a forked child opens its
  own. Connections are in autocommit mode, so reads take no lock and every write
  transaction is an explicit ``BEGIN IMMEDIATE``: a writer waits for the write lock up
  front (``busy_timeout``) instead of failing with "database is locked" when a read
  transaction tries to upgrade.
- ``synchronous=NORMAL`` with WAL survives a killed process (invariant 2); only a power loss
  can drop the last commits, which then run again.
- Listing pages through the table by (updated_at, key) so no read transaction stays open
  while a caller iterates, and memory stays bounded.
- A file belongs to one Spot, named in its ``hokuro_meta`` when the Spot first opens it
  (a file made before Spots were recorded is adopted by the first Spot that opens it
  writable): two Spots on one file would serve each other's results.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ...errors import ConfigurationError, LedgerError, SchemaError
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
from ..connections import ConnectionPool
from .base import TaskDB, find_records
from .queries import load_queries
from .readings import LedgerReadings
from .sqlite_errors import ledger_error, translate_errors
from .sqlite_jobs import RUNS_SCHEMA, SQLiteJobs
from .worker_rows import WORKERS_SCHEMA, WorkerRows

SCHEMA_VERSION = 6
#: The first schema with the tally (stats read it instead of counting every record).
TALLY_SCHEMA = 6
Q = load_queries("sqlite")
_PAGE = 500
# No mmap: a mapped window's pages count in the process's RSS once for each connection
# that touched them (a 1,000,000-input run peaked at 410-550 MB with 256 MiB windows, 153
# MB without), and reading through mmap measured no faster here: the same stream rate and
# dashboard pages, a count of a 200,000-job run 10% slower (docs/performance-runs.md).
_PRAGMAS = (
    "PRAGMA busy_timeout = 60000",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA cache_size = -16000",
    "PRAGMA temp_store = MEMORY",
    "PRAGMA mmap_size = 0",
)


def _statements(script: str) -> Iterator[str]:
    """The statements of ``script`` one by one: cut at a semicolon only where a statement is
    complete, so that a trigger's body (semicolons between BEGIN and END) stays whole."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement
            statement = ""
    if statement.strip():
        yield statement


def _one(conn: sqlite3.Connection, sql: str, params: Any = ()) -> tuple[Any, ...] | None:
    """The first row of ``sql``. The statement is stepped to its end (fetchall): a statement
    left open would pin this connection's read snapshot, so later reads would see old data
    and a later write could not take the lock (SQLITE_BUSY_SNAPSHOT until busy_timeout)."""
    rows = conn.execute(sql, params).fetchall()
    return rows[0] if rows else None


class SQLiteLedger(SQLiteJobs, WorkerRows, LedgerReadings, TaskDB):
    """Records of one Spot in one SQLite file. ``read_only=True`` never creates, migrates or
    writes; ``create=False`` opens only a file that exists. Opened writable for ``spot``,
    the file must be that Spot's (or no Spot's yet: it then becomes ``spot``'s). Runs and
    jobs live beside the records (:class:`~hokuro.store.ledger.sqlite_jobs.SQLiteJobs`)."""

    kind = "sqlite"
    _READINGS = load_queries("sqlite_readings")
    _PLACEHOLDER = ":NAME"

    def __init__(self, path: str | os.PathLike[str], *, spot: str | None = None,
                 read_only: bool = False, create: bool = True, timeout: float = 60.0) -> None:
        self.path = Path(path).absolute()
        self.read_only = read_only
        self._timeout = timeout
        self._pool = ConnectionPool(self._connect)
        # Bound once: the hit path takes and gives a connection on every call.
        self._take, self._give = self._pool.take, self._pool.give
        # A reader does not migrate: an older file is counted the way its schema allows.
        self._stats = Q["stats"]
        try:
            self._open(spot, create)
        except (sqlite3.Error, OSError) as exc:
            self.close()
            raise ledger_error(exc, self.path) from exc

    def _open(self, spot: str | None, create: bool) -> None:
        if self.read_only:
            if not self.path.is_file():
                raise LedgerError(f"no ledger at {self.path}; check the path or Spot name")
            version = self.schema_version()
            if version is None:
                raise SchemaError(f"{self.path} is not a hokuro ledger (no schema version)")
            if version > SCHEMA_VERSION:
                raise SchemaError(
                    f"{self.path} has schema {version}, newer than this hokuro knows "
                    f"({SCHEMA_VERSION}); upgrade hokuro"
                )
            if version < 2:
                self._stats = Q["stats_1"]
            elif version < TALLY_SCHEMA:
                self._stats = Q["stats_scan"]
            # An older file is read where it is: without runs tables it reads as no runs.
            self._has_runs = version >= RUNS_SCHEMA
            self._has_workers = version >= WORKERS_SCHEMA
            self.spot = self.get_meta("spot")
        else:
            if not create and not self.path.is_file():
                raise LedgerError(f"no ledger at {self.path}; check the path or Spot name")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.is_file() and self.path.stat().st_size:
                self._refuse_foreign_database()
            with self._pool.connection() as conn:
                self._migrate(conn, spot)

    def _refuse_foreign_database(self) -> None:
        """A SQLite database with tables but no hokuro schema is someone else's: opening it
        as a ledger would switch it to WAL and add hokuro's tables. Looked at read-only,
        before any connection of the pool (which enters WAL) touches it."""
        conn = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, timeout=self._timeout)
        try:
            if self._read_version(conn) is not None:
                return
            tables = [row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall()]
        finally:
            conn.close()
        if tables:
            shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
            raise LedgerError(
                f"{self.path} is a SQLite database but not a hokuro ledger (it holds the tables "
                f"{shown}); hokuro changed nothing in it. Give db= a new file or a hokuro ledger")

    # -- connections ----------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            conn = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True,
                                   timeout=self._timeout, isolation_level=None,
                                   check_same_thread=False)
        else:
            conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None,
                                   check_same_thread=False)
            self._enter_wal(conn)
        for pragma in _PRAGMAS:
            conn.execute(pragma)
        return conn

    def _rows(self, sql: str, params: Any) -> list[Any]:
        with self._pool.connection() as conn:
            return conn.execute(sql, params).fetchall()

    def _worker_rows(self, sql: str, params: dict[str, Any]) -> list[Any]:
        return self._rows(sql, params)

    def _worker_write(self, sql: str, params: dict[str, Any]) -> int:
        with self._pool.connection() as conn, self._write(conn):
            return conn.execute(sql, params).rowcount

    def _worker_returning(self, sql: str, params: dict[str, Any]) -> list[Any]:
        with self._pool.connection() as conn, self._write(conn):
            return conn.execute(sql, params).fetchall()

    def _enter_wal(self, conn: sqlite3.Connection) -> None:
        """Switch to WAL. SQLite does not call the busy handler for this pragma, so when
        several processes open a new file at once it can fail at once with "locked": retry
        it until the connection's timeout."""
        deadline = time.monotonic() + self._timeout
        delay = 0.005
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.2)

    def _write(self, conn: sqlite3.Connection):
        if self.read_only:
            raise LedgerError(f"{self.path} was opened read-only")
        return _Immediate(conn)

    # -- schema ---------------------------------------------------------------------------
    @staticmethod
    def _read_version(conn: sqlite3.Connection) -> int | None:
        try:
            row = _one(conn, Q["get_schema_version"])
        except sqlite3.OperationalError:
            return None
        return int(row[0]) if row else None

    def _migrate(self, conn: sqlite3.Connection, spot: str | None) -> None:
        with self._write(conn):
            conn.execute(Q["create_meta"])
            version = self._read_version(conn) or 0
            if version > SCHEMA_VERSION:
                raise SchemaError(
                    f"{self.path} has schema {version}, newer than this hokuro knows "
                    f"({SCHEMA_VERSION}); upgrade hokuro"
                )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _statements(Q[f"migration_{step}"]):
                    conn.execute(statement)
                conn.execute(Q["set_schema_version"], (str(step),))
            row = _one(conn, Q["get_meta"], ("spot",))
            owner = None if row is None else row[0]
            if spot is not None and owner is None:
                conn.execute(Q["set_meta"], ("spot", spot))
                owner = spot
            elif spot is not None and owner != spot:
                raise ConfigurationError(
                    f"{self.path} is the ledger of Spot {owner!r}, not {spot!r}: two Spots "
                    "on one file would serve each other's results. Give each Spot its own "
                    f"file (Spot({spot!r}) keeps its records in .hokuro/{spot}.db by default)"
                )
            self.spot = owner

    def schema_version(self) -> int | None:
        with self._pool.connection() as conn:
            return self._read_version(conn)

    def get_meta(self, name: str) -> str | None:
        try:
            with self._pool.connection() as conn:
                row = _one(conn, Q["get_meta"], (name,))
        except sqlite3.OperationalError:
            return None  # no hokuro_meta: not a ledger this hokuro made
        return None if row is None else row[0]

    def set_meta(self, name: str, value: str) -> None:
        with self._pool.connection() as conn, self._write(conn):
            conn.execute(Q["set_meta"], (name, value))

    # -- engine ---------------------------------------------------------------------------
    def lookup(self, key: str) -> Record | None:
        conn = self._take()
        try:
            row = _one(conn, Q["lookup"], (key,))
        finally:
            self._give(conn)
        return None if row is None else Record(key, *row)

    def claim(self, claim: Claim) -> ClaimResult:
        params = {
            "key": claim.key, "fn": claim.fn, "fn_path": claim.fn_path,
            "ident": claim.ident, "args": claim.args, "version": claim.version,
            "owner": claim.owner, "lease_until": claim.lease_until, "now": claim.now,
        }
        if self.read_only:
            raise LedgerError(f"{self.path} was opened read-only")
        with self._pool.connection() as conn:
            # A task seen for the first time: one statement, atomic on its own, claims it.
            if conn.execute(Q["claim_insert"], params).rowcount == 1:
                return ClaimResult("claimed", None, 1)
            with self._write(conn):
                row = _one(conn, Q["get"], (claim.key,))
                current = None if row is None else Record(*row)
                outcome = decide_claim(current, claim)
                if outcome != "claimed":
                    return ClaimResult(outcome, current)
                conn.execute(Q["claim_insert"] if current is None else Q["claim_update"],
                             params)
                attempt = 1 if current is None else current.attempts + 1
                return ClaimResult("claimed", current, attempt)

    def renew(self, owner: str, keys: Iterable[str], lease_until: float) -> set[str]:
        held: set[str] = set()
        with self._pool.connection() as conn, self._write(conn):
            for key in keys:
                if conn.execute(Q["renew"], (lease_until, key, owner)).rowcount:
                    held.add(key)
        return held

    def finish(self, key: str, owner: str, outcome: Outcome) -> bool:
        params = {
            "key": key, "owner": owner, "status": outcome.status, "result": outcome.result,
            "blob": outcome.blob, "codec": outcome.codec, "content_type": outcome.content_type,
            "size": outcome.size, "checksum": outcome.checksum,
            "error_type": outcome.error_type, "error": outcome.error,
            "error_fingerprint": outcome.error_fingerprint, "log": outcome.log,
            "log_blob": outcome.log_blob, "finished_at": outcome.finished_at,
            "expires_at": outcome.expires_at,
        }
        if self.read_only:
            raise LedgerError(f"{self.path} was opened read-only")
        # One fenced UPDATE: atomic without an explicit transaction.
        with self._pool.connection() as conn:
            return conn.execute(Q["finish"], params).rowcount == 1

    # -- reading --------------------------------------------------------------------------
    def get(self, key: str) -> Record | None:
        conn = self._take()
        try:
            row = _one(conn, Q["get"], (key,))
        finally:
            self._give(conn)
        return None if row is None else Record(*row)

    def find(self, *, fn: str | None = None, status: str | None = None,
             since: float | None = None, until: float | None = None,
             key_prefix: str | None = None, ident: str | None = None,
             error_fingerprint: str | None = None, expired_at: float | None = None,
             limit: int | None = None, full: bool = False) -> Iterator[Record]:
        # Each page on a connection taken and given back: none is held while a caller iterates.
        return find_records(self._rows, ":NAME",
                            limit=limit, full=full, fn=fn, status=status, since=since,
                            until=until, key_prefix=key_prefix, ident=ident,
                            error_fingerprint=error_fingerprint, expired_at=expired_at)

    def stats(self, fn: str | None = None, *, now: float | None = None) -> list[StatRow]:
        now = time.time() if now is None else now
        rows = self._rows(self._stats, {"fn": fn, "now": now})
        return [StatRow(r[0], r[1], r[2], r[3], r[4] or 0, r[5]) for r in rows]

    def error_stats(self, fn: str | None = None, *, now: float) -> list[ErrorStat]:
        rows = self._rows(Q["error_stats"], {"fn": fn, "now": now})
        return [ErrorStat(*row) for row in rows]

    def blob_refs(self) -> Iterator[str]:
        # Paged by key, each page read whole: no statement stays open between yields.
        after = ""
        while rows := self._rows(Q["blob_refs"], {"after": after, "page": _PAGE}):
            for _key, blob, log_blob in rows:
                if blob:
                    yield blob
                if log_blob:
                    yield log_blob
            after = rows[-1][0]

    # -- writing outside the engine -------------------------------------------------------
    def delete(self, keys: Iterable[str]) -> list[Record]:
        removed: list[Record] = []
        with self._pool.connection() as conn, self._write(conn):
            for key in keys:
                row = _one(conn, Q["delete"], (key,))
                if row is not None:
                    removed.append(Record(*row))
        return removed

    def put(self, record: Record) -> None:
        self.put_many([record])

    def put_many(self, records: Iterable[Record]) -> int:
        """Insert or replace many records in one transaction (imports, benchmarks)."""
        with self._pool.connection() as conn, self._write(conn):
            cursor = conn.executemany(
                Q["put"], ({n: getattr(r, n) for n in RECORD_COLUMNS} for r in records))
            return cursor.rowcount

    def close(self) -> None:
        self._pool.close()

    def describe(self) -> str:
        return str(self.path)


class _Immediate:
    """``with _Immediate(conn):`` — one ``BEGIN IMMEDIATE`` transaction, committed or rolled
    back as a whole."""

    __slots__ = ("conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        else:
            self.conn.execute("ROLLBACK")


# Every operation says which file failed and what to do instead of raising SQLite's bare
# text ("database disk image is malformed"). Wrapped here, once, so that each method above
# reads as its SQL alone.
translate_errors(SQLiteLedger, calls=("schema_version", "lookup", "claim", "renew", "finish",
                                      "get", "stats", "error_stats", "delete", "put_many",
                                      "register_worker", "beat_worker", "list_workers",
                                      "forget_workers", "next_due", "finish_run_if_ended",
                                      "take_job"),
                 iterators=("find", "blob_refs"))
