"""A parsed script compiled to a :class:`hokuro.Plan` — the same plan a Python user builds.

``p()`` is ``plan.call(p)``; ``v = p()`` keeps the call's value under ``v``; ``q(v)`` and
``j(a, b)`` call with parents; ``for x in p(): body`` is ``plan.each(p, body)``. Pipes
are :class:`hokuro.Pipe` objects of the steps. Before anything runs, compiling refuses
unknown steps and pipes, variables used before they are assigned (or outside their loop),
a step given more or fewer inputs than its function takes, and a loop body that never
uses its element; each message points at the place in the script.
"""

from __future__ import annotations

import difflib
import inspect
import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, PlanError, ScriptError
from ..model.plans import Pipe, Plan, Value
from .statements import Call, Loop, Name, Script, StepDef
from .steps import POSTGRES_ENV, ScriptStep, mark_step, step_fn_path, step_function
from .syntax import parse_file


@dataclass
class CompiledScript:
    """A script made into a plan: ``plan`` runs it; ``steps`` by step name."""

    script: Script
    path: Path
    plan: Plan
    steps: dict[str, Any]

    @property
    def name(self) -> str:
        """The run's name: the script's file name."""
        return self.path.name


class _Planned:
    """A step for checking and printing a plan without a Spot (``hokuro check``)."""

    def __init__(self, fn: Callable[..., Any], name: str, fn_path: str,
                 definition: StepDef) -> None:
        from ..engine.options import MarkOptions

        self.fn = fn
        self.name = name
        self.fn_path = fn_path
        self.definition = definition
        o = definition.options
        self.options = MarkOptions.parse({"scope": o.scope, "priority": o.priority,
                                          "timeout": o.timeout, "retries": o.retries,
                                          "poll": o.poll})
        self.__signature__ = inspect.signature(fn)

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)


def load(path: str | os.PathLike[str], spot: Any = None, *,
         postgres_url: str | None = None) -> CompiledScript:
    """Parse and compile the script at ``path``. With a Spot, its steps are marked
    functions of that Spot, ready to run; without, the plan is only for looking at."""
    absolute = Path(path).resolve()
    script = parse_file(path)
    return compile_script(script, absolute, spot, postgres_url=postgres_url)


def compile_script(script: Script, path: Path, spot: Any = None, *,
                   postgres_url: str | None = None) -> CompiledScript:
    """Compile a parsed script (read from ``path``, which places its files)."""
    url = _postgres_url(script, spot, postgres_url)
    steps: dict[str, Any] = {}
    for name, definition in script.steps.items():
        fn = step_function(script, path.parent, definition, url)
        if spot is None:
            steps[name] = _Planned(fn, f"{path.stem}.{name}", step_fn_path(path, name),
                                   definition)
        else:
            steps[name] = mark_step(spot, script, path, definition, fn)
    plan = _Compiler(script, steps).plan(path.name)
    return CompiledScript(script, path, plan, steps)


def _postgres_url(script: Script, spot: Any, given: str | None
                  ) -> Callable[[], str] | None:
    """Where postgres steps run: ``given``, else $HOKURO_POSTGRES_URL, else the Spot's
    ledger when it is PostgreSQL. Read when a step runs, so ``check`` needs no database."""
    def url() -> str:
        found = given or os.environ.get(POSTGRES_ENV) or getattr(
            getattr(spot, "ledger", None), "conninfo", None)
        if not found:
            raise ConfigurationError(
                f"a postgres step of {script.path} needs a database: set {POSTGRES_ENV} to "
                "a postgresql:// URL, or run the script on a Spot whose ledger is PostgreSQL")
        return str(found)
    return url


class _Compiler:
    def __init__(self, script: Script, steps: dict[str, Any]) -> None:
        self.script = script
        self.steps = steps

    def error(self, name: Name, reason: str) -> ScriptError:
        return ScriptError(reason, path=self.script.path, line=name.line, column=name.column,
                           text=self.script.line(name.line))

    def plan(self, name: str) -> Plan:
        for pipe in self.script.pipes.values():  # every pipe, used or not
            self.pipe(pipe.name)
        plan = Plan(name)
        top: dict[str, Value] = {}
        for statement in self.script.runs:
            if isinstance(statement, Call):
                self.call(plan, statement, top, None)
            else:
                self.loop(plan, statement, top)
        if not self.script.runs:
            raise ScriptError("the script runs nothing: call a pipe (p()) or loop over one "
                              "(for x in p(): q(x)) after defining its steps",
                              path=self.script.path)
        try:
            plan.check()
        except PlanError as exc:  # pragma: no cover - the checks above come first
            raise ScriptError(str(exc), path=self.script.path) from None
        return plan

    def target(self, name: Name) -> Any:
        if name.text in self.script.pipes:
            return self.pipe(name)
        if name.text in self.steps:
            return self.steps[name.text]
        raise self.unknown(name, "step or pipe")

    def unknown(self, name: Name, what: str) -> ScriptError:
        known = [*self.script.pipes, *self.steps]
        near = difflib.get_close_matches(name.text, known, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        return self.error(name, f"unknown {what} {name.text!r}{hint}: define it as a step "
                                f"block ({name.text}:) or a pipe ({name.text} = a | b)")

    def pipe(self, name: Name, seen: tuple[str, ...] = ()) -> Pipe:
        if name.text in seen:
            raise self.error(name, f"pipe {name.text!r} contains itself")
        members: list[Any] = []
        for member in self.script.pipes[name.text].steps:
            if member.text in self.steps:
                members.append(self.steps[member.text])
            elif member.text in self.script.pipes:
                members.extend(self.pipe(member, (*seen, name.text)))
            else:
                raise self.unknown(member, "step")
        return Pipe(members)

    def call(self, plan: Plan, call: Call, env: dict[str, Value],
             loop: tuple[Loop, dict[str, Value]] | None) -> None:
        target = self.target(call.target)
        parents = [self.variable(argument, env, loop) for argument in call.arguments]
        self.arity(call, target, len(parents))
        try:
            value = plan.call(target, *parents)
        except PlanError as exc:
            raise self.error(call.target, str(exc)) from None
        if call.result is not None:
            if call.result.text in self.script.steps or call.result.text in self.script.pipes:
                raise self.error(call.result, f"{call.result.text!r} names a step or pipe; "
                                 "give the variable a name of its own")
            env[call.result.text] = value

    def variable(self, name: Name, env: dict[str, Value],
                 loop: tuple[Loop, dict[str, Value]] | None) -> Value:
        if name.text in env:
            return env[name.text]
        if loop is not None and name.text in loop[1]:
            raise self.error(name, f"{name.text!r} is assigned outside the loop; the body of "
                             f"a loop can use only its element ({loop[0].variable.text}) and "
                             "the variables assigned inside it")
        if name.text in self.script.pipes or name.text in self.steps:
            raise self.error(name, f"{name.text!r} is a step or pipe, not a variable: call "
                             f"it first (v = {name.text}()) and pass v")
        raise self.error(name, f"{name.text!r} is used before it is assigned: assign it "
                         f"first ({name.text} = p()), or check its spelling")

    def arity(self, call: Call, target: Any, given: int) -> None:
        members = list(target) if isinstance(target, Pipe) else [target]
        for position, step in enumerate(members):
            count = given if position == 0 else 1
            definition: StepDef = step.definition
            if definition.language != "python":
                continue
            user = getattr(getattr(step, "fn", None), "user_function", None)
            if user is None:
                continue
            try:
                inspect.signature(user).bind(*([None] * count))
            except TypeError:
                takes = str(inspect.signature(user))
                raise self.error(call.target, (
                    f"{definition.name.text} ({definition.function.text}{takes}) cannot take "
                    f"{count} input(s); a step receives one argument per parent, in order"
                    + (" (the first step of a root call takes none)" if count == 0 else ""))
                ) from None
            except ValueError:
                continue

    def loop(self, plan: Plan, loop: Loop, top: dict[str, Value]) -> None:
        source = self.target(loop.source)
        self.arity(Call(loop.source, (), None), source, 0)
        if not any(loop.variable.text in (a.text for a in c.arguments) for c in loop.body):
            raise self.error(loop.variable, f"the body of the loop never uses "
                             f"{loop.variable.text!r}; pass it to a pipe: "
                             f"q({loop.variable.text})")

        def body(sub: Plan, element: Value) -> None:
            local = {loop.variable.text: element}
            for call in loop.body:
                self.call(sub, call, local, (loop, top))
        try:
            plan.each(source, body)
        except PlanError as exc:
            raise self.error(loop.source, str(exc)) from None


# -- resolve_step: a step named by fn_path, in another process -----------------------------------

_compiled: weakref.WeakKeyDictionary[Any, dict[str, CompiledScript]] = \
    weakref.WeakKeyDictionary()
_lock = threading.Lock()


def resolve_step(fn_path: str, spot: Any) -> ScriptStep:
    """The step ``script:<path>#<step>`` of ``spot`` (the script is compiled once per
    process and Spot, then cached): how workers and retries rebuild a script's plan with
    :meth:`hokuro.Plan.from_description`."""
    if not isinstance(fn_path, str) or not fn_path.startswith("script:") or "#" not in fn_path:
        raise ConfigurationError(f"{fn_path!r} does not name a script step; a script step's "
                                 "fn_path is script:<absolute path of the .bue file>#<step>")
    path, _, step = fn_path[len("script:"):].rpartition("#")
    with _lock:
        by_path = _compiled.setdefault(spot, {})
        compiled = by_path.get(path)
        if compiled is None:
            compiled = by_path[path] = load(path, spot)
    try:
        return compiled.steps[step]
    except KeyError:
        raise ConfigurationError(f"the script {path} has no step {step!r} (any more); run "
                                 "the version of the script that made the run") from None
