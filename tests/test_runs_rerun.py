"""The same run again: items whose task is done are answered in bulk at insert (one key pass,
one read, one insert per window), and the run's record stays exact — SQLite and PostgreSQL."""

from __future__ import annotations

import warnings
from dataclasses import replace as dataclass_replace

import pytest

from conftest import trace_ledger
from hokuro import Plan


@pytest.fixture
def spot(make_spot):
    return make_spot("rerun")


def test_a_rerun_over_many_windows_reuses_every_item_and_keeps_exact_counts(spot):
    calls = []

    @spot.mark
    async def double(x):
        calls.append(x)
        return 2 * x

    def items():
        yield from range(2500)  # three windows of 1,000 (concurrency 10)

    first = spot.map(double, items(), concurrency=10, progress=False)
    assert first.results() == [2 * x for x in range(2500)]
    claimed = trace_ledger(spot, "claim_many")
    looked = trace_ledger(spot, "reusable")
    again = spot.map(double, items(), concurrency=10, progress=False)
    assert again.results() == [2 * x for x in range(2500)]
    assert len(calls) == 2500  # nothing ran twice
    assert claimed == []  # no task was claimed: every job went in done
    assert len(looked) == 3  # one read of the tasks per window
    summary = again.summary()
    assert summary["reused"] == 2500 and summary["done"] == 2500 and summary["jobs"] == 2500
    assert list(summary["steps"].values()) == [{"done": 2500}]
    assert summary["saved"] >= 0.0
    assert again.status == "done"
    record = spot.ledger.get_run(again.id)
    assert record.cursor == 2500 and record.inputs_done
    jobs = list(spot.ledger.find_jobs(again.id))
    assert len(jobs) == 2500
    assert all(j.status == "done" and j.attempts == 0 and j.owner is None for j in jobs)
    in_order = sorted(jobs, key=lambda j: j.seq)  # inserted in input order
    assert [j.job_id.partition("/")[0] for j in in_order] == [str(i) for i in range(2500)]


def test_a_rerun_with_some_items_new_runs_only_those_and_counts_each_once(spot):
    calls = []

    @spot.mark
    def square(x):
        calls.append(x)
        return x * x

    spot.map(square, range(0, 2400, 2), concurrency=10, progress=False)  # the even ones
    calls.clear()
    read, done = [], []

    def items():
        for i in range(2400):
            read.append(i)
            yield i

    @spot.mark(name=square.name)
    def square_again(x):
        done.append(x)
        assert len(read) - len(done) <= 2 * 1000 + 1200, (len(read), len(done))
        return x * x

    run = spot.map(square_again, items(), concurrency=10, progress=False)
    assert run.results() == [x * x for x in range(2400)]
    assert sorted(done) == list(range(1, 2400, 2))  # only the odd ones ran
    summary = run.summary()
    assert summary["reused"] == 1200 and summary["done"] == 2400


def test_a_pipe_whose_first_step_is_done_goes_on_to_the_next_steps(spot):
    calls = []

    @spot.mark
    def fetch(x):
        calls.append(("fetch", x))
        return {"x": x}

    @spot.mark
    def shape(row):
        calls.append(("shape", row["x"]))
        return row["x"] + 100

    spot.map(fetch, range(1200), concurrency=10, progress=False)
    calls.clear()
    run = spot.run(fetch | shape, over=range(1200), concurrency=10, progress=False)
    assert run.results() == [x + 100 for x in range(1200)]
    assert sorted(c[1] for c in calls if c[0] == "shape") == list(range(1200))
    assert not [c for c in calls if c[0] == "fetch"]
    steps = run.summary()["steps"]
    assert sorted(steps.values(), key=str) == [{"done": 1200}, {"done": 1200}]
    assert run.summary()["reused"] == 1200


def test_a_plan_with_two_inputs_per_call_is_reused_at_insert(spot):
    calls = []

    @spot.mark
    def pair(a, b):
        calls.append((a, b))
        return [a, b]

    plan = Plan("pairs")
    item = plan.input()
    plan.call(pair, item, item)
    first = spot.run(plan, over=range(30), progress=False)
    assert first.results() == [[x, x] for x in range(30)]
    again = spot.run(plan, over=range(30), progress=False)
    assert again.results() == [[x, x] for x in range(30)]
    assert len(calls) == 30 and again.summary()["reused"] == 30


def test_results_read_inline_blob_none_and_undecodable_results_alike(make_spot):
    spot = make_spot("rerun", blob_threshold=1000)

    @spot.mark
    def shape(x):
        if x == 0:
            return None  # passes its input on
        if x == 1:
            return b"x" * 5000  # kept in the blob store
        return {"x": x}

    run = spot.map(shape, range(4), progress=False)
    expected = [0, b"x" * 5000, {"x": 2}, {"x": 3}]
    assert run.results() == expected
    again = spot.map(shape, range(4), progress=False)
    assert again.results() == expected and again.summary()["reused"] == 4
    # A kept result that no longer decodes is computed again, saying so, not returned.
    assert spot.ledger.get(shape.key_of(1)).blob is not None
    record = spot.ledger.get(shape.key_of(3))
    assert record.blob is None
    spot.ledger.put(dataclass_replace(record, result=b"\xc1"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(Exception, match="cannot be read"):
            again.results(strict=True)
    assert any("cannot decode" in str(w.message) for w in caught)


def test_results_kept_as_blobs_are_read_in_one_bulk_read_of_their_records(make_spot):
    spot = make_spot("rerun", blob_threshold=1000)

    @spot.mark
    def big(x):
        return bytes([x]) * 5000  # kept in the blob store

    run = spot.map(big, range(6), progress=False)
    calls = trace_ledger(spot, "get", "get_many")
    assert run.results() == [bytes([x]) * 5000 for x in range(6)]
    assert [name for name, _ in calls] == ["get_many"]  # not a read per result


def test_results_say_which_result_is_gone_when_its_task_was_cleared(spot):
    from hokuro.errors import HokuroError

    @spot.mark
    def triple(x):
        return 3 * x

    run = spot.map(triple, range(5), progress=False)
    assert run.results() == [0, 3, 6, 9, 12]
    spot.ledger.delete([triple.key_of(2)])
    with pytest.raises(HokuroError, match=f"result of task {triple.key_of(2)[:12]} is gone"):
        run.results()


def fail_second_insert(spot) -> list[int]:
    """Make the Spot's real ledger fail its second insert of jobs ("the disk is full");
    the sizes of the inserts tried, as they come."""
    from hokuro.errors import LedgerError

    real, sizes = spot.ledger.insert_jobs, []

    def failing(run_id, specs, now):
        sizes.append(len(specs))
        if len(sizes) == 2:
            raise LedgerError("the disk is full")
        return real(run_id, specs, now)

    spot.ledger.insert_jobs = failing
    return sizes


def test_a_window_that_fails_to_go_in_stops_the_run_and_the_cursor_stays_behind_it(spot):
    from hokuro.errors import LedgerError

    @spot.mark
    async def double(x):
        return 2 * x

    spot.map(double, range(2500), concurrency=10, progress=False)
    real = spot.ledger.insert_jobs
    fail_second_insert(spot)
    with pytest.raises(LedgerError, match="the disk is full"):
        spot.map(double, range(2500), concurrency=10, progress=False, run="again")
    (record,) = [r for r in spot.ledger.list_runs() if r.name == "again"]
    assert record.cursor == 1000 and not record.inputs_done  # the first window only
    spot.ledger.insert_jobs = real
    run = spot.map(double, range(2500), concurrency=10, progress=False, run="again")
    assert run.id == record.id  # resumed where it stopped
    assert run.results() == [2 * x for x in range(2500)]
    summary = run.summary()
    assert summary["done"] == 2500 and summary["jobs"] == 2500 and summary["reused"] == 1500


def _child(*args: str):
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), *sys.path])}
    return subprocess.Popen([sys.executable, str(tests / "procs.py"), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("after", [0.3, 0.8, 1.5])
def test_a_rerun_killed_at_any_moment_never_runs_a_done_item_again(make_spot, workspace,
                                                                   after):
    """kill -9 of a rerun (2,400 items done, 200 new ones of 50 ms) at some moment (while its
    windows of done jobs go in, or while the new items run), then the same program again."""
    import signal
    import time

    make_spot("procs").close()  # the database of the children's Spot
    db, blobs = make_spot.urls("procs")
    log = workspace / "executions.log"
    first = _child("batch_run", str(make_spot.home), str(log), "2400", "0", db, blobs)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0 and out.split() == ["done", "2400"], err
    rerun = _child("batch_run", str(make_spot.home), str(log), "2600", "0.05", db, blobs)
    time.sleep(after)
    rerun.send_signal(signal.SIGKILL)
    rerun.wait()
    again = _child("batch_run", str(make_spot.home), str(log), "2600", "0", db, blobs)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert out.split() == ["done", "2600"]
    executions = [int(x) for x in log.read_text().split()]
    assert sorted(x for x in executions if x < 2400) == list(range(2400))  # each once, ever
    new = [x for x in executions if x >= 2400]
    assert sorted(set(new)) == list(range(2400, 2600))  # nothing lost
    assert len(new) - 200 <= 8 + 8  # again: only what was running or not yet committed


def test_a_large_window_goes_in_by_parts_and_a_failed_part_leaves_the_cursor_behind(spot):
    from hokuro.errors import LedgerError

    ran = []

    @spot.mark
    async def triple(x):
        ran.append(x)
        return 3 * x

    real = spot.ledger.insert_jobs
    sizes = fail_second_insert(spot)  # the first window's second part
    with pytest.raises(LedgerError, match="the disk is full"):
        # concurrency 1,000: a first window of 1,250 items (2,000 on PostgreSQL, which
        # claims further ahead), in parts of at most 1,000
        spot.map(triple, range(3000), concurrency=1000, progress=False, run="parts")
    assert len(sizes) == 2 and sizes[0] == 1000 and sizes[1] in (250, 1000)
    (record,) = [r for r in spot.ledger.list_runs() if r.name == "parts"]
    assert record.cursor == 0 and not ran  # the window's cursor waits for all its parts
    spot.ledger.insert_jobs = real
    run = spot.map(triple, range(3000), concurrency=1000, progress=False, run="parts")
    assert run.id == record.id and run.results() == [3 * x for x in range(3000)]
    assert sorted(ran) == list(range(3000))  # every item once: the part in already was kept
    assert run.summary()["jobs"] == 3000
