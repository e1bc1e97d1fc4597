"""Commands about runs: ``runs`` lists them, ``run show`` shows one, ``run cancel`` cancels
one (``retry --run`` lives with ``retry``). The library side is ``hokuro.admin.runs``.

``runs`` and ``run show`` read: they open the ledger read-only and never create, migrate or
write anything; a ledger without runs shows "no runs".
"""

from __future__ import annotations

import json
import time
from typing import Any

import click

from ..admin.runs import (
    STATUS_ORDER,
    CancelReport,
    RunDetail,
    RunRow,
    cancel_run,
    find_run,
    follow_run,
    list_runs,
    run_detail,
    status_counts,
)
from ..errors import AmbiguousRun, RunNotFound
from ..model.jobs import RunRecord, RunStatus
from ..model.readable import relative
from .app import main
from .options import confirm, json_option, open_target, stop, target_options
from .output import Output, stamps, when
from .run_group import RunGroup

_RUN_STATUSES = [str(s) for s in RunStatus]
#: How often ``run show --follow`` reads the run again, in seconds.
FOLLOW_EVERY = 1.0


def id_argument(fn: Any) -> Any:
    return click.argument("run_ref", metavar="ID")(fn)


def resolve_run(ledger: Any, ref: str, out: Output) -> RunRecord:
    """The run ``ref`` names (id, id prefix or name); when none or several, say so, exit 1."""
    try:
        return find_run(ledger, ref)
    except AmbiguousRun as exc:
        if out.as_json:
            out.json({"error": "ambiguous", "run": ref, "candidates": [
                {"id": r.id, "name": r.name, "status": r.status} for r in exc.candidates]})
        out.note(str(exc))
    except RunNotFound as exc:
        if out.as_json:
            out.json({"error": "not_found", "run": ref})
        out.note(str(exc))
    stop(1)


# -- hokuro runs -------------------------------------------------------------------------------

@main.command("runs")
@target_options
@click.option("--status", type=click.Choice(_RUN_STATUSES), help="Only runs with this status.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=0),
              metavar="N", help="Show at most this many runs; 0 shows all.")
@json_option
def runs_cmd(spot: str, workspace: str | None, blobs: str | None, status: str | None,
             limit: int, as_json: bool) -> None:
    """List runs, newest first: id, name, status, jobs done of all, failed, waiting, when
    it started and when it finished (or was last updated, while it runs).

    A run is one spot.map or spot.run: hokuro run show SPOT ID shows one, by the first
    characters of its id or by its name.
    """
    out = Output(as_json)
    with open_target(spot, workspace, blobs, read_only=True) as service:
        rows = list_runs(service.ledger, status=status, limit=limit or None)
    if as_json:
        out.json([_row_json(row) for row in rows])
        return
    if not rows:
        out.note("no runs" if status is None else f"no {status} runs")
        return
    out.table(["run", "name", "status", "done/total", "failed", "waiting", "started",
               "finished/updated"],
              [[row.record.id[:8], row.record.name, row.record.status,
                f"{row.count('done')}/{row.total}{'' if row.record.inputs_done else '+'}",
                row.count("failed"), row.count("waiting"), when(row.record.created_at),
                _ended(row.record)] for row in rows])


def _ended(record: RunRecord) -> str:
    if record.finished_at is not None:
        return when(record.finished_at)
    return f"{when(record.updated_at)} (updated)"


def _run_json(record: RunRecord) -> dict[str, Any]:
    return {"id": record.id, "name": record.name, "status": str(record.status),
            "cursor": record.cursor, "inputs_done": record.inputs_done, "error": record.error,
            **stamps(created_at=record.created_at, updated_at=record.updated_at,
                     finished_at=record.finished_at)}


def _counts_json(counts: dict[str, int]) -> dict[str, int]:
    return {"total": sum(counts.values()), **{str(s): counts.get(s, 0) for s in STATUS_ORDER}}


def _row_json(row: RunRow) -> dict[str, Any]:
    return {**_run_json(row.record), "jobs": _counts_json(row.counts)}


# -- hokuro run show / cancel ------------------------------------------------------------------

@main.group("run", cls=RunGroup)
def run_group() -> None:
    """Run a script (hokuro run FILE), or show or cancel one run (hokuro runs SPOT lists
    them).

    ID is the run's id, its first characters, or its name (the newest run of that name).
    """


@run_group.command("show")
@target_options
@id_argument
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=0),
              metavar="N", help="List at most this many failures and waiting jobs.")
@click.option("--follow", "-f", is_flag=True,
              help="Show the run again every second until it ends (Ctrl-C stops); with "
                   "--json, one JSON document per line each time it changed.")
@json_option
def show_cmd(spot: str, workspace: str | None, blobs: str | None, run_ref: str, limit: int,
             follow: bool, as_json: bool) -> None:
    """Show one run: its jobs per step and status (done, running, waiting, failed,
    cancelled, blocked, queued), its failures (job, step, first line of the error), the
    jobs waiting to be polled again and when they wake, and how far its input was read.
    """
    out = Output(as_json)
    with open_target(spot, workspace, blobs, read_only=True) as service:
        record = resolve_run(service.ledger, run_ref, out)
        if not follow:
            detail = run_detail(service.ledger, record, service.codec, limit=limit)
            if as_json:
                out.json(_detail_json(detail, time.time()))
            else:
                _print_detail(out, detail, time.time())
            return
        follow_detail(out, service.ledger, service.codec, record, limit=limit)


def follow_detail(out: Output, ledger: Any, codec: Any, record: RunRecord, *, limit: int
                  ) -> None:
    """Show a run again every second until it ends (``run show --follow``, ``submit
    --follow``); Ctrl-C stops watching, not the run."""
    as_json = out.as_json
    last, printed = None, False
    try:
        for detail in follow_run(ledger, record.id, codec, every=FOLLOW_EVERY,
                                 limit=limit):
            now = time.time()
            shown = _detail_json(detail, now)
            changed = _without_clock(shown) != last
            last = _without_clock(shown)
            if as_json:
                if changed:
                    click.echo(json.dumps(shown, ensure_ascii=False, default=repr))
                continue
            if out.terminal:
                out.console.clear()
            elif not changed:
                continue
            elif printed:
                out.line()
            _print_detail(out, detail, now)
            printed = True
    except KeyboardInterrupt:
        return  # Ctrl-C ends --follow; the run itself goes on


def _without_clock(shown: dict[str, Any]) -> str:
    """A detail's JSON without the parts that change with the clock alone."""
    return json.dumps({**shown, "waiting": [{**w, "in_seconds": None} for w in shown["waiting"]],
                       "next_wake_in_seconds": None}, sort_keys=True, default=repr)


def _detail_json(detail: RunDetail, now: float) -> dict[str, Any]:
    return {
        **_run_json(detail.record), "jobs": _counts_json(detail.counts),
        "steps": [{"node": s.node, "step": s.step, **_counts_json(s.counts)}
                  for s in detail.steps],
        "failures": [{"job_id": j.job_id, "step": j.step, "attempts": j.attempts,
                      "error": j.error} for j in detail.failures],
        "waiting": [{"job_id": j.job_id, "step": j.step, **stamps(wakes_at=j.run_after),
                     "in_seconds": round(j.run_after - now, 3)} for j in detail.waiting],
        **stamps(next_wake=detail.next_wake),
        "next_wake_in_seconds": None if detail.next_wake is None
        else round(detail.next_wake - now, 3),
        "plan": detail.plan,
    }


def _print_detail(out: Output, detail: RunDetail, now: float) -> None:
    record = detail.record
    done = detail.counts.get("done", 0)
    read = (f"{record.cursor} inputs read, to the end" if record.inputs_done
            else f"{record.cursor} inputs read so far, more to read")
    wake = None
    if detail.next_wake is not None and record.status in (RunStatus.RUNNING,
                                                           RunStatus.SUBMITTED):
        wake = ("now" if detail.next_wake <= now  # (a new job's run_after is 0)
                else f"{when(detail.next_wake)} ({relative(detail.next_wake, now)})")
    out.fields([
        ("id", record.id), ("name", record.name), ("status", record.status),
        ("jobs", f"{done} of {detail.total} done"), ("input", read),
        ("started", when(record.created_at)), ("updated", when(record.updated_at)),
        ("finished", when(record.finished_at) if record.finished_at else None),
        ("next due", wake), ("note", record.error),
    ], title=f"run {record.id[:8]} {record.name}")
    if not detail.steps:
        out.note("no jobs yet")
        return
    statuses = [str(s) for s in STATUS_ORDER]
    out.table(["step", "node", "total", *statuses],
              [[s.step, s.node, sum(s.counts.values()), *(s.counts.get(c, 0) for c in statuses)]
               for s in detail.steps], title="jobs per step")
    failed = detail.counts.get("failed", 0)
    if detail.failures:
        more = f", the first {len(detail.failures)}" if failed > len(detail.failures) else ""
        out.table(["job", "step", "attempts", "error"],
                  [[j.job_id, j.step, j.attempts, (j.error or "")[:120]]
                   for j in detail.failures], title=f"failures ({failed}{more})")
    waiting = detail.counts.get("waiting", 0)
    if detail.waiting:
        more = f", the first {len(detail.waiting)} to wake" \
            if waiting > len(detail.waiting) else ""
        out.table(["job", "step", "wakes", "in"],
                  [[j.job_id, j.step, when(j.run_after), relative(j.run_after, now)]
                   for j in detail.waiting], title=f"waiting ({waiting}{more})")
    if failed:
        out.note(f"retry the failures after a fix: hokuro retry SPOT --run {record.id[:8]}")


@run_group.command("cancel")
@target_options
@id_argument
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@json_option
def cancel_cmd(spot: str, workspace: str | None, blobs: str | None, run_ref: str, yes: bool,
               as_json: bool) -> None:
    """Cancel a run: every job not done is cancelled, running ones too, and the run is
    never resumed.

    A process running the run stops claiming within a second; whatever its running jobs
    finish later is not written to them (their tasks' results are still kept, for reuse).
    Done jobs stay done. Exits with 1 when the run had ended with nothing left to cancel.
    """
    out = Output(as_json)
    with open_target(spot, workspace, blobs, read_only=False) as service:
        ledger = service.ledger
        record = resolve_run(ledger, run_ref, out)
        row = RunRow(record, status_counts(ledger, record.id))
        if row.open or record.status not in (RunStatus.DONE, RunStatus.FAILED,
                                             RunStatus.CANCELLED):
            confirm(f"Cancel run {record.id[:8]} ({record.name}, {record.status}): "
                    f"{row.open} of {row.total} jobs not done yet?", yes)
        report = cancel_run(ledger, record, owner=service.spot.owner_token(),
                            clock=service.spot.clock, lease=service.spot.lease)
    if as_json:
        out.json(_cancel_json(report))
    elif report.nothing_to_do:
        out.note(f"run {record.id[:8]} ({record.name}) is {record.status} already: "
                 "nothing to cancel")
    else:
        out.line(f"cancelled run {record.id[:8]} ({record.name}): {report.cancelled} jobs "
                 "cancelled")
        if report.still_open:
            out.note(f"{report.still_open} jobs were added meanwhile and are not cancelled; "
                     "run hokuro run cancel again")
    if report.nothing_to_do or report.still_open:
        stop(1)


def _cancel_json(report: CancelReport) -> dict[str, Any]:
    return {**_run_json(report.run), "open_before": report.open_before,
            "cancelled": report.cancelled, "still_open": report.still_open,
            "nothing_to_do": report.nothing_to_do}
