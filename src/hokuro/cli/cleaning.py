"""Commands that remove: ``delete``, ``clear``, ``prune``, ``clean``, ``gc``.

Each one first works out what it would remove, shows it, and asks before removing
(``--yes`` skips the question, ``--dry-run`` stops after showing). Finding nothing to
remove exits with 1, so scripts can tell.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..admin.maintenance import WORKSPACE_DIR, MaintenanceService, Removal
from ..model.readable import size
from .app import main
from .options import (
    change_options,
    confirm,
    json_option,
    open_target,
    resolve_key,
    stop,
    target_options,
)
from .output import Output, when


def _removal_json(removal: Removal) -> dict[str, Any]:
    return {"dry_run": removal.dry_run, "records": removal.records, "blobs": removal.blobs,
            "blob_failures": removal.blob_failures, "size": removal.size,
            "kept_running": removal.kept}


def _say_removal(out: Output, removal: Removal, what: str) -> None:
    verb = "would remove" if removal.dry_run else "removed"
    out.line(f"{verb} {removal.records} {what} ({removal.blobs} blobs, "
             f"{size(removal.size)} of results)")
    if removal.kept:
        out.note(f"kept {removal.kept} tasks that are still running or waiting; run again "
                 "once they finish")
    if removal.blob_failures:
        out.note(f"{removal.blob_failures} blobs could not be removed; hokuro clean removes "
                 "them later")


def _run_removal(out: Output, service: MaintenanceService, preview: Removal, what: str,
                 yes: bool, dry_run: bool, remove: Callable[[], Removal]) -> None:
    """Show ``preview``, ask, then ``remove()`` — the steps clear and prune share."""
    if preview.records == 0:
        if out.as_json:
            out.json(_removal_json(preview))
        out.note(f"no {what} to remove"
                 + (f" ({preview.kept} still running)" if preview.kept else ""))
        stop(1)
    if dry_run:
        if out.as_json:
            out.json(_removal_json(preview))
        else:
            _say_removal(out, preview, what)
        return
    confirm(f"Remove {preview.records} {what} ({preview.blobs} blobs, "
            f"{size(preview.size)}) from {service.describe()['ledger']}?", yes)
    removal = remove()
    if out.as_json:
        out.json(_removal_json(removal))
    else:
        _say_removal(out, removal, what)


@main.command()
@target_options
@click.argument("key_prefix", metavar="KEY-PREFIX")
@change_options
@json_option
def delete(spot: str, workspace: str | None, blobs: str | None, key_prefix: str, yes: bool,
           dry_run: bool, as_json: bool) -> None:
    """Delete one task: its record, its blobs and its files.

    KEY-PREFIX is the task key or its first characters. The next call of that task runs
    it again. A blob that cannot be removed is left for hokuro clean.
    """
    out = Output(as_json)
    with open_target(spot, workspace, blobs, read_only=False) as service:
        key = resolve_key(service, key_prefix, out)
        record = service.ledger.get(key)
        described = f"task {key} ({record.fn}, {record.status})" if record else f"task {key}"
        if dry_run:
            if as_json:
                out.json({"dry_run": True, "key": key, "deleted": False})
            else:
                out.line(f"would delete {described}")
            return
        confirm(f"Delete {described}?", yes)
        deleted = service.delete_task(key)
        if as_json:
            out.json({"dry_run": False, "key": key, "deleted": deleted})
        elif deleted:
            out.line(f"deleted {described}")
        if not deleted:
            out.note(f"task {key} was already gone")
            stop(1)


@main.command()
@target_options
@click.option("--fn", metavar="NAME", help="Only tasks of this collection.")
@change_options
@json_option
def clear(spot: str, workspace: str | None, blobs: str | None, fn: str | None, yes: bool,
          dry_run: bool, as_json: bool) -> None:
    """Remove every task (of one collection with --fn), with blobs and files.

    Tasks still running are kept. The ledger file stays; the next calls run again.
    """
    out = Output(as_json)
    with open_target(spot, workspace, blobs, read_only=False) as service:
        what = f"tasks of {fn}" if fn else "tasks"
        _run_removal(out, service, service.clear(fn, dry_run=True), what, yes, dry_run,
                     lambda: service.clear(fn))


@main.command()
@target_options
@click.option("--days", type=click.FloatRange(min=0), required=True, metavar="DAYS",
              help="Remove tasks not updated for this many days (fractions allowed).")
@click.option("--fn", metavar="NAME", help="Only tasks of this collection.")
@change_options
@json_option
def prune(spot: str, workspace: str | None, blobs: str | None, days: float, fn: str | None,
          yes: bool, dry_run: bool, as_json: bool) -> None:
    """Remove tasks not updated for --days days, with their blobs and files.

    Age is measured from the task's last update (its end, for a finished task). Tasks
    still running are kept.
    """
    out = Output(as_json)
    seconds = days * 86400
    with open_target(spot, workspace, blobs, read_only=False) as service:
        what = f"tasks{' of ' + fn if fn else ''} older than {days:g} days"
        _run_removal(out, service, service.prune(seconds, fn, dry_run=True), what, yes,
                     dry_run, lambda: service.prune(seconds, fn))


@main.command()
@target_options
@click.option("--grace", default=60.0, show_default=True, type=click.FloatRange(min=0),
              metavar="SECONDS",
              help="Only remove unreferenced blobs older than this many seconds (a blob is "
                   "written just before its record).")
@click.option("--temp-age", default=86400.0, show_default=True,
              type=click.FloatRange(min=0), metavar="SECONDS",
              help="Remove temporary files of interrupted writes older than this many "
                   "seconds.")
@change_options
@json_option
def clean(spot: str, workspace: str | None, blobs: str | None, grace: float, temp_age: float,
          yes: bool, dry_run: bool, as_json: bool) -> None:
    """Remove expired tasks, blobs no record names, and stale temporary files.

    Expired tasks are those past their retention (@spot.mark(retention=...)). Orphan
    blobs are left by removals that could not reach the blob store, or by killed
    processes; folders of task files whose task is gone go too.
    """
    out = Output(as_json)
    with open_target(spot, workspace, blobs, read_only=False) as service:
        orphans = service.scan_garbage(grace)
        preview = service.clean_garbage(orphans, temp_age, grace, dry_run=True)
        found = {"expired": preview.expired, "orphans": preview.orphans, "temp": preview.temp,
                 "orphan_size": sum(o.size for o in orphans)}
        if not (preview.expired or preview.orphans or preview.temp or preview.temp is None):
            if as_json:
                out.json({"dry_run": dry_run, **found})
            out.note("nothing to clean")
            stop(1)
        temp = "unknown" if preview.temp is None else preview.temp
        summary = (f"{preview.expired} expired tasks, {preview.orphans} orphan blobs "
                   f"({size(found['orphan_size'])}), {temp} stale temporary files")
        if dry_run:
            if as_json:
                out.json({"dry_run": True, **found})
            else:
                out.line(f"would remove {summary}")
            return
        confirm(f"Remove {summary} from {service.describe()['blobs']}?", yes)
        report = service.clean_garbage(orphans, temp_age, grace)
        if as_json:
            out.json({"dry_run": False, "expired": report.expired, "orphans": report.orphans,
                      "temp": report.temp})
        else:
            out.line(f"removed {report.expired} expired tasks, {report.orphans} orphan blobs, "
                     f"{report.temp} stale temporary files")


@main.command()
@click.argument("workspace", required=False, type=click.Path(file_okay=False))
@change_options
@json_option
def gc(workspace: str | None, yes: bool, dry_run: bool, as_json: bool) -> None:
    """Remove blob folders of Spots whose ledger is gone ("zombies").

    WORKSPACE is a .hokuro folder or the project folder that holds one (default:
    ./.hokuro). Looks only at blobs/<name> folders with no <name>.db beside them. A Spot
    whose ledger is a database elsewhere but keeps its blobs here looks like a zombie
    too: check the list before you agree.
    """
    out = Output(as_json)
    folder = MaintenanceService.workspace_folder(
        Path(workspace) if workspace else Path.cwd() / WORKSPACE_DIR)
    zombies = MaintenanceService.scan_orphan_projects(folder)
    listed = [_zombie(path) for path in zombies]
    if not zombies:
        if as_json:
            out.json({"dry_run": dry_run, "zombies": [], "removed": []})
        out.note(f"no blob folders without a ledger in {folder.absolute()}")
        stop(1)
    if not as_json:
        out.table(["folder", "size", "last written"],
                  [[str(z["path"]), size(z["size"]), when(z["last_written"])] for z in listed])
    if dry_run:
        if as_json:
            out.json({"dry_run": True, "zombies": [str(p) for p in zombies], "removed": []})
        return
    confirm(f"Remove {len(zombies)} blob folders and everything in them?", yes)
    for path in zombies:
        MaintenanceService.delete_project_storage(path)
    if as_json:
        out.json({"dry_run": False, "zombies": [str(p) for p in zombies],
                  "removed": [str(p) for p in zombies]})
    else:
        out.line(f"removed {len(zombies)} blob folders")


def _zombie(path: Path) -> dict[str, Any]:
    total, newest = 0, path.stat().st_mtime
    for item in path.rglob("*"):
        try:
            stat = item.stat()
        except OSError:
            continue
        newest = max(newest, stat.st_mtime)
        if item.is_file():
            total += stat.st_size
    return {"path": path.absolute(), "size": total, "last_written": newest}

