"""Async marked calls never do hokuro's I/O on the event loop (invariant 8): their ledger
requests go to the Spot's I/O thread, in batches, and their blob transfers to a pool."""

from __future__ import annotations

import asyncio
import threading

import pytest

LEDGER_CALLS = ("lookup", "get", "claim", "finish", "get_many", "claim_many", "finish_many",
                "get_meta", "set_meta")
BLOB_CALLS = ("save", "load", "delete", "ensure_ready")


def _watch(spot, seen: list[tuple[str, int]]) -> None:
    """Note the thread of every ledger and blob store call of ``spot``."""
    for target, names in ((spot.ledger, LEDGER_CALLS), (spot.blobs, BLOB_CALLS)):
        for name in names:
            real = getattr(target, name)

            def watched(*args, _real=real, _name=name, **kwargs):
                seen.append((_name, threading.get_ident()))
                return _real(*args, **kwargs)

            setattr(target, name, watched)


def test_no_ledger_or_blob_call_runs_on_the_event_loop(make_spot):
    spot = make_spot("io")
    seen: list[tuple[str, int]] = []
    _watch(spot, seen)
    tries: dict[int, int] = {}

    @spot.mark
    async def small(x):
        await asyncio.sleep(0)
        return x

    @spot.mark(save_blob=True)
    async def large(x, ctx):
        ctx.logger.info("x" * 70_000)  # a log that goes to a blob too
        return bytes([x % 256]) * 1000

    @spot.mark(retries=1, backoff=0.01)
    async def flaky(x):
        tries[x] = tries.get(x, 0) + 1
        if tries[x] == 1:
            raise ConnectionError("first try fails")
        return x

    @spot.mark
    async def broken(x, ctx):
        ctx.logger.info("y" * 70_000)
        raise ValueError(f"broken {x}")

    async def main() -> int:
        loop_thread = threading.get_ident()
        assert await asyncio.gather(*(small(i) for i in range(50))) == list(range(50))
        assert await asyncio.gather(*(small(i) for i in range(50))) == list(range(50))  # hits
        assert await large(3) == b"\x03" * 1000
        assert await large(3) == b"\x03" * 1000  # a hit read from its blob
        assert await large.recompute(3) == b"\x03" * 1000  # the old blobs are deleted
        assert await flaky(1) == 1 and tries[1] == 2
        with pytest.raises(ValueError):
            await broken(1)
        # identical concurrent calls: one runs, the others share its flight
        assert await asyncio.gather(*(small(99) for _ in range(20))) == [99] * 20
        return loop_thread

    loop_thread = asyncio.run(main())
    names = {name for name, _ in seen}
    assert {"claim_many", "finish_many", "get_many", "save", "load", "delete"} <= names \
        or {"claim", "finish", "lookup", "save", "load", "delete"} <= names, names
    on_loop = sorted({name for name, thread in seen if thread == loop_thread})
    assert on_loop == [], f"called on the event loop: {on_loop}"
    assert small.task(1).status == "done" and broken.task(1).status == "failed"
    assert "y" * 70_000 in broken.task(1).log


def test_concurrent_misses_share_transactions(make_spot):
    spot = make_spot("io")

    @spot.mark
    async def work(x):
        await asyncio.sleep(0.01)
        return x

    async def main():
        return await asyncio.gather(*(work(i) for i in range(300)))

    assert asyncio.run(main()) == list(range(300))
    # 300 calls ask for 900 lookups, claims and finishes; answered a batch at a time.
    assert spot.io_thread.batches < 300, spot.io_thread.batches
    assert spot.stats()["counts"] == {"total": 300, "done": 300}


def test_a_call_cancelled_while_its_claim_commits_lets_go_of_the_task(make_spot):
    spot = make_spot("io")
    runs = []

    @spot.mark
    async def fetch(x):
        runs.append(x)
        return x * 2

    entered, gate = threading.Event(), threading.Event()
    real = spot.ledger.claim_many

    def slow_claims(claims):
        entered.set()
        assert gate.wait(30)
        return real(claims)

    async def main():
        spot.ledger.claim_many = slow_claims
        task = asyncio.create_task(fetch(5))
        assert await asyncio.get_running_loop().run_in_executor(None, entered.wait, 30)
        task.cancel()  # the claim is being written: it cannot be stopped
        await asyncio.sleep(0.05)
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        spot.ledger.claim_many = real
        assert runs == []  # cancelled before the function started
        # The claim was committed, then the cancellation recorded: the record is not left
        # running under a lease, and the next call runs the task at once.
        assert fetch.task(5).status == "cancelled"
        return await asyncio.wait_for(fetch(5), 30)

    assert asyncio.run(main()) == 10
    assert runs == [5] and fetch.task(5).status == "done"
