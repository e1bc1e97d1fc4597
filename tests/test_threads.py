"""Threads: a thread that ends leaves no connection open behind it."""

from __future__ import annotations

import os
import resource
import threading
from pathlib import Path

import pytest

import hokuro

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc")


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def default_fd_limit():
    """This test runs under ``ulimit -n 1024``, the usual default a user's shell has."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 1024 if hard == resource.RLIM_INFINITY else min(1024, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        yield wanted
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_five_thousand_short_lived_threads_keep_under_a_hundred_descriptors(
        workspace, default_fd_limit):
    spot = hokuro.Spot("threads")
    limiter = spot.limiter(name="tests.threads.api", limits=["1000000/s"])

    @spot.mark(name="tests.threads.work")
    def work(i: int) -> int:
        with limiter:  # the limit store's connections are exercised as well
            return i * 2

    errors: list[BaseException] = []
    results: list[int] = []

    def call(i: int) -> None:
        try:
            results.append(work(i))
        except BaseException as exc:
            errors.append(exc)

    before = open_descriptors()
    most = before
    # 50 at a time, each thread started for one call and then ended, as a scraper that
    # starts a thread per page does.
    try:
        for first in range(0, 5000, 50):
            threads = [threading.Thread(target=call, args=(i,))
                       for i in range(first, first + 50)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            most = max(most, open_descriptors())
    finally:
        spot.close()
    assert not errors, errors[:3]
    assert sorted(results) == [i * 2 for i in range(5000)]
    assert most < 100, f"{most} descriptors open at once (were {before} at the start)"


def test_a_finished_thread_leaves_no_sqlite_connection(workspace):
    spot = hokuro.Spot("onethread")

    @spot.mark(name="tests.threads.one")
    def work(i: int) -> int:
        return i

    def in_a_thread(i: int) -> None:
        thread = threading.Thread(target=lambda: (
            work(i), spot.limiter(name="tests.threads.one").acquire()))
        thread.start()
        thread.join()

    work(0)  # the main thread's connections
    spot.limiter(name="tests.threads.one", limits=["100/s"]).acquire()
    # SQLite keeps the descriptor of a closed connection while another connection of the
    # process holds a lock on that file, and gives it to the next connection it opens: one
    # per file at most. So the count is taken after the first thread has come and gone.
    in_a_thread(1)
    baseline = open_descriptors()
    try:
        for i in range(2, 6):
            in_a_thread(i)
            assert open_descriptors() == baseline
    finally:
        spot.close()
