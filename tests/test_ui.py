"""The dashboard's routes and safety through Starlette's test client, on a Spot filled by a
child process (so that this process never imports the Spot's code: a page that did would
show in ``sys.modules``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette prefers httpx2 to httpx now
    from starlette.testclient import TestClient

from click.testing import CliRunner

import ui_work
from hokuro import Spot
from hokuro.cli import main
from hokuro.model.jobs import JobSpec, RunRecord
from hokuro.model.workers import WorkerRecord
from hokuro.web.app import create_app
from hokuro.web.books import Books

TESTS = Path(__file__).parent
SRC = TESTS.parent / "src"
BASE = "http://127.0.0.1:8765"


fill = ui_work.fill


@pytest.fixture(scope="module")
def filled(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ui")
    fill(folder)
    return folder


def client_for(books: Books, **options) -> TestClient:
    app = create_app(books, token="the-token", hosts=["127.0.0.1:8765"], **options)
    client = TestClient(app, base_url=BASE)
    assert client.get("/?token=the-token", follow_redirects=False).status_code == 303
    return client


@pytest.fixture
def books(filled):
    found = Books(str(filled / ".hokuro" / "ui.db"))
    yield found
    found.close()


@pytest.fixture
def client(books, filled):
    with client_for(books, search_path=filled) as found:
        yield found


def keys_in(html: str) -> list[str]:
    return re.findall(r'href="/tasks/([0-9a-f]{32})"', html)


# -- safety -------------------------------------------------------------------------------------

def test_pages_need_the_token_which_works_once_and_becomes_a_cookie(books):
    app = create_app(books, token="once", hosts=["127.0.0.1:8765"])
    first = TestClient(app, base_url=BASE)
    assert first.get("/").status_code == 401
    assert first.get("/tasks?token=wrong").status_code == 401
    answer = first.get("/tasks?token=once&status=done", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/tasks?status=done"  # the token leaves the URL
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert first.get("/tasks").status_code == 200
    second = TestClient(app, base_url=BASE)
    assert second.get("/?token=once").status_code == 401  # used up
    assert second.get("/static/hokuro.css").status_code == 200  # static files hold no data


def test_a_host_the_server_was_not_started_for_is_refused(client):
    assert client.get("/", headers={"host": "attacker.example:8765"}).status_code == 421


def test_an_action_without_the_csrf_token_or_from_another_origin_is_refused(client, books):
    fingerprint = books.error_groups()[0].fingerprint
    url = f"/errors/{fingerprint}/retry"
    csrf = client.app.state.guard.csrf
    assert client.post(url, data={}, headers={"origin": BASE}).status_code == 403
    assert client.post(url, data={"csrf": "forged"}, headers={"origin": BASE}).status_code == 403
    refused = client.post(url, data={"csrf": csrf}, headers={"origin": "http://evil.example"})
    assert refused.status_code == 403 and "evil.example" in refused.text
    assert client.post(url, data={"csrf": csrf}).status_code == 403  # no Origin, no Referer
    assert sum(g.count for g in books.error_groups()) == 27  # nothing was replayed


def test_read_only_hides_the_actions_and_refuses_them(books):
    with client_for(books, read_only=True) as client:
        page = client.get("/errors").text
        assert "Retry these" not in page
        fingerprint = books.error_groups()[0].fingerprint
        answer = client.post(f"/errors/{fingerprint}/retry",
                             data={"csrf": client.app.state.guard.csrf},
                             headers={"origin": BASE})
        assert answer.status_code == 403 and "read-only" in answer.text


def test_reading_every_page_writes_nothing_and_imports_no_user_code(client, books, filled):
    workspace = filled / ".hokuro"

    def snapshot() -> dict[str, tuple[int, int]]:
        # SQLite's -shm/-wal side files change when any connection reads a WAL file, as for
        # every read-only command (test_cli.py): the ledgers themselves must not.
        return {str(p): (p.stat().st_size, p.stat().st_mtime_ns)
                for p in sorted(workspace.rglob("*"))
                if p.is_file() and not p.name.endswith(("-shm", "-wal"))}

    before = snapshot()
    run_id = books.runs()[0].record.id
    keys = keys_in(client.get("/tasks").text)
    paths = ["/", "/?fn=parse", "/tasks", "/tasks?status=failed", "/errors", "/runs",
             f"/runs/{run_id}", f"/runs/{run_id}/cancel", "/queues", "/limits", "/spots",
             *(f"/tasks/{k}" for k in keys[:20]),
             f"/errors/{books.error_groups()[0].fingerprint}/retry"]
    for path in paths:
        assert client.get(path).status_code == 200, path
    with client.stream("GET", f"/live/run?ref={run_id}") as stream:
        assert "event: end" in stream.read().decode()
    assert "uiwork" not in sys.modules
    assert snapshot() == before


# -- pages ----------------------------------------------------------------------------------------

def test_collections_show_counts_that_link_to_their_tasks_and_a_chart(client):
    page = client.get("/").text
    assert 'data-collection="uiwork.parse"' in page
    assert 'href="/tasks?fn=uiwork.parse&amp;status=failed">27<' in page
    assert "<svg" in page and 'class="done"' in page  # bars of the last minutes
    assert re.search(r"\d+ ms</td>", page)  # duration percentiles


def test_tasks_are_paged_by_keyset_without_repeats_and_filtered(client):
    seen: list[str] = []
    url = "/tasks?fn=uiwork.parse"
    pages = 0
    while url:
        page = client.get(url).text
        seen += keys_in(page)
        found = re.search(r'id="next-page" href="([^"]+)"', page)
        url = found.group(1).replace("&amp;", "&") if found else None
        pages += 1
    assert pages == 3 and len(seen) == 132 == len(set(seen))
    failed = client.get("/tasks?status=failed").text
    assert failed.count('class="status failed"') == 27
    assert 'class="status done"' not in failed
    one = seen[0]
    assert keys_in(client.get(f"/tasks?key={one[:10]}").text) == [one]
    assert keys_in(client.get("/tasks?since=2000-01-01T00:00&until=2000-01-02").text) == []
    assert client.get("/tasks?status=bogus").status_code == 400
    assert client.get("/tasks?key=xyz").status_code == 400


def test_a_filter_asked_per_status_or_per_collection_pages_like_one_query(client, books):
    def listing(url: str) -> list[str]:
        seen = []
        while url:
            page = client.get(url).text
            seen += keys_in(page)
            found = re.search(r'id="next-page" href="([^"]+)"', page)
            url = found.group(1).replace("&amp;", "&") if found else None
        return seen

    # status alone: one page per collection, merged; collection alone: one per status.
    assert listing("/tasks?status=done") == [r.key for r in books.ledger.find(status="done")]
    assert listing("/tasks?fn=uiwork.parse") == [
        r.key for r in books.ledger.find(fn="uiwork.parse")]


def test_a_task_page_shows_its_result_by_content_type_and_never_unpickles(client, books):
    def page_of(fn: str) -> str:
        key = books.ledger.find_page(fn=fn, limit=1)[0].key
        return client.get(f"/tasks/{key[:10]}").text  # a prefix is followed to the key

    assert "data:image/svg+xml;base64," in page_of("uiwork.picture")
    raw = page_of("uiwork.raw")
    assert "00000000  00 01 02 03" in raw and "512 more bytes not shown" in raw
    assert "pickle" in page_of("uiwork.pickled") and "not decoded" in page_of("uiwork.pickled")
    assert "line\nline\nline" in page_of("uiwork.text")
    done = books.ledger.find_page(fn="uiwork.parse", status="done", limit=1)[0].key
    assert "&#34;square&#34;" in client.get(f"/tasks/{done}").text  # JSON, pretty
    failed = books.ledger.find_page(fn="uiwork.parse", status="failed", limit=1)[0].key
    detail = client.get(f"/tasks/{failed}").text
    assert "Traceback" in detail and "ValueError: cannot parse" in detail
    assert client.get("/tasks/ffffffffffff").status_code == 404


def test_errors_are_grouped_with_counts_and_tracebacks(client):
    page = client.get("/errors").text
    # The batch's failures went through the run engine's frames: a group of their own.
    assert "ValueError" in page and ">24<" in page and ">3<" in page and "cannot parse" in page
    assert "Retry these" in page


def test_retry_these_asks_then_replays_the_group_like_hokuro_retry(books, filled):
    folder = filled.parent / f"retry-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    fill(folder)
    local = Books(str(folder / ".hokuro" / "ui.db"))
    try:
        with client_for(local, search_path=folder) as client:
            group = local.error_groups()[0]
            confirm = client.get(f"/errors/{group.fingerprint}/retry").text
            assert "Retry 24 failed tasks?" in confirm
            (folder / "FIXED").write_text("")
            answer = client.post(f"/errors/{group.fingerprint}/retry",
                                 data={"csrf": client.app.state.guard.csrf},
                                 headers={"origin": BASE})
            assert answer.status_code == 200
            assert "24 done" in answer.text
            assert [g.count for g in local.error_groups()] == [3]  # the batch's, left
    finally:
        local.close()
        sys.modules.pop("uiwork", None)


def test_runs_list_and_run_page_show_steps_failures_and_a_live_stream(client, books):
    page = client.get("/runs").text
    assert "parsing" in page and 'class="status failed"' in page
    run_id = books.runs()[0].record.id
    detail = client.get(f"/runs/{run_id[:8]}").text
    assert 'data-step="' in detail and "cannot parse 200" in detail
    assert "Retry failures" in detail
    with client.stream("GET", f"/live/run?ref={run_id}") as stream:
        body = stream.read().decode()
    assert body.startswith("event: run\n") and "data: " in body and "event: end" in body
    assert client.get("/runs/nope").status_code == 404


def test_cancel_asks_then_cancels_a_running_run(tmp_path):
    spot = Spot("ui", workspace=tmp_path / ".hokuro")
    now = time.time()
    record = RunRecord(id=uuid.uuid4().hex, name="slowly", status="running", plan=None,
                       created_at=now, updated_at=now)
    spot.ledger.create_run(record)
    spot.ledger.insert_jobs(record.id, [JobSpec(f"{i}/step", "step", "step")
                                        for i in range(5)], now)
    spot.close()
    books = Books(str(tmp_path / ".hokuro" / "ui.db"))
    try:
        with client_for(books) as client:
            assert "Yes, cancel the run" in client.get(f"/runs/{record.id}/cancel").text
            answer = client.post(f"/runs/{record.id}/cancel",
                                 data={"csrf": client.app.state.guard.csrf},
                                 headers={"origin": BASE})
            assert answer.status_code == 200 and "cancelled 5 jobs" in answer.text
            assert books.runs()[0].record.status == "cancelled"
            queues = client.get("/queues").text
            assert "No queued or waiting jobs" in queues
    finally:
        books.close()


def test_queues_show_ready_and_waiting_jobs_per_scope_and_priority(tmp_path):
    spot = Spot("ui", workspace=tmp_path / ".hokuro")
    now = time.time()
    record = RunRecord(id=uuid.uuid4().hex, name="q", status="submitted", plan=None,
                       created_at=now, updated_at=now)
    spot.ledger.create_run(record)
    spot.ledger.insert_jobs(record.id, [
        *(JobSpec(f"{i}/a", "a", "a", scope="reports", priority=5) for i in range(3)),
        *(JobSpec(f"{i}/b", "b", "b", scope="reports", priority=0, run_after=now + 600)
          for i in range(2)),
    ], now)
    for name, beat in (("live", now), ("gone", now - 3600)):
        spot.ledger.register_worker(WorkerRecord(
            id=f"host-{name}|1|1.00|x", host=f"host-{name}", pid=4242, scopes="reports,mail",
            concurrency=16, started_at=now - 7200, heartbeat_at=beat, status="running",
            running=3))
    spot.close()
    books = Books(str(tmp_path / ".hokuro" / "ui.db"))
    try:
        with client_for(books) as client:
            page = client.get("/queues").text
        rows = re.findall(r"<tr><td>reports</td><td class=\"num\">(\d+)</td>"
                          r"<td class=\"num\">(\d+)</td><td class=\"num\">(\d+)</td>", page)
        assert rows == [("5", "3", "0"), ("0", "0", "2")]
        workers = dict(re.findall(r"<code>host-(\w+)\|[^<]*</code></td>\s*<td><span "
                                  r"class=\"status \w+\">(\w+)</span>", page))
        assert workers == {"live": "running", "gone": "lost"}  # no heartbeat for an hour
        assert "reports,mail" in page
    finally:
        books.close()


def test_limits_show_each_limits_use(client):
    page = client.get("/limits").text
    assert "<td>api</td><td>10/h</td>" in page
    assert re.search(r"[23]\.\d / 10", page)  # three taken a moment ago


def test_spots_of_the_workspace(client):
    page = client.get("/spots").text
    assert "(this one)" in page and "ui.db" in page


# -- PostgreSQL -----------------------------------------------------------------------------------

@pytest.mark.postgres
def test_pages_on_postgresql_never_show_the_password(pg_url):
    secret = "hunter2-secret"
    url = pg_url.replace("://postgres@", f"://postgres:{secret}@")
    spot = Spot("pgui", db=url, blobs=None)

    @spot.mark(name="pg.work")
    def work(n):
        if n == 3:
            raise RuntimeError(f"no luck with {url}")
        return n

    for n in range(6):
        try:
            work(n)
        except RuntimeError:
            pass
    spot.map(work, range(10, 14), progress=False, run="pgrun")
    spot.close()
    books = Books(url, spot="pgui")
    try:
        with client_for(books) as client:
            run_id = books.runs()[0].record.id
            key = books.ledger.find_page(fn="pg.work", status="failed", limit=1)[0].key
            for path in ["/", "/tasks", "/tasks?fn=pg.work&status=done", "/errors", "/runs",
                         f"/runs/{run_id}", "/queues", "/limits", "/spots", f"/tasks/{key}"]:
                answer = client.get(path)
                assert answer.status_code == 200, path
                assert secret not in answer.text, path
            assert "pgui" in client.get("/spots").text
            assert "RuntimeError" in client.get("/errors").text
    finally:
        books.close()


# -- the command ----------------------------------------------------------------------------------

def test_hokuro_ui_refuses_a_spot_that_does_not_exist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["ui", "nosuch", "--port", "0"])
    assert result.exit_code == 1 and "no Spot named 'nosuch'" in result.output
    assert not (tmp_path / ".hokuro").exists()


def test_hokuro_ui_serves_a_ledger_file_and_prints_its_one_time_address(filled):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    process = subprocess.Popen(
        [sys.executable, "-c", "from hokuro.cli import main; main()", "ui",
         str(filled / ".hokuro" / "ui.db"), "--port", "0", "--read-only"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=filled)
    try:
        lines = [process.stdout.readline() for _ in range(2)]
        url = re.search(r"http://127\.0\.0\.1:\d+/\?token=\S+", "".join(lines)).group(0)
        import httpx

        with httpx.Client(follow_redirects=True, timeout=10) as browser:
            for _ in range(50):
                try:
                    page = browser.get(url)
                    break
                except httpx.ConnectError:
                    time.sleep(0.1)
            assert page.status_code == 200 and "parse" in page.text
            assert "read-only" in page.text
            assert browser.get(url).status_code == 200  # the cookie, not the spent token
            assert httpx.get(url, timeout=10).status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_another_host_than_loopback_is_named_and_warned_about(monkeypatch, filled):
    from hokuro.web import server

    assert server.allowed_hosts("127.0.0.1", 8765) == [
        "127.0.0.1:8765", "[::1]:8765", "localhost:8765"]
    assert "10.0.0.5:9000" in server.allowed_hosts("10.0.0.5", 9000)
    said: list[str] = []
    monkeypatch.setattr("uvicorn.Server.run", lambda self, sockets=None: said.append("served"))
    server.serve(str(filled / ".hokuro" / "ui.db"), host="0.0.0.0", port=0, say=said.append)
    assert said[0].startswith("warning: serving on 0.0.0.0, reachable from other machines")
    assert re.match(r"open http://127\.0\.0\.1:\d+/\?token=\S+ ", said[2])
    assert said[-1] == "served"
