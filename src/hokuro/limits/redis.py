"""Limit store in Redis: shared by every host that reaches the server.

Each operation is one Lua script (``scripts/redis.lua``) sent with EVALSHA: one round trip,
atomic on the server, timed by the server's TIME so hosts with skewed clocks still agree.
redis-py's connection pool notices a fork and opens new connections in the child.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import MissingDependency
from ..redact import mask_url
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
        self._scripts = load_scripts("redis.lua")
        self._shas = {name: self._client.script_load(text)
                      for name, text in self._scripts.items()}
        self._evalsha = self._client.evalsha

    def _call(self, script: str, keys: Sequence[str], *args: Any) -> Any:
        # EVALSHA straight from the client: redis-py's Script wrapper costs about a
        # microsecond per call in imports and checks, and decide is every acquire's cost.
        try:
            return self._evalsha(self._shas[script], len(keys), *keys, *args)
        except self._no_script:  # the server restarted or its script cache was flushed
            self._shas[script] = self._client.script_load(self._scripts[script])
            return self._evalsha(self._shas[script], len(keys), *keys, *args)

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
        seconds, micros = self._client.time()
        return seconds + micros / 1_000_000

    def close(self) -> None:
        self._client.close()

    def describe(self) -> str:
        return f"{mask_url(self._url)} (keys {self.prefix}*)"
