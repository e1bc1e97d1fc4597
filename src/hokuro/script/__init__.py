"""The script language: buelon's ``.bue`` files, compiled to hokuro plans.

::

    from hokuro import Spot
    from hokuro.script import load

    spot = Spot("reports")
    script = load("example.bue", spot)      # parse, check, compile: a ScriptError if wrong
    run = spot.run(script.plan, run=script.name)

``hokuro check FILE`` and ``hokuro run FILE`` do the same from the command line. Modules:
``grammar.lark`` and :mod:`.syntax` (text → :class:`~.statements.Script`),
:mod:`.compiler` (script → plan, ``resolve_step``), :mod:`.steps` (Python / SQL steps as
marked functions), :mod:`.sql` (tables in and rows out), :mod:`.results` (buelon's
``Result`` and ``StepStatus``).
"""

from ..errors import ScriptError
from .results import Result, StepError, StepStatus

__all__ = ["CompiledScript", "Result", "ScriptError", "StepError", "StepStatus", "load",
           "parse", "resolve_step"]


def __getattr__(name: str) -> object:
    # The compiler loads the engine and lark; `from hokuro.script import Result` (what a
    # step's module imports) stays light.
    if name in ("load", "resolve_step", "CompiledScript", "compile_script"):
        from . import compiler

        return getattr(compiler, name)
    if name == "parse":
        from .syntax import parse

        return parse
    raise AttributeError(f"module 'hokuro.script' has no attribute {name!r}")
