"""The script language's grammar: every fact of SEEDS.md's buelon grammar list, in both of
buelon's syntaxes; the messages of common mistakes, word for word; and a parser that never
crashes on any text (only clean ScriptErrors)."""

from __future__ import annotations

import textwrap
from importlib.resources import files

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hokuro.errors import ScriptError
from hokuro.script import load, parse
from hokuro.script.statements import Call, Loop


def bue(text: str):
    return parse(textwrap.dedent(text).lstrip("\n"), "t.bue")


def refused(text: str) -> str:
    with pytest.raises(ScriptError) as caught:
        bue(text)
    return str(caught.value)


STEP = """
a:
    python
    f
    steps.py
"""


# -- step blocks -----------------------------------------------------------------------------

@pytest.mark.parametrize("alias, language", [
    ("python", "python"), ("python3", "python"), ("py", "python"),
    ("sqlite3", "sqlite3"), ("sqlite", "sqlite3"),
    ("postgres", "postgres"), ("postgresql", "postgres"), ("pg", "postgres")])
def test_every_language_alias_is_a_language(alias, language):
    script = bue(f"""
        s:
            {alias}
            t
            `select 1`
        p = | s
        p()
    """)
    assert script.steps["s"].language == language


def test_a_step_block_reads_language_function_and_file():
    step = bue(STEP + "p = | a\np()\n").steps["a"]
    assert (step.language, step.function.text, step.file, step.code) == \
        ("python", "f", "steps.py", None)
    assert (step.name.line, step.name.column) == (1, 1)


def test_backtick_code_on_one_line_and_on_many_lines_whose_closing_backtick_ends_a_line():
    script = bue("""
        one:
            sqlite3
            t
            `select * from t  -- a # here is code, not a comment`
        many:
            sqlite3
            t
            `
        SELECT *,  # still code
          1 AS x
        FROM t
        `   # a comment after the closing backtick
        p = one | many
        p()
    """)
    assert script.steps["one"].code == "select * from t  -- a # here is code, not a comment"
    assert script.steps["many"].code == "\nSELECT *,  # still code\n  1 AS x\nFROM t\n"
    assert script.steps["many"].code_line == 8


def test_scope_and_priority_lines_may_stand_before_any_of_the_three_lines():
    script = bue("""
        a:
            $ first
            !1
            python
            $ second
            f
            !7
            steps.py
        b:
            python
            !-3
            f
            $ lane.2:x
            steps.py
            !4
        p = a | b
        p()
    """)
    a, b = script.steps["a"].options, script.steps["b"].options
    assert (a.scope, a.priority) == ("second", 7)
    assert (b.scope, b.priority) == ("lane.2:x", 4)


def test_indent_is_four_spaces_or_what_tab_says_and_tabs_work_too():
    two = bue("TAB = '  '\na:\n  python\n  f\n  steps.py\np = | a\np()\n")
    assert two.indent == "  " and two.steps["a"].function.text == "f"
    tabs = bue("a:\n\tpython\n\tf\n\tsteps.py\np = a |\np()\n")
    assert tabs.steps["a"].file == "steps.py"


def test_identifiers_hold_letters_digits_underscores_and_dashes():
    script = bue("""
        get-report_2:
            python
            get_report-v2
            steps.py
        my-pipe_1 = | get-report_2
        out-1 = my-pipe_1()
    """)
    assert "get-report_2" in script.steps and "my-pipe_1" in script.pipes
    assert script.runs[0].result.text == "out-1"


def test_steps_named_for_something_are_steps():
    script = bue("""
        format_rows:
            python
            f
            steps.py
        forward = | format_rows
        for_each = forward()
        for x in forward():
            format_rows(x)
    """)
    assert set(script.steps) == {"format_rows"}
    assert isinstance(script.runs[1], Loop)


def test_comments_blank_lines_and_comment_lines_anywhere_outside_code():
    script = bue("""
        # a comment
        a:   # after the name

            # a comment line inside the block
            python  # the language

            f

            steps.py   # the file
        p = | a   # a pipe
        for x in p():

            # a comment line in the body
            p(x)  # a call

        # the end""")
    assert script.steps["a"].file == "steps.py"
    assert len(script.runs[0].body) == 1


# -- pipes, calls, loops -----------------------------------------------------------------------

def test_pipes_with_a_leading_or_trailing_bar_and_multi_line_parentheses():
    script = bue(STEP + """
        b:
            python
            g
            steps.py
        lead = | a
        trail = a |
        chain = a | b | a
        paren = (
            a
            | b
                | a
        )
        paren_bars = (| a |
        )
        lead()
    """.replace("\n        ", "\n"))
    pipes = {name: [s.text for s in p.steps] for name, p in script.pipes.items()}
    assert pipes == {"lead": ["a"], "trail": ["a"], "chain": ["a", "b", "a"],
                     "paren": ["a", "b", "a"], "paren_bars": ["a"]}


def test_calls_assignments_and_joins_with_several_arguments():
    script = bue(STEP + "p = | a\np()\nv = p()\nw = p(v)\np(v, w)\n")
    calls = script.runs
    assert [(c.target.text, [a.text for a in c.arguments], c.result and c.result.text)
            for c in calls] == [("p", [], None), ("p", [], "v"), ("p", ["v"], "w"),
                                ("p", ["v", "w"], None)]


def test_loops_with_bodies_of_several_statements():
    script = bue(STEP + "p = | a\nfor x in p():\n    v = p(x)\n    p(v)\n    p(v, x)\np()\n")
    loop = script.runs[0]
    assert isinstance(loop, Loop) and loop.variable.text == "x"
    assert [c.target.text for c in loop.body] == ["p", "p", "p"]
    assert isinstance(script.runs[1], Call)


def test_top_level_scope_and_priority_apply_to_the_steps_after_them():
    script = bue("""
        first:
            python
            f
            steps.py
        $ production-small
        !3
        second:
            python
            f
            steps.py
        $ heavy
        third:
            python
            !8
            f
            steps.py
        p = first | second | third
        p()
    """)
    options = {n: (s.options.scope, s.options.priority) for n, s in script.steps.items()}
    assert options == {"first": (None, None), "second": ("production-small", 3),
                       "third": ("heavy", 8)}


# -- the later syntax ----------------------------------------------------------------------------

def test_later_syntax_options_at_the_top_and_in_blocks():
    script = bue("""
        !scope production
        !priority 5
        !timeout 20 * 60
        !retries 2
        a:
            !scope slow
            python
            !priority -2
            f
            !timeout (1h + 30min) / 2
            !retries 0
            !poll 0.5s
            steps.py
        b:
            python
            f
            steps.py
        p = a | b
        p()
    """)
    a, b = script.steps["a"].options, script.steps["b"].options
    assert (a.scope, a.priority, a.timeout, a.retries, a.poll) == ("slow", -2, 2700.0, 0, 0.5)
    assert (b.scope, b.priority, b.timeout, b.retries, b.poll) == ("production", 5, 1200.0, 2,
                                                                   None)


def test_timeout_zero_means_no_timeout_as_in_buelon():
    assert bue("!timeout 0\n" + STEP + "p = | a\np()\n").steps["a"].options.timeout is None


def test_import_statements_define_steps_with_aliases_and_options():
    script = bue("""
        !scope base
        import python (accounts, request_report as request !scope slow !priority 3,
            get_status as status) steps.py
        import sqlite3 (
            t as query !retries 2
        ) `select * from t`
        p = accounts | request | status | query
        p()
    """)
    steps = script.steps
    assert [(n, s.function.text, s.file, s.options.scope, s.options.priority)
            for n, s in steps.items() if s.language == "python"] == [
        ("accounts", "accounts", "steps.py", "base", None),
        ("request", "request_report", "steps.py", "slow", 3),
        ("status", "get_status", "steps.py", "base", None)]
    assert (steps["query"].code, steps["query"].options.retries) == ("select * from t", 2)


# -- mistakes, word for word ---------------------------------------------------------------------

def test_a_missing_language_line_says_which_languages_there_are():
    assert refused("a:\n    accounts\n    example.py\n") == (
        "t.bue:2:5: unknown language 'accounts': a step needs a language line: python, "
        "sqlite3 or postgres\n"
        "        accounts\n"
        "        ^")


def test_a_misspelt_language():
    assert refused("a:\n    pyhton\n    f\n    x.py\n").startswith(
        "t.bue:2:5: unknown language 'pyhton': a step needs a language line: python, "
        "sqlite3 or postgres")


def test_an_empty_step_block():
    assert refused("a:\np()\n") == (
        "t.bue:2:1: a step needs a language line: python, sqlite3 or postgres (indented "
        "under the step's name)\n    p()\n    ^")


def test_a_missing_function_or_table_line():
    assert refused("a:\n    python\n    x.py\n").splitlines()[0] == (
        "t.bue:3:6: a step's second line is its function (python) or table (sql) name, and "
        "'x.py' is not a name (letters, digits, '_' and '-'); is the name line missing?")
    assert refused("a:\n    python\np()\n").splitlines()[0] == (
        "t.bue:3:1: a step needs its function (python) or table (sql) name on the line "
        "after the language")


def test_a_missing_source_line():
    assert refused("a:\n    python\n    f\np()\n").splitlines()[0] == (
        "t.bue:4:1: a step needs a file path or code between backticks on the line after "
        "its function or table name")


def test_code_whose_backtick_is_never_closed():
    assert refused("a:\n    sqlite3\n    t\n    `select *\nfrom t\n") == (
        "t.bue:4:5: code between backticks is never closed: end it with a ` at the end of a "
        "line\n        `select *\n        ^")


def test_text_after_a_closing_backtick():
    assert refused("a:\n    sqlite3\n    t\n    `select 1` x\n").splitlines()[0] == \
        "t.bue:4:16: expected the end of the line, not 'x'"


def test_a_nested_call():
    assert refused("p = | a\nq(p())\n") == (
        "t.bue:2:4: nested calls are not allowed: assign the inner call first (v = p()), "
        "then pass the variable (q(v))\n    q(p())\n       ^")


def test_a_one_step_pipe_without_a_bar():
    assert refused("x = accounts\n") == (
        "t.bue:1:13: a one-step pipe needs a bar: write '| accounts' or 'accounts |'\n"
        "    x = accounts\n                ^")


def test_a_loop_over_a_call_with_an_argument():
    assert refused("for x in p(v):\n    q(x)\n").splitlines()[0] == (
        "t.bue:1:12: the source of a loop takes no argument: write for x in p(): (a loop's "
        "source is a call of a pipe with nothing between the parentheses)")


def test_a_loop_without_a_body_and_a_for_line_without_a_colon():
    assert refused("for x in p():\nq(x)\n").splitlines()[0] == \
        "t.bue:2:1: a loop needs a body: indented calls under the for line"
    assert refused("for x in p()\n    q(x)\n").splitlines()[0] == \
        "t.bue:1:13: expected ':', not the end of the line"


def test_an_indented_line_outside_any_block():
    assert refused("p()\n    q()\n").splitlines()[0] == (
        "t.bue:2:1: unexpected indentation: only the lines of a step block, of a loop body "
        "and inside parentheses are indented")


def test_a_name_alone_on_a_line():
    assert refused("p\n").splitlines()[0] == (
        "t.bue:1:2: expected ':' (a step block), '=' (a pipe or an assignment) or '(' (a "
        "call) after the name, not the end of the line")


def test_a_step_defined_twice_and_a_name_for_a_step_and_a_pipe():
    assert refused(STEP + STEP).splitlines()[0] == (
        "t.bue:6:1: step 'a' is defined twice (first at line 1); give each a name of its own")
    assert refused(STEP + "a = | a\n").splitlines()[0] == (
        "t.bue:5:1: 'a' names both a step and a pipe (first at line 1); give each a name of "
        "its own")


def test_reserved_words_cannot_name_steps():
    assert refused("in:\n    python\n    f\n    x.py\n").splitlines()[0] == (
        "t.bue:1:1: 'in' is a reserved word of the script language; it cannot name a step, "
        "a pipe or a variable")


def test_bad_option_values():
    assert refused("$\n").splitlines()[0] == \
        "t.bue:1:1: a '$' line needs a scope name after the $, such as '$ production-small'"
    assert refused("!timeout 5/0\n").splitlines()[0] == \
        "t.bue:1:12: division by zero in a duration"
    assert refused("!timeout 1 - 5\n").splitlines()[0] == \
        "t.bue:1:10: !timeout must come to a finite number of seconds >= 0, not -4"
    assert refused("!priority 99999999999\n").splitlines()[0] == (
        "t.bue:1:11: this line: a priority is a whole number from -2147483648 to 2147483647, "
        "not 99999999999")
    assert refused("!scope a,b\n").splitlines()[0] == \
        "t.bue:1:9: expected the end of the line, not ','"


# -- what compiling checks -------------------------------------------------------------------------

STEPS_PY = """
def f(*args):
    return list(args)

def one(x):
    return x

def none():
    return [1, 2]
"""


def compiled(tmp_path, text: str):
    (tmp_path / "steps.py").write_text(STEPS_PY)
    path = tmp_path / "t.bue"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return load(path)


def compile_refused(tmp_path, text: str) -> str:
    with pytest.raises(ScriptError) as caught:
        compiled(tmp_path, text)
    return str(caught.value).replace(str(tmp_path) + "/", "")


PY_STEPS = """
a:
    python
    f
    steps.py
b:
    python
    one
    steps.py
"""


def test_unknown_steps_are_caught_with_a_suggestion(tmp_path):
    assert compile_refused(tmp_path, PY_STEPS + "p = a | bb\np()\n") == (
        "t.bue:9:9: unknown step 'bb' (did you mean 'b'?): define it as a step block (bb:) "
        "or a pipe (bb = a | b)\n    p = a | bb\n            ^")
    assert compile_refused(tmp_path, PY_STEPS + "q()\n").splitlines()[0] == (
        "t.bue:9:1: unknown step or pipe 'q': define it as a step block (q:) or a pipe "
        "(q = a | b)")


def test_variables_used_before_assignment_or_outside_their_loop(tmp_path):
    assert compile_refused(tmp_path, PY_STEPS + "b(v)\nv = a()\n").splitlines()[0] == (
        "t.bue:9:3: 'v' is used before it is assigned: assign it first (v = p()), or check "
        "its spelling")
    assert compile_refused(tmp_path, PY_STEPS + "v = a()\nfor x in a():\n    a(x, v)\n"
                           ).splitlines()[0] == (
        "t.bue:11:10: 'v' is assigned outside the loop; the body of a loop can use only its "
        "element (x) and the variables assigned inside it")
    assert compile_refused(tmp_path, PY_STEPS + "b(x)\nfor x in a():\n    b(x)\n"
                           ).splitlines()[0].startswith("t.bue:9:3: 'x' is used before")


def test_a_step_given_more_inputs_than_its_function_takes(tmp_path):
    assert compile_refused(tmp_path, PY_STEPS + "v = a()\nw = a()\nb(v, w)\n"
                           ).splitlines()[0] == (
        "t.bue:11:1: b (one(x)) cannot take 2 input(s); a step receives one argument per "
        "parent, in order")


def test_a_missing_function_or_file(tmp_path):
    assert compile_refused(tmp_path, "a:\n    python\n    nope\n    steps.py\na()\n"
                           ).splitlines()[0] == \
        "t.bue:3:5: steps.py has no function named 'nope' (step a)"
    assert compile_refused(tmp_path, "a:\n    python\n    f\n    gone.py\na()\n"
                           ).splitlines()[0].startswith("t.bue:4:5: no file gone.py next to")


def test_a_loop_body_that_never_uses_its_element(tmp_path):
    assert compile_refused(tmp_path, PY_STEPS + "for x in a():\n    a()\n").splitlines()[0] \
        == "t.bue:9:5: the body of the loop never uses 'x'; pass it to a pipe: a(x)".replace(
            "a(x)", "q(x)")


def test_a_script_that_runs_nothing(tmp_path):
    assert compile_refused(tmp_path, PY_STEPS).endswith(
        "the script runs nothing: call a pipe (p()) or loop over one (for x in p(): q(x)) "
        "after defining its steps")


def test_the_readme_example_compiles_to_the_plan_a_python_user_would_build(tmp_path):
    for name in ("example.bue", "example.py"):
        (tmp_path / name).write_text(files("hokuro.script").joinpath("example", name)
                                     .read_text())
    script = load(tmp_path / "example.bue")
    nodes = script.plan.describe()["nodes"]
    assert [n["id"] for n in nodes] == ["0.accounts", "1.each"]
    assert [n["id"] for n in nodes[1]["nodes"]] == [
        "2.request", "3.status", "4.download", "5.manipulate_data", "6.py_transform",
        "7.upload"]
    assert nodes[1]["nodes"][0]["parents"] == ["input"]
    assert script.steps["download"].options.priority == 9
    assert script.steps["status"].options.scope == "testing-small"
    assert script.steps["upload"].options.scope == "production-small"


# -- the parser never crashes --------------------------------------------------------------------

_PIECES = st.sampled_from([
    "a", "b1", "for", "in", "import", "as", "TAB", "python", "sqlite3", "pg", ":", "=", "|",
    "(", ")", ",", "`", "#", "$", "!", "!9", "!scope", "!timeout", "1h", "*", "/", "0",
    "'  '", "\n", "    ", "\t", " ", "x.py", "-", "\r\n", "é", "\x00", "\\", '"'])


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PIECES, max_size=40).map("".join) | st.text(max_size=60))
def test_the_parser_only_ever_raises_script_errors(text):
    try:
        parse(text, "fuzz.bue")
    except ScriptError as exc:
        assert str(exc).startswith("fuzz.bue")


_EXAMPLE = files("hokuro.script").joinpath("example", "example.bue").read_text()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(_EXAMPLE)), st.integers(0, 12), _PIECES),
                min_size=1, max_size=3))
def test_near_valid_scripts_only_ever_raise_script_errors(edits):
    """The example with a few characters cut out or pieces put in: the mistakes people
    make, which reach deeper into the grammar than random text does."""
    text = _EXAMPLE
    for at, cut, piece in edits:
        at = min(at, len(text))
        text = text[:at] + piece + text[at + cut:]
    try:
        parse(text, "near.bue")
    except ScriptError as exc:
        assert str(exc).startswith("near.bue")
