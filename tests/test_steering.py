"""Steering results (Pending, Reset, Cancel) and the retry policy: pure decisions, properties."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

import hokuro
from hokuro.errors import ConfigurationError, RetryAfter
from hokuro.model.steering import (
    DEFAULT_POLL,
    Cancel,
    Pending,
    Reset,
    RetryPolicy,
    is_steering,
)

delays = st.floats(min_value=0.0, max_value=1e4, allow_nan=False)
jitters = st.floats(min_value=0.0, max_value=1.0)
attempts = st.integers(min_value=1, max_value=100_000)
draws = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


@given(backoff=delays, cap=delays, jitter=jitters, attempt=attempts, draw=draws)
def test_a_delay_lies_between_the_jittered_and_the_full_capped_backoff(
        backoff, cap, jitter, attempt, draw):
    policy = RetryPolicy(retries=5, backoff=backoff, max_backoff=cap, jitter=jitter)
    base = min(backoff * 2.0 ** min(attempt - 1, 1023), cap)
    delay = policy.delay(attempt, ValueError("x"), rng=lambda: draw)
    assert 0.0 <= delay <= cap
    assert base * (1 - jitter) - 1e-9 <= delay <= base + 1e-9


@given(backoff=st.just(0.0) | st.floats(min_value=1e-3, max_value=1e4), cap=delays,
       attempt=st.integers(min_value=1, max_value=5000))
def test_without_jitter_delays_double_until_the_cap_and_never_shrink(backoff, cap, attempt):
    policy = RetryPolicy(backoff=backoff, max_backoff=cap, jitter=0)
    now, later = policy.delay(attempt), policy.delay(attempt + 1)
    assert now <= later <= cap
    if later < cap:
        assert later == pytest.approx(2 * now)


@given(seconds=delays, attempt=attempts, jitter=jitters, seed=st.integers())
def test_retry_after_gives_exactly_its_delay(seconds, attempt, jitter, seed):
    policy = RetryPolicy(retries=1, backoff=1.0, max_backoff=2.0, jitter=jitter)
    assert policy.delay(attempt, RetryAfter(seconds), rng=random.Random(seed)) == seconds


def test_the_first_retries_wait_one_then_two_then_four_backoffs():
    policy = RetryPolicy(retries=3, backoff="2s", jitter=0)
    assert [policy.delay(n) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]
    assert policy.delay(10**9) == 300.0  # the default cap, never an overflow


@given(retries=st.integers(min_value=0, max_value=20), attempt=attempts)
def test_an_attempt_is_retried_only_while_retries_remain(retries, attempt):
    policy = RetryPolicy(retries=retries)
    assert policy.should_retry(ValueError(), attempt) == (attempt <= retries)


def test_retry_on_filters_but_retry_after_and_cancellation_are_decided_apart():
    policy = RetryPolicy(retries=3, retry_on=(KeyError, TimeoutError))
    assert policy.should_retry(KeyError("k"), 1)
    assert policy.should_retry(TimeoutError(), 1)
    assert not policy.should_retry(ValueError("v"), 1)
    assert policy.should_retry(RetryAfter(1), 1)  # the far side asked for a retry
    assert not policy.should_retry(KeyboardInterrupt(), 1)
    assert not RetryPolicy(retries=3).should_retry(SystemExit(), 1)


@pytest.mark.parametrize("options, message", [
    ({"retries": -1}, "retries must be a whole number"),
    ({"retries": True}, "retries must be a whole number"),
    ({"retries": 1.5}, "retries must be a whole number"),
    ({"retry_on": ValueError("not a class")}, "retry_on takes an exception class"),
    ({"retry_on": ()}, "retry_on takes an exception class"),
    ({"retry_on": KeyboardInterrupt}, "never retried"),
    ({"backoff": "soon"}, "backoff 'soon' is not understood"),
    ({"backoff": -1}, "backoff must be a finite, non-negative"),
    ({"jitter": 1.5}, "jitter must be a number from 0 to 1"),
])
def test_a_bad_retry_policy_is_refused_saying_what_is_expected(options, message):
    with pytest.raises(ConfigurationError, match=message):
        RetryPolicy(**options)


def test_over_replaces_only_the_options_given():
    run_default = RetryPolicy(retries=2, backoff=5.0, max_backoff=60.0, jitter=0.1)
    step = run_default.over(retry_on=KeyError)
    assert step == RetryPolicy(retries=2, retry_on=(KeyError,), backoff=5.0,
                               max_backoff=60.0, jitter=0.1)
    assert run_default.over() == run_default
    assert run_default.over(retries=0, backoff="1s").retries == 0


def test_pending_takes_seconds_or_a_duration_and_falls_back_to_the_poll_option():
    assert Pending("30s") == Pending(30) == Pending(after=30.0)
    assert Pending("5min").delay(poll=1.0) == 300.0
    assert Pending().delay(poll=12.0) == 12.0
    assert Pending().delay() == DEFAULT_POLL
    with pytest.raises(ConfigurationError, match="Pending"):
        Pending("later")
    with pytest.raises(ConfigurationError, match="non-negative"):
        Pending(-1)


def test_steering_values_are_exported_and_recognised():
    assert hokuro.Pending is Pending and hokuro.Reset is Reset and hokuro.Cancel is Cancel
    for value in (Pending(), Reset(), Reset("stale token"), Cancel("account closed")):
        assert is_steering(value)
    for value in (None, 0, "pending", [Pending()], Pending):
        assert not is_steering(value)
    assert Cancel("gone").reason == "gone" and Cancel().reason == ""
    assert Reset().reason is None
