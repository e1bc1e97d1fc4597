"""Every error hokuro raises. One base class; each message says what to do next."""

from __future__ import annotations


class HokuroError(Exception):
    """Base class of every error raised by hokuro."""


class ConfigurationError(HokuroError, ValueError):
    """An option or argument given to hokuro is not valid."""


class UnkeyableArgument(HokuroError, TypeError):
    """An argument cannot be turned into a stable task key."""

    def __init__(self, path: str, value_type: type, reason: str = "") -> None:
        self.path = path
        self.value_type = value_type
        name = f"{value_type.__module__}.{value_type.__qualname__}"
        hint = (
            f"argument {path!r} of type {name} cannot be part of a task key"
            f"{': ' + reason if reason else ''}. Leave it out with "
            f"@spot.mark(ignore=[{path.split('.')[0].split('[')[0]!r}]) or give the mark a "
            "key= function (or KeyGen policy) that returns something keyable."
        )
        super().__init__(hint)


class SerializationError(HokuroError, TypeError):
    """A value cannot be encoded or decoded by the codec."""


class NotPicklable(HokuroError, TypeError):
    """A marked function cannot be sent to another process (a process pool): only one defined
    at module level, which the other process can import by name, can."""


class BlobError(HokuroError):
    """A blob could not be written, read or removed."""


class BlobMissing(BlobError, FileNotFoundError):
    """A blob named by a record is not in the blob store."""


class UnsafeName(HokuroError, ValueError):
    """A key, ident or blob reference would leave the blob store or hide a file."""


class LedgerError(HokuroError):
    """The ledger cannot be opened, read or written."""


class SchemaError(LedgerError):
    """The ledger's schema is newer than this hokuro, or missing where it must exist."""


class RunCancelled(LedgerError):
    """The run was cancelled (``hokuro run cancel``): it takes no new jobs. The process
    running it stops claiming and reading inputs."""


class TaskFailed(HokuroError):
    """A task failed in another process (or its failure was cached); its error is attached.

    Raised to callers that waited on a task another owner executed, and to callers of a
    mark with ``cache_errors=True`` whose stored task failed.
    """

    def __init__(self, key: str, error_type: str | None, message: str | None,
                 traceback: str | None = None) -> None:
        self.key = key
        self.error_type = error_type
        self.message = message
        self.traceback = traceback
        super().__init__(f"task {key[:12]} failed with {error_type}: {message}")


class MissingDependency(HokuroError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"{module!r} is not installed; install it with: pip install 'hokuro[{extra}]'"
        )


class RateLimitError(HokuroError):
    """A rate limit can never grant the requested cost, or is not configured."""


class LimitStoreError(HokuroError):
    """The store that holds rate limits cannot be reached, opened or used."""


class RetryAfter(HokuroError):
    """Raise from a rate-limited function when the far side says "too many requests".

    The limiter that guards the function holds back every caller of its limits for
    ``seconds`` (shared through its store, so other processes and machines wait too), then
    retries the call. Typical use: ``raise RetryAfter(float(resp.headers["Retry-After"]))``.
    """

    def __init__(self, seconds: float, message: str | None = None) -> None:
        seconds = float(seconds)
        if seconds != seconds or seconds < 0 or seconds == float("inf"):
            raise ConfigurationError(
                f"RetryAfter needs a finite, non-negative number of seconds, not {seconds!r}"
            )
        self.seconds = seconds
        super().__init__(message or f"the service asked to wait {seconds:g} s before retrying")


class PlanError(ConfigurationError):
    """A plan cannot run as built (a step that is not marked, a parent from another plan, a
    cycle, a fan-out body that never uses its element); nothing has run. The message names
    the node and what to change."""


class RunNotFound(HokuroError, LookupError):
    """No run of the Spot has this id, id prefix or name (``hokuro runs SPOT`` lists them)."""


class AmbiguousRun(RunNotFound):
    """Several runs have ids starting with the prefix given; ``candidates`` lists them."""

    def __init__(self, message: str, candidates: list) -> None:
        super().__init__(message)
        self.candidates = candidates


class ScriptError(ConfigurationError):
    """A script (a ``.bue`` file) cannot be parsed or compiled. The message names the file,
    line and column, shows the line with a caret under the spot, and says what was
    expected; ``path``, ``line``, ``column`` and ``reason`` hold the parts."""

    def __init__(self, reason: str, *, path: str = "<script>", line: int = 0,
                 column: int = 0, text: str = "") -> None:
        self.reason = reason
        self.path = path
        self.line = line
        self.column = column
        self.text = text
        where = f"{path}:{line}:{column}" if line else path
        message = f"{where}: {reason}"
        if text.strip():
            shown = text.expandtabs(4)
            caret = len(text[:max(column - 1, 0)].expandtabs(4))
            message += f"\n    {shown}\n    {' ' * caret}^"
        super().__init__(message)
