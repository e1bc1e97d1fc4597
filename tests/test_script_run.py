"""Scripts run on the run engine: buelon's README example end to end (``hokuro example`` then
``hokuro run example.bue``), the step return conventions, options enforced, a loop over
something that is not a list, steps rebuilt from ``fn_path`` (``resolve_step``), and a run
killed with -9 that the same command resumes."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner

from hokuro import Plan, Spot
from hokuro.cli import main
from hokuro.compat import buelon
from hokuro.errors import ConfigurationError
from hokuro.script import load, resolve_step

SRC = str(Path(__file__).resolve().parents[1] / "src")


def hokuro(*args: str):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


# -- the README example, end to end --------------------------------------------------------------

def test_the_readme_example_runs_end_to_end(workspace, monkeypatch, caplog):
    # Reports are ready 1 s after their request: every first status check is pending, even on
    # a loaded machine (at 0.2 s a slow first check could already find it ready).
    monkeypatch.setenv("HOKURO_EXAMPLE_WAIT", "1.0")
    caplog.set_level(logging.INFO)
    made = hokuro("example")
    assert made.exit_code == 0, made.output
    assert "wrote example.bue" in made.output and "wrote example.py" in made.output
    assert "from hokuro.compat.buelon import Result, StepStatus" in \
        (workspace / "example.py").read_text()

    ran = hokuro("run", "example.bue", "--json")
    assert ran.exit_code == 0, ran.output
    summary = json.loads(ran.output)
    assert summary["status"] == "done" and summary["failed"] == 0
    steps = summary["steps"]
    assert steps["0.accounts"]["done"] == 1
    for node in ("2.request", "3.status", "4.download", "5.manipulate_data",
                 "6.py_transform", "7.upload"):
        assert steps[node]["done"] == 3, node  # 3 accounts fan out
    assert summary["polls"] >= 3  # every status was pending at first
    assert summary["resets"] == 1  # account 2's first download resets its chain

    uploads = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Uploaded")]
    assert sorted(uploads) == [
        "Uploaded 100 rows to the database for account: Account 4",
        "Uploaded 25 rows to the database for account: Account 1",
        "Uploaded 75 rows to the database for account: Account 2"]

    with Spot("example") as spot:  # what the SQL step made, read back
        run = spot.run(load("example.bue", spot).plan, run="example.bue", progress=False)
        assert run.summary()["reused"] == 19  # a finished run's results are kept
    rows = _sql_rows(workspace)
    assert len(rows) == 3
    for table in rows:
        assert all("acos" in row and "account" not in row for row in table)
        assert all(row["acos"] == (0.0 if row["sales"] == 0 else row["spend"] // row["sales"])
                   for row in table)  # SQLite's integer division, as the user wrote it


def _sql_rows(workspace: Path) -> list[list[dict]]:
    """The results of the example's SQL step, from the records."""
    with Spot("example") as spot:
        found = []
        for task in spot.find("example.manipulate_data", status="done"):
            found.append(task.result["table_data"])
        return found


def test_example_never_overwrites(workspace):
    (workspace / "example.py").write_text("# mine\n")
    made = hokuro("example")
    assert made.exit_code == 0
    assert (workspace / "example.py").read_text() == "# mine\n"
    assert "kept example.py" in made.output
    again = hokuro("example")
    assert again.exit_code == 1


# -- what a step returns ---------------------------------------------------------------------------

STEPS = """
import time
from hokuro.compat.buelon import Result, StepStatus

CALLS = {}

def count(name):
    CALLS[name] = CALLS.get(name, 0) + 1
    return CALLS[name]

def source():
    return [{"n": 1}, {"n": 2}]

def edit_in_place(row):
    row["edited"] = True          # returns None: the edited input goes on

def status_tuple(row):
    return (StepStatus.success, {**row, "tuple": True})

def plain_tuple(row):
    return ("a", row["n"])        # not a StepStatus first: data

def poll_twice(row):
    if count(f"poll{row[1]}") < 3:
        return Result(status=StepStatus.pending)
    return Result(status=StepStatus.success, data=list(row))

def cancel_second(row):
    if row[1] == 2:
        return Result(status=StepStatus.cancel)
    return row

def error_result(*args):
    count("error")
    return Result(status=StepStatus.error, data="the API said no")

def sleepy():
    time.sleep(5)

def not_a_list():
    return {"a": 1}

def each(x):
    return x
"""

SCRIPT = """
source:
    python
    source
    steps.py
edit:
    python
    edit_in_place
    steps.py
status_tuple:
    python
    status_tuple
    steps.py
plain_tuple:
    python
    plain_tuple
    steps.py
poll:
    python
    !poll 0.05s
    poll_twice
    steps.py
cancel:
    python
    cancel_second
    steps.py
chain = edit | status_tuple | plain_tuple | poll | cancel
for row in source():
    chain(row)
"""


def _run(tmp_path: Path, script: str, steps: str = STEPS, name: str = "t"):
    write(tmp_path, "steps.py", steps)
    path = write(tmp_path, f"{name}.bue", script)
    spot = Spot(name, workspace=tmp_path / ".hokuro")
    compiled = load(path, spot)
    run = spot.run(compiled.plan, run=compiled.name, progress=False, concurrency=4)
    return spot, compiled, run


def test_step_return_conventions(tmp_path):
    spot, _, run = _run(tmp_path, SCRIPT)
    try:
        summary = run.summary()
        assert summary["polls"] == 4 and summary["cancelled"] == 1
        done = {t.ident or t.key: t for t in spot.find("t.poll", status="done")}
        assert sorted(task.result for task in done.values()) == [
            ["a", 1], ["a", 2]]
        edited = [t.result for t in spot.find("t.status_tuple", status="done")]
        assert sorted(r["n"] for r in edited) == [1, 2]
        assert all(r["edited"] and r["tuple"] for r in edited)
    finally:
        spot.close()


def test_an_error_result_is_retried_then_a_failure(tmp_path):
    script = """
        !retries 1
        e:
            python
            error_result
            steps.py
        p = | e
        p()
    """
    spot, _, run = _run(tmp_path, script)
    try:
        [failure] = run.failures()
        assert failure.error == "StepError: e returned StepStatus.error: the API said no"
        assert run.summary()["retried"] == 1
    finally:
        spot.close()


def test_a_timeout_is_enforced(tmp_path):
    script = """
        s:
            python
            !timeout 0.2s
            sleepy
            steps.py
        p = | s
        p()
    """
    started = time.monotonic()
    spot, _, run = _run(tmp_path, script)
    try:
        [failure] = run.failures()
        assert "ran past its timeout of 0.2 s" in failure.error
        assert time.monotonic() - started < 4.5
    finally:
        spot.close()


def test_a_loop_over_something_that_is_not_a_list_fails_its_job_clearly(tmp_path):
    script = """
        src:
            python
            not_a_list
            steps.py
        e:
            python
            each
            steps.py
        s = | src
        t = e |
        for x in s():
            t(x)
    """
    spot, _, run = _run(tmp_path, script)
    try:
        [failure] = run.failures()
        assert failure.job_id == "0.src"
        assert "returned dict, not a list of elements" in failure.error
    finally:
        spot.close()


def test_backtick_python_defines_a_step_and_its_tracebacks_point_at_the_script(tmp_path):
    path = write(tmp_path, "i.bue", """
        double:
            python
            double
            `
        def double(rows):
            return [{"v": r["v"] * 2} for r in rows]

        def broken():
            raise ValueError("from the script")
        `
        broken:
            py
            broken
            `
        def broken():
            raise ValueError("from the script")
        `
        p = | double
        q = | broken
        q()
    """)
    compiled = load(path)
    assert compiled.steps["double"]([{"v": 2}]) == [{"v": 4}]
    with pytest.raises(ValueError) as caught:
        compiled.steps["broken"]()
    last = traceback.extract_tb(caught.value.__traceback__)[-1]
    assert (last.filename, last.lineno) == (str(path), 16)  # the raise, in the script


def test_async_python_steps_and_sql_read_from_a_file(tmp_path):
    write(tmp_path, "q.sql", "SELECT v * 3 AS v FROM t\n")
    script = """
        src:
            python
            src
            steps.py
        triple:
            sqlite3
            t
            q.sql
        p = src | triple
        p()
    """
    steps = STEPS + textwrap.dedent("""
        async def src():
            import asyncio
            await asyncio.sleep(0)
            return [{"v": 1}, {"v": 2}]
    """)
    spot, compiled, run = _run(tmp_path, script, steps)
    try:
        assert compiled.steps["src"].is_async
        assert run.results() == [[{"v": 3}, {"v": 6}]]
        version = compiled.steps["triple"].options.version
        write(tmp_path, "q.sql", "SELECT v * 4 AS v FROM t\n")  # an edited query: recomputed
        again = load(tmp_path / "t.bue", spot)
        assert again.steps["triple"].options.version != version
    finally:
        spot.close()


# -- steps rebuilt elsewhere from fn_path ----------------------------------------------------------

def test_resolve_step_rebuilds_a_described_plan(tmp_path):
    write(tmp_path, "steps.py", STEPS)
    path = write(tmp_path, "r.bue", SCRIPT)
    with Spot("r", workspace=tmp_path / ".hokuro") as spot:
        described = load(path, spot).plan.describe()
        first = described["nodes"][0]["fn_path"]
        assert first == f"script:{path.resolve()}#source"
        rebuilt = Plan.from_description(described, lambda _, fn_path: resolve_step(fn_path,
                                                                                   spot))
        assert rebuilt.describe() == described
        assert resolve_step(first, spot) is resolve_step(first, spot)  # compiled once
        assert resolve_step(first, spot).spot is spot
        with pytest.raises(ConfigurationError, match="has no step 'gone'"):
            resolve_step(f"script:{path.resolve()}#gone", spot)
        with pytest.raises(ConfigurationError, match="does not name a script step"):
            resolve_step("steps:source", spot)


def test_compat_names_are_buelons():
    assert [s.name for s in buelon.StepStatus] == [
        "success", "queued", "pending", "cancel", "reset", "working", "error", "unknown"]
    result = buelon.Result(status=buelon.StepStatus.pending, data=1)
    assert (result.status, result.data, result.env) == (buelon.StepStatus.pending, 1, {})


# -- the command line ------------------------------------------------------------------------------

def test_check_prints_the_plan_and_refuses_mistakes_with_exit_2(workspace):
    hokuro("example")
    checked = hokuro("check", "example.bue")
    assert checked.exit_code == 0
    assert "example.bue: 7 steps, 2 pipes, 1 loop; it compiles." in checked.output
    assert "download         python    get_report      example.py  production-small  9" \
        in checked.output
    as_json = json.loads(hokuro("check", "example.bue", "--json").output)
    assert as_json["pipes"]["api_pipe"][0] == "request"
    assert not (workspace / ".hokuro").exists()  # checking writes nothing
    write(workspace, "bad.bue", "a:\n    pyhton\n    f\n    x.py\n")
    bad = CliRunner().invoke(main, ["check", "bad.bue"])
    assert bad.exit_code == 2
    assert "bad.bue:2:5: unknown language 'pyhton'" in bad.output


def test_run_show_and_cancel_are_still_commands_beside_run_file(workspace):
    assert "run show [OPTIONS] SPOT ID" in hokuro("run", "show", "--help").output
    assert "run [OPTIONS] FILE" in hokuro("run", "x.bue", "--help").output
    missing = CliRunner().invoke(main, ["run", "nothing.bue"])
    assert missing.exit_code == 2 and "no script at nothing.bue" in missing.output


def test_run_exits_1_and_names_the_failures_when_a_job_fails(workspace):
    write(workspace, "steps.py", STEPS)
    (workspace / "f.bue").write_bytes(b"\xef\xbb\xbf" + textwrap.dedent("""
        e:
            python
            error_result
            steps.py
        p = | e
        p()
    """).lstrip().encode())  # with a byte-order mark, as some editors write
    ran = hokuro("run", "f.bue")
    assert ran.exit_code == 1
    assert "run f.bue (" in ran.output and ": failed: 1 failed" in ran.output
    assert "  failed 0.e: StepError: e returned StepStatus.error: the API said no" \
        in ran.output


# -- kill -9, then the same command resumes --------------------------------------------------------

KILL_STEPS = """
import os, time
from pathlib import Path

def items():
    return list(range(6))

def work(x):
    Path(f"ran-{x}-{os.getpid()}").touch()
    if x == 3 and Path("block").exists():
        time.sleep(60)
    return x * 10
"""

KILL_SCRIPT = """
items:
    python
    items
    steps.py
work:
    python
    work
    steps.py
source = | items
each = | work
for x in source():
    each(x)
"""


@pytest.mark.slow
def test_a_run_killed_with_minus_9_resumes_when_run_again(workspace):
    write(workspace, "steps.py", KILL_STEPS)
    write(workspace, "k.bue", KILL_SCRIPT)
    (workspace / "block").touch()
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    child = subprocess.Popen(
        [sys.executable, "-c", "from hokuro.cli import main; main()", "run", "k.bue",
         "--concurrency", "1", "--no-progress"],
        cwd=workspace, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not list(workspace.glob("ran-3-*")):
        assert time.monotonic() < deadline and child.poll() is None
        time.sleep(0.05)
    time.sleep(0.3)  # the jobs before item 3 are committed by now
    child.send_signal(signal.SIGKILL)
    child.wait()
    (workspace / "block").unlink()
    before = {p.name.split("-")[1] for p in workspace.glob("ran-*")}

    ran = hokuro("run", "k.bue", "--json")
    assert ran.exit_code == 0, ran.output
    summary = json.loads(ran.output)
    assert summary["status"] == "done" and summary["done"] == 7
    runs_of = {}
    for p in workspace.glob("ran-*"):
        runs_of.setdefault(p.name.split("-")[1], []).append(p)
    for item in before - {"3"}:
        assert len(runs_of[item]) == 1, f"item {item} ran again after the resume"
    assert len(runs_of["3"]) == 2  # the one killed mid-step runs again
    assert set(runs_of) == {str(i) for i in range(6)}


# -- a script for workers ------------------------------------------------------------------------

@pytest.mark.slow
def test_a_submitted_script_is_run_by_a_worker(workspace):
    assert hokuro("example").exit_code == 0
    submitted = hokuro("submit", "example.bue", "--json")
    assert submitted.exit_code == 0, submitted.output
    run_id = json.loads(submitted.output)["run"]
    with Spot("example") as spot:
        assert str(spot.ledger.get_run(run_id).status) == "submitted"  # nothing ran here
    env = {**os.environ, "HOKURO_EXAMPLE_WAIT": "0.2",
           "PYTHONPATH": os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH"))
                                         if p)}
    # The worker compiles the script's steps from the path its run recorded.
    worker = subprocess.Popen(
        [sys.executable, "-c", "from hokuro.cli import main; main()", "worker", "example",
         "--concurrency", "8"], cwd=workspace, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        with Spot("example") as spot:
            while str(spot.ledger.get_run(run_id).status) == "submitted":
                assert worker.poll() is None, worker.stdout.read()
                assert time.monotonic() < deadline, "the worker did not finish the run"
                time.sleep(0.1)
            assert str(spot.ledger.get_run(run_id).status) == "done"
            counts = spot.ledger.run_counts(run_id)
        assert counts[("7.upload", "done")] == 3  # every account uploaded
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_hokuro_retry_run_compiles_a_script_runs_steps_from_its_file(workspace):
    write(workspace, "steps.py", """
        import os

        def items():
            return [1, 2, 3]

        def check(x):
            if x == 2 and not os.path.exists("FIXED"):
                raise ValueError("two is not ready")
            return x * 10
        """)
    write(workspace, "flow.bue", """
        items:
            python
            items
            steps.py
        check:
            python
            check
            steps.py

        for x in items():
            check(x)
        """)
    ran = hokuro("run", "flow.bue", "--json")
    assert ran.exit_code == 1 and json.loads(ran.output)["failed"] == 1
    (workspace / "FIXED").write_text("")
    retried = hokuro("retry", "flow", "--run", "flow.bue", "--json")
    assert retried.exit_code == 0, retried.output
    with Spot("flow") as spot:
        assert sorted(t.result for t in spot.find("flow.check", status="done")) == [10, 20, 30]
