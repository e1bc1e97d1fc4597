"""Waiting for a limit: places are booked only a short horizon ahead, waiters of a process
queue in line, and nothing a process books outlives it by more than that horizon.

This file is also the worker of the kill -9 tests:
``python test_limits_waiting.py <spec> <prefix> <name> <mode>`` starts 500 waiting calls on
"50/s" and prints ``granted`` once 60 of them went.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hokuro.engine.io_thread import in_flight
from hokuro.store.limits import Limiter, LimitStore, MemoryStore, open_store
from hokuro.store.limits.gcra import EPSILON, MIN_HORIZON, booking_horizon, decide_all

INF = float("inf")


class VirtualTime:
    """A clock for asyncio tests: time moves only when every task is blocked, straight to
    the earliest sleeper's wake-up, so concurrent sleeps overlap as they would for real."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), future))
        await future

    def run(self, main) -> object:
        async def drive() -> object:
            task = asyncio.ensure_future(main)
            while True:
                for _ in range(50):  # let every task run until it blocks
                    await asyncio.sleep(0)
                if in_flight():  # a call waits for its ledger I/O: real time, not virtual
                    await asyncio.sleep(0.001)
                    continue
                if task.done():
                    return task.result()
                while self._sleepers and self._sleepers[0][2].done():
                    heapq.heappop(self._sleepers)  # a cancelled sleeper
                assert self._sleepers, "every task waits for something other than time"
                wake, _, future = heapq.heappop(self._sleepers)
                self.now = max(self.now, wake)
                future.set_result(None)

        return asyncio.run(drive())


# -- the arithmetic: a horizon, pure ---------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(horizon=st.floats(0, 3), gaps=st.lists(st.floats(0, 0.5), min_size=1, max_size=100))
def test_no_place_is_booked_further_ahead_than_the_horizon(horizon, gaps):
    now, tat = 1_700_000_000.0, 0.0
    for gap in gaps:
        now += gap
        decision = decide_all([tat], now, [0.25], [0.5], horizon)
        assert decision.granted == (decision.wait <= max(horizon, EPSILON))
        if decision.granted:
            assert decision.wait <= horizon + EPSILON
            tat = decision.tats[0]
        else:  # a refusal books nothing and says when the place would come
            assert decision.tats[0] - 0.5 - now == pytest.approx(decision.wait)


@settings(max_examples=200, deadline=None)
@given(count=st.integers(1, 20), burst=st.integers(1, 5),
       steps=st.lists(st.tuples(st.floats(0, 0.3), st.integers(0, 5), st.booleans()),
                      min_size=1, max_size=200))
def test_the_waiting_line_never_lets_more_than_count_plus_burst_through(count, burst, steps):
    """Six callers ask at random, each showing its ticket or not; however the waiting line
    orders them, no window of one period holds more than count + burst places."""
    interval, horizon = 1.0 / count, 1.0 / count
    tolerance = burst * interval
    now, tat, end = 1_700_000_000.0, 0.0, 0.0
    tickets: dict[int, tuple[float, ...] | None] = {}
    places: list[float] = []
    for gap, caller, shows in steps:
        now += gap
        ticket = tickets.get(caller) if shows else None
        decision = decide_all([tat], now, [interval], [tolerance], horizon, [end], ticket)
        if decision.granted:
            tat = decision.tats[0]
            places.append(now + decision.wait)
            tickets.pop(caller, None)
        else:
            assert decision.wait > 0
            tickets[caller] = decision.tats
            if decision.queued is not None:
                end = decision.queued[0]
    places.sort()
    for i, start in enumerate(places):
        inside = sum(1 for place in places[i:] if place <= start + 1.0 + 1e-9)
        assert inside <= count + burst


def test_waiters_of_several_processes_go_in_the_order_they_were_refused():
    t, now = 1.0, 1000.0  # "1/s", burst 1, horizon 1 s
    state = {"tat": now + 1.0, "end": 0.0}  # the burst is spent: the next place is at +1 s

    def ask(at: float, ticket=None):
        decision = decide_all([state["tat"]], at, [t], [t], t, [state["end"]], ticket)
        if decision.granted:
            state["tat"] = decision.tats[0]
        elif decision.queued is not None:
            state["end"] = decision.queued[0]
        return decision

    booked = ask(now)  # within the horizon: booked for +1 s
    assert booked.granted and booked.wait == pytest.approx(1.0)
    refused = {name: ask(now) for name in "abc"}  # 2, 3 and 4 s away: each gets a ticket
    assert [refused[name].wait for name in "abc"] == pytest.approx([2.0, 3.0, 4.0])
    # a newcomer when "a" comes back is refused: three callers wait before it
    newcomer = ask(now + 1.0)
    assert not newcomer.granted and newcomer.wait == pytest.approx(4.0)
    for i, name in enumerate("abc"):  # each comes back one horizon before its place
        back = now + 1.0 + i
        decision = ask(back, refused[name].tats)
        assert decision.granted and decision.wait == pytest.approx(1.0)
    # a killed waiter's place is passed: the newcomer's comes and goes, and after it the
    # line is empty again, so a caller without a ticket is served by the TAT alone
    assert ask(now + 7.0).granted


def test_the_horizon_is_one_interval_of_the_slowest_limit_and_never_tiny():
    assert booking_horizon([1.0, 0.0005]) == 1.0  # "60/min" and "2000/s tokens"
    assert booking_horizon([0.001]) == MIN_HORIZON  # "1000/s"


# -- every store books within the horizon only -------------------------------------------------

STORES = ["memory", "sqlite",
          pytest.param("redis", marks=pytest.mark.redis),
          pytest.param("postgres", marks=pytest.mark.postgres)]


def _open(kind: str, request, tmp_path) -> LimitStore:
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return open_store(tmp_path / "limits.db")
    if kind == "redis":
        from hokuro.store.limits.redis import RedisStore

        return RedisStore(request.getfixturevalue("redis_url"),
                          prefix=request.getfixturevalue("redis_prefix"))
    return open_store(request.getfixturevalue("pg_url"))


@pytest.mark.parametrize("kind", STORES)
def test_store_books_within_the_horizon_and_lines_up_the_rest(kind, request, tmp_path):
    store = _open(kind, request, tmp_path)
    # Places a second apart (no test sleeps on them): a loaded machine's tenths of a second
    # between two calls cannot move a place across the horizon.
    keys, t, horizon, slack = ("api|1/s",), 1.0, 1.5, 0.3
    try:
        assert store.decide(keys, (t,), (t,), horizon).wait == 0.0
        booked = store.decide(keys, (t,), (t,), horizon)
        assert booked.granted and booked.wait == pytest.approx(1.0, abs=slack)
        # 2 s away is beyond the horizon: refused, and first in the waiting line
        first = store.decide(keys, (t,), (t,), horizon)
        assert not first.granted and first.wait == pytest.approx(2.0, abs=slack)
        second = store.decide(keys, (t,), (t,), horizon)
        assert not second.granted and second.wait == pytest.approx(3.0, abs=slack)
        assert second.tats[0] == pytest.approx(first.tats[0] + t)
        # a caller that will not wait neither books nor joins the line
        assert not store.decide(keys, (t,), (t,), 0.0).granted
        # shown again, a ticket keeps its place; with room enough it books by the TAT
        again = store.decide(keys, (t,), (t,), horizon, first.tats)
        assert not again.granted and again.tats == pytest.approx(first.tats)
        assert store.decide(keys, (t,), (t,), 2.5, first.tats).granted
        # a caller without a ticket still waits behind "second"
        third = store.decide(keys, (t,), (t,), horizon)
        assert not third.granted and third.wait == pytest.approx(4.0, abs=slack)
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                                  pytest.param("redis", marks=pytest.mark.redis)])
def test_store_state_written_before_the_waiting_line_is_read_and_kept(
        kind, request, tmp_path):
    keys, t = ("api|10/s",), 0.1
    place = time.time() + 3.0  # the stored theoretical arrival time (beyond any slow start)
    if kind == "sqlite":
        import sqlite3

        with sqlite3.connect(tmp_path / "limits.db") as conn:  # a file of the earlier layout
            conn.execute("CREATE TABLE hokuro_limits (key TEXT PRIMARY KEY, tat REAL NOT NULL "
                         "DEFAULT 0, held REAL NOT NULL DEFAULT 0, held_until REAL NOT NULL "
                         "DEFAULT 0) WITHOUT ROWID")
            conn.execute("INSERT INTO hokuro_limits VALUES (?, ?, 0, 0)",
                         (keys[0], place))
    elif kind == "redis":
        import redis

        client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
        client.set(request.getfixturevalue("redis_prefix") + keys[0], f"{place!r} 0 0")
        client.close()
    else:
        import psycopg

        with psycopg.connect(request.getfixturevalue("pg_url"), autocommit=True) as conn:
            conn.execute("CREATE TABLE hokuro_limits (key text PRIMARY KEY, tat double "
                         "precision NOT NULL DEFAULT 0, held double precision NOT NULL DEFAULT "
                         "0, held_until double precision NOT NULL DEFAULT 0)")
            conn.execute("INSERT INTO hokuro_limits VALUES (%s, %s, 0, 0)",
                         (keys[0], place))
    store = _open(kind, request, tmp_path)
    try:
        refused = store.decide(keys, (t,), (t,), 0.05)
        # the stored place is kept: the wait ends there, however long opening the store took
        assert not refused.granted and refused.now + refused.wait == pytest.approx(place, abs=0.02)
        store.hold(keys, (t,), 0.01)
        assert store.held(keys)[0] == pytest.approx(0.01, abs=0.005)
    finally:
        store.close()


# -- one process's waiters, in line --------------------------------------------------------------

def _virtual_limiter(clock: VirtualTime, store: MemoryStore | None = None,
                     limits: str = "1/s", burst: int = 1) -> Limiter:
    return Limiter("api", limits, burst=burst, store=store or MemoryStore(clock),
                   async_sleep=clock.sleep)


def test_waiters_are_granted_in_order_at_the_rate():
    clock = VirtualTime()
    lim = _virtual_limiter(clock)
    start = clock.now
    granted: list[tuple[int, float]] = []

    async def call(i: int) -> None:
        await lim.acquire_async()
        granted.append((i, clock.now - start))

    async def main() -> None:
        await asyncio.gather(*(call(i) for i in range(6)))

    clock.run(main())
    assert granted == [(i, pytest.approx(float(i))) for i in range(6)]


def test_a_cancelled_waiter_gives_its_place_back_though_others_queued_after_it():
    clock = VirtualTime()
    lim = _virtual_limiter(clock)
    start = clock.now
    granted: dict[str, float] = {}

    async def call(name: str) -> None:
        await lim.acquire_async()
        granted[name] = clock.now - start

    async def main() -> None:
        await lim.acquire_async()  # the burst: the next place is 1 s away
        first = asyncio.create_task(call("first"))  # books the place at 1 s
        await asyncio.sleep(0)
        later = [asyncio.create_task(call(name)) for name in ("second", "third")]
        await clock.sleep(0.5)
        first.cancel()
        await asyncio.gather(*later)

    clock.run(main())
    # Booked far ahead, "first" could not give back a place with others behind it, and
    # "second" went at 2 s; in line, those behind move up.
    assert granted == {"second": pytest.approx(1.0), "third": pytest.approx(2.0)}


def test_a_waiter_leaving_the_middle_of_the_line_lets_those_behind_move_up():
    clock = VirtualTime()
    lim = _virtual_limiter(clock)
    start = clock.now
    granted: dict[str, float] = {}

    async def call(name: str) -> None:
        await lim.acquire_async()
        granted[name] = clock.now - start

    async def main() -> None:
        await lim.acquire_async()
        tasks = {}
        for name in ("first", "second", "third"):
            tasks[name] = asyncio.create_task(call(name))
            await asyncio.sleep(0)
        await clock.sleep(0.5)
        tasks["second"].cancel()
        await asyncio.gather(tasks["first"], tasks["third"])

    clock.run(main())
    assert granted == {"first": pytest.approx(1.0), "third": pytest.approx(2.0)}


class Counting(MemoryStore):
    """A memory store that counts decisions and checks for holds."""

    def __init__(self, clock) -> None:
        super().__init__(clock)
        self.calls = 0

    def decide(self, *args):
        self.calls += 1
        return super().decide(*args)

    def held(self, keys):
        self.calls += 1
        return super().held(keys)


def test_processes_sharing_a_limit_take_turns_at_about_three_store_calls_a_grant():
    clock = VirtualTime()
    store = Counting(clock)
    # four limiters on one store behave as four processes: four lines, one waiting line
    limiters = [_virtual_limiter(clock, store) for _ in range(4)]
    granted: list[int] = []

    async def call(process: int) -> None:
        await limiters[process].acquire_async()
        granted.append(process)

    async def main() -> None:
        await asyncio.gather(*(call(process) for _ in range(10) for process in range(4)))

    clock.run(main())
    assert len(granted) == 40
    # Without the store's waiting line each process's first waiter would ask at every turn
    # (about five calls a grant here); in it, a waiter asks once to get its place, once to
    # book it, and checks for holds once.
    assert store.calls / len(granted) <= 3.2
    assert sorted(granted.count(process) for process in range(4)) == [10, 10, 10, 10]
    assert all(len(set(granted[i:i + 4])) >= 3 for i in range(0, 36, 4))  # turns, not runs


def test_threads_and_tasks_share_one_line():
    store = MemoryStore()
    lim = Limiter("api", "100/s", burst=1, store=store)
    granted: list[float] = []
    lock = threading.Lock()

    def in_thread() -> None:
        for _ in range(10):
            lim.acquire()
            with lock:
                granted.append(time.monotonic())

    async def in_tasks() -> None:
        async def one() -> None:
            await lim.acquire_async()
            with lock:
                granted.append(time.monotonic())

        await asyncio.gather(*(one() for _ in range(20)))

    threads = [threading.Thread(target=in_thread) for _ in range(2)]
    for thread in threads:
        thread.start()
    asyncio.run(in_tasks())
    for thread in threads:
        thread.join(timeout=30)
    assert len(granted) == 40
    # 40 grants at 100/s, burst 1: about 0.39 s, and never faster than the limit allows
    span = max(granted) - min(granted)
    assert 0.37 <= span < 5.0


def test_a_forked_child_does_not_queue_behind_its_parents_waiters():
    clock = [1_700_000_000.0]
    release = threading.Event()
    lim = Limiter("api", "1/s", burst=1, store=MemoryStore(lambda: clock[0]),
                  sleep=lambda seconds: release.wait())
    lim.acquire()
    waiters = [threading.Thread(target=lim.acquire) for _ in range(3)]
    for waiter in waiters:
        waiter.start()
    deadline = time.monotonic() + 10
    while len(lim._line) < 2:  # one waiter booked, the other two in line
        assert time.monotonic() < deadline
        time.sleep(0.01)
    pid = os.fork()
    if pid == 0:  # the child: its parent's waiters do not exist here
        clock[0] += 100.0  # long rested
        done = threading.Event()
        threading.Thread(target=lambda: (lim.acquire(), done.set()), daemon=True).start()
        os._exit(0 if done.wait(5) else 1)
    _, status = os.waitpid(pid, 0)
    clock[0] += 100.0
    release.set()
    for waiter in waiters:
        waiter.join(timeout=10)
        assert not waiter.is_alive()
    assert os.waitstatus_to_exitcode(status) == 0


# -- a killed process's bookings do not hold anyone back -----------------------------------------

def _worker(spec: str, prefix: str, name: str, mode: str) -> None:
    if spec.startswith("redis"):
        from hokuro.store.limits.redis import RedisStore

        store: LimitStore = RedisStore(spec, prefix=prefix)
    else:
        store = open_store(spec)
    lim = Limiter(name, "50/s", store=store)
    granted = itertools.count(1)

    def note() -> None:
        if next(granted) == 60:
            print("granted", flush=True)

    if mode == "threads":
        def call() -> None:
            lim.acquire()
            note()

        threads = [threading.Thread(target=call) for _ in range(500)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return

    async def call_async() -> None:
        await lim.acquire_async()
        note()

    async def main() -> None:
        await asyncio.gather(*(call_async() for _ in range(500)))

    asyncio.run(main())


@pytest.mark.parametrize(("kind", "mode"), [
    ("sqlite", "tasks"), ("sqlite", "threads"),
    pytest.param("redis", "tasks", marks=pytest.mark.redis),
    pytest.param("redis", "threads", marks=pytest.mark.redis),
    pytest.param("postgres", "tasks", marks=pytest.mark.postgres),
])
def test_a_process_killed_while_many_wait_does_not_hold_back_the_next(
        kind, mode, request, tmp_path):
    spec, prefix = str(tmp_path / "limits.db"), ""
    if kind == "redis":
        spec, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue(
            "redis_prefix")
    elif kind == "postgres":
        spec = request.getfixturevalue("pg_url")
    name = f"batch-{uuid.uuid4().hex[:8]}"
    child = subprocess.Popen([sys.executable, __file__, spec, prefix, name, mode],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()  # 60 of 500 went; the rest wait, 8.8 s of places
        assert line.strip() == "granted", child.communicate()[1]
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.communicate()
    store = _open(kind, request, tmp_path)
    try:
        lim = Limiter(name, "50/s", store=store)
        start = time.monotonic()
        waited = lim.acquire()  # the limiter's own wait, not the store's first round trips
        first = time.monotonic() - start
    finally:
        store.close()
    # The dead process held at most one horizon of places (20 ms here); booked all the way
    # ahead, they kept the next process waiting for about 8 s. (The wall time, which a
    # loaded machine stretches, is bounded only loosely.)
    assert waited < 1.0, f"the next process waited {waited:.2f} s for a dead process's places"
    assert first < 5.0, f"the first acquire took {first:.2f} s"


if __name__ == "__main__":
    _worker(*sys.argv[1:])
