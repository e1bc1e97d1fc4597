"""One suite for the runs and jobs of every SQL ledger: the rules of the run engine's store.

Times are given explicitly (``now``): a fake clock, so waiting, backoff and leases are
proved without sleeping. Process tests (kill -9 in a commit, claims from four processes)
run real child processes against the same file or database.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hokuro.errors import LedgerError, RunCancelled
from hokuro.model.jobs import JobOutcome, JobSpec, RunRecord
from hokuro.model.records import Claim, Outcome, Status
from hokuro.store.ledger import open_ledger
from hokuro.store.ledger.queries import load_queries

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
SQLITE_J, POSTGRES_J = load_queries("sqlite_jobs"), load_queries("postgres_jobs")
OWNER = "h|1|1.00|a"
OTHER = "h|2|1.00|b"
SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(params=BACKENDS)
def location(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def ledger(location):
    db = open_ledger(location)
    db.create_run(run("r"))
    yield db
    db.close()


def run(run_id: str, name: str = "batch", status: str = "running", at: float = 1.0,
        **extra) -> RunRecord:
    return RunRecord(id=run_id, name=name, status=status, plan=b"plan", created_at=at,
                     updated_at=at, **extra)


def spec(job_id: str, *parents: str, scope: str = "default", priority: int = 0,
         run_after: float = 0.0, node: str | None = None) -> JobSpec:
    return JobSpec(job_id=job_id, node=node or job_id.rsplit("/", 1)[-1], step="mod.step",
                   parents=parents, input=b"in:" + job_id.encode(), scope=scope,
                   priority=priority, run_after=run_after)


def claim(ledger, now=10.0, limit=100, owner=OWNER, lease=30.0, **options):
    return ledger.claim_jobs(owner, now, now + lease, limit, **options)


def outcome(job, status="done", **extra) -> JobOutcome:
    fields = {"task_key": f"task-{job.job_id}", "output_key": f"task-{job.job_id}"} \
        if status == "done" else {}
    fields.update(extra)
    return JobOutcome(run_id=job.run_id, job_id=job.job_id, owner=job.owner,
                      attempt=job.attempts, status=status, **fields)


def statuses(ledger, run_id="r") -> dict[str, str]:
    return {job.job_id: job.status for job in ledger.find_jobs(run_id)}


def one(ledger, job_id, run_id="r"):
    (job,) = ledger.get_jobs(run_id, [job_id])
    return job


def finish_all(ledger, now=20.0, **options) -> list[str]:
    """Claim what is claimable and commit it done; the job ids, in claim order."""
    jobs = claim(ledger, now=now, **options)
    assert all(ledger.commit([outcome(job) for job in jobs], [], now=now))
    return [job.job_id for job in jobs]


# -- runs ------------------------------------------------------------------------------------

def test_runs_are_recorded_listed_newest_first_and_updated(ledger):
    ledger.create_run(run("r2", name="other", at=2.0, options=b"opts", cursor=5))
    ledger.create_run(run("r3", name="batch", at=3.0, status="done"))
    got = ledger.get_run("r2")
    assert (got.name, got.plan, got.options, got.cursor, got.inputs_done) == \
        ("other", b"plan", b"opts", 5, False)
    assert ledger.get_run("nope") is None
    assert [r.id for r in ledger.list_runs()] == ["r3", "r2", "r"]
    assert [r.id for r in ledger.list_runs(limit=1)] == ["r3"]
    assert [r.id for r in ledger.list_runs(status="running")] == ["r2", "r"]
    ledger.update_run("r", status="interrupted", cursor=7, inputs_done=True, updated_at=9.0)
    got = ledger.get_run("r")
    assert (got.status, got.cursor, got.inputs_done, got.updated_at, got.finished_at) == \
        ("interrupted", 7, True, 9.0, None)
    ledger.update_run("r", status="failed", finished_at=10.0, error="boom", updated_at=10.0)
    got = ledger.get_run("r")
    assert (got.status, got.cursor, got.finished_at, got.error) == ("failed", 7, 10.0, "boom")


def test_the_newest_unfinished_run_of_a_name_is_found_for_resuming(ledger):
    ledger.create_run(run("old", name="nightly", at=2.0, status="interrupted"))
    ledger.create_run(run("new", name="nightly", at=3.0, status="submitted"))
    ledger.create_run(run("done", name="nightly", at=4.0, status="done"))
    ledger.create_run(run("else", name="weekly", at=5.0))
    assert ledger.find_unfinished_run("nightly").id == "new"
    assert ledger.find_unfinished_run("monthly") is None


def test_a_run_id_is_taken_once_and_unknown_fields_are_refused(ledger):
    with pytest.raises(LedgerError, match="already exists"):
        ledger.create_run(run("r"))
    with pytest.raises(LedgerError, match="cannot change plan"):
        ledger.update_run("r", plan=b"other")


# -- inserting -------------------------------------------------------------------------------

def test_inserting_the_same_jobs_again_adds_none_and_changes_none(ledger):
    specs = [spec("0/a"), spec("0/b", "0/a"), spec("1/a")]
    assert ledger.insert_jobs("r", specs, now=1.0) == 3
    assert finish_all(ledger) == ["0/a", "1/a"]
    # A resumed run inserts its window again (and a job repeated inside one call).
    assert ledger.insert_jobs("r", [*specs, spec("2/a"), spec("2/a")], now=2.0) == 1
    assert statuses(ledger) == {"0/a": "done", "0/b": "queued", "1/a": "done",
                                "2/a": "queued"}
    assert ledger.run_counts("r") == {("a", "done"): 2, ("a", "queued"): 1,
                                      ("b", "queued"): 1}
    job = one(ledger, "0/a")
    assert (job.input, job.task_key, job.parents, job.created_at) == \
        (b"in:0/a", "task-0/a", (), 1.0)


def test_a_job_waits_for_its_parents_and_a_resumed_insert_counts_the_done_ones(ledger):
    ledger.insert_jobs("r", [spec("0/a")], now=1.0)
    finish_all(ledger)
    # The child arrives after its parent is done (a window inserted on resume): not blocked.
    ledger.insert_jobs("r", [spec("0/b", "0/a"), spec("1/a"), spec("1/b", "1/a")], now=2.0)
    assert statuses(ledger) == {"0/a": "done", "0/b": "queued", "1/a": "queued",
                                "1/b": "blocked"}
    assert one(ledger, "1/b").parents == ("1/a",)


def test_a_join_runs_once_its_slow_and_its_fast_parent_are_both_done(ledger):
    ledger.insert_jobs("r", [spec("fast"), spec("slow"), spec("join", "slow", "fast"),
                             spec("twice", "fast", "fast")], now=1.0)
    jobs = {job.job_id: job for job in claim(ledger)}
    assert ledger.commit([outcome(jobs["fast"])], [], now=11.0) == [True]
    # "twice" names one parent twice: it waits for it once.
    assert statuses(ledger) == {"fast": "done", "slow": "running", "join": "blocked",
                                "twice": "queued"}
    assert [j.job_id for j in claim(ledger, now=12.0)] == ["twice"]
    assert claim(ledger, now=13.0) == []
    assert ledger.commit([outcome(jobs["slow"])], [], now=60.0) == [True]
    assert statuses(ledger)["join"] == "queued"
    assert one(ledger, "join").parents == ("slow", "fast")


def test_fan_out_children_are_inserted_by_the_commit_of_their_source(ledger):
    ledger.insert_jobs("r", [spec("none"), spec("single"), spec("many")], now=1.0)
    jobs = {job.job_id: job for job in claim(ledger)}
    children = [spec(f"many/{k}/body", "many") for k in range(10_000)]
    written = ledger.commit([
        outcome(jobs["none"]),
        outcome(jobs["single"], children=[spec("single/0/body", "single")]),
        outcome(jobs["many"], children=children),
    ], [], now=11.0)
    assert written == [True, True, True]
    counts = ledger.run_counts("r")
    assert counts == {("none", "done"): 1, ("single", "done"): 1, ("many", "done"): 1,
                      ("body", "queued"): 10_001}
    # They are claimed in the order they were listed.
    assert [j.job_id for j in claim(ledger, now=12.0, limit=3)] == \
        ["single/0/body", "many/0/body", "many/1/body"]


# -- claiming --------------------------------------------------------------------------------

def test_claims_follow_scope_list_then_priority_then_run_after_then_fifo(ledger):
    ledger.insert_jobs("r", [
        spec("a-low-1", scope="a", priority=0),
        spec("b-high", scope="b", priority=9),
        spec("a-low-2", scope="a", priority=0),
        spec("a-high-late", scope="a", priority=5, run_after=4.0),
        spec("a-high-early", scope="a", priority=5, run_after=2.0),
        spec("c-top", scope="c", priority=99),
    ], now=1.0)
    order = [j.job_id for j in claim(ledger, scopes=["a", "b"])]
    assert order == ["a-high-early", "a-high-late", "a-low-1", "a-low-2", "b-high"]
    # Without a list: every scope, priority first.
    assert [j.job_id for j in claim(ledger)] == ["c-top"]


def test_a_claim_without_scopes_orders_every_scope_by_priority_run_after_and_seq(ledger):
    ledger.insert_jobs("r", [spec("x1", scope="x"), spec("y1", scope="y", run_after=1.0),
                             spec("y2", scope="y"), spec("z1", scope="z", priority=1)],
                       now=1.0)
    assert [j.job_id for j in claim(ledger, limit=3)] == ["z1", "x1", "y2"]
    jobs = claim(ledger, limit=10)
    assert [j.job_id for j in jobs] == ["y1"]
    job = jobs[0]
    assert (job.status, job.owner, job.attempts, job.lease_until, job.scope) == \
        ("running", OWNER, 1, 40.0, "y")


def test_a_claim_takes_only_the_scopes_and_the_run_it_is_given(ledger):
    ledger.create_run(run("r2"))
    ledger.insert_jobs("r", [spec("r-a", scope="a"), spec("r-b", scope="b")], now=1.0)
    ledger.insert_jobs("r2", [spec("r2-a", scope="a")], now=1.0)
    assert claim(ledger, scopes=[]) == []
    assert claim(ledger, scopes=["nope"]) == []
    assert [j.job_id for j in claim(ledger, scopes=["a"], run_id="r2")] == ["r2-a"]
    assert [j.job_id for j in claim(ledger, run_id="r")] == ["r-a", "r-b"]


def test_a_waiting_job_is_claimed_again_only_once_its_time_has_come(ledger):
    ledger.insert_jobs("r", [spec("poll")], now=1.0)
    (job,) = claim(ledger, now=10.0)
    assert ledger.commit([outcome(job, "waiting", run_after=100.0)], [], now=11.0) == [True]
    assert (one(ledger, "poll").status, ledger.next_wake("r")) == ("waiting", 100.0)
    assert claim(ledger, now=99.9) == []
    (again,) = claim(ledger, now=100.0)
    # A poll is not an attempt: the second claim is attempt 1 again.
    assert (again.job_id, again.attempts) == ("poll", 1)


def test_a_retry_after_backoff_counts_the_attempt_and_keeps_the_error(ledger):
    ledger.insert_jobs("r", [spec("flaky")], now=1.0)
    (job,) = claim(ledger, now=10.0)
    retry = outcome(job, "queued", run_after=50.0, error="ValueError: try again")
    assert ledger.commit([retry], [], now=11.0) == [True]
    assert claim(ledger, now=49.0) == []
    (again,) = claim(ledger, now=50.0)
    assert (again.attempts, again.error) == (2, "ValueError: try again")


def test_a_job_whose_lease_expired_is_claimed_again_with_the_next_attempt(ledger):
    ledger.insert_jobs("r", [spec("slow"), spec("other", scope="x")], now=1.0)
    (job,) = claim(ledger, now=10.0, lease=5.0, scopes=["default"])
    assert claim(ledger, now=14.9, owner=OTHER, scopes=["default"]) == []
    (taken,) = claim(ledger, now=15.0, owner=OTHER, scopes=["default"])
    assert (taken.job_id, taken.owner, taken.attempts) == ("slow", OTHER, 2)
    # The first owner's late outcome is fenced off; the new owner's is written.
    assert ledger.commit([outcome(job)], [], now=16.0) == [False]
    assert ledger.commit([outcome(taken)], [], now=17.0) == [True]
    assert one(ledger, "slow").owner == OTHER


def test_an_outcome_of_an_old_attempt_or_another_owner_is_not_written(ledger):
    ledger.insert_jobs("r", [spec("a"), spec("b", "a")], now=1.0)
    (job,) = claim(ledger)
    stale = JobOutcome(run_id="r", job_id="a", owner=OWNER, attempt=job.attempts - 1,
                       status="failed", error="late")
    foreign = [JobOutcome(run_id="r", job_id="a", owner=OTHER, attempt=job.attempts,
                          status=status, error="not mine")
               for status in ("done", "waiting", "queued", "failed", "cancelled", "reset")]
    missing = JobOutcome(run_id="r", job_id="zz", owner=OWNER, attempt=1, status="done")
    assert ledger.commit([stale, *foreign, missing, outcome(job)], [], now=11.0) == \
        [False] * 8 + [True]
    assert statuses(ledger) == {"a": "done", "b": "queued"}
    # Once written, a second outcome for the same claim is fenced off too.
    assert ledger.commit([outcome(job, "failed", error="again")], [], now=12.0) == [False]
    assert one(ledger, "a").status == "done"


def test_renew_extends_only_the_leases_the_owner_holds(ledger):
    ledger.insert_jobs("r", [spec("a"), spec("b")], now=1.0)
    jobs = claim(ledger, limit=1)
    held = ledger.renew_jobs(OWNER, [("r", "a"), ("r", "b"), ("r", "zz")], 500.0)
    assert held == {("r", "a")} and jobs[0].job_id == "a"
    assert ledger.renew_jobs(OTHER, [("r", "a")], 900.0) == set()
    assert ledger.renew_jobs(OWNER, [], 900.0) == set()
    assert one(ledger, "a").lease_until == 500.0
    assert claim(ledger, now=100.0, owner=OTHER, limit=5)[0].job_id == "b"


def test_released_jobs_are_handed_back_without_counting_an_attempt(ledger):
    ledger.insert_jobs("r", [spec("a"), spec("b")], now=1.0)
    claim(ledger)
    assert ledger.release_jobs(OTHER, [("r", "a")], now=11.0) == set()
    assert ledger.release_jobs(OWNER, [("r", "a"), ("r", "b")], now=11.0) == \
        {("r", "a"), ("r", "b")}
    job = one(ledger, "a")
    assert (job.status, job.attempts, job.lease_until) == ("queued", 0, None)
    assert [(j.job_id, j.attempts) for j in claim(ledger, now=12.0, owner=OTHER)] == \
        [("a", 1), ("b", 1)]


# -- failures, cancellations, resets ---------------------------------------------------------

def test_a_failed_job_cancels_every_descendant_as_upstream_failed(ledger):
    # 0: a -> b -> c, and a -> d; join(c, x): x is another item, unharmed.
    ledger.insert_jobs("r", [spec("a"), spec("b", "a"), spec("c", "b"), spec("d", "a"),
                             spec("x"), spec("join", "c", "x")], now=1.0)
    jobs = {j.job_id: j for j in claim(ledger)}
    written = ledger.commit([outcome(jobs["a"], "failed", error="ValueError: bad"),
                             outcome(jobs["x"])], [], now=11.0)
    assert written == [True, True]
    assert statuses(ledger) == {"a": "failed", "b": "cancelled", "c": "cancelled",
                                "d": "cancelled", "x": "done", "join": "cancelled"}
    assert one(ledger, "a").error == "ValueError: bad"
    assert {j.error for j in ledger.find_jobs("r", status="cancelled")} == \
        {"upstream failed: a"}


def test_a_cancelled_job_cancels_its_descendants_with_its_reason(ledger):
    ledger.insert_jobs("r", [spec("a"), spec("b", "a"), spec("c", "b"), spec("z")], now=1.0)
    jobs = {j.job_id: j for j in claim(ledger)}
    assert ledger.commit([outcome(jobs["a"], "cancelled", error="account closed")], [],
                         now=11.0) == [True]
    assert statuses(ledger) == {"a": "cancelled", "b": "cancelled", "c": "cancelled",
                                "z": "running"}
    assert {j.error for j in ledger.find_jobs("r", status="cancelled")} == {"account closed"}


def test_requeue_failed_queues_failures_again_and_blocks_what_they_cancelled(ledger):
    # a -> b -> c and join(c, x): a is done, b fails, which cancels c and the join.
    ledger.insert_jobs("r", [spec("a"), spec("b", "a"), spec("c", "b"), spec("x"),
                             spec("join", "c", "x"), spec("z")], now=1.0)
    assert sorted(finish_all(ledger, now=10.0)) == ["a", "x", "z"]
    (b,) = claim(ledger, now=11.0)
    assert ledger.commit([outcome(b, "failed", error="ValueError: bad")], [], now=12.0) \
        == [True]
    assert statuses(ledger) == {"a": "done", "b": "failed", "c": "cancelled", "x": "done",
                                "join": "cancelled", "z": "done"}
    assert sorted(ledger.requeue_failed("r", now=13.0)) == ["b", "c", "join"]
    assert statuses(ledger) == {"a": "done", "b": "queued", "c": "blocked", "x": "done",
                                "join": "blocked", "z": "done"}
    again = one(ledger, "b")
    assert (again.attempts, again.error, again.run_after) == (0, None, 13.0)
    assert one(ledger, "c").error is None
    # The chain runs on from the failed step, and its join counts only what is not done.
    assert finish_all(ledger, now=14.0) == ["b"]
    assert finish_all(ledger, now=15.0) == ["c"]
    assert finish_all(ledger, now=16.0) == ["join"]
    assert ledger.requeue_failed("r", now=17.0) == []  # nothing failed: nothing changes


def test_requeue_failed_leaves_what_was_cancelled_for_another_reason(ledger):
    # join(b, y): b's chain failed, y's chain was cancelled by its step (a Cancel), so the
    # join could never run: it stays cancelled, with its child; y's chain is not retried.
    ledger.insert_jobs("r", [spec("a"), spec("b", "a"), spec("y"), spec("join", "b", "y"),
                             spec("after", "join"), spec("solo"), spec("solo2", "solo")],
                       now=1.0)
    jobs = {j.job_id: j for j in claim(ledger, now=10.0)}
    assert all(ledger.commit([outcome(jobs["a"]),
                              outcome(jobs["y"], "cancelled", error="not a customer"),
                              outcome(jobs["solo"], "failed", error="E")], [], now=11.0))
    (b,) = claim(ledger, now=12.0)
    assert ledger.commit([outcome(b, "failed", error="E")], [], now=13.0) == [True]
    assert sorted(ledger.requeue_failed("r", now=14.0)) == ["b", "solo", "solo2"]
    assert statuses(ledger) == {"a": "done", "b": "queued", "y": "cancelled",
                                "join": "cancelled", "after": "cancelled", "solo": "queued",
                                "solo2": "blocked"}


def test_a_reset_restarts_the_chain_from_its_root(ledger):
    # One item's pipe: request -> status -> download -> load.
    ledger.insert_jobs("r", [spec("0/request"), spec("0/status", "0/request"),
                             spec("0/download", "0/status"), spec("0/load", "0/download")],
                       now=1.0)
    finish_all(ledger, now=10.0)
    finish_all(ledger, now=11.0)
    (download,) = claim(ledger, now=12.0)
    assert ledger.commit([outcome(download, "reset")], [], now=13.0) == [True]
    assert statuses(ledger) == {"0/request": "queued", "0/status": "blocked",
                                "0/download": "blocked", "0/load": "blocked"}
    root = one(ledger, "0/request")
    assert (root.resets, root.task_key, root.output_key, root.attempts) == (1, None, None, 0)
    # Every job of the chain carries the item's count of resets (for the cap).
    assert one(ledger, "0/download").resets == 1
    assert one(ledger, "0/load").resets == 0
    # The chain runs through again.
    assert finish_all(ledger, now=14.0) == ["0/request"]
    assert finish_all(ledger, now=15.0) == ["0/status"]
    assert finish_all(ledger, now=16.0) == ["0/download"]
    assert finish_all(ledger, now=17.0) == ["0/load"]


def test_a_reset_makes_a_join_outside_the_chain_wait_for_the_chain_again(ledger):
    ledger.insert_jobs("r", [spec("a"), spec("b", "a"), spec("y"), spec("join", "a", "y")],
                       now=1.0)
    assert finish_all(ledger, now=10.0, limit=1) == ["a"]  # the join now waits for y only
    (b,) = claim(ledger, now=12.0, limit=1)
    assert b.job_id == "b"
    assert ledger.commit([outcome(b, "reset")], [], now=13.0) == [True]
    # y is done first: the join must still wait, for a, which runs again (its value is new).
    assert finish_all(ledger, now=14.0, limit=1) == ["y"]
    assert statuses(ledger) == {"a": "queued", "b": "blocked", "y": "done", "join": "blocked"}
    assert finish_all(ledger, now=15.0) == ["a"]
    assert statuses(ledger) == {"a": "done", "b": "queued", "y": "done", "join": "queued"}


# -- the group commit ------------------------------------------------------------------------

def test_a_commit_writes_task_finishes_and_job_outcomes_together(ledger):
    ledger.insert_jobs("r", [spec("a"), spec("b")], now=1.0)
    jobs = claim(ledger)
    claims = [Claim(key=f"task-{j.job_id}", fn="mod.step", owner=OWNER, lease_until=99.0,
                    now=10.0) for j in jobs]
    assert [c.outcome for c in ledger.claim_many(claims)] == ["claimed", "claimed"]
    tasks = [(c.key, OWNER, Outcome(status=Status.DONE, finished_at=11.0, result=b"\xa1x",
                                    codec="msgpack", size=2)) for c in claims]
    assert ledger.commit([outcome(j) for j in jobs], tasks, now=11.0) == [True, True]
    records = ledger.get_many(["task-a", "task-b", "task-zz"])
    assert sorted(records) == ["task-a", "task-b"]
    assert {(r.status, r.result, r.lease_until) for r in records.values()} == \
        {("done", b"\xa1x", None)}
    assert statuses(ledger) == {"a": "done", "b": "done"}


def test_an_unknown_outcome_status_is_refused_and_writes_nothing(ledger):
    ledger.insert_jobs("r", [spec("a")], now=1.0)
    (job,) = claim(ledger)
    with pytest.raises(LedgerError, match="not one of"):
        ledger.commit([outcome(job), outcome(job, "finished")], [], now=11.0)
    assert one(ledger, "a").status == "running"


def test_claim_many_decides_each_claim_as_claim_does_in_one_batch(ledger):
    def task(key, owner=OWNER, now=10.0, lease=30.0, **extra):
        return Claim(key=key, fn="mod.f", owner=owner, lease_until=now + lease, now=now,
                     args=b"\x80", **extra)

    ledger.claim(task("done", now=1.0))
    ledger.finish("done", OWNER, Outcome(status="done", finished_at=2.0, result=b"\xa1x"))
    ledger.claim(task("busy", owner=OTHER))
    ledger.claim(task("stale", owner=OTHER, now=1.0, lease=1.0))
    results = ledger.claim_many([task("new"), task("done"), task("busy"), task("stale"),
                                 task("new", owner=OTHER), task("done", force=True)])
    assert [(r.outcome, r.attempt) for r in results] == [
        ("claimed", 1), ("hit", 0), ("busy", 0), ("claimed", 2), ("busy", 0), ("claimed", 2)]
    assert results[1].record.result == b"\xa1x"
    assert results[2].record.owner == OTHER and results[4].record.owner == OWNER
    records = ledger.get_many(["new", "stale", "busy", "done"])
    assert {k: (r.status, r.owner, r.attempts) for k, r in records.items()} == {
        "new": ("running", OWNER, 1), "stale": ("running", OWNER, 2),
        "busy": ("running", OTHER, 1), "done": ("running", OWNER, 2)}
    assert records["new"].args == b"\x80" and ledger.claim_many([]) == []


# -- reading ---------------------------------------------------------------------------------

def test_counts_wake_times_and_job_listings(ledger):
    ledger.insert_jobs("r", [spec(f"{i}/a", run_after=float(i)) for i in range(3)], now=1.0)
    ledger.insert_jobs("r", [spec(f"{i}/b", f"{i}/a") for i in range(3)], now=1.0)
    assert ledger.next_wake("r") == 0.0
    assert ledger.run_counts("r") == {("a", "queued"): 3, ("b", "blocked"): 3}
    assert [j.job_id for j in ledger.find_jobs("r", limit=4)] == ["0/a", "0/b", "1/a", "1/b"]
    assert [j.job_id for j in ledger.find_jobs("r", status="blocked")] == \
        ["0/b", "1/b", "2/b"]
    assert [j.job_id for j in ledger.get_jobs("r", ["2/b", "nope", "0/a"])] == ["0/a", "2/b"]
    assert ledger.next_wake("nope") is None and ledger.run_counts("nope") == {}
    ledger.insert_jobs("r", [spec(f"more/{i}") for i in range(1200)], now=2.0)
    listed = [j.job_id for j in ledger.find_jobs("r")]  # three pages, each after the last
    assert len(listed) == 1206 and listed == sorted(set(listed))
    assert len(list(ledger.find_jobs("r", limit=700))) == 700
    assert len(list(ledger.find_jobs("r", status="queued"))) == 1203


def test_a_page_of_jobs_is_a_seek_in_the_run_s_key_not_a_sort_of_its_jobs(ledger, location):
    """Each page of find_jobs reads from where the last one ended: a page in seq order read
    every job of the run and sorted them, for every page (minutes for a large run)."""
    params = {"run_id": "r", "status": None, "after": "", "page": 500}
    if location.endswith(".db"):
        plan = " | ".join(row[-1] for row in ledger._rows(
            "EXPLAIN QUERY PLAN " + SQLITE_J["find_jobs"], params))
        assert "(run_id=? AND job_id>?)" in plan and "TEMP B-TREE" not in plan, plan
    else:
        def explain(conn, _):
            conn.execute("SET enable_seqscan = off")
            try:
                return conn.execute("EXPLAIN " + POSTGRES_J["find_jobs"], params).fetchall()
            finally:
                conn.execute("RESET enable_seqscan")
        plan = " | ".join(row[0] for row in ledger._run(explain))
        assert "Index" in plan and "Sort" not in plan, plan


def test_node_results_give_each_job_of_a_node_with_the_task_its_output_names(ledger):
    ledger.insert_jobs("r", [spec(f"{i}/a") for i in range(3)] + [spec("0/b", "0/a")],
                       now=1.0)
    jobs = {j.job_id: j for j in claim(ledger)}
    ledger.claim(Claim(key="task-0/a", fn="mod.step", owner=OWNER, lease_until=99.0, now=10.0))
    done = (Outcome(status=Status.DONE, finished_at=11.0, result=b"\xa1x", codec="msgpack"))
    ledger.commit([outcome(jobs["0/a"]),
                   outcome(jobs["1/a"], output_key="input:1/a", task_key="task-1/a"),
                   outcome(jobs["2/a"], "failed", error="boom")],
                  [("task-0/a", OWNER, done)], now=11.0)
    rows = sorted(ledger.node_results("r", "a"))  # in no set order
    assert [row[:5] for row in rows] == [
        ("0/a", "done", "mod.step", None, "task-0/a"),
        ("1/a", "done", "mod.step", None, "input:1/a"),
        ("2/a", "failed", "mod.step", "boom", None)]
    # The task its output names: (fn, codec, blob, result), or nothing found.
    assert tuple(rows[0][5:]) == ("mod.step", "msgpack", None, b"\xa1x")
    assert rows[1][5:] == rows[2][5:] == (None, None, None, None)
    assert ledger.node_results("r", "nope") == [] and ledger.node_results("nope", "a") == []


def test_a_job_whose_task_is_done_is_inserted_done_and_its_children_go_on(ledger):
    done = JobSpec(job_id="0/a", node="a", step="mod.step", input=b"x", task_key="task-a",
                   output_key="task-a")
    assert ledger.insert_jobs("r", [done, spec("0/b", "0/a"), spec("0/c", "0/a", "0/x"),
                                     spec("0/x")], now=1.0) == 4
    assert statuses(ledger) == {"0/a": "done", "0/b": "queued", "0/c": "blocked",
                                "0/x": "queued"}
    job = one(ledger, "0/a")
    assert (job.task_key, job.output_key, job.attempts, job.owner) == \
        ("task-a", "task-a", 0, None)
    assert [j.job_id for j in claim(ledger)] == ["0/b", "0/x"]


def test_lookup_many_reads_what_reusing_a_result_needs(ledger):
    ledger.claim(Claim(key="k", fn="mod.f", owner=OWNER, lease_until=99.0, now=10.0,
                       args=b"\x80"))
    ledger.finish("k", OWNER, Outcome(status="done", finished_at=12.5, result=b"\xa1x",
                                      codec="msgpack"))
    found = ledger.lookup_many(["k", "nope", "k"])
    assert list(found) == ["k"]
    record = found["k"]
    assert (record.status, record.result, record.codec, record.fn, record.started_at,
            record.finished_at) == ("done", b"\xa1x", "msgpack", "mod.f", 10.0, 12.5)
    assert ledger.lookup_many([]) == {}


def test_reusable_names_the_results_a_run_may_reuse_now_and_nothing_else(ledger):
    def task(key, status="done", result=b"\xa1x", blob=None, expires_at=None):
        ledger.claim(Claim(key=key, fn="mod.f", owner=OWNER, lease_until=99.0, now=10.0,
                           args=b"\x80"))
        if status != "running":
            ledger.finish(key, OWNER, Outcome(status=status, finished_at=12.5, result=result,
                                              codec="msgpack", blob=blob,
                                              expires_at=expires_at))

    task("value")
    task("none", result=b"\xc0")  # a kept None: its job passes its input on
    task("big-none", result=None, blob="blobs/x")  # a blob is never read as None here
    task("old", expires_at=20.0)  # past its retention at 30
    task("later", expires_at=40.0)
    task("failed", status="failed", result=None)
    task("running", status="running")
    found = ledger.reusable(["value", "none", "big-none", "old", "later", "failed",
                             "running", "unknown", "value"], 30.0)
    assert found == {"value": (False, 2.5), "none": (True, 2.5), "big-none": (False, 2.5),
                     "later": (False, 2.5)}
    assert ledger.reusable([], 30.0) == {}


def test_a_job_round_trips_every_field(ledger):
    ledger.insert_jobs("r", [JobSpec(job_id="é/0", node="n", step="pkg.mod.step",
                                     parents=("p\x01", "q"), input=b"\x00\xff", scope="s",
                                     priority=-3, run_after=1.5)], now=1.25)
    job = one(ledger, "é/0")
    assert (job.node, job.step, job.status, job.parents, job.input, job.scope, job.priority,
            job.run_after, job.attempts, job.resets, job.owner, job.lease_until,
            job.task_key, job.output_key, job.error, job.created_at, job.updated_at) == (
        "n", "pkg.mod.step", "blocked", ("p\x01", "q"), b"\x00\xff", "s", -3, 1.5, 0, 0,
        None, None, None, None, None, 1.25, 1.25)
    assert isinstance(job.seq, int)


def test_custom_ledgers_say_they_keep_no_runs(location):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    try:
        from memory_ledger import MemoryLedger
    finally:
        sys.path.pop(0)
    assert MemoryLedger().supports_runs is False
    db = open_ledger(location)
    try:
        assert db.supports_runs is True
    finally:
        db.close()


# -- processes -------------------------------------------------------------------------------

_COMMITTER = """
import sys
from hokuro.store.ledger import open_ledger
from hokuro.model.jobs import JobOutcome, JobSpec
from hokuro.model.records import Outcome
where, run_id, batches, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
db = open_ledger(where)
db.get_run(run_id)
print("ready", flush=True)
for b in range(batches):
    outcomes = [JobOutcome(run_id=run_id, job_id=f"{b}/{i}", owner="killed|1|1.00|k",
                           attempt=1, status="done", task_key=f"{run_id}:{b}/{i}",
                           output_key=f"{run_id}:{b}/{i}",
                           children=[JobSpec(f"{b}/{i}/c", "c", "mod.c", (f"{b}/{i}",))])
                for i in range(size)]
    tasks = [(f"{run_id}:{b}/{i}", "killed|1|1.00|k",
              Outcome(status="done", finished_at=5.0, result=b"x" * 200)) for i in range(size)]
    db.commit(outcomes, tasks, now=5.0)
    print("committed", b, flush=True)
"""


def test_a_commit_killed_at_any_instant_leaves_all_or_nothing(location):
    """kill -9 of a process in the middle of its group commits: each batch is whole (its
    task finishes, job outcomes, countdowns and fan-out children) or absent."""
    batches, size = 30, 300
    db = open_ledger(location)
    rng = random.Random(7)
    wholes: list[int] = []
    try:
        for round_ in range(6):
            run_id = f"k{round_}"
            db.create_run(run(run_id))
            db.insert_jobs(run_id, [spec(f"{b}/{i}") for b in range(batches)
                                    for i in range(size)], now=1.0)
            assert len(db.claim_jobs("killed|1|1.00|k", 2.0, 1e9, batches * size,
                                     run_id=run_id)) == batches * size
            db.claim_many([Claim(key=f"{run_id}:{b}/{i}", fn="mod.step", owner="killed|1|1.00|k",
                                 lease_until=1e9, now=2.0)
                           for b in range(batches) for i in range(size)])
            proc = subprocess.Popen(
                [sys.executable, "-c", _COMMITTER, location, run_id, str(batches), str(size)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env={**os.environ, "PYTHONPATH": SRC})
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
            # Each round lets a different number of batches commit, then kills the process
            # at a random instant of the commits that follow (a loaded machine slows the
            # committer, never the spread of the kill points).
            for _ in range(round_ * 5):
                assert proc.stdout.readline().startswith("committed"), proc.stderr.read()
            time.sleep(rng.uniform(0.0, 0.03))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            proc.stdout.close()
            proc.stderr.close()
            tasks = db.get_many([f"{run_id}:{b}/{i}" for b in range(batches)
                                 for i in range(size)])
            jobs = {j.job_id: j for j in db.find_jobs(run_id)}
            whole = 0
            for b in range(batches):
                done = [jobs[f"{b}/{i}"].status == "done" for i in range(size)]
                finished = [tasks[f"{run_id}:{b}/{i}"].status == "done" for i in range(size)]
                children = [f"{b}/{i}/c" in jobs for i in range(size)]
                assert len({*done, *finished, *children}) == 1, (round_, b)
                whole += done[0]
            # Commits are in order: a prefix of the batches is whole, the rest untouched.
            assert all(jobs[f"{b}/0"].status == "done" for b in range(whole))
            wholes.append(whole)
            assert db.run_counts(run_id).get(("c", "queued"), 0) == whole * size
    finally:
        db.close()
    # The kills fell at different points: after none, some, or many of the batches.
    print("WHOLES", wholes)
    assert len(set(wholes)) > 2, wholes
    if not location.startswith("postgresql://"):
        with sqlite3.connect(location) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


_CLAIMER = """
import sys, time
from pathlib import Path
from hokuro.store.ledger import open_ledger
where, worker, gate = sys.argv[1], sys.argv[2], Path(sys.argv[3])
db = open_ledger(where)
db.get_run("r")
(gate / worker).touch()
while len(list(gate.iterdir())) < 4:  # all four start together
    time.sleep(0.001)
won = []
while True:
    jobs = db.claim_jobs(f"h|{worker}|1.00|w{worker}", 10.0, 1e9, 25)
    if not jobs:
        break
    won += [f"{j.job_id}:{j.attempts}" for j in jobs]
    time.sleep(0.002)  # the work, during which the others claim
db.close()
print(" ".join(won))
"""


def test_claims_from_four_processes_never_give_a_job_to_two_owners(location, tmp_path):
    db = open_ledger(location)
    try:
        db.create_run(run("r"))
        db.insert_jobs("r", [spec(f"{i}", scope=f"s{i % 3}", priority=i % 2)
                             for i in range(2000)], now=1.0)
    finally:
        db.close()
    gate = tmp_path / "gate"
    gate.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", _CLAIMER, location, str(w), str(gate)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": SRC})
             for w in range(4)]
    won: list[str] = []
    per_worker = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        per_worker.append(len(out.split()))
        won += out.split()
    assert sorted(won) == sorted(f"{i}:1" for i in range(2000))
    assert sum(1 for n in per_worker if n) >= 2  # they did claim side by side


def test_a_cancelled_run_takes_no_new_jobs(ledger):
    assert ledger.insert_jobs("r", [spec("0/a")], 1.0) == 1
    ledger.update_run("r", status="cancelled", finished_at=2.0, updated_at=2.0)
    # A window read while the cancel was being committed goes nowhere: nothing is left
    # open behind a cancel, and the process running the run learns it is cancelled.
    with pytest.raises(RunCancelled, match="cancelled"):
        ledger.insert_jobs("r", [spec("1/a"), spec("2/a")], 3.0)
    assert sorted(statuses(ledger)) == ["0/a"]
    # Jobs of a run without a record (inserted by hand) go in as before.
    assert ledger.insert_jobs("elsewhere", [spec("0/a")], 3.0) == 1
