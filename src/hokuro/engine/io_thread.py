"""The I/O of a Spot's async calls, off the event loop (invariant 8), batched.

An async marked call asks for its ledger reads and writes (the kept-result lookup, the claim,
the finish) through :meth:`IoThread.submit` and awaits a future; the Spot's one I/O thread
takes everything that arrived while it was busy and answers it with one statement or
transaction per kind (``get_many``, ``claim_many``, ``finish_many``). So a thousand
concurrent misses cost a few transactions, not a thousand, and the loop never waits on
SQLite or PostgreSQL. Other I/O (blob uploads and downloads, recording a failure with a long
log) runs on a small shared pool of threads, one call each.

A ledger that only has the one-by-one defaults of those methods (a custom ledger) gets no
batching, but its calls still leave the loop.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import weakref
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from ..store.ledger.base import TaskDB

log = logging.getLogger("hokuro")

#: Most requests of one kind answered by one statement or transaction.
MAX_BATCH = 500
#: Threads of the shared pool that runs the other I/O of async calls (blob transfers).
POOL_THREADS = 8

LOOKUP, CLAIM, FINISH = "lookup", "claim", "finish"
#: Small I/O answered on the I/O thread in the order asked (a Spot's preparation to run), so
#: calls made in some order reach their limiter and their claim in that order.
IN_ORDER = "in order"

_pool: Any = None
_pool_lock = threading.Lock()
_threads: weakref.WeakSet[IoThread] = weakref.WeakSet()


def io_pool() -> Any:
    """The process's pool for async calls' unbatched I/O (started when first needed)."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                from concurrent.futures import ThreadPoolExecutor

                _pool = ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="hokuro-io")
    return _pool


class IoThread:
    """One Spot's thread for the batched ledger I/O of its async calls."""

    def __init__(self, ledger: TaskDB) -> None:
        self.ledger = ledger
        kind = type(ledger)
        # Batch only what the ledger does in one statement or transaction.
        self._native = {
            LOOKUP: kind.get_many is not TaskDB.get_many,
            CLAIM: kind.claim_many is not TaskDB.claim_many,
            FINISH: kind.finish_many is not TaskDB.finish_many,
            IN_ORDER: True,
        }
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.batches = 0
        _threads.add(self)

    def submit(self, kind: str, fn: Callable[[Any], Any], arg: Any) -> Any:
        """An asyncio future of the request ``fn(arg)`` of ``kind``: a lookup of a key (a
        Record or None), a Claim (its ClaimResult) or a finish ``(key, owner, outcome)``
        (whether it was written), answered in a batch with others of its kind — or by
        ``fn`` on the shared pool when the ledger cannot batch that kind. Call it from the
        event loop."""
        import asyncio

        loop = asyncio.get_running_loop()
        if not self._native[kind] or self._closed:
            return run_off_loop(fn, arg)
        future = loop.create_future()
        _count_in_flight(future)
        self._queue.put((kind, fn, arg, loop, future))
        if self._thread is None:
            self._start()
        return future

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="hokuro-io-batch",
                                                daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Answer what was submitted, then stop the thread."""
        self._closed = True
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            self._queue.put(None)
            thread.join()
            self._thread = None

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            work = [first]
            stop = False
            while len(work) < MAX_BATCH * 3:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                work.append(more)
            by_kind: dict[str, list[Any]] = defaultdict(list)
            for item in work:
                by_kind[item[0]].append(item)
            answers: list[tuple[Any, Any, bool, Any]] = []
            for kind, items in by_kind.items():
                for start in range(0, len(items), MAX_BATCH):
                    answers += self._answer(kind, items[start:start + MAX_BATCH])
            self.batches += 1
            _deliver(answers)
            if stop:
                return

    def _answer(self, kind: str, items: list[Any]) -> list[tuple[Any, Any, bool, Any]]:
        """(loop, future, ok, value) for each request of one kind."""
        if kind == IN_ORDER and len(items) > 1:
            answers = []
            for item in items:
                answers += self._answer(kind, [item])
            return answers
        try:
            if kind == IN_ORDER:
                values = [items[0][1](items[0][2])]
            else:
                values = self._many(kind, [item[2] for item in items])
        except BaseException as exc:
            if len(items) == 1:
                return [(items[0][3], items[0][4], False, exc)]
            # One transaction failed for all: ask again one by one (the SQL ledgers' batches
            # are atomic, so nothing of the failed one was written), so that one bad request
            # fails alone.
            answers = []
            for item in items:
                answers += self._answer(kind, [item])
            return answers
        return [(item[3], item[4], True, value)
                for item, value in zip(items, values, strict=True)]

    def _many(self, kind: str, args: list[Any]) -> list[Any]:
        if kind == LOOKUP:
            found = self.ledger.get_many(args)
            return [found.get(key) for key in args]
        if kind == CLAIM:
            return self.ledger.claim_many(args)
        return self.ledger.finish_many(args)


def _deliver(answers: list[tuple[Any, Any, bool, Any]]) -> None:
    """Settle the futures, one wake-up per event loop."""
    by_loop: dict[Any, list[tuple[Any, bool, Any]]] = defaultdict(list)
    for loop, future, ok, value in answers:
        by_loop[loop].append((future, ok, value))
    for loop, settled in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, settled)
        except RuntimeError:  # that loop is closed: nobody waits any more
            log.debug("hokuro: %d answers for a closed event loop dropped", len(settled))


def _settle(settled: list[tuple[Any, bool, Any]]) -> None:
    for future, ok, value in settled:
        if future.done():  # cancelled by its caller meanwhile
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def run_off_loop(fn: Callable[..., Any], *args: Any) -> Any:
    """An asyncio future of ``fn(*args)`` run on the shared pool."""
    import asyncio

    future = asyncio.get_running_loop().run_in_executor(io_pool(), fn, *args)
    _count_in_flight(future)
    return future


_in_flight = [0]


def in_flight() -> int:
    """I/O requests of async calls submitted and not answered yet, in this process (for
    tests on virtual time: time may move on only when no call waits for I/O)."""
    return _in_flight[0]


def _count_in_flight(future: Any) -> None:
    _in_flight[0] += 1
    future.add_done_callback(_answered)


def _answered(_: Any) -> None:
    _in_flight[0] -= 1


def _forget_in_child() -> None:
    # A forked child has none of its parent's threads: each Spot starts its I/O thread (and
    # the process its pool) again when an async call needs one.
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()
    for io in list(_threads):
        io._queue = queue.SimpleQueue()
        io._thread = None
        io._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
