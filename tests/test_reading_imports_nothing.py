"""Reading a record never imports a module named by the stored data (DESIGN invariant 6).

A crafted record names an Enum in a module that is importable but not imported: importing it
would run its top-level code (here: write a marker file). A cache hit recomputes instead, and
``hokuro show`` prints the value as not decoded, saying which module to import.
"""

from __future__ import annotations

import sys
import time
import uuid
import warnings

import msgpack
import pytest
from click.testing import CliRunner

from hokuro import Spot
from hokuro.cli import main
from hokuro.errors import SerializationError
from hokuro.model.codec import Codec
from hokuro.model.records import Record, Status

_ENUM_CODE = 109


@pytest.fixture
def trap(tmp_path, monkeypatch):
    """(module name, marker path): a module on sys.path that writes the marker when imported."""
    name = f"hokuro_trap_{uuid.uuid4().hex[:10]}"
    marker = tmp_path / "imported.marker"
    folder = tmp_path / "trap_modules"
    folder.mkdir()
    (folder / f"{name}.py").write_text(
        "import enum, pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text('imported')\n"
        "class Color(enum.Enum):\n    RED = 1\n")
    monkeypatch.syspath_prepend(str(folder))
    yield name, marker
    sys.modules.pop(name, None)


def _enum_bytes(module: str) -> bytes:
    return msgpack.packb(msgpack.ExtType(_ENUM_CODE, msgpack.packb([module, "Color", 1])))


def test_decoding_an_enum_of_a_module_not_imported_names_the_module_and_imports_nothing(trap):
    module, marker = trap
    with pytest.raises(SerializationError, match=f"import {module} before reading"):
        Codec().decode(_enum_bytes(module))
    assert not marker.exists() and module not in sys.modules


def test_an_enum_of_an_imported_module_still_decodes(trap):
    module, marker = trap
    imported = __import__(module)
    marker.unlink()
    assert Codec().decode(_enum_bytes(module)) is imported.Color.RED


def _craft(spot: Spot, key: str, module: str) -> None:
    now = time.time()
    spot.ledger.put(Record(key=key, fn="crafted", status=Status.DONE, codec="msgpack",
                           result=_enum_bytes(module), args=_enum_bytes(module),
                           created_at=now, started_at=now, finished_at=now, updated_at=now))


def test_a_cache_hit_on_a_crafted_record_recomputes_without_importing_its_module(workspace,
                                                                                   trap):
    module, marker = trap
    with Spot("s") as spot:
        @spot.mark(name="crafted")
        def work(n):
            return n * 2

        _craft(spot, work.key_of(1), module)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert work(1) == 2
    assert not marker.exists() and module not in sys.modules
    assert any(f"import {module}" in str(w.message) for w in caught)


def test_show_prints_a_crafted_value_as_not_decoded_without_importing_its_module(workspace,
                                                                                  trap):
    module, marker = trap
    key = uuid.uuid4().hex
    with Spot("s") as spot:
        _craft(spot, key, module)
    result = CliRunner().invoke(main, ["show", "s", key], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert not marker.exists() and module not in sys.modules
    assert "result not decoded" in result.stdout and "arguments not decoded" in result.stdout
    assert f"{module!r} is not imported" in result.stdout
