"""Collections computed by ident (the hadrosaur way) and reading task records."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import hokuro
from hokuro.errors import LedgerError
from test_single_flight import _child, wait_for


@pytest.fixture
def spot(make_spot):
    return make_spot("res")


def define(spot, runs):
    @spot.resource("collection_name")
    def compute_resource(ident, args, ctx):
        runs.append(ident)
        ctx.logger.info("Starting up %s", ident)
        if ident == "bad":
            raise RuntimeError("This is an error!")
        (ctx.dir / "out.txt").write_text(f"file of {ident}")
        return {"ident": ident, "args": args}

    return compute_resource


def test_fetch_computes_once_and_then_answers_from_the_record(spot):
    runs = []
    define(spot, runs)
    task = spot.fetch("collection_name", "uniq_ident123", {"n": 1})
    assert task.status == "done"
    assert task.result == {"ident": "uniq_ident123", "args": {"n": 1}}
    assert task.started_at <= task.finished_at and task.duration >= 0
    assert task.attempts == 1 and task.ident == "uniq_ident123"
    assert (task.dir / "out.txt").read_text() == "file of uniq_ident123"
    again = spot.fetch("collection_name", "uniq_ident123", {"n": 2})  # args not in the key
    assert again.result == task.result and runs == ["uniq_ident123"]
    assert spot.status("collection_name", "uniq_ident123") == "done"


def test_recompute_runs_again(spot):
    runs = []
    define(spot, runs)
    spot.fetch("collection_name", "a")
    task = spot.fetch("collection_name", "a", recompute=True)
    assert runs == ["a", "a"] and task.attempts == 2


def test_args_join_the_key_when_asked(spot):
    runs = []

    @spot.resource("keyed", args_in_key=True)
    def compute(ident, args, ctx):
        runs.append(args)
        return args

    spot.fetch("keyed", "x", {"n": 1})
    spot.fetch("keyed", "x", {"n": 2})
    spot.fetch("keyed", "x", {"n": 1})
    assert runs == [{"n": 1}, {"n": 2}]


def test_an_error_is_recorded_with_traceback_and_log(spot):
    define(spot, [])
    task = spot.fetch("collection_name", "bad")
    assert task.status == "failed"
    assert task.error.type == "RuntimeError" and task.error.message.endswith("This is an error!")
    assert "Traceback" in spot.fetch_error("collection_name", "bad")
    assert "raise RuntimeError" in spot.fetch_error("collection_name", "bad")
    assert "Starting up bad" in spot.fetch_log("collection_name", "bad")
    assert task.error.fingerprint
    with pytest.raises(hokuro.HokuroError, match="no result"):
        _ = task.result


def test_status_of_unknown_idents_and_collections_is_missing(spot):
    define(spot, [])
    assert spot.status("collection_name", "never") == "missing"
    assert spot.status("no_such_collection", "x") == "missing"
    with pytest.raises(hokuro.ConfigurationError, match="resource"):
        spot.fetch("no_such_collection", "x")


def test_stats_find_and_find_by_status(spot):
    define(spot, [])
    for ident in ["a", "b", "c", "bad"]:
        spot.fetch("collection_name", ident)
    stats = spot.stats("collection_name")
    assert stats["counts"] == {"total": 4, "done": 3, "failed": 1}
    assert stats["collections"]["collection_name"]["counts"]["done"] == 3
    assert sorted(spot.find_by_status("collection_name", "completed")) == ["a", "b", "c"]
    assert spot.find_by_status("collection_name", "error") == ["bad"]
    newest = list(spot.find("collection_name", limit=2))
    assert [t.ident for t in newest] == ["bad", "c"]
    assert [t.ident for t in spot.find("collection_name", status="failed")] == ["bad"]
    assert spot.stats()["counts"]["total"] == 4


def test_idents_cannot_escape_or_collide(spot, make_spot):
    runs = []
    define(spot, runs)
    for ident in ["../x", "x", ".hidden", "hidden", "a/b", "a_b", "/etc/passwd"]:
        assert spot.fetch("collection_name", ident).result["ident"] == ident
    assert len(runs) == 7
    # Task folders live in the blob folder, or under the workspace when blobs are remote.
    root = spot.workspace / "files" / spot.name if make_spot.shared else spot.blobs.root
    for task in spot.find("collection_name"):
        assert task.dir.resolve().is_relative_to(root.resolve())
        assert not task.dir.name.startswith(".")
    assert not (root.parent / "x").exists()
    with pytest.raises(hokuro.ConfigurationError):
        spot.fetch("collection_name", "")


def test_logs_of_50_concurrent_tasks_never_mix(spot):
    @spot.mark
    def chatty(i, ctx: hokuro.Context):
        for line in range(20):
            ctx.logger.info("task %d line %d", i, line)
            time.sleep(0.0005)
        return i

    @spot.mark
    async def chatty_async(i, ctx: hokuro.Context):
        for line in range(20):
            ctx.logger.info("async %d line %d", i, line)
            await asyncio.sleep(0)
        return i

    with ThreadPoolExecutor(10) as pool:
        list(pool.map(chatty, range(25)))

    async def main():
        await asyncio.gather(*(chatty_async(i) for i in range(25)))

    asyncio.run(main())
    for i in range(25):
        for fn, word in ((chatty, "task"), (chatty_async, "async")):
            lines = fn.task(i).log.splitlines()
            assert len(lines) == 20
            assert all(f"{word} {i} line" in line for line in lines), lines
    import logging

    assert not [name for name in logging.root.manager.loggerDict if "hokuro.task" in name]


def test_a_large_log_is_capped_with_a_marker(make_spot):
    spot = make_spot("cap", log_limit=2000)

    @spot.mark
    def noisy(ctx):
        for i in range(1000):
            ctx.logger.info("line %d", i)
        return 1

    noisy()
    log = noisy.task().log
    assert len(log) < 2300 and "log truncated at 2000 bytes" in log


def test_ctx_is_not_part_of_the_key(spot):
    seen = []

    @spot.mark
    def with_ctx(x, ctx):
        seen.append((ctx.key, ctx.attempt, ctx.ident))
        return x

    with_ctx(1)
    with_ctx(1)
    assert len(seen) == 1 and seen[0][0] == with_ctx.key_of(1) and seen[0][1] == 1


def test_two_processes_fetching_one_ident_compute_it_once(make_spot, workspace):
    counter = workspace / "counter.txt"
    children = [_child("fetch_resource", str(make_spot.home), str(counter), "G1", "1.0",
                       *make_spot.urls("res"))
                for _ in range(2)]
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        assert out.strip() == "done:G1"
    assert len(counter.read_text().splitlines()) == 1


def test_stats_in_another_process_show_running_during_a_run(make_spot, workspace):
    counter, started = workspace / "counter.txt", workspace / "started.txt"
    child = _child("hang_in_fetch", str(make_spot.home), str(counter), "G2", str(started),
                   *make_spot.urls("res"))
    try:
        wait_for(started, child)
        spot = make_spot("res")
        assert spot.stats()["counts"] == {"total": 1, "running": 1}
        assert spot.status("genomes", "G2") == "running"
    finally:
        child.kill()
        child.communicate()


def test_kill_9_during_fetch_reads_abandoned_at_once_and_recomputes(make_spot, workspace):
    counter, started = workspace / "counter.txt", workspace / "started.txt"
    child = _child("hang_in_fetch", str(make_spot.home), str(counter), "G3", str(started),
                   *make_spot.urls("res"))
    wait_for(started, child)
    os.kill(child.pid, signal.SIGKILL)
    child.communicate()
    spot = make_spot("res")
    runs = []

    @spot.resource("genomes")
    def compute(ident, args, ctx):
        runs.append(ident)
        return {"ident": ident}

    # The child's 60 s lease is still alive, but its owner (this host, a dead pid) is gone.
    assert spot.status("genomes", "G3") == "failed"
    task = spot.task("genomes", "G3")
    assert task.error.type == "Abandoned"
    assert spot.stats()["counts"] == {"total": 1, "failed": 1}
    began = time.monotonic()
    assert spot.fetch("genomes", "G3").result == {"ident": "G3"}
    assert time.monotonic() - began < 30
    assert runs == ["G3"]


def test_the_log_handler_is_isolated_between_threads(spot):
    barrier = threading.Barrier(2)

    @spot.mark
    def a(ctx):
        barrier.wait(5)
        ctx.logger.info("from a")
        barrier.wait(5)
        return 1

    @spot.mark
    def b(ctx):
        barrier.wait(5)
        ctx.logger.info("from b")
        barrier.wait(5)
        return 2

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(a), pool.submit(b)]
        assert [f.result(10) for f in futures] == [1, 2]
    assert "from a" in a.task().log and "from b" not in a.task().log
    assert "from b" in b.task().log and "from a" not in b.task().log


def test_status_of_a_resource_keyed_by_args_finds_its_newest_record(make_spot):
    spot = make_spot("res")

    @spot.resource("keyed", args_in_key=True)
    def compute(ident, args, ctx):
        return args

    assert spot.status("keyed", "x") == "missing"
    spot.fetch("keyed", "x", {"n": 1})
    assert spot.status("keyed", "x") == "done"
    assert spot.status(compute, "x") == "done"
    assert spot.task("keyed", "x").result == {"n": 1}


def test_tasks_from_a_listing_read_their_log_result_and_error_whole(make_spot):
    spot = make_spot("res")
    define(spot, [])
    spot.fetch("collection_name", "ok")
    spot.fetch("collection_name", "bad")
    listed = {t.ident: t for t in spot.find("collection_name")}
    assert listed["ok"].result == {"ident": "ok", "args": None}
    assert "Starting up ok" in listed["ok"].log
    assert "Starting up bad" in listed["bad"].log
    assert "This is an error!" in listed["bad"].error.traceback


def test_fetch_async_computes_sync_and_async_resources(make_spot):
    spot = make_spot("res")
    runs = []
    define(spot, runs)

    @spot.resource("async_collection")
    async def compute(ident, args, ctx):
        await asyncio.sleep(0)
        if ident == "bad":
            raise ValueError("no")
        return ident.upper()

    async def main():
        return (await spot.fetch_async("collection_name", "a"),
                await spot.fetch_async("async_collection", "b"),
                await spot.fetch_async("async_collection", "bad"))

    sync_task, async_task, failed = asyncio.run(main())
    assert sync_task.result == {"ident": "a", "args": None} and runs == ["a"]
    assert async_task.result == "B"
    assert failed.status == "failed" and failed.error.type == "ValueError"


@pytest.mark.parametrize("name", ["", "../x", "a/b", "a\\b", ".hidden", "..", "a\x00b", 7])
def test_a_collection_name_that_is_empty_or_a_path_is_refused(spot, name):
    with pytest.raises(hokuro.ConfigurationError, match="collection name"):
        spot.resource(name)


def test_fetch_absorbs_a_recorded_failure_of_storing_the_result(spot):
    @spot.resource("locks")
    def compute(ident, args, ctx):
        return threading.Lock()  # the codec cannot keep it

    task = spot.fetch("locks", "a")
    assert task.status == "failed" and task.error.type == "SerializationError"


@pytest.mark.postgres
def test_fetch_raises_a_ledger_error_instead_of_a_missing_task(pg_url, workspace):
    with hokuro.Spot("t", db=pg_url, workspace=workspace / ".hokuro") as spot:
        runs = []
        define(spot, runs)
        # PostgreSQL text cannot hold NUL: the claim itself fails, nothing is recorded.
        with pytest.raises(LedgerError):
            spot.fetch("collection_name", "a\x00b")
        with pytest.raises(LedgerError):
            asyncio.run(spot.fetch_async("collection_name", "a\x00b"))
        assert runs == []
        # The function's own failure is still a failed Task, not an exception.
        assert spot.fetch("collection_name", "bad").status == "failed"
        assert asyncio.run(spot.fetch_async("collection_name", "bad")).status == "failed"
