"""The limiter: GCRA limits on one name, shared through a store, for sync and async code.

A call asks the store once; granted, it goes, or sleeps until its booked place. A place is
booked only when it lies within a short horizon (:func:`~hokuro.limits.gcra.booking_horizon`):
a call whose place is further ahead queues in this process's :class:`~hokuro.limits.line.Line`
and asks again when its turn is near (the store's refusal gave it a place in a waiting line
shared by every process). So nothing a process books outlives it by more than a horizon: a
killed batch leaves no line of dead bookings for the next run to wait out.

All policy (asking, queueing, following holds while asleep, giving a place back when the
waiting is abandoned, holding and retrying after :class:`~hokuro.errors.RetryAfter`) is
written once, as generators that yield what to sleep, whose turn to wait for and when to
call; :meth:`Limiter._run` and :meth:`Limiter._run_async` are the only places that know how
to sleep, wait and call. Store operations are synchronous even from asyncio code: each is one
short local step or one round trip, cheaper than handing it to a thread.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ...errors import ConfigurationError, RateLimitError, RetryAfter
from .base import LimitStore, Verdict
from .gcra import CALL_LABELS, Rate, booking_horizon, decide_all, parse_rate
from .guard import Cost, CostSpec, Guard
from .line import Line, Turn
from .memory import MemoryStore

Steps = Generator[Any, Any, Any]

_CALL = object()  # what an engine yields to have its driver run the guarded function


class Limiter:
    """Rate limits shared under ``name`` by every caller of the same store.

    ``limits`` is one text or a list: ``"60/min"``, ``["500/min", "90000/min tokens"]``.
    ``burst`` (default: each limit's count) is how much a rested limiter grants at once: a
    number for one limit, or a list with one entry (or ``None``) per limit.

    Cost: a number is charged to every limit when all of them count calls (no label, or
    "requests"/"calls"); otherwise limits that count calls are charged 1 per call and the
    labelled ones (tokens) the number. A mapping such as ``{"tokens": 1200}`` charges by
    label; call-counting limits it does not name are charged 1, other limits 0.

    Use: ``lim.acquire(cost)``, ``await lim.acquire_async(cost)``, ``lim.try_acquire(cost)``,
    ``with lim:`` / ``async with lim:`` (cost 1), ``with lim(cost=3):``, and as a decorator of
    sync or async functions, ``@lim`` or ``@lim(cost=lambda prompt: {"tokens": len(prompt)})``.
    A decorated function that raises :class:`~hokuro.errors.RetryAfter` holds back every
    caller of these limits, then is retried up to ``retry_after_attempts`` times.

    With a mark, put the limiter inside (``@spot.mark`` above ``@lim``): the mark answers
    cached calls without reaching the limiter, so only real calls spend the limit, and it
    waits for the limiter before it claims the task, so waiting never counts as running.

    Waiting callers of one process queue in arrival order; only the first asks the store,
    and it books its place only once the place is within a short horizon (one emission
    interval of the slowest limit, at least 10 ms). Processes sharing a store take turns in
    the order their waiters were refused (the store's waiting line, see
    :func:`~hokuro.limits.gcra.decide_all`).

    ``store`` is shared state (see :func:`open_store`); without one, limiters of the same
    name in this process share the process-wide memory store. ``clock``, ``sleep`` and
    ``async_sleep`` let tests drive time (``clock`` gives a private memory store).
    """

    def __init__(self, name: str, limits: str | Rate | Sequence[str | Rate], *,
                 burst: float | Sequence[float | None] | None = None,
                 store: LimitStore | None = None, retry_after_attempts: int = 3,
                 clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], Any] = time.sleep,
                 async_sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError("a limiter needs a name (non-empty text) to be shared by")
        texts = [limits] if isinstance(limits, str | Rate) else list(limits)
        if not texts:
            raise ConfigurationError(f"limiter {name!r} needs at least one limit, e.g. '60/min'")
        rates = [parse_rate(text) for text in texts]
        bursts = _bursts(name, rates, burst)
        # Keys sorted: stores that lock rows lock them in this order, so no two limiters
        # sharing keys can deadlock.
        entries = sorted(zip([f"{name}|{rate.text}" for rate in rates], rates, bursts,
                             strict=True), key=lambda entry: entry[0])
        keys = [key for key, _, _ in entries]
        if len(set(keys)) != len(keys):
            raise ConfigurationError(f"limiter {name!r} lists the same limit twice: {texts}")
        if retry_after_attempts < 0:
            raise ConfigurationError("retry_after_attempts must be 0 or more")
        self.name = name
        self.rates: tuple[Rate, ...] = tuple(rate for _, rate, _ in entries)
        self.bursts: tuple[float, ...] = tuple(b for _, _, b in entries)
        self.retry_after_attempts = retry_after_attempts
        self.store: LimitStore = (store if store is not None
                                  else MemoryStore(clock) if clock is not None
                                  else MemoryStore.shared())
        self._decide = self.store.decide  # bound once: acquire is a hot path
        self._keys = tuple(keys)
        self._tolerances = tuple(burst * rate.emission_interval
                                 for rate, burst in zip(self.rates, self.bursts, strict=True))
        self._all_count_calls = all(rate.counts_calls for rate in self.rates)
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._unit = self._increments(1)  # the common cost, worked out once
        self._horizon = booking_horizon([rate.emission_interval for rate in self.rates])
        self._line = Line()
        self._waiting = self._line.turns  # true while callers of this process wait in line

    def __repr__(self) -> str:
        limits = ", ".join(repr(rate.text) for rate in self.rates)
        return f"<Limiter {self.name!r} [{limits}] bursts={list(self.bursts)} on " \
               f"{self.store.describe()}>"

    # -- the public surface ----------------------------------------------------------------
    def acquire(self, cost: Cost = 1) -> float:
        """Block until ``cost`` is granted; return the seconds waited."""
        if cost == 1:
            increments = self._unit
        else:
            increments = self._increments(cost)
            if not any(increments):
                return 0.0  # free: no store call at all
        if self._waiting:  # others of this process wait already: queue behind them
            return self._run(self._take(increments))
        verdict = self._decide(self._keys, increments, self._tolerances, self._horizon)
        if verdict[1] > 0:  # the wait; indexing is the cheapest read of a named tuple
            return self._run(self._take(increments, verdict))
        return 0.0

    async def acquire_async(self, cost: Cost = 1) -> float:
        """Wait (without blocking the event loop) until ``cost`` is granted; return the
        seconds waited. Cancelling the wait gives the place back."""
        if cost == 1:
            increments = self._unit
        else:
            increments = self._increments(cost)
            if not any(increments):
                return 0.0
        if self._waiting:
            return await self._run_async(self._take(increments))
        verdict = self._decide(self._keys, increments, self._tolerances, self._horizon)
        if verdict[1] > 0:
            return await self._run_async(self._take(increments, verdict))
        return 0.0

    def try_acquire(self, cost: Cost = 1) -> bool:
        """Take ``cost`` if it can go now; never wait and never book a later place."""
        if cost == 1:
            increments = self._unit
        else:
            increments = self._increments(cost)
            if not any(increments):
                return True
        return self._decide(self._keys, increments, self._tolerances, 0.0)[0]

    def hold(self, seconds: float) -> None:
        """Grant nothing under this limiter's limits for ``seconds``, to every caller of the
        store (what a :class:`~hokuro.errors.RetryAfter` does)."""
        self.store.hold(self._keys, self._tolerances, float(seconds))

    def __call__(self, fn: Callable[..., Any] | None = None, /, *,
                 cost: CostSpec = 1) -> Any:
        """``@lim``, ``@lim(cost=...)`` or ``with lim(cost=...):``."""
        guard = Guard(self, cost)
        return guard if fn is None else guard(fn)

    def __enter__(self) -> Limiter:
        self.acquire(1)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._after(exc)

    async def __aenter__(self) -> Limiter:
        await self.acquire_async(1)
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._after(exc)

    # -- cost --------------------------------------------------------------------------------
    def _increments(self, cost: Cost) -> tuple[float, ...]:
        """Each limit's share of ``cost``, in seconds of its schedule."""
        if isinstance(cost, Mapping):
            charges = self._charges_by_label(cost)
        elif isinstance(cost, int | float) and not isinstance(cost, bool):
            charges = [float(cost) if self._all_count_calls or not rate.counts_calls else 1.0
                       for rate in self.rates]
        else:
            raise ConfigurationError(
                f"a cost is a number or a mapping of unit label to number, not {cost!r}")
        increments = []
        for charge, rate, burst in zip(charges, self.rates, self.bursts, strict=True):
            if not charge >= 0 or charge == float("inf"):
                raise ConfigurationError(f"a cost must be a finite number >= 0, not {charge!r}")
            if charge > burst:
                unit = f" {rate.label}" if rate.label else ""
                raise RateLimitError(
                    f"cost {charge:g}{unit} can never be granted by limit '{rate.text}' of "
                    f"limiter {self.name!r}: the most it grants at once is its burst, "
                    f"{burst:g}{unit}. Split the work into smaller calls, or give the "
                    "limiter a larger burst=."
                )
            increments.append(charge * rate.emission_interval)
        return tuple(increments)

    def _charges_by_label(self, cost: Mapping[str, float]) -> list[float]:
        known = {rate.label for rate in self.rates}
        if any(rate.label == "" for rate in self.rates):
            known |= CALL_LABELS - {""}
        unknown = set(cost) - known
        if unknown:
            raise ConfigurationError(
                f"cost names {sorted(unknown)}, but limiter {self.name!r} has limits on "
                f"{sorted(label or 'calls' for label in {r.label for r in self.rates})}")
        charges = []
        for rate in self.rates:
            names = [rate.label] if rate.label else sorted(CALL_LABELS - {""})
            given = [cost[name] for name in names if name in cost]
            charges.append(float(given[0]) if given else 1.0 if rate.counts_calls else 0.0)
        return charges

    def _cost_of(self, cost: CostSpec, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> tuple[float, ...]:
        return self._increments(cost(*args, **kwargs) if callable(cost) else cost)

    # -- the engine: what to do, written once --------------------------------------------
    def _take(self, increments: tuple[float, ...], verdict: Verdict | None = None) -> Steps:
        """Take a place for ``increments`` and wait until it comes; ``verdict`` is the
        store's answer when the caller has asked already. Returns the seconds waited."""
        if verdict is None and not self._waiting:
            verdict = self._decide(self._keys, increments, self._tolerances, self._horizon)
        waited = 0.0
        if verdict is None or not verdict.granted:
            verdict, waited = yield from self._queue(increments, verdict)
        if verdict.wait > 0:
            waited += yield from self._wait(verdict, increments)
        return waited

    def _queue(self, increments: tuple[float, ...], refused: Verdict | None) -> Steps:
        """Queue behind this process's earlier waiters; once first, ask the store each time
        a place within the horizon may be free, until one is booked. Returns the booking
        and the seconds slept or queued.

        A refusal places the caller in the store's waiting line, shared with other
        processes; it shows that place (its ticket) when it asks again."""
        line = self._line
        turn = line.join()
        booked = None
        waited = 0.0
        ticket = None if refused is None else refused.tats
        try:
            if not turn.first:
                queued_at = time.monotonic()
                yield turn
                waited += time.monotonic() - queued_at
                # This caller's own refusal is stale by now, though its place in the
                # store's line still stands; the waiter before left a fresher hint.
                refused = None
            due = self._due(refused or turn.hint, increments)
            while True:
                if due > 0:
                    yield due
                    waited += due
                verdict = self._decide(self._keys, increments, self._tolerances,
                                       self._horizon, ticket)
                if verdict.granted:
                    booked = verdict
                    return verdict, waited
                ticket = verdict.tats
                due = verdict.wait - self._horizon
        finally:
            line.leave(turn, booked)  # the next asks now, or when this booking says

    def _due(self, hint: Verdict | None, increments: tuple[float, ...]) -> float:
        """Seconds until a place for ``increments`` may lie within the horizon, judged from
        the last verdict seen: this caller's refusal, or the booking of the waiter before
        (as if this caller had asked right after it). Holds and other processes may make
        the store answer otherwise; then its refusal says how long to sleep again."""
        if hint is None:
            return 0.0
        if not hint.granted:
            return hint.wait - self._horizon
        return decide_all(hint.tats, hint.now, increments, self._tolerances,
                          0.0).wait - self._horizon

    def _wait(self, verdict: Verdict, increments: tuple[float, ...]) -> Steps:
        """Sleep until a booked place comes; follow holds placed meanwhile (each moves the
        line back by the growth of ``held``); give the place back if the wait is abandoned
        (cancellation, KeyboardInterrupt, a failing store)."""
        wait, held, waited = verdict.wait, verdict.held, 0.0
        reached = False
        try:
            while wait > 0:
                yield wait
                waited += wait
                now_held = self.store.held(self._keys)
                wait = max(0.0, *(new - old for new, old in zip(now_held, held, strict=True)))
                held = now_held
            reached = True
        finally:
            if not reached:
                self._give_back(increments, verdict.tats)
        return waited

    def _give_back(self, increments: tuple[float, ...], receipts: tuple[float, ...]) -> None:
        try:
            self.store.refund(self._keys, increments, receipts)
        except Exception:
            # The caller's own exception (cancellation, interrupt, the store failing) is
            # what matters; a place not given back only costs a little capacity.
            pass

    def _guarded(self, increments: tuple[float, ...], taken: bool = False) -> Steps:
        """Take a place (unless ``taken``), call; on RetryAfter hold every caller, then
        take a place and call again."""
        attempt = 0
        while True:
            if not taken and any(increments):
                yield from self._take(increments)
            taken = False
            try:
                return (yield _CALL)
            except RetryAfter as exc:
                self.hold(exc.seconds)
                attempt += 1
                if attempt > self.retry_after_attempts:
                    raise

    def _after(self, exc: BaseException | None) -> None:
        if isinstance(exc, RetryAfter):
            self.hold(exc.seconds)

    # -- the drivers: how to sleep and how to call ---------------------------------------
    def _run(self, steps: Steps, call: Callable[[], Any] | None = None) -> Any:
        reply: Any = None
        error: RetryAfter | None = None
        try:
            while True:
                step = steps.send(reply) if error is None else steps.throw(error)
                reply = error = None
                if step is _CALL:
                    try:
                        reply = call()  # type: ignore[misc]
                    except RetryAfter as exc:
                        error = exc
                elif type(step) is Turn:
                    self._line.wait(step)
                else:
                    self._sleep(step)
        except StopIteration as stop:
            return stop.value
        finally:
            steps.close()  # an abandoned wait gives its place back here

    async def _run_async(self, steps: Steps, call: Callable[[], Any] | None = None) -> Any:
        reply: Any = None
        error: RetryAfter | None = None
        try:
            while True:
                step = steps.send(reply) if error is None else steps.throw(error)
                reply = error = None
                if step is _CALL:
                    try:
                        reply = await call()  # type: ignore[misc]
                    except RetryAfter as exc:
                        error = exc
                elif type(step) is Turn:
                    await self._line.wait_async(step)
                else:
                    await self._async_sleep(step)
        except StopIteration as stop:
            return stop.value
        finally:
            steps.close()


def _bursts(name: str, rates: list[Rate],
            burst: float | Sequence[float | None] | None) -> list[float]:
    if burst is None:
        given: list[float | None] = [None] * len(rates)
    elif isinstance(burst, int | float) and not isinstance(burst, bool):
        if len(rates) > 1:
            raise ConfigurationError(
                f"limiter {name!r} has {len(rates)} limits: give burst= as a list with one "
                "entry (or None for the default) per limit, in the order of limits=")
        given = [float(burst)]
    else:
        given = list(burst)  # type: ignore[arg-type]
        if len(given) != len(rates):
            raise ConfigurationError(
                f"limiter {name!r} has {len(rates)} limits but burst= has {len(given)} entries")
    bursts = []
    for rate, value in zip(rates, given, strict=True):
        if value is not None and (isinstance(value, bool) or not 0 < float(value) < float("inf")):
            raise ConfigurationError(f"burst must be a positive number, not {value!r}")
        bursts.append(rate.count if value is None else float(value))
    return bursts


def open_store(spec: str | os.PathLike[str] | LimitStore | None, *, spot_name: str = "default",
               workspace: str | os.PathLike[str] | None = None) -> LimitStore:
    """The store a spec names.

    ``None`` or ``"memory"``: this process only. ``"sqlite"``: ``<workspace>/<spot>.limits.db``
    (workspace: the Spot's folder, default ``./.hokuro``); ``"sqlite://<path>"`` or a path
    ending ``.db``/``.sqlite``/``.sqlite3``: that file (processes of one host).
    ``redis://…``/``rediss://…``/``unix://…``: Redis; ``postgresql://…``: PostgreSQL (hosts).
    A :class:`LimitStore` passes through.
    """
    if isinstance(spec, LimitStore):
        return spec
    if spec is None or spec == "memory":
        return MemoryStore.shared()
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise ConfigurationError(f"a limit store is a URL, a path or a LimitStore, not {spec!r}")
    if spec == "sqlite":
        folder = Path(workspace) if workspace is not None else Path.cwd() / ".hokuro"
        spec = str(folder / f"{spot_name}.limits.db")
    if spec.startswith("sqlite://"):
        spec = spec[len("sqlite://"):]
    elif spec.startswith(("redis://", "rediss://", "unix://")):
        from .redis import RedisStore

        return RedisStore(spec)
    elif spec.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(spec)
    elif not spec.endswith((".db", ".sqlite", ".sqlite3")):
        raise ConfigurationError(
            f"limit store {spec!r} is not understood; give 'memory', 'sqlite', a path ending "
            "in .db, 'sqlite://<path>', 'redis://host:port/db' or 'postgresql://…'")
    from .sqlite import SQLiteStore

    return SQLiteStore(spec)


def limiter_call(default: Limiter | None, registry: dict[str, Limiter], *,
                 name: str | None = None,
                 limits: str | Rate | Sequence[str | Rate] | None = None,
                 burst: float | Sequence[float | None] | None = None,
                 cost: CostSpec | None = None, store: LimitStore | None = None,
                 retry_after_attempts: int = 3) -> Limiter | Guard:
    """What ``spot.limiter(...)`` returns.

    - ``spot.limiter(cost=1)`` (the seed's form, no name or limits): the Spot's default
      limiter (from ``tpm=``) with that cost, ready to decorate.
    - ``spot.limiter(name="openai", limits=[...], burst=...)``: the named limiter, made on
      first use and kept in ``registry`` so every function of the Spot shares one; later
      calls may give just the name. With ``cost=`` as well, a decorator of that limiter.
    """
    if name is None:
        if limits is not None or burst is not None:
            raise ConfigurationError(
                "name the limiter: spot.limiter(name='api', limits=['60/min']); "
                "limiters are shared by name")
        if default is None:
            raise RateLimitError(
                "this Spot has no default limiter: give the Spot tpm= or name a limiter "
                "with limits=, e.g. spot.limiter(name='api', limits=['60/min'])")
        return default(cost=1 if cost is None else cost)
    limiter = registry.get(name)
    if limiter is None:
        if limits is None:
            raise ConfigurationError(
                f"limiter {name!r} is not defined yet; give its limits, e.g. "
                f"spot.limiter(name={name!r}, limits=['60/min'])")
        limiter = Limiter(name, limits, burst=burst, store=store,
                          retry_after_attempts=retry_after_attempts)
        registry[name] = limiter
    elif limits is not None or burst is not None:
        wanted = Limiter(name, limits if limits is not None else list(limiter.rates),
                         burst=burst, store=limiter.store)
        if wanted.rates != limiter.rates or (burst is not None and wanted.bursts != limiter.bursts):
            raise ConfigurationError(
                f"limiter {name!r} is already defined with other limits ({limiter!r}); "
                "use another name or the same limits")
    return limiter if cost is None else limiter(cost=cost)
