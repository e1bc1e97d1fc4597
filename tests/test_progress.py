"""The live display of a run: one bar per step, read from the ledger's counts, and counted
less often as the run grows (a count reads every job of the run)."""

from __future__ import annotations

import asyncio

import pytest

from hokuro.runs.progress import LONGEST, REFRESH, RunProgress, pause_after


@pytest.fixture
def spot(make_spot):
    return make_spot("progress")


def test_a_run_shown_on_the_console_draws_a_bar_per_step_with_what_failed(spot, capsys):
    @spot.mark
    def parse(x):
        if x == 7:
            raise ValueError("bad row")
        return x

    @spot.mark
    def load(x):
        return x

    spot.run(parse | load, over=range(12), progress=True)
    shown = capsys.readouterr()
    text = shown.out + shown.err
    # parse: 12 of 12 finished, one failed; load: 11 done and the failed item's cancelled.
    assert "parse" in text and "12/12" in text and "1 failed" in text, text
    assert "load" in text and "1 cancelled" in text, text


def test_the_display_counts_a_large_run_less_often(spot):
    """A count that takes t seconds is made again after 10 t (at least REFRESH, at most
    LONGEST): the display never spends more than a tenth of the time counting, and one slow
    count does not freeze it."""
    assert pause_after(0.001) == REFRESH
    assert pause_after(0.4) == pytest.approx(4.0)
    assert pause_after(60.0) == LONGEST

    @spot.mark
    def step(x):
        return x

    run = spot.map(step, range(3), progress=False)
    now = [0.0]
    spans = iter([0.01, 0.3, 2.0, 0.02])
    pauses: list[float] = []

    class SlowCounts:  # the Spot's own ledger, its counts taking the times of ``spans``
        def run_counts(self, run_id):
            now[0] += next(spans)
            return spot.ledger.run_counts(run_id)

    display = RunProgress(run.id, SlowCounts(), run.tally, clock=lambda: now[0])

    async def sleep(seconds):
        pauses.append(seconds)
        if len(pauses) == 3:
            raise asyncio.CancelledError  # the run ended: the display counts once more

    async def follow():
        with pytest.raises(asyncio.CancelledError):
            await display.follow(asyncio.get_running_loop(), None, sleep=sleep)

    asyncio.run(follow())
    assert pauses == [REFRESH, pytest.approx(3.0), LONGEST]
    assert next(spans, None) is None  # the last count was made, after the cancellation
    (bar,) = display.progress.tasks
    assert (bar.description, bar.completed, bar.total) == ("0.step", 3, 3)


def test_watching_a_run_sees_its_end_at_once_when_counts_are_slow(spot):
    """A run that workers execute elsewhere: its end is seen within REFRESH, even when a
    slow count put the next one far off (the local workers stop as soon as it ends)."""
    import time

    @spot.mark
    def step(x):
        return x

    run = spot.map(step, range(3), progress=False)
    now = [0.0]
    counted = []

    class SlowCounts:  # the Spot's own ledger, each count taking 2 s by the display's clock
        def run_counts(self, run_id):
            now[0] += 2.0
            counted.append(now[0])
            return spot.ledger.run_counts(run_id)

    class EndsOnTheThirdLook:  # the run as its watcher sees it: running twice, then done
        looks = 0

        def refresh(self):
            self.looks += 1
            self.status = "running" if self.looks < 3 else "done"
            return self

    display = RunProgress(run.id, SlowCounts(), run.tally, clock=lambda: now[0])
    started = time.monotonic()
    display.watch(EndsOnTheThirdLook())
    assert time.monotonic() - started < LONGEST - 1  # not a whole pause after a count
    assert len(counted) == 2  # the first look, then the end (the second was not due)
    (bar,) = display.progress.tasks
    assert (bar.completed, bar.total) == (3, 3)
