"""One Spot, one namespace: Spots that share a PostgreSQL database (a schema each) or meet
on one SQLite file never see, serve, count or remove each other's records; older
single-Spot databases are adopted; readers find a Spot's blob store without being told."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hokuro import ConfigurationError, Spot
from hokuro.admin.maintenance import MaintenanceService
from hokuro.cli import main
from hokuro.errors import SchemaError
from hokuro.model.records import Record, Status
from hokuro.store.ledger import open_ledger
from hokuro.store.ledger.spot_schemas import SCHEMA_VERSION as PG_SCHEMA_VERSION
from hokuro.store.ledger.sqlite import SCHEMA_VERSION

psycopg = pytest.importorskip("psycopg")


def hokuro(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def counted(spot: Spot, calls: list[str], *, fail: bool = False, **options):
    """The same function (same name, so the same keys) marked in ``spot``; each execution
    appends the Spot's name to ``calls``."""
    @spot.mark(name="shared.work", **options)
    def work(n):
        calls.append(spot.name)
        if fail:
            raise ValueError(f"{spot.name} fails on {n}")
        return f"{n} by {spot.name}"

    return work


def catalog(url: str, schema: str) -> dict[str, list[tuple]]:
    """What a schema holds: tables with their columns, indexes, constraints."""
    with psycopg.connect(url, autocommit=True) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default, "
            "collation_name FROM information_schema.columns WHERE table_schema = %s "
            "ORDER BY table_name, ordinal_position", (schema,)).fetchall()
        indexes = conn.execute(
            "SELECT tablename, indexname, replace(indexdef, %s, 'S') FROM pg_indexes "
            "WHERE schemaname = %s ORDER BY indexname", (schema, schema)).fetchall()
        constraints = conn.execute(
            "SELECT conname, contype, pg_get_constraintdef(c.oid) FROM pg_constraint c "
            "JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = %s "
            "ORDER BY conname", (schema,)).fetchall()
        meta = conn.execute(
            f'SELECT name, value FROM "{schema}".hokuro_meta ORDER BY name').fetchall()
    return {"columns": columns, "indexes": indexes, "constraints": constraints,
            "meta": [row for row in meta if row[0] != "blobs"]}


def make_schema_1(url: str, records: int = 3) -> list[str]:
    """A database as hokuro 0.1 left it: schema 1, its tables in the default schema."""
    from hokuro.store.ledger.postgres import Q

    keys = [f"{n:032x}" for n in range(records)]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(Q["create_meta"])
        conn.execute(Q["migration_1"])
        conn.execute("INSERT INTO hokuro_meta VALUES ('schema_version', '1')")
        for key in keys:
            conn.execute("INSERT INTO tasks (key, fn, status, result, codec, size, created_at, "
                         "updated_at) VALUES (%s, 'old.fn', 'done', %s, 'msgpack', 1, 1, 1)",
                         (key, b"\xc3"))
    return keys


def schemas(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [name for (name,) in conn.execute(
            "SELECT DISTINCT schemaname FROM pg_tables WHERE schemaname NOT IN "
            "('pg_catalog', 'information_schema') ORDER BY 1")]


# -- PostgreSQL: two Spots, one database ---------------------------------------------------------

pg = pytest.mark.postgres


@pg
def test_two_spots_in_one_database_never_serve_each_others_results(pg_url, workspace):
    calls: list[str] = []
    with Spot("a", db=pg_url) as a, Spot("b", db=pg_url) as b:
        work_a, work_b = counted(a, calls), counted(b, calls)
        assert work_a.key_of(1) == work_b.key_of(1)  # same function, same key
        assert work_a(1) == "1 by a"
        assert work_b(1) == "1 by b"
        assert work_a(1) == "1 by a" and work_b(1) == "1 by b"
        assert calls == ["a", "b"]
        assert a.ledger.get(work_a.key_of(1)).status == Status.DONE
        a.forget(work_a, 1)
        assert b.status(work_b, 1) == "done" and a.status(work_a, 1) == "missing"


@pg
@pytest.mark.s3
def test_two_spots_with_their_own_blob_stores_each_compute_once_then_hit(pg_url, s3_url,
                                                                         workspace):
    calls: list[str] = []
    with Spot("a", db=pg_url, blobs=s3_url + "/a") as a, \
            Spot("b", db=pg_url, blobs=s3_url + "/b") as b:
        work_a = counted(a, calls, save_blob=True)
        work_b = counted(b, calls, save_blob=True)
        for _ in range(3):
            assert work_a(7) == "7 by a"
            assert work_b(7) == "7 by b"
    assert calls == ["a", "b"]


@pg
def test_stats_of_each_spot_count_only_its_own(pg_url, workspace):
    with Spot("a", db=pg_url) as a, Spot("b", db=pg_url) as b:
        work_a, work_b = counted(a, []), counted(b, [])
        for n in range(3):
            work_a(n)
        work_b(0)
        assert a.stats()["counts"] == {"total": 3, "done": 3}
        assert b.stats()["counts"] == {"total": 1, "done": 1}
        with MaintenanceService.from_spot(b) as service:
            assert service.summary()["records"] == 1
            assert [t.key for t in service.get_history()] == [work_b.key_of(0)]


@pg
def test_clear_prune_and_errors_of_one_spot_leave_the_other(pg_url, workspace):
    with Spot("a", db=pg_url) as a, Spot("b", db=pg_url) as b:
        fail_a, fail_b = counted(a, [], fail=True), counted(b, [], fail=True)
        for n in range(2):
            with pytest.raises(ValueError):
                fail_a(n)
        with pytest.raises(ValueError):
            fail_b(5)
        with MaintenanceService.from_spot(a) as service_a, \
                MaintenanceService.from_spot(b) as service_b:
            assert [g.count for g in service_a.error_groups()] == [2]
            assert [g.count for g in service_b.error_groups()] == [1]
            assert [r.key for r in service_b.failed_tasks()] == [fail_b.key_of(5)]
            assert service_a.prune(0).records == 2
            assert service_b.stats()["counts"]["total"] == 1
            counted(a, [])(9)
            assert service_a.clear().records == 1
            assert service_b.stats()["counts"] == {"total": 1, "failed": 1}
            assert service_a.stats()["counts"] == {"total": 0}


@pg
@pytest.mark.s3
def test_clean_of_one_spot_keeps_the_blobs_another_spot_of_its_database_names(
        pg_url, s3_url, workspace):
    # Both Spots keep their blobs in one store: a blob of b is no orphan of a.
    with Spot("a", db=pg_url, blobs=s3_url) as a, Spot("b", db=pg_url, blobs=s3_url) as b:
        counted(a, [], save_blob=True)(1)
        counted(b, [], save_blob=True)(2)
        with MaintenanceService.from_spot(a) as service:
            assert service.scan_garbage(grace_period=0) == []
            assert service.clean_garbage(orphan_grace_seconds=0).orphans == 0
        assert counted(b, [], save_blob=True)(2) == "2 by b"
        assert b.counters["hits"] == 1


@pg
def test_limiters_stay_shared_by_name_across_the_spots_of_a_database(pg_url, workspace):
    with Spot("a", db=pg_url) as a, Spot("b", db=pg_url) as b:
        api_a = a.limiter(name="api", limits="1/hour")
        api_b = b.limiter(name="api", limits="1/hour")
        assert api_a.try_acquire()
        assert not api_b.try_acquire()


@pg
def test_a_long_spot_name_gets_a_schema_of_its_own(pg_url, workspace):
    long_a, long_b = "x" * 100 + "a", "x" * 100 + "b"
    calls: list[str] = []
    with Spot(long_a, db=pg_url) as a, Spot(long_b, db=pg_url) as b:
        counted(a, calls)(1)
        counted(b, calls)(1)
        assert calls == [long_a, long_b]
    assert len(schemas(pg_url)) == 3  # the default schema holds only the layout's marker
    names = json.loads(hokuro("spots", pg_url, "--json").stdout)
    assert sorted(s["name"] for s in names["spots"]) == [long_a, long_b]


# -- PostgreSQL: schema 1 databases --------------------------------------------------------------

@pg
def test_a_schema_1_database_is_adopted_by_the_first_spot_and_keeps_its_records(
        pg_url, workspace):
    keys = make_schema_1(pg_url)
    with Spot("first", db=pg_url) as first:
        assert [first.ledger.get(k).status for k in keys] == [Status.DONE] * 3
        assert first.ledger.schema_version() == PG_SCHEMA_VERSION
    assert schemas(pg_url) == ["hokuro_first", "public"]
    with Spot("second", db=pg_url) as second:
        assert second.ledger.get(keys[0]) is None  # the records stayed with the first
    with Spot("first", db=pg_url) as first:
        assert first.ledger.get(keys[0]) is not None


@pg
def test_spots_opening_a_schema_1_database_at_once_adopt_it_once(pg_url, workspace):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    keys = make_schema_1(pg_url)
    names = [f"s{n % 4}" for n in range(8)]  # four Spots, each opened twice at once
    barrier = threading.Barrier(len(names))

    def open_spot(name: str) -> tuple[str, bool]:
        barrier.wait(timeout=30)
        with Spot(name, db=pg_url) as spot:
            return name, spot.ledger.get(keys[0]) is not None

    with ThreadPoolExecutor(len(names)) as pool:
        seen = list(pool.map(open_spot, names))
    holders = {name for name, has in seen if has}
    assert len(holders) == 1  # one Spot adopted the records; no other sees them
    assert schemas(pg_url) == ["hokuro_s0", "hokuro_s1", "hokuro_s2", "hokuro_s3", "public"]


@pg
def test_a_migrated_schema_1_database_matches_a_fresh_one(pg_url, pg_admin, workspace):
    make_schema_1(pg_url, records=0)
    Spot("s", db=pg_url).close()
    fresh = f"{pg_url}_fresh"
    name = fresh.rsplit("/", 1)[1]
    pg_admin.execute(f'CREATE DATABASE "{name}"')
    try:
        Spot("s", db=fresh).close()
        assert catalog(pg_url, "hokuro_s") == catalog(fresh, "hokuro_s")
        assert catalog(pg_url, "public") == catalog(fresh, "public")
    finally:
        pg_admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s", (name,))
        pg_admin.execute(f'DROP DATABASE "{name}"')


@pg
def test_reading_a_schema_1_database_moves_nothing(pg_url, workspace):
    keys = make_schema_1(pg_url)
    for args in (["stats", pg_url], ["stats", pg_url, "--spot", "some"], ["spots", pg_url],
                 ["list", pg_url]):
        result = hokuro(*args, "--json")
        assert result.exit_code == 0, result.output
    assert json.loads(hokuro("stats", pg_url, "--json").stdout)["counts"]["total"] == 3
    assert schemas(pg_url) == ["public"]
    ledger = open_ledger(pg_url, read_only=True)
    try:
        assert ledger.get(keys[0]) is not None and ledger.schema_version() == 1
    finally:
        ledger.close()


@pg
def test_an_older_hokuro_is_told_to_upgrade_by_the_marker_of_schema_2(pg_url, workspace):
    Spot("a", db=pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        # What hokuro 0.1 reads first: the version in the default schema's hokuro_meta.
        assert conn.execute("SELECT value FROM hokuro_meta WHERE name = 'schema_version'"
                            ).fetchone() == (str(PG_SCHEMA_VERSION),)
        assert conn.execute("SELECT to_regclass('tasks')").fetchone() == (None,)


# -- PostgreSQL: readers find the Spot and its blob store ----------------------------------------

@pg
@pytest.mark.s3
def test_show_on_a_database_url_finds_the_s3_blobs_without_being_told(pg_url, s3_url,
                                                                       workspace):
    with Spot("pg", db=pg_url, blobs=s3_url) as spot:
        work = counted(spot, [], save_blob=True)
        work(3)
        key = work.key_of(3)
    shown = json.loads(hokuro("show", pg_url, key, "--json").stdout)
    assert shown["result"] == "3 by pg" and shown["result_note"] is None
    assert hokuro("clear", pg_url, "--yes").exit_code == 0
    with MaintenanceService.from_target(pg_url) as service:
        assert service.blobs.describe() == s3_url
        assert list(service.blobs.list_blobs()) == []


@pg
def test_the_blob_store_recorded_holds_no_credentials(pg_url, workspace, tmp_path):
    with Spot("a", db=pg_url, blobs=tmp_path / "blobs") as spot:
        assert spot.ledger.get_meta("blobs") is None  # opening to read writes nothing
        counted(spot, [])(1)  # the first task records where the blobs are
        assert spot.ledger.get_meta("blobs") == str(tmp_path / "blobs")
    with MaintenanceService.from_target(pg_url, read_only=True) as service:
        assert service.blobs.describe() == str(tmp_path / "blobs")


@pg
def test_the_command_line_takes_the_only_spot_or_asks_for_one(pg_url, workspace):
    with Spot("a", db=pg_url) as a:
        counted(a, [])(1)
    assert json.loads(hokuro("stats", pg_url, "--json").stdout)["counts"]["total"] == 1
    with Spot("b", db=pg_url) as b:
        for n in range(2):
            counted(b, [])(n)
    several = hokuro("stats", pg_url)
    assert several.exit_code == 2
    assert "a, b" in several.stderr and "--spot" in several.stderr
    listed = json.loads(hokuro("spots", pg_url, "--json").stdout)["spots"]
    assert [(s["name"], s["records"]) for s in listed] == [("a", 1), ("b", 2)]
    text = hokuro("spots", pg_url).stdout
    assert "a" in text and "b" in text
    assert json.loads(hokuro("stats", pg_url, "--spot", "b", "--json").stdout
                      )["counts"]["total"] == 2
    unknown = hokuro("stats", pg_url, "--spot", "c")
    assert unknown.exit_code == 1 and "a, b" in unknown.stderr
    assert hokuro("clear", pg_url, "--spot", "a", "--yes").exit_code == 0
    assert json.loads(hokuro("stats", pg_url, "--spot", "b", "--json").stdout
                      )["counts"]["total"] == 2
    assert json.loads(hokuro("stats", pg_url, "--spot", "a", "--json").stdout
                      )["counts"]["total"] == 0


@pg
def test_commands_never_create_a_spot_in_a_database(pg_url, workspace):
    for args in (["stats", pg_url], ["clear", pg_url, "--yes"],
                 ["clear", pg_url, "--spot", "x", "--yes"]):
        assert hokuro(*args).exit_code == 1
    assert schemas(pg_url) == []
    Spot("a", db=pg_url).close()
    assert hokuro("clear", pg_url, "--spot", "x", "--yes").exit_code == 1
    assert schemas(pg_url) == ["hokuro_a", "public"]


# -- SQLite: a ledger file belongs to one Spot -----------------------------------------------------

def test_a_second_spot_on_the_ledger_file_of_another_is_refused(workspace):
    path = workspace / "shared.db"
    with Spot("a", db=path) as a:
        counted(a, [])(1)
    before = path.read_bytes()
    with pytest.raises(ConfigurationError) as refused:
        Spot("b", db=path)
    message = str(refused.value)
    assert str(path) in message and "'a'" in message and "own file" in message
    assert path.read_bytes() == before
    with Spot("a", db=path) as a:  # its owner opens it as ever
        assert a.stats()["counts"]["total"] == 1


def test_a_ledger_file_without_an_owner_is_adopted_by_the_first_spot(workspace):
    path = workspace / "old.db"
    open_ledger(path).close()  # as hokuro 0.1 made it: no Spot recorded
    Spot("first", db=path).close()
    with pytest.raises(ConfigurationError, match="first"):
        Spot("second", db=path)
    ledger = open_ledger(path, read_only=True)
    try:
        assert ledger.spot == "first"
    finally:
        ledger.close()


def make_file_of_schema_1(path) -> None:
    """A ledger file as hokuro 0.1 left it: schema 1, no Spot recorded, one record."""
    import sqlite3

    from hokuro.store.ledger.sqlite import Q

    conn = sqlite3.connect(path)
    conn.execute(Q["create_meta"])
    for statement in Q["migration_1"].split(";"):
        conn.execute(statement)
    conn.execute("INSERT INTO hokuro_meta VALUES ('schema_version', '1')")
    conn.execute("INSERT INTO tasks (key, fn, status, args, result, size, created_at, "
                 "updated_at) VALUES (?, 'old.fn', 'done', ?, ?, 10, 1, 1)",
                 ("ab" * 16, b"a" * 100, b"r" * 10))
    conn.commit()
    conn.close()


def sqlite_schema(path) -> list[tuple]:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master "
                            "ORDER BY name").fetchall()
    finally:
        conn.close()


def test_a_schema_1_ledger_file_is_read_as_it_is_then_migrated_by_its_spot(workspace):
    old, fresh = workspace / "old.db", workspace / "fresh.db"
    make_file_of_schema_1(old)
    before = sqlite_schema(old)
    stats = json.loads(hokuro("stats", str(old), "--json").stdout)
    assert stats["counts"]["total"] == 1 and stats["size"] == 10  # no arguments counted
    assert sqlite_schema(old) == before  # the reader migrated nothing
    with Spot("old", db=old) as spot:
        assert spot.ledger.schema_version() == SCHEMA_VERSION and spot.ledger.spot == "old"
        assert spot.stats()["size"] == 110  # the result and now the arguments
    Spot("old", db=fresh).close()
    assert sqlite_schema(old) == sqlite_schema(fresh)


def test_spot_option_on_a_ledger_file_must_name_its_spot(workspace):
    with Spot("jobs") as spot:
        counted(spot, [])(1)
    assert hokuro("stats", "jobs", "--spot", "jobs").exit_code == 0
    other = hokuro("stats", "jobs", "--spot", "other")
    assert other.exit_code == 2 and "'jobs'" in other.stderr


def test_a_spot_name_that_looks_like_a_file_is_refused_with_the_fix(workspace):
    with pytest.raises(ConfigurationError, match=r"db=\"results.db\"|db='results.db'"):
        Spot("results.db")
    assert not (workspace / ".hokuro").exists()


def test_stats_of_a_ledger_file_name_finds_it_or_says_what_to_type(workspace):
    with Spot("results") as spot:
        counted(spot, [])(1)
    found = hokuro("stats", "results.db", "--json")
    assert found.exit_code == 0 and json.loads(found.stdout)["counts"]["total"] == 1
    missing = hokuro("stats", "other.db")
    assert missing.exit_code == 1
    assert "known Spots: results" in missing.stderr


def test_gc_in_a_folder_without_a_workspace_says_so(workspace):
    result = hokuro("gc")
    assert result.exit_code == 1
    assert "no hokuro workspace" in result.stderr and ".hokuro" in result.stderr


def test_stats_sizes_count_the_stored_arguments(workspace):
    with Spot("s") as spot:
        @spot.mark
        def f(text):
            return 1

        f("x" * 10_000)
        record = spot.ledger.get(f.key_of("x" * 10_000))
        assert spot.stats()["size"] == record.size + len(record.args) > 10_000


@pg
def test_stats_sizes_count_the_stored_arguments_on_postgresql(pg_url, workspace):
    with Spot("s", db=pg_url) as spot:
        @spot.mark
        def f(text):
            return 1

        f("x" * 10_000)
        record = spot.ledger.get(f.key_of("x" * 10_000))
        assert spot.stats()["size"] == record.size + len(record.args) > 10_000


@pg
def test_a_read_only_ledger_of_a_database_with_several_spots_needs_a_name(pg_url, workspace):
    Spot("a", db=pg_url).close()
    Spot("b", db=pg_url).close()
    with pytest.raises(ConfigurationError, match="a, b"):
        open_ledger(pg_url, read_only=True)
    with pytest.raises(SchemaError, match="a, b"):
        open_ledger(pg_url, read_only=True, spot="c")
    ledger = open_ledger(pg_url, read_only=True, spot="b")
    try:
        assert ledger.spot == "b"
    finally:
        ledger.close()



@pg
def test_retry_never_replays_a_spot_failure_through_another_spot(pg_url, workspace,
                                                                    monkeypatch):
    import sys
    import textwrap

    module = "namespace_jobs"
    (workspace / f"{module}.py").write_text(textwrap.dedent(f"""
        import hokuro
        spot = hokuro.Spot("b", db={pg_url!r})

        @spot.mark
        def parse(text):
            return text.upper()
    """))
    monkeypatch.syspath_prepend(str(workspace))
    try:
        with Spot("a", db=pg_url) as a:
            # A failure of Spot a whose function is now marked in Spot b, same database.
            a.ledger.put(Record(key="ab" * 16, fn=f"{module}.parse", status=Status.FAILED,
                                fn_path=f"{module}:parse", args=b"\x81\xa4text\xa1x",
                                created_at=1, updated_at=1))
            [result] = MaintenanceService.from_spot(a).retry_failed(search_path=workspace)
            assert result.outcome == "other_ledger" and "Spot 'b'" in result.detail
            assert a.ledger.get("ab" * 16).status == Status.FAILED
    finally:
        imported = sys.modules.pop(module, None)
        if imported is not None:
            imported.spot.close()
