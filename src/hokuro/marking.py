"""``@spot.mark``: a marked function and the one call path that serves sync and async code.

The call path is written once, as a generator (:meth:`MarkedFunction._flow`) that does all
the bookkeeping and *yields* the few things that differ between sync and async callers:
run the user's function, sleep, or wait for another caller's flight. Two small drivers
(:func:`_drive_sync`, :func:`_drive_async`) answer those requests.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import time
import traceback
import warnings
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .blobs.names import log_ref, result_ref
from .codec import codec_for
from .context import Context
from .durations import parse_duration
from .errors import (
    BlobError,
    ConfigurationError,
    SerializationError,
    TaskFailed,
)
from .keygen import KeyPolicy
from .keys import ident_key, stable_name, task_key
from .owners import owner_is_dead
from .records import (
    Claim,
    Outcome,
    Record,
    Status,
    blob_checksum,
    error_fingerprint,
    error_message,
)

if TYPE_CHECKING:
    from .spot import Spot

log = logging.getLogger("hokuro")

HOOKS = ("pre_execute", "on_hit", "on_miss", "on_error")
#: Every option ``@spot.mark`` accepts; anything else is a TypeError.
MARK_OPTIONS = frozenset({
    "version", "name", "key", "input_key_fn", "ignore", "save_blob", "blob_threshold",
    "retention", "content_type", "codec", "cache_errors", *HOOKS,
})
_CANCELLING = (KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError)
_INLINE_LOG = 64 * 1024


@dataclass(frozen=True, slots=True)
class MarkOptions:
    """The options of one mark, checked once at decoration time."""

    name: str | None = None
    version: str | None = None
    key: Callable[..., Any] | KeyPolicy | None = None
    ignore: tuple[str, ...] = ()
    save_blob: bool | None = None
    blob_threshold: int | None = None
    retention: float | None = None
    content_type: str | None = None
    codec: str = "msgpack"
    cache_errors: bool = False
    hooks: dict[str, Callable[[TaskEvent], Any]] = field(default_factory=dict)

    @classmethod
    def parse(cls, options: dict[str, Any]) -> MarkOptions:
        unknown = set(options) - MARK_OPTIONS
        if unknown:
            raise TypeError(
                f"unknown mark option(s) {', '.join(sorted(unknown))}; "
                f"valid options are {', '.join(sorted(MARK_OPTIONS))}"
            )
        opts = dict(options)
        if "input_key_fn" in opts:
            if opts.get("key") is not None:
                raise TypeError("give key= or input_key_fn= (its alias), not both")
            opts["key"] = opts.pop("input_key_fn")
        key = opts.get("key")
        if key is not None and not callable(key) and not isinstance(key, KeyPolicy):
            raise TypeError("key= takes a callable or a KeyGen policy (KeyGen.ignore(...), ...)")
        ignore = opts.get("ignore") or ()
        if isinstance(ignore, str):
            ignore = (ignore,)
        threshold = opts.get("blob_threshold")
        if threshold is not None and (not isinstance(threshold, int) or threshold < 0):
            raise ConfigurationError("blob_threshold must be a whole number of bytes >= 0")
        version = opts.get("version")
        hooks = {name: opts[name] for name in HOOKS if opts.get(name) is not None}
        for name, hook in hooks.items():
            if not callable(hook):
                raise TypeError(f"{name}= must be callable")
        codec = opts.get("codec", "msgpack")
        if codec not in ("msgpack", "pickle"):
            raise ConfigurationError(f"codec must be 'msgpack' or 'pickle', not {codec!r}")
        return cls(
            name=opts.get("name"),
            version=None if version is None else str(version),
            key=key,
            ignore=tuple(ignore),
            save_blob=opts.get("save_blob"),
            blob_threshold=threshold,
            retention=parse_duration(opts.get("retention"), what="retention"),
            content_type=opts.get("content_type"),
            codec=codec,
            cache_errors=bool(opts.get("cache_errors", False)),
            hooks=hooks,
        )


@dataclass(slots=True)
class TaskEvent:
    """What a hook receives: the task, its call, and (when known) its value or error."""

    hook: str
    fn: str
    key: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    value: Any = None
    error: BaseException | None = None
    duration: float | None = None


# -- what the call path asks of its driver --------------------------------------------------
class _Invoke:
    __slots__ = ("ctx",)

    def __init__(self, ctx: Context | None) -> None:
        self.ctx = ctx


class _Sleep:
    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class _Await:
    __slots__ = ("flight",)

    def __init__(self, flight: Any) -> None:
        self.flight = flight


class _Take:
    """Wait for the limiter under the mark (see :class:`_LimitedCall`)."""

    __slots__ = ()


_TAKE = _Take()


_Flow = Generator[Any, Any, Any]


def _drive_sync(flow: _Flow, call: Callable[[Context | None], Any]) -> Any:
    try:
        request = next(flow)
        while True:
            if type(request) is _Invoke:
                try:
                    value = call(request.ctx)
                except BaseException as exc:
                    request = flow.send((False, exc))
                else:
                    request = flow.send((True, value))
                continue
            try:
                if type(request) is _Sleep:
                    time.sleep(request.seconds)
                elif request is _TAKE:
                    call.take()  # type: ignore[attr-defined]
                else:
                    request.flight.wait()
            except BaseException as exc:
                request = flow.throw(exc)
            else:
                request = next(flow)
    except StopIteration as stop:
        return stop.value


async def _drive_async(flow: _Flow, call: Callable[[Context | None], Any]) -> Any:
    try:
        request = next(flow)
        while True:
            if type(request) is _Invoke:
                try:
                    value = await call(request.ctx)
                except BaseException as exc:
                    request = flow.send((False, exc))
                else:
                    request = flow.send((True, value))
                continue
            try:
                if type(request) is _Sleep:
                    await asyncio.sleep(request.seconds)
                elif request is _TAKE:
                    await call.take_async()  # type: ignore[attr-defined]
                else:
                    await request.flight.wait_async()
            except BaseException as exc:
                request = flow.throw(exc)
            else:
                request = next(flow)
    except StopIteration as stop:
        return stop.value


class _LimitedCall:
    """The call of a function guarded by a hokuro limiter right under the mark
    (``@spot.mark`` over ``@lim``).

    The call path takes the limiter's place (:meth:`take`) after the kept-result check and
    the flight, and before it claims the task; then the function runs past its guard on that
    place. So a call waiting for the limiter is not ``running``, its timings start when the
    function does, a crash while it waits leaves no record, and kept results never reach the
    limiter. The price: a call that finds, once its turn came, that another process holds or
    has finished the same task has spent a place for nothing.
    """

    __slots__ = ("args", "ctx_name", "guarded", "increments", "kwargs")

    def __init__(self, guarded: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                 ctx_name: str | None) -> None:
        self.guarded, self.args, self.kwargs, self.ctx_name = guarded, args, kwargs, ctx_name
        self.increments: tuple[float, ...] = ()

    def _with_ctx(self, ctx: Context | None) -> dict[str, Any]:
        if self.ctx_name is not None and self.ctx_name not in self.kwargs:
            return {**self.kwargs, self.ctx_name: ctx}
        return self.kwargs

    # A cost function sees the call's arguments as the guard would show them; the task's
    # context does not exist before the claim, so it sees ``ctx=None``.
    def take(self) -> None:
        self.increments = self.guarded.take(self.args, self._with_ctx(None))

    async def take_async(self) -> None:
        self.increments = await self.guarded.take_async(self.args, self._with_ctx(None))

    def __call__(self, ctx: Context | None) -> Any:
        return self.guarded.call(self.increments, self.args, self._with_ctx(ctx))


def _is_ctx_param(param: inspect.Parameter) -> bool:
    from .context import Context

    annotation = param.annotation
    if annotation is Context or annotation in ("Context", "hokuro.Context"):
        return True
    return param.name == "ctx" and annotation is inspect.Parameter.empty


class MarkedFunction:
    """A function whose every distinct call is a task with a record.

    Call it like the original. Extra methods: :meth:`forget`, :meth:`recompute`,
    :meth:`task` (the record view), :meth:`key_of`.
    """

    def __init__(self, spot: Spot, fn: Callable[..., Any], options: MarkOptions,
                 *, resource: bool = False) -> None:
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(
                f"{getattr(fn, '__qualname__', fn)} is a generator function; a task needs one "
                "result to keep. Return a list (or collect the generator) instead."
            )
        if not callable(fn):
            raise TypeError(f"@spot.mark needs a function, not {type(fn).__name__}")
        functools.update_wrapper(self, fn)
        self.spot = spot
        self.fn = fn
        self.options = options
        self.resource = resource
        self.is_async = inspect.iscoroutinefunction(fn)
        self.name = options.name or stable_name(fn)
        self.fn_path = f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', '?')}"
        self.codec = codec_for(options.codec, spot.codec)
        self.signature = inspect.signature(fn)
        params = list(self.signature.parameters.values())
        self._ctx_name = next((p.name for p in params if _is_ctx_param(p)), None)
        guarded = getattr(fn, "__hokuro_guard__", None)
        # Only a guard right under the mark: one whose attribute another decorator copied
        # must still be called through that decorator.
        self._guarded = guarded if guarded is not None and guarded.wrapper is fn else None
        names = [p.name for p in params if p.name != self._ctx_name]
        unknown = [n for n in options.ignore if n not in names]
        if unknown:
            raise ConfigurationError(
                f"ignore= names {unknown} but {self.name} has parameters {names}"
            )
        if isinstance(options.key, KeyPolicy):
            options.key.check(names)
        self._ignored = frozenset(options.ignore) | (
            {self._ctx_name} if self._ctx_name else set())
        # Fast binding: positional-or-keyword parameters only, no ctx / *args / **kwargs.
        simple = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params) and not self._ctx_name
        self._simple_names: tuple[str, ...] | None = tuple(names) if simple else None
        self._defaults = {p.name: p.default for p in params if p.default is not p.empty}
        if self.is_async:
            # Callers (frameworks, asyncio.iscoroutinefunction, inspect on 3.12+) must still
            # see a coroutine function, though the marked function is an object.
            if hasattr(inspect, "markcoroutinefunction"):
                inspect.markcoroutinefunction(self)
            self._is_coroutine = asyncio.coroutines._is_coroutine

    # -- keys -----------------------------------------------------------------------------
    def _bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        names = self._simple_names
        if names is not None and len(args) <= len(names):
            bound = dict(zip(names, args, strict=False))
            if kwargs or len(args) < len(names):
                for name, value in kwargs.items():
                    if name not in names or name in bound:
                        return self._bind_slow(args, kwargs)
                    bound[name] = value
                for name in names[len(args):]:
                    if name not in bound:
                        if name not in self._defaults:
                            return self._bind_slow(args, kwargs)
                        bound[name] = self._defaults[name]
                # keep parameter order, whatever order keywords came in
                bound = {name: bound[name] for name in names}
            return bound
        return self._bind_slow(args, kwargs)

    def _bind_slow(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if self._ctx_name and self._ctx_name not in kwargs:
            kwargs = {**kwargs, self._ctx_name: None}
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return {k: v for k, v in bound.arguments.items() if k != self._ctx_name}

    def _key_material(self, args: tuple[Any, ...], kwargs: dict[str, Any]
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(bound arguments as called, what goes into the key)."""
        bound = self._bind(args, kwargs)
        material = bound
        if self._ignored:
            material = {k: v for k, v in bound.items() if k not in self._ignored}
        key = self.options.key
        if key is None:
            return bound, material
        if isinstance(key, KeyPolicy):
            return bound, key.apply(material)
        call_kwargs = {k: v for k, v in kwargs.items() if k != self._ctx_name}
        return bound, {"__key__": key(*args, **call_kwargs)}

    def key_of(self, *args: Any, **kwargs: Any) -> str:
        """The task key of this call (no execution, no I/O)."""
        _, material = self._key_material(args, kwargs)
        return task_key(self.name, self.options.version, material)

    # -- calling --------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._start(args, kwargs, recompute=False)

    def recompute(self, *args: Any, **kwargs: Any) -> Any:
        """Run this call again even if a result is kept, and keep the new result."""
        return self._start(args, kwargs, recompute=True)

    def _start(self, args: tuple[Any, ...], kwargs: dict[str, Any], *, recompute: bool,
               ident: str | None = None, key: str | None = None,
               bound: dict[str, Any] | None = None) -> Any:
        if key is None:
            bound, material = self._key_material(args, kwargs)
            key = task_key(self.name, self.options.version, material)
        assert bound is not None
        checked = False
        if not recompute and not self.is_async:
            # The common case, a kept result, answered without building the call path.
            found, value = self._reuse(key, args, kwargs)
            if found:
                return value
            checked = True
        flow = self._flow(key, ident, bound, args, kwargs, recompute=recompute, checked=checked)
        if self.is_async:
            return _drive_async(flow, self._caller(args, kwargs))
        return _drive_sync(flow, self._caller(args, kwargs))

    def forget(self, *args: Any, **kwargs: Any) -> bool:
        """Remove the record (and blobs) of this call; True if there was one."""
        return self.spot.forget_key(self.key_of(*args, **kwargs))

    def task(self, *args: Any, **kwargs: Any):
        """The record view (:class:`hokuro.Task`) of this call, without running it."""
        return self.spot.task_view(self.key_of(*args, **kwargs), self)

    def _caller(self, args: tuple[Any, ...], kwargs: dict[str, Any]
                ) -> Callable[[Context | None], Any]:
        fn, ctx_name = self.fn, self._ctx_name
        if self._guarded is not None:
            return _LimitedCall(self._guarded, args, kwargs, ctx_name)

        def call(ctx: Context | None) -> Any:
            if ctx_name is not None and ctx_name not in kwargs:
                return fn(*args, **kwargs, **{ctx_name: ctx})
            return fn(*args, **kwargs)

        return call

    def run_ident(self, ident: str, args: Any, key: str, recompute: bool) -> Any:
        """Run a resource (collection computed by ident) the hadrosaur way."""
        return self._start((ident, args), {}, recompute=recompute, ident=ident, key=key,
                           bound={"ident": ident, "args": args})

    def ident_key(self, ident: str, args: Any, *, args_in_key: bool) -> str:
        return ident_key(self.name, self.options.version, ident,
                         args if args_in_key else None)

    # -- the call path, written once ------------------------------------------------------
    def _reuse(self, key: str, args: tuple[Any, ...], kwargs: dict[str, Any]
               ) -> tuple[bool, Any]:
        """(True, value) when a kept result answers this call; raises a kept failure when
        the mark caches errors; (False, None) when the task must be claimed."""
        spot = self.spot
        record = spot.ledger.lookup(key)
        if record is None:
            return False, None
        now = spot.clock()
        if record.is_fresh_result(now):
            return self._answer(record, args, kwargs)
        if (self.options.cache_errors and record.status == Status.FAILED
                and not record.is_expired(now)):
            spot.counters["hits"] += 1
            raise _task_failed(record)
        return False, None

    def _answer(self, record: Record, args: tuple[Any, ...], kwargs: dict[str, Any]
                ) -> tuple[bool, Any]:
        """Answer a call from a kept result: (True, value), or (False, None) when its blob
        is gone or damaged and the task must run again."""
        found, value = self._load(record)
        if found:
            self.spot.counters["hits"] += 1
            if self.options.hooks:
                self._hook("on_hit", record.key, args, kwargs, value=value)
        return found, value

    def _flow(self, key: str, ident: str | None, bound: dict[str, Any],
              args: tuple[Any, ...], kwargs: dict[str, Any], *, recompute: bool,
              checked: bool = False) -> _Flow:
        spot = self.spot
        if not recompute and not checked:
            found, value = self._reuse(key, args, kwargs)
            if found:
                return value
        while True:
            flight, leader = spot.flights.join(key)
            if leader:
                break
            yield _Await(flight)
            if not isinstance(flight.error, _CANCELLING):
                return flight.outcome()
            # The leader was cancelled, not failed: this caller still wants the result.
        try:
            value = yield from self._lead(key, ident, bound, args, kwargs, recompute)
        except BaseException as exc:
            flight.fail(exc)
            raise
        else:
            flight.succeed(value)
            return value
        finally:
            spot.flights.leave(key, flight)

    def _lead(self, key: str, ident: str | None, bound: dict[str, Any],
              args: tuple[Any, ...], kwargs: dict[str, Any], recompute: bool) -> _Flow:
        """Claim the task across processes, wait for another owner, or execute it."""
        spot = self.spot
        ledger = spot.ledger
        encoded_args = self._encode_args(bound)
        force, steal = recompute, None
        waited_since: float | None = None
        delay = spot.poll_min
        if self._guarded is not None:
            yield _TAKE  # the limiter's turn first: waiting for it is not running
        while True:
            now = spot.clock()
            claimed = ledger.claim(Claim(
                key=key, fn=self.name, owner=spot.owner_token(), lease_until=now + spot.lease,
                now=now, fn_path=self.fn_path, ident=ident, args=encoded_args,
                version=self.options.version, force=force,
                reuse_failed=self.options.cache_errors, steal_from=steal,
            ))
            record = claimed.record
            if claimed.outcome == "claimed":
                break
            if claimed.outcome == "hit":
                assert record is not None
                if record.status == Status.FAILED:
                    raise _task_failed(record)
                found, value = self._answer(record, args, kwargs)
                if found:
                    return value
                force = True  # its blob is gone or damaged: compute it again
                continue
            # busy: another owner holds a live lease
            assert record is not None
            if owner_is_dead(record.owner):
                steal = record.owner
                continue
            if waited_since is None:
                waited_since = record.started_at or now
            force = False  # a run that another caller started meanwhile is fresh enough
            yield _Sleep(delay)
            delay = min(delay * 2, spot.poll_max)
            latest = ledger.get(key)
            if (latest is not None and latest.status == Status.FAILED
                    and (latest.finished_at or 0) >= waited_since):
                raise _task_failed(latest)
        if self._guarded is not None and waited_since is not None:
            # The place taken before another owner's run was waited out is long past: take
            # a fresh one (this wait, after the claim, counts as running).
            yield _TAKE
        return (yield from self._execute(key, ident, claimed.attempt, record, args, kwargs))

    def _execute(self, key: str, ident: str | None, attempt: int, previous: Record | None,
                 args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Flow:
        spot = self.spot
        owner = spot.owner_token()
        spot.counters["misses"] += 1
        ctx = Context(key=key, fn=self.name, ident=ident, attempt=attempt,
                      log_limit=spot.log_limit, dir_factory=functools.partial(spot.task_dir, key))
        spot.leases.hold(key)
        started = time.perf_counter()
        try:
            self._hook("on_miss", key, args, kwargs)
            self._hook("pre_execute", key, args, kwargs)
            ok, payload = yield _Invoke(ctx)
        except BaseException as exc:  # thrown in while waiting to run (cancellation)
            ok, payload = False, exc
        finally:
            spot.leases.release(key)
        duration = time.perf_counter() - started
        if ok:
            try:
                outcome = self._success(key, payload, ctx)
            except (SerializationError, BlobError) as exc:
                self._record_failure(key, owner, exc, ctx)
                raise
            if not spot.ledger.finish(key, owner, outcome):
                log.warning("hokuro: task %s finished after its lease was taken over; "
                            "its result was not recorded", key[:12])
                self._drop_blobs(outcome)
            elif previous is not None:
                self._drop_replaced(previous, outcome)
            return payload
        self._record_failure(key, owner, payload, ctx)
        self._hook("on_error", key, args, kwargs, error=payload, duration=duration)
        raise payload

    # -- storing and loading --------------------------------------------------------------
    def _encode_args(self, bound: dict[str, Any]) -> bytes | None:
        """The call's arguments, kept so ``hokuro retry`` can replay the call."""
        try:
            return self.codec.encode(bound, root="args")
        except Exception:
            return None  # an argument the codec cannot encode: the task cannot be replayed

    def _success(self, key: str, value: Any, ctx: Context) -> Outcome:
        spot = self.spot
        data = self.codec.encode(value, root="result")
        now = spot.clock()
        outcome = Outcome(
            status=Status.DONE, finished_at=now, codec=self.codec.name,
            content_type=self.options.content_type, size=len(data),
            expires_at=None if self.options.retention is None else now + self.options.retention,
        )
        threshold = self.options.blob_threshold
        if threshold is None:
            threshold = spot.blob_threshold
        if self.options.save_blob or (self.options.save_blob is None and len(data) > threshold):
            outcome.checksum = blob_checksum(data)
            # Blob first, record after (invariant 1): readers never see a half result.
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

    def _record_failure(self, key: str, owner: str, exc: BaseException,
                        ctx: Context) -> None:
        cancelled = isinstance(exc, _CANCELLING)
        error_type = type(exc).__qualname__
        frames = [(os.path.basename(f.filename), f.name)
                  for f in traceback.extract_tb(exc.__traceback__)]
        outcome = Outcome(
            status=Status.CANCELLED if cancelled else Status.FAILED,
            finished_at=self.spot.clock(), error_type=error_type,
            codec=self.codec.name,  # how the record's args were encoded, for replay
            error="".join(traceback.format_exception(exc)),
            error_fingerprint=error_fingerprint(error_type, frames),
            expires_at=(None if self.options.retention is None
                        else self.spot.clock() + self.options.retention),
        )
        self._attach_log(key, outcome, ctx)
        try:
            self.spot.ledger.finish(key, owner, outcome)
        except Exception as write_error:  # the original error matters more to the caller
            log.warning("hokuro: could not record the failure of %s: %s", key[:12], write_error)

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

    def _drop_replaced(self, previous: Record, outcome: Outcome) -> None:
        for ref in (previous.blob, previous.log_blob):
            if ref and ref not in (outcome.blob, outcome.log_blob):
                self.spot.blobs.delete(ref)

    def _drop_blobs(self, outcome: Outcome) -> None:
        for ref in (outcome.blob, outcome.log_blob):
            if ref:
                self.spot.blobs.delete(ref)

    # -- hooks ----------------------------------------------------------------------------
    def _hook(self, name: str, key: str, args: tuple[Any, ...], kwargs: dict[str, Any],
              **details: Any) -> None:
        hook = self.options.hooks.get(name)
        if hook is None:
            return
        try:
            hook(TaskEvent(name, self.name, key, args, kwargs, **details))
        except Exception:
            log.exception("hokuro: the %s hook of %s raised; the call goes on", name, self.name)

    def __hokuro_key__(self) -> tuple[str, str | None]:
        """A marked function passed as an argument is keyed by its name and version."""
        return (self.name, self.options.version)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return functools.partial(self.__call__, instance)

    def __repr__(self) -> str:
        return f"<marked function {self.name} of Spot {self.spot.name!r}>"


def _task_failed(record: Record) -> TaskFailed:
    return TaskFailed(record.key, record.error_type,
                      error_message(record.error_type, record.error), record.error)

