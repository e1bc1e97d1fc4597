"""Limit store in a small SQLite file: shared by every process on one host.

Each operation is one ``BEGIN IMMEDIATE`` transaction: it takes the file's write lock before
reading, so the read, the GCRA arithmetic and the write cannot interleave with another
process. The clock is this host's ``time.time()``, read once the lock is held, which every
process on the host shares. WAL with ``synchronous=NORMAL`` keeps a decision to one page
write without an fsync: a crash of the machine may forget the last few grants, which costs
at most a burst, never a corrupt file.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..connections import ConnectionPool
from . import gcra
from .base import LimitStore, Verdict, load_scripts


class SQLiteStore(LimitStore):
    """Limit state in the SQLite file at ``path`` (created with its folder when missing)."""

    kind = "sqlite"

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout = busy_timeout
        self._clock = clock
        self._sql = load_scripts("sqlite.sql")
        # Connections handed out per operation (and new ones in a forked child): bounded
        # however many threads come and go, never shared mid-transaction nor across fork.
        self._pool = ConnectionPool(self._connect)
        with self._pool.connection():
            pass  # fail here, not at the first call, when the file cannot be opened
        self._upgrade()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(self._sql["schema"])
        return conn

    def _upgrade(self) -> None:
        with self._transaction() as conn:
            if "queued" not in {row[0] for row in conn.execute(self._sql["columns"])}:
                conn.execute(self._sql["add_queued"])

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._pool.connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _read(self, conn: sqlite3.Connection, key: str) -> gcra.KeyState:
        row = conn.execute(self._sql["read_state"], (key,)).fetchone()
        return gcra.KeyState(*row) if row else gcra.KeyState()

    def decide(self, keys: Sequence[str], increments: Sequence[float],
               tolerances: Sequence[float], horizon: float,
               ticket: Sequence[float] | None = None) -> Verdict:
        with self._transaction() as conn:
            states = [self._read(conn, key) for key in keys]
            now = self._clock()
            decision = gcra.decide_all(
                [state.tat for state in states], now, increments, tolerances, horizon,
                [state.queued for state in states], ticket)
            if decision.granted:
                conn.executemany(self._sql["write_tat"], zip(keys, decision.tats, strict=True))
            elif decision.queued is not None:
                conn.executemany(self._sql["write_queued"],
                                 zip(keys, decision.queued, strict=True))
        return Verdict(decision.granted, decision.wait, now, decision.tats,
                       tuple(state.held for state in states))

    def held(self, keys: Sequence[str]) -> tuple[float, ...]:
        with self._pool.connection() as conn:
            return tuple(self._read(conn, key).held for key in keys)

    def hold(self, keys: Sequence[str], tolerances: Sequence[float], seconds: float) -> None:
        with self._transaction() as conn:
            now = self._clock()
            for key, tolerance in zip(keys, tolerances, strict=True):
                state = gcra.hold(self._read(conn, key), now, seconds, tolerance)
                conn.execute(self._sql["write_state"], (key, *state))

    def refund(self, keys: Sequence[str], increments: Sequence[float],
               receipts: Sequence[float]) -> bool:
        every = True
        with self._transaction() as conn:
            for key, increment, receipt in zip(keys, increments, receipts, strict=True):
                given = gcra.refund(self._read(conn, key), increment, receipt)
                if given is None:
                    every = False
                else:
                    conn.execute(self._sql["write_tat"], (key, given.tat))
        return every

    def now(self) -> float:
        return self._clock()

    def close(self) -> None:
        self._pool.close()

    def describe(self) -> str:
        return f"sqlite://{self.path}"
