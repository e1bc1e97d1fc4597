"""Faults of the shared backends: lost PostgreSQL connections mid-run, an S3 error on one
blob, and passwords that must never be shown."""

from __future__ import annotations

import logging
import time
import traceback
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hokuro import Spot
from hokuro.errors import BlobError, LedgerError
from procs import faulted_result
from test_single_flight import _child

pytestmark = [pytest.mark.postgres, pytest.mark.s3]

WORKERS, OWN, SHARED = 4, 250, 50
TERMINATE = """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
               WHERE datname = %s AND pid <> pg_backend_pid()"""


def _database(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _executions(folder: Path) -> list[str]:
    lines: list[str] = []
    for path in folder.glob("executions-*.txt"):
        lines += path.read_text().splitlines()
    return lines


# -- PostgreSQL connections killed while four processes run marked calls --------------------

def test_killed_connections_mid_run_lose_and_duplicate_no_task(pg_url, s3_url, pg_admin,
                                                              workspace):
    home = workspace / ".hokuro"
    start_at = f"{time.time() + 1.5:.3f}"
    children = [
        _child("faulted_calls", str(home), str(w), str(OWN), str(SHARED),
               str(workspace / f"executions-{w}.txt"), start_at, pg_url, s3_url)
        for w in range(WORKERS)
    ]
    expected = {f"w{w}-{i}" for w in range(WORKERS) for i in range(OWN)}
    expected |= {f"s-{i}" for i in range(SHARED)}
    # Kill every connection of the run's database each time it passes 5 % of the work.
    marks = [len(expected) * k // 20 for k in range(1, 20)]
    killed: list[int] = []
    try:
        while any(child.poll() is None for child in children):
            if marks and len(_executions(workspace)) >= marks[0]:
                marks.pop(0)
                (count,) = pg_admin.execute(TERMINATE, (_database(pg_url),)).fetchone()
                killed.append(count)
            time.sleep(0.01)
        outputs = [child.communicate(timeout=60) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.communicate()
    for child, (_, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
    assert len(killed) >= 10 and sum(killed) > 0, killed
    calls, retried = zip(*(map(int, out.split()) for out, _ in outputs), strict=True)
    assert calls == (OWN + SHARED,) * WORKERS
    assert sum(retried) > 0  # the kills did reach connections the workers were using

    executions = Counter(_executions(workspace))
    assert set(executions) == expected  # zero lost
    assert [item for item, n in executions.items() if n > 1] == []  # zero duplicated

    # Every record is done, after one attempt, and reads back whole (blobs from S3 too)
    # without running anything again.
    with Spot("faults", db=pg_url, blobs=s3_url, workspace=home) as spot:
        assert spot.stats()["counts"] == {"total": len(expected), "done": len(expected)}
        assert {r.attempts for r in spot.ledger.find(fn="tests.faulted")} == {1}
        again = []

        @spot.mark(name="tests.faulted")
        def work(item: str) -> dict:
            again.append(item)
            return {}

        for item in sorted(expected):
            assert work(item) == faulted_result(item)
        assert again == []
        assert sum(1 for info in spot.blobs.list_blobs() if info.ref.endswith(".bin")) == \
            sum(1 for item in expected if faulted_result(item)["pad"])


# -- an S3 error on one blob ----------------------------------------------------------------

class _Body:
    """The raw body of a response made up by the test (what botocore reads it through)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: object):
        yield self._data


def _refuse_uploads_of(key: str):
    """A botocore ``before-send`` hook: S3 answers 403 AccessDenied to uploads of ``key``.

    Every other request goes to the real (local) S3 server; this one gets the response a
    bucket policy denying that object would give, parsed by botocore as usual.
    """
    from botocore.awsrequest import AWSResponse

    body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
            b"<Message>Access Denied</Message></Error>")

    def hook(request, **_: object):
        if request.method == "PUT" and key in request.url:
            return AWSResponse(request.url, 403, {"Content-Type": "application/xml"},
                               _Body(body))
        return None

    return hook


def test_an_s3_error_on_one_blob_fails_that_task_and_leaves_the_others_done(
        pg_url, s3_url, workspace):
    with Spot("batch", db=pg_url, blobs=s3_url, workspace=workspace / ".hokuro",
              blob_threshold=1024) as spot:
        runs = []

        @spot.mark
        def page(i: int) -> dict:
            runs.append(i)
            return {"i": i, "body": "x" * 4096}  # above the threshold: a blob in S3

        bad = page.key_of(3)
        hook = _refuse_uploads_of(bad)
        events = spot.blobs._client().meta.events  # the store's own client sends the uploads
        events.register("before-send.s3.PutObject", hook)
        try:
            with ThreadPoolExecutor(4) as pool:
                futures = {i: pool.submit(page, i) for i in range(8)}
                outcomes = {i: f.exception(timeout=60) or f.result() for i, f in futures.items()}
        finally:
            events.unregister("before-send.s3.PutObject", hook)

        error = outcomes.pop(3)
        assert isinstance(error, BlobError)
        assert "AccessDenied" in str(error) and spot.blobs.describe() in str(error)
        task = page.task(3)
        assert task.status == "failed"
        assert task.error.type == "BlobError" and "AccessDenied" in task.error.message
        assert task.record.blob is None
        for i, value in outcomes.items():
            assert value == {"i": i, "body": "x" * 4096}
            done = page.task(i)
            assert done.status == "done" and done.record.blob is not None
            assert done.result == value  # read back from the bucket
        # Nothing of the failed task reached the bucket.
        assert not [info for info in spot.blobs.list_blobs() if bad in info.ref]
        assert sorted(runs) == list(range(8))

        # Once S3 takes the upload, the next call runs the task again and keeps it.
        assert page(3) == {"i": 3, "body": "x" * 4096}
        assert page.task(3).status == "done" and page.task(3).attempts == 2


# -- passwords ---------------------------------------------------------------------------------

SECRET = "s3cr3t-pw"  # never written in a line a traceback could show


def test_a_password_in_the_db_url_is_never_shown(pg_url, pg_admin, workspace, caplog):
    caplog.set_level(logging.DEBUG)
    unreachable = f"postgresql://user:{SECRET}@127.0.0.1:1/db"
    with pytest.raises(LedgerError) as info:
        Spot("t", db=unreachable, workspace=workspace)
    shown = "".join(traceback.format_exception(info.value))
    assert SECRET not in shown and SECRET not in repr(info.value)
    assert "postgresql://user:***@127.0.0.1:1/db" in str(info.value)

    # The test server trusts local connections, so a password in the URL is simply unused.
    url = pg_url.replace("postgres@", f"postgres:{SECRET}@") + "?retries=0"
    with Spot("t", db=url, workspace=workspace / ".hokuro") as spot:
        assert SECRET not in repr(spot) and "***" in repr(spot)
        assert SECRET not in spot.ledger.describe() and "***" in spot.ledger.describe()

        @spot.mark
        def double(x: int) -> int:
            return 2 * x

        assert double(2) == 4
        assert SECRET not in str(double.task(2).paths)
        # An error while in use (its connections killed, no retries allowed) hides it too.
        pg_admin.execute(TERMINATE, (_database(pg_url),))
        with pytest.raises(LedgerError) as info:
            double(3)
        shown = "".join(traceback.format_exception(info.value))
        assert SECRET not in shown and "***" in str(info.value)
    assert SECRET not in caplog.text
