"""The code of the dashboard's tests: a Spot with tasks of every kind, written into a test's
workspace (as ``uiwork.py``) so that replays import it from there, as a user's would be.

``make(folder)`` fills the Spot ``ui`` in ``folder/.hokuro``; ``batch(folder, n, pause)``
runs a slow batch there (the live run of the browser tests).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).parent.parent / "src"

MODULE = '''
import os
import time
from pathlib import Path

import hokuro

HERE = Path(__file__).parent
spot = hokuro.Spot("ui", workspace=HERE / ".hokuro")


@spot.mark
def parse(n):
    """Fails for multiples of 5 until the file FIXED exists beside this module."""
    if n % 5 == 0 and not (HERE / "FIXED").exists():
        raise ValueError(f"cannot parse {n}")
    return {"n": n, "square": n * n, "name": f"item-{n}"}


@spot.mark(content_type="image/svg+xml")
def picture(r):
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="60" height="60">'
            f'<circle cx="30" cy="30" r="{r}" fill="teal"/></svg>').encode()


@spot.mark(content_type="application/octet-stream")
def raw(n):
    return bytes(range(256)) * n


@spot.mark(codec="pickle")
def pickled(n):
    return {"n": n}


@spot.mark
def text(n):
    return "line\\n" * n


@spot.mark
def slow(n):
    time.sleep(float(os.environ.get("UI_SLOW", "0.05")))
    return n


def make(count=120):
    for n in range(count):
        try:
            parse(n)
        except ValueError:
            pass
    picture(20)
    raw(4)
    pickled(1)
    text(3)
    spot.map(parse, range(200, 212), progress=False, run="parsing")
    limiter = spot.limiter(name="api", limits=["10/hour"])
    for _ in range(3):
        limiter.acquire()
'''


def write(folder) -> None:
    (folder / "uiwork.py").write_text(MODULE)


def environment(folder: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(SRC)]), **extra}


def fill(folder: Path) -> None:
    """The Spot ``ui`` in ``folder/.hokuro``, made by a child process."""
    write(folder)
    subprocess.run([sys.executable, "-c", "import uiwork; uiwork.make()"], cwd=folder,
                   env=environment(folder), check=True, timeout=120)
