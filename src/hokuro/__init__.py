"""hokuro — you write the logic; hokuro keeps the books.

The public API is re-exported here; implementation lives in the modules named by DESIGN.md.
"""

from .blobs import BlobStorageBase
from .codec import Codec
from .context import Context
from .errors import (
    ConfigurationError,
    HokuroError,
    RateLimitError,
    RetryAfter,
    SerializationError,
    TaskFailed,
    UnkeyableArgument,
)
from .keygen import KeyGen, KeyPolicy
from .ledger import TaskDB
from .limits import Limiter
from .marking import MarkedFunction, TaskEvent
from .records import Record, Status
from .spot import Spot
from .tasks import Task, TaskError

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
