"""The run engine against its peers, side by side in one run: ``make bench-runs``.

    python benchmarks/bench_runs.py [--only a,b] [--workloads w1,w4] [--timeout S]
                                    [--python NAME=PATH] [--json FILE] [--repeat N]
                                    [--against NAME=SRC]

W1  10,000 jobs of ``await asyncio.sleep(0.1)`` at concurrency 1,000 (ideal: 1.0 s): wall
    time, ratio to plain asyncio measured in the same run, peak RSS of the process.
W2  20,000 no-op jobs: enqueued, then drained (jobs/s of each).
W3  a 5-step pipeline over 1,000 items, steps that do no work: wall / 5,000 = bookkeeping
    per durable step.
W4  2,000 jobs, SIGKILL at half done, the same program again: jobs lost (never completed
    within --recovery seconds of the restart) and jobs completed twice (their id is in the
    job log twice).

Every (engine, workload) runs in a fresh interpreter (``benchmarks/runs_peers/with_*.py``)
with its own temporary folder and, where it needs PostgreSQL, a database of its own made
on HOKURO_BENCH_PG_URL's server and dropped afterwards; a case that outlives --timeout is
killed and shows "timeout". A peer that is not installed shows "not installed"; hokuro
shows "not available" until ``spot.map`` / ``spot.run`` exist. ``--python prefect=PATH``
runs an engine with another interpreter (Prefect is kept out of the ``bench`` extra).

This machine's speed moves by a fifth or more within minutes, so one run compares little.
``--repeat N`` runs every case N times, round after round (each round runs every engine
once, so a slow minute hits them all), and the table shows medians; the JSON keeps every
run. ``--against before=/path/to/other/tree/src`` adds, beside each hokuro row, the same
engine run from that source tree, in the same rounds: a before/after comparison in one
command (e.g. a ``git worktree`` of the commit before).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(HERE))

from runs_peers.workloads import MARK, W4_JOBS, count_log  # noqa: E402

ADMIN_URL = os.environ.get("HOKURO_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("HOKURO_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
WORKLOADS = ("w1", "w2", "w3", "w4")


@dataclass(frozen=True)
class Engine:
    name: str      # the row's name, and what --only / --python match
    module: str    # runs_peers.<module>
    variant: str   # passed to the module: which backend or which of its APIs
    label: str     # what the row says it measures
    postgres: bool = False
    src: str | None = None  # hokuro's source tree for this row (default: this one's)


ENGINES = [
    Engine("asyncio", "with_asyncio", "", "plain asyncio + Semaphore (nothing kept)"),
    Engine("hokuro-sqlite", "with_hokuro", "sqlite", "hokuro `spot.map` / `spot.run`, SQLite"),
    Engine("hokuro-postgres", "with_hokuro", "postgres",
           "hokuro `spot.map` / `spot.run`, PostgreSQL", postgres=True),
    Engine("pgqueuer", "with_pgqueuer", "", "pgqueuer, PostgreSQL", postgres=True),
    Engine("procrastinate", "with_procrastinate", "", "procrastinate, PostgreSQL",
           postgres=True),
    Engine("huey", "with_huey", "", "huey, SQLite, thread workers"),
    Engine("dbos-steps-sqlite", "with_dbos", "steps-sqlite", "DBOS steps in a workflow, SQLite"),
    Engine("dbos-steps-postgres", "with_dbos", "steps-postgres",
           "DBOS steps in a workflow, PostgreSQL", postgres=True),
    Engine("dbos-queue-sqlite", "with_dbos", "queue-sqlite", "DBOS queued workflows, SQLite"),
    Engine("dbos-queue-postgres", "with_dbos", "queue-postgres",
           "DBOS queued workflows, PostgreSQL", postgres=True),
    Engine("celery", "with_celery", "", "Celery, thread pool, Redis broker"),
    Engine("prefect", "with_prefect", "", "Prefect 3 `.map`, thread task runner"),
]


# -- a database of its own ------------------------------------------------------------------

def create_database() -> str:
    import psycopg

    name = f"hokuro_runs_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(ADMIN_URL)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def drop_database(url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = %s", (name,))
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


# -- children -------------------------------------------------------------------------------

class Child:
    """One engine's process for one workload (or one phase of W4), in a session of its own
    so that a timeout or the crash kills it with everything it started (a Celery worker)."""

    def __init__(self, python: str, engine: Engine, config: dict[str, Any], folder: Path,
                 tag: str) -> None:
        self.out = folder / f"{tag}.out"
        self.err = folder / f"{tag}.err"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([engine.src or str(SRC), str(HERE)]),
               "PYTHONUNBUFFERED": "1"}
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [python, "-m", f"runs_peers.{engine.module}", json.dumps(config)],
                cwd=folder, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def wait(self, timeout: float) -> dict[str, Any]:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return {"status": "timeout"}
        # Whatever it started must not outlive it (a Celery worker, a Prefect server).
        self.kill()
        return self.result()

    def result(self) -> dict[str, Any]:
        for line in reversed(self.out.read_text(errors="replace").splitlines()):
            if line.startswith(MARK):
                return json.loads(line[len(MARK):])
        tail = self.err.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        return {"status": f"error: exit {self.proc.returncode}: {tail[0][:160]}"}


def crash(python: str, engine: Engine, config: dict[str, Any], folder: Path,
          timeout: float, recovery: float) -> dict[str, Any]:
    """W4: enqueue, work until half the jobs are logged, SIGKILL, work again, count."""
    log = config["log"]
    enqueued = Child(python, engine, {**config, "phase": "enqueue"}, folder, "w4-enqueue")
    first = enqueued.wait(timeout)
    if first["status"] not in ("ok", "n/a"):
        return first
    worker = Child(python, engine, {**config, "phase": "work"}, folder, "w4-work")
    deadline = time.monotonic() + timeout
    while count_log(log)[0] < W4_JOBS // 2:
        if not worker.alive():
            result = worker.result()
            return result if result["status"] != "ok" else {"status": "ended before the kill"}
        if time.monotonic() > deadline:
            worker.kill()
            return {"status": "timeout"}
        time.sleep(0.002)
    worker.kill()
    at_kill = count_log(log)
    restarted = Child(python, engine, {**config, "phase": "work"}, folder, "w4-restart")
    started = time.monotonic()
    complete_at = None
    while restarted.alive() and time.monotonic() - started < recovery:
        if complete_at is None and count_log(log)[0] >= W4_JOBS:
            complete_at = time.monotonic()
        # A second after the last job, late duplicates have had their chance.
        if complete_at is not None and time.monotonic() - complete_at > 1.0:
            break
        time.sleep(0.01)
    finished = not restarted.alive()
    restarted.kill()
    if finished and restarted.result()["status"] not in ("ok", "n/a"):
        return restarted.result()
    distinct, twice = count_log(log)
    recovery_s = time.monotonic() - started
    # Whatever the engine keeps outside the case's folder and database (Celery's queue).
    Child(python, engine, {**config, "phase": "cleanup"}, folder, "w4-cleanup").wait(timeout)
    return {"status": "ok", "lost": W4_JOBS - distinct, "twice": twice,
            "done_at_kill": at_kill[0], "recovery_s": recovery_s,
            "peak_rss_mb": restarted.result().get("peak_rss_mb") if finished else None}


def run_case(python: str, engine: Engine, workload: str, timeout: float,
             recovery: float) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix=f"bench-runs-{engine.name}-{workload}-"))
    db = None
    try:
        if engine.postgres:
            try:
                db = create_database()
            except Exception as exc:
                return {"status": f"no PostgreSQL ({type(exc).__name__})"}
        config = {"workload": workload, "variant": engine.variant, "db": db,
                  "folder": str(folder), "log": str(folder / "jobs.log"), "redis": REDIS_URL}
        if workload == "w4":
            return crash(python, engine, config, folder, timeout, recovery)
        return Child(python, engine, config, folder, workload).wait(timeout)
    finally:
        if db is not None:
            drop_database(db)
        shutil.rmtree(folder, ignore_errors=True)


# -- the table ------------------------------------------------------------------------------

def cell(result: dict[str, Any] | None, key: str, fmt: str, scale: float = 1.0) -> str:
    """A figure, or why there is none: "timeout", "not installed", "error", "n/a"."""
    if result is None:
        return ""
    if result.get("status") != "ok":
        return result.get("status", "?").split(" (")[0].split(":")[0]
    value = result.get(key)
    if value is None:
        return "—"
    return format(value * scale if scale != 1.0 else value, fmt)


def table(rows: list[dict[str, Any]]) -> str:
    base = next((r.get("w1") for r in rows if r["engine"] == "asyncio"), None)
    base_wall = base["wall_s"] if base and base.get("status") == "ok" else None
    lines = [
        "| engine | W1 wall s | W1 / asyncio | W1 peak RSS MB | W1 again s "
        "| W2 enqueued/s | W2 drained/s | W3 µs/step | W4 lost | W4 twice |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        w1, w2, w3, w4 = (row.get(w) for w in WORKLOADS)
        results = [r for r in (w1, w2, w3, w4) if r is not None]
        if results and all(r.get("status") != "ok" for r in results) \
                and len({r["status"].split(" (")[0] for r in results}) == 1:
            # Nothing measured, for one reason: say it once.
            lines.append(f"| {row['label']} | {results[0]['status']} |" + " |" * 8)
            continue
        ratio = cell(w1, "wall_s", ".2f", 1 / base_wall) if base_wall else ""
        step_us = cell(w3, "wall_s", ",.1f", 1e6 / 5_000)
        if w3 and w3.get("status") == "ok" and w3["wall_s"] / 5_000 * 1e6 >= 100:
            step_us = cell(w3, "wall_s", ",.0f", 1e6 / 5_000)
        lines.append(
            f"| {row['label']} | {cell(w1, 'wall_s', '.2f')} | {ratio} "
            f"| {cell(w1, 'peak_rss_mb', '.0f')} | {cell(w1, 'rerun_s', '.2f')} "
            f"| {cell(w2, 'enqueue_per_s', ',.0f')} | {cell(w2, 'drain_per_s', ',.0f')} "
            f"| {step_us} | {cell(w4, 'lost', 'd')} | {cell(w4, 'twice', 'd')} |")
    return "\n".join(lines)


def median_result(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One result for a case run several times: the median of each figure over the runs
    that succeeded (the first failure's status when none did), and how many counted."""
    ok = [r for r in runs if r.get("status") == "ok"]
    if not ok:
        return runs[0]
    merged: dict[str, Any] = {"status": "ok", "runs": len(ok)}
    for key in ok[0]:
        values = [r[key] for r in ok if isinstance(r.get(key), int | float)
                  and not isinstance(r.get(key), bool)]
        if values:
            merged[key] = statistics.median(values)
    return merged


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {"cores": os.cpu_count(), "python": platform.python_version(),
            "load_1_5_15": [round(x, 2) for x in load]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="engines, comma-separated (prefixes: dbos, hokuro)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per case")
    parser.add_argument("--recovery", type=float, default=60.0,
                        help="W4: seconds the restarted program gets to finish the jobs")
    parser.add_argument("--python", action="append", default=[], metavar="NAME=PATH",
                        help="run the engines whose name starts with NAME with PATH")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds: every case runs this many times; the table shows medians")
    parser.add_argument("--against", action="append", default=[], metavar="NAME=SRC",
                        help="also run each hokuro engine from the source tree SRC, "
                             "labelled NAME, in the same rounds")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat takes 1 or more")

    wanted = args.only.split(",") if args.only else None
    workloads = [w for w in args.workloads.split(",") if w]
    pythons = dict(item.split("=", 1) for item in args.python)
    engines = [e for e in ENGINES
               if wanted is None or any(e.name.startswith(w) for w in wanted)]
    # The baseline is measured in the same run whenever W1 is: ratios are from one run.
    if "w1" in workloads and engines and engines[0].name != "asyncio":
        engines.insert(0, ENGINES[0])
    for item in args.against:
        name, _, src = item.partition("=")
        if not name or not Path(src, "hokuro").is_dir():
            parser.error(f"--against {item!r}: give NAME=SRC, SRC a folder holding hokuro/")
        engines = [twin for e in engines for twin in (
            (e, replace(e, name=f"{e.name}@{name}", label=f"{e.label} ({name})",
                        src=str(Path(src).resolve())))
            if e.module == "with_hokuro" else (e,))]

    before = machine()
    print(f"# {before['cores']} cores, Python {before['python']}, "
          f"load average before: {before['load_1_5_15']}", file=sys.stderr)
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for round_ in range(args.repeat):
        for engine in engines:
            python = next((p for n, p in pythons.items() if engine.name.startswith(n)),
                          sys.executable)
            for workload in workloads:
                started = time.monotonic()
                result = run_case(python, engine, workload, args.timeout, args.recovery)
                runs.setdefault((engine.name, workload), []).append(result)
                tag = f" (round {round_ + 1})" if args.repeat > 1 else ""
                print(f"{engine.name:20} {workload}: {json.dumps(result)} "
                      f"({time.monotonic() - started:.0f} s){tag}", file=sys.stderr,
                      flush=True)
    rows = []
    for engine in engines:
        row: dict[str, Any] = {"engine": engine.name, "label": engine.label}
        for workload in workloads:
            cases = runs[(engine.name, workload)]
            row[workload] = cases[0] if args.repeat == 1 else median_result(cases)
            if args.repeat > 1:
                row[f"{workload}_runs"] = cases
        rows.append(row)
    after = machine()
    if args.repeat > 1:
        print(f"Medians of {args.repeat} rounds (the JSON keeps every run).\n")
    print(table(rows))
    print(f"\n{after['cores']} cores, Python {after['python']}; load average (1, 5, 15 min) "
          f"before {before['load_1_5_15']}, after {after['load_1_5_15']}.")
    if args.json:
        args.json.write_text(json.dumps({"machine": {"before": before, "after": after},
                                         "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
