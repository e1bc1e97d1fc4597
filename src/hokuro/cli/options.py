"""What many commands share: the SPOT argument and its options, ``--json``, confirmation,
and naming one task by the first characters of its key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from ..admin.maintenance import MaintenanceService
from .output import Output

F = TypeVar("F", bound=Callable[..., Any])

#: The environment variable that names the blob store for a database URL.
BLOBS_ENV = "HOKURO_BLOBS"
# Where --spot leaves its value for open_target (it is not passed to each command).
_SPOT_KEY = "hokuro.engine.spot"


def _keep_spot(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    ctx.meta[_SPOT_KEY] = value


def target_options(fn: F) -> F:
    """``SPOT`` plus ``--spot``, ``--workspace`` and ``--blobs``."""
    fn = click.option(
        "--blobs", metavar="URL", envvar=BLOBS_ENV, show_envvar=True,
        help="Where the Spot's blobs live (a folder or s3://bucket/prefix). Default: where "
             "the Spot recorded them, else <ledger folder>/blobs/<name> for a ledger file.",
    )(fn)
    fn = click.option(
        "--spot", "spot_name", metavar="NAME", expose_value=False, callback=_keep_spot,
        help="Which Spot of a database that holds several (hokuro spots URL lists them); "
             "for a ledger file, the Spot it must belong to.",
    )(fn)
    fn = click.option(
        "--workspace", metavar="FOLDER", type=click.Path(file_okay=False),
        help="The folder in which Spot names are looked up.  [default: ./.hokuro]",
    )(fn)
    return click.argument("spot", metavar="SPOT")(fn)


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print JSON for scripts instead of text.")(fn)


def change_options(fn: F) -> F:
    """``--yes`` and ``--dry-run`` of commands that remove things."""
    fn = click.option("--dry-run", is_flag=True,
                      help="Show what would be removed, and remove nothing.")(fn)
    return click.option("--yes", "-y", is_flag=True,
                        help="Do not ask for confirmation.")(fn)


def open_target(spot: str, workspace: str | None, blobs: str | None, *, read_only: bool
                ) -> MaintenanceService:
    """The service over the Spot a person named (and chose with ``--spot``); read-only
    commands pass ``read_only`` so that nothing is ever created, migrated or written."""
    name = click.get_current_context().meta.get(_SPOT_KEY)
    return MaintenanceService.from_target(spot, spot=name or None, workspace=workspace,
                                          blobs=blobs or None, read_only=read_only)


def stop(code: int) -> NoReturn:
    """End the command with exit ``code`` (1: not found or nothing to do)."""
    raise click.exceptions.Exit(code)


def confirm(question: str, yes: bool) -> None:
    """Go on only if ``--yes`` was given or the person agrees; otherwise exit 1."""
    if yes:
        return
    if not click.confirm(question, default=False, err=True):
        click.echo("Nothing was changed.", err=True)
        stop(1)


def resolve_key(service: MaintenanceService, prefix: str, out: Output) -> str:
    """The full key that ``prefix`` names; when none or several match, say so and exit 1."""
    found = service.resolve_key_prefix(prefix, limit=21)
    if isinstance(found, str):
        return found
    if found is None:
        if out.as_json:
            out.json({"error": "not_found", "key_prefix": prefix})
        out.note(f"no task key starts with {prefix!r} in {service.describe()['ledger']}")
        stop(1)
    more = len(found) > 20
    candidates = []
    for key in found[:20]:
        record = service.ledger.get(key)
        candidates.append((key, record.fn if record else "-", record.status if record else "-"))
    if out.as_json:
        out.json({"error": "ambiguous", "key_prefix": prefix, "more": more,
                  "candidates": [{"key": k, "fn": f, "status": s} for k, f, s in candidates]})
    out.note(f"key prefix {prefix!r} matches {'more than 20' if more else len(found)} tasks; "
             "give more characters:")
    for key, fn, status in candidates:
        out.note(f"  {key}  {status:<9} {fn}")
    stop(1)
