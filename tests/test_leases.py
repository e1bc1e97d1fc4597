"""A running task keeps its lease alive; the SQLite hot queries use their indexes."""

from __future__ import annotations

import sqlite3
import threading
import time

from hokuro import Spot
from hokuro.store.ledger.sqlite import Q


def test_a_task_running_past_its_lease_keeps_it_and_runs_once(workspace):
    # Two Spots in one process share the ledger but not their in-process flights, so the
    # second caller sees only the ledger's lease: without renewal it would take over after
    # 0.6 s and run the task a second time (renewal every 0.2 s leaves generous slack).
    runs = []

    def define(spot):
        @spot.mark(name="slow")
        def slow(x):
            runs.append(x)
            time.sleep(2.4)
            return x

        return slow

    with Spot("lease", lease=0.6) as first, Spot("lease", lease=0.6) as second:
        slow_first, slow_second = define(first), define(second)
        results = []
        leader = threading.Thread(target=lambda: results.append(slow_first(1)))
        leader.start()
        time.sleep(0.2)
        results.append(slow_second(1))
        leader.join(10)
        assert results == [1, 1]
        assert runs == [1]
        assert slow_second.task(1).attempts == 1


def test_the_hit_path_and_stats_read_through_their_indexes(workspace):
    with Spot("plans") as spot:
        @spot.mark
        def f(x):
            return x

        f(1)
        path = spot.ledger.describe()
    conn = sqlite3.connect(path)
    lookup = " ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + Q["lookup"],
                                                       ("k",)))
    assert "USING INDEX sqlite_autoindex_tasks_1" in lookup
    (table,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'tasks'").fetchone()

    def reads_indexes_alone(query: str) -> bool:
        """SQLite may open the table (for the size of the arguments, a virtual column) but
        takes every value, that one too, from an index."""
        program = conn.execute("EXPLAIN " + Q[query], {"fn": None, "now": 0.0}).fetchall()
        cursors = {row[2] for row in program if row[1] == "OpenRead" and row[3] == table}
        return not [row for row in program if row[1] == "Column" and row[2] in cursors]

    # The tally's stats, and the count of every record (ledgers of schemas 2 to 5).
    for query, index in (("stats", "SCAN tally"), ("stats_scan", "INDEX tasks_fn_status")):
        plan = " ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + Q[query],
                                                         {"fn": None, "now": 0.0}))
        assert index in plan and reads_indexes_alone(query), (query, plan)
    conn.close()
