"""A small pool of SQLite connections, handed out per operation to any thread of one process.

Why a pool rather than a connection per thread: a thread-local connection stays open until
its thread ends, so descriptors grow with the threads alive (each WAL connection holds two:
200 scraper threads on a ledger and a limit store need 800, near the usual ``ulimit -n`` of
1024), and every short-lived thread pays a connection's open (~0.3 ms). A pool bounds them
whatever the threads do, and handing a connection out and back costs less than finding a
thread's own (``list.pop``/``append`` are atomic under the GIL: no lock on the fast path).
When every connection is in use a caller waits for one; SQLite serialises writers anyway, so
this queue replaces its busy-wait, it does not add one.

A connection must not be used, nor closed, in a process forked from the one that opened it
(closing could checkpoint or unlink the WAL under the parent). In a forked child the pool
starts empty and every inherited connection is kept, untouched, in ``_INHERITED``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Callable

#: Connections per pool. Writes take the file's one write lock whatever the size; 32 threads
#: making misses or hits ran no faster with 16 or 64 than with 1 to 8 (2 cores); 8 leaves
#: room for readers in parallel on larger machines, at 16 descriptors per pool at most.
POOL_SIZE = 8

# Connections a forked child inherited: referenced so they are never finalized here.
_INHERITED: list[sqlite3.Connection] = []
_LIVE: weakref.WeakSet[ConnectionPool] = weakref.WeakSet()


class ConnectionPool:
    """At most ``size`` connections made by ``connect()``; ``take()`` one, ``give()`` it back.

    ``with pool.connection() as conn:`` does both.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection], size: int = POOL_SIZE
                 ) -> None:
        if size < 1:
            raise ValueError("a connection pool needs at least one connection")
        self._connect = connect
        self._size = size
        self._reset()
        _LIVE.add(self)

    def _reset(self) -> None:
        self._idle: list[sqlite3.Connection] = []
        self._members: set[sqlite3.Connection] = set()
        self._opening = 0
        self._waiting = 0
        self._cond = threading.Condition(threading.Lock())

    def take(self) -> sqlite3.Connection:
        try:
            return self._idle.pop()
        except IndexError:
            return self._take_slow()

    def give(self, conn: sqlite3.Connection) -> None:
        if conn not in self._members:
            return  # closed by close(), or the parent's after a fork: not ours to keep
        if conn.in_transaction:  # a failed ROLLBACK must not leave the next user inside it
            try:
                conn.rollback()
            except sqlite3.Error:
                self._discard(conn)
                return
        self._idle.append(conn)
        # A waiter counts itself before it looks at _idle (both under the lock): if it is
        # not counted yet, it will find this connection when it looks.
        if self._waiting:
            with self._cond:
                self._cond.notify()

    def connection(self) -> _Borrowed:
        return _Borrowed(self)

    def _take_slow(self) -> sqlite3.Connection:
        cond = self._cond
        with cond:
            self._waiting += 1
            try:
                while True:
                    if self._idle:
                        return self._idle.pop()
                    if len(self._members) + self._opening < self._size:
                        self._opening += 1
                        break
                    cond.wait()
            finally:
                self._waiting -= 1
        try:
            conn = self._connect()
        except BaseException:
            with cond:
                self._opening -= 1
                cond.notify()
            raise
        with cond:
            self._opening -= 1
            self._members.add(conn)
        return conn

    def _discard(self, conn: sqlite3.Connection) -> None:
        with self._cond:
            self._members.discard(conn)
            self._cond.notify()
        try:
            conn.close()
        except sqlite3.Error:
            pass

    def close(self) -> None:
        """Close every connection, in use or not; the next ``take()`` opens a new one."""
        with self._cond:
            members = self._members
            self._members, self._idle = set(), []
            self._cond.notify_all()
        for conn in members:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def _forget_after_fork(self) -> None:
        _INHERITED.extend(self._members)
        self._reset()  # its lock may have been held by a thread the child does not have


class _Borrowed:
    __slots__ = ("conn", "pool")

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def __enter__(self) -> sqlite3.Connection:
        self.conn = self.pool.take()
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.pool.give(self.conn)


def _after_fork_in_child() -> None:
    for pool in list(_LIVE):
        pool._forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
