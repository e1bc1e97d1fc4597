"""Stages and models used by tests/test_stages.py (importable: hokuro retry and the child
processes of the kill -9 test import them by their module path)."""

from __future__ import annotations

import os
import sys
import time

from sqlalchemy import Column, Float, ForeignKey, Integer, MetaData, String, Table
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import hokuro
from hokuro.compat.datapipe import Pipe, pipeline
from hokuro.stages import Break, Continue, Error, Ignore


class Base(DeclarativeBase):
    pass


class SourceItem(Base):
    __tablename__ = "source_item"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[int] = mapped_column(Integer)


class ResultItem(Base):
    __tablename__ = "result_item"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[float] = mapped_column(Float)
    tag: Mapped[str | None] = mapped_column(String(40), nullable=True)


class News(Base):
    __tablename__ = "news"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    content: Mapped[str] = mapped_column(String(200))


class NewsTag(Base):
    __tablename__ = "news_tag"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    news_id: Mapped[int] = mapped_column(ForeignKey("news.id"))
    tag: Mapped[str] = mapped_column(String(40))


class Code(Base):
    __tablename__ = "code"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)


core = MetaData()
#: A Core table: rows saved with self.save(AUDIT, {...}).
AUDIT = Table("audit", core, Column("id", Integer, primary_key=True),
              Column("item", Integer), Column("note", String(40)))


def create_tables(engine) -> None:
    Base.metadata.create_all(engine)
    core.create_all(engine)


# -- discount_sum, the README's variant (datapipe's PKG-INFO) ---------------------------------
class GradualSum(Pipe):
    """initialize total and add number for each item to it"""

    def prepare(self, items):
        assert isinstance(items[0], SourceItem)
        self.context.total = 0
        return super().prepare(items)

    def process(self):
        item = super().process()
        self.context.total += item.number
        self.total = self.context.total
        return item


class DiscountSum(GradualSum):
    discount = 0.99

    def process(self):
        item = super().process()
        self.context.total *= self.discount
        return item


@pipeline("discount_sum")
class Save(DiscountSum):
    result_model = ResultItem

    def process(self):
        item = super().process()
        self.add_to_save(self.result_model(number=self.total,
                                           tag=self.context.get("tag")))
        return item


# -- discount_sum, the repository's variant (self.total *= discount) --------------------------
class RepoDiscountSum(GradualSum):
    discount = 0.99

    def process(self):
        item = super().process()
        self.total *= self.discount
        return item


class RepoSave(RepoDiscountSum):
    stage_name = "discount_sum_repo"

    def process(self):
        item = super().process()
        self.save(ResultItem(number=self.total))
        return item


# -- flow control on plain values -------------------------------------------------------------
SIGNALS = {"continue": Continue, "ignore": Ignore, "break": Break, "error": Error,
           "exception": ValueError}


@hokuro.stage("flow")
class Flow(hokuro.Stage):
    """Saves ResultItem(number=item, tag=context.tag) and an audit row through the Core
    table (and writes one more audit row directly in the session); raises
    ``context.signal`` at item ``context.at``."""

    def process(self):
        item = super().process()
        self.save(ResultItem(number=item, tag=self.context.tag))
        self.save(AUDIT, {"item": item, "note": "saved"})
        self.session.execute(AUDIT.insert().values(item=item, note="direct"))
        if item == self.context.get("at") and self.context.get("signal"):
            signal = SIGNALS[self.context.signal]
            if signal is Continue:
                raise Continue(f"continued {item}")
            raise signal(f"signal at {item}")
        return item

    def finish(self, results):
        self.context.finished = len(results)


# -- depends: the README's example ------------------------------------------------------------
@pipeline("main")
class Main(Pipe):
    depends = ["being_depend"]

    def process(self):
        item = super().process()
        self.save(ResultItem(number=item * 1. / self.context.depends_total, tag="main"))
        return item


@pipeline("being_depend")
class Depends(Pipe):
    def prepare(self, items):
        items = super().prepare(items)
        self.context.depends_total = 0
        return items

    def process(self):
        item = super().process()
        self.context.depends_total += item
        return item


# -- trigger ----------------------------------------------------------------------------------
@pipeline("news.import")
class NewsImport(Pipe):
    def process(self):
        raw = super().process()
        return self.add_to_save(News(content=raw))


@pipeline("news.link.tags", trigger="news.import")
class NewsTagging(Pipe):
    def process(self):
        news = super().process()
        self.add_to_save(*[NewsTag(news_id=news.id, tag=word)
                           for word in news.content.split()])
        return news


# -- the error collector ----------------------------------------------------------------------
FIXED = {"fragile": False}


def check_number(item: int) -> None:
    if item % 3 == 0 and not FIXED["fragile"]:
        raise ValueError(f"cannot take {item}")


@hokuro.stage("fragile")
class Fragile(hokuro.Stage):
    def process(self):
        item = super().process()
        check_number(item)
        self.save(ResultItem(number=item, tag="fragile"))
        return item


@hokuro.stage("strict")
class Strict(hokuro.Stage):
    """Refuses item 7 with Error (the whole chunk rolls back) until fixed."""

    def process(self):
        item = super().process()
        if item == 7 and not FIXED.get("strict"):
            raise Error(f"refuse {item}")
        self.save(ResultItem(number=item, tag="strict"))
        return item


@hokuro.stage("codes")
class Codes(hokuro.Stage):
    """Saves Code(code=context.codes[item]): two items with one code break the unique
    constraint when their rows are written."""

    def process(self):
        item = super().process()
        self.save(Code(code=self.context.codes[str(item)]))
        return item


@hokuro.stage("by_id", key=lambda item: item["id"])
class ById(hokuro.Stage):
    """Items are dicts whose content changes between runs; key= names them by their id."""

    def process(self):
        item = super().process()
        self.save(ResultItem(number=item["value"], tag=f"id{item['id']}"))
        return item


# -- a slow stage for the kill -9 test --------------------------------------------------------
@hokuro.stage("slow_save")
class SlowSave(hokuro.Stage):
    def process(self):
        item = super().process()
        time.sleep(float(os.environ.get("HOKURO_TEST_STAGE_SLEEP", "0")))
        self.save(ResultItem(number=item, tag="slow"))
        return item


def chunked_child(workspace: str, db: str, count: str) -> None:
    """Run slow_save over ``count`` items in chunks of 5 (the kill -9 test's child)."""
    spot = hokuro.Spot("stages", workspace=workspace)
    run = hokuro.run_stage(spot, "slow_save", range(int(count)), db=db, chunk=5,
                           concurrency=2, progress=False)
    print(run.summary()["status"], run.tally.counts.get("done", 0), flush=True)


if __name__ == "__main__":
    chunked_child(*sys.argv[1:])
