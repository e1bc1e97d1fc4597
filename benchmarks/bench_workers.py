"""Workers on one PostgreSQL, side by side with procrastinate and pgqueuer in one run:

    python benchmarks/bench_workers.py [--jobs 20000] [--processes 1,2,4,8]
                                       [--accounts 3000] [--only a,b,c,d] [--json FILE]

A  no-op jobs drained by 1, 2, 4 and 8 worker processes (``hokuro worker``, concurrency
   100 each; procrastinate and pgqueuer with their recommended settings, as in
   benchmarks/runs_peers/): jobs enqueued first, then the processes started; the rate is
   jobs / (last job's end - first job's start), so start-up is not counted.
B  latency from ready to claimed: 4 idle workers, 200 runs of one job submitted 20 ms
   apart; for each job, its task's start minus the job's insert (p50, p99). Measures the
   wake-up (LISTEN/NOTIFY), not a backlog.
C  10,000 jobs of ``await asyncio.sleep(0.1)`` over 4 workers x concurrency 250 (ideal
   1.0 s): from the submit to the run's end, and from the first job's start to the last's.
D  the buelon scenario: N accounts (3,000) x request -> poll (x3, Pending) -> download ->
   transform -> upload with simulated waits, 4 workers, requests through one limiter of 50/s
   shared by every worker: completes, 0 lost, 0 duplicated, the limit never exceeded (the
   most requests in any 1 s window), wall time against the ideal (N / 50 s + one chain).

Each case gets a database of its own on HOKURO_BENCH_PG_URL's server, dropped afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
ADMIN_URL = os.environ.get("HOKURO_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MARK = "BENCH-RESULT "


@contextlib.contextmanager
def database() -> Iterator[str]:
    import psycopg

    name = f"hokuro_bw_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(ADMIN_URL)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s", (name,))
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


class Env:
    """The environment of the bench's hokuro processes (this one included)."""

    def __init__(self, db: str, folder: Path) -> None:
        self.vars = {"HOKURO_BENCH_WORKERS_DB": db,
                     "HOKURO_BENCH_WORKERS_BLOBS": str(folder / "blobs"),
                     "HOKURO_BENCH_WORKERS_LOG": str(folder / "requests.log"),
                     "PYTHONPATH": os.pathsep.join([str(SRC), str(HERE)])}
        self.folder = folder
        os.environ.update(self.vars)
        sys.modules.pop("workers_peers.hokuro_steps", None)
        import workers_peers.hokuro_steps as steps

        self.steps = steps

    def workers(self, count: int, concurrency: int) -> list[subprocess.Popen]:
        env = {**os.environ, **self.vars}
        return [subprocess.Popen(
            [sys.executable, "-c", "from hokuro.cli import main; main()", "worker",
             "workers_peers.hokuro_steps:spot", "--concurrency", str(concurrency),
             "--grace", "5"], cwd=self.folder, env=env, stdout=subprocess.DEVNULL,
            stderr=open(self.folder / f"worker-{n}.log", "w"))
            for n in range(count)]

    def wait_registered(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        ledger = self.steps.spot.ledger
        while time.monotonic() < deadline:
            if sum(w.status == "running" for w in ledger.list_workers()) >= count:
                time.sleep(0.3)  # listening, idle
                return
            time.sleep(0.05)
        raise TimeoutError(f"{count} workers did not start")

    def sql(self, query: str, params: Any = ()) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.vars["HOKURO_BENCH_WORKERS_DB"], autocommit=True) as conn:
            conn.execute('SET search_path TO "hokuro_bench"')
            return conn.execute(query, params).fetchall()

    def close(self) -> None:
        self.steps.spot.close()


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def hokuro_env() -> Iterator[Env]:
    with database() as db, tempfile.TemporaryDirectory() as tmp:
        env = Env(db, Path(tmp))
        try:
            yield env
        finally:
            env.close()


# -- A: no-op claims per second ----------------------------------------------------------------

def case_a_hokuro(jobs: int, processes: int) -> dict[str, Any]:
    with hokuro_env() as env:
        started = time.perf_counter()
        run = env.steps.spot.submit(env.steps.noop, over=range(jobs), name="noop")
        enqueue_s = time.perf_counter() - started
        workers = env.workers(processes, 100)
        try:
            run.wait(timeout=600, every=0.05)
        finally:
            stop(workers)
        (first, last), = env.sql("SELECT min(started_at), max(finished_at) FROM tasks")
        done = env.sql("SELECT count(*) FROM jobs WHERE status = 'done'")[0][0]
        return {"status": "ok" if done == jobs else f"{done} of {jobs} done",
                "per_s": round(jobs / (last - first)), "enqueue_per_s": round(jobs / enqueue_s)}


def case_a_peer(engine: str, jobs: int, processes: int) -> dict[str, Any]:
    def call(phase: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "workers_peers.peers", engine, phase,
                                 db, str(jobs)], cwd=HERE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)

    def result(process: subprocess.Popen) -> dict[str, Any]:
        out, _ = process.communicate(timeout=600)
        lines = [line for line in out.splitlines() if line.startswith(MARK)]
        return json.loads(lines[-1][len(MARK):]) if lines else {"status": "no result"}

    with database() as db:
        enqueued = result(call("enqueue"))
        if enqueued["status"] != "ok":
            return enqueued
        drains = [result(p) for p in [call("drain") for _ in range(processes)]]
        bad = [d["status"] for d in drains if d["status"] != "ok"]
        if bad:
            return {"status": bad[0]}
        count = sum(d["count"] for d in drains)
        first = min(d["first"] for d in drains if d["first"] is not None)
        last = max(d["last"] for d in drains)
        return {"status": "ok" if count == jobs else f"{count} of {jobs} ran",
                "per_s": round(count / (last - first))}


# -- B: ready -> claimed latency ------------------------------------------------------------------

def case_b(submissions: int = 200, spacing: float = 0.02) -> dict[str, Any]:
    with hokuro_env() as env:
        workers = env.workers(4, 100)
        try:
            env.wait_registered(4)
            runs = []
            for i in range(submissions):
                runs.append(env.steps.spot.submit(env.steps.noop, over=[i], name=f"lat-{i}"))
                time.sleep(spacing)
            for run in runs:
                run.wait(timeout=60, every=0.05)
        finally:
            stop(workers)
        rows = env.sql("SELECT t.started_at - j.created_at FROM jobs j "
                       "JOIN tasks t ON t.key = j.task_key")
        latencies = sorted(r[0] * 1000 for r in rows)
        return {"jobs": len(latencies), "p50_ms": round(statistics.median(latencies), 1),
                "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 1)}


# -- C: 10,000 sleeps over 4 workers ---------------------------------------------------------------

def case_c(jobs: int = 10_000) -> dict[str, Any]:
    with hokuro_env() as env:
        workers = env.workers(4, 250)
        try:
            env.wait_registered(4)
            started = time.perf_counter()
            run = env.steps.spot.submit(env.steps.nap, over=range(jobs), name="naps")
            submitted = time.perf_counter() - started
            run.wait(timeout=600, every=0.02)
            wall = time.perf_counter() - started
        finally:
            stop(workers)
        (first, last), = env.sql("SELECT min(started_at), max(finished_at) FROM tasks")
        return {"wall_s": round(wall, 2), "submit_s": round(submitted, 2),
                "first_to_last_s": round(last - first, 2), "ideal_s": 1.0,
                "status": str(run.status)}


# -- D: the buelon scenario ------------------------------------------------------------------------

def case_d(accounts: int) -> dict[str, Any]:
    with hokuro_env() as env:
        steps = env.steps
        pipe = steps.request | steps.poll | steps.download | steps.transform | steps.upload
        workers = env.workers(4, 250)
        try:
            env.wait_registered(4)
            started = time.perf_counter()
            run = steps.spot.submit(pipe, over=range(accounts), name="reports")
            run.wait(timeout=3600, every=0.1)
            wall = time.perf_counter() - started
        finally:
            stop(workers)
        counts = steps.spot.ledger.run_counts(run.id)
        done = sum(n for (_, s), n in counts.items() if s == "done")
        log = Path(env.vars["HOKURO_BENCH_WORKERS_LOG"]).read_text().split("\n")
        requests = [line.split() for line in log if line]
        per_account: dict[str, int] = {}
        for _, account in requests:
            per_account[account] = per_account.get(account, 0) + 1
        times = sorted(float(t) for t, _ in requests)
        results = run.results()
        uploaded = sorted(r for r in results if isinstance(r, int))
        wait = steps.WAIT
        ideal = accounts / steps.REQUESTS_PER_S + 4.5 * wait
        return {"status": str(run.status), "accounts": accounts, "jobs_done": done,
                "lost": accounts - len(uploaded),
                "duplicated": sum(n - 1 for n in per_account.values() if n > 1),
                "requests": len(requests), "limit_per_s": steps.REQUESTS_PER_S,
                "most_in_1s": most_within(times, 1.0), "most_in_10s": most_within(times, 10.0),
                "mean_per_s": round((len(times) - 1) / (times[-1] - times[0]), 2),
                "wall_s": round(wall, 1), "ideal_s": round(ideal, 1),
                "ratio": round(wall / ideal, 3)}


def most_within(times: list[float], window: float) -> int:
    """The most of ``times`` (sorted) in any half-open window of ``window`` seconds. The
    times are when each worker logged its grant, so a worker paused between its grant and
    its log line can push one more into a window than the limiter granted there."""
    most, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        most = max(most, i - j + 1)
    return most


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--processes", default="1,2,4,8")
    parser.add_argument("--accounts", type=int, default=3000)
    parser.add_argument("--only", default="a,b,c,d")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    only = set(args.only.split(","))
    figures: dict[str, Any] = {}
    if "a" in only:
        rows = {}
        for k in [int(p) for p in args.processes.split(",")]:
            rows[k] = {"hokuro": case_a_hokuro(args.jobs, k)}
            for engine in ("procrastinate", "pgqueuer"):
                rows[k][engine] = case_a_peer(engine, args.jobs, k)
            print(f"A {k} processes: {json.dumps(rows[k])}", flush=True)
        figures["a"] = rows
    if "b" in only:
        figures["b"] = case_b()
        print(f"B latency: {json.dumps(figures['b'])}", flush=True)
    if "c" in only:
        figures["c"] = case_c()
        print(f"C sleeps: {json.dumps(figures['c'])}", flush=True)
    if "d" in only:
        figures["d"] = case_d(args.accounts)
        print(f"D buelon: {json.dumps(figures['d'])}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
