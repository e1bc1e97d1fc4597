"""What a marked function keeps and reads back: its result (inline or in a blob, uploaded
first), its failure with its traceback, its log, its arguments for replay; and the same
pieces as the run engine asks for them (claim, context, outcomes). A part of
:class:`~hokuro.engine.marking.MarkedFunction`, kept apart from its call path.

The methods that write are flows (generators): they yield their I/O as requests, which the
sync driver answers at once and the async one hands to the Spot's I/O thread.
"""

from __future__ import annotations

import functools
import logging
import os
import traceback
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import BlobError, SerializationError
from ..model.keys import task_key
from ..model.records import (
    Claim,
    Outcome,
    Record,
    Status,
    args_not_kept,
    blob_checksum,
    error_fingerprint,
)
from ..store.blobs.names import log_ref, result_ref
from .context import Context
from .drivers import _Flow, _Io, _is_cancelling
from .io_thread import FINISH

if TYPE_CHECKING:
    from .options import MarkOptions
    from .spot import Spot

log = logging.getLogger("hokuro")

_INLINE_LOG = 64 * 1024
# Arguments whose encoded size is at least their len() (str: UTF-8 takes a byte or more a
# character).
_FLAT = (bytes, bytearray, memoryview, str)
# Set on an exception once it is the task's recorded failure (its value: the task key), so
# spot.fetch absorbs exactly those and lets every other error through.
_RECORDED = "__hokuro_recorded__"

_E = TypeVar("_E", bound=BaseException)


class Keeping:
    """The keeping half of a marked function (it has ``spot``, ``codec``, ``options``,
    ``name``, ``fn_path``, ``_key_material`` and ``_caller``)."""

    spot: Spot
    codec: Any
    options: MarkOptions
    name: str
    fn_path: str | None

    def _store(self, key: str, owner: str, value: Any, ctx: Context,
               previous: Record | None) -> _Flow:
        """Keep a result: encode it, upload its blob, commit its record. Whatever fails on
        the way (the codec, the blob store, the ledger, or anything they raise) is recorded
        as the task's failure, so no record stays ``running`` under a live lease."""
        outcome: Outcome | None = None
        try:
            data = self.codec.encode(value, root="result")
            if self.needs_io(data, ctx):
                outcome = yield _Io(functools.partial(self._kept, key, data), ctx)
            else:
                outcome = self._kept(key, data, ctx)
            kept = yield _Io(self._finish, (key, owner, outcome), FINISH)
        except BaseException as exc:
            if (yield from self._record_failure(key, owner, exc, ctx)):
                _mark_recorded(exc, key)
                if outcome is not None:  # the record says failed: nothing names them
                    yield from self._drop((outcome.blob, outcome.log_blob))
            raise
        if not kept:
            log.warning("hokuro: task %s finished after its lease was taken over; "
                        "its result was not recorded", key[:12])
            yield from self._drop((outcome.blob, outcome.log_blob))
        elif previous is not None:
            yield from self._drop(ref for ref in (previous.blob, previous.log_blob)
                                  if ref not in (outcome.blob, outcome.log_blob))

    def _finish(self, finish: tuple[str, str, Outcome]) -> bool:
        return self.spot.ledger.finish(*finish)

    # -- storing and loading --------------------------------------------------------------
    def _encode_args(self, bound: dict[str, Any]) -> bytes | None:
        """The call's arguments, kept so ``hokuro retry`` can replay the call; past the
        Spot's ``args_limit`` (or with ``store_args=False``) only a marker saying so."""
        if not self.options.store_args:
            return args_not_kept()
        limit = self.spot.args_limit
        if limit is not None:
            # Flat text and bytes alone may show the call is far past the limit: then it is
            # not encoded only to be measured (a 50 MB argument would cost ~60 ms more).
            floor = sum(len(v) if not isinstance(v, memoryview) else v.nbytes
                        for v in bound.values() if isinstance(v, _FLAT))
            if floor > limit:
                return args_not_kept(floor, limit, at_least=True)
        try:
            data = self.codec.encode(bound, root="args")
        except Exception:
            return None  # an argument the codec cannot encode: the task cannot be replayed
        if limit is not None and len(data) > limit:
            return args_not_kept(len(data), limit)
        return data

    def _to_blob(self, data: bytes) -> bool:
        threshold = self.options.blob_threshold
        if threshold is None:
            threshold = self.spot.blob_threshold
        return bool(self.options.save_blob
                    or (self.options.save_blob is None and len(data) > threshold))

    def _kept(self, key: str, data: bytes, ctx: Context) -> Outcome:
        """The outcome keeping the encoded result ``data``: inline, or in a blob uploaded
        first (invariant 1: readers never see a half result)."""
        spot = self.spot
        now = spot.clock()
        outcome = Outcome(
            status=Status.DONE, finished_at=now, codec=self.codec.name,
            content_type=self.options.content_type, size=len(data),
            expires_at=None if self.options.retention is None else now + self.options.retention,
        )
        if self._to_blob(data):
            outcome.checksum = blob_checksum(data)
            outcome.blob = spot.blobs.save(result_ref(key, spot.nonce()), data)
        else:
            outcome.result = data
        self._attach_log(key, outcome, ctx)
        return outcome

    def _attach_log(self, key: str, outcome: Outcome, ctx: Context) -> None:
        text = ctx.log_text
        if not text:
            return
        if len(text) > _INLINE_LOG:
            try:
                outcome.log_blob = self.spot.blobs.save(log_ref(key, self.spot.nonce()),
                                                        text.encode("utf-8"))
                return
            except BlobError as exc:
                log.warning("hokuro: could not store the log of %s as a blob: %s", key[:12], exc)
        outcome.log = text

    def _failure(self, key: str, exc: BaseException, ctx: Context | None) -> Outcome:
        """The outcome that records ``exc`` (with its traceback) as the task's end."""
        error_type = type(exc).__qualname__
        frames = [(os.path.basename(f.filename), f.name)
                  for f in traceback.extract_tb(exc.__traceback__)]
        now = self.spot.clock()
        outcome = Outcome(
            status=Status.CANCELLED if _is_cancelling(exc) else Status.FAILED,
            finished_at=now, error_type=error_type,
            codec=self.codec.name,  # how the record's args were encoded, for replay
            error="".join(traceback.format_exception(exc)),
            error_fingerprint=error_fingerprint(error_type, frames),
            expires_at=None if self.options.retention is None else now + self.options.retention,
        )
        if ctx is not None:
            self._attach_log(key, outcome, ctx)
        return outcome

    def _record_failure(self, key: str, owner: str, exc: BaseException,
                        ctx: Context) -> _Flow:
        """Write ``exc`` as the task's end; True when the record now holds it."""
        try:
            if ctx is not None and len(ctx.log_text) > _INLINE_LOG:  # the log goes to a blob
                outcome = yield _Io(functools.partial(self._failure, key, exc), ctx)
            else:
                outcome = self._failure(key, exc, ctx)
            return (yield _Io(self._finish, (key, owner, outcome), FINISH))
        except Exception as write_error:  # the original error matters more to the caller
            # Its lease is no longer renewed either: another caller takes the task over
            # once the lease runs out.
            log.warning("hokuro: could not record the failure of %s: %s", key[:12], write_error)
            return False

    def _load(self, record: Record) -> tuple[bool, Any]:
        """Decode a kept result: (True, value), or (False, None) when it must be recomputed."""
        if record.codec != self.codec.name:
            # Never decode with a codec this mark did not choose (invariant 7).
            warnings.warn(
                f"hokuro: task {record.key[:12]} was stored with codec {record.codec!r} but "
                f"{self.name} uses {self.codec.name!r}; computing it again",
                RuntimeWarning, stacklevel=4)
            return False, None
        data = record.result
        if record.blob is not None:
            try:
                data = self.spot.blobs.load(record.blob)
            except BlobError as exc:
                warnings.warn(f"hokuro: {exc}; computing task {record.key[:12]} again",
                              RuntimeWarning, stacklevel=4)
                return False, None
            if record.checksum and blob_checksum(data) != record.checksum:
                warnings.warn(f"hokuro: blob {record.blob!r} is damaged; computing task "
                              f"{record.key[:12]} again", RuntimeWarning, stacklevel=4)
                return False, None
        if data is None:
            return False, None
        try:
            return True, self.codec.decode(data)
        except SerializationError as exc:
            warnings.warn(f"hokuro: cannot decode task {record.key[:12]} ({exc}); computing it "
                          "again", RuntimeWarning, stacklevel=4)
            return False, None

    def _drop(self, refs: Iterable[str | None]) -> _Flow:
        refs = [ref for ref in refs if ref]
        if refs:
            yield _Io(self._delete_blobs, refs)

    def _delete_blobs(self, refs: list[str]) -> None:
        for ref in refs:
            try:
                self.spot.blobs.delete(ref)
            except Exception as exc:  # an orphan is harmless; hokuro gc removes it
                log.warning("hokuro: blob %s stays until hokuro gc: %s", ref, exc)

    # -- what the run engine asks of a step: the same claim, context and outcomes ---------
    #: ``task_claim`` takes ``key=``: the key of these args, computed before (the run
    #: engine computes root jobs' keys when it inserts them).
    claims_by_key = True

    def task_claim(self, args: tuple[Any, ...], owner: str, now: float, *,
                   force: bool = False, steal_from: str | None = None,
                   key: str | None = None) -> Claim:
        """The claim of the task ``self(*args)`` (its key is ``claim.key``; ``key``: that
        key, already computed from the same ``args``)."""
        if key is None:
            bound, material = self._key_material(args, {})
            key = task_key(self.name, self.options.version, material)
        else:
            bound = self._bind(args, {})
        return Claim(key=key, fn=self.name, owner=owner, lease_until=now + self.spot.lease,
                     now=now, fn_path=self.fn_path, args=self._encode_args(bound),
                     version=self.options.version, force=force, steal_from=steal_from)

    def task_context(self, key: str, attempt: int) -> Context:
        return Context(key=key, fn=self.name, ident=None, attempt=attempt,
                       log_limit=self.spot.log_limit,
                       dir_factory=functools.partial(self.spot.task_dir, key))

    def invoke(self, args: tuple[Any, ...], ctx: Context | None) -> Any:
        """Call the function itself (no bookkeeping): its value, or its coroutine."""
        return self._caller(args, {})(ctx)

    def encode_result(self, value: Any) -> bytes:
        return self.codec.encode(value, root="result")

    def needs_io(self, data: bytes, ctx: Context) -> bool:
        """Whether keeping ``data`` (and the task's log) writes to the blob store."""
        return self._to_blob(data) or len(ctx.log_text) > _INLINE_LOG

    def result_outcome(self, key: str, data: bytes, ctx: Context) -> Outcome:
        """The task's outcome for its encoded result ``data`` (a blob uploaded first when
        large: call it off the event loop when :meth:`needs_io` says so)."""
        return self._kept(key, data, ctx)

    def error_outcome(self, key: str, exc: BaseException, ctx: Context | None) -> Outcome:
        return self._failure(key, exc, ctx)

    def load(self, record: Record) -> tuple[bool, Any]:
        """A kept result: (True, value), or (False, None) when it must be computed again."""
        return self._load(record)

    def inline_decoder(self) -> tuple[str, Callable[[bytes], Any]]:
        """(codec name, decode): what :meth:`load` does with a result kept inline in this
        step's codec, for readers of many results at once (``run.results()``); anything
        else (a blob, another codec, bytes that do not decode) goes through ``load``."""
        return self.codec.name, self.codec.decode


def _mark_recorded(exc: _E, key: str) -> _E:
    try:
        setattr(exc, _RECORDED, key)
    except Exception:  # an exception type that refuses attributes: it just raises
        pass
    return exc


def is_recorded_failure(exc: BaseException, key: str) -> bool:
    """True when ``exc`` is the failure recorded for task ``key`` (the function's own error,
    or the storing error written as its failure), not an error of hokuro's own I/O."""
    return getattr(exc, _RECORDED, None) == key
