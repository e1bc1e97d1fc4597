"""``hokuro demo``: hokuro working on the embedded default, in the current folder."""

from __future__ import annotations

import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from .app import main

ITEMS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
         "india", "juliet", "kilo", "broken"]


@main.command()
@click.option("--items", default=len(ITEMS), show_default=True,
              help="How many simulated API calls to make.")
@click.option("--latency", default=0.4, show_default=True,
              help="Seconds each simulated API call takes.")
@click.option("--workers", default=6, show_default=True, help="Calls run at once.")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON summary of the two runs instead of the tour.")
def demo(items: int, latency: float, workers: int, as_json: bool) -> None:
    """Show hokuro on a batch of slow "API calls": compute, reuse, record a failure.

    Works in ./.hokuro (Spot "demo") of the current folder; run it in an empty one.
    """
    import hokuro

    # quiet: the same tour runs for --json, only its prose is not printed
    console = Console(quiet=as_json)
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
        console.print("\n[bold]look around[/] (from that folder): hokuro list demo, "
                      "hokuro errors demo, hokuro show demo <key prefix>, hokuro stats demo")
        if as_json:
            click.echo(json.dumps({**timings, "identical": same, "stats": stats,
                                   "ledger": spot.ledger.describe(),
                                   "blobs": spot.blobs.describe()}, indent=2))
