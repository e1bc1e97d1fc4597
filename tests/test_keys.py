"""Task keys: golden values, canonical-encoding properties, policies and refusals."""

from __future__ import annotations

import collections
import dataclasses
import enum
import functools
import hashlib
import math
import os
import random
import struct
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hokuro.model.keys
from hokuro.engine.keygen import KeyGen, KeyPolicy
from hokuro.errors import ConfigurationError, UnkeyableArgument
from hokuro.model.canonical import canonical
from hokuro.model.keys import ident_key, stable_name, task_key, task_keyer

# -- types used by the golden table ------------------------------------------------------------
# Their __module__ is pinned, so the golden keys do not depend on how pytest imports this file.

GOLDEN = "hokuro_golden"


def pinned(cls: type) -> type:
    # Set after the class is made: dataclasses and pydantic resolve annotations in the
    # class's real module while they build it.
    cls.__module__ = GOLDEN
    return cls


@pinned
class Color(enum.Enum):
    RED = 1
    GREEN = "green"


@pinned
class Level(enum.IntEnum):
    LOW = 1


@pinned
class Mode(enum.StrEnum):
    FAST = "fast"


@pinned
@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int
    label: str = dataclasses.field(default="", compare=False)


@pinned
@dataclasses.dataclass(frozen=True)
class Pair:
    x: int
    y: int


@pinned
class Model(pydantic.BaseModel):
    name: str
    tags: list[str] = []
    when: date | None = None


@pinned
class OtherModel(pydantic.BaseModel):
    name: str
    tags: list[str] = []
    when: date | None = None


Coord = collections.namedtuple("Coord", "lat lon", module=GOLDEN)


@pinned
class Span(NamedTuple):
    start: int
    end: int


@pinned
class Tag(str):
    """A str subclass: keyed with its class name, never as a plain str."""


@pinned
class Account:
    """A user's own class made keyable through __hokuro_key__."""

    def __init__(self, number: str, session: object = None) -> None:
        self.number = number
        self.session = session  # not part of what the account *is*

    def __hokuro_key__(self) -> str:
        return self.number


def _tokyo() -> ZoneInfo:
    try:
        return ZoneInfo("Asia/Tokyo")
    except ZoneInfoNotFoundError:  # pragma: no cover - a machine without a tz database
        pytest.skip("no tz database on this machine")


# -- golden keys -------------------------------------------------------------------------------
# (id, fn_name, version, bound made lazily, expected key). Computed once with this encoding and
# pasted here: if one of these fails, the encoding changed and every stored key would be lost.
# Do not update the numbers; bump the domain tag ("hokuro-task-v2") instead.
# User-defined functions are absent on purpose: their bytecode differs between Python versions.

GOLDEN_TASKS: list[tuple[str, str, str | None, Callable[[], dict[str, Any]], str]] = [
    ("empty", "mod.f", None, lambda: {}, "004254a18a23dea9cb440fbac195dc08"),
    ("str-int", "mod.f", None, lambda: {"x": "hello", "n": 3},
     "131042a400e60ab3df1355bc0f6beb48"),
    ("version", "mod.f", "v2", lambda: {"x": "hello", "n": 3},
     "596ae3505c244617a2e7f70397d84b76"),
    ("ints", "mod.f", None, lambda: {"small": -7, "big": 2**200, "zero": 0, "neg": -(2**70)},
     "76c890d0c1280ae4c93203089f476b25"),
    ("bool-none", "mod.f", None, lambda: {"t": True, "f": False, "none": None},
     "0291c3c8f07d52fb1dc4636bb0054c5c"),
    ("floats", "mod.f", None,
     lambda: {"a": 1.5, "b": -0.0, "c": 0.0, "inf": math.inf, "nan": math.nan, "one": 1.0},
     "4606e9255fba529c4f2643cdaa8bc1bc"),
    ("complex-ellipsis", "mod.f", None, lambda: {"c": 1 + 2j, "e": ...},
     "64d8078d9324f7aec8647053abee6a86"),
    ("unicode", "mod.f", None, lambda: {"s": "日本語 ✓", "empty": "", "lone": "\ud800"},
     "ccc7a3b1e904073ef3b92a4f768dc898"),
    ("binary", "mod.f", None,
     lambda: {"b": b"\x00\xff", "ba": bytearray(b"ab"), "mv": memoryview(b"xyz")},
     "4c6423f48993ed2a2aa9317116c5401b"),
    ("sequences", "mod.f", None, lambda: {"l": [1, [2, (3, "4")]], "t": (), "lt": ([],)},
     "514eb3ee64befdc763cda6dea834f858"),
    ("dict-keys", "mod.f", None,
     lambda: {"d": {1: "a", "1": "b", (1, 2): None, None: 0, 2.5: [], b"k": {}}},
     "0e5cb9763a21bba0fddb40d13336eebf"),
    ("sets", "mod.f", None,
     lambda: {"s": {"b", "a", "c"}, "fs": frozenset({3, 1, 2}), "e": set(), "ef": frozenset()},
     "10f1862323af9ac972502fd826554236"),
    ("datetimes", "mod.f", None, lambda: {
        "naive": datetime(2024, 3, 9, 12, 30, 5, 123456),
        "fixed": datetime(2024, 3, 9, 12, 30, tzinfo=timezone(timedelta(hours=-5))),
        "utc": datetime(2024, 3, 9, tzinfo=UTC),
        "zone": datetime(2024, 3, 9, 12, 30, tzinfo=_tokyo()),
        "fold": datetime(2024, 11, 3, 1, 30, fold=1),
     }, "c121ee8510be4c3cbfd15fc5f11a6543"),
    ("date-time-delta", "mod.f", None, lambda: {
        "d": date(1999, 12, 31), "t": time(23, 59, 1, 5), "tz": time(8, tzinfo=UTC),
        "td": timedelta(days=-2, seconds=7, microseconds=9),
     }, "6cf91941d4ad6f78a6d6a6e2eced836a"),
    ("decimal-uuid", "mod.f", None, lambda: {
        "d": Decimal("1.10"), "nan": Decimal("NaN"), "u": uuid.UUID(int=0xDEADBEEF),
     }, "7bf9384297b882578c464127664f53bd"),
    ("paths", "mod.f", None, lambda: {
        "posix": PurePosixPath("/data/in.csv"), "win": PureWindowsPath(r"C:\data\in.csv"),
     }, "b967c48fc3d91da7428fcb7d26a34521"),
    ("enums", "mod.f", None,
     lambda: {"c": Color.RED, "g": Color.GREEN, "lvl": Level.LOW, "mode": Mode.FAST},
     "6d907af61df339acb94cf3cd542d102c"),
    ("namedtuples", "mod.f", None, lambda: {"c": Coord(35.6, 139.7), "s": Span(1, 2)},
     "1d1eeb9c0e37786e608182244a0d7e53"),
    ("dataclass", "mod.f", None, lambda: {"p": Point(1, 2, label="ignored"), "q": Pair(1, 2)},
     "b1dda5acebc13da5be443b8fb1c51704"),
    ("pydantic", "mod.f", None,
     lambda: {"m": Model(name="n", tags=["a", "b"], when=date(2020, 1, 2))},
     "39e928299026d56c4db89e433595acd9"),
    ("numpy", "mod.f", None, lambda: {
        "a": np.arange(6, dtype=np.int64).reshape(2, 3),
        "f": np.array([0.5, -1.0], dtype=np.float32),
        "s": np.float64(2.5), "i": np.int32(7),
        "o": np.array(["x", None, 3], dtype=object),
        "big": np.array([1, 2], dtype=">i2"),
     }, "9b7041f28f26bdc2a2454c37b7b1451f"),
    ("callables", "mod.f", None, lambda: {
        "len": len, "upper": str.upper, "int": int, "p": functools.partial(int, base=2),
        "bound": "ab".upper,
     }, "5f267a92286d6c79329d6a5d2501f277"),
    ("subclasses", "mod.f", None, lambda: {
        "od": collections.OrderedDict([("b", 1), ("a", 2)]),
        "counter": collections.Counter("aab"), "tag": Tag("x"),
     }, "64cad0d4f56880ae1af3e84369ccf08e"),
    ("hokuro-key", "mod.f", None, lambda: {"acct": Account("A-1", session=object())},
     "a6a2007fbb0850ccb59f6851f37a3354"),
    ("nested-mix", "pkg.mod.Class.method", "2024-06", lambda: {
        "cfg": {"retries": 3, "urls": ["https://a", "https://b"], "ratio": 0.25,
                "modes": frozenset({Mode.FAST}), "when": date(2024, 6, 1)},
        "items": [{"id": i, "ok": i % 2 == 0} for i in range(3)],
     }, "854d0e579d0815bb8c5a9e8a9891db1e"),
]

GOLDEN_IDENTS: list[tuple[str, str, str | None, str, Any, str]] = [
    ("ident", "coll", None, "item-1", None, "585437e2a6eb456e7e852ad6ce9cead6"),
    ("ident-args", "coll", "v1", "item-1", {"depth": 2}, "f52d315e06dd4d891f23ff3fe4d05430"),
]


@pytest.mark.parametrize(("fn_name", "version", "make", "expected"),
                         [row[1:] for row in GOLDEN_TASKS], ids=[row[0] for row in GOLDEN_TASKS])
def test_golden_task_keys_never_change(fn_name, version, make, expected):
    assert task_key(fn_name, version, make()) == expected


@pytest.mark.parametrize(("fn_name", "version", "ident", "args", "expected"),
                         [row[1:] for row in GOLDEN_IDENTS], ids=[row[0] for row in GOLDEN_IDENTS])
def test_golden_ident_keys_never_change(fn_name, version, ident, args, expected):
    assert ident_key(fn_name, version, ident, args) == expected


def test_task_key_is_blake2b_of_the_canonical_tuple():
    bound = {"x": "hello", "n": 3, "tags": {"b", "a"}}
    material = canonical(("hokuro-task-v1", "mod.f", None, bound))
    assert task_key("mod.f", None, bound) == hashlib.blake2b(material, digest_size=16).hexdigest()
    material = canonical(("hokuro-ident-v1", "coll", "v", "id", {"a": 1}))
    assert ident_key("coll", "v", "id", {"a": 1}) == hashlib.blake2b(
        material, digest_size=16).hexdigest()


def test_keys_are_32_hex_characters():
    key = task_key("mod.f", None, {"x": 1})
    assert len(key) == 32
    int(key, 16)


# -- canonical: equal meaning, equal bytes ------------------------------------------------------

def test_dict_insertion_order_does_not_matter():
    a = {"x": 1, "y": [1, 2], 3: "z"}
    b = {3: "z", "y": [1, 2], "x": 1}
    assert canonical(a) == canonical(b)
    assert task_key("f", None, {"a": 1, "b": 2}) == task_key("f", None, {"b": 2, "a": 1})


def test_set_construction_order_does_not_matter():
    words = [f"w{i}" for i in range(50)]
    shuffled = words[:]
    random.Random(7).shuffle(shuffled)
    assert canonical(set(words)) == canonical(set(shuffled))
    assert canonical(frozenset(words)) == canonical(frozenset(reversed(words)))


def test_dicts_keyed_by_distinct_nans_do_not_depend_on_insertion_order():
    a, b = float("nan"), float("nan")
    assert canonical({a: 1, b: 2}) == canonical({b: 2, a: 1})
    assert canonical({a: 1, b: 2}) != canonical({a: 1, b: 3})


def test_every_nan_encodes_alike():
    other_nan = struct.unpack(">d", b"\xff\xf8\x00\x00\x00\x00\x00\x01")[0]
    assert math.isnan(other_nan)
    assert canonical(math.nan) == canonical(float("nan")) == canonical(-math.nan)
    assert canonical(other_nan) == canonical(math.nan)
    assert canonical([math.nan]) == canonical([float("nan")])
    assert canonical(complex(math.nan, 1)) == canonical(complex(-math.nan, 1))


@pytest.mark.parametrize(("a", "b"), [
    (1, 1.0), (1, True), (1, "1"), (1.0, True), (0, False), (0, None), ("", b""),
    (b"a", "a"), (b"a", bytearray(b"a")), ([1], (1,)), ({1}, frozenset({1})), ([], {}),
    ((), set()), ({"a": 1}, [("a", 1)]), (1, Decimal(1)), (1.5, Decimal("1.5")),
    (datetime(2024, 1, 1), datetime(2024, 1, 1, tzinfo=UTC)),
    (datetime(2024, 1, 1), date(2024, 1, 1)),
    (datetime(2024, 1, 1, 1, 30), datetime(2024, 1, 1, 1, 30, fold=1)),
    (datetime(2024, 1, 1, tzinfo=UTC),
     datetime(2024, 1, 1, 9, tzinfo=timezone(timedelta(hours=9)))),
    ("x", Tag("x")), (1, Level.LOW), ("fast", Mode.FAST), ((1, 2), Span(1, 2)),
    ({"a": 1}, collections.Counter({"a": 1})), ({"a": 1}, collections.OrderedDict(a=1)),
    (collections.OrderedDict([("a", 1), ("b", 2)]), collections.OrderedDict([("b", 2), ("a", 1)])),
    (PurePosixPath("a"), "a"), (PurePosixPath("a"), PureWindowsPath("a")),
    (uuid.UUID(int=1), uuid.UUID(int=1).bytes), (Point(1, 2), Pair(1, 2)), (Pair(1, 2), (1, 2)),
    (Model(name="n"), OtherModel(name="n")), (Model(name="n"), {"name": "n", "tags": [],
                                                                "when": None}),
    (Account("1"), "1"), (len, "builtins.len"), (int, float), (str.upper, "ab".upper),
    ([[1, 2], 3], [1, [2, 3]]), (["ab", "c"], ["a", "bc"]), ({"a": "b"}, {"ab": ""}),
    (..., None), (0.0, -0.0), (1j, 1.0),
])
def test_values_that_differ_by_meaning_or_type_have_different_encodings(a, b):
    assert canonical(a) != canonical(b)
    assert task_key("f", None, {"v": a}) != task_key("f", None, {"v": b})


def test_a_zoned_datetime_is_keyed_by_wall_time_and_zone_name():
    tokyo = _tokyo()
    at = datetime(2030, 7, 1, 9, 0, tzinfo=tokyo)
    assert b"Asia/Tokyo" in canonical(at)
    assert b"+09:00" not in canonical(at)  # the offset is the tz database's, not the value's
    assert canonical(at) != canonical(at.replace(tzinfo=timezone(timedelta(hours=9))))


def test_a_datetime_with_another_tzinfo_is_keyed_by_its_offset_and_name():
    class Fixed(tzinfo):
        def utcoffset(self, dt: datetime | None) -> timedelta:
            return timedelta(hours=2)

        def tzname(self, dt: datetime | None) -> str:
            return "TWO"

        def dst(self, dt: datetime | None) -> timedelta:
            return timedelta(0)

    at = datetime(2024, 1, 1, tzinfo=Fixed())
    assert canonical(at) == canonical(datetime(2024, 1, 1, tzinfo=Fixed()))
    assert canonical(at) != canonical(datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=2))))


def test_a_subclass_overriding_str_is_keyed_by_its_value():
    class Shouty(str):
        def __str__(self) -> str:
            return self.upper()

    assert canonical(Shouty("a")) == canonical(Shouty("a"))
    assert canonical(Shouty("a")) != canonical(Shouty("A"))


def test_ints_of_any_size_are_keyed():
    huge = 10**5000  # past the str() digit limit, which the encoding must not trip on
    assert canonical(huge) != canonical(huge + 1)
    assert canonical(-huge) != canonical(huge)


# -- canonical: properties over generated values -----------------------------------------------

scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
           | st.text() | st.binary())
hashables = st.recursive(
    scalars, lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=6)
values = st.recursive(
    scalars,
    lambda inner: (st.lists(inner, max_size=4) | st.lists(inner, max_size=4).map(tuple)
                   | st.dictionaries(hashables, inner, max_size=4)
                   | st.frozensets(hashables, max_size=4)),
    max_leaves=20)


def strict_equal(a: Any, b: Any) -> bool:
    """Equality that also demands equal types all the way down (1 != 1.0 != True here).

    Floats compare by bit pattern, except that every NaN is one value.
    """
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or struct.pack(">d", a) == struct.pack(">d", b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(strict_equal, a, b))
    if isinstance(a, dict):
        return _same_multiset(list(a.items()), list(b.items()))
    if isinstance(a, frozenset):
        return _same_multiset(list(a), list(b))
    return a == b


def _same_multiset(xs: list[Any], ys: list[Any]) -> bool:
    if len(xs) != len(ys):
        return False
    remaining = list(ys)
    for x in xs:
        for i, y in enumerate(remaining):
            if strict_equal(x, y):
                del remaining[i]
                break
        else:
            return False
    return True


def rebuilt(value: Any, rng: random.Random) -> Any:
    """An equal copy built differently: dicts and sets filled in a shuffled order."""
    if isinstance(value, list):
        return [rebuilt(v, rng) for v in value]
    if isinstance(value, tuple):
        return tuple(rebuilt(v, rng) for v in value)
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: rebuilt(v, rng) for k, v in items}
    if isinstance(value, frozenset):
        members = list(value)
        rng.shuffle(members)
        return frozenset(members)
    return value


@given(values, st.randoms(use_true_random=False))
def test_canonical_is_deterministic_for_nested_values(value, rng):
    assert canonical(value) == canonical(value)
    assert canonical(rebuilt(value, rng)) == canonical(value)


@settings(max_examples=300)
@given(values, values)
def test_canonical_is_injective_under_strict_equality(a, b):
    assert (canonical(a) == canonical(b)) == strict_equal(a, b)


@given(values)
def test_canonical_tells_a_value_from_its_wrapped_forms(value):
    encoded = canonical(value)
    assert encoded != canonical([value])
    assert encoded != canonical((value,))
    assert canonical([value]) != canonical((value,))


@given(st.text(), values)
def test_ident_keys_never_equal_task_keys(ident, args):
    assert ident_key("coll", None, ident) != task_key("coll", None, {"ident": ident})
    assert ident_key("coll", None, ident, args) != task_key(
        "coll", None, {"ident": ident, "args": args})
    if args is not None:  # None is how a caller says "args do not join the key"
        assert ident_key("coll", None, ident, args) != ident_key("coll", None, ident)


# -- stability across processes ------------------------------------------------------------

CROSS_PROCESS_BOUND = (
    "{'tags': {'alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta'}, "
    "'index': {'b': 2, 'a': 1, 'c': frozenset({'x', 'y', 'z'})}, "
    "'frozen': frozenset({'one', 'two', 'three', ('t', 'u')})}"
)


@pytest.mark.parametrize("seed", ["1", "4242"])
def test_keys_are_equal_in_processes_with_other_hash_seeds(seed):
    expected = task_key("mod.f", "v1", eval(CROSS_PROCESS_BOUND))
    code = ("from hokuro.model.keys import task_key\n"
            f"print(task_key('mod.f', 'v1', {CROSS_PROCESS_BOUND}))")
    # The folder this hokuro was imported from, so the child imports the same code.
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(hokuro.model.keys.__file__)))
    env = dict(os.environ, PYTHONHASHSEED=seed,
               PYTHONPATH=os.pathsep.join(filter(None, [package_root,
                                                        os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=60, check=True)
    assert result.stdout.strip() == expected


# -- refusals --------------------------------------------------------------------------------

def test_an_unkeyable_argument_names_its_path_and_the_ways_out():
    with pytest.raises(UnkeyableArgument) as info:
        task_key("mod.f", None, {"n": 1, "cfg": {"retries": 3, "client": object()}})
    message = str(info.value)
    assert info.value.path == "cfg['client']"
    assert info.value.value_type is object
    assert "cfg['client']" in message
    assert "ignore=" in message
    assert "key=" in message
    assert "__hokuro_key__" in message


@pytest.mark.parametrize(("bound", "path"), [
    ({"items": [1, 2, 3, object()]}, "items[3]"),
    ({"t": (1, (2, object()))}, "t[1][1]"),
    ({"s": {object()}}, "s[member "),
    ({"d": {object(): 1}}, "d[key "),
    ({"p": Pair(1, object())}, "p.y"),
    ({"m": Account(object())}, "m.__hokuro_key__()"),
    ({"f": functools.partial(int, object())}, "f.args[0]"),
    ({"gen": (i for i in range(3))}, "gen"),
])
def test_the_path_of_an_unkeyable_value_says_where_it_sat(bound, path):
    with pytest.raises(UnkeyableArgument) as info:
        task_key("mod.f", None, bound)
    assert info.value.path.startswith(path)


def test_canonical_takes_the_root_path_from_its_caller():
    with pytest.raises(UnkeyableArgument) as info:
        canonical({"a": [object()]}, "config")
    assert info.value.path == "config['a'][0]"


def test_a_self_containing_list_is_refused_clearly():
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(UnkeyableArgument, match="contains itself") as info:
        task_key("mod.f", None, {"xs": loop})
    assert info.value.path == "xs[1]"
    table: dict[str, Any] = {}
    table["me"] = [table]
    with pytest.raises(UnkeyableArgument, match="contains itself"):
        canonical(table)


def test_the_same_list_twice_is_not_a_cycle():
    shared = [1, 2]
    assert canonical([shared, shared]) == canonical([[1, 2], [1, 2]])


def test_nesting_too_deep_is_refused_not_a_recursion_error():
    deep: Any = 0
    for _ in range(20_000):
        deep = (deep,)
    with pytest.raises(UnkeyableArgument, match="nested too deeply"):
        task_key("mod.f", None, {"deep": deep})


def test_no_silent_str_fallback():
    class Opaque:
        def __str__(self) -> str:
            return "same"

    with pytest.raises(UnkeyableArgument):
        canonical(Opaque())


def test_hokuro_key_makes_a_class_keyable():
    assert canonical(Account("A-1", session=object())) == canonical(Account("A-1"))
    assert canonical(Account("A-1")) != canonical(Account("A-2"))

    class Selfish:
        def __hokuro_key__(self) -> Any:
            return self

    with pytest.raises(UnkeyableArgument, match="returned the object itself"):
        canonical(Selfish())


# -- KeyGen policies -----------------------------------------------------------------------------

def test_ignore_leaves_arguments_out_and_does_not_mutate():
    bound = {"x": 1, "client": object(), "log": print}
    material = KeyGen.ignore("client", "log").apply(bound)
    assert material == {"x": 1}
    assert set(bound) == {"x", "client", "log"}


def test_file_content_follows_the_bytes_not_the_timestamps(tmp_path):
    src = tmp_path / "in.txt"
    src.write_bytes(b"first")
    policy = KeyGen.file_content("src")
    first = task_key("f", None, policy.apply({"src": src}))
    os.utime(src, ns=(1_000_000_000, 2_000_000_000))
    assert task_key("f", None, policy.apply({"src": str(src)})) == first
    src.write_bytes(b"second")
    assert task_key("f", None, policy.apply({"src": src})) != first


def test_file_content_reads_a_large_file_in_chunks(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    expected = hashlib.blake2b(big.read_bytes(), digest_size=16).hexdigest()
    assert KeyGen.from_file_content(big) == expected


def test_path_stat_changes_on_touch(tmp_path):
    src = tmp_path / "in.txt"
    src.write_bytes(b"data")
    os.utime(src, ns=(1_000_000_000, 1_000_000_000))
    policy = KeyGen.path_stat("src")
    first = policy.apply({"src": src})["src"]
    assert first == (os.path.realpath(src), 4, 1_000_000_000)
    os.utime(src, ns=(1_000_000_000, 1_000_000_001))
    assert policy.apply({"src": src})["src"] != first


def test_fingerprints_of_one_path_are_strings(tmp_path):
    src = tmp_path / "in.txt"
    src.write_bytes(b"data")
    os.utime(src, ns=(5_000_000_000, 7_000_000_123))
    stat_print = KeyGen.from_path_stat(str(src))
    content_print = KeyGen.from_file_content(src)
    assert isinstance(stat_print, str) and isinstance(content_print, str)
    assert stat_print == f"{os.path.realpath(src)}:4:7000000123"
    assert len(content_print) == 32


def test_a_missing_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError, match="argument 'src'"):
        KeyGen.file_content("src").apply({"src": missing})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        KeyGen.path_stat("src").apply({"src": missing})
    with pytest.raises(FileNotFoundError):
        KeyGen.from_path_stat(missing)
    with pytest.raises(FileNotFoundError):
        KeyGen.from_file_content(missing)


def test_a_path_policy_leaves_none_and_absent_arguments_alone(tmp_path):
    policy = KeyGen.file_content("src") | KeyGen.path_stat("other")
    assert policy.apply({"src": None, "x": 1}) == {"src": None, "x": 1}


def test_a_path_policy_refuses_a_value_that_is_not_a_path():
    with pytest.raises(UnkeyableArgument, match="needs a path"):
        KeyGen.file_content("src").apply({"src": 42})


def test_a_policy_naming_an_unknown_argument_fails_check():
    policy = KeyGen.ignore("client") | KeyGen.file_content("srcc")
    policy.check(["client", "srcc", "n"])
    with pytest.raises(ConfigurationError, match="'srcc'"):
        policy.check(["client", "src", "n"])
    policy.check(["client"], var_keyword=True)


def test_policies_combine_with_or_in_order(tmp_path):
    src = tmp_path / "in.txt"
    src.write_bytes(b"data")
    policy = KeyGen.ignore("client") | KeyGen.file_content("src")
    assert isinstance(policy, KeyPolicy)
    assert policy.names == ("client", "src")
    material = policy.apply({"client": object(), "src": src, "n": 2})
    assert material == {"src": KeyGen.from_file_content(src), "n": 2}
    assert repr(policy) == "KeyGen.ignore('client') | KeyGen.file_content('src')"
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.steps = ()  # type: ignore[misc]


def test_a_policy_needs_names():
    with pytest.raises(ConfigurationError):
        KeyGen.ignore()
    with pytest.raises(ConfigurationError):
        KeyGen.ignore(3)  # type: ignore[arg-type]


# -- callables -------------------------------------------------------------------------------

def _define(source: str, name: str = "f") -> Any:
    namespace: dict[str, Any] = {"__name__": "generated"}
    exec(source, namespace)
    return namespace[name]


def test_the_same_function_gives_the_same_key():
    def score(x: int) -> int:
        return x * 2

    assert task_key("m.f", None, {"fn": score}) == task_key("m.f", None, {"fn": score})
    first = _define("def f(x):\n    return x + 1\n")
    again = _define("def f(x):\n    return x + 1\n")
    assert first is not again
    assert canonical(first) == canonical(again)


@pytest.mark.parametrize("other", [
    "def f(x):\n    return x + 2\n",
    "def f(x):\n    return x - 1\n",
    "def f(x):\n    return x.real + 1\n",
    "def f(y):\n    return y + 1\n",
    "def f(x, z=0):\n    return x + 1\n",
])
def test_a_function_whose_code_changes_gets_another_key(other):
    assert canonical(_define("def f(x):\n    return x + 1\n")) != canonical(_define(other))


def test_lambdas_and_closures_are_keyed_by_what_they_do():
    def make_scorer(threshold: float) -> Callable[[float], bool]:
        return lambda x: x > threshold

    assert canonical(make_scorer(0.5)) == canonical(make_scorer(0.5))
    assert canonical(make_scorer(0.5)) != canonical(make_scorer(0.9))
    assert canonical(lambda x: x + 1) != canonical(lambda x: x + 2)


def test_a_nested_recursive_function_is_keyable():
    def outer() -> Callable[[int], int]:
        def countdown(n: int) -> int:
            return countdown(n - 1) if n else 0
        return countdown

    assert canonical(outer()) == canonical(outer())


def test_builtins_partials_methods_and_classes():
    assert canonical(len) != canonical(abs)
    assert canonical(functools.partial(int, base=2)) != canonical(functools.partial(int, base=8))
    assert canonical("ab".upper) != canonical("cd".upper)
    assert canonical(Account("1").__hokuro_key__) == canonical(Account("1").__hokuro_key__)
    assert canonical(Account("1").__hokuro_key__) != canonical(Account("2").__hokuro_key__)
    assert canonical(Point) != canonical(Pair)
    with pytest.raises(UnkeyableArgument) as info:
        canonical(random.random, "sampler")
    assert info.value.path == "sampler.__self__"


def test_a_bound_method_of_an_unkeyable_object_names_self():
    class Client:
        def get(self) -> None:
            return None

    with pytest.raises(UnkeyableArgument) as info:
        task_key("m.f", None, {"fetch": Client().get})
    assert info.value.path == "fetch.__self__"


# -- numpy, dataclasses, pydantic ---------------------------------------------------------------

def test_numpy_dtype_and_shape_are_part_of_the_key():
    assert canonical(np.array([1, 2], dtype=np.int64)) != canonical(
        np.array([1, 2], dtype=np.int32))
    assert canonical(np.array([1, 2])) != canonical(np.array([[1, 2]]))
    assert canonical(np.array([1, 2])) != canonical([1, 2])
    assert canonical(np.int64(1)) != canonical(1)
    assert canonical(np.float64(1.0)) != canonical(1.0)


def test_numpy_arrays_are_keyed_by_value_not_layout():
    grid = np.arange(12, dtype=np.int64).reshape(3, 4)
    assert canonical(grid.T) == canonical(np.ascontiguousarray(grid.T))
    assert canonical(grid[:, ::2]) == canonical(grid[:, ::2].copy())
    assert canonical(np.array([1, 2], dtype=">i8")) == canonical(np.array([1, 2], dtype="<i8"))


def test_numpy_object_arrays_key_their_elements():
    assert canonical(np.array(["a", 1], dtype=object)) == canonical(
        np.array(["a", 1], dtype=object))
    with pytest.raises(UnkeyableArgument) as info:
        canonical(np.array([object(), 1], dtype=object), "arr")
    assert info.value.path == "arr.flat[0]"


def test_numpy_nans_are_one_value():
    odd_nan = struct.unpack("<d", struct.pack("<Q", 0xFFF8_0000_0000_0001))[0]
    assert canonical(np.array([odd_nan, 1.0])) == canonical(np.array([np.nan, 1.0]))
    assert canonical(np.array([-np.nan])) == canonical(np.array([np.nan]))
    assert canonical(np.float32("nan")) == canonical(-np.float32("nan"))


def test_keying_plain_values_imports_neither_numpy_nor_pydantic():
    # Measured around the call only: what `import hokuro` itself loads is not keys' doing.
    code = ("import sys\nfrom hokuro.model.keys import task_key\n"
            "before = {m for m in ('numpy', 'pydantic') if m in sys.modules}\n"
            "task_key('m.f', None, {'x': [1, 2.0, 'a'], 'o': object}); del task_key\n"
            "assert {m for m in ('numpy', 'pydantic') if m in sys.modules} == before\n")
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(hokuro.model.keys.__file__)))
    env = dict(os.environ, PYTHONPATH=package_root)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)


def test_dataclasses_are_keyed_by_class_and_compared_fields():
    assert canonical(Point(1, 2, label="a")) == canonical(Point(1, 2, label="b"))
    assert canonical(Point(1, 2)) != canonical(Point(2, 1))
    assert canonical(Point(1, 2)) != canonical(Pair(1, 2))


def test_pydantic_models_are_keyed_by_class_and_fields():
    assert canonical(Model(name="n", tags=["a"])) == canonical(Model(name="n", tags=["a"]))
    assert canonical(Model(name="n", tags=["a"])) != canonical(Model(name="n", tags=["b"]))
    assert canonical(Model(name="n")) != canonical(OtherModel(name="n"))


# -- stable_name -----------------------------------------------------------------------------

def test_stable_name_is_module_and_qualname():
    assert stable_name(task_key) == "hokuro.model.keys.task_key"
    assert stable_name(KeyGen.ignore) == "hokuro.engine.keygen.KeyGen.ignore"
    assert stable_name(_define("def f():\n    pass\n")) == "generated.f"
    with pytest.raises(ConfigurationError, match="name="):
        stable_name(functools.partial(len))


# -- many calls keyed in a row (a run's inputs) ----------------------------------------------

def test_a_keyer_gives_task_key_for_every_kind_of_value():

    names = ("zeta", "alpha", "mid")  # declared out of the encoded order
    keyer = task_keyer("fn", "2", names)
    for values in [(1, 2, 3), ("s", b"b", [1, {"a": (2, 3)}]), (None, 1.5, {3, 4}),
                   (date(2020, 1, 2), Decimal("1.10"), uuid.UUID(int=7))]:
        assert keyer(values) == task_key("fn", "2", dict(zip(names, values, strict=True)))
    assert task_keyer("fn", None, ())(()) == task_key("fn", None, {})


def test_a_keyer_names_the_argument_it_cannot_key():

    with pytest.raises(UnkeyableArgument) as info:
        task_keyer("fn", None, ("a", "cfg"))((1, {"client": object()}))
    assert "cfg['client']" in str(info.value)
    with pytest.raises(ConfigurationError):
        task_keyer("fn", None, ("a", "a"))
