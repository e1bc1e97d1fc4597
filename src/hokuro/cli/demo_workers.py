"""``hokuro demo --workers N``: a pipeline run by N worker processes on the embedded Spot.

Each account lists its reports (a fan-out: one chain per report); each report is requested,
polled until ready (``Pending``: the job waits without holding a slot, any worker picks it
up again), and downloaded; one report expires once and is asked for again (``Reset``). The
run is submitted, N local worker processes serve it with a live display per step, and the
workers are stopped cleanly when it ends. What each worker did is read from the ledger.

The steps keep their state where every worker process sees it (the clock, a marker file),
never in a process's memory.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console

ACCOUNTS = ["acme", "globex", "initech", "umbrella", "hooli", "stark"]
REPORTS = ["clicks", "costs", "leads"]
#: The report that expires once (and is asked for again).
EXPIRES = "globex/costs"


def tour_workers(spot: Any, console: Console, workers: int, latency: float) -> dict[str, Any]:
    import hokuro
    from hokuro.runs.executor import Options
    from hokuro.runs.local_workers import LocalWorkers
    from hokuro.runs.progress import RunProgress, wanted
    from hokuro.runs.submitting import submit

    marker = Path(spot.workspace) / f"demo-expired-{os.getpid()}"

    @spot.mark(name="demo.list_reports", version="1")
    def list_reports(account: str) -> list[str]:
        return [f"{account}/{report}" for report in REPORTS]

    @spot.mark(name="demo.request", version="1")
    def request(report: str) -> dict:
        time.sleep(latency / 4)
        return {"report": report, "ready_at": time.time() + latency, "by": os.getpid()}

    @spot.mark(name="demo.poll", version="1")
    def poll(ticket: dict) -> Any:
        if ticket["report"] == EXPIRES and not marker.exists():
            marker.write_text("expired once")
            return hokuro.Reset("the report expired before it was ready")
        if time.time() < ticket["ready_at"]:
            return hokuro.Pending(after=latency / 3)  # not ready: free the slot, ask later
        return None  # ready: pass the ticket on

    @spot.mark(name="demo.download", version="1")
    def download(ticket: dict) -> dict:
        time.sleep(latency / 4)
        return {"report": ticket["report"], "rows": len(ticket["report"]) * 10,
                "by": os.getpid()}

    plan = hokuro.Plan("demo-workers")
    reports = plan.call(list_reports, plan.input())
    plan.each(reports, request | poll | download)

    console.rule(f"{workers} worker processes")
    console.print(f"{len(ACCOUNTS)} accounts x {len(REPORTS)} reports: list -> (request -> "
                  f"poll until ready -> download) per report, on {workers} local worker "
                  "processes\n")
    started = time.perf_counter()
    run = submit(spot, plan, over=ACCOUNTS, name=None, options=Options(concurrency=8))
    pool = LocalWorkers(spot, workers, concurrency=8, plans={run.id: plan}).start()
    try:
        if wanted(None):
            RunProgress(run.id, spot.ledger, run.tally).watch(run)
        else:
            run.wait()
    finally:
        codes = pool.stop()
        reset = marker.exists()
        marker.unlink(missing_ok=True)
    elapsed = time.perf_counter() - started
    summary = run.refresh().summary()
    mine = {str(p.pid) for p in pool.processes}
    rows = [w for w in spot.ledger.list_workers() if w.id.split("|")[1] in mine]
    console.print(f"run {run.id[:8]} {run.status}: {summary['done']} jobs done, "
                  f"{summary['waiting']} waiting, {summary['failed']} failed, in "
                  f"[cyan]{elapsed:.2f} s[/]")
    for row in sorted(rows, key=lambda w: w.pid):
        console.print(f"  worker pid {row.pid}: {row.done} job steps ended (polls count), "
                      f"{row.status}")
    console.print(f"workers stopped cleanly: [green]{all(c == 0 for c in codes)}[/] "
                  f"(exit codes {codes})")
    steps = summary["steps"]
    downloads = sum(c.get("done", 0) for node, c in steps.items() if node.endswith("download"))
    console.print(f"{downloads} reports downloaded; {EXPIRES} expired once and was asked for "
                  f"again: {reset}")
    return {"workers": {"processes": workers, "status": str(run.status),
                        "jobs": summary["jobs"], "done": summary["done"],
                        "downloads": downloads, "reset": reset, "seconds": round(elapsed, 3),
                        "jobs_per_worker": sorted(w.done for w in rows),
                        "exit_codes": codes}}
