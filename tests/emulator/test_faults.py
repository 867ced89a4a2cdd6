"""Fault injection: each kind on the wire, in-process and served, and the SDK's
retries getting through each."""

from __future__ import annotations

import httpx
import pytest

from activatepro_async import AsyncClient, RetryPolicy
from activatepro_async.emulator import FAULT_KINDS, Emulator, Faults

from ..helpers import FakeTime
from .wire import HEADERS, KEY, errors, user

pytestmark = pytest.mark.anyio

STATUS_FAULTS = [
    ("500", 500),
    ("502", 502),
    ("503", 503),
    ("504", 504),
    ("429", 429),
    ("html", 502),
]


async def put_one(emulator: Emulator, base_url: str = "http://e") -> httpx.Response:
    transport = emulator.transport() if base_url == "http://e" else None
    async with httpx.AsyncClient(transport=transport, base_url=base_url, headers=HEADERS) as http:
        return await http.put("/users", json=user("1"))


@pytest.mark.parametrize(("kind", "status"), STATUS_FAULTS)
async def test_a_status_fault_answers_that_status_and_applies_nothing(
    kind: str, status: int
) -> None:
    emulator = Emulator(faults=Faults(schedule=[kind]))
    response = await put_one(emulator)
    assert response.status_code == status
    assert emulator.users == {}
    assert emulator.pending_count == 0
    assert emulator.requests[0].fault == kind
    assert emulator.requests[0].status == status
    assert (await put_one(emulator)).status_code == 202  # the schedule is used up


@pytest.mark.parametrize("kind", ["500", "502", "503", "504"])
async def test_a_5xx_fault_has_a_json_error_body_code_10(kind: str) -> None:
    response = await put_one(Emulator(faults=Faults(schedule=[kind])))
    assert errors(response) == [(10, "")]


async def test_a_429_says_when_to_retry() -> None:
    response = await put_one(Emulator(faults=Faults(schedule=["429"], retry_after=3)))
    assert response.headers["retry-after"] == "3"
    fractional = await put_one(Emulator(faults=Faults(schedule=["429"], retry_after=0.25)))
    assert fractional.headers["retry-after"] == "0.25"


async def test_an_html_fault_is_a_proxy_page() -> None:
    response = await put_one(Emulator(faults=Faults(schedule=["html"])))
    assert response.headers["content-type"] == "text/html"
    assert response.text.startswith("<html>")
    with pytest.raises(ValueError, match="Expecting value"):
        response.json()


async def test_a_drop_raises_before_any_response_and_applies_nothing() -> None:
    emulator = Emulator(faults=Faults(schedule=["drop"]))
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        await put_one(emulator)
    assert emulator.users == {}
    assert emulator.requests[0].status is None
    assert emulator.requests[0].fault == "drop"


async def test_a_truncate_cuts_the_body_after_applying_the_write() -> None:
    emulator = Emulator(faults=Faults(schedule=["truncate"]))
    with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
        await put_one(emulator)
    assert set(emulator.users) == {"1"}  # a lost response, not a lost write


async def test_a_truncated_stream_gives_part_of_the_body_then_fails() -> None:
    emulator = Emulator(faults=Faults(schedule=["truncate"]))
    received: list[bytes] = []

    async def read_all(response: httpx.Response) -> None:
        async for chunk in response.aiter_raw():
            received.append(chunk)

    async with (
        httpx.AsyncClient(
            transport=emulator.transport(), base_url="http://e", headers=HEADERS
        ) as http,
        http.stream("PUT", "/users", json=user("1")) as response,
    ):
        assert response.status_code == 202
        with pytest.raises(httpx.RemoteProtocolError):
            await read_all(response)
    assert received
    assert b"".join(received).startswith(b'{"trackingId":"')
    assert len(b"".join(received)) < int(response.headers["content-length"])


async def test_latency_delays_then_answers_normally() -> None:
    emulator = Emulator(faults=Faults(schedule=["latency"], latency=0.001))
    response = await put_one(emulator)
    assert response.status_code == 202
    assert set(emulator.users) == {"1"}
    assert emulator.requests[0].fault == "latency"


async def test_none_in_the_schedule_is_a_normal_answer() -> None:
    emulator = Emulator(faults=Faults(schedule=[None, "503", "ok"]))
    statuses = [(await put_one(emulator)).status_code for _ in range(4)]
    assert statuses == [202, 503, 202, 202]
    assert emulator.faults is not None
    assert emulator.faults.injected == 1


async def test_faults_can_be_added_and_replaced_later(emulator: Emulator) -> None:
    emulator.faults = Faults()
    emulator.faults.add("500", 503)
    assert [(await put_one(emulator)).status_code for _ in range(3)] == [500, 503, 202]
    emulator.faults = None
    assert (await put_one(emulator)).status_code == 202


async def rate_run(seed: int) -> list[int | None]:
    emulator = Emulator(faults=Faults(rate=0.5, kinds=["500", "503", "429"], seed=seed))
    for _ in range(40):
        await put_one(emulator)
    return [r.status for r in emulator.requests]


async def test_a_rate_is_reproducible_from_its_seed() -> None:
    first = await rate_run(7)
    assert first == await rate_run(7)
    assert first != await rate_run(8)
    assert {500, 503, 429, 202} == set(first)


async def test_reset_starts_the_faults_over() -> None:
    emulator = Emulator(faults=Faults(rate=0.5, seed=3, kinds=["500"]))
    first = [(await put_one(emulator)).status_code for _ in range(20)]
    emulator.reset()
    assert [(await put_one(emulator)).status_code for _ in range(20)] == first


def test_faults_validate_their_settings() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Faults(kinds=["418"])
    with pytest.raises(ValueError, match="unknown fault kind"):
        Faults(schedule=["explode"])
    with pytest.raises(ValueError, match="between 0 and 1"):
        Faults(rate=1.5)
    with pytest.raises(ValueError, match="at least one"):
        Faults(kinds=[])
    with pytest.raises(ValueError, match="zero or more"):
        Faults(latency=-1)
    assert Faults(kinds="500, drop").kinds == ("500", "drop")
    assert Faults(kinds=[503]).kinds == ("503",)


# -- over a real socket ------------------------------------------------------------


async def test_served_drop_closes_the_connection_before_any_response() -> None:
    emulator = Emulator(faults=Faults(schedule=["drop"]))
    async with emulator.serve() as base_url:
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await put_one(emulator, base_url)
        assert (await put_one(emulator, base_url)).status_code == 202


async def test_served_truncate_cuts_the_body_mid_way() -> None:
    emulator = Emulator(faults=Faults(schedule=["truncate"]))
    async with emulator.serve() as base_url:
        with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
            await put_one(emulator, base_url)
        assert (await put_one(emulator, base_url)).status_code == 202
    assert set(emulator.users) == {"1"}


async def test_served_latency_answers_normally() -> None:
    emulator = Emulator(faults=Faults(schedule=["latency"], latency=0.001))
    async with emulator.serve() as base_url:
        assert (await put_one(emulator, base_url)).status_code == 202
    assert emulator.requests[0].fault == "latency"


@pytest.mark.parametrize(("kind", "status"), STATUS_FAULTS)
async def test_served_status_faults(kind: str, status: int) -> None:
    emulator = Emulator(faults=Faults(schedule=[kind]))
    async with emulator.serve() as base_url:
        assert (await put_one(emulator, base_url)).status_code == status
        assert (await put_one(emulator, base_url)).status_code == 202


# -- the SDK gets through ------------------------------------------------------------


@pytest.mark.parametrize("kind", FAULT_KINDS)
async def test_the_client_retries_through_each_fault(kind: str, fake_time: FakeTime) -> None:
    emulator = Emulator(faults=Faults(schedule=[kind, kind], latency=0.001, retry_after=2))
    retry = RetryPolicy(jitter=None, sleep=fake_time.sleep, clock=fake_time.clock, max_retries=3)
    async with AsyncClient(KEY, transport=emulator.transport(), retry=retry) as client:
        await client.upsert_user(user("1", firstName="Through"))
        found = await client.get_user("1")
    assert found.id == "1"
    assert emulator.users["1"]["firstName"] == "Through"
    faulted = [r.fault for r in emulator.requests]
    if kind == "latency":
        assert fake_time.sleeps == []  # slow, not failed: no retry
    else:
        assert faulted[:3] == [kind, kind, None]
        assert len(fake_time.sleeps) == 2
    if kind == "429":
        assert all(wait >= 2 for wait in fake_time.sleeps)


async def test_the_client_gets_through_a_random_storm(fake_time: FakeTime) -> None:
    emulator = Emulator(faults=Faults(rate=0.3, seed=11, latency=0.0, retry_after=0.5))
    retry = RetryPolicy(jitter=None, sleep=fake_time.sleep, clock=fake_time.clock, max_retries=10)
    async with AsyncClient(KEY, transport=emulator.transport(), retry=retry) as client:
        for i in range(30):
            await client.upsert_user(user(str(i)))
    emulator.faults = None
    assert set(emulator.users) == {str(i) for i in range(30)}
    assert any(r.fault for r in emulator.requests)
