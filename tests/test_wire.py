"""The wire module: one form for every value, one JSON encoding, on both encoders."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import json
import math
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from activatepro_async import AsyncClient, User
from activatepro_async import _wire as wire
from activatepro_async.models import user_to_wire

from .helpers import Recorder

pytestmark = pytest.mark.anyio

T = TypeVar("T")
UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["orjson", "stdlib"])
def encoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "stdlib":
        monkeypatch.setattr(wire, "_orjson", None)
    elif wire._orjson is None:  # pragma: no cover - the [fast] extra is a dev dependency
        pytest.skip("orjson is not installed")
    return str(request.param)


def with_and_without_orjson(compute: Callable[[], T]) -> tuple[T, T]:
    """``compute()`` with orjson, then with the standard library's encoder."""
    if wire._orjson is None:  # pragma: no cover - the [fast] extra is a dev dependency
        pytest.skip("orjson is not installed")
    fast = compute()
    # Not monkeypatch: a hypothesis test runs many examples in one fixture scope.
    saved, wire._orjson = wire._orjson, None  # type: ignore[assignment]
    try:
        return fast, compute()
    finally:
        wire._orjson = saved


def test_dates_and_datetimes_have_the_apis_forms() -> None:
    assert wire.date_to_wire(dt.date(1982, 8, 30)) == "1982-08-30"
    berlin = dt.timezone(dt.timedelta(hours=2))
    assert wire.datetime_to_wire(dt.datetime(2015, 10, 2, 10, 23, 53, tzinfo=berlin)) == (
        "2015-10-02T08:23:53Z"
    )
    assert wire.datetime_to_wire(dt.datetime(2015, 10, 2, 8, 23, 53, 5, tzinfo=UTC)) == (
        "2015-10-02T08:23:53.000005Z"
    )
    assert wire.value_to_wire({"a": [dt.date(2000, 1, 2), (1, {"b": EPOCH})]}) == {
        "a": ["2000-01-02", [1, {"b": "1970-01-01T00:00:00Z"}]]
    }


def test_a_naive_datetime_is_refused_with_what_to_do() -> None:
    with pytest.raises(ValueError, match=r"naive datetime .*give it a time zone"):
        wire.value_to_wire([dt.datetime(2020, 1, 1)])


@given(st.datetimes(timezones=st.just(UTC)))
def test_epoch_microseconds_and_datetimes_give_the_same_string(value: dt.datetime) -> None:
    micros = (value - EPOCH) // dt.timedelta(microseconds=1)
    assert wire.micros_to_wire(micros) == wire.datetime_to_wire(value)
    assert user_to_wire({"t": value})["t"] == wire.datetime_to_wire(value)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinities_are_refused_by_both_encoders(encoder: str, bad: float) -> None:
    with pytest.raises(ValueError, match="not JSON numbers: send None to clear"):
        wire.encode_json({"a": [1, {"b": (bad,)}]})


def test_both_encoders_give_json_of_the_same_meaning(encoder: str) -> None:
    value: dict[str, Any] = {"é": "ü\u2028", "n": 2**70, "f": 0.1, "z": None, "l": [True, 1e16]}
    body = wire.encode_json(value)
    assert json.loads(body) == value
    assert b" " not in body  # compact


@pytest.fixture
def single_client(make_client: Callable[..., AsyncClient]) -> tuple[AsyncClient, Recorder]:
    recorder = Recorder(httpx.Response(202, json={"trackingId": "t-1"}))
    return make_client(recorder), recorder


async def test_a_single_upsert_refuses_nan_before_sending(
    single_client: tuple[AsyncClient, Recorder], encoder: str
) -> None:
    client, recorder = single_client
    async with client:
        with pytest.raises(ValueError, match="send None to clear the attribute"):
            await client.upsert_user(User("1", "a@example.com", attributes={"score": math.nan}))
    assert recorder.requests == []


async def test_a_single_upsert_and_a_batch_send_the_wire_form(
    single_client: tuple[AsyncClient, Recorder], encoder: str
) -> None:
    client, recorder = single_client
    user = User("1", "a@example.com", attributes={"at": EPOCH, "d": dt.date(2000, 1, 2)})
    async with client:
        await client.upsert_user(user)
        await client.batch(updated=[user], deleted=["2"])
    wire_user = {"id": "1", "email": "a@example.com", "at": "1970-01-01T00:00:00Z"}
    wire_user["d"] = "2000-01-02"
    assert json.loads(recorder.requests[0].content) == wire_user
    assert json.loads(recorder.requests[1].content) == {
        "updated": [wire_user],
        "deleted": [{"id": "2"}],
    }


# -- decoding: one refuser of NaN for every reader ------------------------------------


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_decode_json_refuses_the_constants_the_standard_library_would_read(constant: str) -> None:
    assert math.isnan(json.loads("NaN"))  # what the standard library alone would do
    with pytest.raises(ValueError, match=f"{constant.lstrip('-')} is not a JSON number"):
        wire.decode_json(f'{{"score": {constant}}}')


def test_decode_json_reads_ordinary_json_as_the_standard_library_does() -> None:
    text = '{"a": [1, 2.5, "x", null, true], "b": {"c": -0.0}}'
    assert wire.decode_json(text) == json.loads(text)


def test_sort_keys_gives_one_text_per_value_on_both_encoders(encoder: str) -> None:
    a = {"b": 1, "a": {"y": [{"d": 1, "c": 2}], "x": None}, "é": "ü"}
    b = {"é": "ü", "a": {"x": None, "y": [{"c": 2, "d": 1}]}, "b": 1}
    assert wire.encode_json(a, sort_keys=True) == wire.encode_json(b, sort_keys=True)
    assert wire.encode_json(a, sort_keys=True) == (
        '{"a":{"x":null,"y":[{"c":2,"d":1}]},"b":1,"é":"ü"}'.encode()
    )
    assert wire.encode_json(a) != wire.encode_json(b)  # unsorted: the order as built
    with pytest.raises(ValueError, match="NaN"):
        wire.encode_json({"b": float("nan")}, sort_keys=True)


#: Floats whose text orjson and the standard library once wrote differently
#: ("1e-7" / "1e-07", "0.00001" / "1e-05"), and some they always wrote alike.
FLOATS = [1e-7, 1.5e-6, 1e-5, 2.5e-5, 8.000081126279623e-05, 5e-324, 1e-300, 0.0001, 1e16, -0.0]


def test_sort_keys_writes_each_float_as_both_encoders_would_agree(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if wire._orjson is None:  # pragma: no cover - the [fast] extra is a dev dependency
        pytest.skip("orjson is not installed")
    value = {"f": FLOATS, "s": "1e-7 0.00001", "n": {"x": 1e-7}}
    with_orjson = wire.encode_json(value, sort_keys=True)
    monkeypatch.setattr(wire, "_orjson", None)
    assert wire.encode_json(value, sort_keys=True) == with_orjson
    assert b'"x":1e-07' in with_orjson, "the standard library's text, repr's"


@given(
    st.dictionaries(
        st.text(max_size=5),
        st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
        max_size=4,
    )
)
def test_the_sync_hash_is_the_same_with_and_without_orjson(value: dict[str, Any]) -> None:
    from activatepro_async._syncstate import content_hash

    fast, slow = with_and_without_orjson(lambda: content_hash(value))
    assert slow == fast


def test_the_sync_hash_of_a_user_without_such_floats_did_not_change() -> None:
    from activatepro_async._syncstate import content_hash

    user = {"id": "u1", "email": "anne-marie@example.com", "score": 0.5, "n": 3}
    user.update(tags=["x", "Anne-Marie"], big=1e16, small=0.0001)
    # The hash that version 1 states hold for this user (before the fix, either encoder).
    assert content_hash(user).hex() == "67d6a1373a437878b9cc4f4340e895aa"


def test_without_convert_both_encoders_write_dates_in_their_wire_form(encoder: str) -> None:
    value = {"d": dt.date(2000, 1, 2), "t": [dt.datetime(2015, 10, 2, 8, 23, 53, tzinfo=UTC)]}
    expected = b'{"d":"2000-01-02","t":["2015-10-02T08:23:53Z"]}'
    assert wire.encode_json(value) == expected
    assert wire.encode_json(value, sort_keys=True) == expected
    assert wire.item_encoder(trusted=True)(value) == expected, "the parts of a whole alike"


@pytest.mark.parametrize("sort_keys", [False, True])
def test_without_convert_both_encoders_refuse_a_naive_datetime(
    encoder: str, sort_keys: bool
) -> None:
    value = {"id": "1", "at": dt.datetime(2020, 1, 1)}
    with pytest.raises(ValueError, match=r"naive datetime .*give it a time zone"):
        wire.encode_json(value, sort_keys=sort_keys)


# -- UUIDs, enums, dataclasses: orjson's forms, on both encoders ----------------------


class Tier(enum.Enum):
    GOLD = "gold"
    PAIR = (1, 2)
    START = dt.date(2020, 1, 2)


class Level(enum.IntEnum):
    LOW = 1


class Ratio(float, enum.Enum):
    HALF = 0.5
    BAD = math.nan


class Reading(enum.Enum):
    MISSING = math.nan


class Colour(str, enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Address:
    city: str
    since: dt.date | None = None
    _cache: int = 0  # private: not sent (orjson's rule)


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    tier: Tier
    address: Address
    score: float = 1.5


REF = uuid.UUID("12345678-1234-5678-1234-567812345678")

plain_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    # A float with a negative exponent is the one known text difference (same
    # value; sort_keys settles it: test_sort_keys_writes_each_float_...).
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: "e-" not in repr(f)),
    st.text(max_size=5),
    st.uuids(),
    st.sampled_from([Tier.GOLD, Tier.PAIR, Tier.START, Level.LOW, Ratio.HALF, Colour.RED]),
    st.dates(),
)
nested_values = st.recursive(
    plain_values,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(max_size=3), inner, max_size=3),
        st.builds(Address, st.text(max_size=4), st.none() | st.dates(), st.integers()),
        st.builds(Plan, st.sampled_from(list(Tier)[:3]), st.builds(Address, st.text()), inner),
    ),
    max_leaves=8,
)


def _every_encoding(value: Any) -> list[bytes | str]:
    """What each way of encoding makes of ``value`` (or the error it raises)."""
    out: list[bytes | str] = []
    for encode in (
        wire.encode_json,
        functools.partial(wire.encode_json, sort_keys=True),
        lambda v: wire.encode_json_telling(v, convert=True)[0],
    ):
        try:
            out.append(encode(value))
        except (TypeError, ValueError) as exc:
            out.append(f"{type(exc).__name__}: {exc}")
    return out


@settings(max_examples=150)
@given(st.dictionaries(st.text(max_size=4), nested_values, max_size=4))
def test_both_encoders_write_the_same_bytes_for_uuids_enums_and_dataclasses(
    value: dict[str, Any],
) -> None:
    with_orjson, without = with_and_without_orjson(lambda: _every_encoding(value))
    assert without == with_orjson


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (REF, b'"12345678-1234-5678-1234-567812345678"'),
        (Tier.GOLD, b'"gold"'),
        (Tier.PAIR, b"[1,2]"),
        (Tier.START, b'"2020-01-02"'),  # the value in its own wire form
        (Level.LOW, b"1"),
        (Ratio.HALF, b"0.5"),
        (Colour.RED, b'"red"'),
        (Address("Oslo", dt.date(2001, 2, 3), _cache=7), b'{"city":"Oslo","since":"2001-02-03"}'),
        (Plan(Tier.GOLD, Address("Rome")),
         b'{"tier":"gold","address":{"city":"Rome","since":null},"score":1.5}'),
    ],
    ids=["uuid", "enum", "enum-tuple", "enum-date", "intenum", "float-enum", "str-enum",
         "dataclass", "nested-dataclass"],
)  # fmt: skip
def test_uuids_enums_and_dataclasses_are_sent_as_orjson_writes_them(
    encoder: str, value: Any, expected: bytes
) -> None:
    assert wire.encode_json({"v": value}) == b'{"v":' + expected + b"}"
    assert wire.encode_json_telling([value], convert=True)[0] == b"[" + expected + b"]"
    assert wire.item_encoder(trusted=True)(value) == expected, "the parts of a whole alike"


@pytest.mark.parametrize(
    "value",
    [Ratio.BAD, Reading.MISSING, Plan(Tier.GOLD, Address("x"), math.nan)],
    ids=["float-enum", "enum", "dataclass"],
)
@pytest.mark.parametrize("sort_keys", [False, True])
def test_a_nan_inside_an_enum_or_a_dataclass_is_refused_by_both_encoders(
    encoder: str, value: Any, sort_keys: bool
) -> None:
    # orjson wrote it as null, which clears the attribute: data lost without a word.
    with pytest.raises(ValueError, match="not JSON numbers: send None to clear"):
        wire.encode_json({"a": [value]}, sort_keys=sort_keys)


async def test_a_batch_of_users_holding_them_sends_the_same_body_on_both_encoders(
    make_client: Callable[..., AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    if wire._orjson is None:  # pragma: no cover - the [fast] extra is a dev dependency
        pytest.skip("orjson is not installed")
    users = [
        {"id": "1", "ref": REF, "tier": Tier.GOLD, "home": Address("Oslo", dt.date(2001, 2, 3))},
        {"id": "2", "level": Level.LOW, "plan": Plan(Tier.PAIR, Address("Rome"))},
    ]
    bodies = []
    for stdlib in (False, True):
        if stdlib:
            monkeypatch.setattr(wire, "_orjson", None)
        recorder = Recorder(httpx.Response(202, json={"trackingId": "t-1"}))
        async with make_client(recorder) as client:
            await client.upsert_many(users, wait=False)
            await client.upsert_user(
                User("3", "c@example.com", attributes={"plan": Plan(Tier.PAIR, Address("Rome"))})
            )
        bodies.append([request.content for request in recorder.requests])
    assert bodies[0] == bodies[1]
    assert json.loads(bodies[0][0])["updated"][0]["home"] == {"city": "Oslo", "since": "2001-02-03"}
