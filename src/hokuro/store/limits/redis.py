"""Limit store in Redis: shared by every host that reaches the server.

Each operation is one Lua script (``scripts/redis.lua``) sent with EVALSHA: one round trip,
atomic on the server, timed by the server's TIME so hosts with skewed clocks still agree.
redis-py's connection pool notices a fork and opens new connections in the child.

Nothing connects when the store is made: a limiter is usually defined at import time, and a
server that is down must fail the call that needs the limit (with the reason), not the import.
Every error of the client becomes a :class:`~hokuro.errors.LimitStoreError` naming the server.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from ...errors import LimitStoreError, MissingDependency
from ...model.redact import mask_url
from .base import LimitStore, Verdict, load_scripts

DEFAULT_PREFIX = "hokuro:limit:"

_new_tuple = tuple.__new__  # builds a named tuple without its Python-level __new__
_YES = (b"1", "1")  # a client made with decode_responses=True answers in text
_FAR = 1e18  # seconds: a horizon beyond every place (for an infinite one)


class RedisStore(LimitStore):
    """Limit state under ``prefix`` in the Redis server at ``url`` (or a given client)."""

    kind = "redis"

    def __init__(self, url: str | Any, *, prefix: str = DEFAULT_PREFIX) -> None:
        try:
            import redis
        except ImportError as exc:
            raise MissingDependency("redis", "redis") from exc
        if isinstance(url, str):
            self._url = url
            self._client = redis.Redis.from_url(url)
        else:
            self._url = repr(url)
            self._client = url
        self.prefix = prefix
        self._no_script = redis.exceptions.NoScriptError
        self._redis_error = redis.exceptions.RedisError
        self._auth_error = redis.exceptions.AuthenticationError
        self._unreachable = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        self._scripts = load_scripts("redis.lua")
        # SHA1 of each script, as the server names it; EVALSHA of an unknown one loads it.
        self._shas = {name: hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
                      for name, text in self._scripts.items()}
        self._evalsha = self._client.evalsha

    def _call(self, script: str, keys: Sequence[str], *args: Any) -> Any:
        # EVALSHA straight from the client: redis-py's Script wrapper costs about a
        # microsecond per call in imports and checks, and decide is every acquire's cost.
        try:
            try:
                return self._evalsha(self._shas[script], len(keys), *keys, *args)
            except self._no_script:  # first use, a restart, or a flushed script cache
                self._shas[script] = self._client.script_load(self._scripts[script])
                return self._evalsha(self._shas[script], len(keys), *keys, *args)
        except self._redis_error as exc:
            raise self._failure(exc) from exc

    def _failure(self, exc: BaseException) -> LimitStoreError:
        if isinstance(exc, self._auth_error):
            hint = "; check the password (and user) in the URL"
        elif isinstance(exc, self._unreachable):
            hint = "; check that the server is running and reachable, and the URL is right"
        else:
            hint = ""
        return LimitStoreError(
            f"Redis limit store {self.describe()}: {str(exc).rstrip('.')}{hint}")

    def decide(self, keys: Sequence[str], increments: Sequence[float],
               tolerances: Sequence[float], horizon: float,
               ticket: Sequence[float] | None = None) -> Verdict:
        prefix = self.prefix
        if horizon > _FAR:  # Lua reads numbers with strtod: keep to finite ones
            horizon = _FAR
        if len(keys) == 1 and ticket is None:  # the common case, without the loops
            reply = self._call("decide", (prefix + keys[0],), horizon, 0,
                               increments[0], tolerances[0], 0)
            granted, wait, now, tat, held = reply.split()
            return _new_tuple(Verdict, (granted in _YES, float(wait), float(now),
                                        (float(tat),), (float(held),)))
        args: list[Any] = [horizon, 0 if ticket is None else 1]
        places = ticket if ticket is not None else [0.0] * len(keys)
        for increment, tolerance, place in zip(increments, tolerances, places, strict=True):
            args += (increment, tolerance, place)
        granted, wait, now, *rest = self._call(
            "decide", [prefix + key for key in keys], *args).split()
        count = len(keys)
        return Verdict(granted in _YES, float(wait), float(now),
                       tuple(map(float, rest[:count])), tuple(map(float, rest[count:])))

    def held(self, keys: Sequence[str]) -> tuple[float, ...]:
        reply = self._call("held", [self.prefix + key for key in keys])
        return tuple(map(float, reply.split()))

    def hold(self, keys: Sequence[str], tolerances: Sequence[float], seconds: float) -> None:
        self._call("hold", [self.prefix + key for key in keys], seconds, *tolerances)

    def refund(self, keys: Sequence[str], increments: Sequence[float],
               receipts: Sequence[float]) -> bool:
        args: list[float] = []
        for increment, receipt in zip(increments, receipts, strict=True):
            args += (increment, receipt)
        given = self._call("refund", [self.prefix + key for key in keys], *args)
        return int(given) == len(keys)

    def now(self) -> float:
        try:
            seconds, micros = self._client.time()
        except self._redis_error as exc:
            raise self._failure(exc) from exc
        return seconds + micros / 1_000_000

    def close(self) -> None:
        self._client.close()

    def describe(self) -> str:
        return f"{mask_url(self._url)} (keys {self.prefix}*)"
