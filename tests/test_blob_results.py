"""Large results live in the blob store; a missing or damaged blob is a miss, never a crash."""

from __future__ import annotations

import boto3
import pytest

from hokuro.errors import UnsafeName
from hokuro.store.blobs.local import TEMP_SUFFIX
from hokuro.store.blobs.names import check_ref
from hokuro.store.blobs.s3 import S3Blobs


@pytest.fixture
def spot(make_spot):
    return make_spot("b", blob_threshold=1024)


def result_blobs(spot):
    """The result blobs the store holds, read through its own listing."""
    return sorted(info.ref for info in spot.blobs.list_blobs() if info.ref.endswith(".bin"))


def damage(spot, ref, how):
    """Damage a stored blob from outside hokuro: on disk, or in the bucket."""
    if isinstance(spot.blobs, S3Blobs):
        s3 = boto3.client("s3", endpoint_url=spot.blobs.endpoint_url)
        bucket, key = spot.blobs.bucket, spot.blobs.key_of(ref)
        if how == "delete":
            s3.delete_object(Bucket=bucket, Key=key)
            return
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        s3.put_object(Bucket=bucket, Key=key, Body=damaged(data, how))
        return
    path = spot.blobs.path_of(ref)
    if how == "delete":
        path.unlink()
    else:
        path.write_bytes(damaged(path.read_bytes(), how))


def damaged(data, how):
    if how == "truncate":
        return data[:10]
    flipped = bytearray(data)
    flipped[-1] ^= 0xFF
    return bytes(flipped)


def test_results_above_the_threshold_go_to_the_blob_store(spot):
    @spot.mark
    def big(n):
        return b"x" * n

    assert big(100) == b"x" * 100
    assert result_blobs(spot) == []
    assert big.task(100).record.result is not None
    assert big(5000) == b"x" * 5000
    record = big.task(5000).record
    assert result_blobs(spot) == [record.blob]
    assert record.result is None and record.blob and record.size > 5000
    assert big(5000) == b"x" * 5000


def test_save_blob_forces_and_forbids_the_blob_store(spot):
    @spot.mark(save_blob=True)
    def small():
        return "tiny"

    @spot.mark(save_blob=False)
    def large():
        return "y" * 10_000

    assert small() == "tiny" and small.task().record.blob is not None
    assert large() == "y" * 10_000 and large.task().record.blob is None


@pytest.mark.parametrize("how", ["delete", "truncate", "flip"])
def test_a_missing_or_damaged_blob_recomputes_with_a_warning(spot, how):
    runs = []

    @spot.mark(save_blob=True)
    def value():
        runs.append(1)
        return list(range(500))

    value()
    (ref,) = result_blobs(spot)
    damage(spot, ref, how)
    with pytest.warns(RuntimeWarning):
        assert value() == list(range(500))
    assert len(runs) == 2
    assert value() == list(range(500))
    assert len(runs) == 2
    assert result_blobs(spot) == [value.task().record.blob]  # the replaced blob was removed


def test_recompute_replaces_the_old_blob(spot):
    @spot.mark(save_blob=True)
    def value():
        return "v"

    value()
    old = result_blobs(spot)
    value.recompute()
    new = result_blobs(spot)
    assert len(new) == 1 and new != old


@pytest.mark.parametrize("ref", ["../x", "a/../../b", ".hidden", "/abs", "a//b", "a\\b",
                                 "", "x/..", "ok/.env", "C:x"])
def test_unsafe_blob_references_are_refused(spot, ref):
    with pytest.raises(UnsafeName):
        check_ref(ref)
    with pytest.raises(UnsafeName):
        spot.blobs.load(ref)


def test_nothing_half_written_is_left_after_saving(make_spot):
    if make_spot.shared:
        # Every save a multipart upload (a one-part upload may be of any size), so an upload
        # that was not completed or aborted would show up in the bucket's list of uploads.
        _, url = make_spot.urls("b")
        spot = make_spot("b", blobs=S3Blobs(url, multipart_threshold=1))
    else:
        spot = make_spot("b")

    @spot.mark(save_blob=True)
    def value(i):
        return i

    for i in range(5):
        assert value(i) == i
    assert len(result_blobs(spot)) == 5
    if make_spot.shared:
        s3 = boto3.client("s3", endpoint_url=spot.blobs.endpoint_url)
        uploads = s3.list_multipart_uploads(Bucket=spot.blobs.bucket)
        assert uploads.get("Uploads", []) == []
    else:
        assert not [p for p in spot.blobs.root.rglob("*") if p.name.endswith(TEMP_SUFFIX)]
