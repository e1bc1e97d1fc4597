"""The dashboard's pages: each handler reads through :class:`~hokuro.web.books.Books` and
renders one template. Handlers are plain functions (Starlette runs them on its thread pool),
so a slow ledger never blocks the event loop that serves the live parts (invariant 8).

A page never writes and never imports a module named by stored data (invariant 6): the
actions that do (retry, cancel) are in :mod:`hokuro.web.actions`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..admin.runs import STATUS_ORDER
from ..errors import AmbiguousRun, ConfigurationError, RunNotFound
from ..model.jobs import RunStatus
from ..model.redact import mask_secrets
from .books import PERCENTILE_SAMPLE, TASK_STATUSES, Books, TaskFilter
from .charts import throughput_chart
from .values import show_value, shown_text

#: The statuses shown as columns of the collections table, in this order.
COLLECTION_STATUSES = ("done", "failed", "running", "waiting", "queued", "cancelled", "expired")


def books_of(request: Request) -> Books:
    return request.app.state.books


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    state = request.app.state
    books = books_of(request)
    base = {"spot": books.name, "where": books.where, "guard": state.guard,
            "read_only": state.guard.read_only, "csrf": state.guard.csrf,
            "keeps_runs": books.keeps_runs}
    return state.templates.TemplateResponse(request, template, {**base, **context},
                                            status_code=status_code)


def problem(request: Request, message: str, status_code: int = 400) -> Response:
    return render(request, "problem.html", status_code, message=mask_secrets(message))


# -- collections (the home page) -------------------------------------------------------------

def collections_context(books: Books, fn: str | None = None) -> dict[str, Any]:
    stats, figures = books.collections(fn)
    return {"stats": stats, "figures": figures, "statuses": COLLECTION_STATUSES,
            "chart": throughput_chart(books.throughput(fn=fn)), "fn": fn,
            "now": books.clock(), "sample_size": PERCENTILE_SAMPLE}


def collections(request: Request) -> Response:
    books = books_of(request)
    fn = request.query_params.get("fn") or None
    return render(request, "collections.html", **collections_context(books, fn))


# -- tasks -----------------------------------------------------------------------------------

def tasks(request: Request) -> Response:
    books = books_of(request)
    try:
        wanted = TaskFilter.from_query(request.query_params)
        page = books.tasks(wanted, request.query_params.get("after"))
    except ConfigurationError as exc:
        return problem(request, str(exc))
    query = wanted.query()
    next_url = None
    if page.next_cursor is not None:
        next_url = "/tasks?" + urlencode({**query, "after": page.next_cursor})
    first_url = "/tasks?" + urlencode(query) if request.query_params.get("after") else None
    return render(request, "tasks.html", page=page, wanted=wanted, query=query,
                  next_url=next_url, first_url=first_url, statuses=TASK_STATUSES,
                  now=books.clock())


def task(request: Request) -> Response:
    books = books_of(request)
    ref = request.path_params["key"].strip().lower()
    found = books.resolve_key(ref) if ref else None
    if isinstance(found, list):
        return render(request, "problem.html", 404,
                      message=f"{len(found)} tasks have keys starting with {ref!r}",
                      links=[(f"/tasks/{k}", k) for k in found])
    detail = books.task(found) if found else None
    if detail is None:
        return problem(request, f"no task has a key starting with {ref!r}", 404)
    if found != ref:
        return RedirectResponse(f"/tasks/{found}", 303)
    record = detail.record
    error = detail.error
    return render(
        request, "task.html", detail=detail, record=record,
        result=show_value(detail.result, record.content_type,
                          detail.result_note if record.status == "done" else
                          "<no result: the task is " + detail.status + ">"),
        args=show_value(detail.args, None, detail.args_note),
        traceback=shown_text(error.traceback or str(error)) if error is not None else None,
        log=shown_text(detail.log_note or detail.log),
        files=_files(detail.paths.get("dir")),
        paths={k: mask_secrets(str(v)) for k, v in detail.paths.items() if k != "dir"},
        duration=(record.finished_at - record.started_at
                  if record.finished_at and record.started_at else None))


def _files(folder: Any) -> list[tuple[str, int]]:
    """Names and sizes of the files a task wrote in its folder (``ctx.files``)."""
    if folder is None:
        return []
    root = Path(str(folder))
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.rglob("*"))[:200]:
        if path.is_file():
            found.append((str(path.relative_to(root)), path.stat().st_size))
    return found


# -- errors ----------------------------------------------------------------------------------

def errors(request: Request) -> Response:
    books = books_of(request)
    fn = request.query_params.get("fn") or None
    groups = books.error_groups(fn)
    return render(request, "errors.html", groups=groups, fn=fn,
                  tracebacks={g.fingerprint: shown_text(g.example_traceback or g.message, 6000)
                              for g in groups})


def error_retry_confirm(request: Request) -> Response:
    books = books_of(request)
    fingerprint = request.path_params["fingerprint"]
    group = books.error_group(fingerprint)
    if group is None:
        return problem(request, f"no failed tasks have the error fingerprint {fingerprint!r} "
                       "(any more)", 404)
    return render(request, "retry_confirm.html", group=group,
                  folder=str(request.app.state.search_path or Path.cwd()))


# -- runs ------------------------------------------------------------------------------------

def runs_context(books: Books, status: str | None = None) -> dict[str, Any]:
    return {"rows": books.runs(status), "run_statuses": [str(s) for s in RunStatus],
            "status": status, "now": books.clock()}


def runs(request: Request) -> Response:
    books = books_of(request)
    status = request.query_params.get("status") or None
    if status is not None and status not in {str(s) for s in RunStatus}:
        return problem(request, f"run status {status!r} is not one of "
                       f"{', '.join(str(s) for s in RunStatus)}")
    return render(request, "runs.html", **runs_context(books, status))


def run_context(books: Books, ref: str) -> dict[str, Any]:
    detail = books.run(ref)
    return {"detail": detail, "record": detail.record, "order": [str(s) for s in STATUS_ORDER],
            "live": detail.record.status in (RunStatus.RUNNING, RunStatus.SUBMITTED),
            "now": books.clock()}


def run(request: Request) -> Response:
    books = books_of(request)
    try:
        context = run_context(books, request.path_params["ref"])
    except (RunNotFound, AmbiguousRun) as exc:
        return problem(request, str(exc), 404)
    record = context["record"]
    actions = request.app.state.actions
    return render(request, "run.html", **context, retrying=actions.retrying(record.id),
                  message=request.query_params.get("message"))


def run_cancel_confirm(request: Request) -> Response:
    books = books_of(request)
    try:
        context = run_context(books, request.path_params["ref"])
    except (RunNotFound, AmbiguousRun) as exc:
        return problem(request, str(exc), 404)
    return render(request, "cancel_confirm.html", **context)


# -- workers and queues, limits, Spots ---------------------------------------------------------

def queues(request: Request) -> Response:
    return render(request, "queues.html", **books_of(request).queues())


def limits(request: Request) -> Response:
    where, uses, why = books_of(request).limits()
    return render(request, "limits.html", location=where, uses=uses, why=why)


def spots(request: Request) -> Response:
    books = books_of(request)
    return render(request, "spots.html", spots=books.spots(), database=books.is_database)

