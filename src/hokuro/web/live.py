"""Live parts over server-sent events: a page's part is rendered again every few seconds
and sent as one event, which htmx's SSE extension swaps into the page. A part whose subject
has ended (a finished run) sends one last update and an ``end`` event, which closes the
stream instead of letting the browser reconnect.

Rendering runs on Starlette's thread pool: the ledger's reads never block the event loop
that keeps the other streams going (invariant 8). The browser pauses a part by ignoring its
events (``static/hokuro.js``); the server stops when the browser goes away.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..errors import AmbiguousRun, HokuroError, RunNotFound
from ..model.jobs import RunStatus
from .books import Books
from .pages import collections_context, problem, run_context, runs_context

#: Seconds between two updates of a part.
EVERY = {"run": 1.0, "runs": 2.0, "collections": 5.0, "queues": 2.0}
#: At least this many times the time a part took to render passes before the next update.
SLOW_FACTOR = 10


def _run(books: Books, query: Any) -> tuple[str, dict[str, Any], bool]:
    context = run_context(books, query.get("ref", ""))
    ended = context["record"].status not in (RunStatus.RUNNING, RunStatus.SUBMITTED)
    return "_run_progress.html", context, ended


def _runs(books: Books, query: Any) -> tuple[str, dict[str, Any], bool]:
    return "_runs_table.html", runs_context(books, query.get("status") or None), False


def _collections(books: Books, query: Any) -> tuple[str, dict[str, Any], bool]:
    return "_collections.html", collections_context(books, query.get("fn") or None), False


def _queues(books: Books, query: Any) -> tuple[str, dict[str, Any], bool]:
    return "_queues.html", books.queues(), False


PARTS: dict[str, Callable[[Books, Any], tuple[str, dict[str, Any], bool]]] = {
    "run": _run, "runs": _runs, "collections": _collections, "queues": _queues}


def event(name: str, html: str) -> str:
    """One server-sent event: a name, and the HTML as ``data:`` lines."""
    lines = html.splitlines() or [""]
    return f"event: {name}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"


async def live(request: Request) -> Response:
    part = request.path_params["part"]
    make = PARTS.get(part)
    if make is None:
        return problem(request, f"no live part named {part!r}", 404)
    state = request.app.state
    books: Books = state.books
    query = request.query_params
    every = state.live_every.get(part, EVERY[part])

    def rendered() -> tuple[str, bool]:
        template, context, ended = make(books, query)
        context.update(spot=books.name, read_only=state.guard.read_only,
                       csrf=state.guard.csrf)
        return state.templates.get_template(template).render(context), ended

    async def stream() -> AsyncIterator[str]:
        while True:
            started = time.monotonic()
            try:
                html, ended = await run_in_threadpool(rendered)
            except (RunNotFound, AmbiguousRun, HokuroError) as exc:
                yield event("end", str(exc))
                return
            yield event(part, html)
            if ended:
                yield event("end", "")
                return
            # A part that is slow to read (the counts of a million records) is read less
            # often: the ledger spends at most a tenth of its time on one open page.
            await asyncio.sleep(max(every, SLOW_FACTOR * (time.monotonic() - started)))

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
