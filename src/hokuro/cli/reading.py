"""Commands that read: ``spots``, ``list``, ``show``, ``log``, ``stats``, ``errors``.

They open the ledger read-only and never create, migrate or write anything (invariant 6),
even when the Spot they are pointed at does not exist.
"""

from __future__ import annotations

import pprint
from pathlib import Path
from typing import Any

import click

from ..admin.maintenance import (
    WORKSPACE_DIR,
    ErrorGroup,
    MaintenanceService,
    TaskDetail,
)
from ..engine.tasks import Task
from ..model.readable import size
from ..model.records import READ_STATUSES, Record, error_line
from ..model.redact import mask_secrets
from .app import main
from .options import json_option, open_target, resolve_key, stop, target_options
from .output import Output, jsonable, seconds, stamps, truncate, when

_LISTED_STATUSES = [s for s in READ_STATUSES if s != "missing"]
#: Blobs larger than this are not loaded to show a preview.
_PREVIEW_BYTES = 64 * 1024 * 1024


@main.command()
@click.argument("workspace", required=False, metavar="[WORKSPACE | URL]")
@json_option
def spots(workspace: str | None, as_json: bool) -> None:
    """List the Spots of a workspace or a database: records, failures, sizes, last activity.

    WORKSPACE is a .hokuro folder or the project folder that holds one (default:
    ./.hokuro). Blob folders without a ledger ("zombies", removed by hokuro gc) are
    listed too. URL is a PostgreSQL database, which keeps each Spot in a schema of its
    own; the other commands take --spot NAME to choose one.
    """
    out = Output(as_json)
    if workspace and workspace.startswith(("postgresql://", "postgres://")):
        found, zombies, where = MaintenanceService.scan_database(workspace), [], \
            mask_secrets(workspace)
    else:
        folder = Path(workspace) if workspace else Path.cwd() / WORKSPACE_DIR
        found = MaintenanceService.scan_spots(folder)
        zombies = MaintenanceService.scan_orphan_projects(folder)
        where = str(folder.absolute())
    if as_json:
        out.json({
            "spots": [{
                "name": s.name, "ledger": str(s.ledger),
                "blobs": None if s.blobs is None else str(s.blobs),
                "records": s.records, "failed": s.failed, "size": s.size,
                "ledger_size": s.ledger_size, **stamps(last_activity=s.last_activity),
                "problem": s.problem,
            } for s in found],
            "zombies": [str(p.absolute()) for p in zombies],
        })
        return
    if not found and not zombies:
        out.note(f"no Spots in {where}")
        return
    if workspace and workspace.startswith(("postgresql://", "postgres://")):
        out.table(["spot", "records", "failed", "size", "last activity", "blobs"],
                  [[s.name, s.records, s.failed, size(s.size), when(s.last_activity),
                    s.problem or s.blobs or "-"] for s in found])
        return
    out.table(["spot", "records", "failed", "size", "ledger size", "last activity", "ledger"],
              [[s.name, s.records, s.failed, size(s.size), size(s.ledger_size),
                when(s.last_activity), s.problem or str(s.ledger)] for s in found])
    for zombie in zombies:
        out.note(f"blob folder without a ledger (hokuro gc removes it): {zombie}")


@main.command("list")
@target_options
@click.option("--fn", metavar="NAME", help="Only tasks of this collection (see hokuro stats).")
@click.option("--status", type=click.Choice(_LISTED_STATUSES),
              help="Only tasks with this status, as a reader sees it.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=0),
              metavar="N",
              help="Show at most this many tasks; 0 shows all.")
@json_option
def list_tasks(spot: str, workspace: str | None, blobs: str | None, fn: str | None,
               status: str | None, limit: int, as_json: bool) -> None:
    """List tasks, newest first: status, attempts, duration, size, error."""
    out = Output(as_json)
    with open_target(spot, workspace, blobs, read_only=True) as service:
        tasks = service.get_history(limit or None, fn=fn, status=status)
        if as_json:
            out.json([_task_json(t) for t in tasks])
            return
        if not tasks:
            out.note("no tasks match")
            return
        out.table(["key", "collection", "ident", "status", "attempts", "duration", "updated",
                   "size", "error"],
                  [[t.key[:12], t.fn, t.ident, t.status, t.attempts, seconds(t.duration),
                    when(t.record.updated_at if t.record else None),
                    size(t.record.size if t.record else None), _error_line(t)[:80]]
                   for t in tasks])


def _error_line(task: Task) -> str:
    record = task.record
    if record is None:
        return ""
    if task.status == "failed" and record.error_type is None:
        return "Abandoned: its owner stopped before finishing"
    if record.error_type is None:
        return ""
    message = error_line(record.error)
    if not message:
        return record.error_type
    # A traceback's last line already starts with the error's type, as a rule.
    return message if message.startswith(record.error_type) else \
        f"{record.error_type}: {message}"




def _task_json(task: Task) -> dict[str, Any]:
    record = task.record
    assert record is not None
    return {
        "key": task.key, "fn": record.fn, "fn_path": record.fn_path, "ident": record.ident,
        "version": record.version, "status": task.status, "attempts": record.attempts,
        "size": record.size, "duration": task.duration,
        "error_type": record.error_type, "error_message": error_line(record.error),
        "error_fingerprint": record.error_fingerprint,
        **stamps(created_at=record.created_at, started_at=record.started_at,
                 finished_at=record.finished_at, updated_at=record.updated_at,
                 expires_at=record.expires_at),
    }


@main.command()
@target_options
@click.argument("key_prefix", metavar="KEY-PREFIX")
@click.option("--allow-pickle", is_flag=True,
              help="Decode a result stored with pickle. Unpickling runs code named by the "
                   "data: use it only on records you trust.")
@click.option("--max-chars", default=2000, show_default=True, type=click.IntRange(min=0),
              metavar="N",
              help="Cut the previews of arguments, result and log at this many characters; "
                   "0 shows all.")
@json_option
def show(spot: str, workspace: str | None, blobs: str | None, key_prefix: str,
         allow_pickle: bool, max_chars: int, as_json: bool) -> None:
    """Show one task: its record, arguments, result, error and log.

    KEY-PREFIX is the task key or its first characters (as hokuro list shows them). A
    result this process cannot decode (pickle, or a type registered only in your code)
    is shown as a placeholder, and so are arguments that were not kept (larger than the
    Spot's args_limit, or of a mark with store_args=False).
    """
    out = Output(as_json)
    with open_target(spot, workspace, blobs, read_only=True) as service:
        key = resolve_key(service, key_prefix, out)
        detail = service.get_task_detail(key, include_expired=True, allow_pickle=allow_pickle,
                                         max_bytes=_PREVIEW_BYTES)
        if detail is None:  # removed between the two reads
            out.note(f"task {key} is gone")
            stop(1)
        if as_json:
            out.json(_detail_json(detail))
            return
        _print_detail(out, detail, max_chars)


def _detail_json(detail: TaskDetail) -> dict[str, Any]:
    record = detail.record
    error = detail.error
    return {
        "key": record.key, "fn": record.fn, "fn_path": record.fn_path, "ident": record.ident,
        "version": record.version, "status": detail.status, "attempts": record.attempts,
        "owner": record.owner, "codec": record.codec, "content_type": record.content_type,
        "size": record.size, "blob": record.blob, "log_blob": record.log_blob,
        "duration": _duration(record),
        **stamps(created_at=record.created_at, started_at=record.started_at,
                 finished_at=record.finished_at, updated_at=record.updated_at,
                 expires_at=record.expires_at, lease_until=record.lease_until),
        "args": jsonable(detail.args), "args_note": detail.args_note,
        "result": jsonable(detail.result), "result_note": detail.result_note,
        "error": None if error is None else {
            "type": error.type, "message": error.message, "traceback": error.traceback,
            "fingerprint": error.fingerprint},
        "log": detail.log, "log_note": detail.log_note,
        "paths": {k: str(v) for k, v in detail.paths.items()},
    }


def _duration(record: Record) -> float | None:
    if record.started_at is None or record.finished_at is None:
        return None
    return record.finished_at - record.started_at


def _print_detail(out: Output, detail: TaskDetail, max_chars: int) -> None:
    record = detail.record
    paths = detail.paths
    out.fields([
        ("key", record.key), ("collection", record.fn), ("function", record.fn_path),
        ("ident", record.ident), ("version", record.version), ("status", detail.status),
        ("attempts", record.attempts), ("created", when(record.created_at)),
        ("started", when(record.started_at)), ("finished", when(record.finished_at)),
        ("duration", seconds(_duration(record))),
        ("expires", when(record.expires_at) if record.expires_at else None),
        ("owner", record.owner if record.status == "running" else None),
        ("size", size(record.size) if record.size is not None else None),
        ("codec", record.codec), ("content type", record.content_type),
        ("blob", paths.get("blob")), ("log blob", paths.get("log")),
        ("files", paths.get("dir") if Path(str(paths.get("dir", ""))).is_dir() else None),
        ("ledger", paths.get("ledger")),
    ], title=f"task {record.key}")
    out.block("arguments", detail.args_note or truncate(_pretty(detail.args), max_chars))
    if record.status == "done":
        out.block("result", detail.result_note or truncate(_pretty(detail.result), max_chars))
    if detail.error is not None:
        out.block("error", detail.error.traceback or str(detail.error))
    if detail.log or detail.log_note:
        text = detail.log_note or detail.log
        if max_chars and len(text) > max_chars:
            text = (f"… ({len(text) - max_chars} earlier characters; hokuro log shows all)\n"
                    + text[-max_chars:])
        out.block("log", text)


def _pretty(value: Any) -> str:
    return pprint.pformat(value, width=96, compact=True, sort_dicts=False)


@main.command("log")
@target_options
@click.argument("key_prefix", metavar="KEY-PREFIX")
@json_option
def log_cmd(spot: str, workspace: str | None, blobs: str | None, key_prefix: str,
            as_json: bool) -> None:
    """Print the whole log a task wrote (through ctx.logger), as it was captured."""
    out = Output(as_json)
    with open_target(spot, workspace, blobs, read_only=True) as service:
        key = resolve_key(service, key_prefix, out)
        text = service.get_log(key)
        if text is None:
            out.note(f"task {key} is gone")
            stop(1)
        if as_json:
            out.json({"key": key, "log": text})
        elif text:
            click.echo(mask_secrets(text), nl=not text.endswith("\n"))
        else:
            out.note(f"task {key[:12]} wrote no log")


@main.command()
@target_options
@click.option("--fn", metavar="NAME", help="Only this collection.")
@json_option
def stats(spot: str, workspace: str | None, blobs: str | None, fn: str | None,
          as_json: bool) -> None:
    """Count tasks per collection and status, with the bytes of their results.

    Counted by the ledger over every record. Results past their retention count as
    expired; running tasks whose owner is gone count as failed.
    """
    out = Output(as_json)
    with open_target(spot, workspace, blobs, read_only=True) as service:
        figures = service.stats(fn)
        if as_json:
            out.json({**service.describe(), **figures})
            return
        collections = figures["collections"]
        if not collections:
            out.note("no tasks")
            return
        statuses = [s for s in ("done", "failed", "running", "expired", "cancelled", "queued",
                                "waiting") if any(s in c["counts"] for c in collections.values())]
        rows: list[list[Any]] = [
            [name, entry["counts"]["total"], *(entry["counts"].get(s, 0) for s in statuses),
             size(entry["size"])]
            for name, entry in sorted(collections.items())]
        if len(collections) > 1:
            totals = figures["counts"]
            rows.append(["(all)", totals["total"], *(totals.get(s, 0) for s in statuses),
                         size(figures["size"])])
        out.table(["collection", "total", *statuses, "size"], rows)


@main.command()
@target_options
@click.option("--fn", metavar="NAME", help="Only failures of this collection.")
@click.option("--show", "show_fingerprint", metavar="FINGERPRINT",
              help="Print the whole example traceback of this error group (its fingerprint "
                   "or first characters).")
@json_option
def errors(spot: str, workspace: str | None, blobs: str | None, fn: str | None,
           show_fingerprint: str | None, as_json: bool) -> None:
    """Group failed tasks by identical error, with counts and an example.

    Failures with the same error type raised through the same functions share a
    fingerprint, whatever their messages. Tasks whose owner died while running form the
    group "abandoned". After fixing the code, hokuro retry SPOT --error FINGERPRINT replays
    one group.
    """
    out = Output(as_json)
    with open_target(spot, workspace, blobs, read_only=True) as service:
        groups = service.error_groups(fn)
    if show_fingerprint is not None:
        matching = [g for g in groups if g.fingerprint.startswith(show_fingerprint)]
        exact = [g for g in matching if g.fingerprint == show_fingerprint]
        matching = exact or matching
        if len(matching) != 1:
            what = "no error group has" if not matching else "several error groups have"
            out.note(f"{what} a fingerprint starting with {show_fingerprint!r}")
            stop(1)
        groups = matching
    if as_json:
        out.json([_group_json(g) for g in groups])
        return
    if not groups:
        out.note("no failed tasks")
        return
    if show_fingerprint is not None:
        group = groups[0]
        out.fields([("fingerprint", group.fingerprint), ("error", group.error_type),
                    ("count", group.count), ("collections", ", ".join(group.collections)),
                    ("first seen", when(group.first_seen)), ("last seen", when(group.last_seen)),
                    ("example task", group.example_key)], title=f"error {group.fingerprint}")
        out.block("traceback of the newest", group.example_traceback or group.message or "")
        return
    out.table(["fingerprint", "error", "count", "collections", "last seen", "message"],
              [[g.fingerprint, g.error_type, g.count, ", ".join(g.collections),
                when(g.last_seen), (g.message or "")[:100]] for g in groups])
    out.note("whole traceback: hokuro errors SPOT --show FINGERPRINT; "
             "replay after a fix: hokuro retry SPOT --error FINGERPRINT")


def _group_json(group: ErrorGroup) -> dict[str, Any]:
    return {
        "fingerprint": group.fingerprint, "error_type": group.error_type,
        "count": group.count, "collections": group.collections, "message": group.message,
        **stamps(first_seen=group.first_seen, last_seen=group.last_seen),
        "example_key": group.example_key, "example_traceback": group.example_traceback,
    }

