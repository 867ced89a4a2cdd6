"""upsert_many and delete_many against the emulator, in-process: what ends up
stored, under faults, for any input (hypothesis), and at 100,000 users."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import anyio
import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from activatepro_async import (
    AsyncClient,
    AuthenticationError,
    BulkError,
    BulkProgress,
    BulkResult,
    ErrorCode,
    RetryPolicy,
    ServerError,
    User,
)
from activatepro_async.emulator import Emulator, Faults

from .helpers import FakeTime, examples

pytestmark = pytest.mark.anyio

KEY = "test-key"
FIVE_XX = ("500", "502", "503", "504")


def fake_retry(max_retries: int = 5) -> RetryPolicy:
    """Retries that wait on a fake clock: the tests never really sleep."""
    fake = FakeTime()
    return RetryPolicy(max_retries=max_retries, jitter=None, sleep=fake.sleep, clock=fake.clock)


def connect(emulator: Emulator, **kwargs: Any) -> AsyncClient:
    kwargs.setdefault("retry", fake_retry())
    return AsyncClient(api_key=kwargs.pop("api_key", KEY), transport=emulator.transport(), **kwargs)


@pytest.fixture
def emulator() -> Emulator:
    return Emulator(api_keys=(KEY,))


@pytest.fixture
async def client(emulator: Emulator) -> AsyncIterator[AsyncClient]:
    async with connect(emulator) as client:
        yield client


def users(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"id": f"u{i}", "email": f"user{i}@example.com", "firstName": f"Ada {i}"}
        for i in range(start, start + count)
    ]


def batch_ids(emulator: Emulator) -> list[list[str]]:
    """The user ids of every batch request the emulator saw, in arrival order."""
    out = []
    for request in emulator.requests:
        if request.method == "POST" and request.path == "/users/batch":
            body = request.json()
            out.append([item["id"] for item in [*body["updated"], *body["deleted"]]])
    return out


def stored(emulator: Emulator) -> dict[str, dict[str, Any]]:
    """The emulator's users without the server-made ``xngId``."""
    return {
        uid: {k: v for k, v in user.items() if k != "xngId"} for uid, user in emulator.users.items()
    }


async def test_2500_users_are_stored_from_chunks_of_1000_1000_and_500(
    emulator: Emulator, client: AsyncClient
) -> None:
    data = users(2500)
    result = await client.upsert_many(data, concurrency=1)
    assert [len(ids) for ids in batch_ids(emulator)] == [1000, 1000, 500]
    assert [uid for ids in batch_ids(emulator) for uid in ids] == [u["id"] for u in data]
    assert stored(emulator) == {u["id"]: u for u in data}
    assert result.accepted == 2500


async def test_a_later_write_of_one_user_in_the_same_chunk_wins(
    emulator: Emulator, client: AsyncClient
) -> None:
    first = {"id": "u1", "email": "a@example.com", "firstName": "First"}
    second = {"id": "u1", "email": "a@example.com", "firstName": "Second"}
    await client.upsert_many([first, second])
    assert emulator.users["u1"]["firstName"] == "Second"


async def test_a_partial_400_rejects_only_the_named_users(
    emulator: Emulator, client: AsyncClient
) -> None:
    data: list[Any] = users(1500)
    data[17]["email"] = "not-an-email"
    data[1203]["shoeSize"] = 44  # an attribute the account does not have
    result = await client.upsert_many(data, raise_on_failure=False)
    assert [(r.position, r.user_id) for r in result.rejected] == [(17, "u17"), (1203, "u1203")]
    assert result.rejected[0].errors[0].code == ErrorCode.INVALID_EMAIL
    assert result.rejected[0].errors[0].pointer == "/updated/17/email"
    assert result.rejected[1].errors[0].code == ErrorCode.UNKNOWN_ATTRIBUTE
    assert result.rejected[1].errors[0].pointer == "/updated/203/shoeSize"
    assert set(emulator.users) == {u["id"] for u in data} - {"u17", "u1203"}
    assert result.accepted == 1498


async def test_a_chunk_failing_on_every_try_is_reported_and_the_rest_is_stored(
    emulator: Emulator,
) -> None:
    emulator.faults = Faults(schedule=["503"] * 3)
    async with connect(emulator, retry=fake_retry(max_retries=2)) as client:
        result = await client.upsert_many(
            users(30), chunk_size=10, concurrency=1, raise_on_failure=False
        )
    [failed] = result.failed_chunks
    assert failed.user_ids == tuple(f"u{i}" for i in range(10))
    assert isinstance(failed.exception, ServerError)
    assert set(emulator.users) == {f"u{i}" for i in range(10, 30)}


async def test_a_wrong_api_key_stops_the_run_at_the_first_answer(emulator: Emulator) -> None:
    async with connect(emulator, api_key="wrong-key") as client:
        with pytest.raises(BulkError) as caught:
            await client.upsert_many(users(20_000), concurrency=2)
    assert isinstance(caught.value.result.aborted_by, AuthenticationError)
    assert len(emulator.requests) <= 2
    assert caught.value.result.submitted < 20_000


async def test_cancelling_from_on_progress_stops_every_task(
    emulator: Emulator, client: AsyncClient
) -> None:
    before = len(anyio.get_running_tasks())
    with anyio.CancelScope() as scope:

        def on_progress(progress: BulkProgress) -> None:
            if progress.chunks_done == 3:
                scope.cancel()

        await client.upsert_many(users(50_000), chunk_size=100, on_progress=on_progress)
    assert scope.cancelled_caught
    assert len(anyio.get_running_tasks()) == before
    assert 300 <= len(emulator.users) < 50_000


async def test_injected_429s_lower_concurrency_and_successes_raise_it_again(
    emulator: Emulator, client: AsyncClient
) -> None:
    emulator.faults = Faults(schedule=["429", "503", "429"])
    seen: list[int] = []
    result = await client.upsert_many(
        users(3000), chunk_size=50, on_progress=lambda p: seen.append(p.concurrency)
    )
    assert min(seen) < 8
    assert seen[-1] == 8
    assert result.retries == 3
    assert len(emulator.users) == 3000


async def test_wait_gives_the_servers_totals_with_processing_errors(
    emulator: Emulator, client: AsyncClient
) -> None:
    data: list[Any] = users(20)
    data[5]["email"] = "broken"  # rejected by the batch
    data[9]["email"] = data[2]["email"]  # taken: fails at processing
    result = await client.upsert_many(data, chunk_size=8, wait=True, raise_on_failure=False)
    assert result.tracking is not None
    assert (result.tracking.total, result.tracking.success, result.tracking.error) == (20, 18, 2)
    assert result.processing_errors == 1
    assert not result.ok


async def test_delete_many_removes_the_users(emulator: Emulator, client: AsyncClient) -> None:
    await client.upsert_many(users(2200))
    result = await client.delete_many(f"u{i}" for i in range(0, 2200, 2))
    assert result.accepted == 1100
    assert set(emulator.users) == {f"u{i}" for i in range(1, 2200, 2)}


# -- nothing lost, for any input -------------------------------------------

INVALID_KINDS = ("not_a_mapping", "no_id", "nan", "bad_email", "unknown_attribute")


@st.composite
def inputs(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """(kind, item) pairs: valid users and each kind of invalid item, ids unique."""
    kinds = draw(st.lists(st.sampled_from(("valid",) * 4 + INVALID_KINDS), max_size=120))
    items: list[tuple[str, Any]] = []
    for i, kind in enumerate(kinds):
        name = draw(st.text(max_size=6))
        user: dict[str, Any] = {"id": f"id-{i}", "email": f"p{i}@example.com", "lastName": name}
        if draw(st.booleans()):
            item: Any = User(user["id"], user["email"], attributes={"lastName": name})
        else:
            item = user
        if kind == "not_a_mapping":
            item = draw(st.sampled_from([None, 42, b"bytes", ("a", "b")]))
        elif kind == "no_id":
            item = {"email": f"p{i}@example.com"}
        elif kind == "nan":
            item = {**user, "lastName": math.nan}
        elif kind == "bad_email":
            item = {**user, "email": "no at sign"}
        elif kind == "unknown_attribute":
            item = {**user, "favouriteColour": "blue"}
        items.append((kind, item))
    return items


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=inputs(),
    chunk_size=st.integers(1, 40),
    concurrency=st.integers(1, 8),
    fault_rate=st.sampled_from([0.0, 0.0, 0.3]),
    seed=st.integers(0, 2**16),
)
async def test_every_user_is_accepted_rejected_or_in_a_failed_chunk_and_stored_as_expected(
    items: list[tuple[str, Any]], chunk_size: int, concurrency: int, fault_rate: float, seed: int
) -> None:
    # Only faults that apply nothing: a failed chunk then has stored none of its users.
    faults = Faults(rate=fault_rate, kinds=(*FIVE_XX, "429", "drop"), seed=seed, retry_after=0)
    emulator = Emulator(api_keys=(KEY,), faults=faults)
    async with connect(emulator, retry=fake_retry(max_retries=2)) as client:
        result = await client.upsert_many(
            [item for _, item in items],
            chunk_size=chunk_size,
            concurrency=concurrency,
            raise_on_failure=False,
        )
    assert result.submitted == len(items)
    assert result.accepted + len(result.rejected) + result.failed == result.submitted
    failed = {p for chunk in result.failed_chunks for p in chunk.positions}
    rejected = {r.position for r in result.rejected}
    assert not failed & rejected
    assert rejected == {p for p, (kind, _) in enumerate(items) if kind != "valid"} - failed
    expected = {
        f"id-{p}": {"id": f"id-{p}", "email": f"p{p}@example.com", "lastName": name}
        for p, (kind, item) in enumerate(items)
        if kind == "valid" and p not in failed
        for name in [item.attributes["lastName"] if isinstance(item, User) else item["lastName"]]
    }
    assert stored(emulator) == expected


# -- 100,000 users through a misbehaving API ---------------------------------


@pytest.mark.slow
async def test_100_000_users_through_faults_are_all_stored_or_reported() -> None:
    # ~10% 5xx, ~5% 429, ~2.5% each of dropped connections and lost responses.
    kinds = (*FIVE_XX, "429", "429", "drop", "truncate")
    emulator = Emulator(api_keys=(KEY,), faults=Faults(rate=0.2, kinds=kinds, seed=4))
    data: list[dict[str, Any]] = users(100_000)
    bad = set(range(7, 100_000, 997))
    for position in bad:
        data[position]["email"] = "broken"
    progress: list[BulkProgress] = []
    async with connect(emulator) as client:
        result: BulkResult = await client.upsert_many(
            iter(data), raise_on_failure=False, on_progress=progress.append
        )
    assert emulator.faults is not None
    assert emulator.faults.injected > 10
    assert result.retries >= emulator.faults.injected - len(result.failed_chunks) * 6
    assert result.accepted + len(result.rejected) + result.failed == 100_000
    assert {r.position for r in result.rejected} == bad
    failed = set(result.failed_user_ids)
    users_now = emulator.users
    for position, user in enumerate(data):
        uid = user["id"]
        if position in bad:
            assert uid not in users_now
        elif uid not in failed:
            assert users_now[uid]["firstName"] == user["firstName"]
    assert min(p.concurrency for p in progress) < 8
