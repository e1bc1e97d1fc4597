"""Items per second through a stage that saves one output row per item.

For each output database (a SQLite file, PostgreSQL):

- ``hand loop``: the honest baseline — a hand-written SQLAlchemy loop that adds one ORM row
  per item and commits it, one transaction per item (what a careful script does to keep
  each item's work on its own);
- ``hand batch``: the same rows in one transaction, a SAVEPOINT per item and the rows
  inserted in groups — a stage's work without lineage (what hokuro adds is what is left);
- ``stage``: ``StageSession(db).run(name, items)``, one batch, first run (lineage rows are
  written for every output);
- ``stage again``: the same items a second time — each item's previous output is found
  through lineage and deleted before the new one is written.

The cost of lineage per item is (stage - hand batch) / items, and for a re-run
(stage again - hand batch) / items.

    python benchmarks/bench_stages.py [--items 5000] [--pg URL] [--repeat 3]

Without --pg it uses postgresql://postgres@127.0.0.1/postgres when a server answers there,
creating and dropping a database of its own.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import Float, Integer, create_engine, delete, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import hokuro
from hokuro.stages import StageSession


class Base(DeclarativeBase):
    pass


class Output(Base):
    __tablename__ = "bench_output"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)


@hokuro.stage("bench.save_one")
class SaveOne(hokuro.Stage):
    def process(self):
        item = super().process()
        self.save(Output(item=item, value=item * 0.5))
        return item


def hand_loop(engine, items: list[int]) -> None:
    with Session(engine) as session:
        for item in items:
            session.add(Output(item=item, value=item * 0.5))
            session.commit()


def hand_batch(engine, items: list[int], group: int = 1000) -> None:
    with Session(engine) as session:
        pending: list[Output] = []
        for item in items:
            with session.begin_nested():
                pending.append(Output(item=item, value=item * 0.5))
            if len(pending) >= group:
                session.add_all(pending)
                session.flush()
                pending = []
        session.add_all(pending)
        session.commit()


def clear(engine) -> None:
    with engine.begin() as conn:
        conn.execute(delete(Output))
        conn.execute(text("DELETE FROM hokuro_lineage"))


def measure(label: str, url: str, items: list[int], repeat: int, workspace: Path) -> None:
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    spot = hokuro.Spot("bench", workspace=workspace)
    stages = StageSession(engine, spot=spot)
    stages.run("bench.save_one", [0])  # the lineage table exists before timing
    n = len(items)
    best: dict[str, float] = {}

    def timed(name: str, fn, prepare=None) -> None:
        for _ in range(repeat):
            if prepare is not None:
                prepare()
            t0 = time.perf_counter()
            fn()
            elapsed = time.perf_counter() - t0
            best[name] = min(best.get(name, elapsed), elapsed)

    loop_items = items[: max(n // 5, 200)]  # one commit per item: fewer items, same rate
    timed("hand loop", lambda: hand_loop(engine, loop_items), lambda: clear(engine))
    timed("hand batch", lambda: hand_batch(engine, items), lambda: clear(engine))
    timed("stage", lambda: stages.run("bench.save_one", items), lambda: clear(engine))
    timed("stage again", lambda: stages.run("bench.save_one", items))
    print(f"\n{label}: {n:,} items (hand loop: {len(loop_items):,}), best of {repeat}")
    print(f"  {'':<12} {'items/s':>10} {'µs/item':>9}")
    rates = {}
    for name, seconds in best.items():
        count = len(loop_items) if name == "hand loop" else n
        rates[name] = count / seconds
        print(f"  {name:<12} {count / seconds:>10,.0f} {1e6 * seconds / count:>9.1f}")
    per = {k: 1e6 / v for k, v in rates.items()}
    print(f"  stage vs hand loop: {rates['stage'] / rates['hand loop']:.1f}x; lineage costs "
          f"{per['stage'] - per['hand batch']:.1f} µs/item on a first run, "
          f"{per['stage again'] - per['hand batch']:.1f} µs/item when replacing")
    spot.close()
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1/postgres")
    args = parser.parse_args()
    items = list(range(1, args.items + 1))
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp)
        measure("SQLite file", f"sqlite:///{workspace / 'out.db'}", items, args.repeat,
                workspace)
        try:
            import psycopg

            admin = psycopg.connect(args.pg, autocommit=True, connect_timeout=3)
        except Exception as exc:
            print(f"\nPostgreSQL skipped: {exc}")
            return
        name = f"hokuro_bench_{uuid.uuid4().hex[:8]}"
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = args.pg.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
            measure("PostgreSQL", f"{url}/{name}", items, args.repeat, workspace)
        finally:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s", (name,))
            admin.execute(f'DROP DATABASE "{name}"')
            admin.close()


if __name__ == "__main__":
    main()
