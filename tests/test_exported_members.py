"""The public API is exactly what ``hokuro.__all__`` lists, and every name resolves."""

import hokuro


def test_public_names_are_exactly_the_exported_ones():
    public = {name for name in vars(hokuro) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(hokuro, name)).__name__ == "module"}
    # Resolved on first use: limiters import asyncio; plans and steering results are the
    # run engine's.
    lazy = {"Limiter", "Plan", "Pipe", "Pending", "Reset", "Cancel", "Run", "JobFailed",
            "Stage", "stage", "run_stage"}
    assert (public - modules) | lazy == set(hokuro.__all__) - {"__version__"}


def test_importing_hokuro_leaves_asyncio_and_the_limiters_unloaded():
    import subprocess
    import sys

    probe = ("import sys, hokuro; print(sorted(m for m in ('asyncio', 'hokuro.store.limits', "
             "'pickle', 'lzma', 'importlib.resources', 'hokuro.model.plans', "
             "'hokuro.model.steering', 'hokuro.runs', 'hokuro.stages', 'sqlalchemy') "
             "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_every_exported_name_resolves():
    for name in hokuro.__all__:
        assert getattr(hokuro, name) is not None


def test_plans_and_steering_results_are_exported():
    from hokuro.model import plans, steering

    assert hokuro.Plan is plans.Plan and hokuro.Pipe is plans.Pipe
    assert (hokuro.Pending, hokuro.Reset, hokuro.Cancel) == (
        steering.Pending, steering.Reset, steering.Cancel)
