"""MaintenanceService: history, details, deletion, garbage and error groups, on every ledger."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass

import pytest

from hokuro import Spot
from hokuro.admin.maintenance import CleanReport, MaintenanceService
from hokuro.errors import BlobError, ConfigurationError, LedgerError
from hokuro.model.records import Record, Status
from hokuro.model.redact import mask_secrets
from hokuro.store.blobs import BlobInfo, BlobStorageBase
from hokuro.store.blobs.local import TEMP_SUFFIX, LocalBlobs


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["embedded", "shared"])
def spot(request, workspace):
    """The embedded default (SQLite + folder) or a shared Spot (PostgreSQL + S3)."""
    shared = request.param == "shared"
    db = request.getfixturevalue("pg_url") if shared else None
    blobs = request.getfixturevalue("s3_url") if shared else None
    with Spot("m", db=db, blobs=blobs, blob_threshold=1024) as s:
        yield s


@pytest.fixture
def service(spot):
    with MaintenanceService.from_spot(spot) as svc:
        yield svc


def ended(spot, key: str, *, fn: str = "coll", status: str = Status.DONE, age: float = 0.0,
          **fields) -> Record:
    """Put a finished record straight into the ledger (``age`` seconds old)."""
    now = time.time() - age
    record = Record(key=key, fn=fn, status=status, created_at=now, started_at=now,
                    finished_at=now, updated_at=now, **fields)
    spot.ledger.put(record)
    return record


def running(spot, key: str, *, alive: bool, fn: str = "coll") -> Record:
    now = time.time()
    record = Record(key=key, fn=fn, status=Status.RUNNING, owner=spot.owner_token(),
                    lease_until=now + 60 if alive else now - 60, attempts=1,
                    created_at=now - 100, started_at=now - 100, updated_at=now - 100)
    spot.ledger.put(record)
    return record


def key(n: int) -> str:
    return f"{n:032x}"


# -- building the service --------------------------------------------------------------------

def test_from_path_opens_a_ledger_with_its_blob_folder_beside_it(workspace):
    with Spot("p") as spot:
        @spot.mark(save_blob=True)
        def f(x):
            return {"x": x}

        f(1)
    with MaintenanceService.from_path(workspace / ".hokuro" / "p.db") as service:
        assert service.blobs.describe() == str(workspace / ".hokuro" / "blobs" / "p")
        [task] = service.get_history()
        assert service.get_task_detail(task.key).result == {"x": 1}


def test_from_path_on_a_missing_file_fails_and_creates_nothing(tmp_path):
    with pytest.raises(LedgerError, match="no ledger file"):
        MaintenanceService.from_path(tmp_path / "nope.db")
    assert list(tmp_path.iterdir()) == []


def test_from_target_takes_a_name_a_path_or_a_url(workspace):
    Spot("named").close()
    db = workspace / ".hokuro" / "named.db"
    for target in ("named", str(db), f"sqlite:///{db}"):
        with MaintenanceService.from_target(target, read_only=True) as service:
            assert service.describe()["ledger"] == str(db)
    with pytest.raises(LedgerError, match="known Spots: named"):
        MaintenanceService.from_target("other")
    with pytest.raises(ConfigurationError, match="not a ledger"):
        MaintenanceService.from_target("mysql://u:pw@h/db")
    # (SQLite's read-only WAL files aside: see test_cli's strict xfail)
    assert sorted(p.name for p in (workspace / ".hokuro").iterdir()
                  if not p.name.endswith(("-shm", "-wal"))) == ["blobs", "named.db"]


def test_a_file_that_is_not_a_ledger_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LedgerError):
        MaintenanceService.from_target(str(junk), read_only=True)


def test_passwords_in_urls_are_masked():
    assert mask_secrets("cannot reach postgresql://ann:s3cr%40t@db:5432/x now") == \
        "cannot reach postgresql://ann:***@db:5432/x now"
    assert mask_secrets("postgresql://ann@db/x") == "postgresql://ann@db/x"


def test_close_leaves_a_spot_handed_in_open(spot):
    MaintenanceService.from_spot(spot).close()
    assert spot.ledger.get("0" * 32) is None  # still usable


# -- reading ---------------------------------------------------------------------------------

def test_history_is_newest_first_and_filters_by_collection_and_status(spot, service):
    ended(spot, key(1), fn="a", age=30)
    ended(spot, key(2), fn="b", age=20, status=Status.FAILED, error_type="E", error="E: x")
    ended(spot, key(3), fn="a", age=10)
    assert [t.key for t in service.get_history()] == [key(3), key(2), key(1)]
    assert [t.key for t in service.get_history(fn="a")] == [key(3), key(1)]
    assert [t.key for t in service.get_history(status="failed")] == [key(2)]
    assert [t.key for t in service.get_history(1)] == [key(3)]
    with pytest.raises(ConfigurationError):
        service.get_history(status="nonsense")


def test_task_detail_has_the_decoded_result_arguments_and_log(spot, service):
    @spot.mark
    def greet(name, ctx):
        ctx.logger.info("greeting %s", name)
        return {"hello": name, "n": (1, 2)}

    greet("ann")
    detail = service.get_task_detail(greet.key_of("ann"))
    assert detail.status == "done" and detail.has_result
    assert detail.result == detail.decoded_data == {"hello": "ann", "n": (1, 2)}
    assert detail.args == {"name": "ann"}
    assert "greeting ann" in detail.log
    assert service.get_task_detail("f" * 32) is None


def test_an_expired_task_is_shown_only_when_asked(workspace):
    clock = Clock()
    with Spot("e", clock=clock) as spot:
        @spot.mark(retention=10)
        def f():
            return 1

        f()
        clock.now += 11
        service = MaintenanceService.from_spot(spot)
        assert service.get_task_detail(f.key_of()) is None
        assert service.get_task_detail(f.key_of(), include_expired=True).status == "expired"


def test_a_pickled_result_is_not_unpickled_unless_allowed(spot, service):
    @spot.mark(codec="pickle")
    def pickled():
        return {"a": 1}

    pickled()
    detail = service.get_task_detail(pickled.key_of())
    assert detail.result is None and detail.result_note.startswith("<pickle, ")
    assert detail.result_note.endswith("bytes; not decoded>")
    assert detail.args_note and "pickle" in detail.args_note
    allowed = service.get_task_detail(pickled.key_of(), allow_pickle=True)
    assert allowed.result == {"a": 1} and allowed.args == {}


def test_a_custom_type_this_process_cannot_decode_gets_a_placeholder(spot):
    @dataclass
    class Point:
        x: int

    spot.register_type(Point, 7, lambda p: p.x, lambda x: Point(x))

    @spot.mark
    def where():
        return Point(3)

    where()
    with MaintenanceService(spot.ledger, spot.blobs) as bare:  # no registrations
        detail = bare.get_task_detail(where.key_of())
    assert detail.result is None and "ext code 7" in detail.result_note
    assert MaintenanceService.from_spot(spot).get_task_detail(where.key_of()).result == Point(3)


def test_a_blob_result_is_loaded_and_a_missing_blob_is_a_placeholder(spot, service):
    @spot.mark(save_blob=True)
    def big():
        return "x" * 5000

    big()
    detail = service.get_task_detail(big.key_of())
    assert detail.result == "x" * 5000 and detail.paths["blob"]
    assert "not loaded" in service.get_task_detail(big.key_of(), max_bytes=10).result_note
    spot.blobs.delete(detail.record.blob)
    assert "missing" in service.get_task_detail(big.key_of()).result_note


def test_resolve_key_prefix(spot, service):
    for n in (0xAB1, 0xAB2, 0xC00):
        ended(spot, f"{n:03x}" + "0" * 29)
    assert service.resolve_key_prefix("ab10" + "0" * 28) == "ab1" + "0" * 29
    assert service.resolve_key_prefix("c") == "c00" + "0" * 29
    assert service.resolve_key_prefix("AB") == ["ab1" + "0" * 29, "ab2" + "0" * 29]
    assert service.resolve_key_prefix("d") is None
    with pytest.raises(ConfigurationError):
        service.resolve_key_prefix("  ")


def test_stats_and_summary_count_every_record(spot, service):
    for n in range(30):
        ended(spot, key(n), fn="a" if n % 3 else "b", size=10,
              status=Status.FAILED if n % 5 == 0 else Status.DONE)
    stats = service.stats()
    assert stats["counts"] == {"total": 30, "done": 24, "failed": 6}
    assert stats["collections"]["b"]["counts"]["total"] == 10
    summary = service.summary()
    assert summary["records"] == 30 and summary["size"] == 300 and summary["failed"] == 6
    assert summary["collections"] == 2 and summary["last_activity"] <= time.time()


# -- errors ----------------------------------------------------------------------------------

def test_failures_are_grouped_by_identical_error(spot, service):
    @spot.mark
    def work(n):
        if n % 3 == 0:
            raise ValueError(f"bad value {n}")
        if n % 3 == 1:
            raise KeyError(n)
        return {}[n]  # KeyError too, but raised from another line: same frames

    for n in range(30):
        with pytest.raises((ValueError, KeyError)):
            work(n)
    running(spot, key(999), alive=False, fn="other")
    groups = service.error_groups()
    assert sorted(g.count for g in groups) == [1, 10, 20]
    by_type = {g.error_type: g for g in groups}
    assert by_type["ValueError"].count == 10
    assert by_type["ValueError"].message == "ValueError: bad value 27"  # the newest
    assert "Traceback" in by_type["ValueError"].example_traceback
    assert by_type["Abandoned"].fingerprint == "abandoned"
    assert [g.count for g in service.error_groups(fn="other")] == [1]
    fingerprint = by_type["ValueError"].fingerprint
    assert len(list(service.failed_tasks(fingerprint=fingerprint))) == 10
    assert [r.key for r in service.failed_tasks(fingerprint="abandoned")] == [key(999)]


# -- removing --------------------------------------------------------------------------------

def test_delete_task_removes_the_record_its_blobs_and_its_files(spot, service):
    @spot.mark(save_blob=True)
    def make(ctx):
        (ctx.dir / "note.txt").write_text("hi")
        return "y" * 3000

    make()
    record = spot.ledger.get(make.key_of())
    folder = spot.task_dir(record.key, create=False)
    assert folder.is_dir()
    assert service.delete_task(record.key)
    assert spot.ledger.get(record.key) is None
    assert not folder.exists()
    assert list(spot.blobs.list_blobs()) == []
    assert not service.delete_task(record.key)


def test_delete_task_is_tolerant_of_blobs_gone_or_unremovable(spot, service):
    ended(spot, key(1), blob="00/gone.bin")
    assert service.delete_task(key(1))

    class Stubborn(BlobStorageBase):
        """The Spot's own store, except that nothing can be deleted from it."""

        def save(self, ref, data):
            return spot.blobs.save(ref, data)

        def load(self, ref):
            return spot.blobs.load(ref)

        def delete(self, ref):
            raise BlobError("the network is down")

        def list_blobs(self):
            return spot.blobs.list_blobs()

    ended(spot, key(2), blob="00/stuck.bin")
    with MaintenanceService(spot.ledger, Stubborn()) as stubborn:
        assert stubborn.delete_task(key(2))
    assert spot.ledger.get(key(2)) is None  # the record goes even when its blob cannot


def test_delete_expired_tasks_spares_fresh_and_running_ones(workspace):
    clock = Clock()
    with Spot("x", clock=clock) as spot:
        @spot.mark(retention=10, save_blob=True)
        def short(n):
            return n

        @spot.mark
        def forever(n):
            return n

        for n in range(3):
            short(n)
            forever(n)
        clock.now += 11
        # a running record carrying an old expiry (a recompute under way) is not expired
        spot.ledger.put(Record(key=key(7), fn="r", status=Status.RUNNING,
                               owner=spot.owner_token(), lease_until=clock.now + 60,
                               created_at=0, updated_at=0, expires_at=clock.now - 5))
        service = MaintenanceService.from_spot(spot)
        assert service.delete_expired_tasks(dry_run=True) == 3
        assert service.delete_expired_tasks() == 3
        assert service.stats()["counts"] == {"total": 4, "done": 3, "running": 1}
        assert list(spot.blobs.list_blobs()) == []


def test_prune_removes_old_tasks_and_keeps_running_ones(spot, service):
    ended(spot, key(1), age=10 * 86400)
    ended(spot, key(2), age=8 * 86400, fn="other")
    ended(spot, key(3), age=86400)
    running(spot, key(4), alive=True)
    spot.ledger.put(Record(key=key(5), fn="coll", status=Status.RUNNING, lease_until=1,
                           created_at=1, updated_at=1))  # abandoned long ago
    preview = service.prune("7d", dry_run=True)
    assert (preview.records, preview.kept, preview.dry_run) == (3, 0, True)
    assert spot.ledger.get(key(1)) is not None
    assert service.prune(7 * 86400, fn="other").records == 1
    removal = service.prune(2 * 86400)
    assert removal.records == 2
    assert {t.key for t in service.get_history()} == {key(3), key(4)}
    with pytest.raises(ConfigurationError):
        service.prune("soon")


def test_clear_removes_everything_in_chunks_but_live_tasks(spot, service):
    for n in range(1200):
        ended(spot, key(n), fn="a" if n < 1100 else "b", size=1)
    running(spot, key(5000), alive=True, fn="a")
    assert service.clear("b").records == 100
    removal = service.clear()
    assert (removal.records, removal.kept, removal.size) == (1100, 1, 1100)
    assert [t.key for t in service.get_history()] == [key(5000)]


def test_removal_refuses_when_blobs_are_named_but_unknown(spot):
    ended(spot, key(1), blob="00/b.bin")
    with MaintenanceService(spot.ledger) as blind:
        with pytest.raises(ConfigurationError, match="--blobs"):
            blind.clear()
        with pytest.raises(ConfigurationError):
            blind.scan_garbage()
        assert blind.clear(dry_run=True).records == 1
    spot.ledger.delete([key(1)])
    ended(spot, key(2))
    with MaintenanceService(spot.ledger) as blind:
        assert blind.delete_task(key(2))  # no record names a blob: nothing to lose


# -- garbage ---------------------------------------------------------------------------------

def _age(path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def _put_raw(spot, ref: str, data: bytes) -> None:
    """Write a blob under a name hokuro would never write, past its safety checks."""
    if isinstance(spot.blobs, LocalBlobs):
        path = spot.blobs.root.joinpath(*ref.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    else:
        key = f"{spot.blobs.prefix}/{ref}"  # key_of() would refuse the name
        spot.blobs._client().put_object(Bucket=spot.blobs.bucket, Key=key, Body=data)


def test_scan_garbage_finds_unnamed_blobs_older_than_the_grace_period(spot, service):
    # Ages come from the store itself (file mtime, S3 LastModified, whole seconds), so the
    # old and the new orphan are written 2.5 s apart and the grace period is 1 s.
    @spot.mark(save_blob=True)
    def kept():
        return "k" * 2000

    kept()
    spot.blobs.save("ab/old-orphan.bin", b"o")
    _put_raw(spot, "ab/notes from me.txt", b"mine")  # not a name hokuro writes
    time.sleep(2.5)
    spot.blobs.save("ab/new-orphan.bin", b"n")
    found = service.scan_garbage(grace_period=1.0)
    assert [o.ref for o in found] == ["ab/old-orphan.bin"]
    assert {o.ref for o in service.scan_garbage(grace_period=-5)} == \
        {"ab/old-orphan.bin", "ab/new-orphan.bin"}


def test_scan_garbage_finds_file_folders_of_tasks_without_a_record(spot, service):
    live = spot.task_dir(key(1))
    ended(spot, key(1))
    gone = spot.task_dir(key(2))
    (gone / "x.txt").write_text("12345")
    for folder in (live, gone):
        _age(folder, 3600)
    [orphan] = service.scan_garbage(60)
    assert orphan.ref == f"files/00/{key(2)}" and orphan.size == 5
    assert service.remove_orphans([orphan]) == 1
    assert not gone.exists() and live.exists()


def test_clean_garbage_removes_expired_tasks_orphans_and_stale_temp_files(workspace):
    clock = Clock()
    with Spot("c", clock=clock) as spot:
        @spot.mark(retention=5)
        def f():
            return 1

        f()
        clock.now += 10
        blobs = spot.blobs
        blobs.save("aa/orphan.bin", b"x")
        blobs.save("aa/young.bin", b"y")
        _age(blobs.path_of("aa/orphan.bin"), 7200)
        stale = blobs.root / "aa" / f".z.bin.0123{TEMP_SUFFIX}"
        fresh = blobs.root / "aa" / f".w.bin.4567{TEMP_SUFFIX}"
        stale.write_bytes(b"half")
        fresh.write_bytes(b"half")
        _age(stale, 2 * 86400)
        service = MaintenanceService.from_spot(spot)
        preview = service.clean_garbage(dry_run=True)
        assert (preview.expired, preview.orphans, preview.temp) == (1, 1, 1)
        assert stale.exists()
        report = service.clean_garbage(tmp_max_age_seconds=86400, orphan_grace_seconds=60)
        assert isinstance(report, CleanReport) and tuple(report) == (1, 1)
        expired, orphans = report  # unpacks as beautyspot's pair
        assert report.temp == 1 and expired == 1 and orphans == 1
        assert not stale.exists() and fresh.exists()
        assert [b.ref for b in blobs.list_blobs()] == ["aa/young.bin"]


def test_clean_garbage_takes_a_prescanned_list(spot, service):
    spot.blobs.save("cd/a.bin", b"a")
    assert service.clean_garbage([BlobInfo("cd/a.bin", 1, 0.0), "cd/missing.bin"]) == (0, 1)


def test_garbage_is_found_in_an_s3_store(workspace, s3_url):
    with Spot("s", blobs=s3_url) as spot:
        @spot.mark(save_blob=True)
        def f():
            return "s" * 100

        f()
        spot.blobs.save("ef/orphan.bin", b"o")
        service = MaintenanceService.from_spot(spot)
        assert [o.ref for o in service.scan_garbage(grace_period=0)] == ["ef/orphan.bin"]
        assert service.clean_garbage(orphan_grace_seconds=0) == (0, 1)
        assert service.delete_task(f.key_of())
        assert list(spot.blobs.list_blobs()) == []


# -- whole projects --------------------------------------------------------------------------

def test_zombie_blob_folders_are_found_and_removed(workspace):
    Spot("alive").close()
    zombie = workspace / ".hokuro" / "blobs" / "dead"
    (zombie / "ab").mkdir(parents=True)
    (zombie / "ab" / "x.bin").write_bytes(b"x")
    assert MaintenanceService.scan_orphan_projects(workspace / ".hokuro") == [zombie]
    assert MaintenanceService.scan_orphan_projects(workspace) == [zombie]  # project folder
    assert MaintenanceService.scan_orphan_projects(workspace / "nowhere") == []
    with pytest.raises(ConfigurationError, match="hokuro clear"):
        MaintenanceService.delete_project_storage(workspace / ".hokuro" / "blobs" / "alive")
    MaintenanceService.delete_project_storage(zombie)
    assert not zombie.exists()
    assert (workspace / ".hokuro" / "blobs" / "alive").is_dir()


def test_scan_spots_summarises_each_ledger_read_only(workspace):
    with Spot("one") as spot:
        @spot.mark
        def f(n):
            return n

        f(1)
        f(2)
    (workspace / ".hokuro" / "broken.db").write_bytes(b"not a database at all" * 50)
    found = {s.name: s for s in MaintenanceService.scan_spots(workspace)}
    assert found["one"].records == 2 and found["one"].failed == 0
    assert found["one"].last_activity is not None and found["one"].ledger_size > 0
    assert found["broken"].problem and found["broken"].records is None
    with pytest.raises(LedgerError):
        MaintenanceService.scan_spots(workspace / "missing")


# -- replaying failures ----------------------------------------------------------------------

def test_retry_replays_async_and_pickle_functions_and_reports_moved_keys(workspace):
    module = f"replay_{uuid.uuid4().hex[:8]}"
    source = textwrap.dedent("""
        import asyncio
        from pathlib import Path

        import hokuro

        spot = hokuro.Spot("replay")
        VERSION = "1"


        def broken():
            return Path("broken.flag").exists()


        @spot.mark(version=VERSION)
        async def fetch(url):
            await asyncio.sleep(0)
            if broken():
                raise ConnectionError(url)
            return url.upper()


        @spot.mark(codec="pickle")
        def parse(blob):
            if broken():
                raise ValueError("unparsable")
            return sorted(blob)
    """)
    (workspace / f"{module}.py").write_text(source)
    (workspace / "broken.flag").write_text("")
    sys.path.insert(0, str(workspace))
    try:
        jobs = __import__(module)
        with pytest.raises(ConnectionError):
            asyncio.run(jobs.fetch("a"))
        with pytest.raises(ValueError):
            jobs.parse({3, 1, 2})
        jobs.spot.close()
    finally:
        sys.path.remove(str(workspace))
        sys.modules.pop(module, None)
    (workspace / "broken.flag").unlink()
    # the fix also bumped fetch's version: its replay lands under a new key
    (workspace / f"{module}.py").write_text(source.replace('VERSION = "1"', 'VERSION = "2"'))
    try:
        with MaintenanceService.from_target("replay") as service:
            dry = list(service.retry_failed(dry_run=True, search_path=workspace))
            assert sorted(r.outcome for r in dry) == ["would_retry", "would_retry"]
            results = {r.fn.rsplit(".", 1)[-1]: r for r in service.retry_failed()}
            assert results["fetch"].outcome == "done" and results["fetch"].new_key
            assert results["parse"].outcome == "done" and results["parse"].new_key is None
            assert list(service.failed_tasks()) != []  # fetch's old record, version 1
            assert service.get_task_detail(results["fetch"].new_key).result == "A"
            assert service.get_task_detail(results["parse"].key,
                                           allow_pickle=True).result == [1, 2, 3]
        with Spot("elsewhere") as other:
            other.ledger.put(Record(key=key(1), fn="x", status=Status.FAILED,
                                    fn_path=f"{module}:parse", args=b"\x80\x05.",
                                    created_at=1, updated_at=1))
            [moved] = MaintenanceService.from_spot(other).retry_failed(search_path=workspace)
            assert moved.outcome == "other_ledger" and "records into" in moved.detail
    finally:
        imported = sys.modules.pop(module, None)
        if imported is not None:
            imported.spot.close()
