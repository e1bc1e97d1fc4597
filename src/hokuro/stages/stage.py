"""``hokuro.Stage``: datapipe's pipe — ``prepare`` / ``process`` / ``finish``, composed by
inheritance, registered by name.

    class GradualSum(hokuro.Stage):
        def prepare(self, items):
            self.context.total = 0
            return super().prepare(items)

        def process(self):
            item = super().process()          # the current item
            self.context.total += item.number
            self.total = self.context.total   # self: this item only
            return item

    @hokuro.stage("discount_sum")
    class Save(GradualSum):
        def process(self):
            item = super().process()
            self.save(Result(number=self.total))
            return item

Several bases compose by Python's MRO; each method calls ``super()`` and returns what the
next expects. Variables: attributes of ``self`` live for one item, ``self.local`` for one
batch, ``self.context`` is shared with the stages this one chains with. ``self.session`` is
the output database's ORM session (the item's SAVEPOINT covers what you do with it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from ..errors import ConfigurationError
from .output import checked_saves
from .registry import Registered, names_of, register
from .variables import Variables

__all__ = ["Stage", "stage"]


class Stage:
    """Base class of stages. Subclasses override ``prepare``, ``process`` and ``finish``.

    Registering: ``@hokuro.stage("name", depends=[...], trigger=..., key=...)`` on the
    class, or class attributes ``stage_name = "name"`` (with ``depends``, ``trigger`` and
    ``item_key``).
    """

    stage_name: ClassVar[str | None] = None
    depends: ClassVar[Sequence[str]] = ()
    trigger: ClassVar[str | Sequence[str] | None] = None
    #: The item identity function for lineage and failures (default: the ORM primary key,
    #: or the hokuro key of a plain value).
    item_key: ClassVar[Callable[[Any], Any] | None] = None

    item: Any
    local: Variables
    context: Variables
    session: Any

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("stage_name")
        if name is not None:
            _register(cls, name, cls.depends, cls.trigger, cls.__dict__.get("item_key"))

    # -- the three steps ---------------------------------------------------------------------
    def prepare(self, items: list[Any]) -> list[Any]:
        """All the batch's items; return those to process (filter, reorder, load more)."""
        return list(items)

    def process(self) -> Any:
        """Process ``self.item``; the base returns it, so ``super().process()`` gives the
        item. A non-None return is the item's result."""
        return self.item

    def finish(self, results: list[Any]) -> None:
        """After the batch's items, with the non-None results of ``process``."""
        return None

    # -- outputs -------------------------------------------------------------------------------
    def save(self, *objects: Any) -> Any:
        """Save outputs of this item: ORM objects (``self.save(Result(...))``) or rows of a
        Core table (``self.save(table, {"number": 1})``). They are written in groups, with
        lineage, when the item is kept. Returns the object (the first, when several)."""
        outputs = self.__dict__.get("_outputs")
        if outputs is not None:
            outputs.save(objects)
        elif "_outputs" in self.__dict__:  # Stage.eval without a database: checked, dropped
            checked_saves(objects)
        else:
            raise ConfigurationError(
                "this stage object was not made by a run; run it with a session "
                "(StageSession(db).run(name, items)) or Stage.eval(item)")
        return objects[0] if objects else None

    def add_to_save(self, *objects: Any) -> Any:
        """datapipe's name for :meth:`save`."""
        return self.save(*objects)

    # -- one item ------------------------------------------------------------------------------
    @classmethod
    def eval(cls, item: Any, *, db: Any = None, context: dict[str, Any] | None = None,
             spot: Any = None) -> Any:
        """Run one item through this stage (prepare, process, finish) and return its result
        (None when it was ignored or failed — with ``debug``, the error is raised).

        Without ``db`` nothing is written (saves are dropped) and errors are raised; with
        ``db`` it is a batch of one in that database (outputs, lineage, failures)."""
        from .batch import run_batch
        from .session import StageSession

        entry = _entry_of(cls)
        shared = Variables(context)
        if db is None:
            report = run_batch(entry, [item], shared, None, None, debug=True)
        else:
            report = StageSession(db, spot=spot).batch(entry, [item], shared)
        return report.results[0] if report.results else None


def _entry_of(cls: type) -> Registered:
    name = cls.__dict__.get("stage_name") or f"{cls.__module__}.{cls.__qualname__}"
    return Registered(name=name, cls=cls, key=cls.__dict__.get("item_key"))


def _register(cls: type, name: str, depends: Any, trigger: Any, key: Any) -> None:
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(f"{cls.__qualname__}: a stage name is a non-empty string, "
                                 f"not {name!r}")
    if key is not None and not callable(key):
        raise ConfigurationError(f"stage {name!r}: key= takes a function of the item")
    register(Registered(name=name, cls=cls, depends=names_of(depends, "depends", name),
                        trigger=names_of(trigger, "trigger", name), key=key))


def stage(name: str, *, depends: str | Sequence[str] | None = None,
          trigger: str | Sequence[str] | None = None,
          key: Callable[[Any], Any] | None = None) -> Callable[[type], type]:
    """Register a :class:`Stage` subclass as ``name``.

    ``depends``: stages run first on the same items, in this order, sharing ``context``.
    ``trigger``: the stage(s) whose results this one processes, after they committed.
    ``key``: the item identity for lineage and failures (a function of the item).
    """
    def decorate(cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, Stage)):
            raise ConfigurationError(f"@hokuro.stage({name!r}) decorates a subclass of "
                                     f"hokuro.Stage, not {cls!r}")
        cls.stage_name = name
        if depends is not None:
            cls.depends = names_of(depends, "depends", name)
        if trigger is not None:
            cls.trigger = trigger
        if key is not None:
            cls.item_key = staticmethod(key)  # type: ignore[assignment]
        _register(cls, name, cls.depends, cls.trigger, key)
        return cls
    return decorate
