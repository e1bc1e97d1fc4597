"""hokuro worker: submitted runs served by worker processes, on PostgreSQL (many machines)
and SQLite (several processes on one machine); spot.submit, hokuro submit, run.wait,
hokuro workers; and the faults: kill -9 mid-job, every PostgreSQL connection terminated,
a step that raises on import, workers on different scopes, a worker paused past its lease.

Worker processes import ``tests/worker_steps.py``, whose Spot comes from the environment
(the ``served`` fixture sets it), so this test and its workers open the same Spot.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from hokuro.cli.app import main
from hokuro.model.plans import Plan
from hokuro.model.workers import WorkerRecord
from hokuro.runs.resolving import StepNotImportable, StepResolver, Unimportable

TESTS = Path(__file__).parent
SRC = TESTS.parent / "src"
TERMINATE = """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
               WHERE datname = %s AND pid <> pg_backend_pid()"""


class Served:
    """The test's Spot (tests/worker_steps.py, imported afresh) and its worker processes."""

    def __init__(self, home: Path, db: str, lease: float) -> None:
        self.home = home
        self.db = db
        self.env = {**os.environ, "HOKURO_TEST_WORKER_HOME": str(home),
                    "HOKURO_TEST_WORKER_DB": db, "HOKURO_TEST_WORKER_LEASE": str(lease),
                    "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)])}
        os.environ.update({k: self.env[k] for k in ("HOKURO_TEST_WORKER_HOME",
                                                     "HOKURO_TEST_WORKER_DB",
                                                     "HOKURO_TEST_WORKER_LEASE")})
        for name in ("worker_steps_fragile", "worker_steps"):
            sys.modules.pop(name, None)
        self.steps = importlib.import_module("worker_steps")
        self.spot = self.steps.spot
        self.processes: list[subprocess.Popen] = []

    def worker(self, *args: str, **env: str) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-c", "from hokuro.cli import main; main()", "worker",
             "worker_steps:spot", *args], cwd=self.home, env={**self.env, **env},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.processes.append(process)
        return process

    def executions(self, step: str | None = None) -> list[list[str]]:
        return [e for e in self.steps.executions() if step is None or e[0] == step]

    def wait_for(self, path: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.home / path
            if found.exists() and found.read_text():
                return found.read_text()
            time.sleep(0.02)
        raise AssertionError(f"{path} never appeared; workers said: {self.output()}")

    def output(self) -> str:
        said = []
        for process in self.processes:
            if process.poll() is not None and process.stdout is not None:
                said.append(process.stdout.read())
        return "\n".join(said)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                with _suppress():
                    os.kill(process.pid, signal.SIGCONT)
                process.kill()
            process.wait()
        self.spot.close()
        for name in ("worker_steps_fragile", "worker_steps"):
            sys.modules.pop(name, None)


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True


@pytest.fixture
def served_sqlite(workspace):
    served = Served(workspace, "", lease=60)
    yield served
    served.stop()


@pytest.fixture
def served_pg(workspace, pg_url):
    served = Served(workspace, pg_url, lease=1.5)
    yield served
    served.stop()


def hokuro(*args: str, input: str | None = None):
    result = CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


# -- submitting, and a worker in this process -----------------------------------------------

def test_submit_records_a_run_that_a_worker_then_executes(served_sqlite):
    from hokuro.runs.worker import Worker

    steps = served_sqlite.steps
    run = served_sqlite.spot.submit(steps.doubled, over=iter(range(6)), name="sub")
    assert run.status == "submitted" and served_sqlite.executions() == []
    counts = served_sqlite.spot.ledger.run_counts(run.id)
    assert counts == {("0.double", "queued"): 6, ("1.inc", "blocked"): 6}
    report = Worker(served_sqlite.spot, concurrency=4, max_jobs=12).run()
    assert report.ended == 12 and report.handed_back == 0
    assert run.wait(timeout=10).status == "done"
    assert run.results() == [x * 2 + 1 for x in range(6)]
    assert sorted(e[0] for e in served_sqlite.executions()) == ["double"] * 6 + ["inc"] * 6
    (worker,) = served_sqlite.spot.ledger.list_workers()
    assert (worker.status, worker.done, worker.running, worker.pid) == \
        ("stopped", 12, 0, os.getpid())
    # Submitting under the name of a finished run makes a new run; nothing runs here.
    again = served_sqlite.spot.submit(steps.doubled, over=[1], name="sub")
    assert again.id != run.id and again.status == "submitted"
    with pytest.raises(Exception, match="still submitted"):
        again.wait(timeout=0.2)


def test_one_worker_serves_two_runs_whose_jobs_have_the_same_ids(served_sqlite):
    from hokuro.runs.worker import Worker

    steps = served_sqlite.steps
    pipe = steps.double | steps.note | steps.inc  # note passes double's result on
    first = served_sqlite.spot.submit(pipe, over=[1, 2, 3], name="first")
    second = served_sqlite.spot.submit(pipe, over=[10, 20, 30], name="second")
    Worker(served_sqlite.spot, concurrency=8, max_jobs=18).run()
    assert first.wait(timeout=10).results() == [3, 5, 7]
    assert second.wait(timeout=10).results() == [21, 41, 61]


def test_an_empty_submission_ends_at_once_and_run_workers_zero_runs_here(served_sqlite):
    steps = served_sqlite.steps
    assert served_sqlite.spot.submit(steps.doubled, over=[], name="none").status == "done"
    run = served_sqlite.spot.run(steps.doubled, over=[1, 2], workers=0, progress=False)
    assert run.status == "done" and run.results() == [3, 5]


def test_spot_run_with_local_workers_forks_them_and_stops_them(served_sqlite):
    run = served_sqlite.spot.run(served_sqlite.steps.doubled, over=range(40), workers=2,
                                 concurrency=4, run="forked", progress=False)
    assert run.status == "done" and run.results() == [x * 2 + 1 for x in range(40)]
    pids = {e[2] for e in served_sqlite.executions()}
    assert str(os.getpid()) not in pids
    workers = served_sqlite.spot.ledger.list_workers()
    assert len(workers) == 2 and {w.status for w in workers} == {"stopped"}
    assert sum(w.done for w in workers) == 80


def test_hokuro_submit_then_run_show_follow_and_hokuro_workers(served_sqlite):
    from hokuro.runs.worker import Worker

    result = hokuro("submit", "worker_steps:doubled", "--over-json", "-", "--name", "cli",
                    "--json", input="[1, 2, 3]")
    assert result.exit_code == 0, result.output
    submitted = json.loads(result.output)
    assert submitted["status"] == "submitted" and submitted["jobs"] == 6
    Worker(served_sqlite.spot, concurrency=2, max_jobs=6).run()
    db = str(served_sqlite.home / ".hokuro" / "wk.db")
    shown = hokuro("run", "show", db, submitted["run"][:8], "--follow", "--json")
    assert json.loads(shown.output.splitlines()[-1])["status"] == "done"
    # A worker that stopped beating reads as lost; a stopped one shows with --all only.
    now = time.time()
    served_sqlite.spot.ledger.register_worker(WorkerRecord(
        id="elsewhere|1|1.0|abc", host="elsewhere", pid=1, scopes="a,b", concurrency=8,
        started_at=now - 100, heartbeat_at=now - 60, status="running", every=5.0))
    listed = json.loads(hokuro("workers", db, "--json").output)
    assert [(w["host"], w["status"], w["scopes"]) for w in listed] == \
        [("elsewhere", "lost", ["a", "b"])]
    everyone = json.loads(hokuro("workers", db, "--all", "--json").output)
    assert sorted(w["status"] for w in everyone) == ["lost", "stopped"]
    text = hokuro("workers", db).output
    assert "lost" in text and "elsewhere" in text
    usage = hokuro("submit", "worker_steps:doubled", "--over", "worker_steps:items",
                   "--over-json", "-", input="[]")
    assert usage.exit_code == 2 and "not both" in usage.output


# -- worker processes: SQLite --------------------------------------------------------------------

@pytest.mark.slow
def test_sqlite_workers_on_different_scopes_and_a_step_that_raises_on_import(served_sqlite):
    """Two processes on one ledger file: one serves scope a, one scope b (and imports
    nothing fragile); a step whose module raises on import in a worker fails its jobs
    there, saying which module and where it was looked for; the other jobs go on."""
    steps = served_sqlite.steps
    import hokuro as hk
    from worker_steps_fragile import fragile

    plan = hk.Plan("lanes")
    item = plan.input()
    plan.call(steps.in_a, item)
    plan.call(steps.in_b, item)
    plan.call(fragile, item)
    run = served_sqlite.spot.submit(plan, over=range(4))
    a = served_sqlite.worker("--scope", "a,default", "--concurrency", "2",
                             HOKURO_TEST_BREAK_IMPORT="1")
    b = served_sqlite.worker("--scope", "b", "--concurrency", "2")
    run.wait(timeout=60)
    assert run.status == "failed"
    by = {step: {e[2] for e in served_sqlite.executions(step)} for step in ("in_a", "in_b")}
    assert by == {"in_a": {str(a.pid)}, "in_b": {str(b.pid)}}
    assert served_sqlite.executions("fragile") == []
    failures = run.failures()
    assert len(failures) == 4 and {f.step for f in failures} == {fragile.name}
    assert "worker_steps_fragile" in failures[0].error and "sys.path" in failures[0].error
    assert "refuses to be imported" in failures[0].error
    for process in (a, b):
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


# -- worker processes: PostgreSQL ----------------------------------------------------------------

@pytest.mark.postgres
@pytest.mark.slow
def test_kill_9_mid_job_then_another_worker_completes_it_exactly_once(served_pg):
    steps = served_pg.steps
    run = served_pg.spot.submit(steps.slow, over=[7], name="killed")
    doomed = served_pg.worker("--concurrency", "1", HOKURO_TEST_SLOW="60")
    assert served_pg.wait_for("started-7") == str(doomed.pid)
    (served_pg.home / "started-7").unlink()
    survivor = served_pg.worker("--concurrency", "2")
    time.sleep(0.3)
    doomed.kill()
    doomed.wait()
    assert run.wait(timeout=60).status == "done"
    assert run.results() == [f"7 by {survivor.pid}"]
    assert [e[2] for e in served_pg.executions("slow")] == [str(doomed.pid), str(survivor.pid)]
    (job,) = served_pg.spot.ledger.find_jobs(run.id)
    assert job.status == "done" and f"|{survivor.pid}|" in job.owner
    listed = json.loads(hokuro("workers", served_pg.db, "--json").output)
    assert {w["pid"] for w in listed} == {doomed.pid, survivor.pid}
    survivor.send_signal(signal.SIGTERM)
    assert survivor.wait(timeout=30) == 0


@pytest.mark.postgres
@pytest.mark.slow
def test_a_worker_paused_past_its_lease_is_fenced_off_when_it_resumes(served_pg):
    steps = served_pg.steps
    run = served_pg.spot.submit(steps.slow, over=[3], name="paused")
    paused = served_pg.worker("--concurrency", "1", HOKURO_TEST_SLOW="1.0")
    assert served_pg.wait_for("started-3") == str(paused.pid)
    paused.send_signal(signal.SIGSTOP)
    time.sleep(2.0)  # past its lease (1.5 s): its job is claimable again
    other = served_pg.worker("--concurrency", "1", HOKURO_TEST_SLOW="0")
    assert run.wait(timeout=60).status == "done"
    paused.send_signal(signal.SIGCONT)
    time.sleep(2.0)  # its step ends, and its late outcome is refused
    assert run.results() == [f"3 by {other.pid}"]
    (job,) = served_pg.spot.ledger.find_jobs(run.id)
    record = served_pg.spot.ledger.get(job.task_key)
    assert record.status == "done" and f"|{other.pid}|" in record.owner
    assert job.status == "done" and f"|{other.pid}|" in job.owner
    assert sorted(e[2] for e in served_pg.executions("slow")) == \
        sorted([str(paused.pid), str(other.pid)])
    for process in (paused, other):
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


@pytest.mark.postgres
@pytest.mark.slow
def test_every_connection_terminated_mid_run_then_the_run_completes(served_pg, pg_admin):
    steps = served_pg.steps
    run = served_pg.spot.submit(steps.doubled, over=range(300), name="outage")
    workers = [served_pg.worker("--concurrency", "8") for _ in range(2)]
    database = served_pg.db.rsplit("/", 1)[1]
    deadline = time.monotonic() + 30
    while len(served_pg.executions()) < 100 and time.monotonic() < deadline:
        time.sleep(0.02)
    terminated = pg_admin.execute(TERMINATE, (database,)).fetchone()[0]
    assert terminated >= 2
    assert run.wait(timeout=90).status == "done", served_pg.output()
    assert run.results() == [x * 2 + 1 for x in range(300)]
    executed = served_pg.executions()
    assert {(e[0], e[1]) for e in executed} == \
        {(s, str(x if s == "double" else x * 2)) for x in range(300) for s in ("double", "inc")}
    # After the outage the workers still wake on notifications (they connected again).
    started = time.monotonic()
    again = served_pg.spot.submit(steps.doubled, over=[1000], name="after")
    assert again.wait(timeout=30).status == "done"
    assert time.monotonic() - started < 5
    for process in workers:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


@pytest.mark.postgres
def test_sigterm_hands_back_a_running_job_without_counting_an_attempt(served_pg):
    steps = served_pg.steps
    run = served_pg.spot.submit(steps.slow, over=[5], name="handed")
    worker = served_pg.worker("--concurrency", "1", "--grace", "0.3", HOKURO_TEST_SLOW="30")
    served_pg.wait_for("started-5")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    said = worker.stdout.read()
    assert "1 handed back" in said, said
    (job,) = served_pg.spot.ledger.find_jobs(run.id)
    assert (job.status, job.attempts) == ("queued", 0)
    task = served_pg.spot.ledger.get(steps.slow.key_of(5))
    assert task.status == "cancelled" and "worker stopped" in task.error
    assert served_pg.spot.ledger.get_run(run.id).status == "submitted"


def test_demo_with_three_worker_processes(workspace):
    result = CliRunner().invoke(main, ["demo", "--workers", "3", "--latency", "0.1",
                                       "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout[result.stdout.index("{"):])["workers"]
    assert figures["status"] == "done" and figures["downloads"] == 18 and figures["reset"]
    assert figures["exit_codes"] == [0, 0, 0] and len(figures["jobs_per_worker"]) == 3
    assert figures["done"] == figures["jobs"] == 6 + 18 * 3


# -- finding a recorded run's steps ---------------------------------------------------------------

def test_steps_by_path_by_hook_and_the_reasons_of_those_not_found(served_sqlite, workspace):
    worker_steps = served_sqlite.steps
    spot = worker_steps.spot
    found: list[str] = []

    def script_hook(fn_path: str, given_spot):
        found.append(fn_path)
        assert given_spot is spot
        return worker_steps.double

    resolve = StepResolver(spot, {"script:": script_hook}, ledger=spot.ledger)
    assert resolve("worker_steps.double", "worker_steps:double") is worker_steps.double
    assert resolve("x", "script:/abs/flow.bue#x") is worker_steps.double
    assert found == ["script:/abs/flow.bue#x"]
    missing = resolve("gone", "no_such_module_here:gone")
    assert isinstance(missing, Unimportable)
    assert "no_such_module_here" in missing.reason and "sys.path" in missing.reason
    with pytest.raises(StepNotImportable, match="no_such_module_here"):
        missing.task_claim((), "owner", 0.0)
    assert "inside a function" in resolve("f", "m:outer.<locals>.f").reason
    assert "not a marked function" in resolve("p", "os.path:join").reason
    assert "no hook" in resolve("q", "sql-step-17").reason
    assert "script run directly" in resolve("m", "__main__:not_here").reason
    # A stage's chunk step is hokuro's own, marked for a Spot over the served ledger.
    chunk = resolve("chunks", "hokuro.stages.chunks:run_chunk")
    assert not isinstance(chunk, Unimportable), chunk
    assert chunk.fn_path == "hokuro.stages.chunks:run_chunk"
    assert chunk.spot.ledger.describe() == spot.ledger.describe()
    # A marked function of another Spot records elsewhere: refused, saying where.
    import hokuro

    other = hokuro.Spot("elsewhere", workspace=workspace / "other")
    try:
        refused = StepResolver(other, ledger=other.ledger)("d", "worker_steps:double")
        assert isinstance(refused, Unimportable) and "records into" in refused.reason
    finally:
        other.close()


def test_a_plan_with_a_step_not_found_is_rebuilt_and_keeps_its_shape(served_sqlite):
    worker_steps = served_sqlite.steps
    plan = Plan.for_pipe(worker_steps.double | worker_steps.inc)
    description = plan.describe()
    description["nodes"][1]["fn_path"] = "vanished:inc"
    rebuilt = Plan.from_description(description, StepResolver(worker_steps.spot))
    assert [n["id"] for n in rebuilt.describe()["nodes"]] == \
        [n["id"] for n in plan.describe()["nodes"]]
    assert isinstance(rebuilt.steps()[worker_steps.inc.name], Unimportable)
