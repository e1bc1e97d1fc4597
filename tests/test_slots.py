"""The run's concurrency slots: jobs that await a slot and jobs started by a callback share
one line, first come first served, and never hold more than ``n`` slots."""

from __future__ import annotations

import asyncio

import pytest

from hokuro.runs.slots import Slots


def test_starts_and_waiters_share_one_line_in_order():
    async def scenario():
        slots = Slots(asyncio.get_running_loop(), 2)
        order = []
        slots.take(lambda: order.append("a") or True)
        slots.take(lambda: order.append("b") or True)
        assert slots.free == 0 and order == ["a", "b"]
        slots.take(lambda: order.append("c") or True)  # in line behind the two
        waiting = asyncio.ensure_future(slots.acquire())
        await asyncio.sleep(0)
        slots.take(lambda: order.append("d") or True)
        assert order == ["a", "b"] and not waiting.done()
        slots.release()  # to c, the first in line
        assert order == ["a", "b", "c"]
        slots.release()  # to the waiter, ahead of d
        await asyncio.sleep(0)
        assert waiting.done() and order == ["a", "b", "c"]
        slots.release()
        assert order == ["a", "b", "c", "d"] and slots.free == 0
        slots.release()
        slots.release()
        assert slots.free == 2  # every slot back, none made

    asyncio.run(scenario())


def test_a_start_that_does_not_need_its_slot_passes_it_on_without_recursion():
    async def scenario():
        slots = Slots(asyncio.get_running_loop(), 1)
        slots.take(lambda: True)
        ended = []
        for i in range(5000):  # a stopped run: each job in line is handed back at once
            slots.take(lambda i=i: ended.append(i) and False)
        assert slots.take(lambda: False) is None and slots.free == 0
        slots.release()  # walks the whole line in a loop (a recursion would overflow)
        assert ended == list(range(5000)) and slots.free == 1

    asyncio.run(scenario())


def test_a_waiter_cancelled_in_line_or_as_it_is_handed_a_slot_loses_no_slot():
    async def scenario():
        slots = Slots(asyncio.get_running_loop(), 1)
        await slots.acquire()
        gone = asyncio.ensure_future(slots.acquire())
        late = asyncio.ensure_future(slots.acquire())
        await asyncio.sleep(0)
        gone.cancel()  # cancelled while in line: skipped
        await asyncio.sleep(0)
        slots.release()  # handed to ``late``...
        late.cancel()  # ...which is cancelled before it runs: it passes the slot on
        with pytest.raises(asyncio.CancelledError):
            await late
        assert slots.free == 1
        await slots.acquire()
        assert slots.free == 0

    asyncio.run(scenario())
