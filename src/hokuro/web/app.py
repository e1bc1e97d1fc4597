"""The dashboard's application: routes, templates, static files and the guard.

``create_app(books)`` builds the Starlette app over a Spot's books; ``hokuro ui`` serves it
with uvicorn (:mod:`hokuro.web.server`). Pages read (``pages.py``), actions write
(``actions.py``), live parts stream (``live.py``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from . import actions, live, pages
from .books import Books
from .formats import FILTERS, GLOBALS
from .security import Guard, GuardMiddleware

HERE = Path(__file__).parent
#: The vendored htmx and its SSE extension (see static/README.md).
HTMX = "htmx-2.0.11.min.js"
HTMX_SSE = "htmx-ext-sse-2.2.4.min.js"


def templates() -> Jinja2Templates:
    found = Jinja2Templates(directory=HERE / "templates")
    found.env.filters.update(FILTERS)
    found.env.globals.update(GLOBALS, htmx=HTMX, htmx_sse=HTMX_SSE)
    return found


def create_app(books: Books, *, token: str | None = None, hosts: Iterable[str] = (),
               read_only: bool = False, search_path: str | os.PathLike[str] | None = None
               ) -> Starlette:
    """The dashboard over ``books``. ``token``: the one-time token of the printed URL
    (random when None, in ``app.state.guard.token``); ``hosts``: the Host headers it
    answers (all when empty); ``read_only`` hides and refuses actions; ``search_path``:
    where retries import the failed tasks' code from (default: the current folder)."""
    guard = Guard(token=token, hosts=hosts, read_only=read_only)
    routes = [
        Route("/", pages.collections),
        Route("/tasks", pages.tasks),
        Route("/tasks/{key}", pages.task),
        Route("/errors", pages.errors),
        Route("/errors/{fingerprint}/retry", pages.error_retry_confirm, methods=["GET"]),
        Route("/errors/{fingerprint}/retry", actions.error_retry, methods=["POST"]),
        Route("/runs", pages.runs),
        Route("/runs/{ref}", pages.run),
        Route("/runs/{ref}/cancel", pages.run_cancel_confirm, methods=["GET"]),
        Route("/runs/{ref}/cancel", actions.run_cancel, methods=["POST"]),
        Route("/runs/{ref}/retry", actions.run_retry, methods=["POST"]),
        Route("/queues", pages.queues),
        Route("/limits", pages.limits),
        Route("/spots", pages.spots),
        Route("/live/{part}", live.live),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        app.state.actions.join(timeout=5.0)

    app = Starlette(routes=routes, middleware=[Middleware(GuardMiddleware, guard=guard)],
                    lifespan=lifespan)
    app.state.books = books
    app.state.guard = guard
    app.state.templates = templates()
    app.state.actions = actions.Actions()
    app.state.search_path = None if search_path is None else os.fspath(search_path)
    app.state.live_every = dict(live.EVERY)
    return app
