"""The per-task context (``ctx``) handed to a marked function that asks for it.

``ctx.logger`` writes to this task's log only: each task gets its own Logger object that is
not registered with :mod:`logging`'s manager and does not propagate, so lines never leak
between concurrent tasks (threads or asyncio) and no handler outlives the task.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable
from pathlib import Path

#: Marker appended to a log that reached its size cap.
TRUNCATED = "\n[hokuro: log truncated at {limit} bytes; raise Spot(log_limit=...) to keep more]\n"
_FORMAT = logging.Formatter("%(asctime)s %(levelname)-8s %(message)s (%(filename)s:%(lineno)d)")


class TaskLog(logging.Handler):
    """Collects one task's log lines in memory, up to ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(logging.DEBUG)
        self.limit = limit
        self._buffer = io.StringIO()
        self._size = 0
        self._truncated = False
        self.setFormatter(_FORMAT)

    def emit(self, record: logging.LogRecord) -> None:
        if self._truncated:
            return
        try:
            line = self.format(record) + "\n"
        except Exception:
            self.handleError(record)
            return
        size = len(line.encode("utf-8", "replace"))
        if self._size + size > self.limit:
            room = max(self.limit - self._size, 0)
            self._buffer.write(line.encode("utf-8", "replace")[:room].decode("utf-8", "ignore"))
            self._buffer.write(TRUNCATED.format(limit=self.limit))
            self._truncated = True
            return
        self._buffer.write(line)
        self._size += size

    def text(self) -> str:
        return self._buffer.getvalue()


class Context:
    """What a running task knows about itself.

    Attributes: ``key`` (the task key), ``ident`` (readable id, if any), ``attempt`` (1 for
    the first execution), ``logger`` (lines go to this task's record), ``dir`` (a folder for
    this task's files, created on first use).
    """

    __slots__ = ("_dir", "_dir_factory", "_lock", "_log", "_log_limit", "_logger", "attempt",
                 "fn", "ident", "key")

    def __init__(self, *, key: str, fn: str, ident: str | None, attempt: int, log_limit: int,
                 dir_factory: Callable[[], Path]) -> None:
        self.key = key
        self.fn = fn
        self.ident = ident
        self.attempt = attempt
        self._log_limit = log_limit
        self._log: TaskLog | None = None  # made when the task first logs
        self._logger: logging.Logger | None = None
        self._dir: Path | None = None
        self._dir_factory = dir_factory
        self._lock = threading.Lock()

    @property
    def logger(self) -> logging.Logger:
        if self._logger is None:
            # Built directly, not through logging.getLogger: nothing global keeps it alive.
            logger = logging.Logger(f"hokuro.task.{self.fn}.{self.key[:12]}", logging.DEBUG)
            logger.propagate = False
            self._log = TaskLog(self._log_limit)
            logger.addHandler(self._log)
            self._logger = logger
        return self._logger

    @property
    def dir(self) -> Path:
        with self._lock:
            if self._dir is None:
                self._dir = self._dir_factory()
            return self._dir

    @property
    def log_text(self) -> str:
        """What the task logged so far ("" when it never logged)."""
        return "" if self._log is None else self._log.text()

    def __repr__(self) -> str:
        return f"Context(fn={self.fn!r}, key={self.key[:12]!r}, attempt={self.attempt})"
