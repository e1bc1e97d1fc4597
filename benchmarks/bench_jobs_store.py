"""How fast the ledger moves jobs: insert, claim in batches, commit in groups.

The store's share of the run engine's no-op throughput (issue 10's target: 20,000 jobs/s
drained end to end on SQLite, and pgqueuer's 4,600/s on PostgreSQL; the store must leave
room for the executor). For each ledger: insert N root jobs in one call, then drain them
the way the executor does: claim a batch of jobs, claim their tasks (``claim_many``), and
commit the task finishes with the job outcomes in one group commit per batch. Also a pipe
of two steps (each job's done counts down its child) and a fan-out (children inserted by
their source's commit).

    python benchmarks/bench_jobs_store.py [--jobs 20000] [--batch 500] [--pg URL]

Without --pg it uses postgresql://postgres@127.0.0.1/postgres when a server answers there,
creating and dropping a database of its own.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from hokuro.model.jobs import JobOutcome, JobSpec, RunRecord
from hokuro.model.records import Claim, Outcome
from hokuro.store.ledger import open_ledger

OWNER = "bench|1|1.00|b"


def drain(db, run_id: str, batch: int, *, tasks: bool, now: float = 10.0) -> tuple[int, dict]:
    """Claim and commit until nothing is claimable; (jobs done, seconds per phase)."""
    phases = {"claim": 0.0, "claim tasks": 0.0, "commit": 0.0}
    done = 0
    while True:
        t0 = time.perf_counter()
        jobs = db.claim_jobs(OWNER, now, now + 60, batch, run_id=run_id)
        t1 = time.perf_counter()
        phases["claim"] += t1 - t0
        if not jobs:
            return done, phases
        finishes = []
        if tasks:
            claims = [Claim(key=f"{run_id}:{j.job_id}", fn=j.step, owner=OWNER,
                            lease_until=now + 60, now=now) for j in jobs]
            db.claim_many(claims)
            finishes = [(c.key, OWNER, Outcome(status="done", finished_at=now,
                                               result=b"\xc0", codec="msgpack", size=1))
                        for c in claims]
        t2 = time.perf_counter()
        phases["claim tasks"] += t2 - t1
        outcomes = [JobOutcome(run_id=j.run_id, job_id=j.job_id, owner=OWNER,
                               attempt=j.attempts, status="done",
                               task_key=f"{run_id}:{j.job_id}",
                               output_key=f"{run_id}:{j.job_id}",
                               children=fan_out(j)) for j in jobs]
        written = db.commit(outcomes, finishes, now)
        phases["commit"] += time.perf_counter() - t2
        assert all(written)
        done += len(jobs)


def fan_out(job) -> list[JobSpec]:
    if job.node != "source":
        return []
    return [JobSpec(f"{job.job_id}/{k}/body", "body", "bench.body", (job.job_id,))
            for k in range(100)]


def workload(kind: str, n: int) -> list[JobSpec]:
    if kind == "batch":
        return [JobSpec(f"{i}", "f", "bench.f", input=b"\x01") for i in range(n)]
    if kind == "pipe":  # n jobs: n/2 items of two steps
        specs = []
        for i in range(n // 2):
            specs.append(JobSpec(f"{i}/0.a", "a", "bench.a", input=b"\x01"))
            specs.append(JobSpec(f"{i}/1.b", "b", "bench.b", (f"{i}/0.a",)))
        return specs
    if kind == "fan-out":  # n/100 sources of 100 children each (children made at commit)
        return [JobSpec(f"{i}", "source", "bench.source") for i in range(n // 101)]
    raise ValueError(kind)


def measure(make: Callable[[], object], kind: str, n: int, batch: int, tasks: bool,
            repeat: int) -> dict:
    rates, inserts, phase_totals = [], [], []
    for _ in range(repeat):
        db = make()
        try:
            run_id = uuid.uuid4().hex
            db.create_run(RunRecord(id=run_id, name="bench", status="running", plan=None,
                                    created_at=1.0, updated_at=1.0))
            specs = workload(kind, n)
            t0 = time.perf_counter()
            db.insert_jobs(run_id, specs, now=1.0)
            t1 = time.perf_counter()
            done, phases = drain(db, run_id, batch, tasks=tasks)
            t2 = time.perf_counter()
        finally:
            db.close()
        rates.append(done / (t2 - t0))
        inserts.append(len(specs) / (t1 - t0))
        phase_totals.append({k: v / done * 1e6 for k, v in phases.items()})
    # Best of the repeats: on a shared machine the others measure the neighbours' load.
    best = max(range(repeat), key=lambda i: rates[i])
    return {"jobs/s": rates[best], "insert/s": max(inserts),
            "us per job": phase_totals[best], "jobs": done}


def report(name: str, make: Callable[[], object], n: int, batch: int, repeat: int) -> None:
    print(f"\n{name}: {n} jobs, claims of {batch}, group commits of {batch}, "
          f"best of {repeat}")
    print(f"  {'workload':<28}{'drained jobs/s':>15}{'insert jobs/s':>15}   per job (us)")
    for kind, tasks in (("batch", False), ("batch", True), ("pipe", True),
                        ("fan-out", True)):
        result = measure(make, kind, n, batch, tasks, repeat)
        label = f"{kind}{' + tasks' if tasks else ''} ({result['jobs']})"
        per = ", ".join(f"{k} {v:.1f}" for k, v in result["us per job"].items())
        print(f"  {label:<28}{result['jobs/s']:>15,.0f}{result['insert/s']:>15,.0f}   {per}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1/postgres")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        count = iter(range(1_000_000))
        report("SQLite (WAL, synchronous=NORMAL)",
               lambda: open_ledger(Path(folder) / f"bench{next(count)}.db"),
               args.jobs, args.batch, args.repeat)

    try:
        import psycopg

        admin = psycopg.connect(args.pg, autocommit=True, connect_timeout=3)
    except Exception as exc:  # no server, no driver: say so and stop
        print(f"\nPostgreSQL: skipped ({exc})")
        return
    name = f"hokuro_bench_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    url = args.pg.rsplit("/", 1)[0] + f"/{name}"
    try:
        spots = iter(range(1_000_000))
        report("PostgreSQL (local, one connection per call)",
               lambda: open_ledger(url, spot=f"b{next(spots)}"),
               args.jobs, args.batch, args.repeat)
    finally:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = %s", (name,))
        admin.execute(f'DROP DATABASE "{name}"')
        admin.close()


if __name__ == "__main__":
    main()
