"""``self.local`` and ``self.context``: attribute bags that hold plain data.

``context`` travels with chunk jobs (it is encoded into each chunk's input), so it must hold
what hokuro's codec encodes: numbers, strings, lists, dicts, dates, … — not open files or
database objects.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Variables"]


class Variables:
    """Attributes stored in a dict: ``v.total = 0``; ``v.as_dict()``; ``"total" in v``."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        object.__setattr__(self, "_values", dict(values or {}))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(
                f"no variable {name!r} here (set it first, e.g. in prepare: "
                f"self.context.{name} = ...)") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._values[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, default)

    def as_dict(self) -> dict[str, Any]:
        """A shallow copy of the variables."""
        return dict(self._values)

    def clear(self) -> None:
        self._values.clear()

    def __repr__(self) -> str:
        return f"Variables({self._values!r})"
