"""Accuracy: four processes of three threads each hammer one limiter through a shared store.

Each thread takes grants with ``Limiter.acquire`` (so the threads of a process wait in its
line, and the processes contend in the store) and records, per grant, its place (the store's
clock at the decision plus the wait it was given: when the grant may be used) and the local
time at which ``acquire`` returned. The test merges them and proves that no window of
one period ever holds more than count + burst places, that no caller went before its place,
and that the processes together got at least 95% of the configured rate.

This file is also the worker: ``python test_limits_accuracy.py <spec> <prefix> <name> ...``.
"""

from __future__ import annotations

import bisect
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

RATE, PERIOD, BURST = 20, 1.0, 5  # "20/s", burst 5
WORKERS = 4
THREADS = 3  # per worker process
RUN_SECONDS = 3.0
START_DELAY = 0.2  # after every process has said it is ready (a loaded machine starts them slowly)


def _hammer(spec: str, prefix: str, name: str, go: str, out: str) -> None:
    import threading

    from hokuro.store.limits import Limiter, LimitStore, Verdict, open_store

    class Recording(LimitStore):
        """The real store, noting where each thread's granted place lies on the store's
        clock."""

        def __init__(self, inner: LimitStore) -> None:
            self.inner, self.kind, self.local = inner, inner.kind, threading.local()

        def decide(self, keys: Sequence[str], increments: Sequence[float],
                   tolerances: Sequence[float], horizon: float,
                   ticket: Sequence[float] | None = None) -> Verdict:
            verdict = self.inner.decide(keys, increments, tolerances, horizon, ticket)
            if verdict.granted:  # a waiter is refused while its place is far off
                self.local.place = verdict.now + verdict.wait
            return verdict

        def held(self, keys):
            return self.inner.held(keys)

        def hold(self, keys, tolerances, seconds):
            self.inner.hold(keys, tolerances, seconds)

        def refund(self, keys, increments, receipts):
            return self.inner.refund(keys, increments, receipts)

        def now(self) -> float:
            return self.inner.now()

    if spec.startswith("redis://"):
        from hokuro.store.limits.redis import RedisStore

        inner: LimitStore = RedisStore(spec, prefix=prefix)
    else:
        inner = open_store(spec)
    store = Recording(inner)
    limiter = Limiter(name, f"{RATE}/s", burst=BURST, store=store)
    inner.now()  # stores connect on first use: connect before the run, not in it
    Path(out + ".ready").touch()
    while not Path(go).exists():  # the common start, written once every process is ready
        time.sleep(0.01)
    start_at, stop_at = json.loads(Path(go).read_text())
    grants: list[tuple[float, float]] = []

    def hammer() -> None:
        time.sleep(max(0.0, start_at - time.time()))
        while time.time() < stop_at:
            limiter.acquire()
            grants.append((store.local.place, time.time()))

    threads = [threading.Thread(target=hammer) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    inner.close()
    Path(out).write_text(json.dumps(grants))


def _most_in_one_period(times: list[float]) -> int:
    times = sorted(times)
    # a closed window [t, t + period], widened by a microsecond for float rounding
    return max(bisect.bisect_right(times, t + PERIOD + 1e-6) - i for i, t in enumerate(times))


def _run(tmp_path: Path, spec: str, prefix: str = "") -> None:
    name = f"accuracy-{time.time_ns()}"
    go = tmp_path / "go.json"
    outs = [tmp_path / f"grants-{i}.json" for i in range(WORKERS)]
    procs = [subprocess.Popen([sys.executable, __file__, spec, prefix, name, str(go), str(out)])
             for out in outs]
    deadline = time.monotonic() + 60
    while not all(Path(f"{out}.ready").exists() for out in outs):
        assert time.monotonic() < deadline, "the worker processes did not start in 60 s"
        assert all(proc.poll() is None for proc in procs), "a worker process died at start"
        time.sleep(0.01)
    start_at = time.time() + START_DELAY
    stop_at = start_at + RUN_SECONDS
    tmp = tmp_path / "go.tmp"
    tmp.write_text(json.dumps([start_at, stop_at]))
    tmp.rename(go)  # whole or absent: a worker never reads half of it
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    grants = [tuple(g) for out in outs for g in json.loads(out.read_text())]
    places = [place for place, _ in grants]

    most = _most_in_one_period(places)
    assert most <= RATE + BURST, f"{most} grants in one period; the limit allows {RATE + BURST}"

    early = max(place - returned for place, returned in grants)
    assert early < 0.002, f"a caller went {early * 1000:.1f} ms before its place"

    in_run = sum(start_at <= returned <= stop_at for _, returned in grants)
    assert in_run >= 0.95 * RATE * RUN_SECONDS, (
        f"{in_run} grants in {RUN_SECONDS} s, below 95% of {RATE}/s")
    every_worker = {out.name for out in outs if json.loads(out.read_text())}
    assert len(every_worker) == WORKERS
    late = max(returned - place for place, returned in grants)
    kind = "sqlite" if spec.endswith(".db") else spec.split(":")[0]
    print(f"{kind}: {len(grants)} grants, at most {most} in one period, "
          f"{in_run} in the {RUN_SECONDS} s run, callers at most {late * 1000:.1f} ms late")


@pytest.mark.slow
def test_four_processes_share_a_sqlite_limit_exactly(tmp_path):
    _run(tmp_path, str(tmp_path / "limits.db"))


@pytest.mark.slow
@pytest.mark.redis
def test_four_processes_share_a_redis_limit_exactly(tmp_path, redis_url, redis_prefix):
    _run(tmp_path, redis_url, redis_prefix)


@pytest.mark.slow
@pytest.mark.postgres
def test_four_processes_share_a_postgres_limit_exactly(tmp_path, pg_url):
    _run(tmp_path, pg_url)


if __name__ == "__main__":
    _spec, _prefix, _name, _go, _out = sys.argv[1:]
    _hammer(_spec, _prefix, _name, _go, _out)
