from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from activatepro_async import AsyncClient, Stage, TrackingTimeoutError

from .helpers import FakeTime, Recorder

pytestmark = pytest.mark.anyio

MakeClient = Callable[..., AsyncClient]


def status(stage: str, done: int = 0) -> httpx.Response:
    return httpx.Response(200, json={"stage": stage, "total": 3, "success": done, "error": 0})


async def test_polls_until_processed_with_growing_intervals(
    make_client: MakeClient, fake_time: FakeTime
) -> None:
    recorder = Recorder(
        status("PENDING"), status("PENDING", 1), status("PENDING", 2), status("PROCESSED", 3)
    )
    async with make_client(recorder) as client:
        result = await client.wait_for_tracking("t-1", poll_interval=1.0)
    assert result.stage is Stage.PROCESSED
    assert result.success == 3
    assert len(recorder.requests) == 4
    assert fake_time.sleeps == [1.0, 1.5, 2.25]
    assert {r.url.raw_path for r in recorder.requests} == {b"/users/track/t-1"}


async def test_poll_interval_is_capped(make_client: MakeClient, fake_time: FakeTime) -> None:
    recorder = Recorder(*[status("PENDING")] * 6, status("PROCESSED", 3))
    async with make_client(recorder) as client:
        await client.wait_for_tracking("t", poll_interval=1.0, max_poll_interval=2.0)
    assert fake_time.sleeps == [1.0, 1.5, 2.0, 2.0, 2.0, 2.0]


async def test_gives_up_after_timeout_with_the_last_status(
    make_client: MakeClient, fake_time: FakeTime
) -> None:
    recorder = Recorder(status("PENDING", 1))
    async with make_client(recorder) as client:
        with pytest.raises(TrackingTimeoutError, match="still PENDING after 5 s") as info:
            await client.wait_for_tracking("t-9", timeout=5.0, poll_interval=1.0)
    assert info.value.tracking_id == "t-9"
    assert info.value.last_status is not None
    assert sum(fake_time.sleeps) == pytest.approx(5.0)
    assert isinstance(info.value, TimeoutError)


async def test_returns_at_once_when_already_processed(
    make_client: MakeClient, fake_time: FakeTime
) -> None:
    recorder = Recorder(status("PROCESSED", 3))
    async with make_client(recorder) as client:
        await client.wait_for_tracking("t")
    assert fake_time.sleeps == []
