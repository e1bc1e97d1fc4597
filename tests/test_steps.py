"""Step options of @spot.mark, and the ones that apply to direct calls: retries and timeout."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from hokuro import RetryAfter
from hokuro.errors import ConfigurationError
from hokuro.model.steering import RetryPolicy


@pytest.fixture
def spot(make_spot):
    return make_spot("steps")


@pytest.fixture
def slept(monkeypatch):
    """The backoff delays a sync call asked for (not slept: the test stays fast)."""
    delays: list[float] = []
    monkeypatch.setattr(time, "sleep", delays.append)
    return delays


def flaky(spot, fails, error=ValueError, **options):
    """A marked function that raises ``error`` on its first ``fails`` calls."""
    calls = []

    @spot.mark(name="flaky", **options)
    def fetch(x):
        calls.append(x)
        if len(calls) <= fails:
            raise error(f"attempt {len(calls)}") if error is not RetryAfter else error(7.5)
        return x * 10

    return fetch, calls


def test_retries_recover_a_flaky_function_and_count_every_attempt(spot, slept):
    fetch, calls = flaky(spot, fails=2, retries=3, backoff="2s")
    assert fetch(4) == 40
    assert calls == [4, 4, 4]
    task = fetch.task(4)
    assert task.status == "done" and task.attempts == 3
    assert 1.0 <= slept[0] <= 2.0 and 2.0 <= slept[1] <= 4.0  # backoff, doubled, jittered
    assert fetch(4) == 40 and calls == [4, 4, 4]  # and kept, as any result


def test_retries_stop_after_n_with_the_last_error_recorded(spot, slept):
    fetch, calls = flaky(spot, fails=99, retries=2, backoff=0.5)
    with pytest.raises(ValueError, match="attempt 3"):
        fetch(1)
    assert len(calls) == 3 and len(slept) == 2
    task = fetch.task(1)
    assert task.status == "failed" and task.attempts == 3
    assert task.error.type == "ValueError" and task.error.message == "attempt 3"


def test_another_caller_waits_out_the_backoff_instead_of_running_the_task_too(make_spot):
    # Two Spots of one name in one process: their callers meet only through the ledger,
    # as callers in two processes do.
    failed_once, calls = threading.Event(), []

    def fetch(x):
        calls.append(x)
        if len(calls) == 1:
            failed_once.set()
            raise ValueError("first attempt")
        return x * 2

    first = make_spot("steps").mark(name="fetch", retries=1, backoff=0.5)(fetch)
    second = make_spot("steps").mark(name="fetch", retries=1, backoff=0.5)(fetch)
    with ThreadPoolExecutor(1) as pool:
        retrying = pool.submit(first, 21)
        assert failed_once.wait(10)
        assert second(21) == 42  # the task stayed claimed through the backoff
        assert retrying.result(10) == 42
    assert calls == [21, 21] and first.task(21).attempts == 2


def test_each_attempt_spends_a_place_of_the_limiter_under_the_mark(make_spot):
    spot = make_spot("steps", limits="memory")
    # A rested limiter grants 3 at once; its name is new, as memory limits live per process.
    lim = spot.limiter(name=f"api-{uuid.uuid4().hex}", limits=["3/hour"])
    calls = []

    @spot.mark(name="limited", retries=1, backoff=0)
    @lim
    def fetch(x):
        calls.append(x)
        if len(calls) == 1:
            raise ConnectionError("reset")
        return x

    assert fetch(1) == 1 and len(calls) == 2
    assert lim.try_acquire(1)  # the third place
    assert not lim.try_acquire(1)  # the first two went to the two attempts


def test_without_retries_a_failure_is_not_retried(spot, slept):
    fetch, calls = flaky(spot, fails=1)
    with pytest.raises(ValueError):
        fetch(1)
    assert len(calls) == 1 and slept == [] and fetch.task(1).attempts == 1


def test_retry_on_chooses_which_errors_are_retried(spot, slept):
    fetch, calls = flaky(spot, fails=1, error=KeyError, retries=3, retry_on=ValueError)
    with pytest.raises(KeyError):
        fetch(1)
    assert len(calls) == 1 and slept == []
    other, other_calls = flaky(spot, fails=1, error=KeyError, retries=3,
                               retry_on=(ValueError, KeyError), backoff=0)
    other(2)
    assert len(other_calls) == 2


def test_retry_after_gives_the_delay_the_far_side_asked_for(spot, slept):
    fetch, calls = flaky(spot, fails=1, error=RetryAfter, retries=1, backoff="1h")
    assert fetch(3) == 30
    assert slept == [7.5] and len(calls) == 2


def test_an_async_call_retries_while_the_loop_runs_on(spot):
    calls, ticks = [], []

    @spot.mark(name="aflaky", retries=2, backoff=0.05)
    async def fetch(x):
        calls.append(x)
        if len(calls) < 3:
            raise ConnectionError("reset by peer")
        return x + 1

    async def ticker():
        while True:
            ticks.append(1)
            await asyncio.sleep(0.005)

    async def main():
        tick = asyncio.create_task(ticker())
        try:
            return await fetch(1)
        finally:
            tick.cancel()

    assert asyncio.run(main()) == 2
    assert len(calls) == 3 and fetch.task(1).attempts == 3
    assert len(ticks) >= 5  # the backoff slept on the loop, not in it


def test_an_async_timeout_is_recorded_as_a_timeout_error(spot):
    @spot.mark(name="slow", timeout="50ms")
    async def slow(x):
        await asyncio.sleep(30)

    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"did not finish within its timeout of 0\.05 s"):
        asyncio.run(slow(1))
    assert time.monotonic() - started < 10
    task = slow.task(1)
    assert task.status == "failed" and task.error.type == "TimeoutError"


def test_a_timed_out_attempt_is_retried_like_any_failure(spot):
    calls = []

    @spot.mark(name="sometimes_slow", timeout=0.05, retries=1, backoff=0)
    async def fetch(x):
        calls.append(x)
        if len(calls) == 1:
            await asyncio.sleep(30)
        return x

    assert asyncio.run(fetch(5)) == 5 and len(calls) == 2


def test_a_functions_own_timeout_error_keeps_its_message(spot):
    @spot.mark(name="own_timeout", timeout=30)
    async def fetch(x):
        raise TimeoutError("the API gateway timed out")

    with pytest.raises(TimeoutError, match="the API gateway timed out"):
        asyncio.run(fetch(1))


def test_a_sync_calls_timeout_is_left_to_the_run_engine(spot):
    # A thread cannot be stopped from outside: a direct sync call runs to its end.
    @spot.mark(name="sync_slow", timeout=0.01)
    def slow(x):
        time.sleep(0.05)
        return x

    assert slow(1) == 1 and slow.task(1).status == "done"


def test_a_cancellation_during_the_backoff_records_the_last_error(spot):
    calls = []

    @spot.mark(name="cancelled_in_backoff", retries=3, backoff="1h")
    async def fetch(x):
        calls.append(x)
        raise ValueError("down")

    async def main():
        call = asyncio.create_task(fetch(1))
        while not calls:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.05)  # now in its hour-long backoff
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    asyncio.run(main())
    task = fetch.task(1)
    assert task.status == "failed" and task.error.message == "down"  # not left running


def test_step_options_make_a_retry_policy_and_are_kept(spot):
    @spot.mark(retries=3, retry_on=KeyError, backoff="2s", timeout="1min", scope="api",
               priority=7, concurrency=4, poll="30s")
    def step(x): ...

    options = step.options
    assert options.retry_policy == RetryPolicy(retries=3, retry_on=(KeyError,), backoff=2.0)
    assert (options.timeout, options.scope, options.priority, options.concurrency,
            options.poll) == (60.0, "api", 7, 4, 30.0)

    @spot.mark
    def plain_step(x): ...

    assert plain_step.options.retry_policy == RetryPolicy()
    assert plain_step.options.retries is None and plain_step.options.scope is None


@pytest.mark.parametrize("options, message", [
    ({"retries": -1}, "retries must be a whole number >= 0"),
    ({"retries": "3"}, "retries must be a whole number >= 0"),
    ({"retry_on": "ValueError"}, "retry_on takes an exception class"),
    ({"retry_on": KeyboardInterrupt}, "retry_on takes an exception class"),
    ({"backoff": "soon"}, "backoff 'soon' is not understood"),
    ({"timeout": 0}, "timeout must be longer than 0 s"),
    ({"timeout": "forever"}, "timeout 'forever' is not understood"),
    ({"scope": "a, b"}, "a scope is a name of letters"),
    ({"priority": 1.5}, "a priority is a whole number"),
    ({"priority": True}, "a priority is a whole number"),
    ({"concurrency": 0}, "concurrency must be a whole number >= 1"),
    ({"poll": "often"}, "poll 'often' is not understood"),
])
def test_bad_step_options_are_refused_saying_what_is_expected(spot, options, message):
    with pytest.raises(ConfigurationError, match=message):
        spot.mark(**options)
