"""Rate limits with GCRA, shared by threads, processes and machines through a store.

``Limiter("openai", ["500/min", "90000/min tokens"], store=open_store("redis://…"))``;
stores: memory (one process), SQLite (one host), Redis and PostgreSQL (many hosts).
"""

from .base import LimitStore, Verdict
from .gcra import Rate, parse_rate
from .guard import Guard
from .limiter import Limiter, limiter_call, open_store
from .memory import MemoryStore

__all__ = [
    "Guard",
    "LimitStore",
    "Limiter",
    "MemoryStore",
    "Rate",
    "Verdict",
    "limiter_call",
    "open_store",
    "parse_rate",
]
