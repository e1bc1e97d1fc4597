"""``@spot.mark``: a marked function and the one call path that serves sync and async code.

The call path is written once, as a generator (:meth:`MarkedFunction._flow`) that does all
the bookkeeping and *yields* the few things that differ between sync and async callers:
run the user's function, sleep, or wait for another caller's flight. Two small drivers
(:mod:`hokuro.engine.drivers`) answer those requests; the mark's options are checked in
:mod:`hokuro.engine.options`.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import (
    ConfigurationError,
    NotPicklable,
    TaskFailed,
)
from ..model.codec import codec_for
from ..model.keys import ident_key, stable_name, task_key, task_keyer
from ..model.records import (
    Claim,
    Record,
    Status,
    error_message,
)
from .context import Context
from .drivers import (
    _TAKE,
    _Await,
    _drive_async,
    _drive_sync,
    _Flow,
    _Invoke,
    _Io,
    _is_cancelling,
    _LimitedCall,
    _Sleep,
)
from .io_thread import CLAIM, IN_ORDER, LOOKUP
from .keeping import Keeping, _mark_recorded
from .keygen import KeyPolicy
from .options import MarkOptions, TaskEvent
from .owners import owner_is_dead

if TYPE_CHECKING:
    from ..model.steps import Pipe
    from .spot import Spot

log = logging.getLogger("hokuro")

# Qualified names of __main__ functions already warned about: one warning per function.
_WARNED_MAIN: set[str] = set()

def _is_ctx_param(param: inspect.Parameter) -> bool:
    from .context import Context

    annotation = param.annotation
    if annotation is Context or annotation in ("Context", "hokuro.Context"):
        return True
    return param.name == "ctx" and annotation is inspect.Parameter.empty


class MarkedFunction(Keeping):
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
        if options.name is None and getattr(fn, "__module__", None) == "__main__":
            _warn_main(fn, self.name)
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
            import asyncio.coroutines

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

    def keyer(self) -> Callable[[tuple[Any, ...]], str]:
        """``keyer(args)`` == ``key_of(*args)``: for keying many calls in a row (a run's
        inputs), with what is the same for every call worked out once when the function
        takes its arguments by position (no ctx, ``ignore=`` or key policy)."""
        names = self._simple_names
        if names is None or self._ignored or self.options.key is not None:
            return lambda args: self.key_of(*args)
        fast = task_keyer(self.name, self.options.version, names)
        count = len(names)
        key_of = self.key_of
        return lambda args: fast(args) if len(args) == count else key_of(*args)

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
            try:
                bound, material = self._key_material(args, kwargs)
                key = task_key(self.name, self.options.version, material)
            except Exception as exc:
                if self.is_async:
                    # Raised when awaited, as the function itself would: gather(...,
                    # return_exceptions=True) gets it, and no coroutine is left unawaited.
                    return _raise_on_await(exc)
                raise
        assert bound is not None
        checked, damaged = False, None
        if not recompute and not self.is_async:
            # The common case, a kept result, answered without building the call path.
            found, value = self._reuse(key, args, kwargs)
            if found:
                return value
            checked, damaged = True, value
        flow = self._flow(key, ident, bound, args, kwargs, recompute=recompute, checked=checked,
                          damaged=damaged)
        if self.is_async:
            return _drive_async(flow, self._caller(args, kwargs), self.options.timeout,
                                self.name, self.spot.io_thread)
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
        the mark caches errors; (False, None) when the task must be claimed, or (False,
        record) when it must because that record's result cannot be read (already warned
        about)."""
        # (the judging flow asks only for I/O, which the sync driver answers at once)
        return _drive_sync(self._judge(self.spot.ledger.lookup(key), args, kwargs), None)

    def _judge(self, record: Record | None, args: tuple[Any, ...], kwargs: dict[str, Any]
               ) -> _Flow:
        """:meth:`_reuse` for the ``record`` found (a flow: reading a blob is a request)."""
        if record is None:
            return False, None
        spot = self.spot
        now = spot.clock()
        if record.is_fresh_result(now):
            found, value = yield from self._answer(record, args, kwargs)
            return (True, value) if found else (False, record)
        if (self.options.cache_errors and record.status == Status.FAILED
                and not record.is_expired(now)):
            spot.counters["hits"] += 1
            raise _task_failed(record)
        return False, None

    def _answer(self, record: Record, args: tuple[Any, ...], kwargs: dict[str, Any]
                ) -> _Flow:
        """Answer a call from a kept result: (True, value), or (False, None) when its blob
        is gone or damaged and the task must run again."""
        if record.blob is not None:
            found, value = yield _Io(self._load, record)
        else:
            found, value = self._load(record)
        if found:
            self.spot.counters["hits"] += 1
            if self.options.hooks:
                self._hook("on_hit", record.key, args, kwargs, value=value)
        return found, value

    def _flow(self, key: str, ident: str | None, bound: dict[str, Any],
              args: tuple[Any, ...], kwargs: dict[str, Any], *, recompute: bool,
              checked: bool = False, damaged: Record | None = None) -> _Flow:
        spot = self.spot
        if not recompute and not checked:
            record = yield _Io(spot.ledger.lookup, key, LOOKUP)
            found, value = yield from self._judge(record, args, kwargs)
            if found:
                return value
            damaged = value
        while True:
            flight, leader = spot.flights.join(key)
            if leader:
                break
            yield _Await(flight)
            if not _is_cancelling(flight.error):
                spot.counters["shared"] += 1
                return flight.outcome()
            # The leader was cancelled, not failed: this caller still wants the result.
        try:
            value = yield from self._lead(key, ident, bound, args, kwargs, recompute, damaged)
        except BaseException as exc:
            flight.fail(exc)
            raise
        else:
            flight.succeed(value)
            return value
        finally:
            spot.flights.leave(key, flight)

    def _lead(self, key: str, ident: str | None, bound: dict[str, Any],
              args: tuple[Any, ...], kwargs: dict[str, Any], recompute: bool,
              damaged: Record | None = None) -> _Flow:
        """Claim the task across processes, wait for another owner, or execute it.

        ``damaged``: a kept result of this task already found unreadable (and warned about)
        by this call; meeting it again in the claim does not read it twice.
        """
        spot = self.spot
        ledger = spot.ledger
        # A blob store that cannot take the result (an S3 bucket that does not exist) is
        # found now, before the function runs, not after its result is lost.
        if not spot.prepared:
            yield _Io(_prepare, spot, IN_ORDER)
            spot.prepared = True
        encoded_args = self._encode_args(bound)
        force, steal = recompute, None
        waited_since: float | None = None
        delay = spot.poll_min
        if self._guarded is not None:
            yield _TAKE  # the limiter's turn first: waiting for it is not running
        while True:
            now = spot.clock()
            claimed = yield _Io(ledger.claim, Claim(
                key=key, fn=self.name, owner=spot.owner_token(), lease_until=now + spot.lease,
                now=now, fn_path=self.fn_path, ident=ident, args=encoded_args,
                version=self.options.version, force=force,
                reuse_failed=self.options.cache_errors, steal_from=steal,
            ), CLAIM)
            record = claimed.record
            if claimed.outcome == "claimed":
                break
            if claimed.outcome == "hit":
                assert record is not None
                if record.status == Status.FAILED:
                    raise _task_failed(record)
                if damaged is None or not _same_result(record, damaged):
                    found, value = yield from self._answer(record, args, kwargs)
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
            latest = yield _Io(ledger.get, key, LOOKUP)
            if (latest is not None and latest.status == Status.FAILED
                    and (latest.finished_at or 0) >= waited_since):
                raise _task_failed(latest)
        if self._guarded is not None and waited_since is not None:
            # The place taken before another owner's run was waited out is long past: take
            # a fresh one (this wait, after the claim, counts as running).
            yield _TAKE

        def reclaim() -> Claim:
            # A retry claims the task again from itself: the lease never lapses between
            # attempts (another owner waits instead of running it too), and the record
            # counts the attempt.
            now = spot.clock()
            owner = spot.owner_token()
            return Claim(
                key=key, fn=self.name, owner=owner, lease_until=now + spot.lease, now=now,
                fn_path=self.fn_path, ident=ident, args=encoded_args,
                version=self.options.version, steal_from=owner,
            )

        return (yield from self._execute(key, ident, claimed.attempt, record, args, kwargs,
                                         reclaim))

    def _execute(self, key: str, ident: str | None, attempt: int, previous: Record | None,
                 args: tuple[Any, ...], kwargs: dict[str, Any],
                 reclaim: Callable[[], Claim]) -> _Flow:
        spot = self.spot
        owner = spot.owner_token()
        spot.counters["misses"] += 1
        # The lease is renewed from the claim until the outcome is committed (invariant 3):
        # a slow upload or a ledger write in its retry backoff must not let another owner
        # take the task and run it again.
        spot.leases.hold(key)
        try:
            self._hook("on_miss", key, args, kwargs)
            tries = 0
            while True:
                tries += 1
                ctx = Context(key=key, fn=self.name, ident=ident, attempt=attempt,
                              log_limit=spot.log_limit,
                              dir_factory=functools.partial(spot.task_dir, key))
                started = time.perf_counter()
                try:
                    self._hook("pre_execute", key, args, kwargs)
                    ok, payload = yield _Invoke(ctx)
                except BaseException as exc:  # thrown in while waiting to run (cancellation)
                    ok, payload = False, exc
                duration = time.perf_counter() - started
                if ok:
                    yield from self._store(key, owner, payload, ctx, previous)
                    return payload
                policy = self.options.retry_policy if self.options.retries else None
                if policy is not None and policy.should_retry(payload, tries):
                    next_attempt = yield from self._back_off(
                        key, owner, payload, ctx, policy.delay(tries, payload), reclaim)
                    if next_attempt is not None:
                        attempt = next_attempt
                        continue
                    raise payload  # another owner has the task now; its record is theirs
                if (yield from self._record_failure(key, owner, payload, ctx)):
                    _mark_recorded(payload, key)
                self._hook("on_error", key, args, kwargs, error=payload, duration=duration)
                raise payload
        finally:
            spot.leases.release(key)

    def _back_off(self, key: str, owner: str, error: BaseException, ctx: Context,
                  delay: float, reclaim: Callable[[], Claim]) -> _Flow:
        """Wait ``delay`` before retrying, still holding the lease, then claim the task again:
        the new attempt number, or None when another owner took the task meanwhile."""
        log.info("hokuro: %s (task %s) failed with %s; retrying in %.3g s", self.name,
                 key[:12], type(error).__name__, delay)
        try:
            yield _Sleep(delay)
            if self._guarded is not None:
                yield _TAKE  # each attempt spends its own place of the limiter under the mark
        except BaseException:
            # Stopped while waiting to retry: the failed attempt is the task's end.
            if (yield from self._record_failure(key, owner, error, ctx)):
                _mark_recorded(error, key)
            raise
        claimed = yield _Io(self.spot.ledger.claim, reclaim(), CLAIM)
        if claimed.outcome == "claimed":
            return claimed.attempt
        log.warning("hokuro: task %s was taken over by another owner while %s waited to "
                    "retry it; this call ends with its last error", key[:12], self.name)
        return None

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

    # -- pipes: a | b | c -------------------------------------------------------------------
    def __or__(self, other: Any) -> Pipe:
        from ..model.steps import Pipe

        return Pipe((self,)) | other

    def __ror__(self, other: Any) -> Pipe:
        from ..model.steps import Pipe

        return Pipe((self,)).__ror__(other)  # `f | step` with f not marked: says to mark f

    def __hokuro_key__(self) -> tuple[str, str | None]:
        """A marked function passed as an argument is keyed by its name and version."""
        return (self.name, self.options.version)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return functools.partial(self.__call__, instance)

    def __repr__(self) -> str:
        return f"<marked function {self.name} of Spot {self.spot.name!r}>"

    # -- pickling: by reference, as a plain function ----------------------------------------
    def __reduce__(self) -> tuple[Any, ...]:
        """A process pool sends a marked function by name: the worker imports its module and
        finds it there, with its Spot, so its records land where this process's do."""
        module = getattr(self.fn, "__module__", None)
        qualname = getattr(self.fn, "__qualname__", "")
        try:
            found = _find_marked(module, qualname) if module else None
        except NotPicklable:
            found = None
        if found is not self:
            raise NotPicklable(
                f"marked function {self.name} cannot be sent to another process: it is "
                f"not reachable as {module}.{qualname}. Define it with @spot.mark at "
                "module level of an importable module (not inside a function, not as a "
                "lambda, not marked a second time under another name)."
            )
        return _find_marked, (module, qualname)

    def __copy__(self) -> MarkedFunction:
        return self  # as copy treats a plain function: the same function

    def __deepcopy__(self, memo: dict[int, Any]) -> MarkedFunction:
        return self


def _find_marked(module: str, qualname: str) -> MarkedFunction:
    """The marked function named ``qualname`` in ``module`` (importing it)."""
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise NotPicklable(
            f"no marked function {module}.{qualname} in this process ({exc}). Define it at "
            "module level of a module this process can import; a script's own functions "
            "are found only when the script is importable (run as a file, not typed in)."
        ) from None
    if not isinstance(found, MarkedFunction):
        raise NotPicklable(f"{module}.{qualname} is {found!r}, not a marked function: "
                           "define the marked function at module level under its own name")
    return found


def _prepare(spot: Spot) -> None:
    spot.prepare_to_run()


def _same_result(a: Record, b: Record) -> bool:
    """True when two reads of a task hold the same kept result (a blob reference carries a
    nonce, so a result written again never looks the same)."""
    return (a.blob == b.blob and a.checksum == b.checksum and a.codec == b.codec
            and a.result == b.result)


def _task_failed(record: Record) -> TaskFailed:
    return _mark_recorded(TaskFailed(record.key, record.error_type,
                                     error_message(record.error_type, record.error),
                                     record.error), record.key)


async def _raise_on_await(exc: BaseException) -> Any:
    raise exc


def _warn_main(fn: Callable[..., Any], name: str) -> None:
    qualname = getattr(fn, "__qualname__", name)
    if qualname in _WARNED_MAIN:
        return
    _WARNED_MAIN.add(qualname)
    warnings.warn(
        f"hokuro: {qualname} is defined in __main__ (a script run directly), so its tasks "
        f"are named {name!r}: `hokuro retry` cannot import it to replay them, and moving it "
        f"into a module would change every key. Give it a stable name, "
        f"@spot.mark(name={qualname!r}), or define it in a module you import.",
        RuntimeWarning, stacklevel=4)

