"""Stages registered by name, and the names they chain with (``depends``, ``trigger``).

Names are checked when a stage first runs, not at registration: datapipe's own README
example declares a stage that depends on one defined below it, so a name may be used before
it is registered. Every registered stage's ``depends`` and ``trigger`` names are checked then
(all of them, not only the ones this run reaches: a misspelt trigger would otherwise never
fire, silently, as in datapipe), and cycles among ``depends`` are refused.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError

__all__ = ["Registered", "check_names", "find", "lookup", "register", "triggered_by", "unregister"]


@dataclass(frozen=True, slots=True)
class Registered:
    """One registered stage: its name, class, the stages it depends on, the stages whose
    results trigger it, and the item identity function (``key=``), if any."""

    name: str
    cls: type
    depends: tuple[str, ...] = ()
    trigger: tuple[str, ...] = ()
    key: Callable[[Any], Any] | None = None

    @property
    def path(self) -> str:
        """The class's import path, ``module:qualname``."""
        return f"{self.cls.__module__}:{self.cls.__qualname__}"


_stages: dict[str, Registered] = {}
_lock = threading.Lock()
_checked = False


def names_of(value: str | Sequence[str] | None, what: str, stage: str) -> tuple[str, ...]:
    """``depends=`` / ``trigger=`` as a tuple of names (one name or a list of them)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    names = tuple(value)
    if not all(isinstance(n, str) and n for n in names):
        raise ConfigurationError(f"stage {stage!r}: {what}= takes stage names (strings), "
                                 f"not {value!r}")
    return names


def register(entry: Registered) -> None:
    """Register ``entry`` under its name. The same class (by import path) may be registered
    again (a module reloaded, a test defined twice); another class under a taken name is
    refused."""
    global _checked
    if not isinstance(entry.name, str) or not entry.name.strip():
        raise ConfigurationError("a stage needs a name: @hokuro.stage('discount_sum')")
    with _lock:
        known = _stages.get(entry.name)
        if known is not None and known.path != entry.path:
            raise ConfigurationError(
                f"stage name {entry.name!r} is taken by {known.path}; give {entry.path} "
                "another name")
        _stages[entry.name] = entry
        _checked = False


def unregister(name: str) -> None:
    """Forget the stage ``name`` (tests, interactive sessions)."""
    global _checked
    with _lock:
        _stages.pop(name, None)
        _checked = False


def lookup(name: str) -> Registered:
    """The stage registered as ``name``; every registered name is checked first."""
    check_names()
    try:
        return _stages[name]
    except KeyError:
        raise ConfigurationError(f"no stage named {name!r}{_hint(name)}; register it with "
                                 f"@hokuro.stage({name!r}) or stage_name = {name!r}, and "
                                 "import its module before running it") from None


def find(name: str) -> Registered | None:
    """The stage registered as ``name``, or None (no check of names)."""
    with _lock:
        return _stages.get(name)


def triggered_by(name: str) -> list[Registered]:
    """The stages that run on ``name``'s results, in registration order."""
    with _lock:
        return [entry for entry in _stages.values() if name in entry.trigger]


def check_names() -> None:
    """Refuse unknown ``depends`` / ``trigger`` names and ``depends`` cycles."""
    global _checked
    if _checked:
        return
    with _lock:
        stages = dict(_stages)
    problems = []
    for entry in stages.values():
        for what, names in (("depends", entry.depends), ("trigger", entry.trigger)):
            for name in names:
                if name not in stages:
                    problems.append(f"stage {entry.name!r} ({entry.path}) has {what}="
                                    f"{name!r}, which is not a stage{_hint(name, stages)}")
    if problems:
        raise ConfigurationError("; ".join(problems))
    for entry in stages.values():
        _refuse_cycle(entry.name, stages, [])
    _checked = True


def _refuse_cycle(name: str, stages: dict[str, Registered], path: list[str]) -> None:
    if name in path:
        loop = " -> ".join([*path[path.index(name):], name])
        raise ConfigurationError(f"stages depend on each other in a circle ({loop}); "
                                 "remove one of these depends")
    for dep in stages[name].depends:
        _refuse_cycle(dep, stages, [*path, name])


def _hint(name: str, stages: dict[str, Registered] | None = None) -> str:
    pool = list(stages if stages is not None else _stages)
    close = difflib.get_close_matches(name, pool, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
