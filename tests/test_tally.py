"""The tally (schema 6): counts and bytes per collection and status kept by triggers, so that
``stats`` reads a few rows instead of every record. Whatever writes the ledger (claims,
finishes, renewals, puts, deletes, the run engine, concurrent writers, a writer killed with
-9), ``stats`` must say what a count of every record says (``stats_scan``)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import hokuro
from hokuro.model.records import Claim, Outcome, Record, Status
from hokuro.store.ledger import open_ledger
from hokuro.store.ledger.sqlite import Q as SQLITE_Q


@pytest.fixture(params=["sqlite", "postgres"])
def location(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    return request.getfixturevalue("pg_url")


def counted(ledger, now: float, fn: str | None = None) -> list[tuple]:
    """What a count of every record says (the query of schemas 2 to 5)."""
    module = sys.modules[type(ledger).__module__]
    return [tuple(row) for row in ledger._rows(module.Q["stats_scan"], {"fn": fn, "now": now})]


def tallied(ledger, now: float, fn: str | None = None) -> list[tuple]:
    return [(r.fn, r.status, r.count, r.size, r.expired, r.last_activity)
            for r in ledger.stats(fn, now=now)]


def assert_tally_matches(ledger, nows=(0.0, 150.0, 1e12)) -> None:
    """Counts, sizes and expired counts equal; the last activity of a (collection, status)
    is the latest that ever entered it, so never earlier than its newest record's."""
    for now in nows:
        for fn in (None, "c0", "c3"):
            tally, count = tallied(ledger, now, fn), counted(ledger, now, fn)
            assert [row[:5] for row in tally] == [row[:5] for row in count], (now, fn)
            for mine, theirs in zip(tally, count, strict=True):
                assert mine[5] >= theirs[5], (now, fn, mine, theirs)


def claim(key: str, fn: str, now: float, owner: str = "h|1|1.00|a") -> Claim:
    return Claim(key=key, fn=fn, owner=owner, lease_until=now + 30.0, now=now,
                 fn_path="m:f", args=b"\x80" * (len(key) % 7), version="1")


def outcome(rng: random.Random, now: float) -> Outcome:
    result = b"r" * rng.randrange(0, 300)
    if rng.random() < 0.3:
        return Outcome(status=Status.FAILED, finished_at=now, error_type="ValueError",
                       error="bad", error_fingerprint=f"fp{rng.randrange(3)}")
    expires = rng.choice([None, now + 10.0, now + 1000.0])
    return Outcome(status=Status.DONE, finished_at=now, result=result, codec="msgpack",
                   size=len(result), expires_at=expires)


def test_the_tally_matches_a_count_of_every_record_after_any_mix_of_writes(location):
    rng = random.Random(6)
    ledger = open_ledger(location)
    try:
        keys = [f"{i:040x}" for i in range(120)]
        held: dict[str, str] = {}  # key -> owner
        now = 100.0
        for turn in range(400):  # past 64 statements: PostgreSQL folds its deltas meanwhile
            now += rng.random()
            key = rng.choice(keys)
            fn = f"c{rng.randrange(4)}"
            move = rng.random()
            if move < 0.3:
                owner = f"h|1|1.00|{turn}"
                if ledger.claim(claim(key, fn, now, owner)).outcome == "claimed":
                    held[key] = owner
            elif move < 0.5 and held:
                key = rng.choice(sorted(held))
                ledger.finish(key, held.pop(key), outcome(rng, now))
            elif move < 0.6:
                batch = rng.sample(keys, 5)
                for key, got in zip(batch, ledger.claim_many(
                        [claim(k, fn, now, f"h|1|1.00|m{turn}") for k in batch]), strict=True):
                    if got.outcome == "claimed":
                        held[key] = f"h|1|1.00|m{turn}"
            elif move < 0.7 and held:
                batch = rng.sample(sorted(held), min(4, len(held)))
                ledger.finish_many([(k, held.pop(k), outcome(rng, now)) for k in batch])
            elif move < 0.75 and held:
                owner = rng.choice(sorted(set(held.values())))
                ledger.renew(owner, [k for k, o in held.items() if o == owner], now + 60)
            elif move < 0.85:
                status = rng.choice([Status.DONE, Status.FAILED, Status.RUNNING])
                ledger.put_many([Record(key=key, fn=fn, status=status, created_at=now,
                                        updated_at=now, size=rng.randrange(50),
                                        args=b"a" * rng.randrange(9),
                                        expires_at=rng.choice([None, now - 1, now + 5]),
                                        lease_until=now + rng.choice([-5, 5]))])
                held.pop(key, None)
            else:
                ledger.delete(rng.sample(keys, 3))
                held = {k: o for k, o in held.items() if ledger.get(k) is not None}
            if turn % 50 == 0:
                assert_tally_matches(ledger, (0.0, now, 1e12))
        assert_tally_matches(ledger, (0.0, now, now + 20.0, 1e12))
        if "postgres" in location:
            # The deltas were folded: far fewer rows than the statements that wrote them.
            rows = ledger._rows("SELECT COUNT(*) FROM tasks_tally", {})[0][0]
            assert rows < 200, rows
    finally:
        ledger.close()


def test_concurrent_writers_keep_the_tally_exact(location):
    ledger = open_ledger(location)
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        rng = random.Random(worker)
        try:
            for i in range(60):
                now = 1000.0 + i
                keys = [f"{worker:02d}{i:03d}{j:035x}" for j in range(4)]
                owner = f"h|{worker}|1.00|x"
                fn = f"c{rng.randrange(4)}"
                ledger.claim_many([claim(k, fn, now, owner) for k in keys])
                ledger.finish_many([(k, owner, outcome(rng, now)) for k in keys[:3]])
                if i % 7 == 0:
                    ledger.delete(keys[:1])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=write, args=(w,)) for w in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert_tally_matches(ledger, (0.0, 1030.0, 1e12))
        assert sum(r.count for r in ledger.stats(now=0.0)) == 6 * 60 * 4 - 6 * 9
    finally:
        ledger.close()


_MAPPER = textwrap.dedent("""
    import sys, time
    import hokuro
    spot = hokuro.Spot("tally", db=sys.argv[1], workspace=sys.argv[2])

    @spot.mark(name="c0")
    def square(x):
        time.sleep(0.001)
        if x % 5 == 0:
            raise ValueError(x)
        return "v" * (x % 40)

    @spot.mark(name="c3")
    def single(x):
        return x

    n = 0
    while True:  # until killed
        spot.map(square, range(n, n + 200), concurrency=8, progress=False)
        for i in range(n, n + 20):
            single(i)
        n += 200
""")


def test_a_writer_killed_with_sigkill_leaves_the_tally_exact(location, tmp_path):
    db = location if "postgres" in location else str(tmp_path / "killed.db")
    proc = subprocess.Popen([sys.executable, "-c", _MAPPER, db, str(tmp_path)],
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        # Kill once a few hundred records exist, in the middle of writing.
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            try:
                probe = open_ledger(db, spot="tally", read_only=True)
            except Exception:
                continue
            try:
                if sum(r.count for r in probe.stats(now=0.0)) > 300:
                    break
            finally:
                probe.close()
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(random.Random(os.getpid()).random() * 0.3)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        ledger = open_ledger(db, spot="tally")
        try:
            assert_tally_matches(ledger, (0.0, time.time(), 1e12))
            assert sum(r.count for r in ledger.stats(now=0.0)) > 300
        finally:
            ledger.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def test_a_run_through_the_engine_keeps_the_tally_exact(location, tmp_path):
    db = None if "postgres" not in location else location
    with hokuro.Spot("engine", db=db, workspace=str(tmp_path)) as spot:

        @spot.mark(name="c0")
        def first(x: int) -> int:
            if x % 9 == 0:
                raise ValueError(x)
            return x

        @spot.mark(name="c3")
        def second(x: int) -> str:
            return "y" * x

        spot.run(first | second, over=range(60), progress=False).results()
        spot.map(first, range(40, 90), progress=False).results()
        assert_tally_matches(spot.ledger, (0.0, time.time(), 1e12))
        stats = spot.stats()
        assert stats["collections"]["c0"]["counts"]["failed"] == 10  # 0, 9, ... 81
        assert stats["collections"]["c3"]["counts"]["done"] == 60 - 7


def undo_tally(conn, schema: str) -> None:
    """Take a PostgreSQL Spot back to before schema 6 (for the tests of older schemas)."""
    conn.execute(f"DROP TABLE {schema}.tasks_tally")
    conn.execute(f"DROP SEQUENCE {schema}.tasks_tally_turns")
    conn.execute(f"DROP INDEX {schema}.tasks_failures_newest")
    conn.execute(", ".join(f"{schema}.tasks_tally_{name}" for name in (
        "added", "removed", "changed", "emptied", "settle")).join(
        ("DROP FUNCTION ", " CASCADE")))


def make_file_of_schema_5(path) -> list[Record]:
    """A ledger file as hokuro left it before the tally: schema 5, some records."""
    from hokuro.store.ledger.sqlite import _statements

    conn = sqlite3.connect(path)
    conn.execute(SQLITE_Q["create_meta"])
    for step in range(1, 6):
        for statement in _statements(SQLITE_Q[f"migration_{step}"]):
            conn.execute(statement)
    conn.execute("INSERT INTO hokuro_meta VALUES ('schema_version', '5'), ('spot', 'old')")
    records = [(f"k{i:03d}", f"c{i % 3}", ["done", "failed", "running"][i % 4 % 3], 10 + i,
                b"a" * (i % 5), 1.0 + i, 1.0 + i, 50.0 if i % 2 else None, 60.0)
               for i in range(40)]
    conn.executemany("INSERT INTO tasks (key, fn, status, size, args, created_at, updated_at, "
                     "expires_at, lease_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", records)
    conn.commit()
    conn.close()
    return records


def test_a_schema_5_file_is_read_by_counting_then_migrates_to_a_tally_that_agrees(tmp_path):
    path = tmp_path / "old.db"
    make_file_of_schema_5(path)
    reader = open_ledger(path, read_only=True)
    try:
        read_before = tallied(reader, 55.0)
        assert reader.schema_version() == 5
    finally:
        reader.close()
    writer = open_ledger(path, spot="old")
    try:
        assert writer.schema_version() == 6
        assert tallied(writer, 55.0) == read_before == counted(writer, 55.0)
        assert_tally_matches(writer, (0.0, 55.0, 70.0))
        # Expired and stale-running counts depend on the clock, not on the tally.
        assert sum(r.expired for r in writer.stats(now=0.0)) == 0
        assert sum(r.expired for r in writer.stats(now=1e9)) > 0
    finally:
        writer.close()


def test_stats_reads_the_tally_not_every_record(tmp_path):
    """The plan of stats on SQLite: the tally, the expiry index and seeks, never a scan of
    tasks or of its covering index."""
    ledger = open_ledger(str(tmp_path / "plan.db"))
    try:
        steps = [row[-1] for row in ledger._rows(
            "EXPLAIN QUERY PLAN " + SQLITE_Q["stats"], {"fn": None, "now": 1.0})]
        plan = " | ".join(steps)
        assert not [s for s in steps if s.split()[:2] == ["SCAN", "tasks"]], plan
        assert "tasks_expires" in plan and "SCAN tally" in plan, plan
    finally:
        ledger.close()


def test_clearing_a_postgres_spot_by_truncate_empties_its_tally(pg_url):
    ledger = open_ledger(pg_url)
    try:
        ledger.put_many([Record(key=f"k{i}", fn="c0", status=Status.DONE, created_at=1.0,
                                updated_at=1.0) for i in range(5)])
        ledger._run(lambda conn, _: conn.execute("TRUNCATE tasks"))
        assert ledger.stats(now=0.0) == [] == counted(ledger, 0.0)
    finally:
        ledger.close()
