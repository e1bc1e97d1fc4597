"""One suite for every blob store: the BlobStorageBase protocol's promises."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager

import pytest

from hokuro.errors import BlobError, BlobMissing, UnsafeName
from hokuro.store.blobs import BlobStorageBase
from hokuro.store.blobs.local import LocalBlobs

MiB = 1024 * 1024
STORES = ["folder", "s3"]
UNSAFE_REFS = ["../x", ".hidden", "/abs", "a/../../b", "a\\b", "", "a//b", "a/./b", "c:x",
               "a/b/", "x" * 2000]


@pytest.fixture(params=STORES)
def store(request, tmp_path) -> Iterator[BlobStorageBase]:
    if request.param == "folder":
        blobs: BlobStorageBase = LocalBlobs(tmp_path / "blobs")
    else:
        from hokuro.store.blobs.s3 import S3Blobs

        # A low threshold, so a 20 MiB blob goes up as a multipart upload.
        blobs = S3Blobs(request.getfixturevalue("s3_url"), multipart_threshold=8 * MiB)
    yield blobs
    blobs.close()


def test_a_saved_blob_loads_back_byte_for_byte(store: BlobStorageBase):
    assert store.save("ab/abc-1.bin", b"hello") == "ab/abc-1.bin"
    assert store.load("ab/abc-1.bin") == b"hello"
    store.save("ab/empty.bin", b"")
    assert store.load("ab/empty.bin") == b""
    every_byte = bytes(range(256)) * 3
    store.save("cd/bytes.bin", bytearray(every_byte))
    assert store.load("cd/bytes.bin") == every_byte


def test_a_large_blob_loads_back_whole(store: BlobStorageBase):
    data = os.urandom(20 * MiB)
    store.save("ef/large.bin", data)
    assert store.load("ef/large.bin") == data


def test_saving_again_replaces_the_blob(store: BlobStorageBase):
    store.save("a.bin", b"first")
    store.save("a.bin", b"second")
    assert store.load("a.bin") == b"second"


def test_a_missing_blob_raises_blob_missing(store: BlobStorageBase):
    with pytest.raises(BlobMissing):
        store.load("no/such.bin")
    with pytest.raises(FileNotFoundError):  # BlobMissing is also a FileNotFoundError
        store.load("nothing.bin")


def test_delete_says_whether_the_blob_was_there(store: BlobStorageBase):
    store.save("gone.bin", b"x")
    assert store.delete("gone.bin") is True
    assert store.delete("gone.bin") is False
    assert store.delete("never/was.bin") is False
    with pytest.raises(BlobMissing):
        store.load("gone.bin")


def test_list_blobs_names_every_blob_with_its_size(store: BlobStorageBase):
    before = time.time() - 120
    store.save("aa/one.bin", b"1")
    store.save("aa/two.bin", b"22")
    store.save("bb/cc/three.log", b"333")
    store.save("gone.bin", b"x")
    store.delete("gone.bin")
    listed = {info.ref: info for info in store.list_blobs()}
    assert {ref: info.size for ref, info in listed.items()} == \
        {"aa/one.bin": 1, "aa/two.bin": 2, "bb/cc/three.log": 3}
    assert all(before < info.mtime < time.time() + 120 for info in listed.values())


def test_a_task_files_folder_is_not_listed_as_blobs(store: BlobStorageBase):
    store.save("files/ab/abcdef/out.txt", b"made by the task")
    store.save("ab/abcdef-1.bin", b"result")
    assert [info.ref for info in store.list_blobs()] == ["ab/abcdef-1.bin"]


@pytest.mark.parametrize("ref", UNSAFE_REFS)
def test_unsafe_references_are_refused(store: BlobStorageBase, ref: str):
    with pytest.raises(UnsafeName):
        store.save(ref, b"x")
    with pytest.raises(UnsafeName):
        store.load(ref)
    with pytest.raises(UnsafeName):
        store.delete(ref)
    assert list(store.list_blobs()) == []


def test_a_symlink_out_of_the_blob_folder_is_refused_even_after_the_folder_was_read(tmp_path):
    store = LocalBlobs(tmp_path / "blobs")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.bin").write_bytes(b"not yours")
    store.save("ab/one.bin", b"1")
    assert store.load("ab/one.bin") == b"1"  # the folder "ab" is now known to be safe
    (tmp_path / "blobs" / "ab" / "two.bin").symlink_to(outside / "secret.bin")
    (tmp_path / "blobs" / "cd").symlink_to(outside, target_is_directory=True)
    for ref in ("ab/two.bin", "cd/secret.bin"):
        with pytest.raises(UnsafeName):
            store.load(ref)


def test_concurrent_saves_of_one_ref_are_each_seen_whole_or_not_at_all(
        store: BlobStorageBase):
    payloads = [bytes([i]) * (MiB + i) for i in range(8)]
    seen: list[bytes] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                seen.append(store.load("race.bin"))
            except BlobMissing:
                pass

    reader = threading.Thread(target=read)
    reader.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda data: store.save("race.bin", data), payloads))
    finally:
        stop.set()
        reader.join(timeout=30)
    assert store.load("race.bin") in payloads
    assert all(data in payloads for data in seen)


# -- no partial blob is ever visible -----------------------------------------------------------

def _break_folder_writes(store: LocalBlobs, monkeypatch: pytest.MonkeyPatch
                         ) -> AbstractContextManager[None]:
    """The disk fills up half-way through writing the blob."""
    real_write = os.write

    @contextmanager
    def broken() -> Iterator[None]:
        calls = [0]

        def write(fd: int, data) -> int:
            calls[0] += 1
            if calls[0] == 1:
                return real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(28, "No space left on device")

        with monkeypatch.context() as patch:
            patch.setattr(os, "write", write)
            yield

    return broken()


def _break_s3_uploads(store, monkeypatch: pytest.MonkeyPatch) -> AbstractContextManager[None]:
    """The network fails after the first part of a multipart upload went up."""
    from botocore.exceptions import EndpointConnectionError

    @contextmanager
    def broken() -> Iterator[None]:
        parts = [0]

        def fail_after_one_part(**_: object) -> None:
            parts[0] += 1
            if parts[0] > 1:
                raise EndpointConnectionError(endpoint_url="http://s3.invalid")

        events = store._client().meta.events
        events.register("before-call.s3.UploadPart", fail_after_one_part)
        try:
            yield
        finally:
            events.unregister("before-call.s3.UploadPart", fail_after_one_part)

    return broken()


def _breaker(store: BlobStorageBase) -> Callable[..., AbstractContextManager[None]]:
    return _break_folder_writes if isinstance(store, LocalBlobs) else _break_s3_uploads


def test_a_save_that_fails_midway_leaves_no_blob(store: BlobStorageBase, monkeypatch):
    with _breaker(store)(store, monkeypatch), pytest.raises(BlobError):
        store.save("ab/half.bin", os.urandom(20 * MiB))
    with pytest.raises(BlobMissing):
        store.load("ab/half.bin")
    assert list(store.list_blobs()) == []
    assert store.clean_temp(0, now=time.time() + 60) == 0  # nothing was left behind


def test_a_save_that_fails_midway_keeps_the_previous_blob(store: BlobStorageBase,
                                                         monkeypatch):
    store.save("ab/kept.bin", b"previous")
    with _breaker(store)(store, monkeypatch), pytest.raises(BlobError):
        store.save("ab/kept.bin", os.urandom(20 * MiB))
    assert store.load("ab/kept.bin") == b"previous"
    assert [info.ref for info in store.list_blobs()] == ["ab/kept.bin"]


def _leave_unfinished_save(store: BlobStorageBase, ref: str) -> Callable[[], None]:
    """What a process killed mid-save leaves behind; returns how to abandon it explicitly."""
    if isinstance(store, LocalBlobs):
        path = store.path_of(ref)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.dead00000000.spot_tmp"
        tmp.write_bytes(b"half a blob")
        return lambda: tmp.unlink()
    client = store._client()
    key = store.key_of(ref)
    upload = client.create_multipart_upload(Bucket=store.bucket, Key=key)
    client.upload_part(Bucket=store.bucket, Key=key, UploadId=upload["UploadId"],
                       PartNumber=1, Body=b"half a blob")
    return lambda: client.abort_multipart_upload(Bucket=store.bucket, Key=key,
                                                 UploadId=upload["UploadId"])


def test_an_unfinished_save_is_invisible_and_cleaned_when_old(store: BlobStorageBase):
    _leave_unfinished_save(store, "ab/killed.bin")
    with pytest.raises(BlobMissing):
        store.load("ab/killed.bin")
    assert list(store.list_blobs()) == []
    assert store.clean_temp(3600) == 0  # young: a save may still be under way
    assert store.clean_temp(30, now=time.time() + 60) == 1
    assert store.clean_temp(0, now=time.time() + 60) == 0
    store.save("ab/killed.bin", b"whole")  # the name is free for a real save
    assert store.load("ab/killed.bin") == b"whole"


def test_an_abandoned_save_never_becomes_visible(store: BlobStorageBase):
    abandon = _leave_unfinished_save(store, "ab/aborted.bin")
    abandon()
    with pytest.raises(BlobMissing):
        store.load("ab/aborted.bin")
    assert list(store.list_blobs()) == []
    assert store.clean_temp(0, now=time.time() + 60) == 0
