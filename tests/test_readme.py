"""The README's Python examples compile, and the quick start runs as shown."""

from __future__ import annotations

import ast
import re
import threading
import time
from pathlib import Path

import pytest

from hokuro.engine import marking

README = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


@pytest.mark.parametrize("source", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_every_python_example_compiles(source):
    compile(source, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_the_quick_start_runs_and_reuses_records(workspace, monkeypatch, capsys):
    quick_start = next(block for block in BLOCKS if "heavy_process" in block)
    slept, real_sleep = [], time.sleep
    main = threading.main_thread()
    # Only the quick start's own sleeps (on this thread) are counted and skipped; a thread
    # of hokuro's (or left by another test) sleeps for real.
    monkeypatch.setattr(time, "sleep", lambda seconds: slept.append(seconds)
                        if threading.current_thread() is main else real_sleep(seconds))
    monkeypatch.setattr(marking, "_WARNED_MAIN", set())
    with pytest.warns(RuntimeWarning, match="name=") as warned:  # as the quick start says
        for _ in range(2):
            exec(compile(quick_start, "README.md", "exec"), {"__name__": "__main__"})
    assert len(warned) == 1
    assert capsys.readouterr().out.split("\n")[:4] == [
        "Processed: A", "Processed: B", "Processed: C", "Processed: A"]
    assert slept == [2, 2, 2]  # "A" once, and the second run entirely from records
