"""Pipes and plans: building, checking before anything runs, stable job ids, descriptions."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import hokuro
from hokuro import Pipe, Plan
from hokuro.errors import PlanError
from hokuro.model.codec import Codec
from hokuro.model.jobs import JobSpec
from hokuro.model.plans import INPUT, Value


@pytest.fixture
def spot(workspace):
    with hokuro.Spot("plans") as spot:
        yield spot


@pytest.fixture
def s(spot):
    """Steps of a report pipeline, named as they would be in a module."""

    @spot.mark(name="reports.request")
    def request(account): ...

    @spot.mark(name="reports.status")
    def status(report_id): ...

    @spot.mark(name="reports.download")
    def download(report): ...

    @spot.mark(name="reports.merge")
    def merge(a, b): ...

    @spot.mark(name="reports.accounts")
    def accounts(): ...

    @spot.mark(name="reports.parse", scope="cpu", priority=5)
    async def parse(file, ctx): ...

    return SimpleNamespace(request=request, status=status, download=download, merge=merge,
                           accounts=accounts, parse=parse)


def plain(x):
    return x


def job(job_id, node, step, parents=(), input=None, scope="default", priority=0):
    return JobSpec(job_id=job_id, node=node, step=step, parents=parents, input=input,
                   scope=scope, priority=priority)


# -- pipes ------------------------------------------------------------------------------------

def test_marked_functions_chain_into_a_pipe_with_bars(s):
    api = s.request | s.status | s.download
    assert isinstance(api, Pipe) and isinstance(api, hokuro.Pipe)
    assert len(api) == 3 and list(api) == [s.request, s.status, s.download]
    assert api.name == "reports.request | reports.status | reports.download"
    assert (s.request | s.status) | s.download == s.request | (s.status | s.download) == api
    assert (s.request | s.status) | (s.download | s.merge) == Pipe(
        [s.request, s.status, s.download, s.merge])


@pytest.mark.parametrize("build", [
    lambda s: plain | s.request,
    lambda s: s.request | plain,
    lambda s: (s.request | s.status) | plain,
    lambda s: plain | (s.request | s.status),
])
def test_a_plain_function_in_a_pipe_is_refused_saying_to_mark_it(s, build):
    with pytest.raises(PlanError, match=r"plain is not a marked function; decorate it with "
                                        r"@spot.mark"):
        build(s)


def test_a_pipe_of_nothing_or_of_data_is_refused(s):
    with pytest.raises(PlanError, match="at least one step"):
        Pipe([])
    with pytest.raises(PlanError, match="3 is not a step"):
        s.request | 3


# -- plans and their jobs ---------------------------------------------------------------------

def test_a_pipe_over_inputs_makes_a_chain_of_jobs_per_item(s):
    plan = Plan.for_pipe(s.request | s.status | s.download)
    assert plan.name == "reports.request | reports.status | reports.download"
    assert plan.root_jobs(4, b"acct") == [
        job("4/0.request", "0.request", "reports.request", input=b"acct"),
        job("4/1.status", "1.status", "reports.status", ("4/0.request",)),
        job("4/2.download", "2.download", "reports.download", ("4/1.status",)),
    ]


def test_map_makes_one_job_per_item_holding_the_item(s):
    plan = Plan.for_map(s.request)
    assert plan.name == "reports.request"
    assert plan.root_jobs(0, b"a") == [job("0/0.request", "0.request", "reports.request",
                                           input=b"a")]
    assert Plan.for_map(s.request | s.status).describe() == Plan.for_pipe(
        s.request | s.status).describe()


def test_a_root_maker_makes_the_jobs_root_jobs_makes(s):
    plan = Plan("reports")
    x = plan.input()
    report = plan.call(s.status, plan.call(s.request, x), scope="slow", priority=3)
    plan.call(s.merge, report, x)
    plan.each(s.accounts, s.parse)
    for scope, priority in (("default", 0), ("api", 7)):
        make = plan.root_maker(scope=scope, priority=priority)
        for index in (0, 7, 12345):
            assert make(index, b"i") == plan.root_jobs(index, b"i", scope=scope,
                                                       priority=priority)
    make = plan.root_maker()
    for bad in (-1, True, "3"):
        with pytest.raises(PlanError):
            make(bad, b"i")
    once = Plan()
    once.call(s.accounts)
    assert once.root_maker()(None, None) == once.root_jobs(None, None)


def test_a_join_gets_its_parents_results_in_argument_order(s):
    plan = Plan("join")
    x = plan.input()
    report = plan.call(s.status, plan.call(s.request, x))
    joined = plan.call(s.merge, report, x)
    node = plan.node(joined.node)
    assert node.parents == ("1.status", INPUT) and node.step is s.merge
    assert plan.root_jobs(2, b"i")[-1] == job("2/2.merge", "2.merge", "reports.merge",
                                               ("2/1.status",), input=b"i")
    assert node.arguments("the item", ["the status"]) == ["the status", "the item"]
    other = plan.node(plan.call(s.merge, plan.call(s.accounts), report).node)
    assert other.parents == ("3.accounts", "1.status")
    assert other.arguments(None, ["A", "S"]) == ["A", "S"]


def test_a_parent_given_twice_is_waited_for_once(s):
    plan = Plan()
    r = plan.call(s.accounts)
    node = plan.node(plan.call(s.merge, r, r).node)
    assert plan.root_jobs(None, None)[-1].parents == ("0.accounts",)
    assert node.arguments(None, ["v"]) == ["v", "v"]


def test_job_ids_are_the_same_every_time_the_plan_is_built(s):
    def build():
        plan = Plan("reports")
        x = plan.input()
        plan.call(s.merge, plan.call(s.request | s.status, x), x)
        plan.each(s.accounts, s.parse)
        return plan

    first, second = build(), build()
    assert first.root_jobs(9, b"x") == second.root_jobs(9, b"x")
    assert first.body_jobs("4.each", "9/3.accounts", [b"f"]) == second.body_jobs(
        "4.each", "9/3.accounts", [b"f"])
    assert first.describe() == second.describe()


def test_scope_and_priority_come_from_the_call_then_the_step_then_the_run(s):
    plan = Plan()
    x = plan.input()
    plan.call(s.parse, x)  # the step says cpu / 5
    plan.call(s.parse, x, scope="gpu", priority=-1)
    plan.call(s.request, x)  # neither: the run's defaults
    jobs = plan.root_jobs(0, b"f", scope="slow", priority=2)
    assert [(j.scope, j.priority) for j in jobs] == [("cpu", 5), ("gpu", -1), ("slow", 2)]
    assert [(j.scope, j.priority) for j in plan.root_jobs(0, b"f")][2] == ("default", 0)


def test_a_named_node_keeps_its_job_id_when_the_plan_changes(s):
    plan = Plan()
    plan.call(s.accounts)
    named = plan.call(s.request, plan.input(), id="req")
    assert named.node == "req" and plan.root_jobs(1, b"x")[1].job_id == "1/req"


# -- fan-out ----------------------------------------------------------------------------------

def test_a_fan_out_makes_one_body_per_element_when_its_source_is_done(s):
    plan = Plan("all accounts")
    fan = plan.each(s.accounts, s.request | s.status)
    assert plan.root_jobs(None, None) == [job("0.accounts", "0.accounts", "reports.accounts")]
    assert plan.node("0.accounts").fanouts == [fan.node] == ["1.each"]
    assert plan.node("1.each").source == "0.accounts"
    assert plan.node("1.each").body == ("2.request", "3.status")
    assert plan.body_jobs("1.each", "0.accounts", [b"a", b"b"]) == [
        job("0.accounts/0/2.request", "2.request", "reports.request", input=b"a"),
        job("0.accounts/0/3.status", "3.status", "reports.status", ("0.accounts/0/2.request",)),
        job("0.accounts/1/2.request", "2.request", "reports.request", input=b"b"),
        job("0.accounts/1/3.status", "3.status", "reports.status", ("0.accounts/1/2.request",)),
    ]
    assert plan.body_jobs("1.each", "0.accounts", []) == []


def test_a_body_function_builds_a_sub_plan_on_its_element(s):
    def per_account(sub, account):
        report = sub.call(s.request | s.status, account)
        files = sub.call(s.download, report)
        sub.each(files, s.parse)
        sub.call(s.merge, report, account)

    plan = Plan()
    source = plan.call(s.request, plan.input())
    plan.each(source, per_account)
    jobs = plan.body_jobs("1.each", "7/0.request", [b"acct"])
    assert [(j.job_id, j.parents, j.input) for j in jobs] == [
        ("7/0.request/0/2.request", (), b"acct"),
        ("7/0.request/0/3.status", ("7/0.request/0/2.request",), None),
        ("7/0.request/0/4.download", ("7/0.request/0/3.status",), None),
        ("7/0.request/0/7.merge", ("7/0.request/0/3.status",), b"acct"),
    ]
    nested = plan.body_jobs("5.each", "7/0.request/0/4.download", [b"f1", b"f2"])
    assert [j.job_id for j in nested] == ["7/0.request/0/4.download/0/6.parse",
                                          "7/0.request/0/4.download/1/6.parse"]
    assert {j.scope for j in nested} == {"cpu"}


def test_two_fan_outs_of_one_source_never_share_a_job_id(s):
    plan = Plan()
    source = plan.call(s.accounts)
    plan.each(source, s.request)
    plan.each(source, s.request)
    assert plan.node("0.accounts").fanouts == ["1.each", "3.each"]
    ids = [j.job_id for each in ("1.each", "3.each")
           for j in plan.body_jobs(each, "0.accounts", [b"x", b"y"])]
    assert len(set(ids)) == len(ids) == 4


def test_body_jobs_refuse_a_source_job_of_another_node(s):
    plan = Plan()
    plan.each(s.accounts, s.request)
    with pytest.raises(PlanError, match=r"not a job of 0.accounts"):
        plan.body_jobs("1.each", "0/2.request", [b"x"])
    with pytest.raises(PlanError, match="not a fan-out"):
        plan.body_jobs("0.accounts", "0.accounts", [b"x"])
    with pytest.raises(PlanError, match=r"no node '9.each'"):
        plan.body_jobs("9.each", "0.accounts", [b"x"])


# -- refused before anything runs -------------------------------------------------------------

def test_a_plain_function_as_a_step_is_refused_saying_to_mark_it(s):
    plan = Plan()
    with pytest.raises(PlanError, match="plain is not a marked function"):
        plan.call(plain, plan.input())
    with pytest.raises(PlanError, match="plain is not a marked function"):
        plan.each(plain, s.request)
    with pytest.raises(PlanError, match="plain is not a marked function"):
        Plan.for_map(plain)
    with pytest.raises(PlanError, match="got a Value where a step belongs"):
        plan.call(plan.input(), s.request)


def test_a_constant_parent_is_refused(s):
    with pytest.raises(PlanError, match=r"parents are Values .* not int"):
        Plan().call(s.request, 42)


def test_a_value_of_another_plan_is_refused(s):
    one, two = Plan(), Plan()
    with pytest.raises(PlanError, match="a Value of another plan"):
        two.call(s.status, one.call(s.request, one.input()))


def test_a_body_cannot_use_a_value_of_the_level_above(s):
    plan = Plan()
    outer = plan.call(s.accounts)
    with pytest.raises(PlanError, match="only its element and the values made inside it"):
        plan.each(outer, lambda sub, x: sub.call(s.merge, x, outer))
    assert plan.node("0.accounts").fanouts == []  # the failed fan-out left nothing behind
    assert [n["id"] for n in plan.describe()["nodes"]] == ["0.accounts"]


def test_a_cycle_wired_by_hand_is_refused_before_anything_runs(s):
    plan = Plan("loop")
    first = plan.call(s.request, Value(plan, "1.status"))  # a Value made by hand, ahead
    plan.call(s.status, first)
    with pytest.raises(PlanError, match=r"cycle: 0.request <- 1.status <- 0.request"):
        plan.check()
    with pytest.raises(PlanError, match="cycle"):
        plan.root_jobs(None, None)


def test_a_parent_that_is_no_node_is_refused(s):
    plan = Plan()
    plan.call(s.request, Value(plan, "7.nothing"))
    with pytest.raises(PlanError, match=r"parent '7.nothing' is not a node"):
        plan.check()


def test_a_wrong_number_of_parents_is_refused(s):
    plan = Plan()
    x = plan.input()
    with pytest.raises(PlanError, match=r"reports.merge takes 2 argument\(s\) but is given 1"):
        plan.call(s.merge, x)
    with pytest.raises(PlanError, match=r"reports.accounts takes 0 argument\(s\) but is "
                                        r"given 1"):
        plan.call(s.accounts, x)
    plan.call(s.parse, x)  # its ctx is not an argument the plan gives


@pytest.mark.parametrize("body, message", [
    (lambda s: s.accounts, r"takes 0 argument\(s\) but is given 1"),
    (lambda s: lambda sub: None, r"must take \(sub_plan, x\)"),
    (lambda s: lambda sub, x: None, "added no step"),
    (lambda s: lambda sub, x: sub.call(s.accounts), "never uses its element"),
    (lambda s: 42, "42 is not a step"),
])
def test_a_fan_out_body_that_takes_no_element_is_refused(s, body, message):
    plan = Plan()
    with pytest.raises(PlanError, match=message):
        plan.each(s.accounts, body(s))
    plan.each(s.accounts, s.request)  # the plan is still good to use
    plan.check()


def test_a_fan_out_over_the_input_or_a_fan_out_as_a_parent_is_refused(s):
    plan = Plan()
    with pytest.raises(PlanError, match="not the input"):
        plan.each(plan.input(), s.request)
    fan = plan.each(s.accounts, s.request)
    with pytest.raises(PlanError, match="cannot be a parent"):
        plan.call(s.status, fan)


def test_duplicate_node_ids_are_refused(s):
    plan = Plan()
    plan.call(s.request, plan.input(), id="req")
    with pytest.raises(PlanError, match="'req' is already in this plan"):
        plan.call(s.status, plan.input(), id="req")
    for bad in ("input", "3", "a/b", ""):
        with pytest.raises(PlanError, match="is not a node id"):
            plan.call(s.status, plan.input(), id=bad)
    description = plan.describe()
    description["nodes"].append(dict(description["nodes"][0]))
    with pytest.raises(PlanError, match="'req' appears twice"):
        Plan.from_description(description, lambda name, path: s.request)


def test_two_steps_of_one_name_are_refused(spot, s):
    @spot.mark(name="reports.request")
    def impostor(account): ...

    plan = Plan()
    plan.call(s.request, plan.input())
    plan.call(impostor, plan.input())
    with pytest.raises(PlanError, match=r"two different steps are named 'reports.request'"):
        plan.check()


def test_runs_with_and_without_inputs_must_match_the_plan(s):
    with pytest.raises(PlanError, match="takes an input"):
        Plan.for_map(s.request).root_jobs(None, None)
    without = Plan()
    without.call(s.accounts)
    with pytest.raises(PlanError, match=r"never uses plan.input"):
        without.root_jobs(0, b"x")
    with pytest.raises(PlanError, match="has no step"):
        Plan("empty").check()
    with pytest.raises(PlanError, match="whole number"):
        Plan.for_map(s.request).root_jobs(-1, b"x")


@pytest.mark.parametrize("options, message", [
    ({"scope": "a,b"}, "a scope is a name"),
    ({"scope": ""}, "a scope is a name"),
    ({"priority": "high"}, "a priority is a whole number"),
    ({"priority": 2**40}, "a priority is a whole number"),
])
def test_bad_scopes_and_priorities_at_a_call_are_refused(s, options, message):
    plan = Plan()
    with pytest.raises(PlanError, match=message):
        plan.call(s.request, plan.input(), **options)


# -- description ------------------------------------------------------------------------------

def test_the_description_round_trips_through_the_codec_and_rebuilds_the_plan(s):
    plan = Plan("reports")
    x = plan.input()
    status = plan.call(s.request | s.status, x, scope="api", priority=3)
    plan.call(s.merge, status, x)
    plan.each(status, lambda sub, f: sub.call(s.download | s.parse, f))
    description = plan.describe()
    assert Codec().decode(Codec().encode(description)) == description
    assert description["name"] == "reports" and description["input"] is True
    assert description["nodes"][0] == {
        "id": "0.request", "kind": "call", "step": "reports.request",
        "fn_path": s.request.fn_path, "parents": [INPUT], "scope": "api", "priority": 3}
    assert description["nodes"][3]["kind"] == "each"
    assert [n["id"] for n in description["nodes"][3]["nodes"]] == ["4.download", "5.parse"]

    by_name = {step.name: step for step in vars(s).values()}
    rebuilt = Plan.from_description(description, lambda name, fn_path: by_name[name])
    assert rebuilt.describe() == description
    assert rebuilt.root_jobs(1, b"x") == plan.root_jobs(1, b"x")
    assert rebuilt.body_jobs("3.each", "1/1.status", [b"f"]) == plan.body_jobs(
        "3.each", "1/1.status", [b"f"])
    assert rebuilt.node("5.parse").step is s.parse


def test_a_damaged_description_is_refused(s):
    description = Plan.for_map(s.request).describe()
    with pytest.raises(PlanError, match="damaged"):
        Plan.from_description({**description, "nodes": [{"id": "0.x"}]}, lambda n, p: None)
    with pytest.raises(PlanError, match="newer hokuro"):
        Plan.from_description({**description, "format": 99}, lambda n, p: None)
    with pytest.raises(PlanError, match=r"is not a marked function|is not a step"):
        Plan.from_description(description, lambda name, fn_path: plain)
