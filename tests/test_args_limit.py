"""A call's arguments are kept for replay up to the Spot's ``args_limit``; past it (or with
``store_args=False``) only the key is kept, and ``hokuro show`` / ``hokuro retry`` say so."""

from __future__ import annotations

import json
import sys
import textwrap
import uuid

import pytest
from click.testing import CliRunner

from hokuro.admin.maintenance import MaintenanceService
from hokuro.cli import main
from hokuro.engine.spot import DEFAULT_ARGS_LIMIT
from hokuro.errors import ConfigurationError

MiB = 1024 * 1024


def test_a_50_mb_argument_keeps_the_ledger_small_and_the_miss_fast(make_spot, workspace):
    spot = make_spot("t")

    @spot.mark
    def length(data):
        return len(data)

    for i in range(2):
        big = bytes([i]) * (50 * MiB)
        assert length(big) == 50 * MiB
    # How fast such a miss is (the key is hashed, the argument not kept) is measured by
    # benchmarks/bench_args_limit.py, not timed here.
    record = length.task(big).record
    assert len(record.args) < 100
    if not make_spot.shared:
        ledger = sum(p.stat().st_size for p in (workspace / ".hokuro").glob("t.db*"))
        assert ledger < 8 * MiB, ledger
    with MaintenanceService.from_spot(spot) as service:
        note = service.get_task_detail(record.key).args_note
    assert f"arguments not kept (at least {50 * MiB} bytes > args_limit {DEFAULT_ARGS_LIMIT})" \
        in note and "cannot be replayed" in note


def test_arguments_up_to_the_limit_are_kept_and_shown(make_spot):
    spot = make_spot("t", args_limit=1000)

    @spot.mark
    def echo(items):
        return len(items)

    echo(list(range(10)))
    echo(list(range(1000)))  # ints of two bytes or more: past 1000 bytes once encoded
    with MaintenanceService.from_spot(spot) as service:
        kept = service.get_task_detail(echo.key_of(list(range(10))))
        over = service.get_task_detail(echo.key_of(list(range(1000))))
    assert kept.args == {"items": list(range(10))} and kept.args_note is None
    size = over.args_note.split("(")[1].split(" bytes")[0]
    assert int(size) > 1000
    assert over.args_note == f"<arguments not kept ({size} bytes > args_limit 1000); " \
        "cannot be replayed>"


def test_store_args_false_keeps_only_the_key(make_spot):
    spot = make_spot("t")

    @spot.mark(store_args=False)
    def login(user, password):
        return user

    assert login("ann", "hunter2") == "ann"
    record = login.task("ann", "hunter2").record
    assert b"hunter2" not in record.args
    with MaintenanceService.from_spot(spot) as service:
        note = service.get_task_detail(record.key).args_note
    assert note == "<arguments not kept (store_args=False); cannot be replayed>"


@pytest.mark.parametrize("limit", [-1, 1.5, "1MB"])
def test_a_bad_args_limit_is_refused(make_spot, limit):
    with pytest.raises(ConfigurationError, match="args_limit"):
        make_spot("t", args_limit=limit)


def test_show_and_retry_say_the_arguments_were_not_kept(workspace):
    module = f"big_{uuid.uuid4().hex[:8]}"
    (workspace / f"{module}.py").write_text(textwrap.dedent("""
        import hokuro

        spot = hokuro.Spot("big", args_limit=1024)


        @spot.mark
        def total(data):
            raise ValueError("not yet")
    """))
    sys.path.insert(0, str(workspace))
    try:
        jobs = __import__(module)
        with pytest.raises(ValueError):
            jobs.total(b"x" * 5000)
        key = jobs.total.key_of(b"x" * 5000)
        jobs.spot.close()
    finally:
        sys.path.remove(str(workspace))
        sys.modules.pop(module, None)

    runner = CliRunner()
    shown = runner.invoke(main, ["show", "big", key], catch_exceptions=False)
    assert shown.exit_code == 0
    assert "arguments not kept (at least 5000 bytes > args_limit 1024); cannot be replayed" \
        in shown.stdout
    retried = runner.invoke(main, ["retry", "big", "--json"], catch_exceptions=False)
    imported = sys.modules.pop(module, None)
    if imported is not None:
        imported.spot.close()
    assert retried.exit_code == 1
    [entry] = json.loads(retried.stdout)["results"]
    assert entry["outcome"] == "not_replayable"
    assert entry["detail"] == ("arguments not kept (at least 5000 bytes > args_limit 1024); "
                               "cannot be replayed")
