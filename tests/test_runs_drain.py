"""The engine's cost per job: a wave of root jobs is claimed with their tasks in one
hand-off to the I/O thread (no second trip through the event loop per job, no read of
tasks looked up when the jobs went in), and nothing about fencing or failures changes —
SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest

from conftest import trace_ledger
from hokuro.errors import LedgerError


@pytest.fixture
def spot(make_spot):
    return make_spot("drain")


def test_root_jobs_claim_their_tasks_in_the_same_hand_off_as_the_jobs(spot):
    ran = []

    @spot.mark
    def triple(x):
        ran.append(x)
        return 3 * x

    calls = trace_ledger(spot, "claim_jobs", "claim_many", "lookup_many", "reusable")
    run = spot.map(triple, range(600), concurrency=20, progress=False)
    assert run.results() == [3 * x for x in range(600)]
    assert sorted(ran) == list(range(600))
    claims = [(name, thread) for name, thread in calls
              if name in ("claim_jobs", "claim_many")]
    tasks = [i for i, (name, _) in enumerate(claims) if name == "claim_many"]
    assert tasks  # the tasks were claimed...
    for i in tasks:  # ...each batch right after its jobs' claim, on the same thread
        assert claims[i - 1][0] == "claim_jobs" and claims[i - 1][1] == claims[i][1]
    # Keys were read once, when the window went in: a claim does not read them again.
    assert sum(name == "reusable" for name, _ in calls) == 1
    assert sum(name == "lookup_many" for name, _ in calls) == 0
    summary = run.summary()
    assert summary["done"] == 600 and summary["jobs"] == 600 and summary["reused"] == 0
    jobs = list(spot.ledger.find_jobs(run.id))
    assert all(j.status == "done" and j.attempts == 1 for j in jobs)


def test_a_task_done_meanwhile_is_a_hit_of_the_early_claim_and_does_not_run_again(spot):
    ran = []

    @spot.mark
    def square(x):
        ran.append(x)
        return x * x

    real = spot.ledger.claim_jobs

    def claim_jobs(*args, **kwargs):  # another process computes item 7 just before
        jobs = real(*args, **kwargs)
        if any(job.job_id.partition("/")[0] == "7" for job in jobs):
            spot.ledger.claim_jobs = real
            square(7)
        return jobs

    spot.ledger.claim_jobs = claim_jobs
    run = spot.map(square, range(50), concurrency=5, progress=False)
    assert run.results() == [x * x for x in range(50)]
    assert ran.count(7) == 1  # the direct call ran it; the run's job reused it
    assert run.summary()["reused"] == 1


def test_a_failed_early_task_claim_stops_the_run_and_a_resume_loses_nothing(make_spot):
    # The jobs of the failed wave stay leased to the stopped executor (as after any failed
    # claim): a resume takes them once their lease ends, kept short here.
    spot = make_spot("drain", lease=1.0)
    ran = []

    @spot.mark
    async def double(x):
        ran.append(x)
        return 2 * x

    real = spot.ledger.claim_many
    calls = []

    def failing(claims):
        calls.append(len(claims))
        if len(calls) == 2:
            raise LedgerError("the disk is full")
        return real(claims)

    spot.ledger.claim_many = failing
    with pytest.raises(LedgerError, match="the disk is full"):
        spot.map(double, range(200), concurrency=10, progress=False, run="broken")
    spot.ledger.claim_many = real
    (record,) = [r for r in spot.ledger.list_runs() if r.name == "broken"]
    run = spot.map(double, range(200), concurrency=10, progress=False, run="broken")
    assert run.id == record.id
    assert run.results() == [2 * x for x in range(200)]
    assert sorted(set(ran)) == list(range(200))
    assert len(ran) == 200  # no job whose task was done ran again


def test_a_pipeline_step_reads_its_parents_and_claims_its_task_with_its_job(spot,
                                                                            monkeypatch):
    from hokuro.runs.stepping import Stepping

    @spot.mark
    async def inc(x):
        return x + 1

    @spot.mark
    def double(x):
        return 2 * x

    @spot.mark
    async def nothing(x):
        return None  # passes the item on: the next step reads it as it runs

    @spot.mark
    async def last(x):
        return x - 1

    on_the_loop = []  # jobs whose arguments were read as they ran, not with their claim
    real = Stepping._arguments

    async def arguments(self, job, node):
        on_the_loop.append(node.step.name)
        return await real(self, job, node)

    monkeypatch.setattr(Stepping, "_arguments", arguments)
    pipe = nothing | inc | double | last
    run = spot.run(pipe, over=range(300), concurrency=20, progress=False)
    assert run.results() == [2 * (x + 1) - 1 for x in range(300)]
    assert [name.rpartition(".")[2] for name in on_the_loop] == ["inc"] * 300
    summary = run.summary()
    assert summary["done"] == 1200 and summary["jobs"] == 1200
    assert all(job.attempts == 1 for job in spot.ledger.find_jobs(run.id))
    again = spot.run(pipe, over=range(300), concurrency=20, progress=False, run="again")
    assert again.results() == [2 * (x + 1) - 1 for x in range(300)]
    assert again.summary()["reused"] == 1200


def test_sync_steps_started_from_their_claim_keep_to_the_concurrency(spot):
    lock, running, peak, threads = threading.Lock(), [0], [0], set()
    all_in = threading.Event()  # the first steps wait until every slot is taken
    import time

    @spot.mark
    def held(x):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            threads.add(threading.get_ident())
            if running[0] == 4:
                all_in.set()
        all_in.wait(30)
        time.sleep(0.002)
        with lock:
            running[0] -= 1
        return -x

    run = spot.map(held, range(300), concurrency=4, progress=False)
    assert run.results() == [-x for x in range(300)]
    assert peak[0] == 4  # the slots were all used, never more
    assert threading.get_ident() not in threads  # on step threads, not the caller's
    summary = run.summary()
    assert summary["done"] == 300 and summary["jobs"] == 300


def test_claims_go_on_while_the_next_window_of_jobs_is_written(spot, backend):
    import time

    if backend == "embedded":
        pytest.skip("SQLite has one writer: a claim waits for an insert being written")

    @spot.mark
    async def quick(x):
        return x + 1

    real_insert, real_claim = spot.ledger.insert_jobs, spot.ledger.claim_jobs
    writing, claimed_meanwhile, inserts = threading.Event(), [], []

    def slow_insert(run_id, specs, now):
        inserts.append(len(specs))
        if len(inserts) == 2:  # the second window: slow to go in
            writing.set()
            time.sleep(0.5)
            writing.clear()
        return real_insert(run_id, specs, now)

    def claim_jobs(*args, **kwargs):
        jobs = real_claim(*args, **kwargs)
        if writing.is_set() and jobs:
            claimed_meanwhile.append(len(jobs))
        return jobs

    spot.ledger.insert_jobs, spot.ledger.claim_jobs = slow_insert, claim_jobs
    run = spot.map(quick, range(1500), concurrency=10, progress=False)
    assert run.results() == [x + 1 for x in range(1500)]
    # The first window (1,000 jobs) was still being claimed while the second went in.
    assert sum(claimed_meanwhile) > 0, (claimed_meanwhile, inserts)


def test_a_window_read_after_a_cancel_is_refused_and_stops_the_run_cleanly(spot, caplog,
                                                                          monkeypatch):
    from hokuro.admin.runs import cancel_run
    from hokuro.errors import RunCancelled
    from hokuro.runs import starting

    # The run learns of the cancel from the refused window alone, not from its watcher.
    monkeypatch.setattr(starting, "WATCH", 60.0)

    read, refused = [], []

    def items():
        for i in range(50_000):
            read.append(i)
            yield i

    @spot.mark
    async def step(x):
        return x

    real_claim, real_insert = spot.ledger.claim_jobs, spot.ledger.insert_jobs

    def claim_jobs(*args, **kwargs):  # another process cancels the run once it has begun
        jobs = real_claim(*args, **kwargs)
        if jobs:
            spot.ledger.claim_jobs = real_claim
            (record,) = [r for r in spot.ledger.list_runs() if r.name == "doomed"]
            cancel_run(spot.ledger, record, owner="another|1|1.0|x")
        return jobs

    def insert_jobs(run_id, specs, now):
        try:
            return real_insert(run_id, specs, now)
        except RunCancelled as exc:
            refused.append(exc)
            raise

    spot.ledger.claim_jobs, spot.ledger.insert_jobs = claim_jobs, insert_jobs
    run = spot.map(step, items(), concurrency=10, run="doomed", progress=False)
    assert run.status == "cancelled"
    assert refused  # the next window went nowhere...
    assert len(read) <= 3 * 1000  # ...and the run stopped reading there
    assert {job.status for job in spot.ledger.find_jobs(run.id)} == {"cancelled"}
    assert spot.ledger.get_run(run.id).cursor == 1000  # the refused window is not counted
    assert not [r for r in caplog.records if r.levelname == "WARNING"], caplog.text


def test_a_job_that_ends_while_the_loop_reads_the_ledger_wakes_it(spot, monkeypatch):
    import time

    from hokuro.runs.executor import Executor

    @spot.mark
    async def first(x):
        return x + 1

    @spot.mark
    async def second(x):
        return x * 10

    real_wake, real_commit, real_wait = spot.ledger.next_wake, spot.ledger.commit, \
        Executor._wait_wake
    waits = []

    def commit(*args):  # each commit lands while the loop reads when to wake up next
        time.sleep(0.05)
        return real_commit(*args)

    def next_wake(run_id):  # read before the commit lands, answered after it
        found = real_wake(run_id)
        time.sleep(0.15)
        return found

    async def wait_wake(self, timeout, **options):
        started = time.monotonic()
        await real_wait(self, timeout, **options)
        waits.append(time.monotonic() - started)

    spot.ledger.next_wake, spot.ledger.commit = next_wake, commit
    monkeypatch.setattr(Executor, "_wait_wake", wait_wake)
    run = spot.run(first | second, over=[4], concurrency=2, progress=False)
    assert run.results() == [50]
    # The wake-up that came during the read is kept: no wait runs out its full second, as
    # it did when the wake-up was cleared after the read.
    assert waits and max(waits) < 0.9, waits


def test_a_task_this_process_holds_is_busy_without_asking_the_ledger(spot):
    """Two items with the same task: the first runs it, the second waits (busy) and is
    claimed again while the first still runs. That claim is answered busy here, as the
    ledger would: a held task is never taken to the ledger, which keeps claims off the
    rows a group commit is finishing (PostgreSQL)."""
    reclaimed = threading.Event()
    ran = []

    @spot.mark
    def slow(x):
        ran.append(x)
        reclaimed.wait(10)
        time.sleep(0.2)  # the second item's task claim is answered meanwhile
        return x + 1

    sent: list[str] = []
    real = spot.ledger.claim_many

    def claim_many(claims):
        sent.extend(c.key for c in claims)
        return real(claims)

    spot.ledger.claim_many = claim_many
    claimed: list[str] = []
    real_jobs = spot.ledger.claim_jobs

    def claim_jobs(*args, **kwargs):
        jobs = real_jobs(*args, **kwargs)
        claimed.extend(job.job_id for job in jobs)
        if len(claimed) > 2:
            reclaimed.set()  # a job claimed again: the one that found its task busy
        return jobs

    spot.ledger.claim_jobs = claim_jobs
    run = spot.map(slow, [5, 5], concurrency=2, progress=False)
    assert run.results() == [6, 6]
    assert ran == [5]  # computed once; the other item reused it once it was done
    assert reclaimed.is_set()
    # Both went to the ledger once, in the first batch (where the second was busy behind
    # the first); the claim made again while the first ran did not.
    assert len(sent) == 2
    summary = run.summary()
    assert summary["done"] == 2 and summary["reused"] == 1


def test_many_items_sharing_tasks_finish_once_each_while_commits_go_alongside_claims(spot):
    """Duplicates in flight, claims and group commits at once: every distinct task runs
    once, every item gets its result, and no write waits out a deadlock."""
    ran = []

    @spot.mark
    async def step(x):
        ran.append(x)
        return x * 10

    items = [i % 97 for i in range(3000)]
    run = spot.map(step, items, concurrency=200, progress=False)
    assert run.results() == [x * 10 for x in items]
    assert sorted(ran) == list(range(97))
    assert run.summary()["done"] == 3000
    assert getattr(spot.ledger, "reconnects", 0) == 0  # no retry after a deadlock
