"""The ``hokuro`` command group; each command lives in its own module and registers here."""

from __future__ import annotations

import json
from typing import Any

import click

from .. import __version__
from ..errors import ConfigurationError, HokuroError, UnsafeName
from ..model.redact import mask_secrets


class Failure(click.ClickException):
    """A library error shown as one sentence on stderr, with the exit code it deserves."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(mask_secrets(message))
        self.exit_code = exit_code


class HokuroGroup(click.Group):
    """Turns hokuro's errors into a sentence and an exit code instead of a traceback:
    bad arguments exit 2 (like click's usage errors), everything else 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ConfigurationError, UnsafeName) as exc:
            raise Failure(str(exc), 2) from exc
        except HokuroError as exc:
            raise Failure(str(exc), 1) from exc
        except BrokenPipeError:
            # The reader went away (`hokuro list x | head`): stop quietly, as Unix tools do.
            import os
            import sys

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(0)
        except OSError as exc:
            raise Failure(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), 1) \
                from exc


@click.group(cls=HokuroGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """hokuro keeps the books of your batch work: task records, results, errors and logs.

    SPOT arguments name a Spot in ./.hokuro, a path to a ledger file, or a database URL.
    Every command takes --json for scripts. Exit codes: 0 ok, 1 not found or nothing to do,
    2 usage error.
    """


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of text.")
def version(as_json: bool) -> None:
    """Print hokuro's version."""
    if as_json:
        click.echo(json.dumps({"version": __version__}))
    else:
        click.echo(f"hokuro {__version__}")


def _register() -> None:
    from . import (  # noqa: F401  (each registers commands)
        cleaning,
        demo,
        reading,
        retrying,
        runs,
        ui,
        workers,
    )
    from .script import check_cmd  # noqa: F401  (check, example, and run FILE in runs' group)


_register()
