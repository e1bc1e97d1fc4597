"""Who owns a lease: this process's identity, and whether another owner is still alive.

An owner token names host, pid, the process's start time and a random nonce. On the same
host a dead owner is recognised at once (its pid is gone or a zombie, or was reused by a
process that started at another time); on other hosts only the lease expiry tells.
"""

from __future__ import annotations

import os
import time
from functools import cache

from ..model.records import Owner


def _hostname() -> str:
    # os.uname is what socket.gethostname reads on POSIX, without importing socket.
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket

    return socket.gethostname()


_HOST = _hostname()


@cache
def _boot_time() -> float | None:
    try:
        with open("/proc/stat") as handle:
            for line in handle:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def _stat_fields(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (Linux), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    return data[data.rindex(b")") + 2:].split()


def process_start(pid: int) -> float | None:
    """Epoch seconds at which ``pid`` started, where the OS tells (Linux ``/proc``)."""
    boot = _boot_time()
    if boot is None:
        return None
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs. A zombie (exited, its status not yet collected by a parent
    that may never collect it: a container whose PID 1 does not reap) is dead, though
    ``kill(pid, 0)`` still succeeds on it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _stat_fields(pid)
    return fields is None or fields[0] not in (b"Z", b"X")


# This process's identity, by pid (a forked child makes its own entry).
_IDENTITIES: dict[int, Owner] = {}


def current_owner() -> Owner:
    """This process's owner identity: one per process, whatever threads race to make it.

    A task claimed under one identity and finished under another would read as taken over
    and its result would be dropped, so the first identity made wins (``setdefault`` is
    atomic) and every later call returns it.
    """
    pid = os.getpid()
    owner = _IDENTITIES.get(pid)
    if owner is None:
        start = process_start(pid)
        owner = _IDENTITIES.setdefault(pid, Owner(
            _HOST, pid, time.time() if start is None else start, os.urandom(4).hex()))
    return owner


def owner_is_dead(token: str | None) -> bool:
    """True only when ``token`` names a process on this host that no longer runs.

    Owners on other hosts, or tokens that cannot be read, are never declared dead here:
    their lease expiry decides.
    """
    owner = Owner.parse(token)
    if owner is None or owner.host != _HOST:
        return False
    if owner.pid == os.getpid():
        # Our own pid: dead only if it belonged to an earlier process (pid reuse).
        return abs(owner.start - current_owner().start) > 1.0
    if not pid_alive(owner.pid):
        return True
    started = process_start(owner.pid)
    return started is not None and abs(started - owner.start) > 1.0
