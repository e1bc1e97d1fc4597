"""Safe blob references: relative names that cannot leave the store or hide a file. Pure."""

from __future__ import annotations

import re

from ...errors import UnsafeName

_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$")


def check_ref(ref: str) -> str:
    """Return ``ref`` if every ``/``-separated segment is a safe, visible name; else raise.

    Refused: empty segments, ``.``/``..``, leading dots (hidden files), backslashes, drive
    letters, absolute paths, and any character outside ``[A-Za-z0-9._-]``.
    """
    if not isinstance(ref, str) or not ref or len(ref) > 1024:
        raise UnsafeName(f"blob reference {ref!r} is empty or too long")
    for segment in ref.split("/"):
        if not _SEGMENT.match(segment) or segment.endswith("."):
            raise UnsafeName(
                f"blob reference {ref!r} is not allowed: each part must be letters, digits, "
                "'.', '_' or '-', must not start with '.' and must not be '..'"
            )
    return ref


def is_safe_ref(ref: str) -> bool:
    """True for names hokuro could have written (see :func:`check_ref`)."""
    try:
        check_ref(ref)
    except UnsafeName:
        return False
    return True


def result_ref(key: str, nonce: str) -> str:
    """Where the result of task ``key`` goes: fanned out by its first two hex digits."""
    return check_ref(f"{key[:2]}/{key}-{nonce}.bin")


def log_ref(key: str, nonce: str) -> str:
    return check_ref(f"{key[:2]}/{key}-{nonce}.log")


def files_ref(key: str) -> str:
    """The folder of files a task writes through ``ctx.dir``."""
    return check_ref(f"files/{key[:2]}/{key}")
