"""Group commit: one thread writes the outcomes of many jobs (and their tasks) per transaction.

Executors hand finished jobs to :meth:`GroupCommitter.submit` and go on; the committer's
thread takes everything that arrived while its previous transaction was being written and
writes it in the next one. So the cost of a commit (about 0.7 to 3.5 ms) is paid per batch, not per
job, and an outcome waits at most one commit (plus ``linger``) before it is durable — the
bound on what a kill -9 can lose of work that had already finished (invariant 2).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import RunCancelled
from ..model.jobs import JobOutcome, JobSpec
from ..model.records import Outcome

log = logging.getLogger("hokuro")

#: Most outcomes written in one transaction.
MAX_BATCH = 2000
#: Most new jobs inserted in one transaction: a window of thousands goes in as several,
#: so that claims (which take turns with inserts on SQLite) wait for one part, not all.
INSERT_CHUNK = 1000


@dataclass(slots=True)
class Pending:
    """One unit of work for the committer: job outcomes with their task finishes, or jobs
    to insert; ``done`` is called (from the committer's thread) once it is durable."""

    outcomes: list[JobOutcome] = field(default_factory=list)
    tasks: list[tuple[str, str, Outcome]] = field(default_factory=list)
    inserts: list[tuple[str, list[JobSpec]]] = field(default_factory=list)
    done: Callable[[list[bool] | BaseException], None] | None = None
    #: Called on the committer's thread once the batch's inserts are written (a run's input
    #: cursor: recorded only after the jobs it covers); its failure fails the batch.
    then: Callable[[], None] | None = None


class GroupCommitter:
    """A thread that writes submitted outcomes to the ledger in batches."""

    def __init__(self, ledger: Any, clock: Callable[[], float], *, linger: float = 0.002,
                 serial: Any = None, inserts_serial: Any = None) -> None:
        self.ledger = ledger
        self.serial = serial if serial is not None else contextlib.nullcontext()
        # Inserts of new jobs may take another (or no) turn than the commits' (PostgreSQL).
        self.inserts_serial = inserts_serial if inserts_serial is not None else self.serial
        self.clock = clock
        self.linger = linger
        self._queue: queue.SimpleQueue[Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="hokuro-commit", daemon=True)
        self._closed = False
        self.batches = 0
        self.written = 0
        self._thread.start()

    def submit(self, work: Pending) -> None:
        if self._closed:
            raise RuntimeError("the run's committer is closed")
        self._queue.put(work)

    def close(self) -> None:
        """Write what was submitted, then stop the thread."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            if self.linger:
                time.sleep(self.linger)  # let the outcomes finishing now join this commit
            size = len(first.outcomes) + len(first.inserts)
            while size < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
                size += len(more.outcomes) + len(more.inserts)
            self._write(batch)

    def _write(self, batch: list[Pending]) -> None:
        outcomes = [o for work in batch for o in work.outcomes]
        tasks = [t for work in batch for t in work.tasks]
        refused: dict[int, RunCancelled] = {}  # works whose run takes no new jobs
        try:
            now = self.clock()
            for i, work in enumerate(batch):
                if work.inserts:
                    try:
                        # Each part is its own transaction; the window's cursor (``then``)
                        # is recorded once every part is in. A kill between parts leaves
                        # some jobs in: the window is read again, and a job in already is
                        # not inserted twice.
                        for run_id, specs in work.inserts:
                            for start in range(0, len(specs), INSERT_CHUNK):
                                with self.inserts_serial:
                                    self.ledger.insert_jobs(
                                        run_id, specs[start:start + INSERT_CHUNK], now)
                    except RunCancelled as exc:  # said to that work alone
                        refused[i] = exc
                        continue
                if work.then is not None:
                    work.then()
            written = []
            if outcomes or tasks:
                with self.serial:
                    written = self.ledger.commit(outcomes, tasks, now)
        except BaseException as exc:  # the executor decides what a failed commit means
            log.warning("hokuro: a group commit of %d job outcomes failed: %s",
                        len(outcomes), exc)
            for work in batch:
                if work.done is not None:
                    work.done(exc)
            return
        self.batches += 1
        self.written += len(outcomes)
        start = 0
        for i, work in enumerate(batch):
            count = len(work.outcomes)
            if work.done is not None:
                work.done(refused[i] if i in refused else list(written[start:start + count]))
            start += count
