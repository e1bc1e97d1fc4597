"""hokuro — you write the logic; hokuro keeps the books.

The public API is re-exported here; implementation lives in the modules named by DESIGN.md.
"""

from .engine.context import Context
from .engine.keygen import KeyGen, KeyPolicy
from .engine.marking import MarkedFunction
from .engine.options import TaskEvent
from .engine.spot import Spot
from .engine.tasks import Task, TaskError
from .errors import (
    ConfigurationError,
    HokuroError,
    RateLimitError,
    RetryAfter,
    SerializationError,
    TaskFailed,
    UnkeyableArgument,
)
from .model.codec import Codec
from .model.records import Record, Status
from .store.blobs import BlobStorageBase
from .store.ledger import TaskDB

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Limiters import asyncio; `import hokuro` stays light until one is used.
    if name == "Limiter":
        from .store.limits import Limiter

        return Limiter
    # Plans and steering results are the run engine's: loaded when a program uses them.
    if name in ("Plan", "Pipe"):
        from .model import plans

        return getattr(plans, name)
    if name in ("Pending", "Reset", "Cancel"):
        from .model import steering

        return getattr(steering, name)
    if name in ("Run", "JobFailed"):
        from .runs import run

        return getattr(run, name)
    # Stages need SQLAlchemy (the stages extra): loaded when a program uses them.
    if name in ("Stage", "stage", "run_stage"):
        from . import stages

        return getattr(stages, name)
    raise AttributeError(f"module 'hokuro' has no attribute {name!r}")

__all__ = [
    "BlobStorageBase",
    "Cancel",
    "Codec",
    "ConfigurationError",
    "Context",
    "HokuroError",
    "JobFailed",
    "KeyGen",
    "KeyPolicy",
    "Limiter",
    "MarkedFunction",
    "Pending",
    "Pipe",
    "Plan",
    "RateLimitError",
    "Record",
    "Reset",
    "RetryAfter",
    "Run",
    "SerializationError",
    "Spot",
    "Stage",
    "Status",
    "Task",
    "TaskDB",
    "TaskError",
    "TaskEvent",
    "TaskFailed",
    "UnkeyableArgument",
    "__version__",
    "run_stage",
    "stage",
]
