"""The ``hokuro`` command group; each command lives in its own module and registers here."""

from __future__ import annotations

import click

from .. import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """hokuro keeps the books of your batch work: task records, results, errors and logs.

    SPOT arguments name a Spot in ./.hokuro, a path to a ledger file, or a database URL.
    """


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def version(as_json: bool) -> None:
    """Print hokuro's version."""
    if as_json:
        click.echo(f'{{"version": "{__version__}"}}')
    else:
        click.echo(f"hokuro {__version__}")


def _register() -> None:
    from . import demo  # noqa: F401  (registers its command)


_register()
