"""@spot.mark: keys from bound arguments, reuse of successes, failures, hooks, options."""

from __future__ import annotations

import asyncio
import logging
import warnings
from dataclasses import dataclass

import pytest

import hokuro
from hokuro import KeyGen
from hokuro.engine import marking


@pytest.fixture
def spot(make_spot):
    return make_spot("t")


def counting(spot, **options):
    calls = []

    @spot.mark(**options)
    def add(a, b=2):
        calls.append((a, b))
        return a + b

    return add, calls


def test_spot_keeps_its_records_where_it_is_told(make_spot, workspace):
    spot = make_spot("books")
    if make_spot.shared:
        db, blobs = make_spot.urls("books")
        assert spot.ledger.kind == "postgresql" and spot.ledger.describe() == db
        assert spot.blobs.kind == "s3" and spot.blobs.describe() == blobs
        # Nothing of the records is kept on this machine.
        assert not (workspace / ".hokuro" / "books.db").exists()
        assert not (workspace / ".hokuro" / "blobs").exists()
    else:
        # The embedded default: under the working directory.
        assert (workspace / ".hokuro" / "books.db").is_file()
        assert (workspace / ".hokuro" / "blobs" / "books").is_dir()
        assert spot.ledger.describe() == str(workspace / ".hokuro" / "books.db")


def test_workspace_db_and_blobs_override_the_default(make_spot, tmp_path, workspace):
    if make_spot.shared:
        db, blobs = make_spot.urls("y")
        spot = make_spot("y", db=db, storage=blobs, workspace=tmp_path / "ws")
        assert spot.blobs.describe() == blobs  # storage= is the alias of blobs=
        assert not (tmp_path / "ws").exists()  # nothing local until a task asks for files
        assert spot.task_dir("ab" * 32).is_relative_to(tmp_path / "ws")
    else:
        spot = make_spot("x", workspace=tmp_path / "ws")
        assert (tmp_path / "ws" / "x.db").is_file()
        assert spot.blobs.describe() == str(tmp_path / "ws" / "blobs" / "x")
        make_spot("y", db=tmp_path / "a.db", storage=tmp_path / "b")
        assert (tmp_path / "a.db").is_file() and (tmp_path / "b").is_dir()
    assert not (workspace / ".hokuro").exists()


@pytest.mark.parametrize("name", ["", "../x", ".hidden", "a/b", "x" * 200, 3])
def test_bad_spot_names_are_refused(make_spot, name):
    with pytest.raises(hokuro.ConfigurationError):
        make_spot(name)


def test_identical_calls_by_position_keyword_or_default_are_one_task(spot):
    add, calls = counting(spot)
    assert add(1, 2) == 3
    assert add(1, b=2) == 3
    assert add(1) == 3
    assert add(a=1, b=2) == 3
    assert calls == [(1, 2)]
    assert add(1, 3) == 4
    assert calls == [(1, 2), (1, 3)]


def test_results_keep_their_types(spot):
    @spot.mark
    def make():
        return {"t": (1, 2), "s": {1, 2}, (1, "k"): b"v"}

    first = make()
    second = make()
    assert second == first
    assert type(second["t"]) is tuple and type(second["s"]) is set


def test_mark_keeps_function_metadata(spot):
    @spot.mark(version="1")
    def documented(x):
        """Doc text."""
        return x

    assert documented.__name__ == "documented"
    assert documented.__doc__ == "Doc text."
    assert documented.__wrapped__(5) == 5


def test_unknown_option_is_a_type_error(spot):
    with pytest.raises(TypeError, match="unknown mark option"):
        spot.mark(verison="1")


def test_generators_are_refused(spot):
    with pytest.raises(TypeError, match="generator"):
        @spot.mark
        def gen():
            yield 1

    with pytest.raises(TypeError, match="generator"):
        @spot.mark
        async def agen():
            yield 1


def test_version_and_name_separate_tasks(spot):
    add_v1, calls_v1 = counting(spot, version="1")
    add_v2, calls_v2 = counting(spot, version="2")
    add_v1(1)
    add_v2(1)
    assert calls_v1 == [(1, 2)] and calls_v2 == [(1, 2)]
    same_name_a, calls_a = counting(spot, name="shared")
    same_name_b, calls_b = counting(spot, name="shared")
    same_name_a(5)
    assert same_name_b(5) == 7 and calls_a == [(5, 2)] and calls_b == []


def test_ignore_and_key_options(spot):
    calls = []

    @spot.mark(ignore=["verbose"])
    def work(x, verbose=False):
        calls.append(x)
        return x

    work(1, verbose=True)
    work(1, verbose=False)
    assert calls == [1]
    with pytest.raises(hokuro.ConfigurationError):
        spot.mark(ignore=["nope"])(lambda x: x)

    seen = []

    @spot.mark(input_key_fn=lambda text, client: text.lower())
    def ask(text, client):
        seen.append(text)
        return text.upper()

    assert ask("Hi", object()) == "HI"
    assert ask("hi", object()) == "HI"
    assert seen == ["Hi"]


def test_key_policy_from_keygen(spot, tmp_path):
    path = tmp_path / "input.txt"
    path.write_text("one")
    runs = []

    @spot.mark(key=KeyGen.file_content("path"))
    def size(path):
        runs.append(path)
        return len(open(path).read())

    assert size(str(path)) == 3
    assert size(str(path)) == 3
    path.write_text("three")
    assert size(str(path)) == 5
    assert len(runs) == 2


def test_unkeyable_argument_names_it_and_the_fix(spot):
    @spot.mark
    def use(client):
        return 1

    with pytest.raises(hokuro.UnkeyableArgument) as info:
        use(object())
    assert "client" in str(info.value) and "ignore=" in str(info.value)


def test_an_unkeyable_argument_to_an_async_mark_raises_when_awaited(spot):
    calls = []

    @spot.mark
    async def use(client):
        calls.append(client)
        return 1

    async def main():
        # Making the coroutines raises nothing; each error comes out of its own await.
        return await asyncio.gather(use(object()), use(1), use(1, 2), return_exceptions=True)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "coroutine ... was never awaited"
        unkeyable, done, too_many = asyncio.run(main())
    assert isinstance(unkeyable, hokuro.UnkeyableArgument) and "client" in str(unkeyable)
    assert done == 1 and calls == [1]
    assert isinstance(too_many, TypeError)


def test_marking_a_function_of_main_warns_once_with_the_fix(spot, monkeypatch):
    monkeypatch.setattr(marking, "_WARNED_MAIN", set())
    script = {"__name__": "__main__"}
    exec("def step(x):\n    return x\n", script)  # as `python script.py` defines it
    with pytest.warns(RuntimeWarning) as caught:
        spot.mark(script["step"])
        spot.mark(version="2")(script["step"])
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "step" in message and "__main__" in message and "hokuro retry" in message
    assert "name='step'" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spot.mark(name="step")(script["step"])  # named: its keys no longer depend on where

        @spot.mark
        def of_a_module(x):  # __module__ is this test module's name
            return x


def test_failure_is_recorded_reraised_and_not_cached(spot):
    calls = []

    @spot.mark
    def flaky(x):
        calls.append(x)
        if len(calls) == 1:
            raise ValueError("boom")
        return x * 10

    with pytest.raises(ValueError, match="boom"):
        flaky(1)
    task = flaky.task(1)
    assert task.status == "failed"
    assert task.error.type == "ValueError"
    assert "boom" in task.error.message
    assert "Traceback" in task.error.traceback and "flaky" in task.error.traceback
    assert task.attempts == 1
    assert flaky(1) == 10
    assert flaky.task(1).status == "done"
    assert flaky.task(1).attempts == 2


def test_cache_errors_reuses_the_failure(spot):
    calls = []

    @spot.mark(cache_errors=True)
    def bad(x):
        calls.append(x)
        raise KeyError(x)

    with pytest.raises(KeyError):
        bad(1)
    with pytest.raises(hokuro.TaskFailed) as info:
        bad(1)
    assert info.value.error_type == "KeyError"
    assert calls == [1]


def test_hooks_run_and_a_raising_hook_never_breaks_the_call(spot, caplog):
    events = []

    def broken(event):
        raise RuntimeError("hook bug")

    @spot.mark(on_miss=lambda e: events.append(("miss", e.key)),
               on_hit=lambda e: events.append(("hit", e.value)),
               pre_execute=broken,
               on_error=lambda e: events.append(("error", type(e.error).__name__)))
    def f(x):
        if x < 0:
            raise ValueError
        return x

    with caplog.at_level(logging.ERROR, logger="hokuro"):
        assert f(1) == 1
    assert "hook bug" in caplog.text
    assert f(1) == 1
    with pytest.raises(ValueError):
        f(-1)
    assert [e[0] for e in events] == ["miss", "hit", "miss", "error"]
    assert events[1] == ("hit", 1)


def test_forget_removes_the_record(spot):
    add, calls = counting(spot)
    add(1)
    assert add.forget(1) is True
    assert add.forget(1) is False
    add(1)
    assert spot.forget(add, 1) is True
    add(1)
    assert len(calls) == 3


def test_recompute_runs_again_and_replaces(spot):
    add, calls = counting(spot)
    add(1)
    add.recompute(1)
    assert len(calls) == 2
    assert add.task(1).attempts == 2


def test_cached_run_yields_one_or_many_wrappers(spot):
    def double(x):
        return 2 * x

    def triple(x):
        return 3 * x

    with spot.cached_run(double) as d:
        assert d(2) == 4
        assert isinstance(d, hokuro.MarkedFunction)
    with spot.cached_run(double, triple, version="x") as (d, t):
        assert (d(2), t(2)) == (4, 6)
    assert double(2) == 4  # the original is untouched


def test_retention_makes_old_results_misses(make_spot):
    now = [1000.0]
    spot = make_spot("r", clock=lambda: now[0])
    add, calls = counting(spot, retention="1h")
    add(1)
    now[0] += 3599
    add(1)
    assert len(calls) == 1
    now[0] += 2
    assert add.task(1).status == "expired"
    assert spot.status(add, 1) == "expired"
    add(1)
    assert len(calls) == 2


@pytest.mark.parametrize("value", ["10 parsecs", -1, "abc", True])
def test_bad_retention_is_refused_clearly(spot, value):
    with pytest.raises(hokuro.ConfigurationError):
        spot.mark(retention=value)


def test_async_functions_are_marked_too(spot):
    calls = []

    @spot.mark
    async def fetch(x):
        calls.append(x)
        await asyncio.sleep(0)
        return {"x": x}

    async def main():
        return [await fetch(1), await fetch(1), await fetch(2)]

    assert asyncio.run(main()) == [{"x": 1}, {"x": 1}, {"x": 2}]
    assert calls == [1, 2]
    assert asyncio.iscoroutinefunction(fetch)  # frameworks still see a coroutine function


def test_unencodable_result_fails_clearly_and_is_recorded(spot):
    @spot.mark
    def lock():
        import threading

        return threading.Lock()

    with pytest.raises(hokuro.SerializationError) as info:
        lock()
    assert "register_type" in str(info.value) or "pickle" in str(info.value)
    assert lock.task().status == "failed"
    assert lock.task().error.type == "SerializationError"


def test_register_type_as_in_the_seed(spot):
    class MyModel:
        def __init__(self, name):
            self.name = name

    spot.register_type(type_=MyModel, code=10, encoder=lambda obj: obj.name.encode("utf-8"),
                       decoder=lambda data: MyModel(data.decode("utf-8")))
    runs = []

    @spot.mark
    def build(name):
        runs.append(name)
        return MyModel(name)

    assert build("a").name == "a"
    again = build("a")
    assert isinstance(again, MyModel) and again.name == "a" and runs == ["a"]


def test_register_decorator_on_a_dataclass(spot):
    @spot.register(11)
    @dataclass
    class Point:
        x: int
        y: int

    @spot.mark
    def origin():
        return [Point(0, 0), Point(1, 2)]

    assert origin() == origin() == [Point(0, 0), Point(1, 2)]


class Opaque:
    """Not known to msgpack: only pickle can keep it."""

    def __eq__(self, other):
        return type(other) is type(self)


def test_pickle_is_used_only_where_asked(spot):
    runs = []

    @spot.mark(codec="pickle", name="opaque")
    def make():
        runs.append(1)
        return Opaque()

    make()
    make()
    assert runs == [1]
    assert make.task().record.codec == "pickle"

    @spot.mark(name="opaque")
    def make_msgpack():
        runs.append(2)
        return "plain"

    # Same key, but this mark did not choose pickle: it must not unpickle the record.
    with pytest.warns(RuntimeWarning, match="pickle"):
        assert make_msgpack() == "plain"
    assert runs == [1, 2]


def test_methods_can_be_marked_with_self_ignored(spot):
    class Client:
        def __init__(self):
            self.calls = 0

        @spot.mark(ignore=["self"])
        def get(self, x):
            self.calls += 1
            return x

    client = Client()
    assert client.get(3) == 3 and client.get(3) == 3
    assert client.calls == 1


def test_a_keyer_keys_calls_as_key_of_does(spot):
    @spot.mark(version="3")
    def plain(a, b=2, c=None):
        return a

    @spot.mark(ignore=["verbose"])
    def quiet(x, verbose=False):
        return x

    @spot.mark(key=KeyGen.ignore("client"))
    def fetch(url, client=None):
        return url

    @spot.mark
    def with_ctx(x, ctx):
        return x

    @spot.mark
    def star(*parts):
        return parts

    cases = [(plain, [(1,), (1, 5), (1, 5, [1, "x"])]), (quiet, [(1,), (1, True)]),
             (fetch, [("u",), ("u", object())]), (with_ctx, [(1,)]), (star, [(), (1, 2, 3)])]
    for fn, calls in cases:
        keyer = fn.keyer()
        for args in calls:
            assert keyer(args) == fn.key_of(*args), (fn.name, args)
    assert quiet.keyer()((1, True)) == quiet.keyer()((1, False))
