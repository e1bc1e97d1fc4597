"""Item identity (what lineage and the error collector name an item by) and item refs
(how an ORM item travels in a chunk job or a failure record: by class and primary key).

An identity is a string:
- ``row:<table>:<primary key as JSON>`` for an ORM object with a primary key — the same
  form names an output row, so a stage triggered on another stage's outputs finds them;
- ``key:<value>`` when the stage gives ``key=`` (a function of the item);
- ``value:<hex>`` for a plain value: its hokuro key (the canonical encoding, hashed).
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import NoInspectionAvailable

from ..errors import ConfigurationError
from ..model.canonical import canonical

__all__ = ["identity", "item_of_ref", "ref_of", "row_identity", "row_key"]

#: The longest identity the lineage table keeps (its ``item`` column).
IDENTITY_LIMIT = 512
#: How an ORM item is written into a job's input or a failure record.
REF = "__hokuro_row__"


def row_key(values: Any) -> str:
    """A primary key's values as the compact JSON lineage stores."""
    return json.dumps(list(values), default=str, separators=(",", ":"))


def row_identity(table: str, key: str) -> str:
    return f"row:{table}:{key}"


def _state(item: Any) -> Any:
    try:
        return sa_inspect(item)
    except NoInspectionAvailable:
        return None


def _orm_identity(item: Any) -> str | None:
    if isinstance(item, type):
        return None
    state = _state(item)
    mapper = getattr(state, "mapper", None)
    if mapper is None or state.identity is None:
        return None
    return row_identity(mapper.local_table.fullname, row_key(state.identity))


def identity(item: Any, key: Callable[[Any], Any] | None = None) -> str:
    """The identity of ``item`` (see the module's docstring)."""
    if key is not None:
        found = f"key:{key(item)}"
        if len(found) > IDENTITY_LIMIT:
            raise ConfigurationError(
                f"the key= of item {item!r} is {len(found)} characters; lineage keeps up to "
                f"{IDENTITY_LIMIT}: return a shorter id (or a hash of a long one)")
        return found
    found = _orm_identity(item)
    if found is not None:
        return found
    try:
        data = canonical(item)
    except Exception as exc:
        raise ConfigurationError(
            f"cannot name item {item!r} for lineage ({exc}); give the stage key=, a function "
            "that returns a stable id of an item") from exc
    return "value:" + hashlib.blake2b(data, digest_size=16).hexdigest()


def ref_of(item: Any) -> Any:
    """``item`` as plain data: an ORM object becomes its class path and primary key."""
    state = _state(item) if not isinstance(item, type) else None
    mapper = getattr(state, "mapper", None)
    if mapper is None:
        return item
    if state.identity is None:
        raise ConfigurationError(f"ORM item {item!r} has no primary key yet (it was never "
                                 "saved); save it first, or pass plain values")
    cls = mapper.class_
    return {REF: f"{cls.__module__}:{cls.__qualname__}", "pk": list(state.identity)}


def is_ref(value: Any) -> bool:
    return isinstance(value, dict) and REF in value


def item_of_ref(value: Any, session: Any) -> Any:
    """The item a ref names, loaded through ``session``; plain values as they are.
    Raises LookupError when the row is gone."""
    if not is_ref(value):
        return value
    module, _, qualname = value[REF].partition(":")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    pk = value["pk"]
    item = session.get(found, pk[0] if len(pk) == 1 else tuple(pk))
    if item is None:
        raise LookupError(f"{qualname} with primary key {pk} is no longer in the database")
    return item
