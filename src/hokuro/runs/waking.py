"""What wakes an idle worker when jobs become claimable, instead of asking the ledger in a
loop.

- PostgreSQL: LISTEN on the Spot's channel. A trigger of the ledger (schema 4) notifies it
  once per transaction that makes jobs claimable (inserted, counted down, retried, handed
  back); a connection of its own waits for notifications on a thread. When that connection
  is lost (a restart, pg_terminate_backend) the thread connects again with a growing delay
  and wakes the worker once connected, since notifications sent meanwhile are lost.
- SQLite (several processes on one machine): ``PRAGMA data_version`` of a connection of its
  own, read every :data:`SQLITE_EVERY` seconds. It changes when another connection commits,
  and reading it is a read of shared memory (no I/O, no lock), so this is the cheapest
  "someone wrote" a file can tell. The worker then asks the ledger when its next job is due
  (a read) before it claims (a write).

Jobs that become due by the clock alone (a ``Pending`` poll, a retry's backoff, a lease
running out) are not announced: the worker sleeps until the earliest of them (``next_due``).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("hokuro")

#: Seconds between two reads of a SQLite file's data_version.
SQLITE_EVERY = 0.05
#: Delays before connecting again after the LISTEN connection was lost.
_BACKOFF = (0.2, 0.5, 1.0, 2.0, 5.0)


class Wakeup:
    """A thread that calls ``wake()`` when the ledger says jobs may be claimable."""

    #: True while notifications are expected to arrive (the worker may then sleep long).
    live = False

    def __init__(self, wake: Callable[[], None]) -> None:
        self.wake = wake
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hokuro-wakeup", daemon=True)

    def start(self) -> Wakeup:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        raise NotImplementedError


class PostgresWakeup(Wakeup):
    """LISTEN on the ledger's channel, on a connection of its own."""

    def __init__(self, ledger: Any, wake: Callable[[], None]) -> None:
        super().__init__(wake)
        self.ledger = ledger
        self.channel = ledger.notify_channel
        self.reconnects = 0

    def _run(self) -> None:
        failures = 0
        while not self._stopped.is_set():
            try:
                with self.ledger.listen_connection() as conn:
                    conn.execute(f'LISTEN "{self.channel}"')
                    self.live = True
                    if failures:
                        self.wake()  # what was notified while disconnected is lost
                    failures = 0
                    while not self._stopped.is_set():
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            self.wake()
            except Exception as exc:
                self.live = False
                if self._stopped.is_set():
                    return
                failures += 1
                self.reconnects += 1
                delay = _BACKOFF[min(failures, len(_BACKOFF)) - 1]
                log.info("hokuro: the worker's LISTEN connection was lost (%s); connecting "
                         "again in %g s", exc, delay)
                self._stopped.wait(delay)
        self.live = False


class SQLiteWakeup(Wakeup):
    """``PRAGMA data_version`` of the ledger file, read every :data:`SQLITE_EVERY` s."""

    def __init__(self, path: Any, wake: Callable[[], None], every: float = SQLITE_EVERY
                 ) -> None:
        super().__init__(wake)
        self.path = path
        self.every = every

    def _run(self) -> None:
        conn = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True,
                               check_same_thread=False)
        try:
            self.live = True
            seen = conn.execute("PRAGMA data_version").fetchone()[0]
            while not self._stopped.wait(self.every):
                now = conn.execute("PRAGMA data_version").fetchone()[0]
                if now != seen:
                    seen = now
                    self.wake()
        except sqlite3.Error as exc:
            log.warning("hokuro: the worker stopped watching %s for changes (%s); it looks "
                        "at the ledger every second instead", self.path, exc)
        finally:
            self.live = False
            conn.close()


def wakeup_for(ledger: Any, wake: Callable[[], None]) -> Wakeup | None:
    """The wake-up that suits ``ledger`` (None: none; the worker then looks every second)."""
    if getattr(ledger, "notify_channel", None):
        return PostgresWakeup(ledger, wake)
    if getattr(ledger, "kind", None) == "sqlite":
        return SQLiteWakeup(ledger.path, wake)
    return None
