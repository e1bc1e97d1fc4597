"""Keeps the leases of running tasks alive: one daemon thread per Spot renews them.

A task's lease lasts ``lease`` seconds and is renewed every third of that, so a live owner
never loses it while a dead one (kill -9) lets it expire. A forked child holds none of its
parent's leases and has no renewing thread, lock state or wake event of its parent's.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import Counter
from collections.abc import Callable

from ..store.ledger.base import TaskDB

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
        _KEEPERS.add(self)

    def hold(self, key: str) -> None:
        with self._lock:
            self._held[key] += 1
            if self._thread is None or not self._thread.is_alive():
                self._start()

    def release(self, key: str) -> None:
        with self._lock:
            self._held[key] -= 1
            if self._held[key] <= 0:
                del self._held[key]

    def _start(self) -> None:
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
            owner = self.owner()
            try:
                held = self.ledger.renew(owner, keys, self.clock() + self.lease)
            except Exception as exc:  # a passing outage: try again next round
                log.warning("hokuro could not renew %d lease(s): %s", len(keys), exc)
                continue
            with self._lock:
                lost = [key for key in keys if key not in held and key in self._held]
            for key in lost:
                # Not renewed: taken by another owner, or finished by this one between the
                # listing and the renewal (its outcome committed, the hold not yet let go).
                try:
                    record = self.ledger.get(key)
                except Exception:  # cannot look: say what the renewal found
                    record = None
                if record is None or record.owner != owner:
                    log.warning("hokuro lost the lease of task %s to another owner", key[:12])

    def close(self) -> None:
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._thread = None

    def _forget_after_fork(self) -> None:
        # The parent's leases are the parent's to renew; its thread does not exist here,
        # and its lock may have been held by another thread at the instant of fork.
        self._held = Counter()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None


_KEEPERS: weakref.WeakSet[LeaseKeeper] = weakref.WeakSet()


def _forget_leases_in_child() -> None:
    for keeper in list(_KEEPERS):
        keeper._forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_leases_in_child)
