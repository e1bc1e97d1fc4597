"""Limit store in PostgreSQL: shared by every host that reaches the database.

Each operation is one statement (``scripts/postgres.sql``), timed by the server's
``clock_timestamp()``. The table and its functions are created on first use under an
advisory lock, so many processes may open the store at once.

Nothing connects when the store is made (a limiter is usually defined at import time): the
first operation connects, once directly so that a wrong URL fails at once with its reason
rather than after the pool's timeout, and every driver error becomes a
:class:`~hokuro.errors.LimitStoreError` naming the database, its password masked.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from ...errors import LimitStoreError, MissingDependency
from ...model.redact import redact_url
from ..postgres_refusals import refusal
from . import gcra
from .base import LimitStore, Verdict, load_scripts

# Pools opened before a fork: closing them in the child would end the parent's sessions
# (the close is sent on the shared sockets), so the child keeps them untouched.
_INHERITED: list[Any] = []


def _configure(conn: Any) -> None:
    # A decision need not wait for its WAL record to reach the disk: a crash of the server
    # may forget the last few milliseconds of grants (at most a burst), never corrupt the
    # table, and the wait for the flush is most of a decision's cost (~100 µs of ~120 µs).
    conn.execute("SET synchronous_commit = off")


class PostgresStore(LimitStore):
    """Limit state in table ``hokuro_limits`` of the database at ``url``."""

    kind = "postgres"

    def __init__(self, url: str, *, max_connections: int = 4) -> None:
        try:
            import psycopg
            import psycopg_pool  # noqa: F401
        except ImportError as exc:
            raise MissingDependency(exc.name or "psycopg", "postgres") from exc
        self.url = url
        self._where, self._secrets = redact_url(url)
        self._max_connections = max_connections
        self._sql = load_scripts("postgres.sql")
        self._pool: Any = None
        self._pool_lock = threading.Lock()
        self._installed = False
        self._driver_error = psycopg.Error
        _STORES.add(self)

    def _connection(self) -> Any:
        pool = self._pool
        if pool is None:
            pool = self._open_pool()
        return pool.connection()

    def _install(self) -> None:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        # Its own connection, not the pool's: the pool would retry a wrong database name or
        # password in the background until its 30 s timeout and then report only the timeout.
        given = conninfo_to_dict(self.url)
        timeout = {} if "connect_timeout" in given else {"connect_timeout": 10}
        with psycopg.connect(self.url, autocommit=True, **timeout) as conn:
            if not conn.execute(self._sql["installed"]).fetchone()[0]:
                with conn.transaction():
                    conn.execute(self._sql["schema"])
        self._installed = True

    def _open_pool(self) -> Any:
        from psycopg_pool import ConnectionPool

        with self._pool_lock:
            if self._pool is None:
                if not self._installed:
                    self._install()
                self._pool = ConnectionPool(
                    self.url, min_size=1, max_size=self._max_connections,
                    kwargs={"autocommit": True}, configure=_configure, name="hokuro-limits",
                    open=True)
            return self._pool

    def _one(self, name: str, params: Sequence[Any]) -> Any:
        try:
            with self._connection() as conn:
                return conn.execute(self._sql[name], params).fetchone()
        except self._driver_error as exc:
            raise self._failure(exc) from (None if self._holds_secret(exc) else exc)

    def _failure(self, exc: BaseException) -> LimitStoreError:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        lost = isinstance(exc, psycopg.OperationalError)
        refused = refusal(exc, conninfo_to_dict(self.url).get("dbname")) if lost else None
        if refused is not None:
            return LimitStoreError(f"PostgreSQL limit store {self._where}: {refused}")
        message = str(exc).strip() or type(exc).__name__
        for secret in self._secrets:
            message = message.replace(secret, "***")
        hint = "; check that the server is running and reachable, and the URL is right"
        return LimitStoreError(f"PostgreSQL limit store {self._where}: {message}"
                               f"{hint if lost else ''}")

    def _holds_secret(self, exc: BaseException) -> bool:
        return any(secret in str(exc) for secret in self._secrets)

    def decide(self, keys: Sequence[str], increments: Sequence[float],
               tolerances: Sequence[float], horizon: float,
               ticket: Sequence[float] | None = None) -> Verdict:
        granted, wait, now, tats, helds = self._one(
            "decide", (list(keys), list(increments), list(tolerances), float(horizon),
                       None if ticket is None else list(ticket), gcra.EPSILON))
        return Verdict(granted, wait, now, tuple(tats), tuple(helds))

    def held(self, keys: Sequence[str]) -> tuple[float, ...]:
        return tuple(self._one("held", (list(keys),))[0])

    def hold(self, keys: Sequence[str], tolerances: Sequence[float], seconds: float) -> None:
        self._one("hold", (list(keys), list(tolerances), float(seconds)))

    def refund(self, keys: Sequence[str], increments: Sequence[float],
               receipts: Sequence[float]) -> bool:
        given = self._one("refund", (list(keys), list(increments), list(receipts)))[0]
        return given == len(keys)

    def now(self) -> float:
        return self._one("now", ())[0]

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def _forget_after_fork(self) -> None:
        # The parent's pool is not ours to use or close, and its lock may have been held by
        # another thread at the instant of fork.
        if self._pool is not None:
            _INHERITED.append(self._pool)
        self._pool, self._pool_lock = None, threading.Lock()

    def describe(self) -> str:
        return self._where


_STORES: weakref.WeakSet[PostgresStore] = weakref.WeakSet()


def _forget_pools_in_child() -> None:
    for store in list(_STORES):
        store._forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools_in_child)
