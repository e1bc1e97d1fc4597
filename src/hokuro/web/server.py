"""Serving the dashboard: ``serve()`` opens a Spot's books read-only, prints the address with
its one-time token, and runs uvicorn until Ctrl-C.

Bound to 127.0.0.1 unless told otherwise: the pages show results, arguments and tracebacks,
which are often private. Another host (``--host 0.0.0.0``) is allowed, with a warning, and
the server then still answers only for the Host names it was started with plus that one.
"""

from __future__ import annotations

import os
import socket
import sys
import webbrowser
from collections.abc import Callable
from typing import Any

from ..errors import ConfigurationError
from .app import create_app
from .books import Books

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
DEFAULT_PORT = 8765


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (for tests)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def listening(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (0: any free port) and listening, so the address
    printed next answers at once, and a port chosen for ``--port 0`` cannot be taken by
    another process before the server uses it."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot serve on {host}:{port} ({exc.strerror or exc}): "
                                 "choose another --port or --host") from None
    return sock


def allowed_hosts(host: str, port: int) -> list[str]:
    """The Host headers the server answers: the loopback names, and ``host`` itself."""
    names = {*LOCAL_HOSTS, host}
    if host in ("0.0.0.0", "::"):
        names.add(socket.gethostname())
    found = []
    for name in sorted(names):
        shown = f"[{name}]" if ":" in name else name
        found += [f"{shown}:{port}", shown] if port == 80 else [f"{shown}:{port}"]
    return found


def address(host: str, port: int, token: str) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/?token={token}"


def serve(target: str, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
          open_browser: bool = False, read_only: bool = False, spot: str | None = None,
          workspace: str | os.PathLike[str] | None = None, blobs: str | None = None,
          limits: str | None = None, search_path: str | os.PathLike[str] | None = None,
          say: Callable[[str], Any] = print) -> None:
    """Serve the dashboard of the Spot ``target`` names until interrupted."""
    import uvicorn

    if port < 0 or port > 65535:
        raise ConfigurationError(f"--port {port} is not a port; give 1-65535 (0: any free one)")
    books = Books(target, spot=spot, workspace=workspace, blobs=blobs, limits=limits)
    try:
        sock = listening(host, port)
        port = int(sock.getsockname()[1])
        app = create_app(books, hosts=allowed_hosts(host, port), read_only=read_only,
                         search_path=search_path)
        url = address(host, port, app.state.guard.token or "")
        if host not in LOCAL_HOSTS:
            say(f"warning: serving on {host}, reachable from other machines; the pages show "
                "results, arguments and tracebacks, and the token is the only lock "
                "(use plain HTTP only on networks you trust)")
        say(f"hokuro ui: Spot {books.name} ({books.where})"
            + (" read-only" if read_only else ""))
        say(f"open {url}  (the token works once; Ctrl-C stops)")
        sys.stdout.flush()
        if open_browser:
            webbrowser.open(url)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                                timeout_graceful_shutdown=2, lifespan="on")
        with sock:
            uvicorn.Server(config).run(sockets=[sock])
    finally:
        books.close()
