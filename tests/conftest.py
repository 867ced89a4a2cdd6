"""Fixtures shared by the whole suite.

Every async test runs twice, on asyncio and on trio (anyio's pytest plugin).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from activatepro_async import AsyncClient, RetryPolicy

from .helpers import API_KEY, FakeTime, Recorder


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make_client(fake_time: FakeTime) -> Callable[..., AsyncClient]:
    """Build an AsyncClient on a Recorder with a fake clock and no jitter."""

    def make(recorder: Recorder, **kwargs: Any) -> AsyncClient:
        retry = kwargs.pop(
            "retry",
            RetryPolicy(jitter=None, sleep=fake_time.sleep, clock=fake_time.clock),
        )
        return AsyncClient(
            kwargs.pop("api_key", API_KEY),
            base_url=kwargs.pop("base_url", "https://api.example.test"),
            transport=recorder.transport,
            retry=retry,
            **kwargs,
        )

    return make
