"""Processes: a forked child starts clean, zombie owners are dead, marked functions go to pools.

Forks here are real (``os.fork`` / multiprocessing's "fork" context) and every child is
bounded by a timeout: a child that hangs is killed and the test fails.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

import hokuro
from hokuro.engine.owners import current_owner, owner_is_dead, process_start
from hokuro.errors import NotPicklable
from hokuro.model.records import Owner

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
CHILD_TIMEOUT = 30.0


def _run_forked(child, timeout: float = CHILD_TIMEOUT) -> int:
    """Fork now; the child runs ``child()`` and exits 0 if it returned, 1 if it raised.
    Returns the exit code; a child still running after ``timeout`` is killed (-9)."""
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            child()
            code = 0
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -9


def _hold_in_thread(lock) -> threading.Event:
    """Hold ``lock`` in another thread until the returned event is set."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            release.wait(CHILD_TIMEOUT)

    threading.Thread(target=hold, daemon=True).start()
    assert held.wait(10)
    return release


# -- fork ------------------------------------------------------------------------------------

def test_forked_child_does_not_wait_for_parents_flight(make_spot):
    spot = make_spot("fork")
    parent = os.getpid()
    inside, release = threading.Event(), threading.Event()

    @spot.mark(name="tests.fork.k")
    def work(x):
        if os.getpid() == parent:
            inside.set()
            release.wait(CHILD_TIMEOUT)
        return f"{x} by {os.getpid()}"

    runner = threading.Thread(target=work, args=("k",))
    runner.start()
    assert inside.wait(10)

    def child() -> None:
        # The parent's flight of K was copied into this process with no leader to finish
        # it; the call must go to the ledger and wait for the parent's lease instead.
        assert work("k") == f"k by {parent}"

    # The parent lets its call finish once the child exists; the child then reads it.
    threading.Timer(0.5, release.set).start()
    try:
        assert _run_forked(child) == 0
    finally:
        release.set()
        runner.join(CHILD_TIMEOUT)


def test_forked_child_runs_tasks_while_parents_locks_were_held(make_spot):
    # Locks another thread held at the instant of fork stay held forever in the child,
    # where that thread does not exist. The flight table's and the lease keeper's locks are
    # taken on every miss, so a child must get fresh ones.
    spot = make_spot("forklocks")

    @spot.mark(name="tests.fork.locks")
    def work(x):
        return x * 2

    assert work(1) == 2  # the lease keeper's thread and the connections exist
    releases = [_hold_in_thread(spot.flights._lock), _hold_in_thread(spot.leases._lock)]
    try:
        code = _run_forked(lambda: None if work(21) == 42 else sys.exit(1))
    finally:
        for release in releases:
            release.set()
    assert code == 0
    assert work.task(21).status == "done"


def test_forked_child_of_a_process_with_a_held_limiter_lock_can_acquire(make_spot):
    spot = make_spot("forklimits")
    limiter = spot.limiter(name="tests.fork.api", limits=["1000/s"])
    limiter.acquire()  # opens the store in the parent
    store = spot.limit_store
    # PostgreSQL: the lock that guards opening the pool; SQLite: its connections' lock.
    lock = getattr(store, "_pool_lock", None) or store._pool._cond
    release = _hold_in_thread(lock)
    try:
        assert _run_forked(limiter.acquire) == 0
    finally:
        release.set()


def test_forked_child_opens_its_own_connections(make_spot):
    spot = make_spot("forkconns")

    @spot.mark(name="tests.fork.conns")
    def work(x):
        return x

    assert work(1) == 1
    spot.limiter(name="tests.fork.conns", limits=["1000/s"]).acquire()
    seen = {}

    def child() -> None:
        assert work(2) == 2
        spot.limiter(name="tests.fork.conns").acquire()
        seen["ok"] = True

    # Run in multiprocessing's fork context as pools do; the parent's connections stay usable.
    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(CHILD_TIMEOUT)
    if process.is_alive():
        process.kill()
        pytest.fail("the forked child hung")
    assert process.exitcode == 0
    assert work(3) == 3
    assert work.task(2).status == "done"


# -- zombies ---------------------------------------------------------------------------------

def _zombie() -> int:
    """A child that has exited and was not reaped (the caller must reap it)."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z":
        assert time.monotonic() < deadline, "the child did not exit"
        time.sleep(0.01)
    return pid


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_zombie_process_is_a_dead_owner():
    pid = _zombie()
    try:
        os.kill(pid, 0)  # the OS still answers for it: that alone must not mean alive
        started = process_start(pid)
        assert started is not None
        owner = Owner(current_owner().host, pid, started, "beef")
        assert owner_is_dead(owner.token())
    finally:
        os.waitpid(pid, 0)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_live_process_is_not_a_dead_owner_and_pid_reuse_is_still_seen():
    me = current_owner()
    assert not owner_is_dead(me.token())
    sleeper = multiprocessing.get_context("fork").Process(target=time.sleep, args=(30,))
    sleeper.start()
    try:
        started = process_start(sleeper.pid)
        assert not owner_is_dead(Owner(me.host, sleeper.pid, started, "beef").token())
        # The same pid, started at another time: an earlier process whose pid was reused.
        assert owner_is_dead(Owner(me.host, sleeper.pid, started - 100, "beef").token())
    finally:
        sleeper.kill()
        sleeper.join()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_task_of_an_owner_that_became_a_zombie_is_taken_over_at_once(make_spot):
    spot = make_spot("zombie")  # the default 60 s lease: waiting it out would fail below

    @spot.mark(name="tests.zombie")
    def work(x):
        if os.getpid() != parent:
            os._exit(0)  # killed mid-task; nobody reaps it
        return f"took over:{x}"

    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            work("k")
        finally:
            os._exit(1)
    try:
        deadline = time.monotonic() + CHILD_TIMEOUT
        while work.task("k").status == "missing":
            assert time.monotonic() < deadline, "the child never claimed the task"
            time.sleep(0.02)
        while Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z":
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.02)
        task = work.task("k")
        assert task.status == "failed"  # its owner is a zombie: it reads as abandoned
        assert task.error.type == "Abandoned"

        result: list[str] = []
        caller = threading.Thread(target=lambda: result.append(work("k")), daemon=True)
        caller.start()
        caller.join(20)  # far less than the lease
        assert result == ["took over:k"]
        assert work.task("k").attempts == 2
    finally:
        os.waitpid(pid, 0)


# -- process pools ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pool_steps(tmp_path_factory):
    """tests/pool_steps.py, imported with its workspace set (spawned workers inherit it)."""
    with pytest.MonkeyPatch.context() as patch:
        if "pool_steps" not in sys.modules:
            patch.setenv("HOKURO_TEST_POOL_WORKSPACE", str(tmp_path_factory.mktemp("pool")))
        import pool_steps

        patch.setenv("HOKURO_TEST_POOL_WORKSPACE", str(pool_steps.spot.workspace))
        yield pool_steps


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_module_level_marked_function_runs_in_a_process_pool(pool_steps, method):
    square = pool_steps.square
    items = list(range(6))
    offset = 100 if method == "fork" else 200
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(method)) as pool:
        results = list(pool.map(square, [offset + i for i in items]))
        cubes = list(pool.map(pool_steps.Steps.cube, [offset + i for i in items]))
    assert [r["square"] for r in results] == [(offset + i) ** 2 for i in items]
    assert cubes == [(offset + i) ** 3 for i in items]
    assert {r["pid"] for r in results}.isdisjoint({os.getpid()})
    for i in items:
        # Recorded in this process's Spot: a call here is a hit, answered without running.
        task = square.task(offset + i)
        assert task.status == "done"
        assert square(offset + i) == results[i]


def test_a_marked_function_pickles_by_reference(pool_steps):
    assert pickle.loads(pickle.dumps(pool_steps.square)) is pool_steps.square
    assert pickle.loads(pickle.dumps(pool_steps.Steps.cube)) is pool_steps.Steps.cube


def test_a_marked_closure_cannot_be_pickled_and_says_why(workspace):
    spot = hokuro.Spot("closures")

    @spot.mark
    def inner(x):
        return x

    with pytest.raises(NotPicklable, match="module level") as caught:
        pickle.dumps(inner)
    assert isinstance(caught.value, (hokuro.HokuroError, TypeError))
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(1, mp_context=context) as pool, \
            pytest.raises(NotPicklable, match="module level"):
        list(pool.map(inner, [1]))
    spot.close()


def test_a_marked_function_shadowed_in_its_module_cannot_be_pickled(pool_steps):
    # Marked twice under one name: the module holds only the second, so the first would
    # come back as another function in the worker.
    other = pool_steps.spot.mark(pool_steps.square.__wrapped__, name="tests.pool.other")
    with pytest.raises(NotPicklable, match="module level"):
        pickle.dumps(other)


def test_a_marked_function_missing_where_it_is_unpickled_is_named(pool_steps, monkeypatch):
    data = pickle.dumps(pool_steps.square)
    monkeypatch.delattr(pool_steps, "square")
    with pytest.raises(NotPicklable, match=r"pool_steps\.square.*module level"):
        pickle.loads(data)
