"""The command line of runs: ``runs``, ``run show``, ``run cancel``, ``retry --run``, on the
embedded ledger (SQLite) and the shared one (PostgreSQL), through the commands themselves."""

from __future__ import annotations

import json
import re
import sys
import textwrap
import threading
import time
import uuid

import pytest
from click.testing import CliRunner

from hokuro import Pending, Plan, Spot
from hokuro.admin import runs as admin_runs
from hokuro.cli import main
from hokuro.model.jobs import JobOutcome, RunRecord
from test_jobs_schema import make_file_of_schema_2
from test_spot_namespace import sqlite_schema


def hokuro(*args: str, input: str | None = None):
    result = CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)
    assert "\x1b[" not in result.output, "escape codes in output that is not a terminal"
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def spot(make_spot):
    return make_spot("runs")


def target(make_spot, name: str = "runs") -> list[str]:
    """How the command line names the Spot ``name`` of this test's backend."""
    if make_spot.shared:
        return [make_spot.urls(name)[0], "--spot", name]
    return [name]


def add_run(spot, plan, name: str, *, run_id: str | None = None, status: str = "running",
            at: float | None = None, cursor: int = 0, inputs_done: bool = False,
            described: dict | None = None) -> RunRecord:
    """A run recorded straight in the ledger (its jobs are made by the test)."""
    at = time.time() if at is None else at
    described = plan.describe() if described is None else described
    record = RunRecord(id=run_id or uuid.uuid4().hex, name=name, status=status,
                       plan=spot.codec.encode(described, root="plan"), created_at=at,
                       updated_at=at, cursor=cursor, inputs_done=inputs_done)
    spot.ledger.create_run(record)
    return record


def settle(spot, record, job_id: str, status: str, **fields) -> None:
    """Claim job ``job_id`` of ``record`` (the first claimable one must be it) and commit
    ``status`` for it."""
    now = time.time()
    (job,) = spot.ledger.claim_jobs("test-owner", now, now + 60, 1, run_id=record.id)
    assert job.job_id == job_id
    if status == "done":
        fields.setdefault("task_key", "k" * 32)
        fields.setdefault("output_key", "k" * 32)
    assert spot.ledger.commit([JobOutcome(run_id=record.id, job_id=job_id, owner="test-owner",
                                          attempt=job.attempts, status=status, **fields)],
                              [], now) == [True]


# -- hokuro runs -------------------------------------------------------------------------------

def test_runs_lists_runs_newest_first_with_their_jobs_counted(spot, make_spot):
    @spot.mark
    def parse(x):
        if x == 3:
            raise ValueError("bad row 3")
        return x

    first = spot.map(parse, range(5), run="first", progress=False)
    second = spot.map(parse, range(2), run="second", progress=False)
    where = target(make_spot)
    lines = hokuro("runs", *where).stdout.splitlines()
    assert lines[0].split() == ["run", "name", "status", "done/total", "failed", "waiting",
                                "started", "finished/updated"]
    assert lines[1].split()[:6] == [second.id[:8], "second", "done", "2/2", "0", "0"]
    assert lines[2].split()[:6] == [first.id[:8], "first", "failed", "4/5", "1", "0"]
    listed = json.loads(hokuro("runs", *where, "--json").stdout)
    assert [r["id"] for r in listed] == [second.id, first.id]
    assert listed[1]["jobs"] == {"total": 5, "done": 4, "running": 0, "waiting": 0,
                                 "failed": 1, "cancelled": 0, "blocked": 0, "queued": 0}
    assert listed[1]["status"] == "failed" and listed[1]["finished_at_iso"]
    failed = json.loads(hokuro("runs", *where, "--status", "failed", "--json").stdout)
    assert [r["name"] for r in failed] == ["first"]
    assert len(json.loads(hokuro("runs", *where, "--limit", "1", "--json").stdout)) == 1


def test_a_ledger_without_runs_tables_shows_no_runs_and_is_left_as_it_was(workspace):
    make_file_of_schema_2(workspace / "old.db")
    before = sqlite_schema(workspace / "old.db")
    shown = hokuro("runs", "old.db")
    assert shown.exit_code == 0 and "no runs" in shown.stderr and shown.stdout == ""
    assert json.loads(hokuro("runs", "old.db", "--json").stdout) == []
    missing = hokuro("run", "show", "old.db", "nightly")
    assert missing.exit_code == 1 and "no run has the id or name 'nightly'" in missing.stderr
    assert sqlite_schema(workspace / "old.db") == before  # no runs tables were made


def test_run_commands_on_a_missing_spot_create_nothing(workspace):
    for args in (["runs", "ghost"], ["run", "show", "ghost", "abc"]):
        result = hokuro(*args)
        assert result.exit_code == 1 and "no Spot named 'ghost'" in result.stderr
    assert list(workspace.iterdir()) == []


def test_reading_runs_writes_nothing_and_imports_no_step(workspace, monkeypatch):
    from test_cli import tree

    marker, folder = workspace / "imported.marker", workspace / "trap_modules"
    folder.mkdir()
    trap = f"hokuro_trap_{uuid.uuid4().hex[:10]}"
    (folder / f"{trap}.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r})"
                                       ".write_text('imported')\n")
    monkeypatch.syspath_prepend(str(folder))
    with Spot("reads") as spot:
        @spot.mark(name="reads.step")
        def step(x):
            if x == 1:
                raise ValueError("one")
            return x

        plan = Plan.for_map(step)
        spot.map(step, range(3), run="batch", progress=False)
        described = plan.describe()
        described["nodes"][0]["fn_path"] = f"{trap}:step"  # a plan naming another module
        add_run(spot, plan, "crafted", status="failed", described=described)
    before = tree(workspace, sqlite_files=False)
    for args in (["runs", "reads"], ["runs", "reads", "--json"], ["run", "show", "reads",
                 "batch"], ["run", "show", "reads", "crafted", "--json"],
                 ["run", "show", "reads", "batch", "--follow"]):
        assert hokuro(*args).exit_code == 0, args
    assert tree(workspace, sqlite_files=False) == before
    assert not marker.exists() and trap not in sys.modules


# -- naming a run ------------------------------------------------------------------------------

def test_a_run_is_named_by_a_unique_id_prefix_or_by_its_name(spot, make_spot):
    @spot.mark
    def step(x):
        return x

    plan = Plan.for_map(step)
    older = add_run(spot, plan, "nightly", run_id="ab12" + "0" * 28, at=1.0)
    newer = add_run(spot, plan, "nightly", run_id="ab34" + "0" * 28, at=2.0)
    where = target(make_spot)

    def shown(ref: str) -> str:
        result = hokuro("run", "show", *where, ref, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["id"]

    assert shown("ab1") == older.id
    assert shown(newer.id) == newer.id
    assert shown("nightly") == newer.id  # the newest run of that name
    ambiguous = hokuro("run", "show", *where, "ab")
    assert ambiguous.exit_code == 1
    assert "2 runs have ids starting with 'ab'" in ambiguous.stderr
    assert "give more characters" in ambiguous.stderr
    listed = json.loads(hokuro("run", "show", *where, "ab", "--json").stdout)
    assert listed["error"] == "ambiguous"
    assert sorted(c["id"] for c in listed["candidates"]) == [older.id, newer.id]
    unknown = hokuro("run", "show", *where, "weekly")
    assert unknown.exit_code == 1 and "no run has the id or name 'weekly'" in unknown.stderr


# -- hokuro run show ---------------------------------------------------------------------------

def test_run_show_gives_steps_failures_waiting_jobs_and_the_input_cursor(spot, make_spot):
    @spot.mark(name="reports.request")
    def request(account):
        return account

    @spot.mark(name="reports.status")
    def status(report):
        return report

    plan = Plan.for_pipe(request | status)
    record = add_run(spot, plan, "reports", cursor=3)
    encode = spot.codec.encode
    spot.ledger.insert_jobs(record.id, [job for i, account in enumerate(["a", "b", "c"])
                                        for job in plan.root_jobs(i, encode(account))],
                            time.time())
    settle(spot, record, "0/0.request", "done")
    settle(spot, record, "0/1.status", "waiting", run_after=time.time() + 12)
    settle(spot, record, "1/0.request", "failed",
           error="ValueError: account b is closed\nTraceback follows")
    where = target(make_spot)

    text = hokuro("run", "show", *where, record.id[:8]).stdout
    assert "3 inputs read so far, more to read" in text
    assert "1 of 6 done" in text
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines()
            if line.startswith(("reports.request", "reports.status"))}
    # step: node, total, done, running, waiting, failed, cancelled, blocked, queued
    assert rows["reports.request"] == ["0.request", "3", "1", "0", "0", "1", "0", "0",
                                             "1"]
    assert rows["reports.status"] == ["1.status", "3", "0", "0", "1", "0", "1", "1",
                                            "0"]
    assert re.search(r"1/0\.request\s+reports\.request\s+1\s+ValueError: account b is "
                     r"closed$", text, re.M)
    assert "Traceback follows" not in text  # the first line of the error only
    assert re.search(r"0/1\.status\s+reports\.status\s+\S+ \S+\s+in 1[12]s$", text, re.M)

    shown = json.loads(hokuro("run", "show", *where, record.id, "--json").stdout)
    assert shown["cursor"] == 3 and shown["inputs_done"] is False
    assert [s["node"] for s in shown["steps"]] == ["0.request", "1.status"]
    assert shown["failures"] == [{"job_id": "1/0.request", "step": "reports.request",
                                  "attempts": 1, "error": "ValueError: account b is closed"}]
    (waiting,) = shown["waiting"]
    assert waiting["job_id"] == "0/1.status" and 10 < waiting["in_seconds"] <= 12
    assert shown["plan"]["nodes"][0]["step"] == "reports.request"


def test_run_show_follow_refreshes_until_the_run_ends(spot, make_spot, monkeypatch):
    @spot.mark
    def step(x):
        return x

    record = add_run(spot, Plan.for_map(step), "live")
    naps = []

    def nap(seconds):  # the run ends while --follow waits
        naps.append(seconds)
        spot.ledger.update_run(record.id, status="done", finished_at=time.time())

    monkeypatch.setattr(admin_runs, "_sleep", nap)
    followed = hokuro("run", "show", *target(make_spot), "live", "--follow", "--json")
    assert followed.exit_code == 0
    assert [json.loads(line)["status"] for line in followed.stdout.splitlines()] == \
        ["running", "done"]
    assert naps == [1.0]
    text = hokuro("run", "show", *target(make_spot), "live", "--follow").stdout
    assert text.count("== run ") == 1  # an ended run is shown once


def test_ctrl_c_stops_following_quietly(spot, make_spot, monkeypatch):
    @spot.mark
    def step(x):
        return x

    add_run(spot, Plan.for_map(step), "live")

    def interrupted(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(admin_runs, "_sleep", interrupted)
    followed = hokuro("run", "show", *target(make_spot), "live", "-f")
    assert followed.exit_code == 0 and followed.stderr == ""
    assert followed.stdout.count("== run ") == 1


# -- hokuro run cancel -------------------------------------------------------------------------

def test_cancel_ends_every_open_job_and_a_live_owners_late_results_do_not_revive_them(
        spot, make_spot):
    started, release, ran = threading.Semaphore(0), threading.Event(), []

    @spot.mark
    def slow(x):
        ran.append(x)
        started.release()
        release.wait(30)
        return x * 10

    box = {}
    worker = threading.Thread(target=lambda: box.setdefault("run", spot.map(
        slow, range(10), concurrency=2, run="long", progress=False)))
    worker.start()
    try:
        for _ in range(2):
            assert started.acquire(timeout=30)
        asked = hokuro("run", "cancel", *target(make_spot), "long", input="n\n")
        assert asked.exit_code == 1 and "10 of 10 jobs not done yet?" in asked.stderr
        cancelled = hokuro("run", "cancel", *target(make_spot), "long", "--yes", "--json")
        assert cancelled.exit_code == 0, cancelled.output
        report = json.loads(cancelled.stdout)
        assert (report["status"], report["open_before"], report["cancelled"]) == \
            ("cancelled", 10, 10)
    finally:
        release.set()  # the two running steps now finish, after the cancel
        worker.join(30)
    run = box["run"]
    assert run.status == "cancelled"
    jobs = list(spot.ledger.find_jobs(run.id))
    assert {job.status for job in jobs} == {"cancelled"}  # the late results were refused
    assert {job.error for job in jobs} == {admin_runs.CANCEL_REASON}
    assert sorted(ran) == [0, 1]  # nothing else started
    assert slow.task(ran[0]).status == "done"  # the work done is kept, for reuse
    assert spot.ledger.get_run(run.id).status == "cancelled"
    again = hokuro("run", "cancel", *target(make_spot), run.id[:8], "--yes")
    assert again.exit_code == 1 and "nothing to cancel" in again.stderr


# -- hokuro retry --run ------------------------------------------------------------------------

@pytest.fixture
def module(make_spot, workspace):
    """An importable module with a two-step pipeline on this test's backend, failing for
    every fifth item while ``broken.flag`` exists; each execution is logged."""
    name = f"steps_{uuid.uuid4().hex[:8]}"
    db, blobs = make_spot.urls("batch")
    where = f", db={db!r}, blobs={blobs!r}" if make_spot.shared else ""
    (workspace / f"{name}.py").write_text(textwrap.dedent(f"""
        from pathlib import Path

        import hokuro

        spot = hokuro.Spot("batch"{where})


        def logged(what):
            with open("calls.log", "a") as log:
                log.write(what + "\\n")


        @spot.mark
        def parse(x):
            logged(f"parse {{x}}")
            if x % 5 == 3 and Path("broken.flag").exists():
                raise ValueError(f"bad row {{x}}")
            return x * 10


        @spot.mark
        def load(x):
            logged(f"load {{x}}")
            return x + 1
    """))
    sys.path.insert(0, str(workspace))
    yield name
    sys.path.remove(str(workspace))
    imported = sys.modules.pop(name, None)
    if imported is not None:
        imported.spot.close()


def test_retry_run_queues_failures_from_their_step_and_finishes_the_run(module, make_spot,
                                                                          workspace):
    (workspace / "broken.flag").write_text("")
    steps = __import__(module)
    first = steps.spot.run(steps.parse | steps.load, over=range(10), run="nightly",
                           progress=False)
    assert first.status == "failed" and first.summary()["failed"] == 2
    steps.spot.close()
    del sys.modules[module]
    (workspace / "broken.flag").unlink()  # the fix
    (workspace / "calls.log").write_text("")
    where = target(make_spot, "batch")

    dry = hokuro("retry", *where, "--run", "nightly", "--dry-run")
    assert dry.exit_code == 0 and "would retry 2 failed jobs" in dry.stdout
    assert (workspace / "calls.log").read_text() == ""
    result = hokuro("retry", *where, "--run", "nightly", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["requeued"] == 4  # the two failed parses and the loads they cancelled
    summary = report["summary"]
    assert (summary["status"], summary["done"], summary["failed"], summary["jobs"]) == \
        ("done", 20, 0, 20)
    # From the failed step on: only the two items that failed ran, each step once.
    assert sorted((workspace / "calls.log").read_text().split("\n")[:-1]) == \
        ["load 30", "load 80", "parse 3", "parse 8"]
    listed = json.loads(hokuro("runs", *where, "--json").stdout)
    assert [(r["id"], r["status"]) for r in listed] == [(first.id, "done")]
    imported = sys.modules[module]
    assert imported.spot.run(imported.parse | imported.load, over=range(10), run="x",
                             progress=False).results() == [x * 10 + 1 for x in range(10)]
    nothing = hokuro("retry", *where, "--run", first.id[:6])
    assert nothing.exit_code == 1 and "no failed or unfinished jobs" in nothing.stderr


def test_retry_run_refuses_task_filters_and_unimportable_steps(spot, make_spot):
    assert hokuro("retry", *target(make_spot), "--run", "x", "--fn", "f").exit_code == 2

    @spot.mark
    def local(x):
        raise ValueError(x)

    run = spot.map(local, [1], run="here", progress=False)
    refused = hokuro("retry", *target(make_spot), "--run", "here")
    assert refused.exit_code == 1
    assert "cannot be retried here" in refused.stderr and "inside a function" in \
        refused.stderr
    assert spot.ledger.get_run(run.id).status == "failed"  # nothing was changed


def test_pending_jobs_show_as_waiting_with_their_wake_time(spot, make_spot):
    @spot.mark
    def status(report):
        return Pending(after=3600)

    record = add_run(spot, Plan.for_map(status), "polls", cursor=1, inputs_done=True)
    spot.ledger.insert_jobs(record.id, Plan.for_map(status).root_jobs(
        0, spot.codec.encode("r1")), time.time())
    settle(spot, record, "0/0.status", "waiting", run_after=time.time() + 3600)
    text = hokuro("run", "show", *target(make_spot), "polls").stdout
    assert "1 inputs read, to the end" in text
    assert re.search(r"in (59m 5\ds|1h 00m)$", text, re.M)
