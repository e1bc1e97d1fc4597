"""Keeps the leases of running tasks alive: one daemon thread per Spot renews them.

A task's lease lasts ``lease`` seconds and is renewed every third of that, so a live owner
never loses it while a dead one (kill -9) lets it expire.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Callable

from .ledger.base import TaskDB

log = logging.getLogger("hokuro")


class LeaseKeeper:
    def __init__(self, ledger: TaskDB, owner: Callable[[], str], lease: float,
                 clock: Callable[[], float]) -> None:
        self.ledger = ledger
        self.owner = owner
        self.lease = lease
        self.clock = clock
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def hold(self, key: str) -> None:
        with self._lock:
            if self._pid != os.getpid():
                # A forked child holds none of its parent's leases.
                self._held.clear()
                self._thread = None
            self._held[key] += 1
            if self._thread is None or not self._thread.is_alive():
                self._start()

    def release(self, key: str) -> None:
        with self._lock:
            self._held[key] -= 1
            if self._held[key] <= 0:
                del self._held[key]

    def _start(self) -> None:
        self._pid = os.getpid()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hokuro-leases", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        wake = self._wake
        while not wake.wait(self.lease / 3):
            with self._lock:
                keys = list(self._held)
            if not keys:
                continue
            try:
                held = self.ledger.renew(self.owner(), keys, self.clock() + self.lease)
            except Exception as exc:  # a passing outage: try again next round
                log.warning("hokuro could not renew %d lease(s): %s", len(keys), exc)
                continue
            with self._lock:
                lost = [key for key in keys if key not in held and key in self._held]
            for key in lost:
                log.warning("hokuro lost the lease of task %s to another owner", key[:12])

    def close(self) -> None:
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() \
                and self._pid == os.getpid():
            thread.join(timeout=5)
        self._thread = None
