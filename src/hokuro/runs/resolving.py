"""Finding a recorded run's steps in another process: ``fn_path`` -> step.

A run records its plan's description, and each step by its ``fn_path``: ``module:qualname``
for a marked Python function, or another form with a prefix (``script:<file>#<step>`` for a
step of a script). :class:`StepResolver` turns them back into steps for
``Plan.from_description``: a prefix it was given a hook for goes to that hook; anything else
is imported. A step that cannot be found does not stop the plan from being rebuilt: it is
an :class:`Unimportable` placeholder, and each job of it fails with the reason (the module,
and the ``sys.path`` it was looked for on), while the run's other steps go on.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import HokuroError
from ..model.steps import is_step

#: A hook for a prefix: ``hook(fn_path, spot)`` returns the step.
Hook = Callable[[str, Any], Any]


class StepNotImportable(HokuroError):
    """A step of a recorded run cannot be imported here (fails the step's jobs)."""


class Unimportable:
    """Stands for a step that could not be found: its jobs fail with ``reason``."""

    def __init__(self, name: str, fn_path: str, reason: str) -> None:
        self.name = name
        self.fn_path = fn_path
        self.reason = reason
        self.options = None
        self.is_async = False

    def task_claim(self, *args: Any, **kwargs: Any) -> Any:
        raise StepNotImportable(self.reason)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise StepNotImportable(self.reason)

    def __repr__(self) -> str:
        return f"<step {self.name} not importable: {self.reason}>"


class StepResolver:
    """``resolve(step_name, fn_path)`` for ``Plan.from_description``: steps by their
    recorded path, found once per process (cached), through ``hooks`` for their prefixes.

    ``ledger``, when given, is where the steps must record: a marked function of another
    Spot is refused (its jobs fail, saying where it records)."""

    def __init__(self, spot: Any = None, hooks: Mapping[str, Hook] | None = None, *,
                 ledger: Any = None) -> None:
        self.spot = spot
        self.hooks = dict(hooks or {})
        self.ledger = ledger
        self._found: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str, fn_path: str) -> Any:
        with self._lock:
            found = self._found.get(fn_path)
            if found is None:
                found = self._found[fn_path] = self._find(name, fn_path)
        if isinstance(found, Unimportable) and found.name != name:
            return Unimportable(name, fn_path, found.reason)
        return found

    def _find(self, name: str, fn_path: str) -> Any:
        for prefix, hook in self.hooks.items():
            if fn_path.startswith(prefix):
                try:
                    return hook(fn_path, self.spot)
                except Exception as exc:
                    return Unimportable(name, fn_path, f"step {name} ({fn_path}) cannot be "
                                        f"loaded: {type(exc).__name__}: {exc}")
        if ":" not in fn_path:
            return Unimportable(name, fn_path, f"step {name} records no import path "
                                f"(module:function) but {fn_path!r}; no hook of this worker "
                                "knows its prefix")
        module, _, qualname = fn_path.partition(":")
        if "<locals>" in qualname:
            return Unimportable(name, fn_path, f"step {name} ({fn_path}) was defined inside "
                                "a function, so no other process can import it; move it to "
                                "module level of an importable module")
        try:
            found: Any = import_object(fn_path)
        except Exception as exc:
            if module == "__main__":  # (a forked process has its parent's __main__)
                return Unimportable(name, fn_path, (
                    f"step {name} ({fn_path}) was defined in a script run directly "
                    "(python script.py), which no worker can import; move it into a module "
                    "and give its mark name= to keep its records"))
            return Unimportable(name, fn_path, (
                f"cannot import step {name} from module {module!r} ({fn_path}): "
                f"{type(exc).__name__}: {exc}; this worker's sys.path is "
                f"{_search_path()} (run the worker from your code's folder, or give "
                "--import / PYTHONPATH)"))
        try:
            found = made_for(found, self.ledger if self.ledger is not None
                             else getattr(self.spot, "ledger", None))
        except Exception as exc:
            return Unimportable(name, fn_path, f"cannot make the step {fn_path} for "
                                f"this ledger: {type(exc).__name__}: {exc}")
        if not is_step(found):
            return Unimportable(name, fn_path, f"{fn_path} is a {type(found).__name__}, "
                                "not a marked function")
        other = self._other_ledger(found)
        if other is not None:
            return Unimportable(name, fn_path, other)
        return found

    def _other_ledger(self, step: Any) -> str | None:
        theirs = getattr(getattr(step, "spot", None), "ledger", None)
        if self.ledger is None or theirs is None or same_books(theirs, self.ledger):
            return None
        return (f"step {step.name} ({step.fn_path}) records into {theirs.describe()} (Spot "
                f"{theirs.spot!r}), not into the ledger this worker serves, "
                f"{self.ledger.describe()} (Spot {self.ledger.spot!r})")


def import_object(fn_path: str) -> Any:
    """The object at ``module:qualname`` (raises whatever importing it raises)."""
    module, _, qualname = fn_path.partition(":")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def made_for(found: Any, ledger: Any) -> Any:
    """``found``, or, for a step hokuro defines for any Spot (``__hokuro_mark_for__``: a
    stage's chunk step), that step marked for a Spot over ``ledger``."""
    mark_for = getattr(found, "__hokuro_mark_for__", None)
    if not is_step(found) and callable(mark_for):
        return mark_for(ledger)
    return found


def same_books(a: Any, b: Any) -> bool:
    """Whether ledgers ``a`` and ``b`` keep the same Spot's records: the same file or
    database (Spots of one database share its URL) and the same Spot (unknown: trusted)."""
    same_spot = None in (a.spot, b.spot) or a.spot == b.spot
    return same_spot and _same_place(a.describe(), b.describe())


def _same_place(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return os.path.realpath(a) == os.path.realpath(b)
    except (OSError, ValueError):
        return False


def _search_path() -> str:
    return "[" + ", ".join(repr(p) for p in sys.path) + "]"
