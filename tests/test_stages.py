"""Stages (datapipe): flow control, batched saves with lineage, depends / trigger, the error
collector and its replay, chunked runs resumed after kill -9 — on SQLite and PostgreSQL
output databases."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

import hokuro
from hokuro.admin.maintenance import MaintenanceService
from hokuro.compat.datapipe import get_session
from hokuro.errors import ConfigurationError
from hokuro.stages import Error, Stage, unregister

sys.path.insert(0, str(Path(__file__).parent))
import stage_defs as defs
from stage_defs import AUDIT, News, NewsTag, ResultItem, SourceItem


@pytest.fixture(params=["sqlite", "postgresql"])
def out_url(request, tmp_path):
    """The URL of an empty output database with the test models' tables."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'out.db'}"
    else:
        url = request.getfixturevalue("pg_url").replace("postgresql://",
                                                        "postgresql+psycopg://")
    engine = create_engine(url)
    defs.create_tables(engine)
    engine.dispose()
    return url


@pytest.fixture
def spot(workspace):
    with hokuro.Spot("stages") as spot:
        yield spot


def _session(out_url, spot, **options):
    return get_session(db=out_url, spot=spot, **options)


def _sources(engine, numbers):
    with Session(engine, expire_on_commit=False) as s:
        items = [SourceItem(number=n) for n in numbers]
        s.add_all(items)
        s.commit()
        return items


def _results(engine, tag=None):
    with Session(engine) as s:
        query = select(ResultItem).order_by(ResultItem.id)
        if tag is not None:
            query = query.where(ResultItem.tag == tag)
        return [(r.id, r.number, r.tag) for r in s.scalars(query)]


def _lineage_count(engine, stage):
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM hokuro_lineage WHERE stage = :s"),
                            {"s": stage}).scalar()


# -- discount_sum ------------------------------------------------------------------------------
def test_discount_sum_readme_variant_gives_its_documented_totals(out_url, spot):
    sess = _session(out_url, spot)
    items = _sources(sess.engine, [1, 2, 3, 4])
    report = sess.run("discount_sum", items)  # the README's argument order
    assert report.done == 4 and report.results == items
    assert [round(n, 6) for _, n, _ in _results(sess.engine)] == [1.0, 2.99, 5.9601, 9.900499]


def test_discount_sum_repository_variant_gives_its_totals(out_url, spot):
    sess = _session(out_url, spot)
    items = _sources(sess.engine, [1, 2, 3, 4])
    sess.run(items, "discount_sum_repo")  # datapipe's real argument order
    assert [round(n, 6) for _, n, _ in _results(sess.engine)] == [0.99, 2.97, 5.94, 9.9]


def test_a_second_run_replaces_each_items_outputs(out_url, spot):
    sess = _session(out_url, spot)
    items = _sources(sess.engine, [1, 2, 3, 4])
    sess.run("discount_sum", items, context={"tag": "first"})
    first = _results(sess.engine)
    sess.run("discount_sum", items, context={"tag": "second"})
    second = _results(sess.engine)
    assert len(second) == len(first) == 4
    assert {tag for _, _, tag in second} == {"second"}  # new rows, the old ones are gone
    assert [n for _, n, _ in second] == [n for _, n, _ in first]
    assert _lineage_count(sess.engine, "discount_sum") == 4


def test_key_names_items_whose_content_changes(out_url, spot):
    sess = _session(out_url, spot)
    sess.run("by_id", [{"id": 1, "value": 10}, {"id": 2, "value": 20}])
    sess.run("by_id", [{"id": 1, "value": 11}])  # the same item, edited: replaced
    assert sorted((tag, n) for _, n, tag in _results(sess.engine)) == [("id1", 11.0),
                                                                       ("id2", 20.0)]
    with sess.engine.connect() as conn:
        assert sorted(conn.execute(text("SELECT item FROM hokuro_lineage WHERE stage = "
                                        "'by_id'")).scalars()) == ["key:1", "key:2"]


def test_eval_runs_one_item_without_a_database():
    assert defs.Depends.eval(5) == 5
    with pytest.raises(AttributeError):  # Main needs what its depends put in the context
        defs.Main.eval(1)
    assert defs.Main.eval(1, context={"depends_total": 4}) == 1


# -- flow control on a batch of ten, with a previous run's outputs present ---------------------
EXPECTED_NEW = {
    # signal raised at item 5: which items' outputs are new afterwards (the rest stay old)
    "continue": set(range(10)),
    "ignore": set(range(10)) - {5},
    "break": set(range(5)),
    "error": set(),
    "exception": set(range(10)) - {5},
}


@pytest.mark.parametrize("signal_name", list(EXPECTED_NEW))
def test_each_flow_signal_keeps_exactly_the_right_outputs(out_url, spot, signal_name):
    sess = _session(out_url, spot)
    sess.run("flow", range(10), context={"tag": "old"})
    assert len(_results(sess.engine, "old")) == 10
    context = {"tag": "new", "signal": signal_name, "at": 5}
    if signal_name == "error":
        with pytest.raises(Error, match="signal at 5"):
            sess.run("flow", range(10), context=context)
        report = None
    else:
        report = sess.run("flow", range(10), context=context)
    rows = _results(sess.engine)
    assert len(rows) == 10  # one output per item, old or new, never both
    new = {int(n) for _, n, tag in rows if tag == "new"}
    assert new == EXPECTED_NEW[signal_name]
    assert {int(n) for _, n, tag in rows if tag == "old"} == set(range(10)) - new
    with Session(sess.engine) as s:
        audit = s.execute(select(AUDIT.c.item, AUDIT.c.note)).all()
    # Core rows follow lineage like ORM rows; direct writes follow the item's SAVEPOINT.
    saved = sorted(i for i, note in audit if note == "saved")
    assert saved == sorted(set(range(10)) - new | new)
    direct_new = sorted(i for i, note in audit if note == "direct")
    assert len(direct_new) == 10 + len(new)  # the first run's ten, then the kept items'
    if signal_name == "continue":
        assert "continued 5" in report.results and report.done == 10
    if signal_name == "break":
        assert report.broken and report.unreached == 4
        assert report.done == 5  # finish still ran on the five kept items
    if signal_name == "exception":
        assert [f.identity for f in report.failures] and report.failed == 1
        groups = MaintenanceService(spot.ledger).error_groups("stage:flow")
        assert [(g.count, g.error_type) for g in groups] == [(1, "ValueError")]


def test_debug_raises_at_the_first_error_and_keeps_nothing(out_url, spot):
    sess = _session(out_url, spot, debug=True)
    with pytest.raises(ValueError, match="signal at 3"):
        sess.run("flow", range(6), context={"tag": "d", "signal": "exception", "at": 3})
    assert _results(sess.engine) == []
    assert MaintenanceService(spot.ledger).error_groups() == []


def test_rows_the_database_refuses_fail_only_their_item(out_url, spot):
    sess = _session(out_url, spot)
    sess.run("codes", range(5), context={"codes": {str(i): f"old{i}" for i in range(5)}})
    codes = {str(i): f"new{i}" for i in range(5)}
    codes["4"] = "new3"  # item 4's row collides with item 3's when they are written
    report = sess.run("codes", range(5), context={"codes": codes})
    assert report.done == 4 and [f.index for f in report.failures] == [4]
    assert "IntegrityError" in type(report.failures[0].error).__name__
    with Session(sess.engine) as s:
        kept = sorted(s.scalars(select(defs.Code.code)))
    assert kept == ["new0", "new1", "new2", "new3", "old4"]  # item 4 keeps its old output
    groups = MaintenanceService(spot.ledger).error_groups("stage:codes")
    assert [g.count for g in groups] == [1]


# -- depends and trigger -----------------------------------------------------------------------
def test_depends_run_first_and_share_the_context_readme_example(out_url, spot):
    sess = _session(out_url, spot)
    report = sess.run([1, 2], "main")
    assert [r.stage for r in report.chained] == ["being_depend"]
    assert [round(n, 8) for _, n, _ in _results(sess.engine, "main")] == [0.33333333,
                                                                         0.66666667]


def test_trigger_runs_on_results_and_a_second_run_leaves_no_duplicates(out_url, spot):
    sess = _session(out_url, spot)
    report = sess.run(["red apple", "green pear tree"], "news.import")
    assert [r.stage for r in report.chained] == ["news.link.tags"]
    engine = sess.engine

    def counts():
        with Session(engine) as s:
            return (s.scalar(select(func.count()).select_from(News)),
                    s.scalar(select(func.count()).select_from(NewsTag)),
                    sorted(t for t in s.scalars(select(NewsTag.tag))))

    assert counts() == (2, 5, ["apple", "green", "pear", "red", "tree"])
    with Session(engine) as s:
        first_ids = set(s.scalars(select(News.id)))
    sess.run(["red apple", "green pear tree"], "news.import")
    assert counts() == (2, 5, ["apple", "green", "pear", "red", "tree"])
    with Session(engine) as s:  # the news were made again, and their tags point at them
        news = {n.id: n.content for n in s.scalars(select(News))}
        assert set(news).isdisjoint(first_ids) or engine.dialect.name == "sqlite"
        assert {t.news_id for t in s.scalars(select(NewsTag))} == set(news)
        standalone = list(s.scalars(select(News)))
    sess.run(standalone, "news.link.tags")  # run standalone: replaces its own outputs
    assert counts() == (2, 5, ["apple", "green", "pear", "red", "tree"])


def test_an_unknown_stage_name_is_an_error_at_the_first_run(out_url, spot):
    @hokuro.stage("tests.misspelt", trigger="news_import")
    class Misspelt(Stage):
        pass

    try:
        with pytest.raises(ConfigurationError, match=r"did you mean 'news\.import'"):
            _session(out_url, spot).run("flow", [1], context={"tag": "x"})
    finally:
        unregister("tests.misspelt")


# -- the error collector -----------------------------------------------------------------------
def test_three_identical_failures_group_and_are_replayed_after_a_fix(out_url, spot,
                                                                      monkeypatch):
    monkeypatch.setitem(defs.FIXED, "fragile", False)
    sess = _session(out_url, spot)
    report = sess.run("fragile", [1, 3, 4, 6, 7, 9])
    assert report.done == 3 and report.failed == 3
    service = MaintenanceService(spot.ledger)
    groups = service.error_groups()
    assert [(g.collections, g.count, g.error_type) for g in groups] == [(["stage:fragile"], 3,
                                                                "ValueError")]
    failed = list(service.failed_tasks("stage:fragile"))
    assert sorted(r.ident for r in failed) == sorted(
        f.identity for f in report.failures)
    assert all("failed on item" in r.log and "check_number" in r.error for r in failed)
    dry = list(service.retry_failed(fingerprint=groups[0].fingerprint, dry_run=True))
    assert [(r.outcome, r.detail) for r in dry] == [("would_retry", None)] * 3
    still = list(service.retry_failed(fingerprint=groups[0].fingerprint))
    assert [r.outcome for r in still] == ["failed"] * 3  # not fixed yet: still failing
    assert service.error_groups()[0].count == 3
    monkeypatch.setitem(defs.FIXED, "fragile", True)
    # The command line: hokuro errors shows the group, hokuro retry --error replays it.
    from click.testing import CliRunner

    from hokuro.cli.app import main

    shown = CliRunner().invoke(main, ["errors", "stages", "--json"],
                               catch_exceptions=False)
    assert groups[0].fingerprint in shown.output and "stage:fragile" in shown.output
    retried = CliRunner().invoke(main, ["retry", "stages", "--error", groups[0].fingerprint,
                                        "--json"], catch_exceptions=False)
    assert retried.exit_code == 0, retried.output
    results = json.loads(retried.output)["results"]
    assert [r["outcome"] for r in results] == ["done"] * 3
    assert service.error_groups() == []
    assert sorted(int(n) for _, n, _ in _results(sess.engine, "fragile")) == [1, 3, 4, 6, 7,
                                                                              9]
    assert {spot.ledger.get(r.key).status for r in failed} == {"done"}


# -- chunked runs --------------------------------------------------------------------------------
def test_a_chunked_run_keeps_context_and_replaces_outputs_on_a_second_run(out_url, spot):
    engine = create_engine(out_url)
    run = hokuro.run_stage(spot, "flow", range(23), db=engine, chunk=5,
                           context={"tag": "c1"}, progress=False)
    assert run.summary()["status"] == "done" and run.summary()["jobs"] == 5
    assert sum(r["done"] for r in run.results()) == 23
    hokuro.run_stage(spot, "flow", range(23), db=engine, chunk=5, context={"tag": "c2"},
                     progress=False)
    rows = _results(engine)
    assert len(rows) == 23 and {tag for _, _, tag in rows} == {"c2"}


def test_a_chunk_stopped_by_error_fails_its_job_and_hokuro_retry_run_finishes_it(
        out_url, spot, monkeypatch):
    monkeypatch.setitem(defs.FIXED, "strict", False)
    run = hokuro.run_stage(spot, "strict", range(20), db=out_url, chunk=5, progress=False)
    summary = run.summary()
    assert (summary["status"], summary["done"], summary["failed"]) == ("failed", 3, 1)
    engine = create_engine(out_url)
    assert sorted(int(n) for _, n, _ in _results(engine)) == [
        *range(5), *range(10, 20)]  # the chunk 5..9 rolled back whole
    monkeypatch.setitem(defs.FIXED, "strict", True)
    from click.testing import CliRunner

    from hokuro.cli.app import main

    retried = CliRunner().invoke(main, ["retry", "stages", "--run", "stage:strict", "--json"],
                                 catch_exceptions=False)
    assert retried.exit_code == 0, retried.output
    assert json.loads(retried.output)["summary"]["status"] == "done"
    assert sorted(int(n) for _, n, _ in _results(engine)) == list(range(20))


@pytest.mark.slow
def test_a_chunked_run_killed_and_resumed_makes_each_output_exactly_once(out_url, workspace):
    env = {**os.environ, "HOKURO_TEST_STAGE_SLEEP": "0.04",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent),
                                          os.environ.get("PYTHONPATH", "")])}
    code = ("import sys, stage_defs; stage_defs.chunked_child(*sys.argv[1:])")
    args = [sys.executable, "-c", code, str(workspace), out_url, "60"]
    engine = create_engine(out_url)
    child = subprocess.Popen(args, env=env, stdout=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            time.sleep(0.05)
            try:
                made = _lineage_count(engine, "slow_save")
            except Exception:  # the table is not created yet
                continue
            if made >= 15:
                break
        else:
            pytest.fail("the child made no outputs in 60 s")
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert 15 <= made < 60
    with hokuro.Spot("stages", workspace=workspace) as spot:
        [killed] = spot.ledger.list_runs()
    assert killed.status == "running"  # its process died with it
    env["HOKURO_TEST_STAGE_SLEEP"] = "0"
    resumed = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    status, executed = resumed.stdout.split()
    assert status == "done"
    assert int(executed) < 12  # chunks finished before the kill were not run again
    with Session(engine) as s:
        numbers = sorted(int(n) for n in s.scalars(select(ResultItem.number)))
    assert numbers == list(range(60))  # every item's output exactly once
    assert _lineage_count(engine, "slow_save") == 60
    with hokuro.Spot("stages", workspace=workspace) as spot:
        [resumed_run] = spot.ledger.list_runs()  # the same run, resumed: not a second one
    assert resumed_run.id == killed.id and resumed_run.status == "done"


def test_without_a_spot_failures_go_to_the_default_spot_made_on_the_first_failure(
        out_url, workspace):
    sess = get_session(db=out_url)
    sess.run("flow", range(3), context={"tag": "a"})
    assert not (workspace / ".hokuro").exists()  # nothing failed: no ledger made
    sess.run("flow", range(3), context={"tag": "b", "signal": "exception", "at": 1})
    with hokuro.Spot() as spot:
        assert [g.count for g in MaintenanceService(spot.ledger).error_groups()] == [1]
    sess.run("flow", range(3), context={"tag": "c"})  # item 1 succeeds now: resolved
    with hokuro.Spot() as spot:
        assert MaintenanceService(spot.ledger).error_groups() == []


def test_bad_input_gets_a_clear_error(out_url, spot):
    sess = _session(out_url, spot)
    with pytest.raises(ConfigurationError, match="no stage named 'nope'"):
        sess.run("nope", [1])
    with pytest.raises(ConfigurationError, match="stage name and the items"):
        sess.run([1], [2])
    with pytest.raises(ConfigurationError, match="db= takes a SQLAlchemy URL"):
        get_session(db=42)
    with pytest.raises(ConfigurationError, match="chunk must be"):
        hokuro.run_stage(spot, "flow", [1], db=out_url, chunk=0)

    class Unsaved(Stage):
        def process(self):
            self.save(object())

    with pytest.raises(ConfigurationError, match="save\\(\\) takes SQLAlchemy ORM objects"):
        Unsaved.eval(1)
    assert sess.run("flow", [], context={"tag": "x"}).prepared == 0  # empty: a no-op


def test_run_in_celery_runs_orm_items_in_chunks_on_the_run_engine(out_url, spot):
    sess = _session(out_url, spot)
    items = _sources(sess.engine, [1, 2, 3, 4])
    run = sess.run_in_celery(items, "discount_sum", celery_chunksize=2)
    assert run.summary()["status"] == "done" and run.summary()["jobs"] == 2
    # Each chunk is a batch: prepare starts the total again (as datapipe's Celery chunks did).
    assert sorted(round(n, 6) for _, n, _ in _results(sess.engine)) == [1.0, 2.99, 3.0, 6.97]
    sess.run_in_celery("discount_sum", items, celery_chunksize=4)  # either order
    assert sorted(round(n, 6) for _, n, _ in _results(sess.engine)) == [1.0, 2.99, 5.9601,
                                                                        9.900499]


def test_a_replay_never_creates_a_missing_sqlite_output(tmp_path, spot, monkeypatch):
    monkeypatch.setitem(defs.FIXED, "fragile", False)
    out = tmp_path / "gone.db"
    engine = create_engine(f"sqlite:///{out}")
    defs.create_tables(engine)
    engine.dispose()
    assert _session(f"sqlite:///{out}", spot).run("fragile", [3]).failed == 1
    out.unlink()
    monkeypatch.setitem(defs.FIXED, "fragile", True)
    results = list(MaintenanceService(spot.ledger).retry_failed())
    assert [(r.outcome, r.detail) for r in results] == [
        ("not_replayable", f"its output database {out} does not exist")]
    assert not out.exists()


@pytest.mark.slow
def test_a_submitted_stage_run_is_run_by_a_worker(out_url, workspace):
    engine = create_engine(out_url)
    with hokuro.Spot("stages") as spot:
        run = hokuro.run_stage(spot, "flow", range(12), db=out_url, chunk=5,
                               context={"tag": "w"}, submit=True)
        assert str(run.record.status) == "submitted" and _results(engine) == []
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
        # The worker imports the module that registers the stage; the chunk step itself is
        # hokuro's, made for the ledger the worker serves.
        worker = subprocess.Popen(
            [sys.executable, "-c", "from hokuro.cli import main; main()", "worker", "stages",
             "--import", "stage_defs", "--concurrency", "4"], cwd=workspace, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            run.wait(timeout=60)
        finally:
            worker.terminate()
            said = worker.communicate(timeout=30)[0]
        assert str(run.refresh().status) == "done", said
        assert sum(r["done"] for r in run.results()) == 12
    rows = _results(engine)
    assert sorted(n for _, n, _ in rows) == list(range(12)) and {t for _, _, t in rows} == {"w"}


@pytest.mark.slow
def test_run_in_celery_sends_the_chunks_to_celery_workers(out_url, workspace):
    import socket
    import uuid

    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1.0).close()
    except OSError:
        from conftest import _missing

        _missing("RabbitMQ", "nothing listens on 127.0.0.1:5672 (.ci/run starts it)")
    # A virtual host of this test's own, so no other test's worker takes its messages.
    vhost = f"hokuro-{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True)
    broker = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    env = {**os.environ, "HOKURO_TEST_BROKER": broker,
           "HOKURO_TEST_STAGES_HOME": str(workspace / ".hokuro"),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent),
                                          os.environ.get("PYTHONPATH", "")])}
    os.environ.update({k: env[k] for k in ("HOKURO_TEST_BROKER", "HOKURO_TEST_STAGES_HOME")})
    sys.modules.pop("celery_stages", None)
    import celery_stages

    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_stages", "worker", "-Q",
         "hokuro.stages", "-c", "2", "--pool", "prefork", "--without-gossip",
         "--without-mingle", "--without-heartbeat", "-l", "warning"],
        cwd=workspace, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    engine = create_engine(out_url)
    try:
        session = get_session(db=out_url, spot=celery_stages.spot)
        run = session.run_in_celery(list(range(9)), "flow", celery_chunksize=4,
                                    queue="stages", bridge=celery_stages.bridge,
                                    context={"tag": "celery"})
        assert celery_stages.bridge.sent == 3  # 9 items in chunks of 4, sent at once
        run.wait(timeout=90)
        assert str(run.refresh().status) == "done", [f.error for f in run.failures()]
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        celery_stages.app.close()
        celery_stages.spot.close()
        sys.modules.pop("celery_stages", None)
        subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True)
    rows = _results(engine)
    assert sorted(n for _, n, _ in rows) == list(range(9))
    assert {t for _, _, t in rows} == {"celery"}
