"""A parsed script as plain data: step definitions, pipes, calls and loops, with positions.

:mod:`hokuro.script.syntax` makes a :class:`Script` from text; :mod:`hokuro.script.compiler`
turns it into a plan. Nothing here runs or imports anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The languages a step may be written in, by every name buelon accepted.
LANGUAGES = {
    "python": "python", "python3": "python", "py": "python",
    "sqlite3": "sqlite3", "sqlite": "sqlite3",
    "postgres": "postgres", "postgresql": "postgres", "pg": "postgres",
}


@dataclass(frozen=True, slots=True)
class Name:
    """A name as written in the script, with where it stands (1-based line and column)."""

    text: str
    line: int
    column: int

    def __str__(self) -> str:
        return self.text


@dataclass(slots=True)
class StepOptions:
    """What a step's ``$ scope``, ``!N``, ``!scope``, ``!priority``, ``!timeout``,
    ``!retries`` and ``!poll`` lines say (None: not said, the default applies)."""

    scope: str | None = None
    priority: int | None = None
    timeout: float | None = None
    retries: int | None = None
    poll: float | None = None

    def over(self, defaults: StepOptions) -> StepOptions:
        """These options, with ``defaults`` where these say nothing."""
        return StepOptions(*(mine if mine is not None else theirs for mine, theirs in zip(
            self.astuple(), defaults.astuple(), strict=True)))

    def astuple(self) -> tuple[object, ...]:
        return (self.scope, self.priority, self.timeout, self.retries, self.poll)


@dataclass(slots=True)
class StepDef:
    """One step: ``name:`` then language, function or table, file or code."""

    name: Name
    language: str  # "python", "sqlite3" or "postgres"
    function: Name  # the function (python) or the table (sql)
    file: str | None  # a file path, relative to the script's folder ...
    code: str | None  # ... or the code between backticks
    code_line: int  # the line of the opening backtick (or of the file path)
    options: StepOptions = field(default_factory=StepOptions)


@dataclass(slots=True)
class PipeDef:
    """``name = a | b | c``."""

    name: Name
    steps: tuple[Name, ...]


@dataclass(slots=True)
class Call:
    """``p()``, ``v = p()``, ``q(v)``, ``j(a, b)``."""

    target: Name
    arguments: tuple[Name, ...]
    result: Name | None


@dataclass(slots=True)
class Loop:
    """``for x in p():`` and its body of calls."""

    variable: Name
    source: Name
    body: tuple[Call, ...]
    line: int


@dataclass(slots=True)
class Script:
    """A whole script: its steps and pipes by name, and what it runs, in order."""

    path: str  # as given (for messages); "<script>" for text without a file
    text: str
    steps: dict[str, StepDef] = field(default_factory=dict)
    pipes: dict[str, PipeDef] = field(default_factory=dict)
    runs: list[Call | Loop] = field(default_factory=list)
    indent: str = "    "

    def line(self, number: int) -> str:
        lines = self.text.splitlines()
        return lines[number - 1] if 0 < number <= len(lines) else ""
