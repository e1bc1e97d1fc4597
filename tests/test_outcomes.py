"""After the function returns: its outcome is stored under the lease, a fault while storing
is the task's recorded failure, a store that cannot work is found before anything runs, and
a result that cannot be read is read (and warned about) once."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import warnings

import pytest

from hokuro import Spot
from hokuro.errors import BlobError
from hokuro.store.blobs.local import LocalBlobs


class SlowBlobs(LocalBlobs):
    """A folder whose uploads take ``delay`` seconds, like a long S3 put."""

    def __init__(self, root, delay: float) -> None:
        super().__init__(root)
        self.delay = delay

    def save(self, ref: str, data: bytes) -> str:
        time.sleep(self.delay)
        return super().save(ref, data)


class CountingBlobs(LocalBlobs):
    """A folder that counts the blobs it is asked to read."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.loads = 0

    def load(self, ref: str) -> bytes:
        self.loads += 1
        return super().load(ref)


# -- the lease covers the whole outcome (issue 9, item 4) -------------------------------------

def test_a_slow_upload_keeps_the_lease_so_a_waiting_caller_never_runs_the_task_again(
        make_spot, workspace):
    runs, started = [], threading.Event()

    def define(spot):
        @spot.mark(name="report", save_blob=True)
        def report(n):
            runs.append(n)
            started.set()
            return {"n": n}
        return report

    # Two Spots of one ledger stand for two processes: each has its own in-process flights.
    # The upload takes four leases' time; the lease is renewed every third of one.
    first = define(make_spot("t", lease=0.5, blobs=SlowBlobs(workspace / "b", delay=2.0)))
    second = define(make_spot("t", lease=0.5, blobs=LocalBlobs(workspace / "b")))
    leader = threading.Thread(target=first, args=(1,))
    leader.start()
    assert started.wait(30)
    assert second(1) == {"n": 1}  # waits for the upload, then reads the kept result
    leader.join(30)
    assert runs == [1]
    assert second.task(1).status == "done" and second.task(1).attempts == 1


# -- any fault while storing is recorded (issue 9, item 5) -------------------------------------

def test_a_blob_folder_fault_is_a_blob_error_recorded_as_the_failure(make_spot, workspace):
    store = LocalBlobs(workspace / "b")
    spot = make_spot("t", blobs=store, lease=30)
    runs = []

    @spot.mark(save_blob=True)
    def work(n):
        runs.append(n)
        return n

    # A file where the result's folder must go: mkdir raises a raw OSError.
    obstacle = store.root / work.key_of(1)[:2]
    obstacle.write_text("in the way")
    with pytest.raises(BlobError, match="cannot write blob"):
        work(1)
    task = work.task(1)
    assert task.status == "failed" and task.error.type == "BlobError"
    obstacle.unlink()
    start = time.monotonic()
    assert work(1) == 1  # at once: no lease of the failed run to wait for
    assert time.monotonic() - start < 10
    assert runs == [1, 1] and work.task(1).attempts == 2


def test_a_ledger_error_while_finishing_is_recorded_and_the_next_call_runs_at_once(workspace):
    with Spot("t", lease=30) as spot:
        runs = []

        @spot.mark(save_blob=True)
        def work(n):
            runs.append(n)
            return n

        work(0)  # the ledger exists
        # The database itself refuses to record a result (a real SQLite error, not a mock).
        with sqlite3.connect(workspace / ".hokuro" / "t.db") as conn:
            conn.execute("CREATE TRIGGER refuse BEFORE UPDATE ON tasks WHEN NEW.status = "
                         "'done' BEGIN SELECT RAISE(ABORT, 'disk quota exceeded'); END")
        with pytest.raises(Exception, match="disk quota exceeded"):
            work(1)
        task = work.task(1)
        assert task.status == "failed" and "disk quota exceeded" in task.error.message
        assert task.record.lease_until is None
        # The uploaded blob of the result that was not recorded is removed again.
        assert [b.ref for b in spot.blobs.list_blobs()] == [work.task(0).record.blob]
        with sqlite3.connect(workspace / ".hokuro" / "t.db") as conn:
            conn.execute("DROP TRIGGER refuse")
        start = time.monotonic()
        assert work(1) == 1
        assert time.monotonic() - start < 10
        assert runs == [0, 1, 1]


# -- a missing bucket is found before the function runs (issue 9, item 14) ---------------------

@pytest.mark.s3
def test_a_missing_bucket_is_reported_before_the_function_runs(s3_endpoint, workspace):
    import boto3

    bucket = f"hokuro-missing-{time.time_ns()}"
    with Spot("t", blobs=f"s3://{bucket}/p") as spot:
        calls = []

        @spot.mark
        def expensive(n):
            calls.append(n)
            return n

        with pytest.raises(BlobError) as caught:
            expensive(1)
        message = str(caught.value)
        assert bucket in message and "does not exist" in message and "create it" in message
        assert calls == [] and expensive.task(1).status == "missing"

        boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
        assert expensive(1) == 1 and calls == [1]


# -- a result that cannot be read is read once (issue 9, item 16) -------------------------------

@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_damaged_blob_is_read_and_warned_about_once_per_call(make_spot, workspace, mode):
    store = CountingBlobs(workspace / "b")
    spot = make_spot("t", blobs=store)
    runs = []

    if mode == "sync":
        @spot.mark(save_blob=True)
        def value():
            runs.append(1)
            return list(range(100))

        call = value
    else:
        @spot.mark(save_blob=True)
        async def value():
            runs.append(1)
            return list(range(100))

        def call():
            return asyncio.run(value())

    call()
    path = store.path_of(value.task().record.blob)
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    store.loads = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert call() == list(range(100))
    damaged = [w for w in caught if "damaged" in str(w.message)]
    assert len(damaged) == 1, [str(w.message) for w in caught]
    assert store.loads == 1 and len(runs) == 2


def test_an_undecodable_record_is_warned_about_once_per_call(make_spot):
    class Point:
        def __init__(self, x):
            self.x = x

    writer = make_spot("t")
    writer.register_type(Point, 20, lambda p: p.x, Point)
    reader = make_spot("t")  # the same records, without the type registered
    runs = []

    @writer.mark(name="point")
    def written():
        return Point(3)

    @reader.mark(name="point")
    def read():
        runs.append(1)
        return 3

    written()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert read() == 3
    undecodable = [w for w in caught if "cannot decode" in str(w.message)]
    assert len(undecodable) == 1, [str(w.message) for w in caught]
    assert runs == [1]
