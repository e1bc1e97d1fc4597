"""What only the PostgreSQL ledger promises: a shared schema made safely, a read-only mode
that creates nothing, recovery from lost connections, and no password in any message."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

import pytest

from hokuro.errors import ConfigurationError, LedgerError, MissingDependency, SchemaError
from hokuro.model.records import RECORD_COLUMNS, Claim, Outcome, Status
from hokuro.store.ledger import open_ledger

pytestmark = pytest.mark.postgres

psycopg = pytest.importorskip("psycopg")
from hokuro.store.ledger.postgres import PostgresLedger, Q  # noqa: E402
from hokuro.store.ledger.spot_schemas import SCHEMA_VERSION  # noqa: E402


def claim(key="k1", owner="h|1|1.00|a", now=100.0, lease=30.0) -> Claim:
    return Claim(key=key, fn="mod.f", owner=owner, lease_until=now + lease, now=now)


def done(now=110.0) -> Outcome:
    return Outcome(status=Status.DONE, finished_at=now, result=b"r", size=1)


def _tables(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT schemaname || '.' || tablename FROM pg_tables WHERE schemaname NOT IN "
            "('pg_catalog', 'information_schema') ORDER BY 1").fetchall()
    return [name for (name,) in rows]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the schema --------------------------------------------------------------------------------

_OPENER = """
import sys, time
from hokuro.store.ledger import open_ledger
url, start_at = sys.argv[1], float(sys.argv[2])
time.sleep(max(0.0, start_at - time.time()))
db = open_ledger(url)
print(db.schema_version())
db.close()
"""


def test_eight_processes_opening_a_fresh_database_at_once_all_succeed(pg_url):
    start_at = f"{time.time() + 1.5:.3f}"
    procs = [subprocess.Popen([sys.executable, "-c", _OPENER, pg_url, start_at],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(8)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.strip() == str(SCHEMA_VERSION)
    # The Spot's tables in its schema; in the default one, only the layout's marker.
    assert _tables(pg_url) == ["hokuro_default.hokuro_meta", "hokuro_default.job_edges",
                               "hokuro_default.jobs", "hokuro_default.runs",
                               "hokuro_default.tasks", "hokuro_default.tasks_tally",
                               "hokuro_default.workers",
                               "public.hokuro_meta"]


def test_eight_threads_opening_a_fresh_database_at_once_all_succeed(pg_url):
    barrier = threading.Barrier(8)

    def open_it(_: int) -> int | None:
        barrier.wait(timeout=10)
        db = PostgresLedger(pg_url, pool_min=0)
        try:
            return db.schema_version()
        finally:
            db.close()

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(open_it, range(8))) == [SCHEMA_VERSION] * 8


def test_the_schema_has_the_record_columns_and_the_sqlite_indexes(pg_url, tmp_path):
    import sqlite3

    PostgresLedger(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        columns = [name for (name,) in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'tasks' "
            "ORDER BY ordinal_position")]
        indexes = {name for (name,) in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'tasks'")}
    # Column order differs by design (SQLite keeps large columns last); names must not.
    # args_size is computed by the database (the size of the stored arguments, for stats).
    assert sorted(columns) == sorted([*RECORD_COLUMNS, "args_size"])
    open_ledger(tmp_path / "l.db").close()
    with sqlite3.connect(tmp_path / "l.db") as lite:
        lite_columns = [row[1] for row in lite.execute("PRAGMA table_xinfo(tasks)")]
        assert sorted(lite_columns) == sorted([*RECORD_COLUMNS, "args_size"])
        lite_indexes = {name for (name,) in lite.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tasks' "
            "AND name NOT LIKE 'sqlite_autoindex%'")}
    assert indexes == lite_indexes | {"tasks_pkey"}


def test_a_newer_schema_is_refused_with_advice(pg_url):
    PostgresLedger(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE hokuro_meta SET value = '99' WHERE name = 'schema_version'")
    for read_only in (False, True):
        with pytest.raises(SchemaError, match="upgrade hokuro"):
            PostgresLedger(pg_url, read_only=read_only)


def test_read_only_open_of_an_empty_database_creates_nothing(pg_url):
    with pytest.raises(SchemaError, match="no hokuro ledger"):
        open_ledger(pg_url, read_only=True)
    assert _tables(pg_url) == []


def test_a_read_only_session_is_refused_writes_by_the_server_too(pg_url):
    PostgresLedger(pg_url).close()
    reader = PostgresLedger(pg_url, read_only=True)
    try:
        params = dict.fromkeys(RECORD_COLUMNS)
        params.update(key="x", fn="f", status="done", attempts=0, created_at=1.0,
                      updated_at=1.0)
        # Past the Python guard, straight to the database.
        with pytest.raises(LedgerError, match="read-only"):
            reader._run(lambda conn, _: conn.execute(Q["put"], params))
    finally:
        reader.close()


# -- connections -------------------------------------------------------------------------------

def _terminate(pg_admin, url: str) -> int:
    name = url.rsplit("/", 1)[1].split("?")[0]
    rows = pg_admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchall()
    return len(rows)


def test_the_ledger_recovers_after_its_connections_are_terminated(pg_url, pg_admin):
    db = PostgresLedger(pg_url, pool_min=4, sleep=lambda _: None)
    try:
        with ThreadPoolExecutor(8) as pool:  # several connections in the pool
            list(pool.map(lambda i: db.claim(claim(f"warm{i}")), range(32)))
        db.claim(claim())
        for round_ in range(2):
            assert _terminate(pg_admin, pg_url) >= 1
            assert db.lookup("k1").status == Status.RUNNING
            assert db.claim(claim(f"after{round_}")).outcome == "claimed"
        assert db.finish("k1", "h|1|1.00|a", done()) is True
        assert db.renew("h|1|1.00|a", ["after0", "after1"], 500.0) == {"after0", "after1"}
        assert len(list(db.find())) == 35
        assert db.stats(now=100.0)
        assert db.reconnects >= 2
    finally:
        db.close()


def test_concurrent_calls_after_termination_all_succeed(pg_url, pg_admin):
    db = PostgresLedger(pg_url, pool_min=4, pool_max=4)
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: db.lookup(f"k{i}"), range(16)))
        _terminate(pg_admin, pg_url)
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: db.claim(claim(f"k{i}")), range(40)))
        assert {r.outcome for r in results} == {"claimed"}
    finally:
        db.close()


class _LosesTheFirstReply(PostgresLedger):
    """A ledger whose first write commits but whose reply never arrives, as when the
    connection breaks right after COMMIT reached the server."""

    lose_next = False

    def _run(self, work):
        def flaky(conn, attempt):
            result = work(conn, attempt)
            if self.lose_next:
                self.lose_next = False
                raise psycopg.OperationalError("server closed the connection unexpectedly")
            return result

        return super()._run(flaky)


def test_a_claim_that_committed_before_its_reply_was_lost_is_still_ours(pg_url):
    db = _LosesTheFirstReply(pg_url, sleep=lambda _: None)
    try:
        db.lose_next = True
        first = db.claim(claim())
        assert (first.outcome, first.attempt) == ("claimed", 1)
        assert db.get("k1").attempts == 1 and db.reconnects == 1
        # and the rule still holds for anyone else
        assert db.claim(claim(owner="h|2|1.00|b")).outcome == "busy"
    finally:
        db.close()


def test_a_finish_that_committed_before_its_reply_was_lost_reports_success(pg_url):
    db = _LosesTheFirstReply(pg_url, sleep=lambda _: None)
    try:
        db.claim(claim())
        db.lose_next = True
        assert db.finish("k1", "h|1|1.00|a", done()) is True
        assert db.get("k1").status == Status.DONE
        assert db.finish("k1", "h|1|1.00|a", done(now=120.0)) is False
    finally:
        db.close()


def test_a_small_pool_serves_many_threads(pg_url):
    db = PostgresLedger(pg_url + "?pool_max=2")
    try:
        def work(worker: int) -> int:
            won = 0
            for i in range(20):
                won += db.claim(claim(f"{worker}-{i}")).outcome == "claimed"
                db.lookup(f"{worker}-{i}")
            return won

        with ThreadPoolExecutor(16) as pool:
            assert sum(pool.map(work, range(16))) == 320
    finally:
        db.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_uses_its_own_connections(pg_url):
    db = PostgresLedger(pg_url)
    try:
        db.claim(claim("parent"))
        pid = os.fork()
        if pid == 0:  # the child: use the ledger, drop what it inherited, exit
            code = 1
            try:
                import gc

                ok = db.claim(claim("child", owner="h|2|1.00|b")).outcome == "claimed"
                db.close()
                gc.collect()
                code = 0 if ok else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # The parent's connections were neither used nor closed by the child.
        assert db.get("child").owner == "h|2|1.00|b"
        assert db.reconnects == 0
    finally:
        db.close()


def test_url_options_set_the_pool_and_other_options_reach_libpq(pg_url):
    db = PostgresLedger(pg_url + "?pool_min=0&pool_max=3&application_name=mine&retries=1")
    try:
        assert (db._pool_min, db._pool_max, db._retries) == (0, 3, 1)
        name = db._run(lambda conn, _: conn.info.parameter_status("application_name"))
        assert name == "mine"
    finally:
        db.close()
    for bad in ("?pool_max=many", "?pool_min=5&pool_max=2", "?no_such_option=1",
                "?pool_timeout=soon", "?pool_timeout=0"):
        with pytest.raises(ConfigurationError):
            PostgresLedger(pg_url + bad)


# -- secrets -----------------------------------------------------------------------------------

def test_describe_masks_the_password(pg_url):
    url = pg_url.replace("postgres@", "postgres:s3cr%40t@") + "?sslmode=disable"
    db = PostgresLedger(url)  # the server trusts local users, so any password works
    try:
        assert db.describe() == pg_url.replace("postgres@", "postgres:***@") + \
            "?sslmode=disable"
        assert "s3cr" not in repr(db) and "s3cr" not in str(db)
    finally:
        db.close()


@pytest.mark.parametrize("url", [
    "postgresql://alice:hunter2secret@127.0.0.1:{port}/db?retries=0",
    "postgresql://alice@127.0.0.1:{port}/db?password=hunter2secret&retries=0",
    "postgresql://alice:hunter2%2Fsecret@127.0.0.1:{port}/db",
])
def test_an_unreachable_server_gives_an_error_without_the_password(url):
    url = url.format(port=_closed_port())
    started = time.monotonic()
    with pytest.raises(LedgerError) as caught:
        PostgresLedger(url, sleep=lambda _: None)
    assert time.monotonic() - started < 10
    text = "".join(traceback.format_exception(caught.value))
    assert "hunter2" not in text and "secret" not in text
    assert "alice:***@127.0.0.1" in str(caught.value) or "password=***" in str(caught.value)
    assert "check that the server is running" in str(caught.value)


def test_a_missing_psycopg_names_the_extra_to_install():
    code = ("import sys; sys.modules['psycopg'] = None\n"
            "from hokuro.errors import MissingDependency\n"
            "try:\n    import hokuro.store.ledger.postgres\n"
            "except MissingDependency as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert "pip install 'hokuro[postgres]'" in out
    assert issubclass(MissingDependency, ImportError)
