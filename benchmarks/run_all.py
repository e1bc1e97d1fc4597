"""Run every benchmark in this folder, one after the other: ``make bench``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
ORDER = ["bench_core.py", "bench_blob_threshold.py", "bench_args_limit.py", "bench_limits.py",
         "bench_limit_waiting.py", "bench_stats.py", "bench_shared.py", "bench_memo.py",
         "bench_tally.py", "bench_ui.py", "bench_async_calls.py", "bench_jobs_store.py",
         "bench_runs.py", "bench_script.py", "bench_workers.py", "bench_stages.py"]


def main() -> int:
    failed = []
    for name in ORDER:
        print(f"\n## {name}\n", flush=True)
        if subprocess.call([sys.executable, str(HERE / name)]) != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
