"""hokuro — you write the logic; hokuro keeps the books.

The public API is re-exported here; implementation lives in the modules named by DESIGN.md.
"""

from .engine.context import Context
from .engine.keygen import KeyGen, KeyPolicy
from .engine.marking import MarkedFunction, TaskEvent
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
from .store.limits import Limiter

__version__ = "0.1.0"

__all__ = [
    "BlobStorageBase",
    "Codec",
    "ConfigurationError",
    "Context",
    "HokuroError",
    "KeyGen",
    "KeyPolicy",
    "Limiter",
    "MarkedFunction",
    "RateLimitError",
    "Record",
    "RetryAfter",
    "SerializationError",
    "Spot",
    "Status",
    "Task",
    "TaskDB",
    "TaskError",
    "TaskEvent",
    "TaskFailed",
    "UnkeyableArgument",
    "__version__",
]
