"""Reading a script: the lark grammar (``grammar.lark``) and the tree it gives, made into a
:class:`~hokuro.script.statements.Script`.

Every mistake becomes one :class:`~hokuro.errors.ScriptError` naming the file, line and
column, showing the line with a caret, and saying what was expected. The parser is LALR
(one pass, linear time); nothing in a script is evaluated by Python: ``!timeout``
expressions are arithmetic on numbers and durations, computed from the grammar's tree.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import PlanError, ScriptError
from ..model.steps import check_priority, check_scope
from .statements import (
    LANGUAGES,
    Call,
    Loop,
    Name,
    PipeDef,
    Script,
    StepDef,
    StepOptions,
)

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
#: Words of the language that cannot name a step, a pipe or a variable.
RESERVED = frozenset({"for", "in", "import", "as", "TAB"})
LANGUAGE_LINE = "a step needs a language line: python, sqlite3 or postgres"
#: What each terminal of the grammar is, in words.
_TERMINALS = {
    "NAME": "a name", "LANGUAGE": "a language (python, sqlite3 or postgres)",
    "CODE": "code between backticks", "PATH": "a file path",
    "SCOPE_LINE": "a '$ scope' line", "PRIORITY_LINE": "a '!N' priority line",
    "SCOPE": "a scope name", "STRING": "a quoted string", "INT": "a whole number",
    "SIGNED_INT": "a whole number", "NUMBER": "a number",
    "UNIT": "a unit (ms, s, min, h or d)", "_NL": "the end of the line",
    "_IND": "an indented line", "$END": "the end of the file",
}


@functools.cache
def _parser() -> Any:
    try:
        import lark
    except ImportError:  # pragma: no cover - the extra is part of the install
        from ..errors import MissingDependency

        raise MissingDependency("lark", "script") from None
    grammar = (Path(__file__).parent / "grammar.lark").read_text(encoding="utf-8")
    return lark.Lark(grammar, parser="lalr", lexer="contextual", propagate_positions=True,
                     maybe_placeholders=True)


def parse_file(path: str | Path) -> Script:
    """Read and parse the script at ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not script
    except FileNotFoundError:
        raise ScriptError(f"no script at {path}; give the path of a .bue file",
                          path=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ScriptError(f"the script is not UTF-8 text ({exc.reason} at byte {exc.start})",
                          path=str(path)) from None
    return parse(text, str(path))


def parse(text: str, path: str = "<script>") -> Script:
    """Parse the text of a script; ``path`` names it in messages."""
    import lark

    if not isinstance(text, str):
        raise ScriptError(f"a script is text, not {type(text).__name__}", path=path)
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ScriptError("a script is text: it holds a NUL character", path=path, line=line,
                          column=1)
    # Every statement ends with a newline; a file without a last one gets it here (the
    # positions of everything before stay the same).
    source = text if text.endswith("\n") else text + "\n"
    try:
        tree = _parser().parse(source)
    except lark.exceptions.UnexpectedInput as exc:
        raise _unexpected(exc, source, path) from None
    except RecursionError:
        raise ScriptError("the script nests too deeply to read", path=path) from None
    return _Builder(Script(path=path, text=text)).build(tree)


# -- what a parse error means ----------------------------------------------------------------

def _unexpected(exc: Any, text: str, path: str) -> ScriptError:
    import lark

    lines = text.splitlines()
    line = getattr(exc, "line", -1)
    column = getattr(exc, "column", -1)
    if isinstance(exc, lark.exceptions.UnexpectedCharacters):
        expected = set(exc.allowed or ())
        found_type, found = "CHAR", text[exc.pos_in_stream]
    else:
        token = exc.token
        expected = set(getattr(exc, "expected", None) or getattr(exc, "accepts", None) or ())
        found_type, found = token.type, str(token.value)
        if found_type == "$END" or line is None or line < 1:
            line = len(lines)
            column = len(lines[-1]) + 1 if lines else 1
    if found_type == "_NL":  # the newline token starts where the line's content ends
        line, column = _end_of_content(lines, line, column)
    shown = lines[line - 1] if 0 < line <= len(lines) else ""
    above = [lines[i] for i in range(min(line, len(lines) + 1) - 2, -1, -1)
             if lines[i].split("#")[0].strip()]
    reason = _reason(expected, found_type, found, shown, column, above)
    return ScriptError(reason, path=path, line=line, column=column, text=shown)


def _end_of_content(lines: list[str], line: int, column: int) -> tuple[int, int]:
    if 0 < line <= len(lines):
        content = re.sub(r"\s*(#.*)?$", "", lines[line - 1])
        return line, len(content) + 1
    return line, column


def _found(found_type: str, found: str) -> str:
    if found_type in ("_NL", "$END", "_IND"):
        return {"_NL": "the end of the line", "$END": "the end of the file",
                "_IND": "an indented line"}[found_type]
    return repr(found if len(found) <= 24 else found[:21] + "...")


def _word_before(line: str, column: int) -> str:
    words = re.findall(r"[A-Za-z0-9_-]+", line[:max(column - 1, 0)])
    return words[-1] if words else "a"


def _block_lines(above: list[str]) -> int:
    """How many of the language, name and source lines the step block above has."""
    count = 0
    for text in above:
        if not text[:1].isspace():
            break
        if not text.strip().startswith(("$", "!")):
            count += 1
    return count


def _reason(expected: set[str], found_type: str, found: str, line: str, column: int,
            above: list[str]) -> str:
    options = {"SCOPE_LINE", "PRIORITY_LINE"}
    word = re.match(r"[^\s#]*", line[max(column - 1, 0):])
    word_text = word.group(0) if word else found
    if found.startswith("`"):
        return "code between backticks is never closed: end it with a ` at the end of a line"
    if "LANGUAGE" in expected:
        if found_type in ("NAME", "SCOPE", "CHAR", "PATH") and word_text:
            return f"unknown language {word_text!r}: {LANGUAGE_LINE}"
        return LANGUAGE_LINE
    if expected == {"_IND"} and found_type != "_IND":
        if above and above[0].startswith("for"):
            return "a loop needs a body: indented calls under the for line"
        have = _block_lines(above)
        if have == 1:
            return ("a step needs its function (python) or table (sql) name on the line "
                    "after the language")
        if have == 2:
            return ("a step needs a file path or code between backticks on the line after "
                    "its function or table name")
        return f"{LANGUAGE_LINE} (indented under the step's name)"
    if {"CODE", "PATH"} <= expected:
        return ("expected the step's file path or code between backticks (its line after "
                f"the function or table name), not {_found(found_type, found)}")
    if "NAME" in expected and options <= expected and "FOR" not in expected:
        return ("expected the step's function (python) or table (sql) name, not "
                f"{_found(found_type, found)}")
    if found_type == "_IND":
        return ("unexpected indentation: only the lines of a step block, of a loop body and "
                "inside parentheses are indented")
    if expected == {"_NL"} and line[:1] in " \t" and re.search(r"[./\\]", word_line(line)):
        return (f"a step's second line is its function (python) or table (sql) name, and "
                f"{word_line(line)!r} is not a name (letters, digits, '_' and '-'); is the "
                "name line missing?")
    if found.startswith("(") and "RPAR" in expected and "COMMA" in expected:
        return ("nested calls are not allowed: assign the inner call first (v = p()), then "
                "pass the variable (q(v))")
    if expected == {"RPAR"}:
        return ("the source of a loop takes no argument: write for x in p(): (a loop's "
                "source is a call of a pipe with nothing between the parentheses)")
    if "VBAR" in expected and "LPAR" in expected and found_type in ("_NL", "$END"):
        name = _word_before(line, column)
        return f"a one-step pipe needs a bar: write '| {name}' or '{name} |'"
    if {"COLON", "EQUAL", "LPAR"} <= expected:
        return (f"expected ':' (a step block), '=' (a pipe or an assignment) or '(' (a call) "
                f"after the name, not {_found(found_type, found)}")
    if found_type in ("FOR", "IN", "IMPORT", "AS", "TAB") or found in RESERVED:
        return (f"{found!r} is a reserved word of the script language; it cannot name a "
                "step, a pipe or a variable")
    wanted = sorted({_describe(t) for t in expected})
    if not wanted:
        return f"unexpected {_found(found_type, found)}"
    said = wanted[0] if len(wanted) == 1 else ", ".join(wanted[:-1]) + " or " + wanted[-1]
    return f"expected {said}, not {_found(found_type, found)}"


def word_line(line: str) -> str:
    return line.split("#")[0].strip()


def _describe(terminal: str) -> str:
    if terminal in _TERMINALS:
        return _TERMINALS[terminal]
    try:
        pattern = _parser().get_terminal(terminal).pattern
    except (KeyError, AttributeError):
        return terminal.lower()
    return f"'{pattern.value}'"


# -- the tree, made into a Script ------------------------------------------------------------

class _Builder:
    """Walks the parse tree once, in order: top-level settings apply to the steps after
    them (buelon applied the last one everywhere; the README's example reads the same)."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.defaults = StepOptions()
        self.names: dict[str, tuple[str, int]] = {}  # step or pipe name -> (kind, line)

    def error(self, reason: str, line: int, column: int) -> ScriptError:
        return ScriptError(reason, path=self.script.path, line=line, column=column,
                           text=self.script.line(line))

    def at(self, token: Any, reason: str) -> ScriptError:
        return self.error(reason, token.line, token.column)

    def build(self, tree: Any) -> Script:
        for node in tree.children:
            getattr(self, f"_{node.data}")(node)
        return self.script

    # -- statements -----------------------------------------------------------------------
    def _step(self, node: Any) -> None:
        header, *rest = node.children
        options = StepOptions()
        parts: list[Any] = []
        for child in rest:
            if _is_tree(child):
                self.option(child, options)
            else:
                parts.append(child)
        language_token, function_token, source_token = parts
        self.add_step(self.name(header), language_token, self.name(function_token),
                      source_token, options)

    def _import_steps(self, node: Any) -> None:
        language_token, *items, source = node.children
        source_token = source.children[0]
        for item in items:
            names = [c for c in item.children if not _is_tree(c)]
            options = StepOptions()
            for child in item.children:
                if _is_tree(child):
                    self.option(child, options)
            function = self.name(names[0])
            alias = self.name(names[1]) if len(names) > 1 else function
            self.add_step(alias, language_token, function, source_token, options)

    def add_step(self, name: Name, language_token: Any, function: Name, source: Any,
                 options: StepOptions) -> None:
        self.claim(name, "step")
        language = LANGUAGES[str(language_token)]
        text = str(source)
        code = file = None
        if source.type == "CODE":
            code = text[1:-1]
        else:
            file = text
        self.script.steps[name.text] = StepDef(
            name=name, language=language, function=function, file=file, code=code,
            code_line=source.line, options=options.over(self.defaults))

    def _pipe_def(self, node: Any) -> None:
        name_token, pipe = node.children
        name = self.name(name_token)
        self.claim(name, "pipe")
        self.script.pipes[name.text] = PipeDef(name, tuple(self.name(t) for t in pipe.children))

    def _call(self, node: Any) -> None:
        self.script.runs.append(self.call(node))

    _assign = _call

    def call(self, node: Any) -> Call:
        result = node.children[0] if node.data == "assign" else None
        target, arguments = node.children[-2:]
        return Call(target=self.name(target),
                    arguments=tuple(self.name(t) for t in arguments.children)
                    if arguments is not None else (),
                    result=self.name(result) if result is not None else None)

    def _loop(self, node: Any) -> None:
        variable, source, *body = node.children
        self.script.runs.append(Loop(self.name(variable), self.name(source),
                                     tuple(self.call(c) for c in body), variable.line))

    def _setting(self, node: Any) -> None:
        self.option(node.children[0], self.defaults)

    def _tab(self, node: Any) -> None:
        token = node.children[0]
        value = str(token)[1:-1]
        if not value or value.strip(" \t"):
            raise self.at(token, f"TAB is the indentation of blocks and loop bodies: spaces "
                                 f"or tabs, such as '  ', not {value!r}")
        self.script.indent = value

    # -- parts ----------------------------------------------------------------------------
    def name(self, token: Any) -> Name:
        text = str(token)
        if text in RESERVED:
            raise self.at(token, f"{text!r} is a reserved word of the script language; it "
                                 "cannot name a step, a pipe or a variable")
        return Name(text, token.line, token.column)

    def claim(self, name: Name, kind: str) -> None:
        seen = self.names.get(name.text)
        if seen is not None:
            first_kind, first_line = seen
            what = (f"{kind} {name.text!r} is defined twice" if first_kind == kind else
                    f"{name.text!r} names both a {first_kind} and a {kind}")
            raise self.error(f"{what} (first at line {first_line}); give each a name of "
                             "its own", name.line, name.column)
        self.names[name.text] = (kind, name.line)

    def option(self, node: Any, into: StepOptions) -> None:
        kind = node.data
        token = node.children[0]
        try:
            if kind in ("scope", "scope_word"):
                value = str(token)
                scope = value[1:].strip() if kind == "scope" else value
                if not scope:
                    raise self.at(token, "a '$' line needs a scope name after the $, such as "
                                         "'$ production-small'")
                into.scope = check_scope(scope, "this line")
            elif kind in ("priority", "priority_word"):
                value = str(token)
                into.priority = check_priority(
                    int(value[1:].strip() if kind == "priority" else value), "this line")
            elif kind == "retries":
                into.retries = int(str(token))
            elif kind in ("timeout", "poll"):
                seconds = self.duration(token.children[0], kind)
                if kind == "timeout":
                    into.timeout = seconds or None  # buelon: 0 is "no timeout"
                else:
                    into.poll = seconds
        except PlanError as exc:
            raise self.at(_first_token(node), str(exc)) from None

    def duration(self, node: Any, what: str) -> float:
        seconds = self.arithmetic(node)
        if not math.isfinite(seconds) or seconds < 0:
            token = _first_token(node)
            raise self.at(token, f"!{what} must come to a finite number of seconds >= 0, not "
                                 f"{seconds:g}")
        return seconds

    def arithmetic(self, node: Any) -> float:
        if not _is_tree(node):
            return float(str(node))
        kind, parts = node.data, node.children
        if kind == "number":
            number, unit = parts[0], parts[1] if len(parts) > 1 else None
            return float(str(number)) * (_UNITS[str(unit)] if unit is not None else 1.0)
        if kind == "neg":
            return -self.arithmetic(parts[0])
        left, right = self.arithmetic(parts[0]), self.arithmetic(parts[1])
        if kind == "add":
            return left + right
        if kind == "sub":
            return left - right
        if kind == "mul":
            return left * right
        if right == 0:
            raise self.at(_first_token(parts[1]), "division by zero in a duration")
        return left / right if kind == "div" else math.fmod(left, right)


def _is_tree(node: Any) -> bool:
    return hasattr(node, "data")


def _first_token(node: Any) -> Any:
    for token in _tokens(node):
        return token
    raise AssertionError("an option without a token")  # pragma: no cover - the grammar


def _tokens(node: Any) -> Iterator[Any]:
    if _is_tree(node):
        for child in node.children:
            if child is not None:
                yield from _tokens(child)
    else:
        yield node
