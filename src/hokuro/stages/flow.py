"""Flow control inside ``Stage.process``: raise one of these to steer the current item.

- :class:`Continue` — stop this item, keep what it saved; ``Continue(value)`` makes
  ``value`` the item's result.
- :class:`Ignore` — roll this item back (its saves and its database work) and go on.
- :class:`Break` — roll this item back and stop the batch; earlier items are kept and
  ``finish`` still runs; items never reached keep their previous outputs.
- :class:`Error` — stop and roll back every item of the batch; the run raises it.

An exception of any other type rolls the item back, is recorded by the error collector
(``hokuro errors``), and the batch goes on with the next item.
"""

from __future__ import annotations

from typing import Any

from ..errors import HokuroError

__all__ = ["Break", "Continue", "Error", "FlowSignal", "Ignore"]


class FlowSignal(Exception):
    """Base of the signals a stage raises to steer its current item (not an error)."""


class Continue(FlowSignal):
    """Stop processing this item and keep its outputs; the argument is its result."""

    def __init__(self, result: Any = None) -> None:
        super().__init__(result)
        self.result = result


class Ignore(FlowSignal):
    """Roll this item back and go on with the next."""


class Break(FlowSignal):
    """Roll this item back and stop the batch; earlier items are kept, ``finish`` runs."""


class Error(FlowSignal, HokuroError):
    """Stop and roll back every item of the batch; the run raises this error."""
