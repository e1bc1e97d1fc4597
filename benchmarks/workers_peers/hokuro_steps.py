"""The steps of bench_workers.py, imported by the bench and by its ``hokuro worker``
processes. The Spot comes from HOKURO_BENCH_WORKERS_DB (a PostgreSQL database URL).

The buelon scenario: per account, ``request`` asks the ads API for a report (a call
through the shared limiter, 50 requests/s over every worker), ``poll`` answers "not ready"
(``Pending``) until the report is ready (three polls), then ``download``, ``transform`` and
``upload`` take their simulated time (WAIT, HOKURO_BENCH_WORKERS_WAIT, 0.2 s). Every
request appends ``<epoch> <account>`` to HOKURO_BENCH_WORKERS_LOG, so the bench checks the
limit and counts executions.
"""

from __future__ import annotations

import asyncio
import os
import time

import hokuro

spot = hokuro.Spot("bench", db=os.environ.get("HOKURO_BENCH_WORKERS_DB") or None,
                   blobs=os.environ.get("HOKURO_BENCH_WORKERS_BLOBS") or None)
REQUESTS_PER_S = 50
api = spot.limiter(name="ads-api", limits=f"{REQUESTS_PER_S}/s", burst=1)
WAIT = float(os.environ.get("HOKURO_BENCH_WORKERS_WAIT", "0.2"))


def _log(line: str) -> None:
    fd = os.open(os.environ["HOKURO_BENCH_WORKERS_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@spot.mark
async def noop(i: int) -> None:
    return None


@spot.mark
async def nap(i: int) -> int:
    await asyncio.sleep(0.1)
    return i


@spot.mark
async def request(account: int) -> dict:
    async with api:
        _log(f"{time.time():.6f} {account}")
    await asyncio.sleep(WAIT)
    # The report is ready 1.5 waits after it was requested: polled at 0, 1 and 2 waits.
    return {"account": account, "ready_at": time.time() + 1.5 * WAIT}


@spot.mark
async def poll(ticket: dict) -> object:
    await asyncio.sleep(WAIT / 10)
    if time.time() < ticket["ready_at"]:
        return hokuro.Pending(after=WAIT)
    return None


@spot.mark
async def download(ticket: dict) -> dict:
    await asyncio.sleep(WAIT)
    return {"account": ticket["account"], "rows": 100}


@spot.mark
def transform(report: dict) -> dict:
    return {**report, "rows": report["rows"] * 2}


@spot.mark
async def upload(report: dict) -> int:
    await asyncio.sleep(WAIT / 2)
    return report["account"]
