"""One suite for every ledger backend: the TaskDB protocol's promises."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hokuro.errors import LedgerError
from hokuro.model.records import Claim, Outcome, Record, Status
from hokuro.store.ledger import TaskDB, open_ledger

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def location(request, tmp_path) -> str:
    """Where a fresh ledger of each backend lives: a SQLite path or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def ledger(location):
    db = open_ledger(location)
    yield db
    db.close()


def claim(key="k1", owner="h|1|1.00|a", now=100.0, lease=30.0, **extra) -> Claim:
    return Claim(key=key, fn="mod.f", owner=owner, lease_until=now + lease, now=now,
                 fn_path="mod:f", args=b"\x80", version="1", **extra)


def done(now=110.0, result=b"\xa1x", **extra) -> Outcome:
    return Outcome(status=Status.DONE, finished_at=now, result=result, codec="msgpack",
                   size=len(result), **extra)


def test_the_first_claim_wins_and_others_are_busy(ledger: TaskDB):
    first = ledger.claim(claim())
    assert first.outcome == "claimed" and first.attempt == 1
    second = ledger.claim(claim(owner="h|2|1.00|b"))
    assert second.outcome == "busy"
    assert second.record.owner == "h|1|1.00|a"
    record = ledger.get("k1")
    assert record.status == Status.RUNNING and record.attempts == 1
    assert record.args == b"\x80" and record.fn_path == "mod:f" and record.version == "1"
    assert record.started_at == 100.0 and record.created_at == 100.0


def test_finish_is_fenced_by_the_owner(ledger: TaskDB):
    ledger.claim(claim())
    assert ledger.finish("k1", "h|9|1.00|z", done()) is False
    assert ledger.get("k1").status == Status.RUNNING
    assert ledger.finish("k1", "h|1|1.00|a", done()) is True
    record = ledger.get("k1")
    assert record.status == Status.DONE and record.result == b"\xa1x"
    assert record.lease_until is None and record.finished_at == 110.0
    assert record.updated_at == 110.0


def test_a_done_record_is_a_hit_unless_forced_or_expired(ledger: TaskDB):
    ledger.claim(claim())
    ledger.finish("k1", "h|1|1.00|a", done(expires_at=500.0))
    hit = ledger.claim(claim(now=200.0))
    assert hit.outcome == "hit" and hit.record.result == b"\xa1x"
    forced = ledger.claim(claim(now=201.0, force=True, owner="h|2|1.00|b"))
    assert forced.outcome == "claimed" and forced.attempt == 2
    ledger.finish("k1", "h|2|1.00|b", done(now=202.0, expires_at=300.0))
    expired = ledger.claim(claim(now=301.0, owner="h|3|1.00|c"))
    assert expired.outcome == "claimed" and expired.attempt == 3


def test_an_expired_lease_or_a_stolen_one_can_be_claimed(ledger: TaskDB):
    ledger.claim(claim(lease=10))
    assert ledger.claim(claim(now=105.0, owner="h|2|1.00|b")).outcome == "busy"
    assert ledger.claim(claim(now=111.0, owner="h|2|1.00|b")).outcome == "claimed"
    stolen = ledger.claim(claim(now=112.0, owner="h|3|1.00|c", steal_from="h|2|1.00|b"))
    assert stolen.outcome == "claimed" and stolen.attempt == 3
    # the old owner's late finish is refused
    assert ledger.finish("k1", "h|2|1.00|b", done()) is False


def test_failures_rerun_unless_reused(ledger: TaskDB):
    ledger.claim(claim())
    failed = Outcome(status=Status.FAILED, finished_at=105.0, error_type="ValueError",
                     error="Traceback...\nValueError: x", error_fingerprint="abc")
    ledger.finish("k1", "h|1|1.00|a", failed)
    assert ledger.claim(claim(now=106.0, reuse_failed=True)).outcome == "hit"
    again = ledger.claim(claim(now=107.0))
    assert again.outcome == "claimed" and again.attempt == 2


def test_renew_extends_only_held_leases(ledger: TaskDB):
    ledger.claim(claim("a"))
    ledger.claim(claim("b", owner="h|2|1.00|b"))
    held = ledger.renew("h|1|1.00|a", ["a", "b", "missing"], 999.0)
    assert held == {"a"}
    assert ledger.get("a").lease_until == 999.0
    assert ledger.get("b").lease_until == 130.0


def _fill(ledger: TaskDB, n: int) -> None:
    for i in range(n):
        ledger.put(Record(key=f"{i:04x}" + "0" * 28, fn="f" if i % 2 else "g",
                          status=Status.DONE if i % 3 else Status.FAILED, ident=f"id{i}",
                          size=10, created_at=float(i), updated_at=float(i),
                          expires_at=50.0 if i < 5 else None,
                          error_fingerprint="fp" if i % 3 == 0 else None))


def test_find_streams_newest_first_with_filters(ledger: TaskDB):
    _fill(ledger, 1200)
    everything = list(ledger.find())
    assert len(everything) == 1200
    stamps = [r.updated_at for r in everything]
    assert stamps == sorted(stamps, reverse=True)
    assert [r.updated_at for r in ledger.find(limit=3)] == [1199.0, 1198.0, 1197.0]
    only_f_failed = list(ledger.find(fn="f", status=Status.FAILED))
    assert only_f_failed and all(r.fn == "f" and r.status == "failed" for r in only_f_failed)
    assert len(only_f_failed) == len([i for i in range(1200) if i % 2 and i % 3 == 0])
    assert [r.ident for r in ledger.find(ident="id7")] == ["id7"]
    assert len(list(ledger.find(since=1000.0))) == 200
    assert len(list(ledger.find(until=9.0))) == 10
    assert len(list(ledger.find(expired_at=60.0))) == 5
    assert len(list(ledger.find(error_fingerprint="fp"))) == 400
    assert [r.key for r in ledger.find(key_prefix="04af")] == ["04af" + "0" * 28]


def test_stats_count_per_collection_and_status(ledger: TaskDB):
    _fill(ledger, 30)
    rows = {(r.fn, r.status): r for r in ledger.stats(now=100.0)}
    assert rows[("f", "done")].count == len([i for i in range(30) if i % 2 and i % 3])
    assert sum(r.count for r in rows.values()) == 30
    assert sum(r.size for r in rows.values()) == 300
    assert sum(r.expired for r in rows.values()) == 5
    assert {r.fn for r in ledger.stats("g", now=100.0)} == {"g"}


def test_delete_returns_what_it_removed_and_blob_refs_lists_blobs(ledger: TaskDB):
    ledger.put(Record(key="a", fn="f", status="done", blob="aa/a.bin", log_blob="aa/a.log",
                      created_at=1.0, updated_at=1.0))
    ledger.put(Record(key="b", fn="f", status="done", result=b"x", created_at=1.0,
                      updated_at=1.0))
    assert sorted(ledger.blob_refs()) == ["aa/a.bin", "aa/a.log"]
    removed = ledger.delete(["a", "zzz"])
    assert [r.key for r in removed] == ["a"] and removed[0].blob == "aa/a.bin"
    assert ledger.get("a") is None and ledger.get("b") is not None


def test_lookup_has_what_the_hit_path_needs(ledger: TaskDB):
    ledger.claim(claim())
    ledger.finish("k1", "h|1|1.00|a", done(checksum="c", expires_at=9e9))
    record = ledger.lookup("k1")
    assert (record.status, record.result, record.codec, record.checksum,
            record.expires_at) == ("done", b"\xa1x", "msgpack", "c", 9e9)
    assert ledger.lookup("nope") is None


# -- concurrency -------------------------------------------------------------------------------

def test_eight_threads_claiming_one_new_key_give_exactly_one_owner(ledger: TaskDB):
    # Many rounds, each on a key nobody has seen: the race where every claimer finds no row.
    for round_ in range(20):
        key = f"race{round_}"
        barrier = threading.Barrier(8)

        def contend(worker: int, key: str = key, barrier: threading.Barrier = barrier):
            barrier.wait(timeout=10)
            return ledger.claim(claim(key, owner=f"h|{worker}|1.00|w{worker}"))

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(contend, range(8)))
        outcomes = sorted(r.outcome for r in results)
        assert outcomes == ["busy"] * 7 + ["claimed"], key
        winner = next(r for r in results if r.outcome == "claimed")
        assert winner.attempt == 1
        owner = ledger.get(key).owner
        assert all(r.record.owner == owner for r in results if r.outcome == "busy")


def test_eight_threads_reclaiming_an_expired_lease_give_exactly_one_owner(ledger: TaskDB):
    ledger.claim(claim("stale", lease=1.0))
    barrier = threading.Barrier(8)

    def contend(worker: int):
        barrier.wait(timeout=10)
        return ledger.claim(claim("stale", owner=f"h|{worker}|1.00|w{worker}", now=200.0))

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(contend, range(8)))
    assert sorted(r.outcome for r in results) == ["busy"] * 7 + ["claimed"]
    assert ledger.get("stale").attempts == 2


_CLAIMER = """
import sys, time
from hokuro.store.ledger import open_ledger
from hokuro.model.records import Claim
where, worker, start_at = sys.argv[1], sys.argv[2], float(sys.argv[3])
db = open_ledger(where)
time.sleep(max(0.0, start_at - time.time()))
won = []
for i in range(40):
    result = db.claim(Claim(key=f"p{i}", fn="mod.f", owner=f"h|{worker}|1.00|p{worker}",
                            lease_until=1e10, now=100.0))
    if result.outcome == "claimed":
        won.append(f"p{i}")
db.close()
print(" ".join(won))
"""


def test_claims_from_four_processes_give_each_key_one_owner(location: str):
    open_ledger(location).close()  # the schema exists before the race on claims begins
    start_at = f"{time.time() + 1.5:.3f}"
    procs = [subprocess.Popen([sys.executable, "-c", _CLAIMER, location, str(w), start_at],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(4)]
    won: list[str] = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        won += out.split()
    assert sorted(won) == sorted(f"p{i}" for i in range(40))


# -- claims, fences and reads ------------------------------------------------------------------

def test_a_claim_returns_the_record_it_replaced(ledger: TaskDB):
    first = ledger.claim(claim())
    assert first.record is None
    ledger.finish("k1", "h|1|1.00|a", done(expires_at=150.0))
    again = ledger.claim(claim(now=200.0, owner="h|2|1.00|b"))
    assert again.outcome == "claimed" and again.attempt == 2
    assert again.record.status == Status.DONE and again.record.result == b"\xa1x"
    record = ledger.get("k1")
    assert record.owner == "h|2|1.00|b" and record.finished_at is None
    assert record.created_at == 100.0 and record.started_at == 200.0


def test_a_deleted_task_can_be_claimed_again_from_scratch(ledger: TaskDB):
    ledger.claim(claim())
    ledger.delete(["k1"])
    again = ledger.claim(claim(now=300.0, owner="h|2|1.00|b"))
    assert again.outcome == "claimed" and again.attempt == 1 and again.record is None


def test_finish_after_losing_the_lease_writes_nothing(ledger: TaskDB):
    ledger.claim(claim(lease=5))
    ledger.claim(claim(now=106.0, owner="h|2|1.00|b"))
    assert ledger.finish("k1", "h|1|1.00|a", done(result=b"old")) is False
    assert ledger.finish("k1", "h|2|1.00|b", done(result=b"new")) is True
    assert ledger.get("k1").result == b"new"
    # a second finish by the same owner is refused: the task is no longer running
    assert ledger.finish("k1", "h|2|1.00|b", done(result=b"again")) is False
    assert ledger.get("k1").result == b"new"


def test_renew_of_nothing_holds_nothing(ledger: TaskDB):
    assert ledger.renew("h|1|1.00|a", [], 999.0) == set()
    ledger.claim(claim())
    ledger.finish("k1", "h|1|1.00|a", done())
    assert ledger.renew("h|1|1.00|a", iter(["k1"]), 999.0) == set()


def test_a_log_with_a_nul_character_is_still_recorded(ledger: TaskDB):
    ledger.claim(claim())
    failed = Outcome(status=Status.FAILED, finished_at=105.0, error_type="OSError",
                     error="bad byte \x00 here", log="before\x00after")
    assert ledger.finish("k1", "h|1|1.00|a", failed) is True
    record = ledger.get("k1")
    # PostgreSQL text cannot hold NUL: it may be replaced, but nothing else is lost
    assert record.log.startswith("before") and record.log.endswith("after")
    assert record.error.startswith("bad byte") and record.error.endswith("here")


def test_values_round_trip_exactly(ledger: TaskDB):
    record = Record(key="exact", fn="mod.f", status=Status.DONE, fn_path="mod:f",
                    ident="ünïcødé ✓", args=bytes(range(256)), version="v2",
                    result=b"\x00\xff" * 1000, codec="msgpack", content_type="image/png",
                    size=2**40, checksum="blake2b:abc", error_type=None, log="ok ✓",
                    attempts=7, owner="h|1|1.00|a", lease_until=None,
                    created_at=1712345678.123456, started_at=1712345679.000001,
                    finished_at=1712345680.5, updated_at=1712345680.5,
                    expires_at=1e10, run_id="run1", scope="api", priority=-3,
                    run_after=1712345690.25, parents="a,b")
    ledger.put(record)
    assert ledger.get("exact") == record
    full = next(ledger.find(full=True))
    assert full == record
    light = next(ledger.find())
    assert (light.key, light.ident, light.size, light.priority) == \
        ("exact", "ünïcødé ✓", 2**40, -3)


def test_put_replaces_the_whole_record(ledger: TaskDB):
    ledger.put(Record(key="a", fn="f", status="done", blob="aa/a.bin", size=5,
                      created_at=1.0, updated_at=1.0))
    ledger.put(Record(key="a", fn="g", status="failed", error="x", created_at=2.0,
                      updated_at=2.0))
    record = ledger.get("a")
    assert (record.fn, record.status, record.blob, record.size, record.error) == \
        ("g", "failed", None, None, "x")


def test_put_many_writes_every_record_and_a_repeated_key_ends_with_the_last(ledger: TaskDB):
    records = [Record(key=f"m{i:05d}", fn="f", status="done", created_at=float(i),
                      updated_at=float(i)) for i in range(2500)]
    records.append(Record(key="m00000", fn="f", status="failed", created_at=0.0,
                          updated_at=0.0))
    assert ledger.put_many(iter(records)) == 2501
    assert len(list(ledger.find())) == 2500
    assert ledger.get("m00000").status == "failed"


def test_find_pages_through_equal_timestamps_without_loss(ledger: TaskDB):
    ledger.put_many(Record(key=f"t{i:04d}", fn="f", status="done", created_at=5.0,
                           updated_at=5.0) for i in range(1234))
    keys = [r.key for r in ledger.find()]
    assert keys == sorted((f"t{i:04d}" for i in range(1234)), reverse=True)
    assert len([r.key for r in ledger.find(limit=777)]) == 777


def test_find_full_includes_args_result_and_log(ledger: TaskDB):
    ledger.claim(claim())
    ledger.finish("k1", "h|1|1.00|a", done(log="hello"))
    record = next(ledger.find(full=True))
    assert (record.args, record.result, record.log) == (b"\x80", b"\xa1x", "hello")


def test_stats_count_running_tasks_with_dead_leases_as_expired(ledger: TaskDB):
    ledger.claim(claim("live", lease=100.0))
    ledger.claim(claim("dead", lease=1.0))
    (row,) = ledger.stats(now=150.0)
    assert (row.fn, row.status, row.count, row.expired) == ("mod.f", "running", 2, 1)
    # Nothing finished: the size is that of the stored arguments, one byte each.
    assert row.last_activity == 100.0 and row.size == 2
    assert ledger.stats("nobody", now=150.0) == []


def test_facts_a_spot_records_are_read_back_by_readers(location: str):
    writer = open_ledger(location, spot="s")
    try:
        assert writer.spot == "s" and writer.get_meta("blobs") is None
        writer.set_meta("blobs", "s3://bucket/prefix")
        writer.set_meta("blobs", "s3://bucket/other")
        reader = open_ledger(location, read_only=True)
        try:
            assert reader.spot == "s" and reader.get_meta("blobs") == "s3://bucket/other"
            with pytest.raises(LedgerError):
                reader.set_meta("blobs", "elsewhere")
        finally:
            reader.close()
    finally:
        writer.close()


def test_delete_and_blob_refs_handle_thousands(ledger: TaskDB):
    ledger.put_many(Record(key=f"d{i:05d}", fn="f", status="done", blob=f"b/{i}.bin",
                           created_at=1.0, updated_at=1.0) for i in range(2100))
    assert len(set(ledger.blob_refs())) == 2100
    removed = ledger.delete(f"d{i:05d}" for i in range(0, 2100, 2))
    assert len(removed) == 1050
    assert len(list(ledger.find())) == 1050
    assert ledger.delete([]) == []


# -- read-only ---------------------------------------------------------------------------------

def test_read_only_reads_but_refuses_to_write(location: str):
    writer = open_ledger(location)
    writer.claim(claim())
    reader = open_ledger(location, read_only=True)
    try:
        assert reader.get("k1").status == Status.RUNNING
        assert [r.key for r in reader.find()] == ["k1"]
        assert reader.stats(now=100.0)[0].count == 1
        with pytest.raises(LedgerError):
            reader.claim(claim("k2"))
        with pytest.raises(LedgerError):
            reader.finish("k1", "h|1|1.00|a", done())
        with pytest.raises(LedgerError):
            reader.put(Record(key="x", fn="f", status="done"))
        assert writer.get("k2") is None and writer.get("x") is None
    finally:
        reader.close()
        writer.close()


def test_read_only_open_of_a_missing_ledger_fails_and_creates_nothing(location: str):
    with pytest.raises(LedgerError):
        open_ledger(location, read_only=True)
    if "://" not in location:
        assert not Path(location).exists()
        assert not os.listdir(Path(location).parent)


def test_a_read_never_pins_an_old_snapshot(ledger: TaskDB):
    import threading

    ledger.claim(claim())
    assert ledger.lookup("k1").status == "running"  # this thread's connection reads
    finished = threading.Thread(target=ledger.finish, args=("k1", "h|1|1.00|a", done()))
    finished.start()
    finished.join()
    # the same thread reads again and writes: it sees the other connection's commit
    assert ledger.lookup("k1").status == "done"
    assert ledger.get("k1").status == "done"
    assert ledger.claim(claim(now=200.0, force=True, owner="h|2|1.00|b")).outcome == "claimed"


def test_error_stats_count_failures_per_fingerprint_and_collection(ledger: TaskDB):
    def failed(key, fn, fingerprint, at, expires_at=None, error_type="ValueError"):
        ledger.put(Record(key=key, fn=fn, status=Status.FAILED, error_type=error_type,
                          error_fingerprint=fingerprint, error=f"{error_type}: x",
                          created_at=at, updated_at=at, finished_at=at,
                          expires_at=expires_at))

    for i in range(5):
        failed(f"a{i}", "f", "fp1", 10.0 + i)
    failed("b0", "g", "fp1", 30.0)
    failed("c0", "f", "fp2", 40.0, error_type="KeyError")
    failed("d0", "f", "fp2", 41.0, expires_at=50.0)  # past its retention at now=100
    failed("e0", "f", None, 42.0, error_type="OSError")
    ledger.put(Record(key="z", fn="f", status=Status.DONE, created_at=1.0, updated_at=1.0))
    stats = {(s.fingerprint, s.fn): s for s in ledger.error_stats(now=100.0)}
    assert set(stats) == {("fp1", "f"), ("fp1", "g"), ("fp2", "f"), ("OSError", "f")}
    assert (stats[("fp1", "f")].count, stats[("fp1", "f")].first_seen,
            stats[("fp1", "f")].last_seen) == (5, 10.0, 14.0)
    assert stats[("fp2", "f")].count == 1 and stats[("fp2", "f")].error_type == "KeyError"
    assert {s.fn for s in ledger.error_stats("g", now=100.0)} == {"g"}


def test_finish_many_writes_the_finishes_whose_owner_still_holds_the_lease(ledger: TaskDB):
    ledger.claim(claim("a"))
    ledger.claim(claim("b", owner="h|2|1.00|b"))
    ledger.claim(claim("c"))
    me = "h|1|1.00|a"
    written = ledger.finish_many([("a", me, done()), ("b", me, done()),
                                  ("c", me, done(result=b"\xa1y")), ("missing", me, done())])
    assert written == [True, False, True, False]
    assert ledger.get("a").status == Status.DONE and ledger.get("a").lease_until is None
    assert ledger.get("b").status == Status.RUNNING  # another owner's lease: untouched
    assert ledger.get("c").result == b"\xa1y"
    assert ledger.finish_many([("a", me, done())]) == [False]  # finished already
    assert ledger.finish_many([]) == []


def test_failures_are_grouped_from_their_own_index(location: str):
    """hokuro errors and the dashboard's errors page group failures by fingerprint: the
    query reads the partial index of failed tasks, never the whole table."""
    from hokuro.store.ledger.queries import load_queries

    db = open_ledger(location)
    try:
        db.put_many(Record(key=f"{i:06x}", fn=f"f{i % 3}", status=Status.FAILED if i % 10 == 0
                           else Status.DONE, error_fingerprint="fp" if i % 10 == 0 else None,
                           created_at=float(i), updated_at=float(i)) for i in range(5000))
        assert {e.count for e in db.error_stats(now=0.0)} == {166, 167}
        schema = getattr(db, "schema", None)
    finally:
        db.close()
    if location.startswith("postgresql://"):
        import psycopg

        sql = load_queries("postgres")["error_stats"]
        with psycopg.connect(location, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            conn.execute("ANALYZE")
            conn.execute("SET enable_seqscan = off")  # a small table: ask what it can use
            plan = "\n".join(r[0] for r in conn.execute(
                "EXPLAIN " + sql, {"now": 0.0, "fn": None}).fetchall())
        assert "tasks_failures" in plan, plan
    else:
        import sqlite3

        sql = load_queries("sqlite")["error_stats"]
        with sqlite3.connect(location) as conn:
            plan = " | ".join(r[-1] for r in conn.execute("EXPLAIN QUERY PLAN " + sql,
                                                           {"now": 0.0, "fn": None}))
        assert "INDEX tasks_failures" in plan, plan  # the partial index, not the table
