"""The run-engine workloads, one module per engine: ``benchmarks/bench_runs.py`` runs them.

Each ``with_*`` module runs in a fresh interpreter of its own (``python -m
runs_peers.with_x CONFIG``), so no engine's imports, threads or event-loop policy leak into
another's figures; ``workloads`` holds what every one of them shares: the sizes, the job
log that makes duplicates visible, and how a child reports back.
"""
