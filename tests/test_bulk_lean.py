"""The lean dict path of upsert_many (issue 14) keeps every guarantee of the per-user path.

The engine takes plain dicts and Users without looking at their values, and
leaves the conversion of dates and the refusal of what cannot be sent to one
encoder call per chunk; a chunk that fails goes the per-user way. These tests
pin what that must not change: the bytes sent (the same as converting each
user first), the local rejects with reason and position, and that what a
generator yielded is what goes out, also when it reuses one dict.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activatepro_async import AsyncClient, User
from activatepro_async import _wire as wire_module
from activatepro_async._wire import encode_json
from activatepro_async.models import user_to_wire

from .helpers import MakeClient, MockAPI, examples

pytestmark = pytest.mark.anyio

UTC = dt.timezone.utc
# Each input shape takes its own way through the engine: a list's iterator is
# read in slices without copies, a generator one item at a time with a copy.
SHAPES = ["list", "generator"]


def shaped(data: list[Any], shape: str) -> Iterable[Any]:
    return list(data) if shape == "list" else (item for item in data)


def reference_body(data: Iterable[Any]) -> bytes:
    """What the per-user path sends for ``data``: each user converted, then encoded alone."""
    parts = b",".join(encode_json(user_to_wire(u)) for u in data)
    return b'{"updated":[' + parts + b'],"deleted":[]}'


@pytest.fixture(params=["orjson", "stdlib"])
def encoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "stdlib":
        monkeypatch.setattr(wire_module, "_orjson", None)
    return str(request.param)


# -- what a generator yielded is what goes out --------------------------------


async def test_a_generator_that_reuses_one_dict_sends_each_user_it_yielded(
    api: MockAPI, client: AsyncClient
) -> None:
    def reusing(count: int) -> Iterator[dict[str, Any]]:
        row: dict[str, Any] = {}
        for i in range(count):
            row.clear()
            row.update(id=f"u{i}", email=f"u{i}@example.com", n=i)
            yield row

    result = await client.upsert_many(reusing(25), chunk_size=10, concurrency=1)
    sent = [user for body in api.accepted for user in body["updated"]]
    assert sent == [{"id": f"u{i}", "email": f"u{i}@example.com", "n": i} for i in range(25)]
    assert result.accepted == 25


async def test_a_generator_that_changes_a_dict_it_yielded_earlier_sends_what_it_yielded(
    api: MockAPI, client: AsyncClient
) -> None:
    def changing(count: int) -> Iterator[dict[str, Any]]:
        previous: dict[str, Any] | None = None
        for i in range(count):
            if previous is not None:
                previous["email"] = "changed-after-yield@example.com"
            previous = {"id": f"u{i}", "email": f"u{i}@example.com"}
            yield previous

    await client.upsert_many(changing(12), chunk_size=5, concurrency=1)
    sent = [user["email"] for body in api.accepted for user in body["updated"]]
    assert sent == [f"u{i}@example.com" for i in range(12)]


async def test_a_generator_reusing_one_user_object_sends_each_state_it_yielded(
    api: MockAPI, client: AsyncClient
) -> None:
    attributes: dict[str, Any] = {}
    user = User("u", "u@example.com", attributes=attributes)

    def reusing() -> Iterator[User]:
        for i in range(3):
            user.attributes["n"] = i  # the same User, its attributes changed between yields
            yield user

    await client.upsert_many(reusing(), chunk_size=3)
    assert [u["n"] for u in api.accepted[0]["updated"]] == [0, 1, 2]


async def test_dicts_of_a_list_changed_by_a_hook_after_their_chunk_was_built_are_sent_unchanged(
    api: MockAPI, client: AsyncClient
) -> None:
    # A list's dicts are not copied: the chunk is encoded before the run awaits,
    # and a hook runs only while the run awaits.
    data = [{"id": f"u{i}", "email": f"u{i}@example.com"} for i in range(30)]
    encoded_before_first_hook = 20  # chunk 0 was sent, chunk 1 built, when hook 0 runs

    def on_progress(_: object) -> None:
        for user in data:
            user["email"] = "changed@example.com"

    await client.upsert_many(data, chunk_size=10, concurrency=1, on_progress=on_progress)
    sent = [u["email"] for body in api.accepted for u in body["updated"]]
    assert sent[:encoded_before_first_hook] == [
        f"u{i}@example.com" for i in range(encoded_before_first_hook)
    ]


# -- the same bytes as the per-user path --------------------------------------


class Hiding(dict[str, Any]):
    """A dict subclass whose items() leaves out the keys starting with ``_``."""

    def items(self) -> Any:
        return [(k, v) for k, v in super().items() if not k.startswith("_")]

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self.items())

    def __len__(self) -> int:
        return len(self.items())


class Colour(str, enum.Enum):
    RED = "red"


def varied_users() -> list[Any]:
    berlin = dt.timezone(dt.timedelta(hours=2))
    at_ten = dt.datetime(2015, 10, 2, 10, 23, 53, tzinfo=berlin)
    new_year = dt.datetime(2020, 1, 1, tzinfo=UTC)
    return [
        {"id": "plain", "email": "p@example.com", "n": 1, "f": 0.5, "ok": True, "none": None},
        {"id": "aware", "email": "a@example.com", "at": at_ten},
        {"id": "date", "email": "d@example.com", "birthday": dt.date(1982, 8, 30)},
        {"id": "deep", "email": "e@example.com", "x": {"when": [dt.date(2000, 1, 2), (1, 2)]}},
        {"id": "sub", "email": "s@example.com", "prefs": Hiding(shown=1, _hidden=2)},
        Hiding(id="top", email="t@example.com", _secret="never sent"),
        User("user", "u@example.com", business_unit="DE", attributes={"at": new_year}),
    ]


def users_the_encoder_cannot_take_whole() -> list[Any]:
    """Values the chunk's encoder call leaves to the per-user path, which sends them."""
    return [
        {"id": "time", "email": "t@example.com", "opens": dt.time(8, 30)},
        {"id": "enum", "email": "c@example.com", "colour": Colour.RED},
        {"id": "big", "email": "b@example.com", "n": 2**70},
    ]


@pytest.mark.parametrize("shape", SHAPES)
async def test_every_kind_of_value_goes_out_as_the_per_user_path_would_send_it(
    api: MockAPI, client: AsyncClient, encoder: str, shape: str
) -> None:
    data = varied_users()
    result = await client.upsert_many(shaped(data, shape), raise_on_failure=False)
    assert result.rejected == ()
    assert api.bodies == [reference_body(data)]
    sent = {u["id"]: u for u in api.accepted[0]["updated"]}
    assert sent["aware"]["at"] == "2015-10-02T08:23:53Z"
    assert sent["date"]["birthday"] == "1982-08-30"
    assert sent["deep"]["x"] == {"when": ["2000-01-02", [1, 2]]}
    assert sent["sub"]["prefs"] == {"shown": 1}  # the subclass's items(), not its storage
    assert "_secret" not in sent["top"]
    assert sent["user"]["at"] == "2020-01-01T00:00:00Z"


@pytest.mark.parametrize("shape", SHAPES)
async def test_values_the_chunk_encoder_leaves_to_the_per_user_path_go_out_as_before(
    api: MockAPI, client: AsyncClient, encoder: str, shape: str
) -> None:
    data = varied_users() + users_the_encoder_cannot_take_whole()
    result = await client.upsert_many(shaped(data, shape), raise_on_failure=False)
    assert result.rejected == ()
    assert api.bodies == [reference_body(data)]
    sent = {u["id"]: u for u in api.accepted[0]["updated"]}
    assert sent["big"]["n"] == 2**70
    assert sent["time"]["opens"] == "08:30:00", "on both encoders"
    assert sent["enum"]["colour"] == "red"
    assert sent["sub"]["prefs"] == {"shown": 1}


_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
    | st.dates()
    | st.datetimes(timezones=st.just(UTC)),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
_users = st.lists(
    st.dictionaries(st.sampled_from(["a", "b", "c", "firstName"]), _values, max_size=4),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(rows=_users, shape=st.sampled_from(SHAPES))
async def test_generated_users_go_out_as_the_per_user_path_would_send_them(
    make_client: MakeClient, rows: list[dict[str, Any]], shape: str
) -> None:
    api = MockAPI()
    data = [{"id": f"u{i}", "email": f"u{i}@example.com", **row} for i, row in enumerate(rows)]
    async with make_client(api) as client:
        result = await client.upsert_many(shaped(data, shape), chunk_size=5)
    assert result.accepted == len(data)
    sent = b"".join(api.bodies)
    expected = b"".join(reference_body(data[i : i + 5]) for i in range(0, len(data), 5))
    assert sent == expected


# -- local rejects keep their reason and position -----------------------------


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_bad_user_is_rejected_with_its_position_and_its_chunk_mates_are_sent(
    api: MockAPI, client: AsyncClient, encoder: str, shape: str
) -> None:
    good = [{"id": f"ok{i}", "email": f"ok{i}@example.com", "cleared": None} for i in range(6)]
    data: list[Any] = [
        good[0],
        {"id": "deepnan", "email": "n@example.com", "x": {"y": [1.0, {"z": math.nan}]}},
        good[1],
        {"id": "naive", "email": "v@example.com", "at": [dt.datetime(2020, 1, 1)]},
        good[2],
        {"id": "", "email": "empty-id@example.com"},
        good[3],
        User("usernaive", "un@example.com", attributes={"at": dt.datetime(2021, 5, 5)}),
        good[4],
        {"id": "inf", "email": "i@example.com", "score": -math.inf},
        good[5],
    ]
    result = await client.upsert_many(shaped(data, shape), raise_on_failure=False)
    rejected = [(r.position, r.user_id, r.local) for r in result.rejected]
    assert rejected == [
        (1, "deepnan", True),
        (3, "naive", True),
        (5, None, True),
        (7, "usernaive", True),
        (9, "inf", True),
    ]
    reasons = [r.reason for r in result.rejected]
    assert "NaN" in reasons[0]
    assert "naive datetime" in reasons[1]
    assert "naive datetime" in reasons[3]
    assert "id" in reasons[2]
    assert api.bodies == [reference_body(good)]
    assert result.accepted == 6


async def test_a_user_without_id_among_plain_dicts_is_rejected_by_the_per_user_path(
    api: MockAPI, client: AsyncClient
) -> None:
    data = [{"id": "a", "email": "a@example.com"}, {"email": "b@example.com"}, {"id": 3}]
    result = await client.upsert_many(data, raise_on_failure=False)
    assert [(r.position, r.user_id, r.errors[0].pointer) for r in result.rejected] == [
        (1, None, "/id"),
        (2, None, "/id"),
    ]
    assert "no id" in result.rejected[0].reason
    assert api.arrivals == [["a"]]


async def test_a_chunk_over_max_chunk_bytes_with_dates_is_split_and_converted(
    api: MockAPI, client: AsyncClient, encoder: str
) -> None:
    data = [
        {
            "id": f"u{i}",
            "email": f"u{i}@example.com",
            "on": dt.date(2020, 1, 1 + i % 28),
            "x": "x" * 300,
        }
        for i in range(40)
    ]
    result = await client.upsert_many(data, max_chunk_bytes=2048, concurrency=1)
    assert result.accepted == 40
    assert len(api.bodies) > 1
    assert all(len(body) <= 2048 for body in api.bodies)
    sent = [u for body in api.bodies for u in json.loads(body)["updated"]]
    assert sent == [user_to_wire(u) for u in data]
