"""Large results live in the blob store; a missing or damaged blob is a miss, never a crash."""

from __future__ import annotations

import pytest

from hokuro import Spot
from hokuro.blobs.names import check_ref
from hokuro.errors import UnsafeName


@pytest.fixture
def spot(workspace):
    with Spot("b", blob_threshold=1024) as s:
        yield s


def blob_files(spot):
    return [p for p in spot.blobs.root.rglob("*.bin")]


def test_results_above_the_threshold_go_to_the_blob_folder(spot):
    @spot.mark
    def big(n):
        return b"x" * n

    assert big(100) == b"x" * 100
    assert blob_files(spot) == []
    assert big.task(100).record.result is not None
    assert big(5000) == b"x" * 5000
    files = blob_files(spot)
    assert len(files) == 1
    record = big.task(5000).record
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


@pytest.mark.parametrize("damage", ["delete", "truncate", "flip"])
def test_a_missing_or_damaged_blob_recomputes_with_a_warning(spot, damage):
    runs = []

    @spot.mark(save_blob=True)
    def value():
        runs.append(1)
        return list(range(500))

    value()
    (path,) = blob_files(spot)
    if damage == "delete":
        path.unlink()
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:10])
    else:
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF
        path.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning):
        assert value() == list(range(500))
    assert len(runs) == 2
    assert value() == list(range(500))
    assert len(runs) == 2
    assert len(blob_files(spot)) == 1  # the replaced blob was removed


def test_recompute_replaces_the_old_blob(spot):
    @spot.mark(save_blob=True)
    def value():
        return "v"

    value()
    old = blob_files(spot)
    value.recompute()
    new = blob_files(spot)
    assert len(new) == 1 and new != old


@pytest.mark.parametrize("ref", ["../x", "a/../../b", ".hidden", "/abs", "a//b", "a\\b",
                                 "", "x/..", "ok/.env", "C:x"])
def test_unsafe_blob_references_are_refused(spot, ref):
    with pytest.raises(UnsafeName):
        check_ref(ref)
    with pytest.raises(UnsafeName):
        spot.blobs.load(ref)


def test_no_temporary_file_is_left_after_saving(spot):
    @spot.mark(save_blob=True)
    def value(i):
        return i

    for i in range(5):
        value(i)
    assert not [p for p in spot.blobs.root.rglob("*") if p.name.endswith(".spot_tmp")]
