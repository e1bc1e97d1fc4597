"""Limit store in PostgreSQL: shared by every host that reaches the database.

Each operation is one statement (``scripts/postgres.sql``), timed by the server's
``clock_timestamp()``. The table and its functions are created on first use under an
advisory lock, so many processes may open the store at once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

from ..errors import MissingDependency
from ..redact import mask_url
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
            import psycopg  # noqa: F401
            import psycopg_pool  # noqa: F401
        except ImportError as exc:
            raise MissingDependency(exc.name or "psycopg", "postgres") from exc
        self.url = url
        self._max_connections = max_connections
        self._sql = load_scripts("postgres.sql")
        self._pool: Any = None
        self._pid = 0
        self._pool_lock = threading.Lock()
        with self._connection() as conn:
            if not conn.execute(self._sql["installed"]).fetchone()[0]:
                with conn.transaction():
                    conn.execute(self._sql["schema"])

    def _connection(self) -> Any:
        if self._pid != os.getpid():
            self._open_pool()
        return self._pool.connection()

    def _open_pool(self) -> None:
        from psycopg_pool import ConnectionPool

        with self._pool_lock:
            if self._pid == os.getpid():
                return
            if self._pool is not None:
                _INHERITED.append(self._pool)
            self._pool = ConnectionPool(
                self.url, min_size=1, max_size=self._max_connections,
                kwargs={"autocommit": True}, configure=_configure, name="hokuro-limits",
                open=True)
            self._pid = os.getpid()

    def _one(self, name: str, params: Sequence[Any]) -> Any:
        with self._connection() as conn:
            return conn.execute(self._sql[name], params).fetchone()

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
        if self._pool is not None and self._pid == os.getpid():
            self._pool.close()
        self._pool = None
        self._pid = 0

    def describe(self) -> str:
        return mask_url(self.url)
