"""upsert_many and delete_many against an independent mock of the batch API.

``MockAPI`` (tests/helpers.py) is written from the reference and DECISIONS.md, not from the
emulator, so these tests do not share the emulator's mistakes; the same
behaviours run against the emulator in ``test_bulk_emulator.py``.
"""

from __future__ import annotations

import datetime as dt
import inspect
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest

from activatepro_async import (
    AsyncClient,
    AuthenticationError,
    BulkError,
    BulkProgress,
    ChunkOutcome,
    ErrorCode,
    NotFoundError,
    PermissionDeniedError,
    RetryPolicy,
    ServerError,
    User,
    ValidationError,
)
from activatepro_async import _wire as wire_module
from activatepro_async import bulk as bulk_module

from .helpers import API_KEY, FakeTime, MakeClient, MockAPI, error_reply

pytestmark = pytest.mark.anyio


def users(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"id": f"u{i}", "email": f"user{i}@example.com", "firstName": "Ada"}
        for i in range(start, start + count)
    ]


# -- chunking --------------------------------------------------------------


async def test_2500_users_go_out_in_chunks_of_1000_1000_and_500(
    api: MockAPI, client: AsyncClient
) -> None:
    result = await client.upsert_many(users(2500), concurrency=1)
    assert [len(ids) for ids in api.arrivals] == [1000, 1000, 500]
    assert result.accepted == result.submitted == 2500
    assert result.chunks == 3
    assert len(result.tracking_ids) == 3


async def test_chunk_size_sets_the_users_per_chunk(api: MockAPI, client: AsyncClient) -> None:
    await client.upsert_many(users(20), chunk_size=7, concurrency=1)
    assert [len(ids) for ids in api.arrivals] == [7, 7, 6]


async def test_users_keep_input_order_within_and_across_chunks_at_concurrency_one(
    api: MockAPI, client: AsyncClient
) -> None:
    data = users(2345)
    await client.upsert_many(data, chunk_size=100, concurrency=1)
    assert [uid for ids in api.arrivals for uid in ids] == [u["id"] for u in data]


async def test_each_chunk_is_a_contiguous_run_of_the_input_at_any_concurrency(
    api: MockAPI, client: AsyncClient
) -> None:
    data = users(1000)
    await client.upsert_many(data, chunk_size=30, concurrency=8)
    chunks = sorted(api.arrivals, key=lambda ids: int(ids[0][1:]))
    assert [uid for ids in chunks for uid in ids] == [u["id"] for u in data]


@pytest.mark.parametrize("orjson", [True, False], ids=["orjson", "stdlib"])
async def test_chunks_are_split_so_no_body_is_over_max_chunk_bytes(
    api: MockAPI, client: AsyncClient, monkeypatch: pytest.MonkeyPatch, orjson: bool
) -> None:
    if not orjson:
        monkeypatch.setattr(wire_module, "_orjson", None)
    data = [
        {"id": f"u{i}", "email": f"u{i}@example.com", "firstName": "x" * 500} for i in range(60)
    ]
    data[30]["score"] = math.nan  # the chunk cannot be encoded whole
    result = await client.upsert_many(
        data, max_chunk_bytes=4096, concurrency=1, raise_on_failure=False
    )
    assert all(len(body) <= 4096 for body in api.bodies)
    assert len(api.bodies) > 1
    sent = [u for u in data if u["id"] != "u30"]
    assert [uid for ids in api.arrivals for uid in ids] == [u["id"] for u in sent]
    assert api.users == {u["id"]: u for u in sent}
    assert [r.user_id for r in result.rejected] == ["u30"]
    assert result.accepted == 59


async def test_a_user_over_the_api_limit_of_one_mib_is_rejected_locally_and_not_sent(
    api: MockAPI, client: AsyncClient
) -> None:
    big = {"id": "big", "email": "big@example.com", "notes": ["x" * 16_000] * 70}
    result = await client.upsert_many([*users(2), big, *users(2, start=2)], raise_on_failure=False)
    assert "big" not in {uid for ids in api.arrivals for uid in ids}
    [rejected] = result.rejected
    assert (rejected.position, rejected.user_id, rejected.local) == (2, "big", True)
    assert "1 MiB" in rejected.reason
    assert result.accepted == 4


async def test_a_user_larger_than_max_chunk_bytes_is_rejected_locally(
    api: MockAPI, client: AsyncClient
) -> None:
    data = [*users(1), {"id": "wide", "email": "w@example.com", "firstName": "x" * 5000}]
    result = await client.upsert_many(data, max_chunk_bytes=2048, raise_on_failure=False)
    [rejected] = result.rejected
    assert (rejected.user_id, rejected.errors[0].code) == ("wide", ErrorCode.MAX_BATCH_SIZE)
    assert "max_chunk_bytes" in rejected.reason
    assert api.arrivals == [["u0"]]


# -- local rejections ------------------------------------------------------


async def test_items_the_sdk_cannot_send_are_rejected_with_their_position_and_reason(
    api: MockAPI, client: AsyncClient
) -> None:
    naive = dt.datetime(2020, 1, 1)  # no time zone: the point of the test
    data: list[Any] = [
        {"id": "ok0", "email": "a@example.com"},
        42,
        {"email": "no-id@example.com"},
        {"id": 7, "email": "int-id@example.com"},
        User("naive", "n@example.com", attributes={"createdAt": naive}),
        {"id": "nan", "email": "nan@example.com", "score": math.nan},
        {"id": "inf", "email": "inf@example.com", "deep": {"x": [math.inf]}},
        {"id": "ok1", "email": "b@example.com"},
    ]
    result = await client.upsert_many(data, raise_on_failure=False)
    assert [(r.position, r.user_id, r.local) for r in result.rejected] == [
        (1, None, True),
        (2, None, True),
        (3, None, True),
        (4, "naive", True),
        (5, "nan", True),
        (6, "inf", True),
    ]
    assert "int" in result.rejected[0].reason
    assert "no id" in result.rejected[1].reason
    assert "naive datetime" in result.rejected[3].reason
    assert api.arrivals == [["ok0", "ok1"]]
    assert result.accepted == 2


@pytest.mark.parametrize("orjson", [True, False], ids=["orjson", "stdlib"])
async def test_both_encoders_send_the_same_json(
    api: MockAPI, client: AsyncClient, monkeypatch: pytest.MonkeyPatch, orjson: bool
) -> None:
    if not orjson:
        monkeypatch.setattr(wire_module, "_orjson", None)
    data = [
        {"id": "é", "email": "a@example.com", "n": 2**63 + 1, "f": 0.1, "nested": {"a": [1, None]}},
        User("b", "b@example.com", attributes={"birthday": dt.date(1982, 8, 30), "x": None}),
        {"id": "nan", "email": "n@example.com", "f": math.nan},
    ]
    result = await client.upsert_many(data, raise_on_failure=False)
    assert [r.user_id for r in result.rejected] == ["nan"]
    assert api.accepted[0]["updated"] == [
        {"id": "é", "email": "a@example.com", "n": 2**63 + 1, "f": 0.1, "nested": {"a": [1, None]}},
        {"id": "b", "email": "b@example.com", "birthday": "1982-08-30", "x": None},
    ]


# -- what the API says -----------------------------------------------------


async def test_a_partial_400_names_each_rejected_user_by_id_and_input_position(
    api: MockAPI, client: AsyncClient
) -> None:
    data: list[Any] = users(10)
    data[3]["email"] = "not-an-email"
    data[7] = {"id": "u7", "email": "bad email"}
    data.insert(5, "not a user")  # a local reject shifts the input positions
    result = await client.upsert_many(data, chunk_size=4, raise_on_failure=False)
    by_id = {r.user_id: r for r in result.rejected}
    assert by_id["u3"].position == 3
    assert by_id["u7"].position == 8
    assert [e.code for e in by_id["u3"].errors] == [ErrorCode.INVALID_EMAIL]
    assert by_id["u3"].errors[0].pointer == "/updated/3/email"
    assert not by_id["u3"].local
    assert result.accepted == 8
    assert set(api.users) == {f"u{i}" for i in range(10)} - {"u3", "u7"}


async def test_errors_that_name_no_user_are_kept_as_unattributed(make_client: MakeClient) -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        return error_reply(400, [(10, "/updated/999/email"), (10, "")], trackingId="t1")

    api = MockAPI()
    api.batch = reply  # type: ignore[method-assign]
    client = make_client(api)
    result = await client.upsert_many(users(3), raise_on_failure=False)
    assert [e.pointer for e in result.unattributed_errors] == ["/updated/999/email", ""]
    assert result.accepted == 3
    assert not result.ok


@pytest.mark.parametrize(
    "pointer",
    [
        "/updated/²/email",  # str.isdigit() but not a number: int() raised out of the run
        "/updated/" + "9" * 5000 + "/email",  # int() of > 4300 digits raises
        "/updated/\u0661/email",  # ARABIC-INDIC ONE: int() reads 1, but RFC 6901 is ASCII
        "/updated/\uff11/email",  # FULLWIDTH ONE
        "/updated/01/email",  # a leading zero
        "/updated/-1/email",
        "/updated/-",
        "/updated/+1",
        "/updated/1.0",
        "/updated/ 1/email",
        "/updated/3/email",  # past the chunk of 3
        "/updated/999999999999/email",
        "/deleted/1",  # the other list
        "updated/1/email",  # not a pointer
        "/updated",
        "",
    ],
)
async def test_a_pointer_that_names_no_user_of_the_chunk_is_unattributed(
    make_client: MakeClient, pointer: str
) -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        return error_reply(400, [(4, pointer), (4, "/updated/2/email")], trackingId="t1")

    api = MockAPI()
    api.batch = reply  # type: ignore[method-assign]
    result = await make_client(api).upsert_many(users(3), raise_on_failure=False)
    assert [e.pointer for e in result.unattributed_errors] == [pointer]
    assert [(r.position, r.user_id) for r in result.rejected] == [(2, "u2")]
    assert result.accepted == 2
    assert result.tracking_ids == ("t1",)


async def test_a_chunk_that_fails_after_retries_is_reported_and_the_run_goes_on(
    make_client: MakeClient,
) -> None:
    api = MockAPI(*[500] * 6)  # the first chunk's try and its 5 retries
    client = make_client(api)
    result = await client.upsert_many(
        users(30), chunk_size=10, concurrency=1, raise_on_failure=False
    )
    [failed] = result.failed_chunks
    assert failed.user_ids == tuple(f"u{i}" for i in range(10))
    assert failed.positions == tuple(range(10))
    assert isinstance(failed.exception, ServerError)
    assert result.failed == 10
    assert result.failed_user_ids == [f"u{i}" for i in range(10)]
    assert result.accepted == 20
    assert set(api.users) == {f"u{i}" for i in range(10, 30)}


async def test_a_whole_batch_refused_without_tracking_id_is_a_failed_chunk(
    make_client: MakeClient,
) -> None:
    api = MockAPI(400)
    result = await make_client(api).upsert_many(users(5), raise_on_failure=False)
    assert isinstance(result.failed_chunks[0].exception, ValidationError)


async def test_a_dropped_connection_is_retried_and_the_chunk_is_stored(
    make_client: MakeClient,
) -> None:
    api = MockAPI("drop", "drop")
    result = await make_client(api).upsert_many(users(5))
    assert result.accepted == 5
    assert result.retries == 2
    assert len(api.users) == 5


async def test_upsert_many_raises_bulk_error_holding_the_result_when_users_were_rejected(
    api: MockAPI, client: AsyncClient
) -> None:
    data = users(3)
    data[1]["email"] = "nope"
    with pytest.raises(BulkError) as caught:
        await client.upsert_many(data)
    assert caught.value.result.accepted == 2
    assert [r.user_id for r in caught.value.result.rejected] == ["u1"]
    assert "u1" in str(caught.value)


async def test_raise_for_failures_raises_only_when_something_failed(
    api: MockAPI, client: AsyncClient
) -> None:
    good = await client.upsert_many(users(3))
    good.raise_for_failures()
    bad = await client.upsert_many([*users(1), 5], raise_on_failure=False)
    with pytest.raises(BulkError):
        bad.raise_for_failures()


@pytest.mark.parametrize("status", [401, 403])
async def test_a_401_or_403_stops_the_run_at_once(make_client: MakeClient, status: int) -> None:
    api = MockAPI(status)
    consumed = 0

    def endless() -> Iterator[dict[str, Any]]:
        nonlocal consumed
        while True:
            consumed += 1
            yield {"id": f"u{consumed}", "email": f"u{consumed}@example.com"}

    client = make_client(api)
    with pytest.raises(BulkError) as caught:
        await client.upsert_many(endless(), chunk_size=10, concurrency=4)
    result = caught.value.result
    expected = AuthenticationError if status == 401 else PermissionDeniedError
    assert isinstance(result.aborted_by, expected)
    assert caught.value.__cause__ is result.aborted_by
    assert len(api.arrivals) <= 4 + 1
    assert result.submitted == consumed
    assert result.accepted + len(result.rejected) + result.failed == result.submitted


async def test_a_401_raises_even_with_raise_on_failure_false(make_client: MakeClient) -> None:
    with pytest.raises(BulkError):
        await make_client(MockAPI(401)).upsert_many(users(5), raise_on_failure=False)


# -- concurrency -----------------------------------------------------------


async def test_requests_in_flight_reach_but_never_exceed_concurrency(
    api: MockAPI, client: AsyncClient
) -> None:
    async def linger(_: MockAPI) -> None:
        for _ in range(20):  # yield to the other workers, so that requests overlap
            await anyio.lowlevel.checkpoint()

    api.hold = linger
    await client.upsert_many(users(400), chunk_size=10, concurrency=3)
    assert api.max_in_flight == 3


def barrier(parties: int) -> Callable[[MockAPI], Awaitable[None]]:
    """A hold that keeps the first ``parties`` requests until all have arrived."""
    arrived = 0
    released = anyio.Event()

    async def hold(_: MockAPI) -> None:
        nonlocal arrived
        arrived += 1
        if arrived == parties:
            released.set()
        if arrived <= parties:
            await released.wait()

    return hold


@pytest.mark.parametrize("status", [429, 503])
async def test_a_burst_of_429_or_503_halves_concurrency_once_and_successes_restore_it(
    make_client: MakeClient, status: int
) -> None:
    api = MockAPI(*[status] * 8)
    api.hold = barrier(8)  # the 8 first requests are all in flight when they fail
    seen: list[int] = []
    result = await make_client(api).upsert_many(
        users(600),
        chunk_size=10,
        concurrency=8,
        on_progress=lambda p: seen.append(p.concurrency),
    )
    assert seen[0] == 4  # halved once for the whole burst, not eight times
    assert seen[-1] == 8  # additive increase back to the ceiling
    assert seen == sorted(seen)
    assert result.retries == 8
    assert result.accepted == 600


async def test_after_a_429_fewer_requests_are_in_flight(make_client: MakeClient) -> None:
    api = MockAPI(*[429] * 8)
    api.hold = barrier(8)
    await make_client(api).upsert_many(users(200), chunk_size=10, concurrency=8)
    # The 8 first requests and their 8 retries hold their slots; every request
    # after them was sent under the halved limit (4, growing by 1/limit a chunk).
    assert max(api.in_flight_at_arrival[16:20]) <= 5


async def test_concurrency_is_clamped_to_the_http_pool(caplog: pytest.LogCaptureFixture) -> None:
    api = MockAPI()
    http = httpx.AsyncClient(limits=httpx.Limits(max_connections=2))
    http._transport = api.transport  # a pool-sized client whose requests reach the mock
    http._transport._pool = http._transport  # type: ignore[attr-defined]
    http._transport._max_connections = 2  # type: ignore[attr-defined]
    async with http:
        client = AsyncClient(API_KEY, base_url="https://api.example.test", http_client=http)
        await client.upsert_many(users(200), chunk_size=10, concurrency=8)
    assert api.max_in_flight == 2
    assert "max_connections 2" in caplog.text


# -- the input -------------------------------------------------------------


async def test_an_async_iterable_is_consumed_like_a_list(api: MockAPI, client: AsyncClient) -> None:
    async def generate() -> AsyncIterator[dict[str, Any]]:
        for user in users(1500):
            await anyio.lowlevel.checkpoint()
            yield user

    result = await client.upsert_many(generate(), concurrency=2)
    assert result.accepted == 1500
    assert len(api.users) == 1500


async def test_the_input_is_read_only_as_fast_as_chunks_are_sent(
    api: MockAPI, client: AsyncClient
) -> None:
    consumed = 0
    lead: list[int] = []

    def generate() -> Iterator[dict[str, Any]]:
        nonlocal consumed
        for user in users(20_000):
            consumed += 1
            yield user

    async def hold(mock: MockAPI) -> None:
        lead.append(consumed - 10 * len(mock.accepted))

    api.hold = hold
    await client.upsert_many(generate(), chunk_size=10, concurrency=4)
    # At most the chunks in flight, the one handed over and the one being built.
    assert max(lead) <= 10 * (4 + 2)


async def test_an_exception_from_the_input_raises_bulk_error_after_sending_what_was_read(
    api: MockAPI, client: AsyncClient
) -> None:
    def broken() -> Iterator[dict[str, Any]]:
        yield from users(25)
        raise OSError("disk gone")

    with pytest.raises(BulkError) as caught:
        await client.upsert_many(broken(), chunk_size=10)
    assert isinstance(caught.value.__cause__, OSError)
    assert caught.value.result.accepted == 25
    assert len(api.users) == 25


@pytest.mark.parametrize("bad", ["u1", User("u1", "a@example.com"), {"id": "u1"}])
async def test_one_user_instead_of_an_iterable_is_a_type_error(
    client: AsyncClient, bad: Any
) -> None:
    with pytest.raises(TypeError, match="iterable"):
        await client.upsert_many(bad)


@pytest.mark.parametrize(
    ("option", "value"),
    [("chunk_size", 0), ("chunk_size", 1001), ("concurrency", 0), ("max_chunk_bytes", 10)],
)
async def test_out_of_range_options_are_refused(
    client: AsyncClient, option: str, value: int
) -> None:
    with pytest.raises(ValueError, match=option):
        await client.upsert_many(users(1), **{option: value})


# -- progress and waiting --------------------------------------------------


async def test_on_progress_may_be_async_and_sees_every_chunk_in_growing_counts(
    client: AsyncClient,
) -> None:
    seen: list[BulkProgress] = []

    async def on_progress(progress: BulkProgress) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(progress)

    await client.upsert_many(users(95), chunk_size=10, on_progress=on_progress)
    assert [p.chunks_done for p in seen] == list(range(1, 11))
    assert [p.accepted for p in seen] == sorted(p.accepted for p in seen)
    assert seen[-1].accepted == 95
    assert sorted(pos for p in seen for pos in p.chunk_positions) == list(range(95))
    assert all(p.chunk_tracking_id for p in seen)


async def test_an_exception_from_on_progress_stops_the_run(client: AsyncClient) -> None:
    def on_progress(progress: BulkProgress) -> None:
        raise RuntimeError("progress bar broke")

    with pytest.raises(BulkError) as caught:
        await client.upsert_many(users(500), chunk_size=10, concurrency=1, on_progress=on_progress)
    assert isinstance(caught.value.result.aborted_by, RuntimeError)
    assert caught.value.result.chunks < 50


# -- per-chunk outcomes (on_chunk) ------------------------------------------


def mixed_input() -> list[Any]:
    """Valid users, API rejects (bad emails), local rejects (not a user, NaN, too big)."""
    data: list[Any] = users(60)
    for i in range(0, 60, 7):
        data[i] = {**data[i], "email": "no-at-sign"}
    data[3] = 42
    data[11] = {"id": "nan", "email": "n@example.com", "score": math.nan}
    data[40] = {"id": "big", "email": "b@example.com", "blob": "x" * (1024 * 1024)}
    return data


def assert_partition(outcomes: list[ChunkOutcome], result: Any) -> None:
    positions = [p for o in outcomes for p in o.positions]
    assert sorted(positions) == list(range(result.submitted))  # each user exactly once
    assert sum(o.accepted for o in outcomes) == result.accepted
    assert sum(o.failed for o in outcomes) == result.failed
    got = sorted((r for o in outcomes for r in o.rejected), key=lambda r: r.position)
    assert tuple(got) == result.rejected


@pytest.mark.parametrize("hook_kind", ["sync", "async"])
async def test_on_chunk_hands_over_every_user_exactly_once_with_what_became_of_it(
    api: MockAPI, client: AsyncClient, hook_kind: str
) -> None:
    api.script = [500] * 6  # chunk 0 fails after all 5 retries
    outcomes: list[ChunkOutcome] = []

    async def on_chunk_async(outcome: ChunkOutcome) -> None:
        await anyio.lowlevel.checkpoint()
        outcomes.append(outcome)

    hook = outcomes.append if hook_kind == "sync" else on_chunk_async
    result = await client.upsert_many(
        mixed_input(), chunk_size=10, concurrency=1, on_chunk=hook, raise_on_failure=False
    )
    assert_partition(outcomes, result)
    local = [o for o in outcomes if o.index is None]
    assert {r.position for o in local for r in o.rejected} == {3, 11, 40}
    assert all(r.local for o in local for r in o.rejected)
    [failed] = [o for o in outcomes if o.exception is not None]
    assert isinstance(failed.exception, ServerError)
    assert (failed.index, failed.positions[:2], failed.accepted, failed.rejected) == (
        0,
        (0, 1),
        0,
        (),
    )
    for o in outcomes:
        if o.tracking_id is not None:
            assert o.tracking_id in result.tracking_ids
            assert all(r.user_id == o.user_ids[o.positions.index(r.position)] for r in o.rejected)
            assert all(r.errors[0].code == ErrorCode.INVALID_EMAIL for r in o.rejected)
    # A local reject comes before every chunk holding users read after it.
    for at, outcome in enumerate(outcomes):
        if outcome.index is None:
            later = [
                o
                for o in outcomes
                if o.index is not None and max(o.positions) > outcome.positions[-1]
            ]
            assert all(outcomes.index(o) > at for o in later)


async def test_on_chunk_streams_outcomes_while_the_run_goes_on(
    api: MockAPI, client: AsyncClient
) -> None:
    outcomes: list[ChunkOutcome] = []
    seen_before_last_request: list[int] = []

    async def hold(api: MockAPI) -> None:
        if len(api.arrivals) == 4:  # the fifth request (arrivals count after hold)
            seen_before_last_request.append(len(outcomes))

    api.hold = hold
    await client.upsert_many(users(50), chunk_size=10, concurrency=1, on_chunk=outcomes.append)
    assert seen_before_last_request == [4]  # chunks 0-3 were handed over during the run
    assert [o.index for o in outcomes] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("stop", [401, "input"])
async def test_on_an_early_stop_on_chunk_still_sees_every_user_before_bulk_error(
    api: MockAPI, client: AsyncClient, stop: int | str
) -> None:
    outcomes: list[ChunkOutcome] = []

    def source() -> Iterator[Any]:
        yield from mixed_input()[:35]
        if stop == "input":
            raise ValueError("line 36 is not JSON")

    if stop == 401:

        async def hold(api: MockAPI) -> None:
            if len(api.arrivals) == 3:  # the fourth batch request gets a 401
                api.script.append(401)

        api.hold = hold
    with pytest.raises(BulkError) as caught:
        await client.upsert_many(source(), chunk_size=5, concurrency=2, on_chunk=outcomes.append)
    result = caught.value.result
    assert result.aborted_by is not None
    assert_partition(outcomes, result)
    if stop == 401:
        assert result.failed_chunks  # in flight or not sent: failed, and handed over
        assert any(o.exception is result.aborted_by for o in outcomes)


async def test_a_raising_on_chunk_stops_the_run_and_is_not_called_again(
    client: AsyncClient,
) -> None:
    calls = 0

    def on_chunk(outcome: ChunkOutcome) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("the rejects sink is full")

    with pytest.raises(BulkError) as caught:
        await client.upsert_many(users(500), chunk_size=10, concurrency=2, on_chunk=on_chunk)
    assert calls == 1
    result = caught.value.result
    assert isinstance(result.aborted_by, RuntimeError)
    assert result.accepted + len(result.rejected) + result.failed == result.submitted


async def test_wait_polls_every_tracking_id_to_processed_and_sums_the_totals(
    api: MockAPI, client: AsyncClient
) -> None:
    api.pending_polls = 2
    data = users(25)
    data[4]["email"] = "broken"
    result = await client.upsert_many(data, chunk_size=10, wait=True, raise_on_failure=False)
    assert set(api.polls) == set(result.tracking_ids)
    assert all(count == 3 for count in api.polls.values())
    assert result.tracking is not None
    assert (result.tracking.total, result.tracking.success, result.tracking.error) == (25, 24, 1)
    assert result.processing_errors == 0


async def test_a_tracking_id_that_cannot_be_followed_is_reported(
    api: MockAPI, client: AsyncClient
) -> None:
    api.pending_polls = 10**9
    result = await client.upsert_many(users(5), wait=True, wait_timeout=3.0, raise_on_failure=False)
    [failure] = result.tracking_failures
    assert failure.tracking_id == result.tracking_ids[0]
    assert not result.ok


# -- cancellation ----------------------------------------------------------


async def test_cancelling_the_run_cancels_every_request_and_leaves_no_task(
    api: MockAPI, client: AsyncClient
) -> None:
    before = len(anyio.get_running_tasks())

    with anyio.CancelScope() as scope:

        async def hold(mock: MockAPI) -> None:
            if mock.in_flight == 4:
                scope.cancel()
            await anyio.Event().wait()  # never answered: only a cancel ends it

        api.hold = hold
        await client.upsert_many(users(10_000), chunk_size=10, concurrency=4)

    assert scope.cancelled_caught
    assert len(api.in_flight_at_arrival) == 4
    assert api.in_flight == 0  # every request was cancelled, none left hanging
    assert len(anyio.get_running_tasks()) == before


async def test_a_cancelled_run_logs_its_counts_so_far(
    client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with anyio.CancelScope() as scope:

        def on_progress(progress: BulkProgress) -> None:
            if progress.chunks_done == 2:
                scope.cancel()

        await client.upsert_many(users(1000), chunk_size=10, concurrency=1, on_progress=on_progress)
    assert "bulk upsert cancelled; so far: upsert: " in caplog.text
    assert "20 accepted" in caplog.text


# -- delete_many -----------------------------------------------------------


async def test_delete_many_deletes_ids_users_and_mappings_in_chunks(
    api: MockAPI, client: AsyncClient
) -> None:
    await client.upsert_many(users(30))
    items: list[Any] = [f"u{i}" for i in range(20)]
    items += [User("u20", "user20@example.com"), {"id": "u21"}, "", 3]
    result = await client.delete_many(items, chunk_size=10, raise_on_failure=False)
    assert set(api.users) == {f"u{i}" for i in range(22, 30)}
    assert [(r.position, r.local) for r in result.rejected] == [(22, True), (23, True)]
    assert result.accepted == 22
    assert all(body["updated"] == [] for body in api.accepted[-3:])


async def test_the_counts_always_add_up(make_client: MakeClient, fake_time: FakeTime) -> None:
    api = MockAPI(500, 429, "drop", *[503] * 6)
    data: list[Any] = users(57)
    data[3] = None
    data[9]["email"] = "x"
    client = make_client(api, retry=RetryPolicy(max_retries=2, jitter=None, sleep=fake_time.sleep))
    result = await client.upsert_many(data, chunk_size=5, concurrency=3, raise_on_failure=False)
    assert result.accepted + len(result.rejected) + result.failed == result.submitted == 57


@pytest.mark.parametrize("method", ["upsert_many", "delete_many"])
def test_the_default_byte_cap_is_the_documented_16_mib(method: str) -> None:
    parameters = inspect.signature(getattr(AsyncClient, method)).parameters
    assert parameters["max_chunk_bytes"].default == bulk_module.DEFAULT_MAX_CHUNK_BYTES
    assert bulk_module.DEFAULT_MAX_CHUNK_BYTES == 16 * 1024 * 1024


async def test_the_repr_of_a_result_counts_its_lists_instead_of_showing_them(
    client: AsyncClient,
) -> None:
    result = await client.upsert_many([*users(3), *range(1000)], raise_on_failure=False)
    assert "rejected=<1000 items>" in repr(result)
    assert len(repr(result)) < 1000


async def test_wait_for_all_reports_each_id_in_order_and_never_raises(
    api: MockAPI, client: AsyncClient
) -> None:
    result = await client.upsert_many(users(30), chunk_size=10, concurrency=1)
    ids = [result.tracking_ids[0], "gone", *result.tracking_ids[1:]]
    done: list[int] = []
    statuses = await bulk_module.wait_for_all(
        client, ids, concurrency=2, on_done=lambda i, _: done.append(i)
    )
    assert sorted(done) == [0, 1, 2, 3]
    assert isinstance(statuses[1], NotFoundError)  # 404: reported, not raised
    assert [s.total for s in statuses if not isinstance(s, Exception)] == [10, 10, 10]
    assert await bulk_module.wait_for_all(client, []) == []
