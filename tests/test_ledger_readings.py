"""The ledger's reads for people (``store/ledger/readings.py``) on both SQL ledgers and the
protocol's default, and the limit store's use read without writing."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from hokuro.model.records import Record, Status
from hokuro.store.ledger import open_ledger
from hokuro.store.limits import Limiter
from hokuro.store.limits.sqlite import SQLiteStore
from hokuro.store.limits.usage import read_usage, store_location

sys.path.insert(0, str(Path(__file__).parent.parent / "examples"))

from memory_ledger import MemoryLedger


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def ledger(request, tmp_path):
    if request.param == "memory":
        db = MemoryLedger()
    elif request.param == "sqlite":
        db = open_ledger(str(tmp_path / "ledger.db"))
    else:
        db = open_ledger(request.getfixturevalue("pg_url"))
    yield db
    db.close()


def fill(ledger, n: int = 130) -> list[Record]:
    made = []
    for i in range(n):
        # Every third record shares its time with the next: pages must break ties by key.
        at = 1000.0 + i - (i % 3 == 1)
        status = Status.FAILED if i % 4 == 0 else Status.DONE
        made.append(Record(key=f"{i * 7919 % 1000:03d}{i:029x}", fn=f"c{i % 3}",
                           status=status, created_at=at, updated_at=at, started_at=at - 1,
                           finished_at=at))
    ledger.put_many(made)
    return made


def test_pages_after_a_cursor_give_the_listing_without_gaps_or_repeats(ledger):
    fill(ledger)
    for filters in ({}, {"fn": "c1"}, {"status": "failed"}, {"since": 1050.0}):
        whole = [r.key for r in ledger.find(**filters)]
        paged, after = [], None
        while True:
            page = ledger.find_page(after=after, limit=7, **filters)
            paged += [r.key for r in page]
            if len(page) < 7:
                break
            after = (page[-1].updated_at, page[-1].key)
        assert paged == whole, filters


@pytest.fixture(params=["sqlite", "postgres"])
def sql_ledger(request, tmp_path):
    if request.param == "sqlite":
        db = open_ledger(str(tmp_path / "ledger.db"))
    else:
        db = open_ledger(request.getfixturevalue("pg_url"))
    yield db
    db.close()


def test_collections_throughput_and_empty_queues(sql_ledger):
    ledger = sql_ledger
    fill(ledger)
    assert ledger.collections() == ["c0", "c1", "c2"]
    assert ledger.collections(limit=2) == ["c0", "c1"]
    counts: dict[str, int] = {}
    for at, status, n in ledger.throughput(1000.0, bucket=60.0):
        assert at % 60 == 0
        counts[status] = counts.get(status, 0) + n
    assert counts == {"done": 97, "failed": 33}
    assert sum(n for _, _, n in ledger.throughput(1000.0, fn="c2", bucket=60.0)) == 43
    assert ledger.queue_depths(time.time()) == [] and ledger.running_jobs() == []


def test_limit_use_is_read_without_creating_the_store(tmp_path):
    path = store_location("sqlite", spot_name="s", workspace=tmp_path)
    assert read_usage(path) == []
    assert not Path(path).exists()
    limiter = Limiter("api", ["10/min", "1000/day tokens"], store=SQLiteStore(path))
    limiter.acquire({"calls": 4, "tokens": 100})
    uses = {u.rate.text: u for u in read_usage(path)}
    assert set(uses) == {"10/min", "1000/day tokens"}
    assert uses["10/min"].limiter == "api"
    # Spent ahead of the steady rate: 4 calls, less what a few seconds of load gave back.
    assert 3.5 < uses["10/min"].used <= 4.0 and uses["10/min"].capacity == 10
    assert 99 < uses["1000/day tokens"].used <= 100


@pytest.mark.postgres
def test_limit_use_on_postgresql_never_creates_the_table(pg_url):
    import psycopg

    assert read_usage(pg_url) == []
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT to_regclass('hokuro_limits')").fetchone()[0] is None
    from hokuro.store.limits.postgres import PostgresStore

    store = PostgresStore(pg_url)
    try:
        Limiter("api", ["60/hour"], store=store).acquire(3)
    finally:
        store.close()
    (use,) = read_usage(pg_url)
    assert use.limiter == "api" and 2.9 < use.used <= 3.0  # a minute a unit: slack enough


@pytest.mark.redis
def test_limit_use_in_redis_is_read_with_scan_and_get(redis_url, redis_prefix):
    from hokuro.store.limits.redis import RedisStore

    assert read_usage(redis_url, prefix=redis_prefix) == []
    store = RedisStore(redis_url, prefix=redis_prefix)
    try:
        Limiter("api", ["60/hour"], store=store).acquire(3)
    finally:
        store.close()
    (use,) = read_usage(redis_url, prefix=redis_prefix)
    assert use.key == "api|60/h" and use.limiter == "api" and 2.9 < use.used <= 3.0
