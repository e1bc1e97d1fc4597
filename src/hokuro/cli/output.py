"""How commands write: JSON for scripts, rich tables on a terminal, plain text in a pipe.

Plain text is written without rich on purpose: rich wraps and crops to a guessed width and
draws box characters, which breaks ``grep``/``cut``/``awk`` on piped output.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import click

from ..model.redact import mask_secrets

#: Columns whose values are right-aligned (numbers).
_NUMERIC = frozenset({"records", "count", "attempts", "size", "total", "done", "failed",
                      "running", "expired", "cancelled", "queued", "waiting", "duration",
                      "ledger size", "done/total", "blocked"})


class Output:
    """The writer of one command run."""

    def __init__(self, as_json: bool = False) -> None:
        self.as_json = as_json
        self.terminal = sys.stdout.isatty()
        self._console: Any = None

    @property
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=sys.stdout, markup=False, highlight=False,
                                    emoji=False)
        return self._console

    # -- machine output -------------------------------------------------------------------
    def json(self, value: Any) -> None:
        # Masked like everything else: a URL with a password may sit in any field.
        click.echo(mask_secrets(json.dumps(value, indent=2, ensure_ascii=False, default=repr)))

    # -- people's output ------------------------------------------------------------------
    def line(self, text: str = "") -> None:
        click.echo(mask_secrets(text))

    def note(self, text: str) -> None:
        """A remark for people that must not mix with data on stdout."""
        click.echo(mask_secrets(text), err=True)

    def title(self, text: str) -> None:
        if self.terminal:
            self.console.rule(mask_secrets(text))
        else:
            click.echo(f"== {mask_secrets(text)} ==")

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
              title: str | None = None) -> None:
        cells = [[_cell(value) for value in row] for row in rows]
        if self.terminal:
            from rich.table import Table

            table = Table(title=title, title_justify="left")
            for name in columns:
                table.add_column(name, justify="right" if name in _NUMERIC else "left",
                                 overflow="fold")
            for row in cells:
                table.add_row(*row)
            self.console.print(table)
            return
        if title:
            click.echo(title)
        widths = [max([len(name)] + [len(row[i]) for row in cells])
                  for i, name in enumerate(columns)]

        def render(row: Sequence[str]) -> str:
            parts = [value.rjust(widths[i]) if columns[i] in _NUMERIC else value.ljust(widths[i])
                     for i, value in enumerate(row)]
            return "  ".join(parts).rstrip()

        click.echo(render(list(columns)))
        for row in cells:
            click.echo(render(row))

    def fields(self, pairs: Sequence[tuple[str, Any]], *, title: str | None = None) -> None:
        """Label/value pairs, one per line."""
        shown = [(label, _cell(value)) for label, value in pairs if value not in (None, "")]
        if self.terminal:
            from rich.table import Table

            table = Table(title=title, title_justify="left", show_header=False, box=None)
            table.add_column(style="bold")
            table.add_column(overflow="fold")
            for label, value in shown:
                table.add_row(label, value)
            self.console.print(table)
            return
        if title:
            click.echo(f"== {title} ==")
        width = max((len(label) for label, _ in shown), default=0)
        for label, value in shown:
            click.echo(f"{label.ljust(width)}  {value}")

    def block(self, title: str, text: str) -> None:
        """A titled block of text (a traceback, a log, a value)."""
        self.title(title)
        click.echo(mask_secrets(text.rstrip("\n")))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    text = value if isinstance(value, str) else str(value)
    return mask_secrets(text.replace("\r", " ").replace("\n", " "))


# -- formatting ----------------------------------------------------------------------------

def when(epoch: float | None) -> str:
    """Local time, to the second, for people."""
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def iso(epoch: float | None) -> str | None:
    """ISO 8601 in UTC, for scripts."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def stamps(**epochs: float | None) -> dict[str, Any]:
    """``{name: epoch, name_iso: "..."}`` for each timestamp given."""
    out: dict[str, Any] = {}
    for name, epoch in epochs.items():
        out[name] = epoch
        out[f"{name}_iso"] = iso(epoch)
    return out


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} s" if value < 100 else f"{value:.0f} s"


def jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` made of JSON types: containers kept, anything else as its repr."""
    if value is None or isinstance(value, bool | int | float | str):
        if isinstance(value, float) and not math.isfinite(value):
            return repr(value)
        return value
    if depth > 50:
        return repr(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v, depth + 1) for v in value]
    return repr(value)


def truncate(text: str, limit: int) -> str:
    if limit <= 0 or len(text) <= limit:
        return text
    return text[:limit] + f"\n… ({len(text) - limit} more characters; --max-chars 0 shows all)"
