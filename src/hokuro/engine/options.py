"""The options of ``@spot.mark``, checked once at decoration time, and what hooks receive."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from ..model.durations import parse_duration
from .keygen import KeyPolicy

if TYPE_CHECKING:
    from ..model.steering import RetryPolicy

HOOKS = ("pre_execute", "on_hit", "on_miss", "on_error")
#: The options that steer a function as a step of a run (``retries``, ``retry_on``,
#: ``backoff`` and ``timeout`` also apply to direct calls); None: the run's default, else
#: hokuro's. Checked by model/steps.py, loaded only when a mark gives one.
STEP_OPTIONS = ("retries", "retry_on", "backoff", "timeout", "scope", "priority",
                "concurrency", "poll")
#: Every option ``@spot.mark`` accepts; anything else is a TypeError.
MARK_OPTIONS = frozenset({
    "version", "name", "key", "input_key_fn", "ignore", "save_blob", "blob_threshold",
    "retention", "content_type", "codec", "cache_errors", "store_args", *HOOKS,
    *STEP_OPTIONS,
})


@dataclass(frozen=True, slots=True)
class MarkOptions:
    """The options of one mark, checked once at decoration time."""

    name: str | None = None
    version: str | None = None
    key: Callable[..., Any] | KeyPolicy | None = None
    ignore: tuple[str, ...] = ()
    save_blob: bool | None = None
    blob_threshold: int | None = None
    retention: float | None = None
    content_type: str | None = None
    codec: str = "msgpack"
    cache_errors: bool = False
    store_args: bool = True
    hooks: dict[str, Callable[[TaskEvent], Any]] = field(default_factory=dict)
    # -- as a step (STEP_OPTIONS; None: not set) --
    retries: int | None = None
    retry_on: tuple[type[Exception], ...] | None = None
    backoff: float | None = None
    timeout: float | None = None
    scope: str | None = None
    priority: int | None = None
    concurrency: int | None = None
    poll: float | None = None
    _retry_policy: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def retry_policy(self) -> RetryPolicy:
        """``retries``, ``retry_on`` and ``backoff`` as one policy (hokuro's defaults where
        unset); built on first use, so `import hokuro` does not load the run model."""
        policy = self._retry_policy
        if policy is None:
            from ..model.steering import RetryPolicy

            policy = RetryPolicy().over(self.retries, self.retry_on, self.backoff)
            object.__setattr__(self, "_retry_policy", policy)
        return policy

    @classmethod
    def parse(cls, options: dict[str, Any]) -> MarkOptions:
        unknown = set(options) - MARK_OPTIONS
        if unknown:
            raise TypeError(
                f"unknown mark option(s) {', '.join(sorted(unknown))}; "
                f"valid options are {', '.join(sorted(MARK_OPTIONS))}"
            )
        opts = dict(options)
        if "input_key_fn" in opts:
            if opts.get("key") is not None:
                raise TypeError("give key= or input_key_fn= (its alias), not both")
            opts["key"] = opts.pop("input_key_fn")
        key = opts.get("key")
        if key is not None and not callable(key) and not isinstance(key, KeyPolicy):
            raise TypeError("key= takes a callable or a KeyGen policy (KeyGen.ignore(...), ...)")
        ignore = opts.get("ignore") or ()
        if isinstance(ignore, str):
            ignore = (ignore,)
        threshold = opts.get("blob_threshold")
        if threshold is not None and (not isinstance(threshold, int) or threshold < 0):
            raise ConfigurationError("blob_threshold must be a whole number of bytes >= 0")
        version = opts.get("version")
        hooks = {name: opts[name] for name in HOOKS if opts.get(name) is not None}
        for name, hook in hooks.items():
            if not callable(hook):
                raise TypeError(f"{name}= must be callable")
        store_args = opts.get("store_args", True)
        if not isinstance(store_args, bool):
            raise ConfigurationError("store_args must be True or False")
        codec = opts.get("codec", "msgpack")
        if codec not in ("msgpack", "pickle"):
            raise ConfigurationError(f"codec must be 'msgpack' or 'pickle', not {codec!r}")
        return cls(
            name=opts.get("name"),
            version=None if version is None else str(version),
            key=key,
            ignore=tuple(ignore),
            save_blob=opts.get("save_blob"),
            blob_threshold=threshold,
            retention=parse_duration(opts.get("retention"), what="retention"),
            content_type=opts.get("content_type"),
            codec=codec,
            cache_errors=bool(opts.get("cache_errors", False)),
            store_args=store_args,
            hooks=hooks,
            **_step_options(opts),
        )


def _step_options(opts: dict[str, Any]) -> dict[str, Any]:
    if not any(opts.get(name) is not None for name in STEP_OPTIONS):
        return {}
    from ..model.steps import step_options

    return step_options(opts)


@dataclass(slots=True)
class TaskEvent:
    """What a hook receives: the task, its call, and (when known) its value or error."""

    hook: str
    fn: str
    key: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    value: Any = None
    error: BaseException | None = None
    duration: float | None = None
