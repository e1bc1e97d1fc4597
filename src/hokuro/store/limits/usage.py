"""How much of each limit is in use now, read from a limit store without writing to it.

A store keeps, per key, the GCRA state only (its TAT, a hold, the end of its waiting line),
and a limiter names its keys ``<limiter>|<limit>`` ("openai|500/min"), so the limit's rate
is read back from the key: ``(TAT - now) / T`` is how many units are spent ahead of the
steady rate, out of the burst (the limit's count unless the limiter chose another burst,
which the store does not keep). Reading never creates the store's file or table
(invariant 6): SQLite is opened read-only, PostgreSQL only SELECTs, Redis only SCANs and
GETs. A store that cannot be read this way (one process's memory) says so.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from ...errors import ConfigurationError
from .base import load_scripts
from .gcra import Rate, parse_rate


@dataclass(slots=True)
class LimitUse:
    """One limit key of a store, as it stands at ``now``."""

    key: str
    limiter: str
    rate: Rate | None  # None: a key this hokuro cannot parse
    #: Seconds the key's TAT runs ahead of now (0: rested).
    ahead: float
    #: Units spent ahead of the steady rate (``ahead / T``); None without a rate.
    used: float | None
    #: Held (``Limiter.hold``) until this time, when in the future.
    held_until: float | None
    #: The waiting line's end is in the future: callers are queued for a place.
    queued: bool

    @property
    def capacity(self) -> float | None:
        """The default burst: the limit's count (a limiter may have chosen another)."""
        return None if self.rate is None else self.rate.count

    @property
    def fraction(self) -> float | None:
        if self.used is None or not self.capacity:
            return None
        return max(0.0, min(1.0, self.used / self.capacity))


def store_location(spec: str | None, *, spot_name: str, workspace: str | os.PathLike[str]
                   ) -> str | None:
    """Where a Spot's limits live for a limit spec (as ``Spot(limits=...)`` takes it): a
    SQLite file path, a PostgreSQL or Redis URL, or None for one process's memory."""
    if spec is None or spec == "memory":
        return None
    if spec == "sqlite":
        return str(Path(workspace) / f"{spot_name}.limits.db")
    if spec.startswith("sqlite://"):
        return spec[len("sqlite://"):]
    return spec


#: Keys read from a Redis store at most (a SCAN of its prefix).
REDIS_KEYS = 1000


def read_usage(location: str, *, now: float | None = None, prefix: str | None = None
               ) -> list[LimitUse]:
    """Every limit key's use in the store at ``location`` (see :func:`store_location`).
    A store never used has no keys. ``prefix``: the key prefix of a Redis store (default
    the store's own). Raises :class:`ConfigurationError` for a store it cannot read."""
    if location.startswith(("postgresql://", "postgres://")):
        return _read_postgres(location)
    if location.startswith(("redis://", "rediss://", "unix://")):
        return _read_redis(location, prefix)
    if "://" in location:
        raise ConfigurationError(
            f"the use of limits in {location.split('://')[0]}:// stores cannot be read; "
            "the SQLite, PostgreSQL and Redis stores can tell it")
    path = Path(location)
    if not path.is_file():
        return []
    sql = load_scripts("sqlite.sql")
    conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=5.0)
    try:
        try:
            rows = conn.execute(sql["usage"]).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
    finally:
        conn.close()
    when = time.time() if now is None else now
    return [_use(key, tat, held_until, queued, when) for key, tat, _, held_until, queued in rows]


def _read_postgres(url: str) -> list[LimitUse]:
    import psycopg

    sql = load_scripts("postgres.sql")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.read_only = True
        if not conn.execute(sql["usage_kept"]).fetchone()[0]:
            return []
        rows = conn.execute(sql["usage"]).fetchall()
    return [_use(key, tat, held_until, queued, now)
            for key, tat, _, held_until, queued, now in rows]


def _read_redis(url: str, prefix: str | None) -> list[LimitUse]:
    """Keys under the store's prefix (SCAN, GET and TIME only: nothing is written); each
    holds "tat held held_until queued" as the store's scripts write it."""
    import redis

    from .redis import DEFAULT_PREFIX

    prefix = DEFAULT_PREFIX if prefix is None else prefix
    client = redis.Redis.from_url(url)
    try:
        keys = []
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"  # the prefix, literally
        for key in client.scan_iter(match=pattern, count=500):
            keys.append(key)
            if len(keys) >= REDIS_KEYS:
                break
        keys.sort()
        values = client.mget(keys) if keys else []
        seconds, micros = client.time()
    finally:
        client.close()
    now = seconds + micros / 1e6
    found = []
    for key, value in zip(keys, values, strict=True):
        if value is None:
            continue  # expired meanwhile: rested
        fields = [float(x) for x in value.split()] + [0.0, 0.0, 0.0]
        name = key.decode("utf-8", "replace")[len(prefix):]
        found.append(_use(name, fields[0], fields[2], fields[3], now))
    return found


def _use(key: str, tat: float, held_until: float, queued: float, now: float) -> LimitUse:
    limiter, _, text = key.rpartition("|")
    try:
        rate: Rate | None = parse_rate(text)
    except ConfigurationError:
        rate = None
    ahead = max(0.0, tat - now)
    used = None if rate is None else ahead / rate.emission_interval
    return LimitUse(key, limiter or key, rate, ahead, used,
                    held_until if held_until and held_until > now else None,
                    bool(queued and queued > now))
