"""The README's command line section, generated from the commands themselves.

``python -m hokuro.cli.reference`` prints it; ``--write README.md`` replaces the block
between ``<!-- cli-start -->`` and ``<!-- cli-end -->``. A test compares the README with
:func:`render`, so the documentation cannot drift from ``--help``.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import click

from .app import main

START = "<!-- cli-start -->"
END = "<!-- cli-end -->"
#: The order commands are documented in; commands not named here follow alphabetically.
ORDER = ("spots", "list", "show", "log", "stats", "errors", "retry", "runs", "run", "submit",
         "worker", "workers", "delete", "clear", "prune", "clean", "gc", "demo", "version")

INTRO = """\
## Command line

`hokuro` reads and tends the records and runs of your Spots. Every command is a thin layer
over `hokuro.admin`: `maintenance.MaintenanceService` for tasks, `runs` for runs.

- **SPOT** is a Spot name looked up in `./.hokuro` (`--workspace` changes the folder), a
  path to a ledger file, or a database URL (`postgresql://user@host/db`). A database may
  hold several Spots: `hokuro spots URL` lists them and `--spot NAME` chooses one (with
  only one, it is used). Blobs are found where the Spot recorded them; `--blobs` or
  `HOKURO_BLOBS` says otherwise. A SPOT that does not exist is an error: no command
  creates one.
- Reading commands (`spots`, `list`, `show`, `log`, `stats`, `errors`, `runs`, `run show`)
  and the pages of `ui` never create, migrate or write anything.
- A run's ID is its id, the first characters of its id (as `hokuro runs` shows them), or
  its name (the newest run of that name).
- Removing commands (`delete`, `clear`, `prune`, `clean`, `gc`) show what they would
  remove and ask first; `--yes` skips the question, `--dry-run` only shows.
- `--json` prints JSON for scripts (timestamps as epoch seconds plus `*_iso` UTC strings).
  Otherwise output is a table on a terminal and plain aligned text in a pipe.
- Exit codes: 0 ok, 1 not found or nothing to do, 2 usage error. Passwords in database
  URLs are always shown as `***`.
"""


def commands() -> list[tuple[str, click.Command]]:
    """Every command people run, by its full name: a group's commands as "group command"."""
    known = dict(main.commands)
    names = [n for n in ORDER if n in known] + sorted(n for n in known if n not in ORDER)
    found: list[tuple[str, click.Command]] = []
    for name in names:
        command = known[name]
        if isinstance(command, click.Group):
            file_command = getattr(command, "file_command", None)  # hokuro run FILE
            if file_command is not None:
                found.append((name, file_command))
            found += [(f"{name} {sub}", command.commands[sub]) for sub in command.commands]
        else:
            found.append((name, command))
    return found


def _help_text(command: click.Command) -> str:
    # Lines holding only "\b" are click's "do not rewrap" markers, not prose.
    text = inspect.cleandoc(command.help or "")
    return "\n".join(line for line in text.splitlines() if line.strip() != "\b")


def render_command(name: str, command: click.Command) -> str:
    parent = click.Context(main, info_name="hokuro")
    ctx = click.Context(command, info_name=name, parent=parent)
    usage = " ".join(["hokuro", name, *command.collect_usage_pieces(ctx)])
    lines = [f"### `hokuro {name}`", "", "```", usage, "```", "", _help_text(command), ""]
    options = [param.get_help_record(ctx) for param in command.get_params(ctx)
               if isinstance(param, click.Option) and "--help" not in param.opts]
    if options:
        for record in options:
            if record is None:
                continue
            flags, help_text = record
            lines.append(f"- `{flags}`: {' '.join(help_text.split())}")
        lines.append("")
    return "\n".join(lines)


def render() -> str:
    """The whole block, markers included."""
    parts = [START, INTRO]
    parts.extend(render_command(name, command) for name, command in commands())
    parts.append(END)
    return "\n".join(parts) + "\n"


def write(readme: Path) -> bool:
    """Put the block into ``readme`` (replacing the old one, or appended); True if the
    file changed."""
    text = readme.read_text("utf-8") if readme.exists() else ""
    block = render()
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        new = head + block + tail
    else:
        new = text.rstrip("\n") + "\n\n" + block if text else block
    if new == text:
        return False
    readme.write_text(new, "utf-8")
    return True


def readme_block(readme: Path) -> str | None:
    """The block currently in ``readme``, markers included, or None."""
    text = readme.read_text("utf-8")
    if START not in text or END not in text:
        return None
    return START + text.split(START, 1)[1].split(END, 1)[0] + END + "\n"


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"] and len(sys.argv) == 3:
        changed = write(Path(sys.argv[2]))
        print(f"{sys.argv[2]}: {'updated' if changed else 'already up to date'}")
    elif len(sys.argv) == 1:
        sys.stdout.write(render())
    else:
        sys.exit("usage: python -m hokuro.cli.reference [--write README.md]")
