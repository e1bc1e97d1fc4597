"""Commands about scripts (``.bue`` files): ``check``, ``run FILE``, ``example``.

``hokuro run FILE`` shares its name with ``hokuro run show`` and ``hokuro run cancel``: the
``run`` group runs a script when its first word is not one of its commands (a script
named ``show`` is given as ``./show``). The library side is :mod:`hokuro.script`.
"""

from __future__ import annotations

import importlib.resources
import sys
from pathlib import Path
from typing import Any

import click

from .app import main
from .options import json_option, stop
from .output import Output, seconds
from .run_group import FileCommand
from .runs import run_group

#: The files ``hokuro example`` writes.
EXAMPLE_FILES = ("example.bue", "example.py")


def _load(file: str, spot: Any = None, postgres: str | None = None) -> Any:
    from ..script import load

    return load(file, spot, postgres_url=postgres)


# -- hokuro check ------------------------------------------------------------------------------

@main.command("check")
@click.argument("file", metavar="FILE", type=click.Path(dir_okay=False))
@json_option
def check_cmd(file: str, as_json: bool) -> None:
    """Parse and compile a script without running it, and print its plan: the steps (language,
    function or table, file, scope, priority, timeout, retries, poll), the pipes, and the
    jobs it makes, with each loop's body shown for one element.

    The script's Python files are imported (to find the functions and their arguments);
    nothing runs and nothing is written. A mistake is reported with the file, line and
    column, the line itself and a caret, and exits 2.
    """
    out = Output(as_json)
    compiled = _load(file)
    described = compiled.plan.describe()
    steps = [_step_json(name, step.definition) for name, step in compiled.steps.items()]
    pipes = {name: [s.text for s in pipe.steps]
             for name, pipe in compiled.script.pipes.items()}
    if as_json:
        out.json({"script": str(compiled.path), "steps": steps, "pipes": pipes,
                  "plan": described})
        return
    loops = sum(1 for node in described["nodes"] if node["kind"] == "each")
    out.line(f"{file}: {_count(len(steps), 'step')}, {_count(len(pipes), 'pipe')}, "
             f"{_count(loops, 'loop')}; it compiles.")
    out.line()
    out.title("steps")
    out.table(["step", "language", "function/table", "source", "scope", "priority",
               "timeout", "retries", "poll"],
              [[s["step"], s["language"], s["function"], s["file"] or "`code`",
                s["scope"] or "default", s["priority"] if s["priority"] is not None else 0,
                seconds(s["timeout"]) if s["timeout"] else "-",
                s["retries"] if s["retries"] is not None else "-",
                seconds(s["poll"]) if s["poll"] is not None else "-"] for s in steps])
    if pipes:
        out.line()
        out.title("pipes")
        for name, members in pipes.items():
            out.line(f"  {name} = {' | '.join(members)}")
    out.line()
    out.title("jobs (a loop's body is shown for one element)")
    for text in _graph(described["nodes"], compiled.script, "  "):
        out.line(text)


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _step_json(name: str, definition: Any) -> dict[str, Any]:
    o = definition.options
    return {"step": name, "language": definition.language,
            "function": definition.function.text, "file": definition.file,
            "code": definition.code, "line": definition.name.line, "scope": o.scope,
            "priority": o.priority, "timeout": o.timeout, "retries": o.retries,
            "poll": o.poll}


def _graph(nodes: list[dict[str, Any]], script: Any, indent: str) -> list[str]:
    lines: list[str] = []
    for node in nodes:
        if node["kind"] == "call":
            parents = ", ".join("the element" if p == "input" else p
                                for p in node["parents"]) or "no input"
            step = node["step"].split(".", 1)[-1]
            definition = script.steps[step]
            scope = definition.options.scope or "default"
            priority = definition.options.priority or 0
            lines.append(f"{indent}{node['id']:<24} <- {parents:<24} scope {scope}, "
                         f"priority {priority}")
        else:
            lines.append(f"{indent}{node['id']}: for each element of {node['source']}'s "
                         "result (job ids <source job>/<k>/<node>):")
            lines.extend(_graph(node["nodes"], script, indent + "    "))
    return lines


# -- hokuro run FILE ---------------------------------------------------------------------------

@click.command("run", cls=FileCommand)
@click.argument("file", metavar="FILE", type=click.Path(dir_okay=False))
@click.option("--spot", "spot_name", metavar="NAME",
              help="The Spot that keeps the run's records.  [default: the script's name, in "
                   "./.hokuro]")
@click.option("--db", metavar="URL", help="The Spot's ledger: a file or a postgresql:// URL "
                                          "(default: .hokuro/NAME.db).")
@click.option("--blobs", metavar="URL", help="The Spot's blob store: a folder or "
                                             "s3://bucket/prefix.")
@click.option("--workspace", metavar="FOLDER", type=click.Path(file_okay=False),
              help="The folder of the Spot's files.  [default: ./.hokuro]")
@click.option("--concurrency", default=32, show_default=True, type=click.IntRange(min=1),
              metavar="N", help="Jobs that run at once.")
@click.option("--run", "run_name", metavar="NAME",
              help="The run's name: an unfinished run of that name is resumed.  [default: "
                   "the script's file name]")
@click.option("--postgres", metavar="URL", envvar="HOKURO_POSTGRES_URL", show_envvar=True,
              help="The database of the script's postgres steps.  [default: the Spot's, "
                   "when it is PostgreSQL]")
@click.option("--progress/--no-progress", default=None,
              help="Show live progress (default: on a terminal).")
@json_option
def run_file_cmd(file: str, spot_name: str | None, db: str | None, blobs: str | None,
                 workspace: str | None, concurrency: int, run_name: str | None,
                 postgres: str | None, progress: bool | None, as_json: bool) -> None:
    """Run a script in this process, with live progress per step on a terminal, and print
    its summary. Exits 1 when a job failed for good.

    The run is resumable like any run: after Ctrl-C, a crash or a kill, running the same
    file again goes on where it stopped (done jobs stay done). A finished run's results
    are kept: running the script again reuses them, and runs only what changed (a SQL
    query or backtick code that was edited, new inputs).
    """
    from ..engine.spot import Spot

    out = Output(as_json)
    path = Path(file)
    _load(file)  # a script with a mistake stops here, before any Spot is opened
    spot = Spot(spot_name or script_spot_name(path), db=db, blobs=blobs, workspace=workspace)
    try:
        compiled = _load(file, spot, postgres)
        run = spot.run(compiled.plan, concurrency=concurrency, run=run_name or compiled.name,
                       progress=False if as_json else progress)
        summary = run.summary()
        failures = run.failures()
    finally:
        spot.close()
    if as_json:
        out.json({**{k: v for k, v in summary.items() if k != "status"},
                  "status": str(summary["status"]), "spot": spot.name,
                  "failures": [{"job": f.job_id, "step": f.step, "error": f.error}
                               for f in failures]})
    else:
        counts = ", ".join(
            f"{summary[k]} {k[:-1] if k in ('resets', 'polls') and summary[k] == 1 else k}"
            for k in ("done", "reused", "failed", "cancelled", "retried", "resets", "polls")
            if summary.get(k))
        out.line(f"run {summary['name']} ({summary['run'][:8]}) of Spot {spot.name}: "
                 f"{summary['status']}: {counts or 'nothing to do'}; "
                 f"{seconds(summary['spent'])} in steps")
        for failure in failures[:20]:
            out.line(f"  failed {failure.job_id}: {failure.error.splitlines()[0]}")
        if len(failures) > 20:
            out.line(f"  ... and {len(failures) - 20} more: hokuro run show "
                     f"{spot.name} {summary['run'][:8]}")
    if failures or str(summary["status"]) != "done":
        stop(1)


def script_spot_name(path: Path) -> str:
    name = "".join(c if c.isalnum() or c in "_-." else "_" for c in path.stem)
    return name.lstrip(".-") or "script"


run_group.file_command = run_file_cmd  # type: ignore[attr-defined]


# -- hokuro example ----------------------------------------------------------------------------

@main.command("example")
@click.option("--folder", default=".", show_default=True, metavar="FOLDER",
              type=click.Path(file_okay=False),
              help="Where to write example.bue and example.py.")
def example_cmd(folder: str) -> None:
    """Write example.bue and example.py: buelon's README example, adapted (3 accounts fan
    out, a report status polled until ready, a download that resets once, a SQL step that
    adds acos, an upload that logs its rows). Existing files are never overwritten.

    Then: hokuro check example.bue, and hokuro run example.bue.
    """
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    source = importlib.resources.files("hokuro.script").joinpath("example")
    written, kept = [], []
    for name in EXAMPLE_FILES:
        path = target / name
        try:
            with path.open("x", encoding="utf-8") as fh:  # "x": never overwrite
                fh.write(source.joinpath(name).read_text(encoding="utf-8"))
            written.append(str(path))
        except FileExistsError:
            kept.append(str(path))
    for path in written:
        click.echo(f"wrote {path}")
    for path in kept:
        click.echo(f"kept {path}: it exists (remove it to get the example's)", err=True)
    if written:
        bue = target / "example.bue"
        click.echo(f"next: hokuro check {bue}, then hokuro run {bue}")
    if not written:
        sys.exit(1)
