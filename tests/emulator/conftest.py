"""Fixtures of the emulator's tests: an emulator on a manual clock, and a plain
httpx client talking to it in-process, speaking the wire directly."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from activatepro_async.emulator import Emulator, ManualClock

from .wire import HEADERS, KEY


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1000.0)


@pytest.fixture
def emulator(clock: ManualClock) -> Emulator:
    return Emulator(api_keys=(KEY,), clock=clock)


@pytest.fixture
async def http(emulator: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=emulator.transport(), base_url="http://emulator", headers=HEADERS
    ) as client:
        yield client
