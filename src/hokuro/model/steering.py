"""What a step may return to steer its job, and when a failed attempt is tried again. Pure.

A step's return value is normally its result. Three values say something else instead:

- :class:`Pending` — not ready yet (a report still being built): the job waits, without
  holding a worker slot, and is claimed again with the same input after ``after`` seconds.
- :class:`Reset` — restart this item's chain from its first step, recomputing every step.
- :class:`Cancel` — stop this item's chain here; the other items go on.

:class:`RetryPolicy` decides whether a raised exception is tried again and after how long:
exponential backoff with jitter, except that :class:`hokuro.RetryAfter` gives its delay
exactly (the far side said how long to wait).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, RetryAfter
from .durations import parse_duration

if TYPE_CHECKING:
    import random

#: How long a ``Pending()`` without ``after`` waits when its step sets no ``poll`` option.
DEFAULT_POLL = 10.0
#: How many times one item's chain may be reset before its job fails (a step that returns
#: ``Reset()`` on every attempt must not loop forever).
DEFAULT_MAX_RESETS = 3


@dataclass(frozen=True, slots=True)
class Pending:
    """Return ``hokuro.Pending(after=...)`` from a step to be called again later.

    ``after``: seconds, a duration such as ``"30s"`` or ``"5min"``, or None for the step's
    ``poll`` option (default :data:`DEFAULT_POLL`). A poll is not a failure: it counts no
    retry.
    """

    after: float | None = None

    def __init__(self, after: float | str | None = None) -> None:
        seconds = parse_duration(after, what="Pending(after=...)")
        object.__setattr__(self, "after", seconds)

    def delay(self, poll: float | None = None) -> float:
        """Seconds to wait: ``after``, else the step's ``poll``, else :data:`DEFAULT_POLL`."""
        if self.after is not None:
            return self.after
        return DEFAULT_POLL if poll is None else poll


@dataclass(frozen=True, slots=True)
class Reset:
    """Return ``hokuro.Reset()`` from a step to restart its item's chain from the first step."""

    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Cancel:
    """Return ``hokuro.Cancel(reason)`` from a step to cancel the rest of its item's chain."""

    reason: str = ""


#: The values a step may return to steer its job instead of giving a result.
STEERING = (Pending, Reset, Cancel)


def is_steering(value: Any) -> bool:
    """True when ``value`` steers its job (Pending, Reset, Cancel) instead of being a result."""
    return isinstance(value, STEERING)


def _exception_classes(retry_on: Any) -> tuple[type[Exception], ...]:
    classes = retry_on if isinstance(retry_on, tuple) else (retry_on,)
    if not classes or not all(isinstance(c, type) and issubclass(c, Exception)
                              for c in classes):
        raise ConfigurationError(
            f"retry_on takes an exception class or a tuple of them (subclasses of "
            f"Exception), not {retry_on!r}. Cancellation and KeyboardInterrupt are never "
            "retried."
        )
    return classes


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When a failed attempt is tried again, and after how long.

    ``retries``: attempts after the first (0: never retry). ``retry_on``: the exception
    classes worth retrying (``hokuro.RetryAfter`` always is, while retries remain).
    ``backoff``: seconds (or a duration such as ``"2s"``) before the first retry, doubling
    each retry up to ``max_backoff``. ``jitter``: the fraction of each delay drawn at random
    (0.5: between half and all of it), so that many failing jobs do not retry in step.
    """

    retries: int = 0
    retry_on: tuple[type[Exception], ...] = (Exception,)
    backoff: float = 1.0
    max_backoff: float = 300.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.retries, int) or isinstance(self.retries, bool) \
                or self.retries < 0:
            raise ConfigurationError(
                f"retries must be a whole number >= 0, not {self.retries!r}")
        object.__setattr__(self, "retry_on", _exception_classes(self.retry_on))
        object.__setattr__(self, "backoff", parse_duration(self.backoff, what="backoff"))
        object.__setattr__(self, "max_backoff",
                           parse_duration(self.max_backoff, what="max_backoff"))
        jitter = self.jitter
        if isinstance(jitter, bool) or not isinstance(jitter, int | float) \
                or not 0.0 <= jitter <= 1.0:
            raise ConfigurationError(f"jitter must be a number from 0 to 1, not {jitter!r}")
        object.__setattr__(self, "jitter", float(jitter))

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        """Whether attempt number ``attempt`` (1 for the first), which raised ``exc``, is
        tried again. Cancellation, KeyboardInterrupt and SystemExit never are."""
        if attempt > self.retries or not isinstance(exc, Exception):
            return False
        return isinstance(exc, (RetryAfter, *self.retry_on))

    def delay(self, attempt: int, exc: BaseException | None = None,
              rng: Callable[[], float] | random.Random | None = None) -> float:
        """Seconds to wait after attempt number ``attempt`` failed with ``exc``.

        ``RetryAfter(s)``: exactly ``s``. Otherwise ``backoff * 2 ** (attempt - 1)``, capped
        at ``max_backoff``, of which the ``jitter`` fraction is drawn at random: the result
        lies in ``[base * (1 - jitter), base]``. ``rng``: a ``random.Random`` or a function
        returning a float in [0, 1) (tests pass one to fix the draw).
        """
        if isinstance(exc, RetryAfter):
            return exc.seconds
        # 2.0 ** 1023 is the largest power a float holds; past it the cap applies anyway.
        base = min(self.backoff * 2.0 ** min(max(attempt, 1) - 1, 1023), self.max_backoff)
        if not self.jitter or not base:
            return base
        if rng is None:
            import random  # on the first retry only: `import hokuro` need not pay for it

            draw = random.random()
        else:
            draw = rng() if callable(rng) else rng.random()
        return base * (1.0 - self.jitter * draw)

    def over(self, retries: int | None = None, retry_on: Any = None,
             backoff: float | str | None = None) -> RetryPolicy:
        """This policy with the options that are given (not None) replaced: a step's own
        options over a run's defaults."""
        return RetryPolicy(
            retries=self.retries if retries is None else retries,
            retry_on=self.retry_on if retry_on is None else retry_on,
            backoff=self.backoff if backoff is None else backoff,
            max_backoff=self.max_backoff, jitter=self.jitter,
        )
