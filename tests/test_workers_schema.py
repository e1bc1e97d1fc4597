"""Schema 4 (the workers table; on PostgreSQL the trigger that notifies workers): the
migration from schema 3 on both SQL ledgers, tested against a fresh schema; readers of a
schema 3 ledger list no workers and change nothing; the notification itself."""

from __future__ import annotations

import sqlite3
import time

import pytest

from hokuro.model.workers import WorkerRecord
from hokuro.store.ledger import open_ledger
from hokuro.store.ledger.sqlite import SCHEMA_VERSION
from test_jobs_conformance import spec
from test_spot_namespace import catalog, sqlite_schema
from test_tally import undo_tally


def worker(id: str = "w1", **fields) -> WorkerRecord:
    now = time.time()
    return WorkerRecord(**{"id": id, "host": "h", "pid": 1, "scopes": None, "concurrency": 4,
                           "started_at": now, "heartbeat_at": now, "status": "running",
                           "every": 5.0, **fields})


def make_file_of_schema_3(path) -> None:
    from hokuro.store.ledger.sqlite import Q

    conn = sqlite3.connect(path)
    conn.execute(Q["create_meta"])
    for step in (1, 2, 3):
        for statement in Q[f"migration_{step}"].split(";"):
            if statement.strip():
                conn.execute(statement)
    conn.execute("INSERT INTO hokuro_meta VALUES ('schema_version', '3'), ('spot', 'old')")
    conn.commit()
    conn.close()


def test_a_ledger_file_of_schema_3_lists_no_workers_then_migrates_to_match_a_fresh_one(
        tmp_path):
    old, fresh = tmp_path / "old.db", tmp_path / "fresh.db"
    make_file_of_schema_3(old)
    before = sqlite_schema(old)
    reader = open_ledger(old, read_only=True)
    try:
        assert reader.list_workers() == [] and reader.list_runs() == []
    finally:
        reader.close()
    assert sqlite_schema(old) == before
    writer = open_ledger(old, spot="old")
    try:
        assert writer.schema_version() == SCHEMA_VERSION
        writer.register_worker(worker())
        assert writer.beat_worker("w1", time.time(), running=2, done=5)
        assert not writer.beat_worker("nobody", time.time(), running=0, done=0)
        (found,) = writer.list_workers()
        assert (found.running, found.done, found.status) == (2, 5, "running")
        assert writer.beat_worker("w1", 10.0 ** 10, running=0, done=6, status="stopped")
        assert writer.list_workers()[0].stopped_at == 10.0 ** 10
        assert writer.forget_workers(before=10.0 ** 11) == 1 and writer.list_workers() == []
    finally:
        writer.close()
    open_ledger(fresh, spot="old").close()
    assert sqlite_schema(old) == sqlite_schema(fresh)


def test_a_worker_reads_as_lost_after_three_missed_heartbeats():
    record = worker(heartbeat_at=100.0, every=5.0)
    assert record.seen_as(114.0) == "running" and record.seen_as(116.0) == "lost"
    assert worker(status="stopped", heartbeat_at=0.0).seen_as(1000.0) == "stopped"


def _triggers(url: str, schema: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = "
            "c.relnamespace WHERE n.nspname = %s AND NOT t.tgisinternal ORDER BY t.tgname",
            (schema,)).fetchall()


@pytest.mark.postgres
def test_a_spot_of_schema_3_lists_no_workers_then_migrates_to_match_a_fresh_one(pg_url,
                                                                                pg_admin):
    import psycopg

    open_ledger(pg_url, spot="s").close()
    with psycopg.connect(pg_url, autocommit=True) as conn:  # back to schema 3
        conn.execute("DROP TABLE hokuro_s.workers")
        conn.execute("DROP FUNCTION hokuro_s.jobs_notify_ready() CASCADE")
        conn.execute("DROP INDEX hokuro_s.tasks_failures")  # (schema 5)
        undo_tally(conn, "hokuro_s")  # (schema 6)
        conn.execute("UPDATE hokuro_s.hokuro_meta SET value = '3' "
                     "WHERE name = 'schema_version'")
    before = catalog(pg_url, "hokuro_s")
    reader = open_ledger(pg_url, spot="s", read_only=True)
    try:
        assert reader.list_workers() == [] and reader.notify_channel is None
    finally:
        reader.close()
    assert catalog(pg_url, "hokuro_s") == before and _triggers(pg_url, "hokuro_s") == []
    writer = open_ledger(pg_url, spot="s")
    try:
        writer.register_worker(worker())
        assert [w.id for w in writer.list_workers()] == ["w1"]
        assert writer.notify_channel == "hokuro_s"
    finally:
        writer.close()
    fresh = f"{pg_url}_fresh"
    name = fresh.rsplit("/", 1)[1]
    pg_admin.execute(f'CREATE DATABASE "{name}"')
    try:
        open_ledger(fresh, spot="s").close()
        assert catalog(pg_url, "hokuro_s") == catalog(fresh, "hokuro_s")
        assert _triggers(pg_url, "hokuro_s") == _triggers(fresh, "hokuro_s")
        assert len(_triggers(fresh, "hokuro_s")) == 2 + 4  # jobs ready; the tally (schema 6)
    finally:
        pg_admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s", (name,))
        pg_admin.execute(f'DROP DATABASE "{name}"')


@pytest.mark.postgres
def test_jobs_made_claimable_notify_the_spots_channel_and_a_claim_does_not(pg_url):
    import psycopg

    from hokuro.model.jobs import RunRecord

    ledger = open_ledger(pg_url, spot="n")
    listener = psycopg.connect(pg_url, autocommit=True)
    try:
        listener.execute('LISTEN "hokuro_n"')
        now = time.time()
        ledger.create_run(RunRecord(id="r", name="r", status="submitted", plan=None,
                                    created_at=now, updated_at=now))

        def heard() -> int:
            return len(list(listener.notifies(timeout=0.3)))

        ledger.insert_jobs("r", [spec("a"), spec("b")], now)
        assert heard() == 1  # one statement, one notification
        claimed = ledger.claim_jobs("o", now, now + 60, 10, runs=["r"])
        assert len(claimed) == 2 and heard() == 0
        assert ledger.release_jobs("o", [("r", "a")], now) == {("r", "a")}
        assert heard() == 1
        assert ledger.claim_jobs("o", now, now + 60, 10, runs=["other"]) == []
        assert ledger.next_due(["r"]) == 0.0  # "a", queued again (its run_after, 0)
        assert ledger.next_due(["r"], ["elsewhere"]) is None and ledger.next_due([]) is None
    finally:
        listener.close()
        ledger.close()
