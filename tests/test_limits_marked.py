"""A mark over a limiter (``@spot.mark`` above ``@lim``): waiting for the limiter is not
running. The mark takes the limiter's place before it claims the task, so a waiting call has
no record yet, a task's timings start when its function does, and a crash while calls wait
leaves nothing to report as abandoned.

This file is also the worker of the kill -9 test: ``python test_limits_marked.py <workspace>
<started folder>``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import hokuro
from hokuro.errors import RetryAfter
from hokuro.store.limits import Limiter, MemoryStore
from test_limits import FakeClock
from test_limits_waiting import VirtualTime


def test_a_limited_tasks_timings_start_when_its_function_does(workspace):
    clock = FakeClock()
    spot = hokuro.Spot("lim", clock=clock, limits="memory")
    lim = Limiter("api", "1/s", burst=1, store=MemoryStore(clock), sleep=clock.sleep)
    began = clock.now

    @spot.mark
    @lim
    def call(i: int) -> int:
        clock.now += 0.25  # the function's own work
        return i

    assert [call(i) for i in range(3)] == [0, 1, 2]
    for i in range(3):
        record = call.task(i).record
        # each call waited 0.75 s for its place after the last call's work, then ran 0.25 s
        assert record.started_at == pytest.approx(began + i)
        assert record.finished_at - record.started_at == pytest.approx(0.25)
    spot.close()


def test_calls_waiting_for_the_limiter_have_no_running_record(workspace):
    clock = VirtualTime()
    spot = hokuro.Spot("lim", clock=clock, limits="memory")
    lim = Limiter("api", "1/s", burst=1, store=MemoryStore(clock), async_sleep=clock.sleep)

    @spot.mark
    @lim
    async def call(i: int) -> int:
        await clock.sleep(0.5)
        return i

    async def main() -> dict[int, str]:
        calls = [asyncio.create_task(call(i)) for i in range(4)]
        await clock.sleep(0.25)  # the first call runs; the others wait for the limiter
        seen = {i: call.task(i).status for i in range(4)}
        assert await asyncio.gather(*calls) == [0, 1, 2, 3]
        return seen

    assert clock.run(main()) == {0: "running", 1: "missing", 2: "missing", 3: "missing"}
    assert [call.task(i).status for i in range(4)] == ["done"] * 4
    spot.close()


def test_kept_results_never_reach_the_limiter_and_real_calls_spend_it_once(workspace):
    clock = FakeClock()
    spot = hokuro.Spot("lim", clock=clock, limits="memory")
    lim = Limiter("api", "1/s", burst=2, store=MemoryStore(clock), sleep=clock.sleep)

    @spot.mark
    @lim
    def call(i: int) -> int:
        return i

    assert call(1) == 1 and call(1) == 1  # the second is a kept result
    assert lim.try_acquire()  # one place of the burst of two is left
    assert not lim.try_acquire()
    spot.close()


def test_a_retry_after_under_the_mark_holds_and_retries_once_claimed(workspace):
    clock = FakeClock()
    spot = hokuro.Spot("lim", clock=clock, limits="memory")
    lim = Limiter("api", "10/s", burst=1, store=MemoryStore(clock), sleep=clock.sleep)
    attempts: list[float] = []

    @spot.mark
    @lim(cost=lambda prompt, ctx: len(prompt) // 10)  # the cost sees ctx=None before the claim
    def ask(prompt: str, ctx: hokuro.Context) -> str:
        attempts.append(clock.now)
        if len(attempts) == 1:
            raise RetryAfter(2.0)
        return prompt.upper()

    assert ask("a" * 10) == "A" * 10
    assert attempts[1] - attempts[0] >= 2.0
    assert ask.task("a" * 10).attempts == 1  # one task run, its retry inside it
    spot.close()


def test_another_decorator_between_the_mark_and_the_limiter_is_not_skipped(workspace):
    import functools

    spot = hokuro.Spot("lim", limits="memory")
    lim = Limiter("api", "100/s", store=MemoryStore())
    seen: list[str] = []

    def noted(fn):
        @functools.wraps(fn)  # copies the guard's attribute along with the name
        def wrapper(*args, **kwargs):
            seen.append("noted")
            return fn(*args, **kwargs)

        return wrapper

    @spot.mark
    @noted
    @lim
    def call(i: int) -> int:
        return i

    assert call(1) == 1 and seen == ["noted"]
    spot.close()


# -- a crash while calls wait -------------------------------------------------------------------

def _batch(workspace: str, started: str) -> None:
    spot = hokuro.Spot("batch", workspace=workspace)
    lim = spot.limiter(name="api", limits="5/s", burst=1)

    @spot.mark(name="tests.limited")
    @lim
    def work(i: int) -> int:
        (Path(started) / str(i)).touch()
        time.sleep(3600)
        return i

    with ThreadPoolExecutor(10) as pool:
        list(pool.map(work, range(10)))


def test_a_batch_killed_while_calls_wait_reports_only_the_calls_that_ran(workspace):
    started = workspace / "started"
    started.mkdir()
    child = subprocess.Popen([sys.executable, __file__, str(workspace), str(started)],
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while len(list(started.iterdir())) < 2:  # two calls run; the next is 0.2 s away
            assert child.poll() is None, child.communicate()[1]
            assert time.monotonic() < deadline, "the batch did not start in time"
            time.sleep(0.01)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.communicate()
    ran = {int(path.name) for path in started.iterdir()}

    spot = hokuro.Spot("batch", workspace=workspace)

    @spot.mark(name="tests.limited")
    def work(i: int) -> int:
        return i

    tasks = {i: work.task(i) for i in range(10)}
    assert {i for i, task in tasks.items() if task.status != "missing"} == ran
    assert {tasks[i].error.type for i in ran} == {"Abandoned"}  # these really ran
    counts = spot.stats()["counts"]
    assert counts["total"] == counts["failed"] == len(ran)
    spot.close()


if __name__ == "__main__":
    _batch(*sys.argv[1:])
