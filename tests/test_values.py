"""The structured-clone codec: what round-trips, what is refused, and that bad bytes never crash."""

from __future__ import annotations

import asyncio
import collections
import enum
import math
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dolab import errors
from dolab.values import MAX_DEPTH, clone, datetime_millis, decode, encode, size


def roundtrip(value: object) -> object:
    """Both ways a value is copied; they must agree."""
    decoded = decode(encode(value))
    assert shape(decoded) == shape(clone(value))
    return decoded


def shape(value: object) -> Any:
    """A comparable picture of a value that also tells 3 from 3.0 and sees NaN, sets and order."""
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(shape(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((shape(k), shape(v)) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        return (type(value).__name__, frozenset(shape(v) for v in value))
    if isinstance(value, BaseException):
        return (type(value).__name__, value.args)
    if isinstance(value, datetime):
        return ("datetime", value, value.utcoffset())
    return (type(value).__name__, value)


# ---- scalars ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [None, True, False, 0, 1, -1, 2**31, -(2**53), "", "hi", b"", b"\0\xff"]
)
def test_scalars_round_trip_with_their_type(value: object) -> None:
    assert shape(roundtrip(value)) == shape(value)


def test_integral_float_reads_back_as_int() -> None:
    assert shape(roundtrip(3.0)) == ("int", 3)
    assert shape(roundtrip(-7.0)) == ("int", -7)


def test_negative_zero_reads_back_as_int_zero() -> None:
    assert shape(roundtrip(-0.0)) == ("int", 0)


def test_integral_float_at_two_to_the_53_reads_back_as_int() -> None:
    assert shape(roundtrip(2.0**53)) == ("int", 2**53)


def test_integral_float_beyond_two_to_the_53_stays_float_as_pyodide_converts_it() -> None:
    assert shape(roundtrip(2.0**60)) == ("float", 2.0**60)
    assert shape(roundtrip(1e300)) == ("float", 1e300)


def test_fractional_float_round_trips() -> None:
    assert shape(roundtrip(2.5)) == ("float", 2.5)
    assert shape(roundtrip(-1e-300)) == ("float", -1e-300)


def test_nan_and_infinities_round_trip() -> None:
    assert math.isnan(roundtrip(float("nan")))  # type: ignore[arg-type]
    assert roundtrip(float("inf")) == float("inf")
    assert roundtrip(float("-inf")) == float("-inf")


@pytest.mark.parametrize("value", [2**53 + 1, -(2**53) - 1, 2**63, -(2**63), 2**64 + 7, -(10**400)])
def test_bigint_beyond_two_to_the_53_round_trips_exactly(value: int) -> None:
    assert shape(roundtrip(value)) == ("int", value)


@pytest.mark.parametrize("text", ["héllo", "ÿ", "中文", "😀 emoji", "\ud800 lone surrogate", "\0"])
def test_any_python_string_round_trips(text: str) -> None:
    assert roundtrip(text) == text


def test_ascii_string_costs_three_bytes_over_its_length() -> None:
    assert size("abc") == 6
    assert size("a" * 131_072) == 131_072 + 5


def test_strings_are_sized_as_v8_stores_them() -> None:
    assert size("é" * 100) == size("e" * 100)  # Latin-1: one byte a character
    assert size("中" * 100) == size("e" * 200)  # otherwise two (UTF-16)


def test_size_is_the_length_of_the_encoding() -> None:
    value = {"a": [1, 2.5, "x"], "b": {1, 2}}
    assert size(value) == len(encode(value))


def test_encoding_starts_with_the_version_byte() -> None:
    assert encode(None) == b"\x01N"
    assert encode("abc") == b"\x01s\x03abc"


# ---- containers ---------------------------------------------------------------------------------


def test_nested_containers_round_trip() -> None:
    value = {"list": [1, [2, [3, {"deep": {4.5, "x"}}]]], "bytes": b"\x00", "none": None}
    assert shape(roundtrip(value)) == shape(value)


def test_dict_keeps_insertion_order() -> None:
    value = {"b": 1, "a": 2, "c": 3}
    assert list(roundtrip(value)) == ["b", "a", "c"]  # type: ignore[call-overload]


def test_dict_with_non_string_keys_round_trips_as_dict() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    value = {1: "int", None: "none", b"k": "bytes", when: "date", 2.5: "float"}
    assert shape(roundtrip(value)) == shape(value)


def test_integral_float_key_reads_back_as_int_key() -> None:
    assert shape(roundtrip({2.0: "x"})) == ("dict", ((("int", 2), ("str", "x")),))


def test_set_and_frozenset_read_back_as_set() -> None:
    assert shape(roundtrip({1, "a"})) == ("set", frozenset({("int", 1), ("str", "a")}))
    assert shape(roundtrip(frozenset({1}))) == ("set", frozenset({("int", 1)}))


def test_frozenset_inside_a_set_or_key_stays_hashable() -> None:
    value = {frozenset({1, 2}): {frozenset({"x"}), 3}}
    result: Any = roundtrip(value)
    assert shape(result) == shape(value)
    assert type(next(iter(result))) is frozenset


def test_equal_sets_encode_alike_whatever_their_iteration_order() -> None:
    first, second = {0, 32}, {32}
    second.add(0)  # 0 and 32 share a hash slot, so insertion order decides iteration order
    assert list(first) != list(second)
    assert encode(first) == encode(second)


@pytest.mark.slow
def test_set_encoding_does_not_depend_on_the_hash_seed() -> None:
    program = "from dolab.values import encode; print(encode({f'w{i}' for i in range(40)}).hex())"

    def run(seed: str) -> str:
        env = {**os.environ, "PYTHONHASHSEED": seed}
        return subprocess.run(
            [sys.executable, "-c", program], env=env, capture_output=True, text=True, check=True
        ).stdout

    assert run("1") == run("2")


def test_decode_returns_a_fresh_object_every_call() -> None:
    data = encode({"a": [1]})
    first, second = decode(data), decode(data)
    assert first == second and first is not second
    first["a"].append(2)  # type: ignore[index]
    assert second == {"a": [1]}


def test_clone_is_a_deep_copy() -> None:
    inner = [1]
    value = {"inner": inner, "set": {1}}
    copy = clone(value)
    assert copy == value
    assert copy is not value and copy["inner"] is not inner


def test_containers_may_nest_max_depth_levels() -> None:
    value: list[Any] = []
    for _ in range(MAX_DEPTH - 1):
        value = [value]
    assert shape(roundtrip(value)) == shape(value)


def test_nesting_deeper_than_max_depth_raises_range_error() -> None:
    value: list[Any] = []
    for _ in range(MAX_DEPTH):
        value = [value]
    with pytest.raises(errors.RangeError, match="^Maximum call stack size exceeded$"):
        encode(value)
    with pytest.raises(errors.RangeError, match="^Maximum call stack size exceeded$"):
        clone(value)


# ---- subclasses ---------------------------------------------------------------------------------


class Color(enum.IntEnum):
    RED = 1


class Name(str):
    pass


def test_subclasses_travel_as_their_base_type() -> None:
    ordered = collections.OrderedDict([("b", 1), ("a", 2)])
    value = [Color.RED, Name("n"), ordered, collections.defaultdict(list, {"k": [1]})]
    assert shape(roundtrip(value)) == shape([1, "n", {"b": 1, "a": 2}, {"k": [1]}])


# ---- datetimes ----------------------------------------------------------------------------------


def test_datetime_is_truncated_to_milliseconds_and_reads_back_utc_aware() -> None:
    result = roundtrip(datetime(2026, 3, 4, 5, 6, 7, 123_999, tzinfo=UTC))
    assert result == datetime(2026, 3, 4, 5, 6, 7, 123_000, tzinfo=UTC)
    assert result.tzinfo is UTC  # type: ignore[attr-defined]


def test_naive_datetime_is_taken_as_utc() -> None:
    assert roundtrip(datetime(2026, 1, 1, 12)) == datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_aware_datetime_reads_back_as_the_same_instant_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    result = roundtrip(datetime(2026, 1, 1, 13, tzinfo=paris))
    assert result == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert result.utcoffset() == timedelta(0)  # type: ignore[attr-defined]


def test_datetime_before_1970_floors_to_the_millisecond() -> None:
    when = datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    assert roundtrip(when) == datetime(1969, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)
    assert datetime_millis(when) == -1


def test_extreme_datetimes_round_trip() -> None:
    assert roundtrip(datetime.min) == datetime.min.replace(tzinfo=UTC)
    assert roundtrip(datetime.max) == datetime.max.replace(microsecond=999_000, tzinfo=UTC)


def test_datetime_whose_utc_instant_python_cannot_hold_raises_range_error() -> None:
    ahead = timezone(timedelta(hours=5))
    with pytest.raises(errors.RangeError, match="Invalid time value"):
        encode(datetime.min.replace(tzinfo=ahead))


def test_datetime_millis_counts_from_the_epoch() -> None:
    assert datetime_millis(datetime(1970, 1, 1, 0, 0, 1, 500, tzinfo=UTC)) == 1000
    assert datetime_millis(datetime(2026, 1, 1)) == 1_767_225_600_000


# ---- exceptions ---------------------------------------------------------------------------------


def test_builtin_exception_round_trips_with_class_and_message() -> None:
    result = roundtrip(ValueError("bad value"))
    assert type(result) is ValueError and str(result) == "bad value"


def test_key_error_keeps_its_message_not_its_repr() -> None:
    assert roundtrip(KeyError("k")).args == ("k",)  # type: ignore[attr-defined]


def test_dolab_range_error_round_trips() -> None:
    assert type(roundtrip(errors.RangeError("too big"))) is errors.RangeError


def test_exception_subclass_reads_back_as_its_nearest_builtin_class() -> None:
    class Oops(LookupError):
        pass

    result = roundtrip(Oops("custom"))
    assert type(result) is LookupError and str(result) == "custom"


def test_exception_of_no_builtin_lineage_reads_back_as_exception() -> None:
    class Plain(Exception):
        pass

    assert shape(roundtrip(Plain("p"))) == ("Exception", ("p",))
    assert shape(roundtrip(KeyboardInterrupt("k"))) == ("Exception", ("k",))


def test_exception_whose_class_needs_more_arguments_reads_back_as_exception() -> None:
    error = UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
    assert shape(roundtrip(error)) == ("Exception", (str(error),))


def test_exception_inside_a_container_round_trips() -> None:
    assert shape(roundtrip({"error": [TypeError("t")]})) == shape({"error": [TypeError("t")]})


def test_decoding_a_non_builtin_exception_name_builds_a_plain_exception() -> None:
    data = b"\x01x" + b"s\x04eval" + b"s\x03msg"
    assert shape(decode(data)) == ("Exception", ("msg",))


# ---- refusals -----------------------------------------------------------------------------------


def test_tuple_is_refused_with_python_workers_text() -> None:
    with pytest.raises(TypeError, match=r"^<class 'tuple'> cannot be sent over RPC\.$") as caught:
        encode((1, 2))
    assert type(caught.value) is TypeError
    with pytest.raises(TypeError, match=r"^<class 'tuple'> cannot be sent over RPC\.$"):
        clone([{"k": (1,)}])


def test_bytearray_is_refused_with_python_workers_text() -> None:
    with pytest.raises(TypeError, match=r"^<class 'bytearray'> cannot be sent over RPC\.$"):
        clone(bytearray(b"x"))


def test_namedtuple_is_refused_as_a_tuple() -> None:
    Point = collections.namedtuple("Point", "x y")
    with pytest.raises(
        TypeError, match=r"^<class 'test_values\.Point'> cannot be sent over RPC\.$"
    ):
        encode(Point(1, 2))


async def test_awaitable_is_refused_with_python_workers_text() -> None:
    async def work() -> int:
        return 1

    coroutine = work()
    try:
        with pytest.raises(TypeError, match=r"^Awaitable <class 'coroutine'> cannot be sent"):
            encode([coroutine])
    finally:
        coroutine.close()
    future = asyncio.get_running_loop().create_future()
    with pytest.raises(TypeError, match=r"^Awaitable <class '_asyncio\.Future'> cannot be sent"):
        clone(future)


def test_function_raises_data_clone_error() -> None:
    def handler() -> None:
        pass

    with pytest.raises(errors.DataCloneError) as caught:
        encode({"callback": handler})
    assert str(caught.value) == (
        "<function test_function_raises_data_clone_error.<locals>.handler> could not be cloned."
    )
    assert isinstance(caught.value, TypeError)


class Thing:
    def method(self) -> None:
        pass


@pytest.mark.parametrize(
    ("value", "what"),
    [
        (len, "<function len>"),
        (Thing().method, "<function Thing.method>"),
        (Thing, "<class Thing>"),
        (Thing(), "<Thing object>"),
        (object(), "<object object>"),
        (range(3), "<range object>"),
    ],
)
def test_uncloneable_values_raise_data_clone_error_naming_them(value: object, what: str) -> None:
    with pytest.raises(errors.DataCloneError) as from_encode:
        encode(value)
    with pytest.raises(errors.DataCloneError) as from_clone:
        clone([value])
    assert str(from_encode.value) == str(from_clone.value) == f"{what} could not be cloned."


def test_lambda_is_named_by_its_qualname() -> None:
    with pytest.raises(errors.DataCloneError, match=r"^<function .*<lambda>> could not be cloned"):
        clone(lambda: None)


def test_self_referencing_list_raises_data_clone_error() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    for copy in (encode, clone):
        with pytest.raises(errors.DataCloneError, match=r"^<list that contains itself> could not"):
            copy(loop)


def test_self_referencing_dict_raises_data_clone_error() -> None:
    loop: dict[str, Any] = {}
    loop["inner"] = [{"back": loop}]
    for copy in (encode, clone):
        with pytest.raises(errors.DataCloneError, match=r"^<dict that contains itself> could not"):
            copy(loop)


def test_shared_but_acyclic_references_are_copied_separately() -> None:
    shared = [1]
    result = roundtrip([shared, shared])
    assert result == [[1], [1]] and result[0] is not result[1]


# ---- malformed input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a dolab-encoded value"),
        (b"\x02N", "not a dolab-encoded value"),
        (b"\x01", "truncated"),
        (b"\x01Z", "unknown tag byte 0x5a"),
        (b"\x01NN", "1 unexpected trailing bytes"),
        (b"\x01s\xff\xff\xff\x7fabc", "truncated"),
        (b"\x01l\xff\xff\xff\x7f", "truncated"),
        (b"\x01i" + b"\xff" * 11 + b"\x01", "varint longer than 10 bytes"),
        (b"\x01u\x03abc", "decode"),
        (b"\x01m\x01l\x00N", "a list where a hashable key"),
        (b"\x01e\x01m\x00", "a dict where a hashable key"),
        (b"\x01D" + b"\xff" * 9 + b"\x7f", "Invalid time value"),
        (b"\x01xi\x00s\x00", "non-string part"),
        (b"\x01d\x00\x00", "truncated"),
    ],
)
def test_malformed_bytes_raise_value_error(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode(data)


def test_every_truncation_of_a_valid_encoding_raises_value_error() -> None:
    data = encode({"k": [1, 2**70, 2.5, "中", b"b", {3}, datetime(2026, 1, 1), ValueError("v")]})
    for end in range(len(data)):
        with pytest.raises(ValueError):
            decode(data[:end])


def test_deeply_nested_crafted_input_raises_value_error_not_recursion_error() -> None:
    with pytest.raises(ValueError, match="deeper than"):
        decode(b"\x01" + b"l\x01" * 100_000 + b"N")


def test_decode_accepts_bytearray_and_memoryview() -> None:
    data = encode([1, "a"])
    assert decode(bytearray(data)) == decode(memoryview(data)) == [1, "a"]


def test_decode_of_a_str_raises_type_error() -> None:
    with pytest.raises(TypeError, match="takes bytes"):
        decode("\x01N")  # type: ignore[arg-type]


@given(st.binary(max_size=64))
@settings(max_examples=300, deadline=None)
def test_random_bytes_decode_or_raise_value_error(data: bytes) -> None:
    for candidate in (data, b"\x01" + data):
        try:
            decode(candidate)
        except ValueError:
            pass


# ---- property: the codec and clone agree ----------------------------------------------------------

offsets = st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
datetimes = st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)).flatmap(
    lambda when: st.one_of(
        st.just(when), offsets.map(lambda offset: when.replace(tzinfo=timezone(offset)))
    )
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),
    st.floats(allow_nan=False, allow_infinity=False).map(math.floor).map(float),
    st.text(st.characters(codec=None)),
    st.binary(),
    datetimes,
    st.sampled_from([ValueError("v"), KeyError("k"), RuntimeError(), errors.RangeError("r")]),
)
keys = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary()),
    lambda inner: st.frozensets(inner, max_size=3),
    max_leaves=6,
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(keys, inner, max_size=4),
        st.sets(keys, max_size=4),
        st.frozensets(keys, max_size=4),
    ),
    max_leaves=20,
)


@given(values)
@settings(max_examples=300, deadline=None)
def test_decode_of_encode_equals_clone(value: object) -> None:
    data = encode(value)
    assert shape(decode(data)) == shape(clone(value))
    assert size(value) == len(data)


@given(values)
@settings(max_examples=200, deadline=None)
def test_encoding_a_decoded_value_gives_the_same_bytes(value: object) -> None:
    data = encode(value)
    assert encode(decode(data)) == data
    assert shape(clone(clone(value))) == shape(clone(value))
