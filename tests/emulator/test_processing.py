"""Asynchronous processing: the delay, arrival order, tracking and its 24 hours."""

from __future__ import annotations

import uuid

import httpx
import pytest

from activatepro_async.emulator import TRACKING_TTL, Emulator, ManualClock

from .wire import HEADERS, user

pytestmark = pytest.mark.anyio


@pytest.fixture
def slow(clock: ManualClock) -> Emulator:
    return Emulator(clock=clock, processing_delay=2.0)


async def test_a_write_is_seen_only_once_applied(slow: Emulator, clock: ManualClock) -> None:
    async with httpx.AsyncClient(
        transport=slow.transport(), base_url="http://e", headers=HEADERS
    ) as http:
        response = await http.put("/users", json=user("1"))
        tracking_id = response.json()["trackingId"]
        assert (await http.get("/users/1")).status_code == 404
        pending = await http.get(f"/users/track/{tracking_id}")
        assert pending.json() == {"stage": "PENDING", "total": 1, "success": 0, "error": 0}
        clock.advance(1.999)
        assert (await http.get("/users/1")).status_code == 404
        assert slow.pending_count == 1
        clock.advance(0.001)
        assert (await http.get("/users/1")).status_code == 200
        done = await http.get(f"/users/track/{tracking_id}")
        assert done.json() == {"stage": "PROCESSED", "total": 1, "success": 1, "error": 0}
        assert slow.pending_count == 0


async def test_process_pending_applies_everything_now(slow: Emulator) -> None:
    async with httpx.AsyncClient(
        transport=slow.transport(), base_url="http://e", headers=HEADERS
    ) as http:
        await http.put("/users", json=user("1"))
        await http.post("/users/batch", json={"updated": [user("2"), user("3")]})
        assert slow.pending_count == 2
        assert slow.process_pending() == 2
        assert slow.pending_count == 0
        assert set(slow.users) == {"1", "2", "3"}


async def test_writes_apply_in_arrival_order(slow: Emulator, clock: ManualClock) -> None:
    async with httpx.AsyncClient(
        transport=slow.transport(), base_url="http://e", headers=HEADERS
    ) as http:
        await http.put("/users", json=user("1", firstName="one"))
        await http.delete("/users/1")
        await http.put("/users", json=user("1", firstName="three"))
        clock.advance(2)
        stored = (await http.get("/users/1")).json()
    assert stored["firstName"] == "three"


async def test_arrival_order_holds_when_the_delay_shrinks(
    slow: Emulator, clock: ManualClock
) -> None:
    async with httpx.AsyncClient(
        transport=slow.transport(), base_url="http://e", headers=HEADERS
    ) as http:
        await http.put("/users", json=user("1", firstName="first"))
        slow.processing_delay = 0.0
        await http.put("/users", json=user("1", firstName="second"))
        assert (await http.get("/users/1")).status_code == 404  # the first is not due yet
        clock.advance(2)
        assert (await http.get("/users/1")).json()["firstName"] == "second"


async def test_with_no_delay_the_next_request_sees_the_write(http: httpx.AsyncClient) -> None:
    response = await http.put("/users", json=user("1"))
    assert (await http.get("/users/1")).status_code == 200
    status = await http.get(f"/users/track/{response.json()['trackingId']}")
    assert status.json()["stage"] == "PROCESSED"


async def test_tracking_ids_are_uuid4_and_distinct(http: httpx.AsyncClient) -> None:
    ids = {(await http.put("/users", json=user("1"))).json()["trackingId"] for _ in range(20)}
    assert len(ids) == 20
    for tracking_id in ids:
        assert uuid.UUID(tracking_id).version == 4


async def test_a_tracking_id_expires_after_24_hours(
    http: httpx.AsyncClient, emulator: Emulator, clock: ManualClock
) -> None:
    tracking_id = (await http.put("/users", json=user("1"))).json()["trackingId"]
    clock.advance(TRACKING_TTL - 0.001)
    assert (await http.get(f"/users/track/{tracking_id}")).status_code == 200
    assert emulator.tracking(tracking_id) is not None
    clock.advance(0.001)
    response = await http.get(f"/users/track/{tracking_id}")
    assert response.status_code == 404
    assert emulator.tracking(tracking_id) is None
    assert (await http.get("/users/1")).status_code == 200  # the user stays


@pytest.mark.parametrize("tracking_id", ["unknown", "2e312089-a987-45c6-adbd-b904bc4dfc97", "%FF"])
async def test_an_unknown_tracking_id_is_404(http: httpx.AsyncClient, tracking_id: str) -> None:
    assert (await http.get(f"/users/track/{tracking_id}")).status_code == 404


async def test_the_tracking_view_matches_the_wire(
    http: httpx.AsyncClient, emulator: Emulator
) -> None:
    tracking_id = (await http.put("/users", json=user("1"))).json()["trackingId"]
    wire = (await http.get(f"/users/track/{tracking_id}")).json()
    assert emulator.tracking(tracking_id) == wire


async def test_reset_forgets_everything(http: httpx.AsyncClient, emulator: Emulator) -> None:
    tracking_id = (await http.put("/users", json=user("1"))).json()["trackingId"]
    emulator.reset()
    assert emulator.users == {}
    assert emulator.requests == []
    assert emulator.tracking(tracking_id) is None
    assert (await http.get("/users/1")).status_code == 404
    assert (await http.put("/users", json=user("1"))).status_code == 202


def test_the_manual_clock_never_goes_back() -> None:
    clock = ManualClock()
    clock.advance(1.5)
    assert clock() == 1.5
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)


def test_any_zero_argument_callable_is_a_clock() -> None:
    now = [0.0]
    emulator = Emulator(clock=lambda: now[0], processing_delay=1)
    assert emulator.pending_count == 0
    assert "0 users" in repr(emulator)
