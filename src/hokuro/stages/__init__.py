"""Stages (datapipe): prepare / process / finish, flow control, output sessions, lineage.

Needs SQLAlchemy 2 (``pip install 'hokuro[stages]'``).
"""

from __future__ import annotations

try:
    import sqlalchemy  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installation
    from ..errors import MissingDependency

    raise MissingDependency("hokuro's stages need SQLAlchemy 2: pip install "
                            "'hokuro[stages]'") from exc

from .batch import BatchReport
from .chunks import run_chunk, run_stage
from .flow import Break, Continue, Error, FlowSignal, Ignore
from .registry import check_names, lookup, unregister
from .session import StageSession
from .stage import Stage, stage
from .variables import Variables

__all__ = ["BatchReport", "Break", "Continue", "Error", "FlowSignal", "Ignore", "Stage",
           "StageSession", "Variables", "check_names", "lookup", "run_chunk", "run_stage",
           "stage", "unregister"]
