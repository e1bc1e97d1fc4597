"""The codec brings every value back equal and of the same type, or refuses it clearly."""

from __future__ import annotations

import dataclasses
import decimal
import enum
import json
import math
import pathlib
import subprocess
import sys
import threading
import uuid
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import msgpack
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal, assert_index_equal, assert_series_equal

from hokuro.errors import ConfigurationError, SerializationError
from hokuro.model.codec import BUILTIN_CODES, USER_CODES, Codec, PickleCodec, codec_for

# -- strict comparison -----------------------------------------------------------------------


def same_zone(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    if type(a) is not type(b):
        return False
    if type(a) is timezone:  # offset and the name it was given, if any
        return a.__getinitargs__() == b.__getinitargs__()
    if type(a) is ZoneInfo:
        return a.key == b.key
    return a == b


def same(a: Any, b: Any) -> bool:
    """Equal and of the same type at every level; nan equals nan; zones compared too."""
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is float:
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if kind is complex:
        return same(a.real, b.real) and same(a.imag, b.imag)
    if kind is Decimal:
        return a.compare_total(b) == 0  # also tells -0 from 0, 1.0 from 1.00, NaN payloads
    if kind in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if kind is dict:
        # msgpack keeps a map's order, so the items line up one by one.
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb)
            for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True))
    if kind in (set, frozenset):
        if len(a) != len(b):
            return False
        left = list(b)
        for item in a:
            match = next((i for i, other in enumerate(left) if same(item, other)), None)
            if match is None:
                return False
            left.pop(match)
        return True
    if kind is datetime:
        return (a.replace(tzinfo=None) == b.replace(tzinfo=None) and a.fold == b.fold
                and same_zone(a.tzinfo, b.tzinfo))
    if kind is time:
        return (a.replace(tzinfo=None) == b.replace(tzinfo=None) and a.fold == b.fold
                and same_zone(a.tzinfo, b.tzinfo))
    return bool(a == b)


def test_same_is_strict_about_types_signs_and_zones():
    assert same([1, (2.0, float("nan"))], [1, (2.0, float("nan"))])
    assert not same(1, True)
    assert not same((1,), [1])
    assert not same(0.0, -0.0)
    assert not same(b"x", bytearray(b"x"))
    assert not same(Decimal("1.0"), Decimal("1.00"))
    assert not same({1: "a"}, {1.0: "a"})
    paris = datetime(2024, 1, 1, tzinfo=ZoneInfo("Europe/Paris"))
    assert not same(paris, paris.replace(tzinfo=timezone(timedelta(hours=1))))
    assert not same(datetime(2024, 1, 1), datetime(2024, 1, 1, fold=1))


# -- strategies ------------------------------------------------------------------------------

offsets = st.timedeltas(min_value=-timedelta(hours=23, minutes=59),
                        max_value=timedelta(hours=23, minutes=59))
zones = st.one_of(
    st.just(UTC),
    st.builds(timezone, offsets),
    st.builds(timezone, offsets, st.text(min_size=1, max_size=8)),
    st.timezones(),
)
# Away from datetime.min / max: hashing an aware datetime there overflows in CPython itself.
datetimes = st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31),
                         timezones=st.none() | zones)
times = st.times(timezones=st.none() | zones)
paths = st.one_of(
    st.builds(pathlib.PurePosixPath, st.text(max_size=12)),
    st.builds(pathlib.PureWindowsPath, st.text(max_size=12)),
    st.builds(pathlib.Path, st.text(max_size=12)),
)
hashable_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(), st.binary(), st.dates(), datetimes, times, st.timedeltas(),
    # Signalling NaNs cannot be hashed; they appear among the unhashable leaves below.
    st.decimals(allow_nan=False, allow_infinity=True), st.uuids(), paths, st.complex_numbers(),
)
hashables = st.recursive(
    hashable_leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=3).map(tuple),
                            st.frozensets(inner, max_size=3)),
    max_leaves=8,
)
leaves = st.one_of(hashable_leaves, st.binary().map(bytearray),
                   st.decimals(allow_nan=True, allow_infinity=True))
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=5).map(tuple),
        st.dictionaries(hashables, inner, max_size=5),
        st.sets(hashables, max_size=5),
        st.frozensets(hashables, max_size=5),
    ),
    max_leaves=30,
)
natives = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
              st.floats(), st.text(), st.binary()),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)

codec = Codec()


def roundtrip(value: Any, with_codec: Codec = codec) -> Any:
    return with_codec.decode(with_codec.encode(value))


# -- faithful round trips --------------------------------------------------------------------

@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_every_value_comes_back_equal_and_of_the_same_type(value):
    assert same(roundtrip(value), value)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(hashables, hashables, max_size=6))
def test_dict_keys_of_any_hashable_type_come_back_hashable_and_equal(value):
    back = roundtrip(value)
    assert same(back, value)
    assert all(hash(key) is not None for key in back)


@settings(max_examples=200, deadline=None)
@given(natives)
def test_values_of_msgpack_types_are_plain_msgpack(value):
    data = codec.encode(value)
    assert data == msgpack.packb(value)  # any msgpack reader can open these records
    assert same(codec.decode(data), value)


@pytest.mark.parametrize("number", [
    2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**40, -(10**40),
    -(2**64), 2**1000,
])
def test_ints_beyond_64_bits_keep_their_value(number):
    assert same(roundtrip(number), number)
    assert same(roundtrip([number, {number: number}]), [number, {number: number}])


@pytest.mark.parametrize("number", [
    float("nan"), float("inf"), float("-inf"), -0.0, 5e-324, 1.7976931348623157e308,
])
def test_special_floats_keep_their_value(number):
    assert same(roundtrip(number), number)


@pytest.mark.parametrize("number", [
    Decimal("NaN"), Decimal("-NaN"), Decimal("sNaN"), Decimal("NaN123"), Decimal("Infinity"),
    Decimal("-Infinity"), Decimal("-0"), Decimal("0E-30"), Decimal("1.10"),
    Decimal("-1.234567890123456789012345678901234567890E+999"),
])
def test_decimals_keep_sign_digits_and_exponent(number):
    assert same(roundtrip(number), number)


def test_datetimes_keep_their_zone_and_fold():
    paris = ZoneInfo("Europe/Paris")
    cases = [
        datetime(2024, 10, 27, 2, 30, fold=0, tzinfo=paris),
        datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=paris),  # the second 02:30 that night
        datetime(2024, 1, 1, tzinfo=UTC),
        datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=30), "IST")),
        datetime(2024, 1, 1, tzinfo=timezone(-timedelta(seconds=1, microseconds=7))),
        datetime(2024, 1, 1, 12, 0, 0, 999999),
        time(23, 59, 59, 1, tzinfo=UTC, fold=1),
        time(1, tzinfo=paris),
    ]
    for value in cases:
        back = roundtrip(value)
        assert same(back, value)
    assert roundtrip(datetime(2024, 1, 1, tzinfo=UTC)).tzinfo is UTC
    assert roundtrip(datetime(2024, 1, 1, tzinfo=paris)).tzinfo is paris


def test_zones_hokuro_cannot_rebuild_are_refused():
    class Custom(tzinfo):
        def utcoffset(self, dt):
            return timedelta(hours=1)

    with pytest.raises(SerializationError, match=r"tzinfo is a .*Custom.*zoneinfo"):
        codec.encode({"at": datetime(2024, 1, 1, tzinfo=Custom())})
    files = [pathlib.Path(root, "UTC") for root in zoneinfo.TZPATH]
    found = next((path for path in files if path.is_file()), None)
    if found is None:
        pytest.skip("no zoneinfo files on this machine")
    with found.open("rb") as stream:
        keyless = ZoneInfo.from_file(stream)
    with pytest.raises(SerializationError, match="no key"):
        codec.encode(datetime(2024, 1, 1, tzinfo=keyless))


def test_paths_keep_their_class():
    for value in [pathlib.Path("/tmp/a b/c.txt"), pathlib.PurePosixPath("//x/y"),
                  pathlib.PureWindowsPath(r"C:\Users\x\file.txt"),
                  pathlib.PureWindowsPath(r"\\server\share\dir"), pathlib.Path(""),
                  pathlib.PurePath("rel/ative")]:
        back = roundtrip(value)
        assert type(back) is type(value) and back == value


def test_strings_and_paths_with_lone_surrogates_survive():
    # os.fsdecode turns undecodable file-name bytes into lone surrogates.
    name = b"caf\xe9.txt".decode("utf-8", "surrogateescape")
    value = {name: [name, pathlib.PurePosixPath(name), (name,)]}
    assert same(roundtrip(value), value)


def test_bytes_and_bytearray_stay_distinct_wherever_they_sit():
    value = [b"a", bytearray(b"b"), {"k": bytearray()}, (bytearray(b"t"),),
             [[bytearray(b"deep")]], [*range(40), bytearray(b"after a long list")]]
    assert same(roundtrip(value), value)
    assert same(roundtrip(bytearray(b"top")), bytearray(b"top"))


def test_msgpack_extension_objects_in_a_value_come_back_as_themselves():
    value = [msgpack.ExtType(10, b"raw"), {"t": msgpack.Timestamp(1, 2)}]
    registered = Codec()
    registered.register_type(MyModel, code=10, encoder=lambda obj: obj.name.encode(),
                             decoder=lambda data: MyModel(data.decode()))
    assert same(roundtrip(value, registered), value)


def test_memoryview_is_written_as_its_bytes():
    assert same(roundtrip(memoryview(b"view")), b"view")


def test_values_that_contain_themselves_are_refused():
    loop: list = []
    loop.append(loop)
    with pytest.raises(SerializationError, match="contains itself"):
        codec.encode(loop)


def test_very_deep_nesting_is_refused_not_crashed():
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(SerializationError):
        codec.encode(deep)
    deep_tuple: Any = ()
    for _ in range(5000):
        deep_tuple = (deep_tuple,)
    with pytest.raises(SerializationError):
        codec.encode(deep_tuple)


# -- Enum members ----------------------------------------------------------------------------

class Color(enum.Enum):
    RED = 1
    GREEN = (2, "g")


class Level(enum.IntEnum):
    LOW = 1


class Mode(enum.StrEnum):
    FAST = "fast"


class Perm(enum.Flag):
    R = 1
    W = 2


def test_enum_members_come_back_as_members_of_their_class():
    value = [Color.RED, Color.GREEN, Level.LOW, Mode.FAST, Perm.R | Perm.W,
             {Color.RED: Level.LOW}]
    back = roundtrip(value)
    assert same(back, value)
    assert back[0] is Color.RED and back[2] is Level.LOW and back[3] is Mode.FAST


def test_an_enum_defined_in_a_function_is_refused_at_encode():
    class Local(enum.Enum):
        A = 1

    with pytest.raises(SerializationError, match="defined inside a function"):
        codec.encode({"x": Local.A})


def test_an_enum_whose_class_cannot_be_imported_names_it_on_decode():
    payload = msgpack.packb(["no_such_module_for_hokuro", "Color", 1])
    data = msgpack.packb(msgpack.ExtType(109, payload))
    with pytest.raises(SerializationError, match=r"no_such_module_for_hokuro\.Color"):
        codec.decode(data)


def test_an_import_path_that_is_not_an_enum_is_refused_on_decode():
    payload = msgpack.packb(["os", "system", "echo hi"])
    with pytest.raises(SerializationError, match="not one"):
        codec.decode(msgpack.packb(msgpack.ExtType(109, payload)))


# -- registered types -------------------------------------------------------------------------

class MyModel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __eq__(self, other: object) -> bool:
        return type(other) is MyModel and other.name == self.name

    __hash__ = None  # type: ignore[assignment]


class AnalysisResult:
    def __init__(self, s: float, t: str) -> None:
        self.score, self.summary = s, t


def test_seed_register_type_example_round_trips_in_beautyspot_format():
    seeded = Codec()
    seeded.register_type(
        type_=MyModel, code=10,
        encoder=lambda obj: obj.name.encode("utf-8"),
        decoder=lambda data: MyModel(data.decode("utf-8")),
    )
    seeded.register_type(
        type_=AnalysisResult, code=20,
        encoder=lambda o: json.dumps({"s": o.score, "t": o.summary}).encode(),
        decoder=lambda b: AnalysisResult(**json.loads(b)),
    )
    data = seeded.encode(MyModel("alice"))
    assert msgpack.unpackb(data) == msgpack.ExtType(10, b"alice")  # as beautyspot wrote it
    assert seeded.decode(data) == MyModel("alice")
    back = roundtrip({"r": AnalysisResult(0.5, "ok")}, seeded)["r"]
    assert (type(back), back.score, back.summary) == (AnalysisResult, 0.5, "ok")


class Inner:
    def __init__(self, x: Any) -> None:
        self.x = x


class Outer:
    def __init__(self, inner: Inner, extra: Any) -> None:
        self.inner, self.extra = inner, extra


def test_registered_types_nest_inside_each_others_encoded_form():
    nested = Codec()
    nested.register_type(Inner, 11, encoder=lambda obj: {"x": obj.x},
                         decoder=lambda state: Inner(state["x"]))
    nested.register_type(Outer, 12,
                         encoder=lambda obj: {"inner": obj.inner, "extra": obj.extra},
                         decoder=lambda state: Outer(state["inner"], state["extra"]))
    value = {"items": [Outer(Inner((1, bytearray(b"b"))), {"deep": [Inner(2**70)]})]}
    back = roundtrip(value, nested)["items"][0]
    assert type(back) is Outer and type(back.inner) is Inner
    assert same(back.inner.x, (1, bytearray(b"b")))
    assert type(back.extra["deep"][0]) is Inner and back.extra["deep"][0].x == 2**70


def test_the_decoder_receives_exactly_what_the_encoder_returned():
    seen = []
    spy = Codec()
    spy.register_type(Inner, 5, encoder=lambda obj: (obj.x, frozenset({1})),
                      decoder=lambda state: seen.append(state) or Inner(state[0]))
    roundtrip(Inner("x"), spy)
    assert same(seen, [("x", frozenset({1}))])


def test_an_encoder_may_call_encode_itself():
    reentrant = Codec()
    reentrant.register_type(Inner, 7, encoder=lambda obj: reentrant.encode(obj.x),
                            decoder=lambda data: Inner(reentrant.decode(data)))
    back = roundtrip([Inner((1, 2)), Inner([Inner(3)])], reentrant)
    assert back[0].x == (1, 2) and back[1].x[0].x == 3


@pytest.mark.parametrize("code", [-1, 96, 127, 128, 255, True, 1.0, "10"])
def test_codes_outside_the_user_range_are_refused(code):
    with pytest.raises(ConfigurationError, match=r"0\.\.95"):
        Codec().register_type(MyModel, code, bytes, MyModel)


def test_a_code_used_twice_is_refused():
    twice = Codec()
    twice.register_type(MyModel, 10, lambda o: o.name.encode(), lambda b: MyModel(b.decode()))
    with pytest.raises(ConfigurationError, match=r"already registered for .*MyModel"):
        twice.register_type(Inner, 10, lambda o: o.x, Inner)


def test_a_type_registered_twice_is_refused():
    twice = Codec()
    twice.register_type(MyModel, 10, lambda o: o.name.encode(), lambda b: MyModel(b.decode()))
    with pytest.raises(ConfigurationError, match="already registered with ext code 10"):
        twice.register_type(MyModel, 11, lambda o: o.name.encode(), lambda b: MyModel(b))


@pytest.mark.parametrize("native", [dict, list, str, int, bytes, bytearray, float, bool])
def test_msgpack_own_types_cannot_be_registered(native):
    with pytest.raises(ConfigurationError, match="msgpack's own types"):
        Codec().register_type(native, 1, lambda o: o, lambda o: o)


def test_a_registration_decides_how_a_built_in_type_is_written():
    # A project whose old records hold datetimes as ISO text under code 15 keeps that format.
    legacy = Codec()
    legacy.register_type(datetime, 15, lambda obj: obj.isoformat().encode(),
                         lambda data: datetime.fromisoformat(data.decode()))
    data = legacy.encode(datetime(2024, 1, 2, 3, 4))
    assert msgpack.unpackb(data) == msgpack.ExtType(15, b"2024-01-02T03:04:00")
    assert legacy.decode(data) == datetime(2024, 1, 2, 3, 4)


def test_only_the_exact_registered_type_uses_its_encoder():
    class Special(MyModel):
        pass

    exact = Codec()
    exact.register_type(MyModel, 10, lambda o: o.name.encode(), lambda b: MyModel(b.decode()))
    with pytest.raises(SerializationError, match="Special"):
        exact.encode(Special("s"))


def test_register_decorator_stores_a_dataclass_by_its_fields():
    decorated = Codec()

    @decorated.register(30)
    @dataclasses.dataclass(frozen=True)
    class Point:
        x: int
        y: tuple = (0,)
        label: str = dataclasses.field(default="", init=False)

    point = Point(1, (2, 3))
    object.__setattr__(point, "label", "set later")
    back = roundtrip({"p": point}, decorated)["p"]
    assert type(back) is Point and back == point and back.label == "set later"


def test_register_decorator_stores_a_plain_class_by_its_attributes():
    decorated = Codec()

    @decorated.register(31)
    class Account:
        def __init__(self) -> None:
            raise AssertionError("decoding must not call __init__")

    account = Account.__new__(Account)
    account.owner, account.balance = "ann", Decimal("10.50")
    back = roundtrip([account], decorated)[0]
    assert type(back) is Account and vars(back) == vars(account)


def test_register_decorator_accepts_explicit_coders_and_refuses_half_of_them():
    decorated = Codec()

    @decorated.register(32, encoder=lambda obj: obj.x, decoder=Inner)
    class Wrapper(Inner):
        pass

    assert type(roundtrip(Wrapper(1), decorated)) is Inner  # the decoder decides
    with pytest.raises(ConfigurationError, match="both encoder= and decoder="):
        decorated.register(33, encoder=lambda obj: obj)


def test_register_decorator_refuses_slots_classes_without_coders():
    class Slotted:
        __slots__ = ("a",)

    with pytest.raises(ConfigurationError, match="__slots__"):
        Codec().register(34)(Slotted)


def test_encoder_and_decoder_failures_become_serialization_errors():
    failing = Codec()
    failing.register_type(Inner, 40, lambda obj: 1 / 0, Inner)
    with pytest.raises(SerializationError, match=r"encoder registered for .*Inner"):
        failing.encode(Inner(1))
    failing.register_type(Outer, 41, lambda obj: b"x", lambda data: 1 / 0)
    with pytest.raises(SerializationError, match=r"decoder registered for .*Outer"):
        failing.decode(failing.encode(Outer(Inner(1), None)))


def test_an_unknown_ext_code_says_to_register_the_type_in_this_spot():
    writer = Codec()
    writer.register_type(MyModel, 10, lambda o: o.name.encode(), lambda b: MyModel(b.decode()))
    writer.register_type(Inner, 11, lambda o: {"x": o.x}, lambda s: Inner(s["x"]))
    for value in (MyModel("a"), Inner(1)):
        with pytest.raises(SerializationError, match=r"code 1[01].*register the type in this Spot"):
            Codec().decode(writer.encode(value))


def test_registering_while_other_threads_encode_needs_no_lock():
    shared = Codec()
    errors: list[BaseException] = []
    stop = threading.Event()

    def encode_forever():
        try:
            while not stop.is_set():
                assert same(roundtrip({"t": (1, 2), "d": date(2024, 1, 1)}, shared),
                            {"t": (1, 2), "d": date(2024, 1, 1)})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=encode_forever) for _ in range(4)]
    for thread in threads:
        thread.start()
    classes = [type(f"T{code}", (), {}) for code in range(60)]
    for code, cls in enumerate(classes):
        shared.register_type(cls, code, lambda obj: b"", lambda data, cls=cls: cls())
    stop.set()
    for thread in threads:
        thread.join()
    assert not errors
    assert all(type(roundtrip(cls(), shared)) is cls for cls in classes)


# -- refusals: what cannot be encoded ---------------------------------------------------------

@pytest.mark.parametrize("thing", [object(), threading.Lock(), lambda: 1])
def test_an_unknown_type_is_refused_with_its_name_place_and_fix(thing):
    value = {"items": [1, 2, thing]}
    with pytest.raises(SerializationError) as caught:
        codec.encode(value, root="result")
    message = str(caught.value)
    kind = type(thing)
    assert f"{kind.__module__}.{kind.__qualname__}" in message
    assert "result['items'][2]" in message
    assert "register_type" in message and "@spot.register" in message
    assert 'codec="pickle"' in message


def test_the_place_of_a_refused_value_is_found_in_keys_tuples_and_sets():
    thing = object()
    with pytest.raises(SerializationError, match=r"at value\[0\]\['k'\]\[1\]"):
        codec.encode([{"k": (0, thing)}])
    with pytest.raises(SerializationError, match=r"at value\.keys\(\)\[0\]\[0\]"):
        codec.encode({(thing,): 1})


def test_a_refused_value_inside_a_registered_types_output_is_explained():
    wrapping = Codec()
    wrapping.register_type(Inner, 50, lambda obj: {"x": obj.x}, lambda s: Inner(s["x"]))
    with pytest.raises(SerializationError, match=r"builtins\.object at value\[0\].*Inner"):
        wrapping.encode([Inner(object())])


def test_a_dataclass_that_is_not_registered_is_refused_with_the_decorator_hint():
    @dataclasses.dataclass
    class Unregistered:
        a: int = 1

    with pytest.raises(SerializationError, match=r"decorate the dataclass with @spot\.register"):
        codec.encode(Unregistered())


# -- corrupt and foreign bytes ----------------------------------------------------------------

@settings(max_examples=100, deadline=None)
@given(values, st.data())
def test_truncated_bytes_are_refused(value, data):
    encoded = codec.encode(value)
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    with pytest.raises(SerializationError):
        codec.decode(encoded[:cut])


@settings(max_examples=300, deadline=None)
@given(values, st.data())
def test_damaged_bytes_raise_only_serialization_errors(value, data):
    encoded = bytearray(codec.encode(value))
    position = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    encoded[position] ^= data.draw(st.integers(min_value=1, max_value=255))
    try:
        codec.decode(bytes(encoded))
    except SerializationError:
        pass  # anything else escaping would be a bug: the engine relies on this one type


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_raise_only_serialization_errors(data):
    try:
        codec.decode(data)
    except SerializationError:
        pass


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x92\x01", msgpack.packb(1) + b"\x00",
                                  b"\xd4\x60\x01", "not bytes"])
def test_corrupt_data_is_refused(data):
    with pytest.raises(SerializationError, match="cannot decode"):
        codec.decode(data)


def test_codes_of_a_newer_hokuro_and_foreign_codes_are_named():
    with pytest.raises(SerializationError, match=r"code 127.*newer hokuro"):
        codec.decode(msgpack.packb(msgpack.ExtType(127, b"")))
    with pytest.raises(SerializationError, match="unknown ext code -5"):
        codec.decode(b"\xd4\xfb\x00")  # fixext 1 with the reserved type -5


def test_code_ranges_are_what_the_docs_say():
    assert list(USER_CODES) == list(range(96)) and list(BUILTIN_CODES) == list(range(96, 128))


# -- NumPy -----------------------------------------------------------------------------------


@pytest.mark.parametrize("array", [
    np.arange(12, dtype=np.float64).reshape(3, 4),
    np.arange(24, dtype=np.int16).reshape(2, 3, 4)[:, ::2, 1:],  # not contiguous
    np.asfortranarray(np.arange(6, dtype=np.uint64).reshape(2, 3)),
    np.array(7, dtype=np.int8),  # zero-dimensional
    np.zeros((2, 0, 3)),
    np.array([True, False]),
    np.array([1 + 2j, -3j], dtype=np.complex64),
    np.array([1.5, -2.5], dtype=np.float16),
    np.array(["ab", "", "é"]),
    np.array([b"ab", b""]),
    np.array(["2024-01-01", "NaT"], dtype="datetime64[D]"),
    np.array([1, -2], dtype="timedelta64[ms]"),
    np.array([1, 2], dtype=">i4"),  # big-endian stays big-endian
    np.array([(1, "x", [1.0, 2.0])], dtype=[("a", "<i4"), ("b", "U2"), ("c", "<f8", (2,))]),
])
def test_numpy_arrays_keep_dtype_shape_values_and_stay_writable(array):
    back = roundtrip({"a": array})["a"]
    assert type(back) is np.ndarray
    assert back.dtype == array.dtype and back.shape == array.shape
    assert back.tobytes() == array.tobytes()
    assert back.flags.writeable
    if array.flags.f_contiguous and not array.flags.c_contiguous:
        assert back.flags.f_contiguous


@pytest.mark.parametrize("scalar", [
    np.float64(1.5), np.float32(-0.0), np.int8(-3), np.uint64(2**64 - 1), np.bool_(True),
    np.complex128(1 - 1j), np.str_("hé"), np.str_(""), np.bytes_(b"x"),
    np.datetime64("2024-01-01T12:00"), np.timedelta64(5, "s"), np.longdouble("1.25"),
    np.float64("nan"),
])
def test_numpy_scalars_keep_their_type(scalar):
    back = roundtrip([scalar])[0]
    assert type(back) is type(scalar)
    assert back.dtype == scalar.dtype and back.tobytes() == scalar.tobytes()


def test_numpy_object_arrays_are_refused_with_a_fix():
    with pytest.raises(SerializationError, match=r"dtype object.*tolist\(\)"):
        codec.encode({"a": np.array([1, "x"], dtype=object)})


def test_a_payload_claiming_an_object_dtype_is_refused():
    payload = msgpack.packb(["|O", [1], "C", b"\x00" * 8])
    with pytest.raises(SerializationError):
        codec.decode(msgpack.packb(msgpack.ExtType(112, payload)))


def test_importing_the_codec_imports_neither_numpy_nor_pandas():
    probe = ("import sys, hokuro.model.codec; "
             "print(sorted({'numpy', 'pandas', 'pyarrow'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


# -- pandas ----------------------------------------------------------------------------------

def assert_same_frame(frame: Any) -> None:
    before = frame.copy(deep=True)
    back = roundtrip({"frame": frame})["frame"]
    assert_frame_equal(frame, before)  # encoding only reads the frame
    assert_frame_equal(back, frame, check_exact=True, check_index_type=True,
                       check_column_type=True, check_flags=True)
    assert back.attrs == frame.attrs


def test_a_dataframe_with_a_named_index_and_mixed_dtypes_round_trips():
    frame = pd.DataFrame(
        {
            "int": [1, 2, 3],
            "float": [1.5, float("nan"), -0.0],
            "text": ["a", None, "c"],
            "when": pd.to_datetime(["2024-01-01", "2024-01-02", None]),
            "aware": pd.date_range("2024-03-31", periods=3, freq="h", tz="Europe/Paris"),
            "flag": [True, False, True],
            "category": pd.Categorical(["x", "y", "x"], categories=["y", "x"], ordered=True),
            "nullable": pd.array([1, None, 3], dtype="Int64"),
            "objects": pd.Series([(1, 2), {"k": [Decimal("1.1")]}, None], dtype=object),
            "complex": [1j, 2 + 0j, -1j],
        },
        index=pd.Index(["r1", "r2", "r3"], name="row"),
    )
    frame.attrs["source"] = "test"
    assert_same_frame(frame)


@pytest.mark.parametrize("frame", [
    pd.DataFrame({1: [1, 2], "x": [3, 4]}),  # labels of mixed types stay mixed
    pd.DataFrame({("a", "b"): [1, 2], ("a", "c"): [3, 4]}),
    pd.DataFrame([[1, 2]], columns=["a", "a"]),
    pd.DataFrame({"v": [1, 2, 3]}, index=pd.date_range("2024-01-01", periods=3, freq="D")),
    pd.DataFrame({"v": [1, 2]}, index=pd.MultiIndex.from_tuples([("a", 1), ("b", 2)],
                                                                names=["x", "y"])),
    pd.DataFrame({"v": [1, 2]}, index=pd.RangeIndex(10, 30, 10, name="step")),
    pd.DataFrame({"v": [1, 2]}, index=pd.CategoricalIndex(["a", "b"])),
    pd.DataFrame({"p": pd.period_range("2020-01", periods=2, freq="M")}),
    pd.DataFrame({"i": pd.interval_range(0, 2)}, index=pd.interval_range(0.0, 2.0)),
    pd.DataFrame({"o": pd.Series([1, 2], dtype=object)}),  # object ints stay object
    pd.DataFrame({"b": pd.array([True, None], dtype="boolean"),
                  "f": pd.array([0.5, None], dtype="Float32"),
                  "s": pd.array(["a", None], dtype=pd.StringDtype("python"))}),
    pd.DataFrame(),
    pd.DataFrame(index=[1, 2]),
    pd.DataFrame({"a": [1]}).set_flags(allows_duplicate_labels=False),
    pd.DataFrame({"td": pd.to_timedelta([1, 2], unit="s"),
                  "sec": pd.to_datetime(["2020-01-01", "2021-01-01"]).as_unit("s"),
                  "half": pd.Series([1, 2], dtype="float16")}),
], ids=lambda frame: ",".join(map(str, frame.dtypes)) or "empty")
def test_dataframes_of_many_kinds_round_trip(frame):
    assert_same_frame(frame)


def test_pyarrow_backed_columns_round_trip():
    pytest.importorskip("pyarrow")
    assert_same_frame(pd.DataFrame({"a": pd.array([1, None], dtype="int64[pyarrow]")}))


def test_a_decoded_dataframe_can_be_changed():
    back = roundtrip(pd.DataFrame({"a": [1, 2]}, index=[5, 6]))
    back.loc[5, "a"] = 10
    assert back.loc[5, "a"] == 10


def test_series_and_index_round_trip():
    series = pd.Series([1.5, None], index=pd.Index(["a", "b"], name="ix"), name=("n", 1))
    assert_series_equal(roundtrip(series), series, check_index_type=True)
    index = pd.Index([3, 1], name="z")
    assert_index_equal(roundtrip(index), index, exact=True)


def test_a_pandas_value_hokuro_cannot_rebuild_names_its_column():
    frame = pd.DataFrame({"stamps": pd.Series([pd.Timestamp("2024-01-01")], dtype=object)})
    with pytest.raises(SerializationError,
                       match=r"pandas\.Timestamp at result\['f'\] \(in column 'stamps'\)"):
        codec.encode({"f": frame}, root="result")
    with pytest.raises(SerializationError, match="Sparse"):
        codec.encode(pd.DataFrame({"s": pd.arrays.SparseArray([0, 1])}))


# -- pickle, only when asked -----------------------------------------------------------------

def test_pickle_codec_round_trips_what_msgpack_refuses():
    value = {"model": MyModel("p"), "set": {1, 2}}
    back = PickleCodec().decode(PickleCodec().encode(value))
    assert back == value


def test_pickle_codec_errors_are_serialization_errors():
    with pytest.raises(SerializationError, match="pickle cannot encode"):
        PickleCodec().encode(threading.Lock())
    with pytest.raises(SerializationError, match="cannot unpickle"):
        PickleCodec().decode(b"\x80\x05garbage")


def test_codec_for_gives_the_spot_codec_or_pickle_and_refuses_other_names():
    spot_codec = Codec()
    assert codec_for("msgpack", spot_codec) is spot_codec
    assert isinstance(codec_for("pickle", spot_codec), PickleCodec)
    assert (Codec.name, PickleCodec.name) == ("msgpack", "pickle")
    with pytest.raises(ConfigurationError, match="'msgpack', 'pickle'"):
        codec_for("json", spot_codec)


def test_decimal_context_does_not_change_what_is_stored():
    with decimal.localcontext() as context:
        context.prec = 3
        value = Decimal("1.23456789")
        assert same(roundtrip(value), value)


def test_uuids_round_trip():
    value = {uuid.uuid4(): uuid.UUID(int=0)}
    assert same(roundtrip(value), value)
