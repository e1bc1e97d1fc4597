"""The custom-backend examples of the README work, and conform to the shared suites."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import pytest

import hokuro
import test_blobs_conformance as blob_suite
import test_ledger_conformance as ledger_suite

sys.path.insert(0, str(Path(__file__).parent.parent / "examples"))

from dict_blobs import DictBlobs
from memory_ledger import MemoryLedger

# These reach into a real store's internals (temporary files, multipart uploads, the files/
# folder) that an in-memory example does not have.
_INTERNAL = {"test_a_task_files_folder_is_not_listed_as_blobs",
             "test_an_abandoned_save_never_becomes_visible",
             "test_an_unfinished_save_is_invisible_and_cleaned_when_old"}


def _tests_taking(module, fixture: str):
    return [f for name, f in sorted(vars(module).items())
            if name.startswith("test_") and callable(f) and name not in _INTERNAL
            and list(inspect.signature(f).parameters) == [fixture]]


@pytest.mark.parametrize("test", _tests_taking(ledger_suite, "ledger"),
                         ids=lambda f: f.__name__)
def test_the_memory_ledger_example_conforms(test):
    test(MemoryLedger())


@pytest.mark.parametrize("test", _tests_taking(blob_suite, "store"), ids=lambda f: f.__name__)
def test_the_dict_blobs_example_conforms(test):
    test(DictBlobs())


def test_a_spot_runs_on_the_custom_backends(workspace):
    with hokuro.Spot("custom", db=MemoryLedger(), blobs=DictBlobs(),
                     blob_threshold=10) as spot:
        runs = []

        @spot.mark
        def double(x):
            runs.append(x)
            return [x] * 20

        assert double(3) == double(3) == [3] * 20
        assert runs == [3]
        assert double.task(3).record.blob is not None
        assert spot.stats()["counts"] == {"total": 1, "done": 1}
    assert not (workspace / ".hokuro").exists() or not any((workspace / ".hokuro").iterdir())
