"""``hokuro demo``: hokuro working on the embedded default, in the current folder.

The tour: a batch of slow "API calls" computed, then answered from records, with a failure
recorded; then runs — a batch with ``spot.map``, a pipeline that polls with ``Pending`` and
restarts an item with ``Reset``, and a run stopped by Ctrl-C that resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from .app import main

ITEMS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
         "india", "juliet", "kilo", "broken"]
ACCOUNTS = ["acme", "globex", "initech", "umbrella"]
#: Items of the run that is stopped and resumed, and the item it is stopped at.
RESUME_ITEMS, STOP_AT = 20, 12


@main.command()
@click.option("--items", default=len(ITEMS), show_default=True,
              help="How many simulated API calls to make.")
@click.option("--latency", default=0.4, show_default=True,
              help="Seconds each simulated API call takes.")
@click.option("--concurrency", "workers", default=6, show_default=True,
              help="Calls run at once.")
@click.option("--workers", "processes", default=0, show_default=True,
              type=click.IntRange(min=0),
              help="Instead of the tour: a pipeline (fan-out, polling, a reset) run by this "
                   "many local worker processes.")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON summary of the two runs instead of the tour.")
def demo(items: int, latency: float, workers: int, processes: int, as_json: bool) -> None:
    """Show hokuro on slow "API calls": compute, reuse, record a failure; then runs: a
    batch with spot.map, a pipeline that polls (Pending) and restarts an item (Reset),
    and a run stopped by Ctrl-C that resumes where it stopped. With --workers N: a
    pipeline submitted to N worker processes, shown live, the workers then stopped.

    Works in ./.hokuro (Spot "demo") of the current folder; run it in an empty one.
    """
    import hokuro

    # quiet: the same tour runs for --json, only its prose is not printed
    console = Console(quiet=as_json)
    if processes:
        from .demo_workers import tour_workers

        with hokuro.Spot("demo") as spot:
            figures = tour_workers(spot, console, processes, latency)
        if as_json:
            click.echo(json.dumps(figures, indent=2, default=str))
        return
    timings: dict[str, dict[str, object]] = {}
    names = (ITEMS * (items // len(ITEMS) + 1))[:items]
    with hokuro.Spot("demo") as spot:

        @spot.mark(name="demo.call_api", version="1")
        def call_api(item: str, ctx: hokuro.Context) -> dict:
            """A stand-in for a slow, metered API call."""
            ctx.logger.info("calling the API for %s", item)
            time.sleep(latency)
            if item == "broken":
                raise ValueError(f"the API refused {item!r}: 400 Bad Request")
            return {"item": item, "score": round(random.random(), 3), "at": time.time()}

        def run(label: str) -> dict[str, object]:
            started = time.perf_counter()
            outcomes: dict[str, object] = {}

            def one(item: str) -> tuple[str, object]:
                try:
                    return item, call_api(item)
                except Exception as exc:  # the demo shows failures, it does not stop on them
                    return item, exc

            with ThreadPoolExecutor(workers) as pool:
                outcomes = dict(pool.map(one, names))
            elapsed = time.perf_counter() - started
            ok = sum(not isinstance(v, Exception) for v in outcomes.values())
            timings[label.split(" (")[0].replace(" ", "_")] = {
                "calls": len(names), "ok": ok, "failed": len(names) - ok,
                "seconds": round(elapsed, 3)}
            console.print(f"[bold]{label}[/]: {len(names)} calls, {ok} ok, "
                          f"{len(names) - ok} failed, in [cyan]{elapsed:.3f} s[/]")
            return outcomes

        console.rule("hokuro demo")
        console.print(f"Each call sleeps {latency} s like a slow API; {workers} run at once.\n")
        first = run("first run (computing)")
        second = run("second run (answered from records)")
        same = all(first[k] == second[k] for k in first if not isinstance(first[k], Exception))
        console.print(f"results of both runs identical: [green]{same}[/]\n")

        table = Table(title="records")
        for column in ("item", "status", "attempts", "duration", "result / error"):
            table.add_column(column)
        for item in dict.fromkeys(names):
            task = call_api.task(item)
            shown = str(task.result) if task.status == "done" else str(task.error)
            duration = f"{task.duration:.3f} s" if task.duration is not None else "-"
            table.add_row(item, task.status, str(task.attempts), duration, shown[:60])
        console.print(table)

        failed = call_api.task("broken")
        console.print("\n[bold]the failure is recorded, not cached:[/] the next call runs again")
        console.print(f"  error: {failed.error}")
        console.print(f"  log:   {failed.log.strip()}")
        stats = spot.stats()
        console.print(f"\n[bold]stats[/]: {stats['counts']}")
        console.print("\n[bold]where the files live[/]")
        console.print(f"  ledger: {spot.ledger.describe()}")
        console.print(f"  blobs:  {spot.blobs.describe()}")
        console.print(f"  (in {Path.cwd()})")
        runs = tour_runs(spot, console, latency, workers)
        console.print("\n[bold]look around[/] (from that folder): hokuro list demo, "
                      "hokuro errors demo, hokuro show demo <key prefix>, hokuro stats demo, "
                      "hokuro runs demo, hokuro run show demo demo-reports")
        if as_json:
            click.echo(json.dumps({**timings, "identical": same, "stats": stats, **runs,
                                   "ledger": spot.ledger.describe(),
                                   "blobs": spot.blobs.describe()}, indent=2,
                                  default=str))  # a failed item says why, as text


def tour_runs(spot: Any, console: Console, latency: float, workers: int) -> dict[str, Any]:
    """Runs: a batch, a pipeline that polls and resets, a run stopped and resumed."""
    import hokuro

    figures: dict[str, Any] = {}
    # -- a batch ----------------------------------------------------------------------------
    @spot.mark(name="demo.fetch_page", version="1")
    async def fetch_page(n: int) -> dict:
        """An async step: every call waits on the same event loop, no thread each."""
        await asyncio.sleep(latency)
        return {"page": n, "words": 100 + n}

    console.rule("runs")
    pages, at_once = 2 * workers * 2, 2 * workers
    for label in ("batch", "batch again"):
        started = time.perf_counter()
        run = spot.map(fetch_page, range(pages), concurrency=at_once, run="demo-pages",
                       progress=False)
        summary = run.summary()
        elapsed = time.perf_counter() - started
        console.print(f"[bold]{label}[/] (spot.map over {pages} pages, {at_once} at once): "
                      f"{summary['done']} done, {summary['reused']} reused, in "
                      f"[cyan]{elapsed:.3f} s[/] (run {run.id[:8]})")
        figures[label.replace(" ", "_")] = {"done": summary["done"],
                                            "reused": summary["reused"],
                                            "seconds": round(elapsed, 3)}

    # -- a pipeline that polls and resets ---------------------------------------------------
    requested: dict[str, int] = {}
    checks: dict[str, int] = {}

    @spot.mark(name="demo.request_report", version="1")
    def request_report(account: str) -> str:
        requested[account] = requested.get(account, 0) + 1
        time.sleep(latency / 4)
        return f"{account}-report-{requested[account]}"

    @spot.mark(name="demo.report_status", version="1")
    def report_status(report: str) -> Any:
        checks[report] = checks.get(report, 0) + 1
        if report == "globex-report-1":
            return hokuro.Reset("the report expired")  # ask for a new report
        if checks[report] < 3:
            return hokuro.Pending(after=latency / 4)  # not ready: ask again later
        return None  # ready: pass the report on

    @spot.mark(name="demo.download", version="1")
    def download(report: str) -> dict:
        time.sleep(latency / 4)
        return {"report": report, "rows": len(report)}

    started = time.perf_counter()
    run = spot.run(request_report | report_status | download, over=ACCOUNTS,
                   run="demo-reports", progress=False)
    summary = run.summary()
    elapsed = time.perf_counter() - started
    console.print(f"\n[bold]pipeline[/] request_report | report_status | download over "
                  f"{len(ACCOUNTS)} accounts: {summary['done']} jobs done, "
                  f"{summary['polls']} polls (Pending), {summary['resets']} reset, in "
                  f"[cyan]{elapsed:.3f} s[/]")
    for account, outcome in zip(ACCOUNTS, run.results(), strict=True):
        console.print(f"  {account:<9} -> {outcome}")
    figures["pipeline"] = {"jobs": summary["jobs"], "done": summary["done"],
                           "polls": summary["polls"], "resets": summary["resets"],
                           "results": run.results()}

    # -- a run stopped by Ctrl-C, then resumed ------------------------------------------------
    calls: list[int] = []
    first_pass = [True]

    @spot.mark(name="demo.convert", version="1")
    def convert(n: int) -> int:
        calls.append(n)
        time.sleep(latency / 10)
        if n == STOP_AT and first_pass[0]:
            first_pass[0] = False
            _press_ctrl_c()
        return n * n

    console.print(f"\n[bold]resume[/]: spot.map over {RESUME_ITEMS} items, Ctrl-C at item "
                  f"{STOP_AT}, then the same call again")
    try:
        spot.map(convert, range(RESUME_ITEMS), concurrency=4, run="demo-resume",
                 progress=False)
        stopped = None
        console.print("  nothing to stop: every item was done by an earlier demo here")
    except KeyboardInterrupt:
        (stopped,) = [r for r in spot.ledger.list_runs(limit=5, status="interrupted")
                      if r.name == "demo-resume"][:1]
        before = sum(n for (_, s), n in spot.ledger.run_counts(stopped.id).items()
                     if s == "done")
        console.print(f"  stopped: run {stopped.id[:8]} is interrupted with {before} of "
                      f"{RESUME_ITEMS} items done")
    ran_before = len(calls)
    run = spot.map(convert, range(RESUME_ITEMS), concurrency=4, run="demo-resume",
                   progress=False)
    ran_now = len(calls) - ran_before
    same = stopped is not None and run.id == stopped.id
    console.print(f"  again: run {run.id[:8]} {'resumed' if same else 'ran'}: {ran_now} "
                  f"items ran now, {RESUME_ITEMS - ran_now} were done already; status "
                  f"{run.status}")
    figures["resume"] = {"resumed": same, "ran_again": ran_now, "status": str(run.status)}
    return figures


def _press_ctrl_c() -> None:
    """Stop the run as a person would, with Ctrl-C: the run's event loop turns it into a
    clean stop (running steps finish). Without that loop in the main thread, the step
    raises KeyboardInterrupt itself."""
    handler = signal.getsignal(signal.SIGINT)
    handler = getattr(handler, "func", handler)  # asyncio.run installs a partial
    if isinstance(getattr(handler, "__self__", None), asyncio.Runner) \
            and threading.current_thread() is not threading.main_thread():
        signal.raise_signal(signal.SIGINT)
        return
    raise KeyboardInterrupt
