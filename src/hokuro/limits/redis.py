"""Limit store in Redis: shared by every host that reaches the server.

Each operation is one Lua script (``scripts/redis.lua``) sent with EVALSHA: one round trip,
atomic on the server, timed by the server's TIME so hosts with skewed clocks still agree.
redis-py's connection pool notices a fork and opens new connections in the child.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import MissingDependency
from . import gcra
from .base import LimitStore, Verdict, load_scripts, mask_url

DEFAULT_PREFIX = "hokuro:limit:"


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
        scripts = load_scripts("redis.lua")
        self._decide = self._client.register_script(scripts["decide"])
        self._held = self._client.register_script(scripts["held"])
        self._hold = self._client.register_script(scripts["hold"])
        self._refund = self._client.register_script(scripts["refund"])

    def _keys(self, keys: Sequence[str]) -> list[str]:
        return [self.prefix + key for key in keys]

    def decide(self, keys: Sequence[str], increments: Sequence[float],
               tolerances: Sequence[float], reserve: bool) -> Verdict:
        args: list[Any] = [1 if reserve else 0, gcra.EPSILON]
        for increment, tolerance in zip(increments, tolerances, strict=True):
            args += (increment, tolerance)
        reply = self._decide(keys=self._keys(keys), args=args)
        count = len(keys)
        return Verdict(reply[0] == b"1", float(reply[1]), float(reply[2]),
                       tuple(map(float, reply[3:3 + count])), tuple(map(float, reply[3 + count:])))

    def held(self, keys: Sequence[str]) -> tuple[float, ...]:
        return tuple(map(float, self._held(keys=self._keys(keys))))

    def hold(self, keys: Sequence[str], tolerances: Sequence[float], seconds: float) -> None:
        self._hold(keys=self._keys(keys), args=[seconds, *tolerances])

    def refund(self, keys: Sequence[str], increments: Sequence[float],
               receipts: Sequence[float]) -> bool:
        args: list[float] = []
        for increment, receipt in zip(increments, receipts, strict=True):
            args += (increment, receipt)
        return int(self._refund(keys=self._keys(keys), args=args)) == len(keys)

    def now(self) -> float:
        seconds, micros = self._client.time()
        return seconds + micros / 1_000_000

    def close(self) -> None:
        self._client.close()

    def describe(self) -> str:
        return f"{mask_url(self._url)} (keys {self.prefix}*)"
