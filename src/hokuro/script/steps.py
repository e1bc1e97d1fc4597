"""A script's steps as functions of a Spot: Python, SQLite and PostgreSQL steps.

A Python step's function is imported from its file, relative to the script's folder, once
per process (the module is cached like any import; its folder goes on ``sys.path`` so it
can import its neighbours). Code between backticks is the user's own Python: it is
compiled as a module of its own (named after the script and step, its line numbers those
of the script), the way an imported file would be — hokuro never evaluates *script* text.

Each step becomes a :class:`ScriptStep`, a marked function of the Spot named
``<script>.<step>``, with the step's scope, priority, timeout, retries and poll delay as
its step options; its ``fn_path`` is ``script:<absolute path of the script>#<step>``, which
:func:`hokuro.script.resolve_step` turns back into the step in another process.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import sys
import textwrap
import threading
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..engine.marking import MarkedFunction
from ..engine.options import MarkOptions
from ..errors import ConfigurationError, ScriptError
from .results import steer
from .sql import run_postgres, run_sqlite
from .statements import Script, StepDef

#: Where a postgres step's database is named when neither the script's caller nor the Spot
#: names one.
POSTGRES_ENV = "HOKURO_POSTGRES_URL"

_modules: dict[Path, types.ModuleType] = {}
_importing = threading.RLock()


class ScriptStep(MarkedFunction):
    """A step of a script, marked on a Spot: calling it runs the step and records it."""

    def __init__(self, spot: Any, fn: Callable[..., Any], options: MarkOptions,
                 fn_path: str, definition: StepDef) -> None:
        super().__init__(spot, fn, options)
        self.fn_path = fn_path
        self.definition = definition


def step_fn_path(script_path: Path, step: str) -> str:
    """The ``fn_path`` of a script step: ``script:<absolute path>#<step>``."""
    return f"script:{script_path}#{step}"


def step_function(script: Script, base: Path, step: StepDef,
                  postgres_url: Callable[[], str] | None) -> Callable[..., Any]:
    """The function a job of ``step`` calls with its parents' results."""
    name = step.name.text
    run: Callable[..., Any]
    if step.language == "python":
        user = python_function(script, base, step)
        if inspect.iscoroutinefunction(user):
            async def run(*inputs: Any) -> Any:  # an async step runs on the run's loop
                return steer(await user(*inputs), inputs, name)
        else:
            def run(*inputs: Any) -> Any:
                return steer(user(*inputs), inputs, name)
        run.user_function = user  # type: ignore[attr-defined]  # its signature, for checks
    elif step.language == "sqlite3":
        query, table = _query(script, base, step), step.function.text

        def run(*inputs: Any) -> Any:
            return run_sqlite(query, table, inputs, name)
        run.query = query  # type: ignore[attr-defined]  # its version
    else:
        query, table = _query(script, base, step), step.function.text

        def run(*inputs: Any) -> Any:
            if postgres_url is None:
                raise ConfigurationError(f"{name} is a postgres step and no database is "
                                         f"named: set {POSTGRES_ENV}")
            return run_postgres(postgres_url(), query, table, inputs, name)
        run.query = query  # type: ignore[attr-defined]
    run.__name__ = run.__qualname__ = name
    run.__module__ = "hokuro.script"
    run.__doc__ = f"The {step.language} step {name} of {script.path}."
    return run


def mark_step(spot: Any, script: Script, path: Path, step: StepDef,
              fn: Callable[..., Any]) -> ScriptStep:
    """``fn`` marked on ``spot`` as the step ``step`` of the script at ``path``."""
    o = step.options
    version = step_version(step, getattr(fn, "query", None))
    options = MarkOptions.parse({
        "name": f"{path.stem}.{step.name.text}", "version": version,
        "scope": o.scope, "priority": o.priority, "timeout": o.timeout,
        "retries": o.retries, "poll": o.poll})
    return ScriptStep(spot, fn, options, step_fn_path(path, step.name.text), step)


def step_version(step: StepDef, query: str | None = None) -> str | None:
    """Code in the script (SQL, backtick Python) and SQL files version their step: editing
    the query computes its results anew. A Python file's function is versioned by its
    author, as any marked function (none: results are kept across edits)."""
    if step.code is None and step.language == "python":
        return None
    code = step.code if step.code is not None else query or ""
    material = f"{step.language}\n{step.function.text}\n{code}"
    return "script-" + hashlib.sha256(material.encode()).hexdigest()[:16]


def _query(script: Script, base: Path, step: StepDef) -> str:
    """A SQL step's query: its backtick code, or the text of its file (read once, here)."""
    if step.code is not None:
        return step.code
    assert step.file is not None
    path = base / step.file
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _at(script, step.code_line, 1 + _indent(script.line(step.code_line)),
                  f"the query of {step.name.text} cannot be read from {path}: "
                  f"{getattr(exc, 'strerror', None) or exc}") from None


def _at(script: Script, line: int, column: int, reason: str) -> ScriptError:
    return ScriptError(reason, path=script.path, line=line, column=column,
                       text=script.line(line))


def python_function(script: Script, base: Path, step: StepDef) -> Callable[..., Any]:
    """The function of a python step, from its file or its backtick code."""
    if step.code is not None:
        module = _inline_module(script, step)
        where = "its code"
    else:
        assert step.file is not None
        module = load_module(script, base, step)
        where = step.file
    function = step.function.text
    found = getattr(module, function, None)
    if found is None or not callable(found):
        what = "no function" if found is None else f"a {type(found).__name__}, not a function,"
        raise _at(script, step.function.line, step.function.column,
                  f"{where} has {what} named {function!r} (step {step.name.text})")
    return found


def load_module(script: Script, base: Path, step: StepDef) -> types.ModuleType:
    """The module at ``step.file`` (relative to ``base``), imported once per process."""
    assert step.file is not None
    path = (base / step.file).resolve()
    with _importing:
        module = _modules.get(path)
        if module is not None:
            return module
        if not path.is_file():
            raise _at(script, step.code_line, 1 + _indent(script.line(step.code_line)),
                      f"no file {step.file} next to the script (looked for {path})")
        name = path.stem
        existing = sys.modules.get(name)
        if not name.isidentifier() or (existing is not None and getattr(
                existing, "__file__", None) != str(path)):
            name = f"hokuro_script_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}_" \
                   f"{''.join(c if c.isalnum() else '_' for c in path.stem)}"
        module = sys.modules.get(name)
        if module is None or getattr(module, "__file__", None) != str(path):
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise _at(script, step.code_line, 1, f"{step.file} cannot be imported as "
                          "Python (give a .py file)")
            module = importlib.util.module_from_spec(spec)
            folder = str(path.parent)
            if folder not in sys.path:
                sys.path.append(folder)  # its neighbours import as they would in a worker
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException as exc:
                sys.modules.pop(name, None)
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
                raise _at(script, step.code_line, 1 + _indent(script.line(step.code_line)),
                          f"importing {step.file} failed: {type(exc).__name__}: {exc}") \
                    from exc
        _modules[path] = module
        return module


def _inline_module(script: Script, step: StepDef) -> types.ModuleType:
    assert step.code is not None
    label = f"{Path(script.path).stem}.{step.name.text}"
    name = "hokuro_script_inline_" + "".join(c if c.isalnum() else "_" for c in label)
    module = types.ModuleType(name, f"The backtick code of step {step.name.text} of "
                                    f"{script.path}.")
    module.__file__ = os.path.abspath(script.path)
    # The code's first line is the rest of the backtick's line: padding keeps tracebacks
    # pointing at the script's own line numbers.
    code = "\n" * (step.code_line - 1) + textwrap.dedent(step.code)
    try:
        compiled = compile(code, module.__file__, "exec")
    except SyntaxError as exc:
        line = exc.lineno or step.code_line
        raise _at(script, line, exc.offset or 1,
                  f"the Python code of step {step.name.text} does not compile: {exc.msg}") \
            from None
    try:
        # The user's own code, written between backticks to define the step's function:
        # run as a module, as an imported file would be. Script text is never run.
        exec(compiled, module.__dict__)
    except Exception as exc:
        raise _at(script, step.code_line, 1, f"the Python code of step {step.name.text} "
                  f"failed when loaded: {type(exc).__name__}: {exc}") from exc
    return module


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())
