"""How fast the dashboard's pages answer on a ledger of 1,000,000 records.

Builds a ledger of N records (5 collections, 10% failures of 3 kinds, updated over the last
30 days: ``bench_stats.records``) on SQLite (``put_many``, one transaction) and on
PostgreSQL (``COPY`` into the Spot's table), reports how long each build took, then times
the tasks, errors and collections pages (and a few variants of the tasks page) through
Starlette's test client: the server's whole work for a page, queries and templates, without
the network. Each page is asked ``--times`` times; p50 and p99 are printed. Target: under
200 ms each.

    python benchmarks/bench_ui.py [--records N] [--times K] [--keep DIR] [--no-postgres]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

from bench_stats import build, records
from hokuro.model.records import RECORD_COLUMNS
from hokuro.web.app import create_app
from hokuro.web.books import Books

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette prefers httpx2 to httpx now
    from starlette.testclient import TestClient

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def build_postgres(url: str, n: int) -> float:
    """The Spot ``bench`` in the database at ``url``, its tasks written with COPY."""
    import psycopg

    from hokuro.store.ledger.postgres import PostgresLedger

    started = time.perf_counter()
    ledger = PostgresLedger(url, spot="bench")
    schema = ledger.schema
    ledger.close()
    columns = list(RECORD_COLUMNS)
    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        statement = f"COPY {schema}.tasks ({', '.join(columns)}) FROM STDIN"
        with cursor.copy(statement) as copy:
            for record in records(n):
                copy.write_row([getattr(record, c) for c in columns])
    # What autovacuum does to a table that has settled: statistics, and the visibility map
    # without which no scan reads an index alone.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"VACUUM ANALYZE {schema}.tasks")
    return time.perf_counter() - started


def pages(client: TestClient, books: Books) -> dict[str, str]:
    """The pages to time: name -> path."""
    first = client.get("/tasks").text
    cursor = first.split('id="next-page" href="')[1].split('"')[0].replace("&amp;", "&")
    deep = books.ledger.find_page(limit=1, until=time.time() - 20 * 86400)[0]
    some_key = deep.key
    return {
        "tasks": "/tasks",
        "tasks, 2nd page": cursor,
        "tasks, 20 days back": f"/tasks?after={deep.updated_at!r}:{deep.key}",
        "tasks of a collection": "/tasks?fn=pipeline.step_3",
        "tasks, failed of a collection": "/tasks?fn=pipeline.step_3&status=failed",
        "tasks, failed": "/tasks?status=failed",
        "tasks, key prefix": f"/tasks?key={some_key[:6]}",
        "task": f"/tasks/{some_key}",
        "errors": "/errors",
        "collections": "/",
        "collection": "/?fn=pipeline.step_3",
    }


def measure(label: str, target: str, times: int, spot: str | None = None,
            only: tuple[str, ...] | None = None) -> None:
    books = Books(target, spot=spot)
    try:
        app = create_app(books, token="t")
        with TestClient(app, base_url="http://127.0.0.1:8765") as client:
            client.get("/?token=t")
            found = pages(client, books)
            if only is not None:
                found = {k: v for k, v in found.items() if k in only}
            print(f"\n{label}: page times over {times} requests each (ms)")
            print(f"  {'page':<32} {'p50':>8} {'p99':>8}")
            for name, path in found.items():
                spans = []
                for _ in range(times):
                    started = time.perf_counter()
                    answer = client.get(path)
                    spans.append((time.perf_counter() - started) * 1000)
                    assert answer.status_code == 200, (path, answer.text[:500])
                spans.sort()
                p99 = spans[min(len(spans) - 1, max(0, round(0.99 * len(spans)) - 1))]
                flag = "" if statistics.median(spans) < 200 else "  > 200 ms"
                print(f"  {name:<32} {statistics.median(spans):8.1f} {p99:8.1f}{flag}",
                      flush=True)
    finally:
        books.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--times", type=int, default=30)
    parser.add_argument("--keep", type=Path, help="build the SQLite ledger here and keep it")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    options = parser.parse_args(argv)
    folder = options.keep or Path(tempfile.mkdtemp(prefix="hokuro-bench-ui-"))
    folder.mkdir(parents=True, exist_ok=True)
    ledger = folder / "bench.db"
    if not options.no_sqlite:
        if not ledger.exists():
            print(f"building {options.records:,} records in {ledger} ...", flush=True)
            print(f"  SQLite ledger built in {build(ledger, options.records):.1f} s "
                  "(put_many, one transaction)", flush=True)
        measure(f"SQLite, {options.records:,} records", str(ledger), options.times)

    if not options.no_postgres:
        import psycopg

        name = f"hokuro_bench_ui_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
        try:
            print(f"\nbuilding {options.records:,} records in PostgreSQL ...", flush=True)
            print(f"  PostgreSQL ledger built in {build_postgres(url, options.records):.1f} s "
                  "(COPY, then VACUUM ANALYZE)", flush=True)
            measure(f"PostgreSQL, {options.records:,} records", url, options.times,
                    spot="bench")
        finally:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    if not options.keep:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


if __name__ == "__main__":
    sys.exit(main())
