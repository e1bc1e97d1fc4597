"""SQL steps on SQLite and PostgreSQL: inputs as typed tables, the dict-with-one-table rule,
later parents as pipe1, pipe2, names that try to inject SQL, and PostgreSQL's schema cleaned
up after every step, failed ones too."""

from __future__ import annotations

import textwrap
import uuid

import psycopg
import pytest

from conftest import _admin_dsn
from hokuro import Spot
from hokuro.script import load
from hokuro.script.sql import SCHEMA_PREFIX, SqlInputError, run_postgres, run_sqlite

EVIL = 'x"; DROP TABLE t; --'
ROWS = [{"sales": 10, "spend": 3, "name": "a"}, {"sales": 0, "spend": 1, "name": "b"},
        {"sales": 7, "spend": 2.5, "name": None}]


@pytest.fixture(scope="module")
def pg_module(pg_admin):
    """One database for this module's step tests (each step cleans up after itself, which
    the tests check): creating and dropping one per test would cost seconds."""
    name = f"hokuro_t_sql_{uuid.uuid4().hex[:8]}"
    pg_admin.execute(f'CREATE DATABASE "{name}"')
    yield _admin_dsn(name)
    pg_admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = %s", (name,))
    pg_admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture(params=["sqlite", "postgres"])
def run_sql(request):
    if request.param == "sqlite":
        yield run_sqlite
        return
    url = request.getfixturevalue("pg_module")
    yield lambda query, table, inputs, step: run_postgres(url, query, table, inputs, step)
    assert _schemas(url) == []


def test_rows_become_a_typed_table_and_the_query_rows_come_back(run_sql):
    rows = run_sql("SELECT name, sales * 2 AS double, spend FROM t ORDER BY sales",
                   "t", [ROWS], "s")
    assert rows == [{"name": "b", "double": 0, "spend": 1.0},
                    {"name": None, "double": 14, "spend": 2.5},
                    {"name": "a", "double": 20, "spend": 3.0}]


def test_a_dict_holding_one_list_of_rows_gets_the_query_rows_in_a_copy(run_sql):
    data = {"config": {"account": 1}, "table_data": ROWS}
    out = run_sql("SELECT count(*) AS n FROM some_table", "some_table", [data], "s")
    assert out == {"config": {"account": 1}, "table_data": [{"n": 3}]}
    assert data["table_data"] is ROWS  # the input itself is untouched


def test_later_parents_are_pipe1_pipe2(run_sql):
    out = run_sql("SELECT t.name, pipe1.label, pipe2.k FROM t JOIN pipe1 ON t.name = pipe1.name"
                  " CROSS JOIN pipe2", "t",
                  [ROWS, [{"name": "a", "label": "first"}], [{"k": True}]], "s")
    assert [(r["name"], r["label"], bool(r["k"])) for r in out] == [("a", "first", True)]


def test_names_and_values_that_try_to_inject_sql_are_only_names_and_values(run_sql):
    rows = [{EVIL: "'); DROP TABLE t; --", "ok": 1}]
    out = run_sql(f'SELECT "{EVIL.replace(chr(34), chr(34) * 2)}" AS v, ok FROM t', "t",
                  [rows], "s")
    assert out == [{"v": "'); DROP TABLE t; --", "ok": 1}]


def test_sqlite_arithmetic_is_as_the_user_wrote_it():
    out = run_sqlite("SELECT spend / sales AS acos FROM t", "t",
                     [[{"sales": 10, "spend": 25}]], "s")
    assert out == [{"acos": 2}]  # integer division, as in SQLite


def test_json_bytes_and_other_values(run_sql):
    rows = [{"tags": ["a", "b"], "blob": b"\x00\x01", "flag": True, "when": object}]
    out = run_sql("SELECT tags, blob, flag FROM t", "t", [rows], "s")
    tags = out[0]["tags"]
    assert (tags if isinstance(tags, list) else __import__("json").loads(tags)) == ["a", "b"]
    assert bytes(out[0]["blob"]) == b"\x00\x01" and bool(out[0]["flag"]) is True


def test_an_empty_input_gives_an_empty_result_without_running_the_query(run_sql):
    assert run_sql("SELECT nonsense FROM nowhere", "t", [[]], "s") == []
    assert run_sql("SELECT 1", "t", [{"cfg": 1, "rows": []}], "s") == {"cfg": 1, "rows": []}


@pytest.mark.parametrize("value, said", [
    (None, "its input for table t is a NoneType"),
    ([1, 2], "its input for table t is a list"),
    ({"a": [{"x": 1}], "b": [{"y": 2}]}, "a dict holding 2 lists of rows"),
    ({"a": 1}, "a dict holding 0 lists of rows")])
def test_inputs_that_are_not_rows_are_refused_clearly(value, said):
    with pytest.raises(SqlInputError) as caught:
        run_sqlite("SELECT 1", "t", [value], "step_x")
    assert said in str(caught.value) and str(caught.value).startswith("step_x: ")


def _schemas(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
            (SCHEMA_PREFIX + "%",)).fetchall()]


def test_postgres_steps_leave_no_schema_behind_even_when_they_fail(pg_url):
    run_postgres(pg_url, "SELECT * FROM t", "t", [ROWS], "s")
    with pytest.raises(psycopg.Error):
        run_postgres(pg_url, "SELECT no_such_column FROM t", "t", [ROWS], "s")
    assert _schemas(pg_url) == []
    with psycopg.connect(pg_url) as conn:  # and nothing in public either
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
                            ).fetchone()[0] == 0


def test_a_percent_sign_in_a_postgres_query_is_sql_not_a_placeholder(pg_module):
    out = run_postgres(pg_module, "SELECT name FROM t WHERE name LIKE 'a%'", "t", [ROWS], "s")
    assert out == [{"name": "a"}]


SCRIPT = """
rows:
    python
    rows
    steps.py
lite:
    sqlite3
    some_table
    `SELECT name, CASE WHEN sales = 0 THEN 0.0 ELSE spend / sales END AS acos FROM some_table`
pg:
    postgres
    another_table
    `
select name, acos * 2 as twice from another_table order by name
`
p = rows | lite | pg
p()
"""


def test_sql_steps_in_a_script_run_on_sqlite_and_postgres(tmp_path, pg_module):
    pg_url = pg_module
    (tmp_path / "steps.py").write_text(textwrap.dedent("""
        def rows():
            return {"config": "c", "rows": [{"name": "a", "sales": 4, "spend": 2.0},
                                            {"name": "b", "sales": 0, "spend": 1}]}
    """))
    (tmp_path / "s.bue").write_text(SCRIPT)
    with Spot("sql", workspace=tmp_path / ".hokuro") as spot:
        script = load(tmp_path / "s.bue", spot, postgres_url=pg_url)
        run = spot.run(script.plan, progress=False)
        assert run.summary()["failed"] == 0, run.failures()
        assert run.results() == [{"config": "c", "rows": [
            {"name": "a", "twice": 1.0}, {"name": "b", "twice": 0.0}]}]
    assert _schemas(pg_url) == []


def test_a_postgres_step_without_a_database_fails_its_job_saying_what_to_set(
        tmp_path, monkeypatch):
    monkeypatch.delenv("HOKURO_POSTGRES_URL", raising=False)
    (tmp_path / "s.bue").write_text("q:\n    pg\n    t\n    `select 1 as one`\np = | q\np()\n")
    with Spot("nopg", workspace=tmp_path / ".hokuro") as spot:
        script = load(tmp_path / "s.bue", spot)
        run = spot.run(script.plan, progress=False)
        [failure] = run.failures()
        assert "needs a database: set HOKURO_POSTGRES_URL" in failure.error


def test_the_spots_postgresql_ledger_is_the_default_database(tmp_path, pg_url, monkeypatch):
    monkeypatch.delenv("HOKURO_POSTGRES_URL", raising=False)
    (tmp_path / "s.bue").write_text("q:\n    pg\n    t\n    `select 41 + 1 as n`\np = | q\np()\n")
    with Spot("pgspot", db=pg_url, workspace=tmp_path / ".hokuro") as spot:
        run = spot.run(load(tmp_path / "s.bue", spot).plan, progress=False)
        assert run.results() == [[{"n": 42}]]
