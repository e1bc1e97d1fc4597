"""The beautyspot seed's README examples run with hokuro in place of beautyspot, and a
limiter inside a mark spends its limit only on real calls."""

from __future__ import annotations

import json
import time

import hokuro as bs
from hokuro import KeyGen


def test_quick_start(workspace):
    spot = bs.Spot("my_experiment")

    runs = []

    @spot.mark
    def heavy_process(text):
        runs.append(text)
        return f"Processed: {text}"

    outputs = [heavy_process(i) for i in ["A", "B", "C", "A"]]
    assert outputs == ["Processed: A", "Processed: B", "Processed: C", "Processed: A"]
    assert runs == ["A", "B", "C"]
    spot.close()


def test_register_type_example(workspace):
    spot = bs.Spot("my_analysis")

    class MyModel:
        def __init__(self, name):
            self.name = name

    spot.register_type(type_=MyModel, code=10,
                       encoder=lambda obj: obj.name.encode("utf-8"),
                       decoder=lambda data: MyModel(data.decode("utf-8")))

    @spot.mark
    def process(data):
        return MyModel(data * 2)

    assert process("ab").name == "abab" and process("ab").name == "abab"
    spot.close()


def test_save_blob_example(workspace):
    spot = bs.Spot("images")

    @spot.mark(save_blob=True)
    def generate_image():
        return b"..." * 1024 * 1024

    assert generate_image() == generate_image() == b"..." * 1024 * 1024
    assert generate_image.task().record.blob is not None
    spot.close()


def test_tpm_and_limiter_example(workspace):
    spot = bs.Spot("api_client", tpm=60)
    calls = []

    @spot.mark
    @spot.limiter(cost=1)
    def call_api():
        calls.append(1)
        return "ok"

    assert call_api() == "ok"
    assert call_api() == "ok"
    assert calls == [1]
    spot.close()


def test_all_in_one_pipeline_with_custom_backends(workspace, tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent.parent / "examples"))
    from dict_blobs import DictBlobs
    from memory_ledger import MemoryLedger

    class AnalysisResult:
        def __init__(self, score: float, summary: str):
            self.score = score
            self.summary = summary

    spot = bs.Spot(name="production_pipeline", db=MemoryLedger(), storage=DictBlobs(), tpm=60)
    spot.register_type(
        type_=AnalysisResult, code=20,
        encoder=lambda o: json.dumps({"score": o.score, "summary": o.summary}).encode(),
        decoder=lambda b: AnalysisResult(**json.loads(b)))
    runs = []

    @spot.mark(save_blob=True, input_key_fn=KeyGen.from_path_stat, version="v2.0.1",
               content_type="application/json")
    @spot.limiter(cost=1)
    def analyze_log_file(file_path: str) -> AnalysisResult:
        runs.append(file_path)
        return AnalysisResult(score=0.95, summary=f"Processed {Path(file_path).name}")

    files = []
    for name in ("log1.txt", "log2.txt"):
        path = tmp_path / name
        path.write_text(name)
        files.append(str(path))
    for _ in range(2):
        for f in files:
            assert analyze_log_file(f).summary == f"Processed {Path(f).name}"
    assert runs == files
    assert analyze_log_file.task(files[0]).record.content_type == "application/json"
    spot.close()


def test_a_limiter_inside_a_mark_throttles_only_real_calls(workspace):
    spot = bs.Spot("limited")
    lim = spot.limiter(name="api", limits=["2/min"], burst=2)
    runs = []

    @spot.mark
    @lim(cost=1)
    def fetch(x):
        runs.append(x)
        return x

    assert fetch(1) == 1 and fetch(2) == 2       # the burst of 2 is spent on real calls
    started = time.monotonic()
    for _ in range(50):                           # hits never reach the limiter
        assert fetch(1) == 1 and fetch(2) == 2
    assert time.monotonic() - started < 5
    assert not lim.try_acquire(1)                 # the limit is spent: a third call would wait
    assert runs == [1, 2]
    spot.close()


def test_named_limiters_are_shared_within_a_spot(workspace):
    spot = bs.Spot("shared_limits")
    a = spot.limiter(name="openai", limits=["500/min", "90000/min tokens"])
    assert spot.limiter(name="openai") is a
    spot.close()


def test_limits_are_shared_like_the_records_by_default(workspace, pg_url):
    from hokuro.store.limits.postgres import PostgresStore
    from hokuro.store.limits.sqlite import SQLiteStore

    with bs.Spot("embedded") as spot:
        assert not (workspace / ".hokuro" / "embedded.limits.db").exists()  # made on first use
        assert isinstance(spot.limit_store, SQLiteStore)
        assert (workspace / ".hokuro" / "embedded.limits.db").exists()
    with bs.Spot("shared", db=pg_url) as spot:
        assert isinstance(spot.limit_store, PostgresStore)
        lim = spot.limiter(name="api", limits=["5/min"], burst=1)
        assert lim.try_acquire() and not lim.try_acquire()
    with bs.Spot("other_process_same_db", db=pg_url) as spot:
        lim = spot.limiter(name="api", limits=["5/min"], burst=1)
        assert not lim.try_acquire()  # the grant above is seen through PostgreSQL
