"""``hokuro retry``: replay failed tasks after the code was fixed."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict

import click

from ..admin.maintenance import RetryResult
from .app import main
from .options import json_option, open_target, stop, target_options
from .output import Output

# Outcomes that concern a whole function rather than one task: reported once per function.
_PER_FUNCTION = ("not_importable", "other_ledger")


@main.command()
@target_options
@click.option("--fn", metavar="NAME", help="Only failed tasks of this collection.")
@click.option("--error", "fingerprint", metavar="FINGERPRINT",
              help="Only failed tasks with this error fingerprint (see hokuro errors); "
                   "'abandoned' names tasks whose owner died.")
@click.option("--dry-run", is_flag=True,
              help="Import the functions and decode the arguments, but call nothing.")
@json_option
def retry(spot: str, workspace: str | None, blobs: str | None, fn: str | None,
          fingerprint: str | None, dry_run: bool, as_json: bool) -> None:
    """Run failed tasks again, with the arguments recorded for each call.

    Run it from the folder your code runs in: each task's function is imported by the
    import path in its record (module:function), with the current folder first on the
    import path, and called again. A function that cannot be imported is reported by name
    and its tasks skipped; the others are still retried. A task whose arguments were not
    kept (args_limit, store_args=False) is skipped with that reason. Exits with 1 when
    nothing was retried or any task still fails.
    """
    out = Output(as_json)
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
