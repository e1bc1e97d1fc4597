"""The dashboard in a real browser: Playwright driving Debian's chromium against ``hokuro ui``
started as a command, one server and one browser for the whole module.

With ``HOKURO_REQUIRE_SERVICES=1`` (CI) a missing chromium fails these tests; otherwise they
are skipped. ``HOKURO_UI_SCREENSHOTS=FOLDER`` saves a PNG of each main page there (the
README's pictures: ``HOKURO_UI_SCREENSHOTS=docs pytest tests/test_ui_browser.py``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ui_work

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = os.environ.get("HOKURO_UI_SCREENSHOTS")

# One worker runs the whole module under `pytest -n 4 --dist loadgroup`: one server, one browser.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("browser")]


def _need_chromium() -> None:
    why = None
    if not Path(CHROMIUM).exists():
        why = f"no browser at {CHROMIUM} (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            why = "playwright is not installed (pip install 'hokuro[dev]')"
    if why is None:
        return
    if os.environ.get("HOKURO_REQUIRE_SERVICES") == "1":
        pytest.fail(f"chromium is not available ({why}); HOKURO_REQUIRE_SERVICES=1 demands "
                    "it", pytrace=False)
    pytest.skip(f"chromium is not available ({why})")


class Server:
    """``hokuro ui`` serving the test Spot, and the address it printed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from hokuro.cli import main; main()", "ui",
             str(folder / ".hokuro" / "ui.db"), "--port", "0", "--path", str(folder)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=folder,
            env=ui_work.environment(folder))
        printed = "".join(self.process.stdout.readline() for _ in range(2))
        found = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=(\S+)", printed)
        assert found, printed
        self.base, self.token = found.group(1), found.group(2)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    _need_chromium()
    found = tmp_path_factory.mktemp("uibrowser")
    ui_work.fill(found)
    return found


@pytest.fixture(scope="module")
def server(folder):
    found = Server(folder)
    yield found
    found.stop()


@pytest.fixture(scope="module")
def ui_browser(folder):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        found = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield found
        found.close()


@pytest.fixture(scope="module")
def ui_page(ui_browser, server):
    """A page of a browser that opened the printed address (and so has the session)."""
    context = ui_browser.new_context(viewport={"width": 1280, "height": 860},
                                  timezone_id="Asia/Tokyo")
    found = context.new_page()
    found.set_default_timeout(15_000)
    found.goto(f"{server.base}/?token={server.token}")
    yield found
    context.close()


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"ui-{name}.png"), full_page=False)


def test_the_token_opens_one_browser_and_then_never_again(ui_browser, server, ui_page):
    page = ui_page
    assert page.url == f"{server.base}/"  # the token left the address bar
    other = ui_browser.new_context()
    try:
        stranger = other.new_page()
        stranger.goto(f"{server.base}/tasks")
        assert "Open the address hokuro ui printed" in stranger.content()
        stranger.goto(f"{server.base}/?token={server.token}")
        assert "already used" in stranger.content()
    finally:
        other.close()


def test_every_page_renders_with_real_data(ui_page, server):
    page = ui_page
    page.goto(f"{server.base}/")
    assert page.locator("#collections-table tr[data-collection='uiwork.parse']").count() == 1
    assert page.locator("svg.chart rect.done").count() >= 1
    # Times are the browser's (Tokyo here), UTC in the tooltip.
    stamp = page.locator("time").first
    assert "UTC" in stamp.get_attribute("title") and "UTC" not in stamp.inner_text()
    shot(page, "collections")
    page.goto(f"{server.base}/tasks")
    assert page.locator("#tasks-table tbody tr").count() == 50
    shot(page, "tasks")
    page.goto(f"{server.base}/errors")
    assert page.locator("#errors-table tbody tr[id]").count() == 2  # two ValueError groups
    page.locator("details summary").first.click()
    shot(page, "errors")
    page.locator("#errors-table a.key").first.click()
    assert "Traceback" in page.locator("#traceback").inner_text()
    page.goto(f"{server.base}/tasks?fn=uiwork.picture")
    page.locator("#tasks-table a.key").first.click()
    assert page.locator("img.result").evaluate("img => img.naturalWidth") == 60
    page.goto(f"{server.base}/tasks?fn=uiwork.parse&status=done")
    page.locator("#tasks-table a.key").first.click()
    assert '"square"' in page.locator("#result pre").inner_text()
    shot(page, "task")
    page.goto(f"{server.base}/runs")
    page.get_by_role("link", name=re.compile("^[0-9a-f]{8}$")).first.click()
    assert page.locator("#steps-table tr[data-step]").count() == 1
    assert "cannot parse 200" in page.locator("#run-failures").inner_text()
    for path, marker in [("/queues", "Queued and waiting jobs"), ("/limits", "10/h"),
                         ("/spots", "(this one)")]:
        page.goto(server.base + path)
        assert marker in page.content(), path
        shot(page, path.strip("/"))


def test_filters_and_paging(ui_page, server):
    page = ui_page
    page.goto(f"{server.base}/")
    page.locator("a.count-failed").first.click()  # a count filters the tasks it counts
    assert "status=failed" in page.url
    statuses = page.locator("#tasks-table .status").all_inner_texts()
    assert statuses and set(statuses) == {"failed"}
    page.goto(f"{server.base}/tasks")
    page.select_option("select[name=status]", "done")
    page.fill("input[name=fn]", "uiwork.parse")
    page.get_by_role("button", name="Filter").click()
    first = page.locator("#tasks-table a.key").all_inner_texts()
    assert len(first) == 50
    page.locator("#next-page").click()
    second = page.locator("#tasks-table a.key").all_inner_texts()
    assert second and not set(first) & set(second)
    assert set(page.locator("#tasks-table .status").all_inner_texts()) == {"done"}
    page.fill("input[name=key]", first[0][:8])
    page.get_by_role("button", name="Filter").click()
    assert page.locator("#tasks-table a.key").all_inner_texts() == [first[0]]


def test_a_post_without_the_csrf_token_is_refused(ui_page, server):
    page = ui_page
    page.goto(f"{server.base}/errors")
    answer = page.evaluate("""async () => {
        const r = await fetch('/errors/abc/retry', {method: 'POST',
            headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'x=1'});
        return [r.status, await r.text()];
    }""")
    assert answer[0] == 403 and "CSRF" in answer[1]


def test_a_live_runs_bars_move_while_a_batch_runs_in_another_process(ui_page, server, folder):
    page = ui_page
    batch = subprocess.Popen(
        [sys.executable, "-c", "import uiwork; uiwork.spot.map(uiwork.slow, range(300), "
         "concurrency=2, progress=False, run='live-batch')"],
        cwd=folder, env=ui_work.environment(folder, UI_SLOW="0.05"))
    try:
        page.goto(f"{server.base}/runs")
        deadline = time.monotonic() + 20
        while page.get_by_text("live-batch").count() == 0:  # the runs list is live too
            assert time.monotonic() < deadline, "the batch's run never showed"
            page.wait_for_timeout(200)
        page.get_by_text("live-batch").locator("xpath=..").locator("a.key").click()
        done = page.locator("#run-done")
        start = int(done.inner_text())
        page.wait_for_function(f"() => +document.querySelector('#run-done').textContent > {start}")
        width = page.locator("#steps-table .bar span.done").evaluate("s => s.style.width")
        assert width.endswith("%")
        shot(page, "run")
        # Paused: the numbers stay while the batch goes on; resumed, they move again.
        page.get_by_role("button", name="Pause live updates").click()
        held = done.inner_text()
        page.wait_for_timeout(2500)
        assert done.inner_text() == held
        page.get_by_role("button", name="Resume live updates").click()
        # (a loaded machine may have finished the batch while the page was paused)
        page.wait_for_function(
            f"() => document.querySelector('#run-done').textContent !== '{held}' "
            "|| document.querySelector('#run-status').textContent === 'done'")
        page.wait_for_function(
            "() => document.querySelector('#run-status').textContent === 'done'", timeout=60_000)
        assert done.inner_text() == "300"
    finally:
        batch.wait(timeout=60)


def test_retry_from_the_errors_page_replays_the_failures(ui_page, server, folder):
    page = ui_page
    page.goto(f"{server.base}/errors")
    row = page.locator("#errors-table tbody tr[id]").filter(has=page.get_by_text("24", exact=True))
    row.get_by_role("link", name="Retry these").click()
    assert "Retry 24 failed tasks?" in page.content()
    (folder / "FIXED").write_text("")
    page.locator("#confirm-retry").click()
    assert page.locator("#retry-summary").inner_text() == "24 done"
    page.goto(f"{server.base}/errors")
    counts = page.locator("#errors-table tbody tr[id] td.num").all_inner_texts()
    assert counts == ["3"]  # the batch's failures are another group, left alone
