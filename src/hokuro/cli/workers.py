"""Commands about workers: ``worker`` serves submitted runs, ``workers`` lists the workers,
``submit`` records a run for them. The library side: ``hokuro.runs.worker`` (the worker),
``hokuro.admin.workers`` (listing), ``Spot.submit``."""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from ..admin.replay import importable_from
from ..admin.workers import WorkerRow, list_workers
from ..errors import ConfigurationError
from ..model.readable import relative
from ..runs.worker import GRACE, Worker
from .app import main
from .options import json_option, open_target, stop, target_options
from .output import Output, stamps, when


def import_object(path: str, what: str) -> Any:
    """The object at ``module:attr`` (the current folder first on the import path)."""
    module, sep, attr = path.partition(":")
    if not sep or not module or not attr:
        raise click.BadParameter(f"{path!r} is not module:attribute", param_hint=what)
    with importable_from(Path.cwd()):
        try:
            found: Any = importlib.import_module(module)
            for part in attr.split("."):
                found = getattr(found, part)
        except Exception as exc:
            raise click.BadParameter(f"cannot import {path}: {type(exc).__name__}: {exc} "
                                     f"(sys.path: {sys.path})", param_hint=what) from None
    return found


def _script_step(fn_path: str, spot: Any) -> Any:
    """The ``script:`` prefix: a step of a .bue script (hokuro.script compiles it)."""
    from .. import script

    resolve = getattr(script, "resolve_step", None)
    if resolve is None:
        raise ConfigurationError("this hokuro cannot load script steps (hokuro.script has no "
                                 "resolve_step)")
    return resolve(fn_path, spot)


#: Prefixes of recorded step paths and what finds their steps (SEAMS.md).
HOOKS = {"script:": _script_step}


# -- hokuro worker ------------------------------------------------------------------------------

@main.command("worker")
@target_options
@click.option("--scope", "scopes", metavar="A,B,C",
              help="Serve these scopes, in this order of preference. Default: every scope.")
@click.option("--concurrency", default=32, show_default=True, type=click.IntRange(min=1),
              metavar="N", help="How many jobs run at once.")
@click.option("--import", "imports", multiple=True, metavar="MODULE",
              help="Import this module first (steps, types registered on the Spot, hooks); "
                   "may be repeated. The current folder is first on the import path.")
@click.option("--max-jobs", type=click.IntRange(min=1), metavar="K",
              help="Stop after this many jobs.")
@click.option("--grace", default=GRACE, show_default=True, type=click.FloatRange(min=0),
              metavar="S", help="On SIGTERM or Ctrl-C, let running jobs finish for this many "
                                "seconds, then hand them back.")
def worker_cmd(spot: str, workspace: str | None, blobs: str | None, scopes: str | None,
               concurrency: int, imports: tuple[str, ...], max_jobs: int | None,
               grace: float) -> None:
    """Serve the runs submitted to SPOT (spot.submit, hokuro submit) until stopped.

    SPOT is a Spot name, a ledger file or a database URL, or module:attribute naming a
    Spot object of your code (its codec, blob store and limiters are then used as your code
    sets them). Run it from your code's folder: each run's steps are imported by the paths
    its plan recorded; a step that cannot be imported fails its jobs with the reason.
    SIGTERM or Ctrl-C stop it gracefully (a second one at once); hokuro workers SPOT lists
    the workers.
    """
    sys.path.insert(0, str(Path.cwd()))
    for module in imports:
        import_object(f"{module}:__name__", "--import")
    chosen = [s.strip() for s in scopes.split(",")] if scopes is not None else None
    with _open_spot(spot, workspace, blobs) as target:
        worker = Worker(target, scopes=chosen, concurrency=concurrency, max_jobs=max_jobs,
                        grace=grace, hooks=HOOKS,
                        say=lambda text: click.echo(f"hokuro: {text}", err=True))
        report = worker.run()
    sys.stdout.flush()
    sys.stderr.flush()
    if report.handed_back:
        os._exit(0)  # a step's thread that could not be stopped must not hold the exit


class _open_spot:
    """The Spot a worker serves: a Spot object of the user's code (module:attr), or the
    one a Spot name, file or URL names (opened writable)."""

    def __init__(self, target: str, workspace: str | None, blobs: str | None) -> None:
        self.target, self.workspace, self.blobs = target, workspace, blobs
        self.service: Any = None

    def __enter__(self) -> Any:
        from ..engine.spot import Spot

        if ":" in self.target and "://" not in self.target and not Path(self.target).exists():
            found = import_object(self.target, "SPOT")
            if not isinstance(found, Spot):
                raise click.BadParameter(f"{self.target} is a {type(found).__name__}, not a "
                                         "hokuro.Spot", param_hint="SPOT")
            return found
        self.service = open_target(self.target, self.workspace, self.blobs, read_only=False)
        return self.service.spot

    def __exit__(self, *exc: object) -> None:
        if self.service is not None:
            self.service.close()


# -- hokuro workers -----------------------------------------------------------------------------

@main.command("workers")
@target_options
@click.option("--all", "show_all", is_flag=True, help="Show stopped workers too.")
@json_option
def workers_cmd(spot: str, workspace: str | None, blobs: str | None, show_all: bool,
                as_json: bool) -> None:
    """List the workers of SPOT: host, pid, scopes, concurrency, when it started, its last
    heartbeat, jobs running and done, and its status (running, stopping, stopped, or lost:
    no heartbeat for three beats; its jobs go back to the queue when their leases end)."""
    out = Output(as_json)
    now = time.time()
    with open_target(spot, workspace, blobs, read_only=True) as service:
        rows = list_workers(service.ledger, now=now, stopped=show_all)
    if as_json:
        out.json([_worker_json(row) for row in rows])
        return
    if not rows:
        out.note("no workers" if show_all else "no workers (--all shows stopped ones)")
        return
    out.table(["worker", "host", "pid", "status", "scopes", "concurrency", "running", "done",
               "started", "heartbeat"],
              [[row.record.id.rsplit("|", 1)[-1], row.record.host, row.record.pid,
                row.status, row.record.scopes or "*", row.record.concurrency,
                row.record.running, row.record.done, when(row.record.started_at),
                relative(row.record.heartbeat_at, now)] for row in rows])


def _worker_json(row: WorkerRow) -> dict[str, Any]:
    r = row.record
    return {"id": r.id, "host": r.host, "pid": r.pid, "status": str(row.status),
            "scopes": r.scope_list, "concurrency": r.concurrency, "running": r.running,
            "done": r.done, "heartbeat_every": r.every,
            **stamps(started_at=r.started_at, heartbeat_at=r.heartbeat_at,
                     stopped_at=r.stopped_at)}


# -- hokuro submit ------------------------------------------------------------------------------

@main.command("submit")
@click.argument("target", metavar="MODULE:PLAN | FILE")
@click.option("--over", "over_path", metavar="MODULE:ITEMS",
              help="The items: an iterable (or a function returning one) of your code.")
@click.option("--over-json", type=click.File("r"), metavar="FILE",
              help="The items as a JSON list, from a file ('-': standard input).")
@click.option("--name", metavar="NAME", help="The run's name (default: the plan's). An "
                                              "unfinished run of that name goes on.")
@click.option("--retries", type=click.IntRange(min=0), metavar="N",
              help="Retries of a failed job, for steps that set none.")
@click.option("--timeout", metavar="DURATION", help="Time limit per job, for steps that "
                                                   "set none (e.g. 30s, 5m).")
@click.option("--follow", "-f", is_flag=True, help="Then show the run until it ends.")
@click.option("--spot", "spot_name", metavar="NAME",
              help="A script's Spot.  [default: the script's name, in ./.hokuro]")
@click.option("--db", metavar="URL", help="A script's Spot's ledger: a file or a "
                                          "postgresql:// URL.")
@click.option("--blobs", metavar="URL", help="A script's Spot's blob store.")
@click.option("--workspace", metavar="FOLDER", type=click.Path(file_okay=False),
              help="The folder of a script's Spot's files.  [default: ./.hokuro]")
@json_option
def submit_cmd(target: str, over_path: str | None, over_json: Any, name: str | None,
               retries: int | None, timeout: str | None, follow: bool, spot_name: str | None,
               db: str | None, blobs: str | None, workspace: str | None,
               as_json: bool) -> None:
    """Record a run of MODULE:PLAN (a hokuro.Plan, a pipe a | b, or a marked function) or of
    a script FILE (.bue) for workers, and print its id; nothing runs here. Its Spot is its
    steps' Spot (a script's: --spot, as hokuro run FILE). Workers (hokuro worker SPOT)
    execute it, compiling a script's steps from its file (the same path on their machine);
    hokuro run show SPOT ID --follow watches it."""
    out = Output(as_json)
    if over_path is not None and over_json is not None:
        raise click.UsageError("give the items with --over or --over-json, not both")
    over: Any = None
    if over_path is not None:
        over = import_object(over_path, "--over")
        if callable(over):
            over = over()
    elif over_json is not None:
        over = json.load(over_json)
    script = ":" not in target or Path(target).is_file()
    if script:
        from ..engine.spot import Spot
        from ..script import load
        from .script import script_spot_name  # the Spot hokuro run FILE uses

        path = Path(target)
        if not path.is_file():
            raise click.BadParameter(f"{target!r} is neither module:attribute nor a script "
                                     "file", param_hint="MODULE:PLAN | FILE")
        load(target)  # a script with a mistake stops here, before any Spot is opened
        spot = Spot(spot_name or script_spot_name(path), db=db, blobs=blobs,
                    workspace=workspace)
        compiled = load(target, spot)
        plan, name = compiled.plan, name or compiled.name
    else:
        plan = import_object(target, "MODULE:PLAN")
        spot = _spot_of(plan, target)
    try:
        _submit(out, spot, plan, over, name, retries, timeout, follow, as_json)
    finally:
        if script:
            spot.close()


def _submit(out: Output, spot: Any, plan: Any, over: Any, name: str | None,
            retries: int | None, timeout: str | None, follow: bool, as_json: bool) -> None:
    run = spot.submit(plan, over=over, name=name, retries=retries, timeout=timeout)
    where = spot.name
    if as_json and not follow:
        out.json({"run": run.id, "name": run.name, "status": str(run.status),
                  "spot": where, "jobs": sum(spot.ledger.run_counts(run.id).values())})
        return
    if not as_json:
        out.line(f"submitted run {run.id[:8]} ({run.name}): "
                 f"{sum(spot.ledger.run_counts(run.id).values())} jobs for workers")
        if not follow:
            out.note(f"watch it: hokuro run show {where} {run.id[:8]} --follow")
            return
    from .runs import follow_detail

    follow_detail(out, spot.ledger, spot.codec, run.record, limit=20)
    if run.refresh().status != "done":
        stop(1)


def _spot_of(plan: Any, target: str) -> Any:
    steps = plan.steps().values() if hasattr(plan, "steps") and callable(plan.steps) \
        else getattr(plan, "steps", None) or [plan]
    for step in steps:
        spot = getattr(step, "spot", None)
        if spot is not None:
            return spot
    raise click.BadParameter(f"{target} names no marked step, so it has no Spot to submit to",
                             param_hint="MODULE:PLAN")
