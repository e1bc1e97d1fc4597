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
