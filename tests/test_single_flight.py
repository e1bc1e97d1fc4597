"""Identical concurrent calls run once: threads, asyncio tasks, mixed, and processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import hokuro

TESTS = Path(__file__).parent


def _child(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    return subprocess.Popen([sys.executable, str(TESTS / "procs.py"), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(started: Path, child: subprocess.Popen, timeout: float = 30.0) -> None:
    """Wait until ``child`` has written ``started`` (it is inside its marked call)."""
    deadline = time.monotonic() + timeout
    while not started.exists():
        if child.poll() is not None:
            pytest.fail(f"the child ended before starting: {child.communicate()[1]}")
        assert time.monotonic() < deadline, "the child did not start in time"
        time.sleep(0.05)


@pytest.fixture
def spot(make_spot):
    return make_spot("sf")


def test_identical_calls_in_threads_run_once(spot):
    calls = []
    gate = threading.Event()

    @spot.mark
    def slow(x):
        calls.append(x)
        gate.wait(5)
        return [x]

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(slow, 1) for _ in range(8)]
        time.sleep(0.2)
        gate.set()
        results = [f.result(timeout=10) for f in futures]
    assert calls == [1]
    assert results == [[1]] * 8


def test_callers_served_by_another_callers_flight_are_counted_as_shared(spot):
    gate = threading.Event()

    @spot.mark
    def slow(x):
        gate.wait(10)
        return x

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(slow, 1) for _ in range(8)]
        key = slow.key_of(1)
        deadline = time.monotonic() + 10
        # Every follower is waiting on the leader's flight before the leader may finish.
        while not (spot.flights._flights.get(key) and
                   len(spot.flights._flights[key]._waiters) == 7):
            assert time.monotonic() < deadline, "the followers did not join the flight"
            time.sleep(0.01)
        gate.set()
        assert [f.result(timeout=10) for f in futures] == [1] * 8
    assert spot.counters["misses"] == 1 and spot.counters["shared"] == 7
    slow(1)
    assert spot.counters["hits"] == 1


def test_waiters_in_threads_get_the_same_exception(spot):
    calls = []
    gate = threading.Event()

    @spot.mark
    def bad(x):
        calls.append(x)
        gate.wait(5)
        raise ValueError("one failure")

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(bad, 1) for _ in range(4)]
        time.sleep(0.2)
        gate.set()
        errors = [f.exception(timeout=10) for f in futures]
    assert calls == [1]
    assert all(isinstance(e, ValueError) and str(e) == "one failure" for e in errors)


def test_identical_asyncio_tasks_run_once(spot):
    calls = []

    @spot.mark
    async def fetch(x):
        calls.append(x)
        await asyncio.sleep(0.05)
        return x * 2

    async def main():
        return await asyncio.gather(*(fetch(3) for _ in range(20)))

    assert asyncio.run(main()) == [6] * 20
    assert calls == [3]


def test_sync_and_async_marks_of_one_task_share_one_execution(spot):
    calls = []
    gate = threading.Event()

    @spot.mark(name="shared.task")
    def sync_version(x):
        calls.append("sync")
        gate.wait(5)
        return x + 1

    @spot.mark(name="shared.task")
    async def async_version(x):
        calls.append("async")
        await asyncio.get_running_loop().run_in_executor(None, gate.wait, 5)
        return x + 1

    async def main():
        threads = [asyncio.to_thread(sync_version, 1) for _ in range(3)]
        tasks = [async_version(1) for _ in range(3)]
        opener = asyncio.get_running_loop().call_later(0.2, gate.set)
        try:
            return await asyncio.gather(*threads, *tasks)
        finally:
            opener.cancel()

    assert asyncio.run(main()) == [2] * 6
    assert len(calls) == 1


def test_two_processes_calling_the_same_key_run_it_once(make_spot, workspace):
    counter = workspace / "counter.txt"
    children = [_child("counted_call", str(make_spot.home), str(counter), "k", "1.0",
                       *make_spot.urls("procs"))
                for _ in range(2)]
    outputs = [c.communicate(timeout=60) for c in children]
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
        assert out.strip() == "done:k"
    assert len(counter.read_text().splitlines()) == 1


def test_first_calls_of_a_process_made_by_many_threads_are_all_recorded(make_spot):
    # Every thread must claim and finish under one owner token, even the first ones of a
    # process: a task claimed under one token and finished under another reads as taken
    # over, and its result is dropped.
    child = _child("first_calls_in_threads", str(make_spot.home), "16",
                   *make_spot.urls("procs"))
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert "taken over" not in err
    assert out.strip() == "16"


def test_kill_9_of_the_owner_lets_the_next_call_take_over_at_once(make_spot, workspace):
    started = workspace / "started.txt"
    child = _child("hang_in_call", str(make_spot.home), str(started), "k",
                   *make_spot.urls("procs"))
    wait_for(started, child)
    os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=10)

    spot = make_spot("procs")

    @spot.mark(name="tests.counted")
    def work(x):
        return f"took over:{x}"

    task = work.task("k")
    assert task.status == "failed"  # its owner is dead: it reads as abandoned
    assert task.error.type == "Abandoned"
    began = time.monotonic()
    assert work("k") == "took over:k"
    # Same host, dead pid (the owner token names both): no waiting for the 60 s lease.
    assert time.monotonic() - began < 30
    assert work.task("k").attempts == 2


def test_a_dead_owner_on_another_host_is_waited_for_until_its_lease_expires(make_spot):
    now = [1_000.0]
    spot = make_spot("lease", clock=lambda: now[0], lease=30)

    @spot.mark(name="remote")
    def work(x):
        return x

    key = work.key_of(1)
    spot.ledger.claim(hokuro.model.records.Claim(
        key=key, fn="remote", owner="otherhost|4242|1.00|abcd", lease_until=now[0] + 30,
        now=now[0]))
    assert work.task(1).status == "running"
    now[0] += 31
    assert work.task(1).status == "failed"
    assert work(1) == 1
    assert work.task(1).attempts == 2


def test_four_processes_writing_at_once_never_see_a_locked_database(make_spot):
    children = [_child("many_writes", str(make_spot.home), str(w), "150",
                       *make_spot.urls("procs"))
                for w in range(4)]
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        assert "locked" not in err
        assert out.strip() == "150"
    assert make_spot("procs").stats()["counts"] == {"total": 600, "done": 600}


def test_a_cancelled_leader_hands_the_task_to_its_followers(make_spot):
    spot = make_spot("sf")
    calls = []

    @spot.mark
    async def fetch(x):
        calls.append(x)
        await asyncio.sleep(0.3 if len(calls) == 1 else 0)
        return x * 2

    async def main():
        leader = asyncio.create_task(fetch(5))
        while not calls:  # the leader runs the function
            await asyncio.sleep(0.01)
        follower = asyncio.create_task(fetch(5))
        await asyncio.sleep(0.05)
        leader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leader
        return await follower

    assert asyncio.run(main()) == 10
    assert len(calls) == 2  # the cancelled run, then the follower's own
    assert fetch.task(5).status == "done"
