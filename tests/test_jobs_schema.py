"""The runs tables of both SQL ledgers: the migration to schema 3 (tested against a fresh
schema), readers of older ledgers, the claim's index, and PostgreSQL's retries after a reply
lost once the commit was done. The rules of the job operations: test_jobs_conformance.py."""

from __future__ import annotations

import sqlite3

import pytest

from hokuro.errors import LedgerError
from hokuro.model.records import Claim, Outcome
from hokuro.store.ledger import open_ledger
from hokuro.store.ledger.sqlite import SCHEMA_VERSION
from test_jobs_conformance import OTHER, OWNER, claim, finish_all, outcome, run, spec, statuses
from test_tally import undo_tally

# -- schema ----------------------------------------------------------------------------------

def make_file_of_schema_2(path) -> None:
    """A ledger file as the hokuro before runs left it: schema 2, Spot "old", one record."""
    from hokuro.store.ledger.sqlite import Q

    conn = sqlite3.connect(path)
    conn.execute(Q["create_meta"])
    for step in (1, 2):
        for statement in Q[f"migration_{step}"].split(";"):
            conn.execute(statement)
    conn.execute("INSERT INTO hokuro_meta VALUES ('schema_version', '2'), ('spot', 'old')")
    conn.execute("INSERT INTO tasks (key, fn, status, created_at, updated_at) "
                 "VALUES ('k', 'old.fn', 'done', 1, 1)")
    conn.commit()
    conn.close()


def reads_no_runs(reader) -> bool:
    return (reader.list_runs() == [] and reader.get_run("r") is None
            and reader.find_unfinished_run("batch") is None and reader.run_counts("r") == {}
            and reader.next_wake("r") is None and reader.get_jobs("r", ["a"]) == []
            and list(reader.find_jobs("r")) == [])


def test_a_ledger_file_of_schema_2_reads_as_no_runs_then_migrates_to_match_a_fresh_one(
        tmp_path):
    from test_spot_namespace import sqlite_schema

    old, fresh = tmp_path / "old.db", tmp_path / "fresh.db"
    make_file_of_schema_2(old)
    before = sqlite_schema(old)
    reader = open_ledger(old, read_only=True)
    try:
        assert reads_no_runs(reader) and reader.get("k").status == "done"
        with pytest.raises(LedgerError, match="read-only"):
            reader.create_run(run("r"))
    finally:
        reader.close()
    assert sqlite_schema(old) == before  # the reader created nothing
    writer = open_ledger(old, spot="old")
    try:
        assert writer.schema_version() == SCHEMA_VERSION and writer.get("k").status == "done"
        writer.create_run(run("r"))
    finally:
        writer.close()
    reader = open_ledger(old, read_only=True)
    try:
        assert [r.id for r in reader.list_runs()] == ["r"]
    finally:
        reader.close()
    open_ledger(fresh, spot="old").close()
    assert sqlite_schema(old) == sqlite_schema(fresh)


@pytest.mark.postgres
def test_a_spot_of_schema_2_reads_as_no_runs_then_migrates_to_match_a_fresh_one(pg_url,
                                                                                 pg_admin):
    import psycopg

    from test_spot_namespace import catalog

    open_ledger(pg_url, spot="s").close()
    with psycopg.connect(pg_url, autocommit=True) as conn:  # back to schema 2
        conn.execute("DROP TABLE hokuro_s.runs, hokuro_s.jobs, hokuro_s.job_edges, "
                     "hokuro_s.workers")
        conn.execute("DROP FUNCTION hokuro_s.jobs_notify_ready()")
        conn.execute("DROP INDEX hokuro_s.tasks_failures")
        undo_tally(conn, "hokuro_s")  # (schema 6)
        conn.execute("UPDATE hokuro_s.hokuro_meta SET value = '2' "
                     "WHERE name = 'schema_version'")
    before = catalog(pg_url, "hokuro_s")
    reader = open_ledger(pg_url, spot="s", read_only=True)
    try:
        assert reads_no_runs(reader)
    finally:
        reader.close()
    assert catalog(pg_url, "hokuro_s") == before  # the reader created nothing
    writer = open_ledger(pg_url, spot="s")
    try:
        writer.create_run(run("r"))
    finally:
        writer.close()
    reader = open_ledger(pg_url, spot="s", read_only=True)
    try:
        assert [r.id for r in reader.list_runs()] == ["r"]
    finally:
        reader.close()
    fresh = f"{pg_url}_fresh"
    name = fresh.rsplit("/", 1)[1]
    pg_admin.execute(f'CREATE DATABASE "{name}"')
    try:
        open_ledger(fresh, spot="s").close()
        assert catalog(pg_url, "hokuro_s") == catalog(fresh, "hokuro_s")
    finally:
        pg_admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s", (name,))
        pg_admin.execute(f'DROP DATABASE "{name}"')


@pytest.mark.postgres
def test_both_dialects_have_the_same_runs_tables_columns_and_indexes(pg_url, tmp_path):
    import psycopg

    db = open_ledger(pg_url, spot="s")
    db.close()
    open_ledger(tmp_path / "l.db").close()
    tables = ("runs", "jobs", "job_edges")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        pg_columns = {t: sorted(name for (name,) in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "'hokuro_s' AND table_name = %s", (t,))) for t in tables}
        pg_indexes = {name for (name,) in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'hokuro_s' AND tablename "
            "IN ('runs', 'jobs', 'job_edges') AND indexname NOT LIKE '%%_pkey'")}
    with sqlite3.connect(tmp_path / "l.db") as lite:
        lite_columns = {t: sorted(row[1] for row in lite.execute(f"PRAGMA table_info({t})"))
                        for t in tables}
        lite_indexes = {name for (name,) in lite.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN "
            "('runs', 'jobs', 'job_edges') AND name NOT LIKE 'sqlite_autoindex%'")}
    assert pg_columns == lite_columns
    assert pg_indexes == lite_indexes == {"runs_name", "runs_created", "jobs_claim",
                                          "jobs_leases"}

def test_the_claim_query_uses_its_index_on_sqlite(tmp_path):
    from hokuro.store.ledger.sqlite_jobs import J

    db = open_ledger(tmp_path / "l.db")
    db.close()
    with sqlite3.connect(tmp_path / "l.db") as conn:
        for scopes in (None, '["a", "b"]'):
            plan = " | ".join(row[-1] for row in conn.execute(
                "EXPLAIN QUERY PLAN " + J["claim_jobs"],
                {"scopes": scopes, "now": 1.0, "limit": 10, "run_id": None, "runs": None,
                 "owner": "o", "lease_until": 2.0}))
            assert "SEARCH c USING INDEX jobs_claim (scope=?)" in plan
            assert "SEARCH e USING INDEX jobs_leases (lease_until<?)" in plan
            assert "SCAN jobs" not in plan and "SCAN c" not in plan


@pytest.mark.postgres
def test_the_claim_query_uses_its_index_on_postgresql(pg_url):
    import psycopg

    from hokuro.store.ledger.postgres_jobs import J

    db = open_ledger(pg_url)
    try:
        db.create_run(run("r"))
        db.insert_jobs("r", [spec(f"{i}", scope=f"s{i % 4}") for i in range(20_000)], now=1.0)
        finish_all(db, now=2.0, limit=15_000)
        schema = db.schema
    finally:
        db.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute("ANALYZE")
        for scopes in (None, ["s1", "s2"]):
            rows = conn.execute("EXPLAIN " + J["claim_jobs"], {
                "scopes": scopes, "now": 10.0, "limit": 100, "run_id": None, "runs": None,
                "owner": "o",
                "lease_until": 20.0}).fetchall()
            plan = "\n".join(row[0] for row in rows)
            assert "Index Scan using jobs_claim on jobs" in plan, plan
            assert "jobs_leases" in plan, plan
            assert "Seq Scan on jobs" not in plan, plan


# -- PostgreSQL: a reply lost after the commit -----------------------------------------------

@pytest.fixture
def flaky(pg_url):
    """A PostgreSQL ledger whose next write commits but loses its reply (``lose_next``)."""
    from test_postgres import _LosesTheFirstReply

    db = _LosesTheFirstReply(pg_url, sleep=lambda _: None)
    db.create_run(run("r"))
    yield db
    db.close()


@pytest.mark.postgres
def test_a_claim_of_jobs_whose_reply_was_lost_still_hands_them_over(flaky):
    flaky.insert_jobs("r", [spec("a"), spec("b"), spec("c")], now=1.0)
    flaky.lose_next = True
    assert [(j.job_id, j.attempts) for j in claim(flaky, limit=2)] == [("a", 1), ("b", 1)]
    assert flaky.reconnects == 1
    assert [j.job_id for j in claim(flaky, now=11.0)] == ["c"]


@pytest.mark.postgres
def test_a_group_commit_whose_reply_was_lost_is_reported_written_and_applied_once(flaky):
    flaky.insert_jobs("r", [spec("a"), spec("b"), spec("join", "a", "b")], now=1.0)
    jobs = {j.job_id: j for j in claim(flaky)}
    flaky.claim_many([Claim(key="task-a", fn="mod.step", owner=OWNER, lease_until=99.0,
                            now=10.0)])
    flaky.lose_next = True
    fan = [spec("a/0/body", "a")]
    tasks = [("task-a", OWNER, Outcome(status="done", finished_at=11.0, result=b"\xc0"))]
    assert flaky.commit([outcome(jobs["a"], children=fan)], tasks, now=11.0) == [True]
    assert flaky.reconnects == 1
    # Counted down once (the join still waits for b), fan-out inserted once.
    assert statuses(flaky) == {"a": "done", "b": "running", "join": "blocked",
                               "a/0/body": "queued"}
    assert flaky.get_many(["task-a"])["task-a"].status == "done"


@pytest.mark.postgres
def test_a_batch_of_task_claims_whose_reply_was_lost_is_still_ours(flaky):
    flaky.lose_next = True
    results = flaky.claim_many([Claim(key=k, fn="mod.f", owner=OWNER, lease_until=99.0,
                                      now=10.0) for k in ("x", "y")])
    assert [(r.outcome, r.attempt) for r in results] == [("claimed", 1), ("claimed", 1)]
    assert flaky.claim(Claim(key="x", fn="mod.f", owner=OTHER, lease_until=99.0,
                             now=11.0)).outcome == "busy"
