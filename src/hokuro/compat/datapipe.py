"""datapipe's names over hokuro's stages: port a datapipe project by changing its imports
and defining its models with SQLAlchemy.

    from hokuro.compat.datapipe import Pipe, pipeline, get_session

    sess = get_session(db="postgresql://localhost/app")
    sess.run(SourceItem_rows, "discount_sum")       # datapipe's order; run(name, items) too
    sess.run_in_celery(items, "discount_sum", celery_chunksize=10)

What differs from datapipe (SEEDS.md): ``PipeError`` rolls back the whole batch, as its
README says (its code treated it as any exception); items never reached after a
``PipeBreak`` keep their previous outputs; an empty input is a no-op, not IndexError;
trigger names must name a registered stage (an unknown one is an error at the first run).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import ConfigurationError
from ..stages import Break as PipeBreak
from ..stages import Continue as PipeContinue
from ..stages import Error as PipeError
from ..stages import Ignore as PipeIgnore
from ..stages import Stage as Pipe
from ..stages import StageSession, run_stage
from ..stages import stage as pipeline
from ..stages.batch import BatchReport

__all__ = ["Pipe", "PipeBreak", "PipeContinue", "PipeError", "PipeIgnore", "PipelineSession",
           "get_session", "pipeline"]


class PipelineSession(StageSession):
    """datapipe's ``Session``: ``run`` (either argument order) and ``run_in_celery``."""

    def run(self, first: Any, second: Any = None, *, context: Any = None) -> BatchReport:
        """``run(items, name)`` — datapipe's real order — or ``run(name, items)``."""
        return super().run(first, second, context=context)

    def run_in_celery(self, items: Iterable[Any] | str, name: Any = None, *,
                      celery_chunksize: int = 10, queue: str | None = None,
                      bridge: Any = None, concurrency: int = 4,
                      context: dict[str, Any] | None = None,
                      progress: bool | None = False) -> Any:
        """Run the stage over ``items`` in chunks of ``celery_chunksize``, in parallel; the
        chunks are jobs of a run on hokuro's run engine, with ``queue`` as their scope.

        With ``bridge`` (a :class:`hokuro.integrations.celery.CeleryBridge` over the
        session's Spot, serving that scope) the run is submitted and its chunks sent to
        Celery at once, as datapipe did; the call returns the run without waiting
        (``run.wait()`` does). Without it, this process runs the chunks (``concurrency`` at a
        time) and returns the finished run (``run.summary()``, ``run.results()``)."""
        if isinstance(items, str) and not isinstance(name, str):
            items, name = name, items
        if bridge is not None:
            if bridge.spot is not self.spot:
                raise ConfigurationError("the Celery bridge must serve the session's Spot: "
                                         "make the session with get_session(..., spot="
                                         "bridge.spot)")
            scope = queue or "default"
            if scope not in bridge.scopes:
                raise ConfigurationError(f"the Celery bridge serves the scopes "
                                         f"{bridge.scopes}, not {scope!r}: give queue= one "
                                         "of them, or make the bridge with scopes=[...]")
            run = run_stage(self.spot, name, items, db=self.engine, chunk=celery_chunksize,
                            context=context, debug=self.debug, flush_every=self.flush_every,
                            scope=scope, submit=True)
            bridge.dispatch_once()  # every chunk is ready: all of them go now
            return run
        return run_stage(self.spot, name, items, db=self.engine, chunk=celery_chunksize,
                         context=context, concurrency=concurrency, progress=progress,
                         debug=self.debug, flush_every=self.flush_every, scope=queue)


def get_session(db: Any = None, *, spot: Any = None, debug: bool = False,
                **options: Any) -> PipelineSession:
    """A session over the output database ``db`` (a SQLAlchemy URL or Engine; datapipe used
    Django's). ``spot`` collects failures (default: ``Spot()`` in the working directory)."""
    if db is None:
        from ..errors import ConfigurationError

        raise ConfigurationError("get_session needs the output database: get_session(db="
                                 "'sqlite:///out.db') or an SQLAlchemy Engine (datapipe "
                                 "used Django's database; hokuro takes any)")
    return PipelineSession(db, spot=spot, debug=debug, **options)
