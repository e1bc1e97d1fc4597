"""``hokuro demo`` runs on the embedded default and shows compute, reuse and a failure."""

from click.testing import CliRunner

from hokuro.cli import main


def test_demo_computes_then_answers_from_records(workspace):
    result = CliRunner().invoke(main, ["demo", "--latency", "0.05", "--items", "12"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "first run (computing): 12 calls, 11 ok, 1 failed" in out
    assert "second run (answered from records): 12 calls, 11 ok, 1 failed" in out
    assert "results of both runs identical: True" in out
    assert "ValueError" in out and "400 Bad Request" in out
    assert (workspace / ".hokuro" / "demo.db").is_file()


def test_demo_shows_a_batch_a_pipeline_that_polls_and_resets_and_a_resumed_run(workspace):
    import json

    result = CliRunner().invoke(main, ["demo", "--latency", "0.02", "--json"])
    assert result.exit_code == 0, result.output
    tour = json.loads(result.stdout[result.stdout.index("{"):])
    assert tour["batch"]["reused"] == 0 and tour["batch_again"]["reused"] == 24
    pipeline = tour["pipeline"]
    assert pipeline["done"] == 12 and pipeline["resets"] == 1 and pipeline["polls"] >= 8
    assert pipeline["results"][1] == {"report": "globex-report-2", "rows": 15}
    resume = tour["resume"]
    assert resume["resumed"] and resume["status"] == "done"
    assert 0 < resume["ran_again"] < 20  # the items done before the stop did not run again
    assert "interrupted" in result.stderr and "Run the same code again" in result.stderr
