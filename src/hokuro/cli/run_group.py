"""The ``hokuro run`` group: its commands (``show``, ``cancel``), and a script file.

``hokuro run show …`` and ``hokuro run cancel …`` are commands of the group; any other first
word is a script to run (``hokuro run example.bue``), handed to the group's
``file_command`` (set by :mod:`hokuro.cli.script`). A script named like a command is given
with its folder: ``hokuro run ./show``.
"""

from __future__ import annotations

from typing import Any

import click


class RunGroup(click.Group):
    """A click group that runs a file when its first argument is not one of its commands."""

    file_command: click.Command | None = None

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        first = args[0] if args else None
        if (self.file_command is not None and first is not None
                and first not in self.commands and not first.startswith("-")):
            # The whole argument list (the file first) goes to the file command, whose
            # usage then reads "hokuro run [OPTIONS] FILE".
            return None, self.file_command, args
        return super().resolve_command(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "FILE [OPTIONS] | COMMAND [ARGS]...")


class FileCommand(click.Command):
    """The command a :class:`RunGroup` hands a file to: its usage reads as the group's."""

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        path = ctx.parent.command_path if ctx.parent is not None else ctx.command_path
        formatter.write_usage(path, " ".join(self.collect_usage_pieces(ctx)))
