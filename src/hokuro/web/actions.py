"""The dashboard's actions: replay an error group's failures, cancel a run, retry a run's
failures. Each is a POST that passes :meth:`Guard.check_action` (CSRF token, Origin, not
read-only) and makes the same library call as the command line: ``hokuro retry --error``,
``hokuro run cancel``, ``hokuro retry --run``.

Why these choices:
- An action opens its own writable service and closes it when done; the pages' service
  stays read-only for the server's life.
- Replaying an error group imports the failed tasks' functions (the folder given by
  ``hokuro ui --path``, default the current one, first on the import path), as ``hokuro
  retry`` does; only an action ever imports user code.
- Retrying a run goes on in a thread of the server until the run ends, as ``hokuro retry
  --run`` goes on in its process; the run page shows it live meanwhile. One retry per run
  at a time.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Any
from urllib.parse import parse_qsl, quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..admin.runs import cancel_run, find_run, retry_run
from ..errors import AmbiguousRun, HokuroError, RunNotFound
from ..model.redact import mask_secrets
from .pages import books_of, problem, render
from .security import CSRF_FIELD

log = logging.getLogger("hokuro")


class Actions:
    """Run retries going on in this server's threads, by run id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._retrying: dict[str, threading.Thread] = {}
        self.last_error: dict[str, str] = {}

    def retrying(self, run_id: str) -> bool:
        with self._lock:
            thread = self._retrying.get(run_id)
            return thread is not None and thread.is_alive()

    def start_retry(self, run_id: str, work: Any) -> bool:
        with self._lock:
            thread = self._retrying.get(run_id)
            if thread is not None and thread.is_alive():
                return False
            thread = threading.Thread(target=self._run, args=(run_id, work),
                                      name=f"hokuro-ui-retry-{run_id[:8]}", daemon=True)
            self._retrying[run_id] = thread
            thread.start()
            return True

    def _run(self, run_id: str, work: Any) -> None:
        try:
            work()
        except Exception as exc:  # shown on the run page; the server goes on
            self.last_error[run_id] = mask_secrets(str(exc))
            log.warning("hokuro ui: retry of run %s stopped: %s", run_id[:8], exc)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the retries going on (tests; the server's shutdown)."""
        with self._lock:
            threads = list(self._retrying.values())
        for thread in threads:
            thread.join(timeout)


#: The largest form an action takes (they carry a token and little else).
_FORM_BYTES = 64 * 1024


async def _refused(request: Request) -> tuple[Response | None, dict[str, str]]:
    # The forms are URL-encoded (no file uploads): read here, with no multipart parser.
    body = await request.body()
    form = dict(parse_qsl(body[:_FORM_BYTES].decode("utf-8", "replace")))
    why = request.app.state.guard.check_action(request, form.get(CSRF_FIELD))
    if why is not None:
        return problem(request, why, 403), form
    return None, form


async def error_retry(request: Request) -> Response:
    refused, _ = await _refused(request)
    if refused is not None:
        return refused
    from starlette.concurrency import run_in_threadpool

    fingerprint = request.path_params["fingerprint"]
    books = books_of(request)
    search_path = request.app.state.search_path

    def replay() -> list[Any]:
        with books.writable() as service:
            return list(service.retry_failed(fingerprint=fingerprint, search_path=search_path))

    try:
        results = await run_in_threadpool(replay)
    except HokuroError as exc:
        return problem(request, str(exc), 409)
    counts = Counter(r.outcome for r in results)
    return render(request, "retry_results.html", fingerprint=fingerprint, results=results,
                  counts=dict(sorted(counts.items())))


async def run_cancel(request: Request) -> Response:
    refused, _ = await _refused(request)
    if refused is not None:
        return refused
    from starlette.concurrency import run_in_threadpool

    books = books_of(request)
    ref = request.path_params["ref"]

    def cancel() -> Any:
        with books.writable() as service:
            record = find_run(service.ledger, ref)
            return cancel_run(service.ledger, record, owner=service.spot.owner_token(),
                              clock=service.spot.clock, lease=service.spot.lease)

    try:
        report = await run_in_threadpool(cancel)
    except (RunNotFound, AmbiguousRun) as exc:
        return problem(request, str(exc), 404)
    except HokuroError as exc:
        return problem(request, str(exc), 409)
    message = ("nothing to cancel: the run had ended" if report.nothing_to_do else
               f"cancelled {report.cancelled} jobs")
    return RedirectResponse(f"/runs/{report.run.id}?message={quote(message)}", 303)


async def run_retry(request: Request) -> Response:
    refused, _ = await _refused(request)
    if refused is not None:
        return refused
    books = books_of(request)
    state = request.app.state
    try:
        record = find_run(books.ledger, request.path_params["ref"])
    except (RunNotFound, AmbiguousRun) as exc:
        return problem(request, str(exc), 404)
    search_path = state.search_path

    def work() -> None:
        with books.writable() as service:
            retry_run(service.ledger, record, search_path=search_path, progress=False)

    # Import problems are found before the thread starts, so the page can say them.
    try:
        with books.writable() as service:
            report = retry_run(service.ledger, record, search_path=search_path,
                               progress=False, dry_run=True)
    except HokuroError as exc:
        return problem(request, str(exc), 409)
    if report.nothing_to_do:
        message = "nothing to retry: no failed or unfinished jobs"
    elif state.actions.start_retry(record.id, work):
        message = f"retrying {report.failed} failed jobs in the dashboard's process"
    else:
        message = "a retry of this run is going on already"
    return RedirectResponse(f"/runs/{record.id}?message={quote(message)}", 303)

