"""The ``hokuro`` command line: every command, its exit codes, and that reading never writes."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
import uuid
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from hokuro import Spot
from hokuro.admin.maintenance import MaintenanceService
from hokuro.cli import main, reference
from hokuro.model.records import Record, Status
from hokuro.store.blobs.local import TEMP_SUFFIX

README = Path(__file__).resolve().parents[1] / "README.md"
READ_ONLY = ("list", "show", "log", "stats", "errors")


def hokuro(*args: str, input: str | None = None):
    result = CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)
    assert "\x1b[" not in result.output, "escape codes in output that is not a terminal"
    assert "Traceback" not in result.stderr or args[0] in ("show", "errors")
    return result


def tree(folder: Path, *, sqlite_files: bool = True) -> dict[str, int | None]:
    """Every file and folder under ``folder`` with its modification time.

    ``sqlite_files=False`` leaves out what a read-only SQLite connection may add to a WAL
    ledger's folder (its -shm/-wal files, and so that folder's own mtime).
    """
    found: dict[str, int | None] = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        if not sqlite_files and name.endswith(("-shm", "-wal")):
            continue
        holds_ledger = path.is_dir() and any(path.glob("*.db"))
        found[name] = None if holds_ledger and not sqlite_files else path.stat().st_mtime_ns
    return found


@pytest.fixture
def filled(workspace):
    """A Spot "jobs" with done, failed and logged tasks; closed before the test runs."""
    with Spot("jobs") as spot:
        @spot.mark
        def work(n, ctx):
            ctx.logger.info("working on %s", n)
            if n == 3:
                raise ValueError("three is unlucky")
            return {"n": n, "square": n * n}

        for n in range(6):
            try:
                work(n)
            except ValueError:
                pass
        keys = {n: work.key_of(n) for n in range(6)}
    return keys


def put(spot: Spot, key: str, *, fn: str = "coll", status: str = Status.DONE, age: float = 0,
        **fields) -> None:
    now = time.time() - age
    spot.ledger.put(Record(key=key, fn=fn, status=status, created_at=now, started_at=now,
                           finished_at=now, updated_at=now, **fields))


# -- help and documentation ------------------------------------------------------------------

def test_every_command_and_option_has_help():
    for name, command in reference.commands():
        assert command.help and command.help.strip(), name
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.opts}"
        result = hokuro(*name.split(), "--help")
        assert result.exit_code == 0 and "Usage: " in result.output


def test_the_readme_documents_every_command_as_help_says():
    block = reference.readme_block(README)
    assert block is not None, "README.md lacks the <!-- cli-start --> block"
    assert block == reference.render(), \
        "README is out of date: run python -m hokuro.cli.reference --write README.md"
    for name, _ in reference.commands():
        assert f"### `hokuro {name}`" in block


def test_version():
    assert hokuro("version").output.startswith("hokuro ")
    assert "version" in json.loads(hokuro("version", "--json").output)


# -- reading never writes --------------------------------------------------------------------

@pytest.mark.parametrize("target", ["ghost", "ghost.db", "sub/ghost.db", "sqlite:///x/y.db"])
def test_read_only_commands_on_a_missing_spot_create_nothing(workspace, target):
    for command in READ_ONLY:
        args = [command, target] + (["abc"] if command in ("show", "log") else [])
        result = hokuro(*args)
        assert result.exit_code == 1, (command, result.output)
        assert "Error:" in result.stderr and "Traceback" not in result.output
    assert hokuro("spots").exit_code == 1
    assert list(workspace.iterdir()) == []


def test_read_only_commands_leave_an_existing_spot_untouched(filled, workspace):
    before = tree(workspace, sqlite_files=False)
    key = filled[1]
    for args in (["list", "jobs"], ["show", "jobs", key[:8]], ["log", "jobs", key],
                 ["stats", "jobs"], ["errors", "jobs"], ["spots"], ["list", "jobs", "--json"]):
        assert hokuro(*args).exit_code == 0, args
    # SQLite makes its -shm/-wal side files when a read-only connection opens a WAL ledger
    # (a reader needs the shared-memory index; immutable=1 would avoid it but could read a
    # torn page while a writer works). The ledger and everything else stay as they were.
    assert tree(workspace, sqlite_files=False) == before


# -- spots, list, show, log, stats -----------------------------------------------------------

def test_spots_lists_each_spot_and_the_zombie_folders(filled, workspace):
    zombie = workspace / ".hokuro" / "blobs" / "gone"
    zombie.mkdir(parents=True)
    result = hokuro("spots")
    assert result.exit_code == 0
    header, row = result.stdout.splitlines()[:2]
    assert header.split()[:3] == ["spot", "records", "failed"]
    assert row.split()[:3] == ["jobs", "6", "1"]
    assert str(zombie) in result.stderr
    data = json.loads(hokuro("spots", str(workspace / ".hokuro"), "--json").stdout)
    assert data["spots"][0]["records"] == 6 and data["zombies"] == [str(zombie)]
    assert data["spots"][0]["last_activity_iso"].endswith("+00:00")


def test_list_is_plain_text_newest_first_with_filters(filled):
    result = hokuro("list", "jobs")
    lines = result.stdout.splitlines()
    assert result.exit_code == 0 and lines[0].split()[:2] == ["key", "collection"]
    assert len(lines) == 7 and lines[1].startswith(filled[5][:12])
    failed = hokuro("list", "jobs", "--status", "failed").stdout.splitlines()
    assert len(failed) == 2 and "ValueError: three is unlucky" in failed[1]
    assert len(hokuro("list", "jobs", "--limit", "2").stdout.splitlines()) == 3
    rows = json.loads(hokuro("list", "jobs", "--json", "--limit", "0").stdout)
    assert len(rows) == 6 and {r["status"] for r in rows} == {"done", "failed"}
    assert rows[0]["updated_at_iso"] and isinstance(rows[0]["updated_at"], float)
    assert json.loads(hokuro("list", "jobs", "--fn", "nothing", "--json").stdout) == []


def test_show_prints_the_record_arguments_result_error_and_log(filled):
    done = hokuro("show", "jobs", filled[2][:10])
    assert done.exit_code == 0
    assert "{'n': 2, 'square': 4}" in done.stdout and "{'n': 2}" in done.stdout
    assert "working on 2" in done.stdout
    failed = hokuro("show", "jobs", filled[3])
    assert "Traceback" in failed.stdout and "ValueError: three is unlucky" in failed.stdout
    data = json.loads(hokuro("show", "jobs", filled[2], "--json").stdout)
    assert data["result"] == {"n": 2, "square": 4} and data["args"] == {"n": 2}
    assert data["status"] == "done" and data["result_note"] is None


def test_show_does_not_unpickle_unless_allowed(workspace):
    with Spot("p") as spot:
        @spot.mark(codec="pickle")
        def pickled():
            return {"secret": 1}

        pickled()
        key = pickled.key_of()
    result = hokuro("show", "p", key)
    assert "<pickle, " in result.stdout and "not decoded>" in result.stdout
    assert "{'secret': 1}" in hokuro("show", "p", key, "--allow-pickle").stdout


def test_an_ambiguous_key_prefix_lists_the_candidates_and_exits_1(workspace):
    with Spot("many") as spot:
        for _ in range(40):
            put(spot, uuid.uuid4().hex)
        keys = [t.key for t in MaintenanceService.from_spot(spot).get_history(None)]
    prefix = next(k[0] for k in keys if sum(o.startswith(k[0]) for o in keys) > 1)
    candidates = sorted(k for k in keys if k.startswith(prefix))
    for command in ("show", "log", "delete"):
        result = hokuro(command, "many", prefix)
        assert result.exit_code == 1
        assert "matches" in result.stderr
        assert all(k in result.stderr for k in candidates)
    data = json.loads(hokuro("show", "many", prefix, "--json").stdout)
    assert data["error"] == "ambiguous"
    assert [c["key"] for c in data["candidates"]] == candidates
    assert hokuro("show", "many", "xyz").exit_code == 1


def test_log_prints_the_whole_log(filled):
    result = hokuro("log", "jobs", filled[4])
    assert result.exit_code == 0 and "working on 4" in result.stdout
    assert json.loads(hokuro("log", "jobs", filled[4], "--json").stdout)["key"] == filled[4]


def test_stats_counts_per_collection_and_status(filled):
    result = hokuro("stats", "jobs")
    header, row = result.stdout.splitlines()
    assert header.split() == ["collection", "total", "done", "failed", "size"]
    assert row.split()[1:4] == ["6", "5", "1"]
    data = json.loads(hokuro("stats", "jobs", "--json").stdout)
    assert data["counts"] == {"total": 6, "done": 5, "failed": 1}
    assert data["ledger"].endswith("jobs.db")


# -- errors ----------------------------------------------------------------------------------

def test_errors_groups_1000_failures_of_3_kinds_into_3_rows(workspace):
    with Spot("errs") as spot:
        @spot.mark
        def flaky(n):
            if n % 3 == 0:
                raise ValueError(f"bad input {n}")
            if n % 3 == 1:
                raise TimeoutError(f"no answer for {n}")
            raise KeyError(n)

        for n in range(1000):
            try:
                flaky(n)
            except Exception:
                pass
    result = hokuro("errors", "errs")
    assert result.exit_code == 0
    header, *rows = result.stdout.splitlines()
    assert header.split()[:3] == ["fingerprint", "error", "count"]
    assert len(rows) == 3
    counts = {row.split()[1]: int(row.split()[2]) for row in rows}
    assert counts == {"ValueError": 334, "TimeoutError": 333, "KeyError": 333}
    groups = json.loads(hokuro("errors", "errs", "--json").stdout)
    assert [g["count"] for g in groups] == [334, 333, 333]
    assert all("Traceback" in g["example_traceback"] for g in groups)
    shown = hokuro("errors", "errs", "--show", groups[0]["fingerprint"][:6])
    assert "Traceback" in shown.stdout and "ValueError: bad input 999" in shown.stdout
    assert hokuro("errors", "errs", "--show", "zzzz").exit_code == 1


# -- retry -----------------------------------------------------------------------------------

def test_retry_replays_failed_tasks_after_the_fix(workspace):
    module = f"jobs_{uuid.uuid4().hex[:8]}"
    (workspace / f"{module}.py").write_text(textwrap.dedent("""
        from pathlib import Path

        import hokuro

        spot = hokuro.Spot("batch")


        @spot.mark
        def square(n, ctx, *, scale=1):
            if n % 3 == 0 and Path("broken.flag").exists():
                raise ValueError(f"cannot square {n}")
            return n * n * scale


        @spot.resource("pages")
        def page(ident, args, ctx):
            if Path("broken.flag").exists():
                raise RuntimeError(f"page {ident} is down")
            return {"page": ident, "args": args}
    """))
    (workspace / "broken.flag").write_text("")
    sys.path.insert(0, str(workspace))
    try:
        jobs = __import__(module)
        for n in range(9):
            try:
                jobs.square(n, scale=2)
            except ValueError:
                pass
        assert jobs.spot.fetch("pages", "home", {"lang": "en"}).status == "failed"
        put(jobs.spot, "f" * 32, fn="vanished.fn", status=Status.FAILED,
            fn_path="vanished_module:fn", error_type="E", error="E: x", args=b"\x80")
        jobs.spot.close()
    finally:
        sys.path.remove(str(workspace))
        sys.modules.pop(module, None)
    (workspace / "broken.flag").unlink()  # the fix

    dry = hokuro("retry", "batch", "--dry-run")
    assert dry.exit_code == 1 and "would retry" in dry.stdout  # one cannot be imported
    result = hokuro("retry", "batch")
    try:
        assert result.exit_code == 1  # the unimportable one still fails the run
        assert "vanished_module:fn" in result.stderr
        assert "4 done, 1 not importable" in result.stdout
        with MaintenanceService.from_target("batch", read_only=True) as service:
            failed = [t.fn for t in service.get_history(status="failed")]
            assert failed == ["vanished.fn"]
            done = {t.ident or t.key: service.get_task_detail(t.key).result
                    for t in service.get_history(status="done")}
        assert sorted(v for v in done.values() if isinstance(v, int)) == \
            [0, 2, 8, 18, 32, 50, 72, 98, 128]
        assert done["home"] == {"page": "home", "args": {"lang": "en"}}
        assert hokuro("retry", "batch", "--fn", f"{module}.square").exit_code == 1  # none left
    finally:
        imported = sys.modules.pop(module, None)
        if imported is not None:
            imported.spot.close()


def test_retry_reports_tasks_whose_arguments_were_not_recorded(workspace):
    with Spot("r") as spot:
        put(spot, "e" * 32, fn="tests.f", status=Status.FAILED, fn_path="json:dumps",
            error_type="E", error="E: x")
    result = hokuro("retry", "r", "--json")
    assert result.exit_code == 1
    [entry] = json.loads(result.stdout)["results"]
    assert entry["outcome"] == "not_importable" and "not a marked function" in entry["detail"]


# -- removing --------------------------------------------------------------------------------

def test_delete_asks_first_and_offers_a_dry_run(filled):
    key = filled[0]
    assert hokuro("delete", "jobs", key[:12], "--dry-run").stdout.startswith("would delete")
    refused = hokuro("delete", "jobs", key[:12], input="n\n")
    assert refused.exit_code == 1 and "Nothing was changed" in refused.stderr
    no_terminal = hokuro("delete", "jobs", key[:12])  # no answer at all: nothing happens
    assert no_terminal.exit_code == 1
    assert hokuro("show", "jobs", key).exit_code == 0
    agreed = hokuro("delete", "jobs", key[:12], input="y\n")
    assert agreed.exit_code == 0 and "deleted task" in agreed.stdout
    assert hokuro("show", "jobs", key).exit_code == 1
    data = json.loads(hokuro("delete", "jobs", filled[1], "--yes", "--json").stdout)
    assert data == {"dry_run": False, "key": filled[1], "deleted": True}


def test_clear_removes_everything_after_confirmation(filled):
    assert "would remove 6 tasks" in hokuro("clear", "jobs", "--dry-run").stdout
    assert hokuro("clear", "jobs", input="n\n").exit_code == 1
    result = hokuro("clear", "jobs", "--yes")
    assert result.exit_code == 0 and "removed 6 tasks" in result.stdout
    assert hokuro("clear", "jobs", "--yes").exit_code == 1  # nothing to do
    assert json.loads(hokuro("list", "jobs", "--json").stdout) == []


def test_prune_removes_tasks_older_than_the_days_given(workspace):
    with Spot("old") as spot:
        put(spot, "a" * 32, age=40 * 86400)
        put(spot, "b" * 32, age=10 * 86400)
    assert hokuro("prune", "old").exit_code == 2  # --days is required
    assert hokuro("prune", "old", "--days", "-1").exit_code == 2
    data = json.loads(hokuro("prune", "old", "--days", "30", "--dry-run", "--json").stdout)
    assert data["records"] == 1 and data["dry_run"]
    assert hokuro("prune", "old", "--days", "30", "--yes").exit_code == 0
    assert [r["key"] for r in json.loads(hokuro("list", "old", "--json").stdout)] == ["b" * 32]
    assert hokuro("prune", "old", "--days", "30", "--yes").exit_code == 1


def test_clean_keeps_young_blobs_and_removes_old_temp_files(workspace):
    with Spot("cl") as spot:
        blobs = spot.blobs
        blobs.save("aa/old.bin", b"o")
        blobs.save("aa/young.bin", b"y")
        stale = blobs.root / "aa" / f".t.bin.00{TEMP_SUFFIX}"
        stale.write_bytes(b"half")
        long_ago = time.time() - 3 * 86400
        for path in (blobs.path_of("aa/old.bin"), stale):
            os.utime(path, (long_ago, long_ago))
    preview = json.loads(hokuro("clean", "cl", "--dry-run", "--json").stdout)
    assert (preview["orphans"], preview["temp"], preview["expired"]) == (1, 1, 0)
    assert hokuro("clean", "cl", input="n\n").exit_code == 1 and stale.exists()
    result = hokuro("clean", "cl", "--yes")
    assert result.exit_code == 0 and "1 orphan blobs" in result.stdout
    root = workspace / ".hokuro" / "blobs" / "cl"
    assert not stale.exists() and not (root / "aa" / "old.bin").exists()
    assert (root / "aa" / "young.bin").exists()
    assert hokuro("clean", "cl", "--yes").exit_code == 1  # nothing left to clean


def test_gc_removes_zombie_blob_folders_only_after_confirmation(filled, workspace):
    zombie = workspace / ".hokuro" / "blobs" / "forgotten"
    (zombie / "ab").mkdir(parents=True)
    (zombie / "ab" / "x.bin").write_bytes(b"x" * 10)
    listed = hokuro("gc", "--dry-run")
    assert listed.exit_code == 0 and "forgotten" in listed.stdout and zombie.exists()
    assert hokuro("gc", input="n\n").exit_code == 1 and zombie.exists()
    assert hokuro("gc", input="y\n").exit_code == 0
    assert not zombie.exists() and (workspace / ".hokuro" / "blobs" / "jobs").exists()
    assert hokuro("gc", "--yes").exit_code == 1  # no zombies left


# -- errors of use ---------------------------------------------------------------------------

def test_usage_errors_exit_2_and_library_errors_are_one_sentence(filled):
    assert hokuro("list", "jobs", "--status", "nonsense").exit_code == 2
    assert hokuro("list").exit_code == 2
    assert hokuro("nosuchcommand").exit_code == 2
    bad = hokuro("list", "mysql://u:pw@host/db")
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1 and "pw" not in bad.stderr
    missing = hokuro("list", "nope")
    assert missing.exit_code == 1 and "known Spots: jobs" in missing.stderr


def test_a_database_password_is_never_shown(pg_url, workspace):
    wrong = pg_url.replace("://", "://postgres:hunter2@").rsplit("/", 1)[0] + "/hokuro_no_such_db"
    result = hokuro("stats", wrong)
    assert result.exit_code == 1
    assert "hunter2" not in result.output and "***" in result.output


def test_a_database_url_without_blobs_reads_and_says_what_it_needs(pg_url, workspace):
    import psycopg

    with Spot("pg", db=pg_url) as spot:
        @spot.mark(save_blob=True)
        def f():
            return "v" * 10

        f()
        key = f.key_of()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        # As a Spot that never recorded where its blobs are (hokuro 0.1) left it.
        conn.execute("DELETE FROM hokuro_pg.hokuro_meta WHERE name = 'blobs'")
    shown = json.loads(hokuro("show", pg_url, key, "--json").stdout)
    assert shown["status"] == "done" and "not known" in shown["result_note"]
    blobs = str(workspace / ".hokuro" / "blobs" / "pg")
    shown = json.loads(hokuro("show", pg_url, key, "--json", "--blobs", blobs).stdout)
    assert shown["result"] == "v" * 10
    refused = hokuro("clear", pg_url, "--yes")
    assert refused.exit_code == 2 and "--blobs" in refused.stderr
    assert hokuro("clear", pg_url, "--yes", "--blobs", blobs).exit_code == 0


def test_demo_still_runs(workspace):
    result = hokuro("demo", "--latency", "0", "--items", "4", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["identical"] and data["first_run"]["calls"] == 4
