"""Scripts: how fast a ``.bue`` file is read and compiled, and what a script run costs.

    .venv/bin/python benchmarks/bench_script.py [--steps N] [--accounts A] [--json FILE]

Cases, each in a temporary folder:

- *parse*: a script of N step blocks (Python, SQLite and PostgreSQL in turn, with scope and
  priority lines and comments), N/2 pipes and N/2 calls, read by the grammar (seconds, best
  of 3; lines per second);
- *compile*: the same script compiled to a plan whose steps are marked functions of a Spot
  (seconds, best of 3);
- *run*: buelon's README example shape over A accounts — ``for account in accounts():
  request | download | sql | upload`` (a Python step returning rows, a SQLite step adding a
  column, an upload that counts them) — run at concurrency 64 on the embedded ledger
  (seconds, jobs per second), then run again (every result reused).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import textwrap
import time
from pathlib import Path

STEPS_PY = textwrap.dedent("""
    def f(*args):
        return args[0] if args else [{"n": 1}]

    def accounts():
        return [{"id": i} for i in range(ACCOUNTS)]

    def request(account):
        return {"account": account, "report": account["id"] * 7}

    def download(request):
        return {"config": request, "rows": [{"sales": i, "spend": i % 7} for i in range(50)]}

    def upload(data):
        return len(data["rows"])
""")


def big_script(n: int) -> str:
    parts = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            parts.append(f"s{i}:\n    python\n    $ lane-{i % 5}\n    f\n"
                         f"    steps.py  # step {i}\n")
        elif kind == 1:
            parts.append(f"s{i}:\n    sqlite3\n    !{i % 10}\n    t\n    `select * from t`\n")
        else:
            parts.append(f"s{i}:\n    pg\n    t\n    `\nselect *\nfrom t\n`\n")
    for i in range(0, n - 1, 2):
        parts.append(f"p{i} = s{i} | s{i + 1}\n")
    for i in range(0, n - 1, 2):
        parts.append(f"v{i} = p{i}()\n" if i % 4 == 0 else f"p{i}()\n")
    return "\n".join(parts)


RUN_SCRIPT = """
accounts:
    python
    accounts
    steps.py
request:
    python
    request
    steps.py
download:
    python
    download
    steps.py
acos:
    sqlite3
    some_table
    `SELECT *, CASE WHEN sales = 0 THEN 0.0 ELSE spend * 1.0 / sales END AS acos FROM some_table`
upload:
    python
    upload
    steps.py
api = request | download | acos | upload
source = | accounts
for account in source():
    api(account)
"""


def best(fn, times: int = 3) -> float:
    found = float("inf")
    for _ in range(times):
        started = time.perf_counter()
        fn()
        found = min(found, time.perf_counter() - started)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()

    from hokuro import Spot
    from hokuro.script import load, parse

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "steps.py").write_text(f"ACCOUNTS = {args.accounts}\n" + STEPS_PY)
        text = big_script(args.steps)
        (root / "big.bue").write_text(text)
        lines = text.count("\n")
        figures["parse_s"] = best(lambda: parse(text, "big.bue"))
        figures["parse_lines_per_s"] = lines / figures["parse_s"]
        with Spot("bench", workspace=root / ".hokuro") as spot:
            figures["compile_s"] = best(lambda: load(root / "big.bue", spot))

            (root / "run.bue").write_text(RUN_SCRIPT)
            script = load(root / "run.bue", spot)
            started = time.perf_counter()
            run = spot.run(script.plan, run="run.bue", concurrency=64, progress=False)
            figures["run_s"] = time.perf_counter() - started
            summary = run.summary()
            assert summary["failed"] == 0, run.failures()[:3]
            figures["run_jobs"] = summary["jobs"]
            figures["run_jobs_per_s"] = summary["jobs"] / figures["run_s"]
            started = time.perf_counter()
            again = spot.run(script.plan, run="run.bue", concurrency=64, progress=False)
            figures["rerun_s"] = time.perf_counter() - started
            figures["rerun_reused"] = again.summary()["reused"]

    print(f"script of {args.steps} steps ({lines} lines): parse {figures['parse_s']:.3f} s "
          f"({figures['parse_lines_per_s']:,.0f} lines/s), compile with a Spot "
          f"{figures['compile_s']:.3f} s")
    print(f"run over {args.accounts} accounts: {figures['run_jobs']:,.0f} jobs in "
          f"{figures['run_s']:.2f} s ({figures['run_jobs_per_s']:,.0f} jobs/s); again: "
          f"{figures['rerun_s']:.2f} s, {figures['rerun_reused']:,.0f} reused")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    sys.exit(main())
