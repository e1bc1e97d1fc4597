"""What only the S3 blob store promises: where objects go, when an upload is multipart,
and errors that say what failed without credentials."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import traceback

import pytest

from hokuro.errors import BlobError, BlobMissing, ConfigurationError
from hokuro.store.blobs import open_blobs

pytestmark = pytest.mark.s3

pytest.importorskip("boto3")
from hokuro.store.blobs.s3 import MiB, S3Blobs  # noqa: E402


@pytest.fixture
def store(s3_url):
    blobs = S3Blobs(s3_url, multipart_threshold=8 * MiB)
    yield blobs
    blobs.close()


def _head(store: S3Blobs, ref: str) -> dict:
    return store._client().head_object(Bucket=store.bucket, Key=store.key_of(ref))


def test_open_blobs_gives_an_s3_store_for_an_s3_url(s3_url):
    blobs = open_blobs(s3_url)
    assert isinstance(blobs, S3Blobs)
    assert blobs.kind == "s3" and blobs.describe() == s3_url


def test_blobs_are_stored_under_the_prefix(store: S3Blobs):
    store.save("ab/abc-1.bin", b"x")
    keys = [item["Key"] for item in
            store._client().list_objects_v2(Bucket=store.bucket)["Contents"]]
    assert keys == ["blobs/ab/abc-1.bin"]


def test_a_bucket_without_prefix_works(s3_url):
    bucket = s3_url.split("/")[2]
    blobs = S3Blobs(f"s3://{bucket}")
    try:
        blobs.save("ab/c.bin", b"y")
        assert blobs.load("ab/c.bin") == b"y"
        assert blobs.key_of("ab/c.bin") == "ab/c.bin"
        assert blobs.describe() == f"s3://{bucket}"
    finally:
        blobs.close()


def test_a_large_blob_goes_up_in_parts_and_a_small_one_in_one_put(store: S3Blobs):
    store.save("big.bin", os.urandom(20 * MiB))
    store.save("small.bin", os.urandom(MiB))
    # A multipart object's ETag ends with the number of its parts.
    assert _head(store, "big.bin")["ETag"].strip('"').endswith("-3")
    assert "-" not in _head(store, "small.bin")["ETag"]


def test_objects_that_are_not_blob_references_are_not_listed(store: S3Blobs):
    client = store._client()
    for key in ("blobs/.hidden", "blobs/a b.bin", "elsewhere/x.bin", "blobs/ok.bin"):
        client.put_object(Bucket=store.bucket, Key=key, Body=b"1")
    assert [info.ref for info in store.list_blobs()] == ["ok.bin"]


def test_a_missing_bucket_is_a_blob_error_that_names_the_cause(s3_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-key-value")
    blobs = S3Blobs("s3://no-such-bucket-hokuro/p")
    try:
        for call in (lambda: blobs.load("a.bin"), lambda: blobs.save("a.bin", b"x"),
                     lambda: list(blobs.list_blobs())):
            with pytest.raises(BlobError) as caught:
                call()
            assert not isinstance(caught.value, BlobMissing)
            assert "NoSuchBucket" in str(caught.value)
            assert "s3://no-such-bucket-hokuro/p" in str(caught.value)
            text = "".join(traceback.format_exception(caught.value))
            assert "very-secret-key-value" not in text
    finally:
        blobs.close()


def test_the_bucket_is_checked_once_per_store(store: S3Blobs):
    heads = []
    store._client().meta.events.register("before-send.s3.HeadBucket",
                                          lambda request, **_: heads.append(request.url))
    for _ in range(3):
        store.ensure_ready()
    assert len(heads) == 1


def test_a_missing_bucket_is_found_by_ensure_ready_with_what_to_do(s3_endpoint):
    blobs = S3Blobs("s3://no-such-bucket-hokuro/p")
    try:
        with pytest.raises(BlobError) as caught:
            blobs.ensure_ready()
        assert str(caught.value).startswith(
            "the bucket 'no-such-bucket-hokuro' of s3://no-such-bucket-hokuro/p does not exist")
        assert "create it (aws s3 mb s3://no-such-bucket-hokuro)" in str(caught.value)
    finally:
        blobs.close()


def test_an_unreachable_endpoint_is_a_blob_error(s3_endpoint):
    blobs = S3Blobs("s3://bucket/p", endpoint_url="http://127.0.0.1:9", max_attempts=1)
    try:
        with pytest.raises(BlobError, match=re.escape("cannot read blob 'a.bin' in s3://bucket/p")):
            blobs.load("a.bin")
    finally:
        blobs.close()


def test_the_endpoint_argument_wins_over_the_environment(s3_endpoint, monkeypatch):
    monkeypatch.setenv("HOKURO_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    assert S3Blobs("s3://b/p", endpoint_url=s3_endpoint).endpoint_url == s3_endpoint
    assert S3Blobs("s3://b/p").endpoint_url == "http://127.0.0.1:9"


@pytest.mark.parametrize("url", ["s3://", "s3:///prefix", "s3://b/p?x=1", "s3://b/a/../c",
                                 "s3://b/a//c", "file://b/p"])
def test_bad_urls_are_refused(url: str):
    with pytest.raises(ConfigurationError):
        S3Blobs(url)


def test_clean_temp_leaves_an_upload_that_is_still_sending_parts(store: S3Blobs):
    client = store._client()
    key = store.key_of("ab/slow.bin")
    upload = client.create_multipart_upload(Bucket=store.bucket, Key=key)
    client.upload_part(Bucket=store.bucket, Key=key, UploadId=upload["UploadId"],
                       PartNumber=1, Body=b"part")
    # The local server reports every upload as begun long ago; the recent part keeps it.
    assert store.clean_temp(3600) == 0
    assert store.clean_temp(0, now=9e9) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_makes_its_own_client(store: S3Blobs):
    store.save("parent.bin", b"p")
    parent_client = store._client()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            ok = store._client() is not parent_client and store.load("parent.bin") == b"p"
            store.save("child.bin", b"c")
            code = 0 if ok else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store._client() is parent_client
    assert store.load("child.bin") == b"c"


def test_a_missing_boto3_names_the_extra_to_install():
    code = ("import sys; sys.modules['boto3'] = None\n"
            "from hokuro.errors import MissingDependency\n"
            "try:\n    import hokuro.store.blobs.s3\n"
            "except MissingDependency as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert "pip install 'hokuro[s3]'" in out
