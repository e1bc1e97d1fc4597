"""``hokuro retry``: replay failed tasks after the code was fixed, or a run's failed jobs."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict

import click

from ..admin.maintenance import MaintenanceService, RetryResult
from ..admin.runs import retry_run
from .app import main
from .options import json_option, open_target, stop, target_options
from .output import Output
from .runs import resolve_run

# Outcomes that concern a whole function rather than one task: reported once per function.
_PER_FUNCTION = ("not_importable", "other_ledger")


@main.command()
@target_options
@click.option("--fn", metavar="NAME", help="Only failed tasks of this collection.")
@click.option("--error", "fingerprint", metavar="FINGERPRINT",
              help="Only failed tasks with this error fingerprint (see hokuro errors); "
                   "'abandoned' names tasks whose owner died.")
@click.option("--run", "run_ref", metavar="ID",
              help="Retry the failed jobs of this run (its id, first characters of its id, "
                   "or name) from their failed step, and run it to its end here.")
@click.option("--concurrency", default=32, show_default=True, type=click.IntRange(min=1),
              metavar="N", help="With --run: how many jobs run at once.")
@click.option("--dry-run", is_flag=True,
              help="Import the functions and decode the arguments, but call nothing.")
@json_option
def retry(spot: str, workspace: str | None, blobs: str | None, fn: str | None,
          fingerprint: str | None, run_ref: str | None, concurrency: int, dry_run: bool,
          as_json: bool) -> None:
    """Run failed tasks again, with the arguments recorded for each call.

    Run it from the folder your code runs in: each task's function is imported by the
    import path in its record (module:function), with the current folder first on the
    import path, and called again. A function that cannot be imported is reported by name
    and its tasks skipped; the others are still retried. A task whose arguments were not
    kept (args_limit, store_args=False) is skipped with that reason. The items a stage
    failed on (collections stage:NAME) are run again through their stage, a batch per
    stage, and marked done when they pass. Exits with 1 when nothing was retried or any
    task still fails.

    With --run, the failed jobs of that run are queued again from the step that failed
    (with the jobs their failures cancelled), the run's steps are imported by the import
    paths its plan recorded, and the run goes on in this process until it ends; the
    summary is printed. Exits with 1 when the run had nothing to retry or still has
    failures.
    """
    out = Output(as_json)
    if run_ref is not None:
        if fn is not None or fingerprint is not None:
            raise click.UsageError("--run retries a whole run's failures; it does not take "
                                   "--fn or --error")
        with open_target(spot, workspace, blobs, read_only=False) as service:
            _retry_run(service, run_ref, concurrency, dry_run, out)
        return
    results: list[RetryResult] = []
    with open_target(spot, workspace, blobs, read_only=False) as service:
        for result in service.retry_failed(fn=fn, fingerprint=fingerprint, dry_run=dry_run):
            results.append(result)
            if not as_json and result.outcome not in _PER_FUNCTION:
                _say(out, result)
    counts = Counter(r.outcome for r in results)
    if as_json:
        out.json({"dry_run": dry_run, "summary": dict(counts),
                  "results": [asdict(r) for r in results]})
    else:
        unimportable: dict[str, list[RetryResult]] = {}
        for result in results:
            if result.outcome in _PER_FUNCTION:
                unimportable.setdefault(result.detail or "", []).append(result)
        for detail, skipped in unimportable.items():
            out.note(f"skipped {len(skipped)} tasks of {skipped[0].fn}: {detail}")
        if results:
            out.line(", ".join(f"{n} {outcome.replace('_', ' ')}"
                               for outcome, n in sorted(counts.items())))
    if not results:
        out.note("no failed tasks to retry")
        stop(1)
    wanted = "would_retry" if dry_run else "done"
    if any(r.outcome != wanted for r in results):
        stop(1)


def _say(out: Output, result: RetryResult) -> None:
    moved = f" (now task {result.new_key[:12]})" if result.new_key else ""
    detail = f": {result.detail}" if result.detail else ""
    out.line(f"{result.outcome.replace('_', ' '):<14} {result.key[:12]}  {result.fn}"
             f"{moved}{detail}")


def _retry_run(service: MaintenanceService, run_ref: str, concurrency: int, dry_run: bool,
               out: Output) -> None:
    record = resolve_run(service.ledger, run_ref, out)
    report = retry_run(service.ledger, record, concurrency=concurrency,
                       progress=None if not out.as_json else False, dry_run=dry_run)
    summary = report.run.summary() if report.run is not None else None
    if out.as_json:
        out.json({"run": record.id, "name": record.name, "dry_run": dry_run,
                  "failed": report.failed, "requeued": len(report.requeued),
                  "steps": report.steps, "summary": summary})
    elif report.nothing_to_do:
        out.note(f"run {record.id[:8]} ({record.name}) has no failed or unfinished jobs "
                 "to retry")
    elif summary is None:
        out.line(f"would retry {report.failed} failed jobs of run {record.id[:8]} "
                 f"({record.name}) with {', '.join(report.steps)}")
    else:
        out.line(f"run {record.id[:8]} ({record.name}) {summary['status']}: "
                 f"{len(report.requeued)} jobs queued again; "
                 + ", ".join(f"{summary[k]} {k}" for k in
                             ("jobs", "done", "reused", "failed", "retried", "cancelled",
                              "waiting")))
        if summary["failed"]:
            out.note(f"still failing: hokuro run show SPOT {record.id[:8]}")
    if report.nothing_to_do or (summary is not None and (summary["failed"] or summary[
            "status"] != "done")):
        stop(1)
